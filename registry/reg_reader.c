/* The digesting reader (see reg_reader.h). */
#include "reg_reader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cm_file.h"

#define CHUNK ((size_t)1 << 20)

struct reg_reader {
	reg_desc d;
	const reg_stream_ops *ops;
	void *ctx;
	reg_hasher *h; /* NULL: the stream verifies itself */
	uint64_t pos;
	int done; /* every check passed */
};

/* A CM_EVERIFY naming the blob (message and digest field). */
static int blob_err(const reg_reader *r, cm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int blob_err(const reg_reader *r, cm_error *err, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	cm_error_set(err, CM_EVERIFY, "blob %s: %s", r->d.digest.s, why);
	cm_error_set_digest(err, r->d.digest.s);
	return CM_EVERIFY;
}

int reg_reader_new(reg_reader **out, const reg_desc *d, const reg_stream_ops *ops, void *ctx,
		   int flags, cm_error *err)
{
	*out = NULL;
	reg_reader *r = calloc(1, sizeof(*r));
	int rc = r ? 0 : cm_error_set(err, CM_ENOMEM, "out of memory");
	if (rc == 0 && !(flags & REG_READER_SELF_VERIFIED))
		rc = reg_hasher_new(&r->h, err);
	if (rc < 0) {
		if (ops->close)
			ops->close(ctx);
		free(r);
		return rc;
	}
	r->d = *d;
	r->ops = ops;
	r->ctx = ctx;
	*out = r;
	return 0;
}

/* At the size: the stream must end there and the whole must match. */
static int finish(reg_reader *r, cm_error *err)
{
	char extra;
	size_t k = 0;
	int rc = r->ops->read(r->ctx, &extra, 1, &k, err);
	if (rc < 0)
		return cm_error_wrap(err, "blob %s", r->d.digest.s);
	if (k)
		return blob_err(r, err,
				"the source has more than the %llu bytes the manifest gives",
				(unsigned long long)r->d.size);
	if (r->h) {
		reg_digest got;
		reg_hasher_final(r->h, &got);
		if (!reg_digest_equal(&got, &r->d.digest))
			return blob_err(r, err, "the bytes hash to %s", got.s);
	}
	r->done = 1;
	return 0;
}

int reg_reader_read(reg_reader *r, void *buf, size_t n, size_t *got, cm_error *err)
{
	*got = 0;
	if (r->pos == r->d.size)
		return r->done ? 0 : finish(r, err);
	if (n > r->d.size - r->pos)
		n = (size_t)(r->d.size - r->pos);
	size_t k = 0;
	int rc = r->ops->read(r->ctx, buf, n, &k, err);
	if (rc < 0)
		return cm_error_wrap(err, "blob %s", r->d.digest.s);
	if (k == 0)
		return blob_err(r, err, "the source ended after %llu of %llu bytes",
				(unsigned long long)r->pos, (unsigned long long)r->d.size);
	if (r->h)
		reg_hasher_update(r->h, buf, k);
	/* the last bytes go out only when everything matched */
	if (r->pos + k == r->d.size && (rc = finish(r, err)) < 0)
		return rc;
	r->pos += k;
	*got = k;
	return 0;
}

int reg_reader_rewind(reg_reader *r, cm_error *err)
{
	if (!r->ops->rewind)
		return cm_error_set(err, CM_EINVAL, "blob %s: its source cannot send it again",
				    r->d.digest.s);
	int rc = r->ops->rewind(r->ctx, err);
	if (rc < 0)
		return rc;
	if (r->h)
		reg_hasher_reset(r->h);
	r->pos = 0;
	r->done = 0;
	return 0;
}

int reg_reader_pump(reg_reader *r, int (*sink)(void *ctx, const void *p, size_t n, cm_error *err),
		    void *ctx, cm_error *err)
{
	char *buf = malloc(CHUNK);
	int rc = buf ? 0 : cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t got = 1; rc == 0 && got;)
		if ((rc = reg_reader_read(r, buf, CHUNK, &got, err)) == 0 && got)
			rc = sink(ctx, buf, got, err);
	free(buf);
	return rc;
}

static int fd_sink(void *ctx, const void *p, size_t n, cm_error *err)
{
	return cm_write_all(*(int *)ctx, p, n, err);
}

int reg_reader_to_fd(reg_reader *r, int fd, cm_error *err)
{
	return reg_reader_pump(r, fd_sink, &fd, err);
}

const reg_desc *reg_reader_desc(const reg_reader *r)
{
	return &r->d;
}

void reg_reader_free(reg_reader *r)
{
	if (!r)
		return;
	if (r->ops->close)
		r->ops->close(r->ctx);
	reg_hasher_free(r->h);
	free(r);
}

/* ---- a file descriptor as a stream ---- */

typedef struct fd_stream {
	int fd;
	off_t start;
	uint64_t limit, pos;
} fd_stream;

static int fd_read(void *ctx, void *buf, size_t n, size_t *got, cm_error *err)
{
	fd_stream *s = ctx;
	*got = 0;
	if (n > s->limit - s->pos)
		n = (size_t)(s->limit - s->pos);
	if (n == 0)
		return 0;
	ssize_t k;
	while ((k = read(s->fd, buf, n)) < 0 && errno == EINTR)
		;
	if (k < 0)
		return cm_error_sys(err, errno, "reading");
	s->pos += (uint64_t)k;
	*got = (size_t)k;
	return 0;
}

static int fd_rewind(void *ctx, cm_error *err)
{
	fd_stream *s = ctx;
	if (lseek(s->fd, s->start, SEEK_SET) < 0)
		return cm_error_sys(err, errno, "seeking back");
	s->pos = 0;
	return 0;
}

static void fd_close(void *ctx)
{
	fd_stream *s = ctx;
	close(s->fd);
	free(s);
}

static const reg_stream_ops fd_ops = {fd_read, fd_rewind, fd_close};

int reg_reader_fd(reg_reader **out, const reg_desc *d, int fd, uint64_t limit, cm_error *err)
{
	fd_stream *s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	s->fd = fd;
	s->start = lseek(fd, 0, SEEK_CUR);
	s->limit = limit;
	if (s->start < 0)
		s->start = 0;
	return reg_reader_new(out, d, &fd_ops, s, 0, err);
}
