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
#include "ins_install_bundle.h"

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

/* Copy member m of bundle b, checking its digest on the way. */
int ins_place_member(int *placed, const ins_place *p, const ins_bundle *b, const ins_member *m,
		     cm_error *err);

/* Remove a blob this placed and the daemon did not take. */
void ins_place_unlink(const ins_place *p, const char *hex);

/* Remove the temp folder; p is off afterwards. NULL is a no-op. */
void ins_place_close(ins_place *p);

#endif
