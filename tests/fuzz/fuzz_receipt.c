/* libFuzzer target: the receipt parser (reg_receipt_parse,
 * registry/reg_receipt.c), which reads what a lab says it holds
 * (ferry-build build --base RECEIPT.json; ferry-install diff).
 * fuzz-max-len: 8192
 *
 * Input: the receipt text.
 *
 * Invariants (abort when broken):
 *   - the answer is 0, or CM_EINVAL (CM_ENOMEM) with a message naming the
 *     input ("fuzz"), and reg_receipt_free of the result is safe;
 *   - on success the blobs are sorted and unique, each found again by
 *     reg_receipt_blob_find; written out (reg_receipt_dump) and read
 *     again, the receipt gives the same text (a fixed point). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reg_receipt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	reg_receipt r;
	cm_error e = {0};
	int rc = reg_receipt_parse(&r, (const char *)data, size, "fuzz", &e);
	if (rc < 0) {
		if ((rc != CM_EINVAL && rc != CM_ENOMEM) || !strstr(e.msg, "fuzz"))
			abort();
		reg_receipt_free(&r);
		return 0;
	}
	for (size_t i = 0; i < r.n_blobs; i++) {
		if (i && strcmp(r.blobs[i - 1].digest.s, r.blobs[i].digest.s) >= 0)
			abort();
		if (reg_receipt_blob_find(&r, &r.blobs[i].digest) != &r.blobs[i])
			abort();
	}
	char *a = NULL, *b = NULL;
	reg_receipt r2;
	if (reg_receipt_dump(&a, &r, &e) != 0 ||
	    reg_receipt_parse(&r2, a, strlen(a), "fuzz", &e) != 0)
		abort();
	if (reg_receipt_dump(&b, &r2, &e) != 0 || strcmp(a, b) != 0)
		abort();
	free(a);
	free(b);
	reg_receipt_free(&r2);
	reg_receipt_free(&r);
	return 0;
}
