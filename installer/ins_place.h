/* Placing blobs straight into a local containerd's content store.
 *
 * `ctr content ingest` moves every byte through one gRPC stream and the
 * daemon's Go SHA-256 (about 200 MB/s per stream here). When ferry runs on
 * the node itself and can write the content plugin's root (from `ctr
 * plugins ls -d`), it writes each blob as containerd's local store does:
 * `<root>/blobs/sha256/<hex>`, mode 0444, fsynced, renamed into place. The
 * digest is checked while copying, so what lands there was checked by the
 * copy itself, not only by the verify pass before it.
 *
 * The blob is not in any namespace yet. `ctr content ingest
 * --expected-digest` then records it: under containerd's default "shared"
 * content policy the daemon sees the blob in its store and commits it
 * without reading a byte. Its stdin is an empty regular file, so when the
 * daemon does not take the placed blob (another root, the "isolated"
 * policy, the garbage collector took it first) the ingest fails on size and
 * the caller streams the blob instead, after removing what it placed. */
#ifndef INS_PLACE_H
#define INS_PLACE_H

#include <limits.h>
#include <stddef.h>

#include "cm_error.h"
#include "ins_ctx.h"
#include "ins_runner.h"
#include "reg_dest.h"

typedef struct ins_place {
	char root[PATH_MAX];  /* the content root; "" when placing is off */
	char tmp[PATH_MAX];   /* <root>/ferry-place.<pid>: temps and the empty file */
	char empty[PATH_MAX]; /* an empty regular file: ctr's stdin */
} ins_place;

/* What load mode reads from `ctr plugins ls -d` (one query per node). */
typedef struct ins_plugins {
	char content_root[PATH_MAX]; /* root of io.containerd.content.v1 content; "" */
	char policy[64];	     /* the bolt metadata plugin's policy; "" when not shown */
	int overlayfs_ok, native_ok; /* snapshotters that loaded without an Error */
} ins_plugins;

/* Parse the text of `ctr plugins ls -d` (text is modified). */
void ins_plugins_parse(ins_plugins *out, char *text);

/* 1 when blobs can be placed in the store p names (a content root, and
 * the "shared" policy or none shown); else 0 with why (size why_n). */
int ins_place_usable(char *why, size_t why_n, const ins_plugins *p);

/* Prepare p for root: its private temp folder and empty file. */
int ins_place_open(ins_place *p, const char *root, cm_error *err);

/* Write n bytes from data, named sha256:hex. *placed is 1 when this wrote
 * the blob, 0 when the store held it already (same size). */
int ins_place_bytes(int *placed, const ins_place *p, const char *hex, const void *data, size_t n,
		    cm_error *err);

/* Write the blob r reads (to its end: its last read checks the digest
 * and the size) under its digest. *placed as above. On any error no file
 * is left, neither the blob nor its temp. */
int ins_place_reader(int *placed, const ins_place *p, reg_reader *r, cm_error *err);

/* Remove a blob this placed and the daemon did not take. */
void ins_place_unlink(const ins_place *p, const char *hex);

/* Remove the temp folder; p is off afterwards. NULL is a no-op. */
void ins_place_close(ins_place *p);

/* ---- the node's content store as a destination of the copy pipeline ---- */

/* How blobs reach the daemon. run: `ctr content ingest` of sha256:hex
 * (size bytes) under ref (NULL: "ferry-<hex>"), stdin from io, its stdin
 * shown as say; note: a progress line (may be NULL). In dry-run nothing is
 * placed and run only says what it would do. */
typedef struct ins_ingest {
	int (*run)(void *ctx, const char *hex, uint64_t size, const char *ref, ins_proc_io *io,
		   const char *say, cm_error *err);
	void (*note)(void *ctx, const char *msg);
	void *ctx;
	const ins_ctx *c; /* whether this run acts (--dry-run), its wording */
} ins_ingest;

/* Place a blob (from r, or the n bytes at data named hex when r is NULL)
 * and have the daemon record it by an ingest reading p->empty under ref:
 * 1 when it did; 0 when it did not (what was placed is removed: stream the
 * blob under the same ref, which also ends the ingest this left open);
 * < 0 on an error (CM_EVERIFY: the bytes were bad, nothing was placed). */
int ins_place_ingest(const ins_place *p, const ins_ingest *ing, reg_reader *r, const char *hex,
		     const char *ref, const void *data, size_t n, cm_error *err);

/* A reg_dest over the content store: each blob is placed and recorded
 * (when p is on) or streamed through ing->run, jobs at once. p and ing
 * stay the caller's. */
int ins_ctr_dest_open(reg_dest **out, const ins_place *p, const ins_ingest *ing, unsigned jobs,
		      cm_error *err);
/* How many blobs it placed (rather than streamed). */
size_t ins_ctr_dest_placed(const reg_dest *d);

/* Make a pipe a child reads large: fewer wake-ups (best effort). */
void ins_pipe_big(int fd);

#endif
