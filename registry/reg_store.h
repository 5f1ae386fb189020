/* The content-addressed blob store, libgit2-odb style.
 *
 * Layout under root:
 *   blobs/sha256/<hex>   immutable blobs, named by digest
 *   tmp/                 in-flight writes (temp files, fsynced, then renamed)
 *   catalog.db           sqlite catalog (see reg_catalog.h)
 *
 * Blobs go through a small backend table so that the same copy pipeline
 * can write into a folder today and elsewhere later. */
#ifndef REG_STORE_H
#define REG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "reg_digest.h"

typedef struct reg_store reg_store;
typedef struct reg_blob_writer reg_blob_writer;

/* Open (creating if needed) a store at root. reg_store_free(NULL) is a no-op. */
int reg_store_open(reg_store **out, const char *root, cm_error *err);
void reg_store_free(reg_store *s);
const char *reg_store_root(const reg_store *s);

/* 1 if the blob is present (out_size filled), 0 if not. */
int reg_store_has(reg_store *s, const reg_digest *d, uint64_t *out_size);
/* Path of a blob inside the store (whether or not it exists). */
int reg_store_blob_path(char *out, size_t n, const reg_store *s, const reg_digest *d);

/* Start writing a blob. When expected is non-NULL the commit fails with
 * CM_EVERIFY unless the bytes hash to it. The writer owns a unique temp
 * file, so concurrent writers of one blob are safe: the last rename wins
 * and the content is the same. */
int reg_blob_writer_new(reg_blob_writer **out, reg_store *s, const reg_digest *expected,
			cm_error *err);
int reg_blob_writer_write(reg_blob_writer *w, const void *p, size_t n, cm_error *err);
/* Stream a whole file into w (the pipeline checks the digest on commit). */
int reg_blob_writer_write_file(reg_blob_writer *w, const char *path, cm_error *err);
/* Bytes written so far. */
uint64_t reg_blob_writer_size(const reg_blob_writer *w);
/* Hash check, fsync, rename into place. Always frees w. On mismatch nothing
 * is left behind. out_digest/out_size may be NULL. */
int reg_blob_writer_commit(reg_digest *out_digest, uint64_t *out_size, reg_blob_writer *w,
			   cm_error *err);
/* Drop the temp file and free w. NULL is a no-op. */
void reg_blob_writer_abort(reg_blob_writer *w);

/* Resumable writers (registry downloads). The temp file has a stable name,
 * tmp/<hex>.partial, so that a download cut short (even by SIGKILL) can go
 * on in the same run or the next one. Bytes already in the file are hashed
 * again from the start, so the digest check on commit covers all of them.
 * The file is locked (flock) while open; when another process holds it the
 * writer falls back to a private temp file. reg_blob_writer_size() tells
 * how many bytes are already there. */
int reg_blob_writer_resume(reg_blob_writer **out, reg_store *s, const reg_digest *expected,
			   cm_error *err);
/* Throw away the bytes written so far (the server ignored a Range). */
int reg_blob_writer_reset(reg_blob_writer *w, cm_error *err);
/* Close a writer, keeping a resumable temp file for later; other writers
 * are aborted. NULL is a no-op. */
void reg_blob_writer_keep(reg_blob_writer *w);

/* A second destination for a blob's bytes: while a writer streams the
 * blob into the store, every byte also goes to [off, off + size) of
 * another file (the bundle being built), with direct writes through
 * fd_direct (alignment align) or, when fd_direct is -1, plain writes
 * through fd_plain. Only a writer that starts empty takes a tee (a resumed
 * download does not). done is set when the writer commits with the digest
 * checked and every byte teed; failed when teeing went wrong (the caller
 * then copies the blob from the store). An unaligned tail is held in
 * tail until reg_tee_finish, so that no plain write lands next to direct
 * writes still running. The caller owns t and the fds. */
typedef struct reg_tee {
	int fd_direct, fd_plain;
	size_t align;
	uint64_t off, size;
	int done, failed;
	unsigned char tail[4096];
	size_t tail_len;
	uint64_t tail_off;
} reg_tee;
void reg_blob_writer_set_tee(reg_blob_writer *w, reg_tee *t);
/* Once no writer runs: write the held tail of a done tee. */
int reg_tee_finish(reg_tee *t, cm_error *err);

/* Store a whole buffer. */
int reg_store_put(reg_digest *out, reg_store *s, const void *p, size_t n, cm_error *err);
/* Read a blob (refusing more than limit bytes) and check its digest. */
int reg_store_read(cm_buf *out, reg_store *s, const reg_digest *d, size_t limit, cm_error *err);

/* Catalog handle of the store (sqlite3 *); owned by the store. */
void *reg_store_db(reg_store *s);

#endif
