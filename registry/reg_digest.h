/* sha256 digests and streaming hashing (OpenSSL EVP). */
#ifndef REG_DIGEST_H
#define REG_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "cm_error.h"

#define REG_DIGEST_HEXLEN 64
#define REG_DIGEST_STRLEN 71 /* "sha256:" + 64 */

/* A sha256 digest in its canonical string form "sha256:<64 lowercase hex>". */
typedef struct reg_digest {
	char s[REG_DIGEST_STRLEN + 1];
} reg_digest;

/* The 64 hex characters of d. */
#define REG_DIGEST_HEX(d) ((d)->s + 7)

/* Parse "sha256:<hex>"; anything else (other algorithm, upper case, wrong
 * length, path characters) is CM_EINVAL. */
int reg_digest_parse(reg_digest *out, const char *s, cm_error *err);
/* Accept a bare 64-character lowercase hex string. */
int reg_digest_from_hex(reg_digest *out, const char *hex, cm_error *err);
int reg_digest_equal(const reg_digest *a, const reg_digest *b);

/* Streaming hasher. reg_hasher_free(NULL) is a no-op. */
typedef struct reg_hasher reg_hasher;
int reg_hasher_new(reg_hasher **out, cm_error *err);
void reg_hasher_update(reg_hasher *h, const void *p, size_t n);
/* Finish into out; the hasher may then be reset and reused. */
void reg_hasher_final(reg_hasher *h, reg_digest *out);
void reg_hasher_reset(reg_hasher *h);
void reg_hasher_free(reg_hasher *h);
/* reg_hasher_update as a sink (cm_read_each, reg_reader_pump): h is the
 * hasher; never fails. */
int reg_hasher_sink(void *h, const void *p, size_t n, cm_error *err);

/* One-shot digests. */
int reg_digest_buf(reg_digest *out, const void *p, size_t n, cm_error *err);
int reg_digest_fd(reg_digest *out, uint64_t *out_size, int fd, cm_error *err);
int reg_digest_file(reg_digest *out, uint64_t *out_size, const char *path, cm_error *err);

#endif
