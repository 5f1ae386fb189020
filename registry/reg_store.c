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
#include "reg_reader.h"

/* Writer buffers are kept for the next writer: fresh memory costs a page
 * fault per page, and a build opens a writer per blob. */
#define POOL_MAX 24

struct reg_store {
	char root[PATH_MAX];
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
	int resumable;	      /* tmp is tmp/<hex>.partial, locked by fd */
	size_t align;	      /* O_DIRECT is on for fd with this alignment; 0: off */
	int dio_tried;	      /* O_DIRECT is tried at the first full buffer only, so
			       * that small blobs cost no extra system calls */
	reg_tee *tee;	      /* a second destination, or NULL */
	int packed;	      /* bytes go to the tee only; tmp counts them (reg_store.h) */
	uint64_t marked;      /* what tmp's size says is safely in the tee */
	char where[PATH_MAX]; /* tmp/<hex>.where: the tee's file and offset */
	uint64_t off;	      /* file offset of bufs[fill][0] */
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

int reg_store_has_file(reg_store *s, const reg_digest *d, uint64_t *out_size)
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

int reg_store_open(reg_store **out, const char *root, cm_error *err)
{
	reg_store *s = calloc(1, sizeof(*s));
	if (!s)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
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
	snprintf(p, sizeof(p), "%s/packs", root);
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

static uint64_t st_mtime_ns(const struct stat *st)
{
	return (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
}

/* CM_EINVAL when the path does not fit (the caller treats the pack as absent). */
static int pack_path(char *out, size_t n, const reg_store *s, const char *name)
{
	int len = snprintf(out, n, "%s/packs/%s", s->root, name);
	return (len < 0 || (size_t)len >= n) ? CM_EINVAL : 0;
}

/* Forget a pack that changed or went away (its blobs are fetched again). */
static void pack_drop(reg_store *s, const char *name)
{
	char p[PATH_MAX];
	cm_error e;
	if (pack_path(p, sizeof(p), s, name) == 0)
		unlink(p);
	reg_catalog_pack_drop(s->db, name, &e);
}

/* The pack file is as recorded. */
static int pack_same(const struct stat *st, const reg_catalog_pack_loc *l)
{
	return (uint64_t)st->st_size == l->pack_size && st_mtime_ns(st) == l->pack_mtime_ns;
}

/* Forget every pack whose file changed or went away, so that none of them
 * is taken for holding a blob when another pack is judged redundant. */
static void packs_check(reg_store *s)
{
	enum { MAX = 1024 }; /* a pack is a whole bundle: far fewer than this */
	reg_catalog_pack_loc *v = malloc(MAX * sizeof(*v));
	int n = v ? reg_catalog_pack_list(v, MAX, s->db) : 0;
	for (int i = 0; i < n; i++) {
		char p[PATH_MAX];
		struct stat st;
		if (pack_path(p, sizeof(p), s, v[i].name) < 0 || stat(p, &st) < 0 ||
		    !pack_same(&st, &v[i]))
			pack_drop(s, v[i].name);
	}
	free(v);
}

/* Open the first pack that holds d and is as recorded: fd at the blob's
 * first byte (or -1 with out_fd NULL: only look). 1 found, 0 not. */
static int pack_open(int *out_fd, uint64_t *out_size, reg_store *s, const reg_digest *d)
{
	reg_catalog_pack_loc locs[8];
	int n = reg_catalog_pack_find(locs, 8, s->db, d->s);
	for (int i = 0; i < n; i++) {
		const reg_catalog_pack_loc *l = &locs[i];
		char p[PATH_MAX];
		struct stat st;
		if (pack_path(p, sizeof(p), s, l->name) < 0)
			continue;
		/* only looking: a stat, not an open */
		int fd = out_fd ? open(p, O_RDONLY | O_CLOEXEC) : -1;
		int ok = out_fd ? fd >= 0 && fstat(fd, &st) == 0 : stat(p, &st) == 0;
		if (ok && pack_same(&st, l) && l->off + l->size <= l->pack_size &&
		    (!out_fd || lseek(fd, (off_t)l->off, SEEK_SET) == (off_t)l->off)) {
			if (out_size)
				*out_size = l->size;
			if (out_fd)
				*out_fd = fd;
			return 1;
		}
		if (fd >= 0)
			close(fd);
		pack_drop(s, l->name);
	}
	return 0;
}

int reg_store_has(reg_store *s, const reg_digest *d, uint64_t *out_size)
{
	return reg_store_has_file(s, d, out_size) || pack_open(NULL, out_size, s, d);
}

int reg_store_open_blob(int *out_fd, uint64_t *out_size, reg_store *s, const reg_digest *d,
			int direct, cm_error *err)
{
	char p[PATH_MAX];
	struct stat st;
	if (reg_store_blob_path(p, sizeof(p), s, d) < 0)
		return cm_error_set(err, CM_EINVAL, "store path too long for blob %s", d->s);
	int fd = direct ? cm_dio_open_read(p) : open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (fstat(fd, &st) < 0) {
			close(fd);
			return cm_error_sys(err, errno, "stat %s", p);
		}
		*out_fd = fd;
		*out_size = (uint64_t)st.st_size;
		return 0;
	}
	int e = errno;
	if (e == ENOENT && pack_open(out_fd, out_size, s, d))
		return 0;
	return cm_error_sys(err, e, "blob %s is not in the store (%s)", d->s, p);
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
 * reg_tee_finish. Any trouble marks the tee failed: the bundle then
 * copies the blob from the store afterwards, or, for a packed tee, the
 * writer fails. */
static int tee_put(reg_blob_writer *w, const char *b, size_t n, uint64_t boff, int final,
		   cm_error *err)
{
	reg_tee *t = w->tee;
	if (!t || t->failed || !n)
		return t && t->failed ? cm_error_set(err, CM_EIO, "an earlier write failed") : 0;
	int rc = 0;
	size_t head = t->fd_direct < 0 ? n : n - n % t->align;
	if (boff + n > t->size)
		rc = cm_error_set(err, CM_EIO, "more bytes than the %llu expected",
				  (unsigned long long)t->size);
	else if (head && cm_pwrite_all(t->fd_direct < 0 ? t->fd_plain : t->fd_direct, b, head,
				       t->off + boff, err) < 0)
		rc = CM_EIO;
	else if (n > head) {
		if (!final || n - head > sizeof(t->tail)) {
			rc = cm_error_set(err, CM_EIO, "an unaligned write inside the blob");
		} else {
			memcpy(t->tail, b + head, n - head);
			t->tail_len = n - head;
			t->tail_off = t->off + boff + head;
		}
	}
	if (rc < 0) {
		t->failed = 1;
		cm_error_wrap(err, "writing into %s", t->path ? t->path : "the bundle");
	}
	return rc;
}

/* Hash a buffer and write it to the cache file, and to the tee when no
 * tee thread does. */
static int wr_put(reg_blob_writer *w, const char *b, size_t n, uint64_t off, int final,
		  int with_tee, cm_error *err)
{
	if (!w->packed && !w->dio_tried && n == WBUF) {
		w->dio_tried = 1;
		w->align = cm_dio_start(w->fd, off);
	}
	reg_hasher_update(w->h, b, n);
	int rc = w->packed ? 0 : cm_dio_pwrite(w->fd, &w->align, b, n, off, err);
	if (rc == 0 && with_tee) {
		cm_error e;
		if (tee_put(w, b, n, off, final, &e) < 0 && w->packed) {
			*err = e;
			rc = e.code;
		}
	}
	return rc;
}

/* A packed writer's progress: tmp's size (a sparse file) is the bytes
 * safely in the tee, so that a killed run resumes from there. Called once
 * every byte before end is written (by the thread that finished last). */
static void wr_mark_at(reg_blob_writer *w, uint64_t end)
{
	if (w->packed && end != w->marked && ftruncate(w->fd, (off_t)end) == 0)
		w->marked = end;
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
		if (tee) {
			if (tee_put(w, b, n, off, 0, &e) < 0 && w->packed)
				rc = e.code;
		} else if (!failed)
			rc = wr_put(w, b, n, off, 0, !w->tee_started, &e);
		pthread_mutex_lock(&w->mu);
		if (rc < 0 && !w->failed) {
			w->failed = 1;
			w->werr = e;
		}
		*flag = 0;
		if (!w->pending && !w->tpending && !w->failed)
			wr_mark_at(w, w->poff + w->plen);
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
		wr_mark_at(w, w->off);
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
		rc = fs_tmp_open(s, &w->fd, w->tmp, sizeof(w->tmp), err);
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

int reg_blob_writer_sink(void *w, const void *p, size_t n, cm_error *err)
{
	return reg_blob_writer_write(w, p, n, err);
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
	/* after the .partial: a .partial without a .where must be plain data */
	if (w->packed)
		unlink(w->where);
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
	if (w->packed) {
		/* the bytes are in the tee's file only; the resume files stay
		 * until reg_store_pack_add adopts that file */
		w->tee->done = 1;
	} else {
		int fd = w->fd;
		w->fd = -1;
		rc = fs_commit(w->s, fd, w->tmp, &got, err);
		if (rc == 0 && w->tee && !w->tee->failed && w->size == w->tee->size)
			w->tee->done = 1;
	}
	if (rc == 0) {
		if (out_digest)
			*out_digest = got;
		if (out_size)
			*out_size = w->size;
	}
	wr_free(w);
	return rc;
}

/* A resumable download's files: tmp/<hex>.partial (its bytes, or how many
 * of them are safely in the tee's file) and tmp/<hex>.where. Both out are
 * PATH_MAX; -1 when a path would not fit. */
static int resume_paths(char *partial, char *where, const reg_store *s, const char *hex)
{
	int a = snprintf(partial, PATH_MAX, "%s/tmp/%s.partial", s->root, hex);
	int b = snprintf(where, PATH_MAX, "%s/tmp/%s.where", s->root, hex);
	return a < 0 || a >= PATH_MAX || b < 0 || b >= PATH_MAX ? -1 : 0;
}

/* tmp/<hex>.where: the file (and offset) a packed writer's bytes go to. */
typedef struct where_rec {
	uint64_t dev, ino, off, size;
	char path[PATH_MAX];
} where_rec;

static int where_write(const reg_blob_writer *w, const reg_tee *t, cm_error *err)
{
	struct stat st;
	if (fstat(t->fd_plain, &st) < 0)
		return cm_error_sys(err, errno, "stat %s", t->path);
	char buf[PATH_MAX + 128];
	int n = snprintf(buf, sizeof(buf), "ferry-where 1\n%llu %llu %llu %llu\n%s\n",
			 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
			 (unsigned long long)t->off, (unsigned long long)t->size, t->path);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return cm_error_set(err, CM_EINVAL, "path too long: %s", t->path);
	return cm_file_write_atomic(w->where, buf, (size_t)n, 0644, err);
}

/* 1 when path holds a well-formed record (it is ours, but checked). */
static int where_read(where_rec *out, const char *path)
{
	cm_buf b = CM_BUF_INIT;
	cm_error e;
	if (cm_file_read(&b, path, PATH_MAX + 128, &e) < 0)
		return 0;
	unsigned long long dev, ino, off, size;
	int pos = 0, ok = 0;
	if (sscanf(b.data, "ferry-where 1\n%llu %llu %llu %llu\n%n", &dev, &ino, &off, &size,
		   &pos) == 4 &&
	    pos > 0) {
		const char *p = b.data + pos;
		size_t l = strcspn(p, "\n");
		if (p[0] == '/' && l < sizeof(out->path)) {
			memcpy(out->path, p, l);
			out->path[l] = '\0';
			out->dev = dev;
			out->ino = ino;
			out->off = off;
			out->size = size;
			ok = 1;
		}
	}
	cm_buf_free(&b);
	return ok;
}

static int tee_usable(const reg_tee *t)
{
	return t && (t->fd_direct < 0 || (t->align && t->off % t->align == 0));
}

/* 1 when w may write t's blob to t only (reg_store.h, "Packed tees"). */
static int tee_packs(const reg_blob_writer *w, const reg_tee *t)
{
	return w->resumable && tee_usable(t) && t->path && t->path[0] == '/' &&
	       t->size >= REG_PACK_MIN;
}

/* Make t w's tee, with nothing done yet. */
static void tee_take(reg_blob_writer *w, reg_tee *t)
{
	t->done = t->failed = t->packed = 0;
	t->tail_len = 0;
	w->tee = t;
}

/* Give a writer that holds no bytes its tee. A resumable writer of a
 * large enough blob then writes to the tee only (packed): the .where goes
 * down first, while the .partial is still empty. */
void reg_blob_writer_set_tee(reg_blob_writer *w, reg_tee *t)
{
	if (!tee_usable(t) || w->size || w->tee)
		return;
	tee_take(w, t);
	cm_error e;
	if (tee_packs(w, t) && where_write(w, t, &e) == 0)
		w->packed = t->packed = 1;
}

static int pread_full(int fd, char *buf, size_t n, uint64_t off)
{
	while (n) {
		ssize_t k = pread(fd, buf, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		buf += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

/* Copy n bytes of src from src_off into w's first n bytes: into the tee
 * to (which w took) when given, else into w's own file; hashed into w
 * when hash. 0, or -1 on any failure. */
static int copy_in(reg_blob_writer *w, int src, uint64_t src_off, uint64_t n, reg_tee *to, int hash)
{
	char *buf = pool_get(w->s);
	int rc = buf ? 0 : -1;
	cm_error e;
	for (uint64_t done = 0; rc == 0 && done < n;) {
		size_t k = n - done < WBUF ? (size_t)(n - done) : WBUF;
		if (pread_full(src, buf, k, src_off + done) < 0)
			rc = -1;
		else if (to)
			rc = tee_put(w, buf, k, done, done + k == to->size, &e) < 0 ? -1 : 0;
		else
			rc = cm_pwrite_all(w->fd, buf, k, done, &e) < 0 ? -1 : 0;
		if (rc == 0 && hash)
			reg_hasher_update(w->h, buf, k);
		done += k;
	}
	pool_put(w->s, buf);
	return rc;
}

/* The n bytes a packed writer of an earlier run left in the file wr
 * names: hashed into w, and written into t when t can take them (the new
 * bundle; w is packed from then on) or else into w's .partial as plain
 * data. 0 when taken, -1 when they cannot be used (start over). */
static int take_from(reg_blob_writer *w, const where_rec *wr, uint64_t n, reg_tee *t)
{
	int src = open(wr->path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (src < 0)
		return -1;
	if (fstat(src, &st) < 0 || (uint64_t)st.st_dev != wr->dev ||
	    (uint64_t)st.st_ino != wr->ino || n > wr->size || (uint64_t)st.st_size < wr->off + n) {
		close(src);
		return -1;
	}
	int pack = tee_packs(w, t) && t->size == wr->size;
	if (pack)
		tee_take(w, t);
	cm_error e;
	int rc = copy_in(w, src, wr->off, n, pack ? t : NULL, 1);
	close(src);
	/* the new file holds the bytes now: only then may the .where say so */
	if (rc == 0 && pack && where_write(w, t, &e) < 0)
		rc = -1;
	if (rc < 0) {
		reg_hasher_reset(w->h);
		w->tee = NULL;
		return -1;
	}
	w->size = w->off = n;
	if (pack) {
		w->packed = t->packed = 1;
		w->marked = n;
	} else {
		unlink(w->where); /* the .partial holds the bytes itself now */
	}
	return 0;
}

int reg_blob_writer_resume(reg_blob_writer **out, reg_store *s, const reg_digest *expected,
			   reg_tee *tee, cm_error *err)
{
	reg_blob_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	w->s = s;
	w->fd = -1;
	w->has_expected = 1;
	w->expected = *expected;
	int rc = reg_hasher_new(&w->h, err);
	if (rc == 0 && resume_paths(w->tmp, w->where, s, REG_DIGEST_HEX(expected)) < 0)
		rc = cm_error_set(err, CM_EINVAL, "store path too long");
	int fd = rc == 0 ? open(w->tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
	if (rc == 0 && fd < 0)
		rc = cm_error_sys(err, errno, "opening %s", w->tmp);
	if (rc < 0) {
		wr_free(w);
		return rc;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		/* another process is downloading this blob: use a private file */
		close(fd);
		wr_free(w);
		if ((rc = reg_blob_writer_new(out, s, expected, err)) == 0)
			reg_blob_writer_set_tee(*out, tee);
		return rc;
	}
	w->fd = fd;
	w->resumable = 1;
	struct stat st;
	where_rec wr;
	if (fstat(fd, &st) < 0) {
		rc = cm_error_sys(err, errno, "stat %s", w->tmp);
		reg_blob_writer_abort(w);
		return rc;
	}
	if (where_read(&wr, w->where)) {
		/* a packed writer's marker: its bytes are in another file */
		if (st.st_size == 0 || take_from(w, &wr, (uint64_t)st.st_size, tee) < 0) {
			if (ftruncate(fd, 0) < 0) {
				rc = cm_error_sys(err, errno, "truncating %s", w->tmp);
				reg_blob_writer_abort(w);
				return rc;
			}
			unlink(w->where);
		}
	} else if ((rc = cm_read_each(fd, CM_READ_TO_END, reg_hasher_sink, w->h, &w->size, w->tmp,
				      err)) < 0) {
		/* plain data: hashed again */
		reg_blob_writer_abort(w);
		return rc;
	} else {
		w->off = w->size;
	}
	reg_blob_writer_set_tee(w, tee);
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
	w->size = w->off = w->marked = 0;
	w->used = 0;
	if (!w->align)
		w->dio_tried = 0;
	if (w->packed)
		w->tee->tail_len = 0; /* the tee's writes start over in place */
	else if (w->tee)
		w->tee->failed = 1; /* the bundle copies this blob from the store */
	return 0;
}

int reg_tee_finish(reg_tee *t, cm_error *err)
{
	if (!t->done || !t->tail_len)
		return 0;
	return cm_pwrite_all(t->fd_plain, t->tail, t->tail_len, t->tail_off, err);
}

/* A packed writer kept for later (its run failed): the tee's file goes
 * away with the run, so what it safely holds is copied into .partial as
 * plain data, and the .where goes after that. */
static void keep_packed(reg_blob_writer *w)
{
	int src = open(w->tee->path, O_RDONLY | O_CLOEXEC);
	int ok = src >= 0 && copy_in(w, src, w->tee->off, w->marked, NULL, 0) == 0;
	if (src >= 0)
		close(src);
	if (!ok && ftruncate(w->fd, 0) < 0)
		unlink(w->tmp);
	unlink(w->where);
	w->packed = 0;
}

void reg_blob_writer_keep(reg_blob_writer *w)
{
	if (!w)
		return;
	if (!w->resumable) {
		reg_blob_writer_abort(w);
		return;
	}
	cm_error e;
	if (w->packed) {
		/* what is buffered is dropped: the next run asks for it again */
		wr_drain(w, &e);
		keep_packed(w);
		wr_free(w);
		return;
	}
	/* what is buffered is kept too; should that fail, the next run hashes
	 * whatever reached the file and resumes from there */
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

static int buf_sink(void *ctx, const void *p, size_t n, cm_error *err)
{
	return cm_buf_append(ctx, p, n, err);
}

int reg_store_read(cm_buf *out, reg_store *s, const reg_digest *d, size_t limit, cm_error *err)
{
	int fd;
	uint64_t size;
	int rc = reg_store_open_blob(&fd, &size, s, d, 0, err);
	if (rc < 0)
		return rc;
	if (size > limit) {
		close(fd);
		return cm_error_set(err, CM_EINVAL,
				    "store blob %s is %llu bytes, over the %zu limit", d->s,
				    (unsigned long long)size, limit);
	}
	out->len = 0;
	if (out->limit && out->limit < size)
		out->limit = (size_t)size;
	/* through a digesting reader: a corrupt copy is CM_EVERIFY */
	reg_desc desc = {.digest = *d, .size = size};
	reg_reader *r;
	if ((rc = reg_reader_fd(&r, &desc, fd, size, err)) < 0)
		return rc;
	rc = reg_reader_pump(r, buf_sink, out, err);
	reg_reader_free(r);
	if (rc == 0 && !out->data)
		rc = cm_buf_append(out, "", 0, err);
	return rc;
}

/* Copy packed blobs out of a finished bundle into blob files; each
 * writer checks the digest again. */
static int pack_copy_out(reg_store *s, const char *bundle, const reg_catalog_pack_blob *v, size_t n,
			 cm_error *err)
{
	int fd = open(bundle, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "opening %s", bundle);
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		reg_digest d;
		reg_blob_writer *w;
		if ((rc = reg_digest_parse(&d, v[i].digest, err)) < 0 ||
		    reg_store_has_file(s, &d, NULL))
			continue;
		if (lseek(fd, (off_t)v[i].off, SEEK_SET) != (off_t)v[i].off) {
			rc = cm_error_sys(err, errno, "seeking in %s", bundle);
			break;
		}
		if ((rc = reg_blob_writer_new(&w, s, &d, err)) < 0)
			break;
		if ((rc = cm_read_each(fd, v[i].size, reg_blob_writer_sink, w, NULL, bundle, err)) <
		    0)
			reg_blob_writer_abort(w);
		else
			rc = reg_blob_writer_commit(NULL, NULL, w, err);
	}
	close(fd);
	return rc;
}

/* Drop a blob's resume files, unless another process has them open. */
static void drop_resume_files(reg_store *s, const char *digest)
{
	char p[PATH_MAX], q[PATH_MAX];
	const char *hex = strchr(digest, ':');
	if (resume_paths(p, q, s, hex ? hex + 1 : digest) < 0)
		return;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return;
	}
	unlink(p);
	unlink(q);
	if (fd >= 0)
		close(fd);
}

int reg_store_can_pack(const reg_store *s, int fd)
{
	char p[PATH_MAX];
	struct stat a, b;
	return pack_path(p, sizeof(p), s, ".") == 0 && fstat(fd, &a) == 0 && stat(p, &b) == 0 &&
	       a.st_dev == b.st_dev;
}

int reg_store_pack_add(reg_store *s, const char *bundle, const reg_catalog_pack_blob *v, size_t n,
		       cm_error *err)
{
	if (!n)
		return 0;
	struct stat st;
	if (stat(bundle, &st) < 0)
		return cm_error_sys(err, errno, "stat %s", bundle);
	uint64_t packed = 0;
	for (size_t i = 0; i < n; i++)
		packed += v[i].size;
	char name[128], p[PATH_MAX];
	snprintf(name, sizeof(name), "%llu-%llu.tar", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	int rc = -1;
	if (pack_path(p, sizeof(p), s, name) == 0 && packed * 2 >= (uint64_t)st.st_size &&
	    (link(bundle, p) == 0 || errno == EEXIST)) {
		rc = cm_fsync_parent(p, err);
		if (rc == 0)
			rc = reg_catalog_pack_put(s->db, name, (uint64_t)st.st_size,
						  st_mtime_ns(&st), v, n, err);
		if (rc < 0)
			unlink(p);
	}
	if (rc < 0) {
		cm_error_clear(err);
		rc = pack_copy_out(s, bundle, v, n, err);
	} else {
		/* packs that hold nothing of their own any more (among packs
		 * that are still as recorded) */
		char other[128], last[128] = "";
		packs_check(s);
		while (reg_catalog_pack_covered(other, sizeof(other), s->db, name) &&
		       strcmp(other, last) != 0) {
			pack_drop(s, other);
			snprintf(last, sizeof(last), "%s", other);
		}
	}
	if (rc == 0)
		for (size_t i = 0; i < n; i++)
			drop_resume_files(s, v[i].digest);
	return rc < 0 ? cm_error_wrap(err, "keeping the blobs of %s in the cache", bundle) : 0;
}
