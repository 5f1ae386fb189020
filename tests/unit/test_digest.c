/* sha256 digests: known vectors, parsing, streaming, files (registry/reg_digest.c). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_error.h"
#include "cm_file.h"
#include "reg_digest.h"
#include "tu.h"

#define HEX_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HEX_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/* sha256 of "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq" (FIPS 180-2) */
#define HEX_448 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
/* sha256 of one million 'a' (FIPS 180-2) */
#define HEX_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

static char g_dir[] = "/tmp/ferry-digest-test.XXXXXX";

static void test_known_vectors(void)
{
	cm_error err = {0};
	reg_digest d;
	TU_CHECK(reg_digest_buf(&d, "", 0, &err) == 0);
	TU_CHECK_STR(d.s, "sha256:" HEX_EMPTY);
	TU_CHECK(strlen(d.s) == REG_DIGEST_STRLEN);
	TU_CHECK_STR(REG_DIGEST_HEX(&d), HEX_EMPTY);
	TU_CHECK(reg_digest_buf(&d, "abc", 3, &err) == 0);
	TU_CHECK_STR(d.s, "sha256:" HEX_ABC);
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	TU_CHECK(reg_digest_buf(&d, m, strlen(m), &err) == 0);
	TU_CHECK_STR(d.s, "sha256:" HEX_448);
	/* NULL pointer with zero length is the empty string */
	TU_CHECK(reg_digest_buf(&d, NULL, 0, &err) == 0);
	TU_CHECK_STR(d.s, "sha256:" HEX_EMPTY);
}

static void test_parse_ok(void)
{
	cm_error err = {0};
	reg_digest d, e;
	memset(&d, 'x', sizeof(d));
	TU_CHECK(reg_digest_parse(&d, "sha256:" HEX_ABC, &err) == 0);
	TU_CHECK_STR(d.s, "sha256:" HEX_ABC);
	TU_CHECK(reg_digest_from_hex(&e, HEX_ABC, &err) == 0);
	TU_CHECK_STR(e.s, "sha256:" HEX_ABC);
	TU_CHECK(reg_digest_equal(&d, &e));
	TU_CHECK(reg_digest_from_hex(&e, HEX_EMPTY, &err) == 0);
	TU_CHECK(!reg_digest_equal(&d, &e));
}

static void test_parse_refused(void)
{
	static const char *bad[] = {
	    "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", /* upper */
	    "sha256:Ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", /* one upper
											*/
	    "SHA256:" HEX_ABC,	   /* algo case */
	    "sha256:" HEX_ABC "0", /* 65 hex */
	    "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a", /* 63 hex */
	    "sha256:",
	    "sha256",
	    "",
	    HEX_ABC, /* bare hex is not a digest */
	    "sha512:" HEX_ABC HEX_ABC,
	    "sha384:" HEX_ABC,
	    "md5:900150983cd24fb0d6963f7d28e17f72",
	    "sha256:../../x",
	    "sha256:../../../../../../../../../../../../../../../../../../../../etc/passwd",
	    "sha256:" HEX_ABC "/../../x",
	    "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a/",
	    "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a ",
	    " sha256:" HEX_ABC,
	    "sha256:" HEX_ABC "\n",
	    "sha256:ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", /* 'g' */
	    "sha256+b64:" HEX_ABC,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cm_error err = {0};
		reg_digest d;
		int rc = reg_digest_parse(&d, bad[i], &err);
		TU_CHECK_MSG(rc == CM_EINVAL && err.code == CM_EINVAL && err.msg[0],
			     "accepted or wrong code for '%s': rc=%d", bad[i], rc);
	}
	/* from_hex refuses the same shapes */
	static const char *badhex[] = {
	    "", "sha256:" HEX_ABC, HEX_ABC "0",
	    "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", "../../x"};
	for (size_t i = 0; i < sizeof(badhex) / sizeof(badhex[0]); i++) {
		cm_error err = {0};
		reg_digest d;
		TU_CHECK_MSG(reg_digest_from_hex(&d, badhex[i], &err) == CM_EINVAL,
			     "from_hex accepted '%s'", badhex[i]);
	}
}

static void test_streaming_equals_oneshot(void)
{
	cm_error err = {0};
	size_t n = 3 * 1024 * 1024 + 17;
	unsigned char *buf = malloc(n);
	TU_CHECK(buf != NULL);
	if (!buf)
		return;
	unsigned x = 12345;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)(x >> 16);
	}
	reg_digest one, st;
	TU_CHECK(reg_digest_buf(&one, buf, n, &err) == 0);
	reg_hasher *h = NULL;
	TU_CHECK(reg_hasher_new(&h, &err) == 0);
	if (!h) {
		free(buf);
		return;
	}
	/* irregular chunk sizes, including empty updates */
	size_t off = 0, step = 1;
	while (off < n) {
		size_t k = step > n - off ? n - off : step;
		reg_hasher_update(h, buf + off, k);
		reg_hasher_update(h, buf + off, 0);
		off += k;
		step = step * 3 + 1;
		if (step > 200000)
			step = 7;
	}
	reg_hasher_final(h, &st);
	TU_CHECK_STR(st.s, one.s);
	/* reset and reuse gives the same answer, byte by byte for a prefix */
	reg_hasher_reset(h);
	for (size_t i = 0; i < 3; i++)
		reg_hasher_update(h, "abc" + i, 1);
	reg_hasher_final(h, &st);
	TU_CHECK_STR(st.s, "sha256:" HEX_ABC);
	/* final then reset then nothing = empty */
	reg_hasher_reset(h);
	reg_hasher_final(h, &st);
	TU_CHECK_STR(st.s, "sha256:" HEX_EMPTY);
	/* one million 'a' in 1000-byte chunks */
	memset(buf, 'a', 1000);
	reg_hasher_reset(h);
	for (int i = 0; i < 1000; i++)
		reg_hasher_update(h, buf, 1000);
	reg_hasher_final(h, &st);
	TU_CHECK_STR(st.s, "sha256:" HEX_MILLION_A);
	reg_hasher_free(h);
	reg_hasher_free(NULL);
	free(buf);
}

static void test_digest_file(void)
{
	cm_error err = {0};
	char p[256];
	reg_digest d;
	uint64_t size = 99;

	snprintf(p, sizeof(p), "%s/empty", g_dir);
	TU_CHECK(cm_file_write_atomic(p, "", 0, 0644, &err) == 0);
	TU_CHECK(reg_digest_file(&d, &size, p, &err) == 0);
	TU_CHECK_STR(d.s, "sha256:" HEX_EMPTY);
	TU_CHECK(size == 0);

	snprintf(p, sizeof(p), "%s/abc", g_dir);
	TU_CHECK(cm_file_write_atomic(p, "abc", 3, 0644, &err) == 0);
	TU_CHECK(reg_digest_file(&d, &size, p, &err) == 0);
	TU_CHECK_STR(d.s, "sha256:" HEX_ABC);
	TU_CHECK(size == 3);
	TU_CHECK(reg_digest_file(&d, NULL, p, &err) == 0);
	TU_CHECK_STR(d.s, "sha256:" HEX_ABC);

	/* larger than the 1 MiB read buffer: equals the one-shot digest */
	size_t n = (2u << 20) + 5;
	char *big = malloc(n);
	TU_CHECK(big != NULL);
	if (big) {
		for (size_t i = 0; i < n; i++)
			big[i] = (char)(i * 7 + (i >> 13));
		snprintf(p, sizeof(p), "%s/big", g_dir);
		reg_digest one;
		TU_CHECK(cm_file_write_atomic(p, big, n, 0644, &err) == 0);
		TU_CHECK(reg_digest_buf(&one, big, n, &err) == 0);
		TU_CHECK(reg_digest_file(&d, &size, p, &err) == 0);
		TU_CHECK_STR(d.s, one.s);
		TU_CHECK(size == n);
		/* and through an fd */
		int fd = open(p, O_RDONLY);
		TU_CHECK(fd >= 0);
		if (fd >= 0) {
			TU_CHECK(reg_digest_fd(&d, &size, fd, &err) == 0);
			TU_CHECK_STR(d.s, one.s);
			close(fd);
		}
		free(big);
	}

	/* a missing file is an I/O error naming the path */
	snprintf(p, sizeof(p), "%s/missing", g_dir);
	cm_error e2 = {0};
	TU_CHECK(reg_digest_file(&d, &size, p, &e2) == CM_EIO);
	TU_CHECK(strstr(e2.msg, p) != NULL);
	/* a folder cannot be hashed */
	cm_error e3 = {0};
	TU_CHECK(reg_digest_file(&d, &size, g_dir, &e3) < 0);
}

int main(void)
{
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	TU_RUN(test_known_vectors);
	TU_RUN(test_parse_ok);
	TU_RUN(test_parse_refused);
	TU_RUN(test_streaming_equals_oneshot);
	TU_RUN(test_digest_file);
	cm_rmtree(g_dir);
	TU_EXIT();
}
