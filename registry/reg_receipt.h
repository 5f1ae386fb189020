/* A receipt: what a lab already holds (docs/bundle-format.md "Receipts").
 * Plain JSON, made by `ferry-install receipt` or by other means, read by
 * `ferry-build build --base` (to leave out what the lab has) and by
 * `ferry-install diff`. It is not signed: it only decides which blobs a
 * delta leaves out; the lab checks the delta against its bases anyway.
 *
 *   {"receiptVersion": 1,
 *    "bundles": [{"name", "version", "created", "signer", "sumsSha256"}],
 *    "images":  [{"ref": "docker.io/library/x:1", "digest": "sha256:..."}],
 *    "blobs":   [{"digest": "sha256:...", "size": N}]}
 *
 * Parsing is capped (REG_RECEIPT_MAX_* below) and strict about types. */
#ifndef REG_RECEIPT_H
#define REG_RECEIPT_H

#include <stddef.h>
#include <stdint.h>

#include "cm_error.h"
#include "reg_digest.h"

#define REG_RECEIPT_MAX_BYTES ((size_t)64 << 20)
#define REG_RECEIPT_MAX_BLOBS 1000000
#define REG_RECEIPT_MAX_IMAGES 100000
#define REG_RECEIPT_MAX_BUNDLES 10000

/* What identifies a bundle: bundle.json's name, version, created and
 * signer, and the sha256 of its signed SHA256SUMS (which pins every byte). */
typedef struct reg_receipt_bundle {
	char name[256], version[128], created[32], signer[80];
	char sums[65]; /* sha256 hex of SHA256SUMS */
} reg_receipt_bundle;

typedef struct reg_receipt_image {
	char ref[512];
	reg_digest digest;
} reg_receipt_image;

typedef struct reg_receipt_blob {
	reg_digest digest;
	uint64_t size;
} reg_receipt_blob;

typedef struct reg_receipt {
	reg_receipt_bundle *bundles;
	size_t n_bundles, cap_bundles;
	reg_receipt_image *images;
	size_t n_images, cap_images;
	reg_receipt_blob *blobs; /* sorted by digest, unique after reg_receipt_sort */
	size_t n_blobs, cap_blobs;
} reg_receipt;

/* Add entries (copies). A blob already present is kept once (after sort);
 * the same digest with two sizes is CM_EINVAL at sort time. */
int reg_receipt_add_bundle(reg_receipt *r, const reg_receipt_bundle *b, cm_error *err);
int reg_receipt_add_image(reg_receipt *r, const char *ref, const reg_digest *d, cm_error *err);
int reg_receipt_add_blob(reg_receipt *r, const reg_digest *d, uint64_t size, cm_error *err);
/* Sort blobs and drop duplicates (required before reg_receipt_blob_find). */
int reg_receipt_sort(reg_receipt *r, cm_error *err);
/* The blob with digest d, or NULL. */
const reg_receipt_blob *reg_receipt_blob_find(const reg_receipt *r, const reg_digest *d);

/* Parse receipt JSON (at most REG_RECEIPT_MAX_BYTES); sorted on return.
 * what names the input in errors. */
int reg_receipt_parse(reg_receipt *out, const char *data, size_t len, const char *what,
		      cm_error *err);
int reg_receipt_load(reg_receipt *out, const char *path, cm_error *err);
/* The JSON text (caller frees), and an atomic write (temp, fsync, rename). */
int reg_receipt_dump(char **out, const reg_receipt *r, cm_error *err);
int reg_receipt_save(const reg_receipt *r, const char *path, cm_error *err);
/* bundle.json's identity fields (name, version, created, signer) from its
 * bytes, plus the given SHA256SUMS sha256. */
int reg_receipt_bundle_from_json(reg_receipt_bundle *out, const char *bundle_json, size_t len,
				 const char *sums_hex, cm_error *err);
void reg_receipt_free(reg_receipt *r);

#endif
