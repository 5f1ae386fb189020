/* The content-addressed blob store, libgit2-odb style.
 *
 * Layout under root:
 *   blobs/sha256/<hex>   immutable blobs, named by digest
 *   packs/<dev>-<ino>.tar bundles this store keeps because some blobs live
 *                        only inside them (see "Packs" below)
 *   tmp/                 in-flight writes (temp files, fsynced, then renamed)
 *   catalog.db           sqlite catalog (see reg_catalog.h)
 *
 * A folder is the one way blobs are stored here; the copy pipeline writes
 * elsewhere (a bundle, a registry, containerd) through reg_dest.h. */
#ifndef REG_STORE_H
#define REG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "reg_catalog.h"
#include "reg_digest.h"

typedef struct reg_store reg_store;
typedef struct reg_blob_writer reg_blob_writer;
typedef struct reg_tee reg_tee;

/* Open (creating if needed) a store at root. reg_store_free(NULL) is a no-op. */
int reg_store_open(reg_store **out, const char *root, cm_error *err);
void reg_store_free(reg_store *s);
const char *reg_store_root(const reg_store *s);

/* 1 if the blob is present, as a file or in a pack (out_size filled), 0
 * if not. */
int reg_store_has(reg_store *s, const reg_digest *d, uint64_t *out_size);
/* 1 if the blob is present as a file of its own (blobs/sha256/<hex>). */
int reg_store_has_file(reg_store *s, const reg_digest *d, uint64_t *out_size);
/* Path of a blob file inside the store (whether or not it exists). */
int reg_store_blob_path(char *out, size_t n, const reg_store *s, const reg_digest *d);
/* Open a blob for reading, from its file or its pack: *out_fd (the
 * caller closes it) is positioned at the first byte, and the *out_size
 * bytes from there are the blob (more may follow in a pack). A file is
 * opened with O_DIRECT when direct is set and the filesystem takes it. */
int reg_store_open_blob(int *out_fd, uint64_t *out_size, reg_store *s, const reg_digest *d,
			int direct, cm_error *err);

/* Start writing a blob. When expected is non-NULL the commit fails with
 * CM_EVERIFY unless the bytes hash to it. The writer owns a unique temp
 * file, so concurrent writers of one blob are safe: the last rename wins
 * and the content is the same. */
int reg_blob_writer_new(reg_blob_writer **out, reg_store *s, const reg_digest *expected,
			cm_error *err);
int reg_blob_writer_write(reg_blob_writer *w, const void *p, size_t n, cm_error *err);
/* reg_blob_writer_write as a sink (cm_read_each, reg_reader_pump): w is the
 * writer. */
int reg_blob_writer_sink(void *w, const void *p, size_t n, cm_error *err);
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
 * on in the same run or the next one. Bytes already there are hashed
 * again from the start, so the digest check on commit covers all of them.
 * The file is locked (flock) while open; when another process holds it the
 * writer falls back to a private temp file. reg_blob_writer_size() tells
 * how many bytes are already there. tee (NULL for none) is a second
 * destination, see reg_tee below. */
int reg_blob_writer_resume(reg_blob_writer **out, reg_store *s, const reg_digest *expected,
			   reg_tee *tee, cm_error *err);
/* Throw away the bytes written so far (the server ignored a Range). */
int reg_blob_writer_reset(reg_blob_writer *w, cm_error *err);
/* Close a writer, keeping a resumable temp file for later; other writers
 * are aborted. NULL is a no-op. */
void reg_blob_writer_keep(reg_blob_writer *w);

/* A second destination for a blob's bytes: while a writer streams the
 * blob into the store, every byte also goes to [off, off + size) of
 * another file (the bundle being built), with direct writes through
 * fd_direct (alignment align) or, when fd_direct is -1, plain writes
 * through fd_plain. done is set when the writer commits with the digest
 * checked and every byte teed; failed when teeing went wrong (the caller
 * then copies the blob from the store). An unaligned tail is held in
 * tail until reg_tee_finish, so that no plain write lands next to direct
 * writes still running. The caller owns t and the fds.
 *
 * Packed tees: when path names the file (absolute) and the blob is at
 * least REG_PACK_MIN bytes, a resumable writer writes the bytes to the
 * tee only, and none to the store (packed is set). Its tmp/<hex>.partial
 * then only counts the bytes safely in the tee (its size; the file is
 * sparse) and tmp/<hex>.where names the file and offset, so that a run
 * killed midway resumes from them. Once the file is complete and renamed,
 * reg_store_pack_add makes it a pack. A failing packed tee fails the
 * writer. A writer that starts with bytes in a plain .partial takes no
 * tee. */
#define REG_PACK_MIN (2u << 20)
struct reg_tee {
	int fd_direct, fd_plain;
	size_t align;
	uint64_t off, size;
	const char *path; /* the file fd_plain writes, or NULL: never packed */
	int done, failed, packed;
	unsigned char tail[4096];
	size_t tail_len;
	uint64_t tail_off;
};
/* Give a writer that has written nothing a tee (resumable writers take
 * theirs in reg_blob_writer_resume). */
void reg_blob_writer_set_tee(reg_blob_writer *w, reg_tee *t);
/* Once no writer runs: write the held tail of a done tee. */
int reg_tee_finish(reg_tee *t, cm_error *err);

/* Packs. A finished bundle whose packed tees hold blobs the store has
 * nowhere else: hard-link it as packs/<dev>-<ino>.tar, record where each
 * blob is (v: digests, offsets and sizes of the packed blobs) and drop
 * their resume files. When the packed blobs fill less than half of the
 * bundle, or the link cannot be made (another filesystem), they are
 * copied out into blob files instead, so the store never keeps much more
 * than it needs. Packs whose every blob another pack holds are dropped.
 * Blobs read from a pack are checked like files: readers re-hash. */
int reg_store_pack_add(reg_store *s, const char *bundle, const reg_catalog_pack_blob *v, size_t n,
		       cm_error *err);
/* 1 when the file open at fd could become a pack (the same filesystem as
 * the store, so a hard link can be made). A bundle written elsewhere (say
 * onto removable media) should not pack its tees: its blobs would have to
 * be read back from there and copied into the store afterwards. */
int reg_store_can_pack(const reg_store *s, int fd);

/* Store a whole buffer. */
int reg_store_put(reg_digest *out, reg_store *s, const void *p, size_t n, cm_error *err);
/* Read a blob (refusing more than limit bytes) and check its digest. */
int reg_store_read(cm_buf *out, reg_store *s, const reg_digest *d, size_t limit, cm_error *err);

/* Catalog handle of the store (sqlite3 *); owned by the store. */
void *reg_store_db(reg_store *s);

#endif
