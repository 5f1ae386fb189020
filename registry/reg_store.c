#include "reg_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_file.h"
#include "reg_catalog.h"

/* Backend table: how blobs are stored. Only the folder backend exists. */
struct reg_store_backend {
	int (*has)(reg_store *s, const reg_digest *d, uint64_t *out_size);
	int (*tmp_open)(reg_store *s, int *out_fd, char *out_tmp, size_t n, cm_error *err);
	int (*commit)(reg_store *s, int fd, const char *tmp, const reg_digest *d, cm_error *err);
};

struct reg_store {
	char root[PATH_MAX];
	const struct reg_store_backend *be;
	void *db;
};

struct reg_blob_writer {
	reg_store *s;
	int fd;
	char tmp[PATH_MAX];
	reg_hasher *h;
	uint64_t size;
	int has_expected;
	reg_digest expected;
	int resumable; /* tmp is tmp/<hex>.partial, locked by fd */
};

int reg_store_blob_path(char *out, size_t n, const reg_store *s, const reg_digest *d)
{
	int len = snprintf(out, n, "%s/blobs/sha256/%s", s->root, REG_DIGEST_HEX(d));
	return (len < 0 || (size_t)len >= n) ? CM_EINVAL : 0;
}

static int fs_has(reg_store *s, const reg_digest *d, uint64_t *out_size)
{
	char p[PATH_MAX];
	struct stat st;
	if (reg_store_blob_path(p, sizeof(p), s, d) < 0 || stat(p, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	if (out_size)
		*out_size = (uint64_t)st.st_size;
	return 1;
}

static int fs_tmp_open(reg_store *s, int *out_fd, char *out_tmp, size_t n, cm_error *err)
{
	int len = snprintf(out_tmp, n, "%s/tmp/blob.XXXXXX", s->root);
	if (len < 0 || (size_t)len >= n)
		return cm_error_set(err, CM_EINVAL, "store path too long");
	int fd = mkostemp(out_tmp, O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "creating temp blob in %s/tmp", s->root);
	*out_fd = fd;
	return 0;
}

static int fs_commit(reg_store *s, int fd, const char *tmp, const reg_digest *d, cm_error *err)
{
	char p[PATH_MAX];
	if (reg_store_blob_path(p, sizeof(p), s, d) < 0) {
		close(fd);
		unlink(tmp);
		return cm_error_set(err, CM_EINVAL, "store path too long");
	}
	if (fchmod(fd, 0644) < 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return cm_error_sys(err, e, "chmod %s", tmp);
	}
	return cm_file_commit(fd, tmp, p, err);
}

static const struct reg_store_backend fs_backend = {fs_has, fs_tmp_open, fs_commit};

int reg_store_open(reg_store **out, const char *root, cm_error *err)
{
	reg_store *s = calloc(1, sizeof(*s));
	if (!s)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	s->be = &fs_backend;
	int rc = 0;
	char p[PATH_MAX];
	if (snprintf(s->root, sizeof(s->root), "%s", root) >= (int)sizeof(s->root)) {
		rc = cm_error_set(err, CM_EINVAL, "store path too long: %s", root);
		goto fail;
	}
	snprintf(p, sizeof(p), "%s/blobs/sha256", root);
	if ((rc = cm_mkdirs(p, err)) < 0)
		goto fail;
	snprintf(p, sizeof(p), "%s/tmp", root);
	if ((rc = cm_mkdirs(p, err)) < 0)
		goto fail;
	if ((rc = reg_catalog_open(&s->db, root, err)) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	free(s);
	return cm_error_wrap(err, "opening store %s", root);
}

void reg_store_free(reg_store *s)
{
	if (!s)
		return;
	reg_catalog_close(s->db);
	free(s);
}

const char *reg_store_root(const reg_store *s)
{
	return s->root;
}

void *reg_store_db(reg_store *s)
{
	return s->db;
}

int reg_store_has(reg_store *s, const reg_digest *d, uint64_t *out_size)
{
	return s->be->has(s, d, out_size);
}

int reg_blob_writer_new(reg_blob_writer **out, reg_store *s, const reg_digest *expected,
			cm_error *err)
{
	reg_blob_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	w->s = s;
	w->fd = -1;
	int rc = reg_hasher_new(&w->h, err);
	if (rc == 0)
		rc = s->be->tmp_open(s, &w->fd, w->tmp, sizeof(w->tmp), err);
	if (rc < 0) {
		reg_hasher_free(w->h);
		free(w);
		return rc;
	}
	if (expected) {
		w->has_expected = 1;
		w->expected = *expected;
	}
	*out = w;
	return 0;
}

int reg_blob_writer_write(reg_blob_writer *w, const void *p, size_t n, cm_error *err)
{
	reg_hasher_update(w->h, p, n);
	w->size += n;
	return cm_write_all(w->fd, p, n, err);
}

int reg_blob_writer_write_file(reg_blob_writer *w, const char *path, cm_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "opening %s", path);
	size_t bufsz = 1 << 20;
	char *buf = malloc(bufsz);
	if (!buf) {
		close(fd);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, buf, bufsz);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = cm_error_sys(err, errno, "reading %s", path);
			break;
		}
		if (n == 0 || (rc = reg_blob_writer_write(w, buf, (size_t)n, err)) < 0)
			break;
	}
	free(buf);
	close(fd);
	return rc;
}

uint64_t reg_blob_writer_size(const reg_blob_writer *w)
{
	return w->size;
}

void reg_blob_writer_abort(reg_blob_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0) {
		close(w->fd);
		unlink(w->tmp);
	}
	reg_hasher_free(w->h);
	free(w);
}

int reg_blob_writer_commit(reg_digest *out_digest, uint64_t *out_size, reg_blob_writer *w,
			   cm_error *err)
{
	reg_digest got;
	reg_hasher_final(w->h, &got);
	if (w->has_expected && !reg_digest_equal(&got, &w->expected)) {
		cm_error_set(err, CM_EVERIFY, "digest mismatch: expected %s, got %s (%llu bytes)",
			     w->expected.s, got.s, (unsigned long long)w->size);
		reg_blob_writer_abort(w);
		return CM_EVERIFY;
	}
	int fd = w->fd;
	w->fd = -1;
	int rc = w->s->be->commit(w->s, fd, w->tmp, &got, err);
	if (rc == 0) {
		if (out_digest)
			*out_digest = got;
		if (out_size)
			*out_size = w->size;
	}
	reg_blob_writer_abort(w);
	return rc;
}

int reg_blob_writer_resume(reg_blob_writer **out, reg_store *s, const reg_digest *expected,
			   cm_error *err)
{
	reg_blob_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	w->s = s;
	w->fd = -1;
	w->has_expected = 1;
	w->expected = *expected;
	int rc = reg_hasher_new(&w->h, err);
	if (rc < 0) {
		free(w);
		return rc;
	}
	int len = snprintf(w->tmp, sizeof(w->tmp), "%s/tmp/%s.partial", s->root,
			   REG_DIGEST_HEX(expected));
	if (len < 0 || (size_t)len >= sizeof(w->tmp)) {
		reg_hasher_free(w->h);
		free(w);
		return cm_error_set(err, CM_EINVAL, "store path too long");
	}
	int fd = open(w->tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = cm_error_sys(err, errno, "opening %s", w->tmp);
		reg_hasher_free(w->h);
		free(w);
		return rc;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		/* another process is downloading this blob: use a private file */
		close(fd);
		reg_hasher_free(w->h);
		free(w);
		return reg_blob_writer_new(out, s, expected, err);
	}
	w->fd = fd;
	w->resumable = 1;
	char *buf = malloc(1 << 20);
	if (!buf) {
		reg_blob_writer_keep(w);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	for (;;) {
		ssize_t n = read(fd, buf, 1 << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = cm_error_sys(err, errno, "reading %s", w->tmp);
			break;
		}
		if (n == 0)
			break;
		reg_hasher_update(w->h, buf, (size_t)n);
		w->size += (uint64_t)n;
	}
	free(buf);
	if (rc == 0 && lseek(fd, 0, SEEK_END) < 0)
		rc = cm_error_sys(err, errno, "seeking %s", w->tmp);
	if (rc < 0) {
		reg_blob_writer_abort(w);
		return rc;
	}
	*out = w;
	return 0;
}

int reg_blob_writer_reset(reg_blob_writer *w, cm_error *err)
{
	if (ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0)
		return cm_error_sys(err, errno, "truncating %s", w->tmp);
	reg_hasher_reset(w->h);
	w->size = 0;
	return 0;
}

void reg_blob_writer_keep(reg_blob_writer *w)
{
	if (!w)
		return;
	if (!w->resumable) {
		reg_blob_writer_abort(w);
		return;
	}
	if (w->fd >= 0)
		close(w->fd);
	reg_hasher_free(w->h);
	free(w);
}

int reg_store_put(reg_digest *out, reg_store *s, const void *p, size_t n, cm_error *err)
{
	reg_digest d;
	int rc = reg_digest_buf(&d, p, n, err);
	if (rc < 0)
		return rc;
	if (!reg_store_has(s, &d, NULL)) {
		reg_blob_writer *w;
		if ((rc = reg_blob_writer_new(&w, s, &d, err)) < 0)
			return rc;
		if ((rc = reg_blob_writer_write(w, p, n, err)) < 0) {
			reg_blob_writer_abort(w);
			return rc;
		}
		if ((rc = reg_blob_writer_commit(NULL, NULL, w, err)) < 0)
			return rc;
	}
	if (out)
		*out = d;
	return 0;
}

int reg_store_read(cm_buf *out, reg_store *s, const reg_digest *d, size_t limit, cm_error *err)
{
	char p[PATH_MAX];
	reg_store_blob_path(p, sizeof(p), s, d);
	int rc = cm_file_read(out, p, limit, err);
	if (rc < 0)
		return rc;
	reg_digest got;
	if ((rc = reg_digest_buf(&got, out->data, out->len, err)) < 0)
		return rc;
	if (!reg_digest_equal(&got, d))
		return cm_error_set(err, CM_EVERIFY, "store blob %s is corrupt (hashes to %s)",
				    d->s, got.s);
	return 0;
}
