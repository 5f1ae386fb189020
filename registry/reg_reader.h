/* The digesting reader: the one place the copy pipeline checks a blob.
 *
 * A source hands out a reg_reader for a blob (reg_source.h); a destination
 * reads it to its end (reg_dest.h). The reader checks the bytes against the
 * descriptor the manifest gave (digest and size):
 *   - the read that would hand out the last bytes fails with CM_EVERIFY
 *     instead when the whole does not hash to the digest, or when the
 *     stream has more bytes than the size (it is probed for one more);
 *   - a stream that ends before the size is CM_EVERIFY too ("ended after
 *     N of M bytes");
 *   - a destination therefore commits only after a read returned 0 bytes
 *     with no error: it never holds a whole bad blob.
 * A stream that verifies itself in the same way (the bundle reader's
 * hashing cursor, reg_bidx.h) is wrapped with REG_READER_SELF_VERIFIED:
 * the reader then checks the size only and does not hash twice. */
#ifndef REG_READER_H
#define REG_READER_H

#include <stddef.h>
#include <stdint.h>

#include "cm_error.h"
#include "reg_manifest.h"

/* The raw stream under a reader. read: up to n bytes, *got 0 at its end.
 * rewind (may be NULL): back to the first byte, for a destination that
 * must send the blob again (a fallback, a retried upload). */
typedef struct reg_stream_ops {
	int (*read)(void *ctx, void *buf, size_t n, size_t *got, cm_error *err);
	int (*rewind)(void *ctx, cm_error *err);
	void (*close)(void *ctx); /* frees ctx; may be NULL */
} reg_stream_ops;

enum { REG_READER_SELF_VERIFIED = 1 };

typedef struct reg_reader reg_reader;

/* A reader of blob d over (ops, ctx); it owns ctx from here on, also when
 * it fails. */
int reg_reader_new(reg_reader **out, const reg_desc *d, const reg_stream_ops *ops, void *ctx,
		   int flags, cm_error *err);
/* A reader over an open file descriptor (taken: closed by the reader),
 * positioned at the blob's first byte; limit bounds what is read from it
 * (UINT64_MAX for a whole file: extra bytes are then caught). */
int reg_reader_fd(reg_reader **out, const reg_desc *d, int fd, uint64_t limit, cm_error *err);
/* Read up to n bytes; *got 0 at the end, which means every check passed. */
int reg_reader_read(reg_reader *r, void *buf, size_t n, size_t *got, cm_error *err);
/* Start again from the first byte (hashing again). CM_EINVAL when the
 * stream cannot. */
int reg_reader_rewind(reg_reader *r, cm_error *err);
/* Read the rest, handing each piece to sink (a destination's writer);
 * sink's error stops it. */
int reg_reader_pump(reg_reader *r, int (*sink)(void *ctx, const void *p, size_t n, cm_error *err),
		    void *ctx, cm_error *err);
/* Read the rest into fd (a destination's temp file). */
int reg_reader_to_fd(reg_reader *r, int fd, cm_error *err);
const reg_desc *reg_reader_desc(const reg_reader *r);
/* NULL is a no-op. */
void reg_reader_free(reg_reader *r);

#endif
