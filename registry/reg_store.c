#include "reg_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_dio.h"
#include "cm_file.h"
#include "reg_catalog.h"

/* Backend table: how blobs are stored. Only the folder backend exists. */
struct reg_store_backend {
	int (*has)(reg_store *s, const reg_digest *d, uint64_t *out_size);
	int (*tmp_open)(reg_store *s, int *out_fd, char *out_tmp, size_t n, cm_error *err);
	int (*commit)(reg_store *s, int fd, const char *tmp, const reg_digest *d, cm_error *err);
};

/* Writer buffers are kept for the next writer: fresh memory costs a page
 * fault per page, and a build opens a writer per blob. */
#define POOL_MAX 24

struct reg_store {
	char root[PATH_MAX];
	const struct reg_store_backend *be;
	void *db;
	pthread_mutex_t pool_mu;
	char *pool[POOL_MAX];
	size_t n_pool;
};

/* Downloads arrive in small pieces on the one thread that runs every
 * transfer. A writer gathers them into 2 MiB aligned buffers; a thread of
 * its own hashes each full buffer and writes it with direct I/O
 * (cm_dio.h), so the downloading thread only copies. Two buffers: one
 * fills while the other is hashed and written. */
#define WBUF (2u << 20)

struct reg_blob_writer {
	reg_store *s;
	int fd;
	char tmp[PATH_MAX];
	reg_hasher *h;
	uint64_t size; /* bytes given to the writer */
	int has_expected;
	reg_digest expected;
	int resumable; /* tmp is tmp/<hex>.partial, locked by fd */
	size_t align;  /* O_DIRECT is on for fd with this alignment; 0: off */
	int dio_tried; /* O_DIRECT is tried at the first full buffer only, so
			* that small blobs cost no extra system calls */
	reg_tee *tee;  /* a second destination, or NULL */
	uint64_t off;  /* file offset of bufs[fill][0] */
	char *bufs[2];
	int fill;    /* the buffer being filled */
	size_t used; /* bytes in bufs[fill] */
	/* the worker; below here, fields are shared under mu */
	int started, tee_started;
	pthread_t t, tt; /* the worker, and the tee's own writer */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int pending;  /* bufs[fill ^ 1] holds plen bytes for offset poff */
	int tpending; /* ... which the tee thread has yet to write */
	size_t plen;
	uint64_t poff;
	int stop, failed;
	cm_error werr;
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
	pthread_mutex_init(&s->pool_mu, NULL);
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
	pthread_mutex_destroy(&s->pool_mu);
	free(s);
	return cm_error_wrap(err, "opening store %s", root);
}

void reg_store_free(reg_store *s)
{
	if (!s)
		return;
	reg_catalog_close(s->db);
	for (size_t i = 0; i < s->n_pool; i++)
		free(s->pool[i]);
	pthread_mutex_destroy(&s->pool_mu);
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

static char *pool_get(reg_store *s)
{
	char *b = NULL;
	pthread_mutex_lock(&s->pool_mu);
	if (s->n_pool)
		b = s->pool[--s->n_pool];
	pthread_mutex_unlock(&s->pool_mu);
	return b ? b : cm_dio_alloc(WBUF);
}

static void pool_put(reg_store *s, char *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&s->pool_mu);
	if (s->n_pool < POOL_MAX) {
		s->pool[s->n_pool++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&s->pool_mu);
	free(b);
}

/* Write a chunk of the blob (at blob offset boff) to the tee too. Direct
 * writes only, while downloads run; an unaligned tail is kept for
 * reg_tee_finish. Any trouble marks the tee failed, and the bundle copies
 * the blob from the store afterwards instead. */
static void tee_put(reg_blob_writer *w, const char *b, size_t n, uint64_t boff, int final)
{
	reg_tee *t = w->tee;
	cm_error e;
	if (!t || t->failed || !n)
		return;
	if (boff + n > t->size) {
		t->failed = 1;
		return;
	}
	if (t->fd_direct < 0) {
		if (cm_pwrite_all(t->fd_plain, b, n, t->off + boff, &e) < 0)
			t->failed = 1;
		return;
	}
	size_t head = n - n % t->align;
	if (head && cm_pwrite_all(t->fd_direct, b, head, t->off + boff, &e) < 0) {
		t->failed = 1;
		return;
	}
	if (n > head) {
		if (!final || n - head > sizeof(t->tail)) {
			t->failed = 1;
			return;
		}
		memcpy(t->tail, b + head, n - head);
		t->tail_len = n - head;
		t->tail_off = t->off + boff + head;
	}
}

/* Hash a buffer and write it to the cache file, and to the tee when no
 * tee thread does. */
static int wr_put(reg_blob_writer *w, const char *b, size_t n, uint64_t off, int final,
		  int with_tee, cm_error *err)
{
	if (!w->dio_tried && n == WBUF) {
		w->dio_tried = 1;
		w->align = cm_dio_start(w->fd, off);
	}
	reg_hasher_update(w->h, b, n);
	int rc = cm_dio_pwrite(w->fd, &w->align, b, n, off, err);
	if (rc == 0 && with_tee)
		tee_put(w, b, n, off, final);
	return rc;
}

/* A writer's thread: the worker (flag is pending: hash and cache write) or
 * the tee's (flag is tpending). The tee's writes run beside the worker's,
 * so a buffer costs the longer of the two rather than their sum (the disk
 * is what a cold build waits for). */
static void wr_loop(reg_blob_writer *w, int *flag, int tee)
{
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!*flag && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!*flag)
			break;
		const char *b = w->bufs[w->fill ^ 1];
		size_t n = w->plen;
		uint64_t off = w->poff;
		int failed = w->failed;
		pthread_mutex_unlock(&w->mu);
		cm_error e;
		int rc = 0;
		if (tee)
			tee_put(w, b, n, off, 0);
		else if (!failed)
			rc = wr_put(w, b, n, off, 0, !w->tee_started, &e);
		pthread_mutex_lock(&w->mu);
		if (rc < 0 && !w->failed) {
			w->failed = 1;
			w->werr = e;
		}
		*flag = 0;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
}

static void *wr_main(void *arg)
{
	reg_blob_writer *w = arg;
	wr_loop(w, &w->pending, 0);
	return NULL;
}

static void *wr_tee_main(void *arg)
{
	reg_blob_writer *w = arg;
	wr_loop(w, &w->tpending, 1);
	return NULL;
}

/* With mu held: wait until no buffer is in flight; the worker's error, if
 * it had one. */
static int wr_idle_locked(reg_blob_writer *w, cm_error *err)
{
	while (w->pending || w->tpending)
		pthread_cond_wait(&w->cv, &w->mu);
	if (!w->failed)
		return 0;
	if (err)
		*err = w->werr;
	return w->werr.code < 0 ? w->werr.code : CM_EIO;
}

/* Wait until the worker is idle; its error, if it had one. */
static int wr_drain(reg_blob_writer *w, cm_error *err)
{
	if (!w->started)
		return 0;
	pthread_mutex_lock(&w->mu);
	int rc = wr_idle_locked(w, err);
	pthread_mutex_unlock(&w->mu);
	return rc;
}

static void wr_stop(reg_blob_writer *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->t, NULL);
	if (w->tee_started)
		pthread_join(w->tt, NULL);
	w->tee_started = 0;
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	w->started = 0;
}

/* Hand the full buffer to the worker (or, without one, hash and write it
 * here). */
static int wr_handoff(reg_blob_writer *w, cm_error *err)
{
	if (!w->started) {
		w->stop = w->pending = w->tpending = w->failed = 0;
		if (pthread_mutex_init(&w->mu, NULL) == 0) {
			if (pthread_cond_init(&w->cv, NULL) == 0) {
				if (pthread_create(&w->t, NULL, wr_main, w) == 0)
					w->started = 1;
				else
					pthread_cond_destroy(&w->cv);
			}
			/* without a thread of its own, the worker writes the tee */
			if (w->started && w->tee &&
			    pthread_create(&w->tt, NULL, wr_tee_main, w) == 0)
				w->tee_started = 1;
			if (!w->started)
				pthread_mutex_destroy(&w->mu);
		}
	}
	if (!w->started) {
		if (wr_put(w, w->bufs[w->fill], w->used, w->off, 0, 1, err) < 0)
			return cm_error_wrap(err, "%s", w->tmp);
		w->off += w->used;
		w->used = 0;
		return 0;
	}
	pthread_mutex_lock(&w->mu);
	int rc = wr_idle_locked(w, err);
	if (rc == 0) {
		w->pending = 1;
		w->tpending = w->tee_started;
		w->plen = w->used;
		w->poff = w->off;
		w->fill ^= 1;
		w->off += w->used;
		w->used = 0;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return rc < 0 ? cm_error_wrap(err, "%s", w->tmp) : 0;
}

/* Drain the worker and write what is buffered. */
static int wr_flush(reg_blob_writer *w, cm_error *err)
{
	int rc = wr_drain(w, err);
	if (rc < 0)
		return cm_error_wrap(err, "%s", w->tmp);
	if (!w->used)
		return 0;
	if (wr_put(w, w->bufs[w->fill], w->used, w->off, 1, 1, err) < 0)
		return cm_error_wrap(err, "%s", w->tmp);
	w->off += w->used;
	w->used = 0;
	return 0;
}

static void wr_free(reg_blob_writer *w)
{
	wr_stop(w);
	if (w->fd >= 0)
		close(w->fd);
	reg_hasher_free(w->h);
	pool_put(w->s, w->bufs[0]);
	pool_put(w->s, w->bufs[1]);
	free(w);
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
	const char *src = p;
	while (n) {
		if (!w->bufs[w->fill] && !(w->bufs[w->fill] = pool_get(w->s)))
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		size_t k = WBUF - w->used;
		if (k > n)
			k = n;
		memcpy(w->bufs[w->fill] + w->used, src, k);
		w->used += k;
		w->size += k;
		src += k;
		n -= k;
		if (w->used == WBUF) {
			int rc = wr_handoff(w, err);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
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
	wr_stop(w);
	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
		unlink(w->tmp);
	}
	wr_free(w);
}

int reg_blob_writer_commit(reg_digest *out_digest, uint64_t *out_size, reg_blob_writer *w,
			   cm_error *err)
{
	int rc = wr_flush(w, err);
	wr_stop(w);
	if (rc < 0) {
		reg_blob_writer_abort(w);
		return rc;
	}
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
	rc = w->s->be->commit(w->s, fd, w->tmp, &got, err);
	if (rc == 0 && w->tee && !w->tee->failed && w->size == w->tee->size)
		w->tee->done = 1;
	if (rc == 0) {
		if (out_digest)
			*out_digest = got;
		if (out_size)
			*out_size = w->size;
	}
	wr_free(w);
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
	if (rc < 0) {
		reg_blob_writer_abort(w);
		return rc;
	}
	w->off = w->size;
	*out = w;
	return 0;
}

int reg_blob_writer_reset(reg_blob_writer *w, cm_error *err)
{
	int rc = wr_drain(w, err);
	if (rc < 0)
		return cm_error_wrap(err, "%s", w->tmp);
	if (ftruncate(w->fd, 0) < 0)
		return cm_error_sys(err, errno, "truncating %s", w->tmp);
	reg_hasher_reset(w->h);
	w->size = w->off = 0;
	w->used = 0;
	if (!w->align)
		w->dio_tried = 0;
	if (w->tee)
		w->tee->failed = 1; /* the bundle copies this blob from the store */
	return 0;
}

void reg_blob_writer_set_tee(reg_blob_writer *w, reg_tee *t)
{
	if (!t || w->size || w->tee)
		return;
	if (t->fd_direct >= 0 && (!t->align || t->off % t->align))
		return;
	t->done = t->failed = 0;
	t->tail_len = 0;
	w->tee = t;
}

int reg_tee_finish(reg_tee *t, cm_error *err)
{
	if (!t->done || !t->tail_len)
		return 0;
	return cm_pwrite_all(t->fd_plain, t->tail, t->tail_len, t->tail_off, err);
}

void reg_blob_writer_keep(reg_blob_writer *w)
{
	if (!w)
		return;
	if (!w->resumable) {
		reg_blob_writer_abort(w);
		return;
	}
	/* what is buffered is kept too; should that fail, the next run hashes
	 * whatever reached the file and resumes from there */
	cm_error e;
	wr_flush(w, &e);
	wr_free(w);
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
