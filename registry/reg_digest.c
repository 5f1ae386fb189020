#include "reg_digest.h"

#include "cm_file.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct reg_hasher {
	EVP_MD_CTX *ctx;
};

static int is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	return 1;
}

int reg_digest_from_hex(reg_digest *out, const char *hex, cm_error *err)
{
	if (strlen(hex) != REG_DIGEST_HEXLEN || !is_lower_hex(hex, REG_DIGEST_HEXLEN))
		return cm_error_set(err, CM_EINVAL,
				    "invalid sha256 hex '%.80s' (want 64 lowercase hex digits)",
				    hex);
	memcpy(out->s, "sha256:", 7);
	memcpy(out->s + 7, hex, REG_DIGEST_HEXLEN + 1);
	return 0;
}

int reg_digest_parse(reg_digest *out, const char *s, cm_error *err)
{
	if (strncmp(s, "sha256:", 7) != 0)
		return cm_error_set(err, CM_EINVAL, "invalid digest '%.80s' (want sha256:<hex>)",
				    s);
	return reg_digest_from_hex(out, s + 7, err);
}

int reg_digest_equal(const reg_digest *a, const reg_digest *b)
{
	return strcmp(a->s, b->s) == 0;
}

int reg_hasher_new(reg_hasher **out, cm_error *err)
{
	reg_hasher *h = calloc(1, sizeof(*h));
	if (!h || !(h->ctx = EVP_MD_CTX_new())) {
		free(h);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		reg_hasher_free(h);
		return cm_error_set(err, CM_EFAIL, "sha256 init failed");
	}
	*out = h;
	return 0;
}

void reg_hasher_update(reg_hasher *h, const void *p, size_t n)
{
	EVP_DigestUpdate(h->ctx, p, n);
}

static void to_hex(char *out, const unsigned char *md, size_t n)
{
	static const char x[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = x[md[i] >> 4];
		out[2 * i + 1] = x[md[i] & 15];
	}
	out[2 * n] = '\0';
}

void reg_hasher_final(reg_hasher *h, reg_digest *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_DigestFinal_ex(h->ctx, md, &n);
	memcpy(out->s, "sha256:", 7);
	to_hex(out->s + 7, md, n);
}

void reg_hasher_reset(reg_hasher *h)
{
	EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

void reg_hasher_free(reg_hasher *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int reg_digest_buf(reg_digest *out, const void *p, size_t n, cm_error *err)
{
	reg_hasher *h;
	int rc = reg_hasher_new(&h, err);
	if (rc < 0)
		return rc;
	reg_hasher_update(h, p, n);
	reg_hasher_final(h, out);
	reg_hasher_free(h);
	return 0;
}

int reg_hasher_sink(void *h, const void *p, size_t n, cm_error *err)
{
	(void)err;
	reg_hasher_update(h, p, n);
	return 0;
}

int reg_digest_fd(reg_digest *out, uint64_t *out_size, int fd, cm_error *err)
{
	reg_hasher *h;
	uint64_t total;
	int rc = reg_hasher_new(&h, err);
	if (rc == 0 && (rc = cm_read_each(fd, CM_READ_TO_END, reg_hasher_sink, h, &total,
					  "the file", err)) == 0) {
		reg_hasher_final(h, out);
		if (out_size)
			*out_size = total;
	}
	reg_hasher_free(h);
	return rc;
}

int reg_digest_file(reg_digest *out, uint64_t *out_size, const char *path, cm_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "opening %s", path);
	int rc = reg_digest_fd(out, out_size, fd, err);
	close(fd);
	if (rc < 0)
		return cm_error_wrap(err, "hashing %s", path);
	return 0;
}
