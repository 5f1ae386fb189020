/* libFuzzer target: the bundle scanner (reg_bundle_scan over the strict tar
 * rules of reg_tar.c), fed any bytes as a bundle file. The signature check
 * accepts everything so that the fuzzer reaches the member walk, the pax
 * parser and the hashing; whatever it returns, it must not crash, hang or
 * read outside its buffers, and an accepted input must list members that
 * lie inside the file. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "reg_bundle.h"

static int any_sig(void *ctx, const void *sums, size_t n, const void *sig, size_t sig_n,
		   cm_error *err)
{
	(void)ctx, (void)sums, (void)n, (void)sig, (void)sig_n, (void)err;
	return 0;
}

static int on_member(void *ctx, const reg_bundle_member *m, cm_error *err)
{
	(void)err;
	uint64_t size = *(const uint64_t *)ctx;
	if (m->data_offset > size || m->size > size - m->data_offset)
		abort(); /* an accepted member outside the file */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("bundle", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	uint64_t fsize = size;
	for (int hash = 0; hash < 2; hash++) {
		reg_bundle_opts o = {0};
		o.check_sig = any_sig;
		o.ctx = &fsize;
		o.hash_data = hash;
		o.threads = 1;
		o.on_member = on_member;
		cm_error err;
		reg_bundle_stats st;
		(void)reg_bundle_scan(&st, fd, "fuzz", &o, &err);
	}
	close(fd);
	return 0;
}
