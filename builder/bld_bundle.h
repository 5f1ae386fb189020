/* Writing a bundle (docs/bundle-format.md): collect members, list them in
 * SHA256SUMS, sign, and stream one reproducible pax tar to a temp file
 * that is renamed into place only when complete. */
#ifndef BLD_BUNDLE_H
#define BLD_BUNDLE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cm_error.h"
#include "reg_copy.h"
#include "reg_store.h"
#include "sig.h"

struct reg_receipt;

/* A file copied into the bundle as is (manifests/..., models/...). */
typedef struct bld_file {
	char member[1024]; /* path inside the bundle */
	char src[4096];	   /* path on disk */
	char hex[65];	   /* sha256, filled by bld_bundle_write */
	uint64_t size;
} bld_file;

typedef struct bld_bundle_in {
	reg_store *store;
	const reg_image *images;
	size_t n_images;
	bld_file *files; /* hex/size are filled in */
	size_t n_files;
	const char *bundle_json; /* exact bytes of bundle.json */
	const sig_seckey *key;
	time_t mtime; /* every member's mtime */
	/* When non-NULL: the sha256 hex of the SHA256SUMS of an existing output
	 * bundle. If ours is the same, nothing is written (out->reused = 1); if
	 * it differs, nothing is written either, and out->reused = 0 tells the
	 * caller to write it anew (not an error: no code doubles as a signal). */
	const char *reuse_sums;
	/* When non-NULL: 1 when a blob missing from the store will be
	 * downloaded after this call. The bundle is then written with a hole
	 * for it, and out->pending says how to fill it. */
	int (*pending)(void *ud, const reg_digest *d);
	void *pending_ud;
	/* 0: one file at path. Otherwise a volume set: path.000, path.001,
	 * ... of volume_size bytes each (the last may be smaller), whose
	 * concatenation is the single-file bundle, and the sidecar
	 * path.parts. Parts are written in order as the tar streams out (each
	 * to a temp file, fsynced; all renamed once complete); holes (pending)
	 * are not supported with volumes. */
	uint64_t volume_size;
	/* When non-NULL: a delta's base. A config or layer blob it holds
	 * (bld_base_holds) is left out of the bundle (docs/bundle-format.md
	 * "Deltas"). Manifests and indexes are always carried. */
	const struct reg_receipt *base;
} bld_bundle_in;

/* A bundle written but for the holes of blobs still to be downloaded. Its
 * temp file is renamed into place only by bld_bundle_pending_finish. */
typedef struct bld_bundle_pending bld_bundle_pending;

typedef struct bld_bundle_out {
	uint64_t size; /* bytes of the bundle file (all parts of a volume set) */
	uint64_t members;
	uint64_t blobs;
	char sums_hex[65]; /* sha256 of SHA256SUMS: identifies the content */
	int reused;	   /* the existing output already held this content */
	/* Set when some members are holes: hand bld_bundle_pending_tee() to
	 * the downloads, then call bld_bundle_pending_finish (or _abort). */
	bld_bundle_pending *pending;
	size_t parts; /* parts of a volume set; 0 for one file */
} bld_bundle_out;

/* Hash each bld_file (filling hex and size). Done before bundle.json is
 * written so that it can list them. */
int bld_files_hash(bld_file *files, size_t n, cm_error *err);

/* Call visit on d and, for a manifest or index (read from st), on its
 * config, layers and children, depth first; depth is 0 for an image's
 * root. A blob listed twice is visited twice. */
int bld_walk_image(reg_store *st, const reg_desc *d, int depth,
		   int (*visit)(void *ud, const reg_desc *d, cm_error *err), void *ud,
		   cm_error *err);

/* 1 when base (may be NULL) holds d, a config or layer blob, with its
 * size: a delta neither fetches nor carries it. */
int bld_base_holds(const struct reg_receipt *base, const reg_desc *d);

int bld_bundle_write(bld_bundle_out *out, const char *path, const bld_bundle_in *in, cm_error *err);

/* --volume-size: a count of bytes with an optional K, M, G or T (powers of
 * 1024), or "fat32" (4 GiB - 1 byte, the largest file FAT32 holds). At
 * least BLD_VOLUME_MIN. CM_EUSAGE otherwise. */
#define BLD_VOLUME_MIN ((uint64_t)1 << 20)
#define BLD_VOLUME_FAT32 (((uint64_t)4 << 30) - 1)
int bld_volume_size_parse(uint64_t *out, const char *s, cm_error *err);

/* Where the bytes of blob d go (NULL when d is not a hole). The tee lives
 * as long as bp, a bld_bundle_pending (void: this is bld_pull_fetch's
 * tee_for). */
reg_tee *bld_bundle_pending_tee(void *bp, const reg_digest *d);
/* After the downloads: write what the tees held back, copy from the store
 * (checking digests) any blob no tee filled, fsync, rename into place.
 * Always frees bp. */
int bld_bundle_pending_finish(bld_bundle_pending *bp, cm_error *err);
/* Remove the temp file and free. NULL is a no-op. */
void bld_bundle_pending_abort(bld_bundle_pending *bp);

#endif
