/* The sqlite catalog beside the blobs: what each blob is, which manifests
 * exist, which repositories and tags point at them, and which image uses
 * which blob. Builds use it to skip work; deltas use it later.
 *
 * Tables: blobs(digest, size, media_type), manifests(digest, media_type,
 * size), repositories(name), tags(repo, tag, digest), image_blobs(manifest,
 * blob). WAL mode and a busy timeout let several processes share a cache. */
#ifndef REG_CATALOG_H
#define REG_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "cm_error.h"

/* out receives a sqlite3 *. */
int reg_catalog_open(void **out, const char *root, cm_error *err);
void reg_catalog_close(void *db);

int reg_catalog_add_blob(void *db, const char *digest, uint64_t size, const char *media_type,
			 cm_error *err);
int reg_catalog_add_manifest(void *db, const char *digest, const char *media_type, uint64_t size,
			     cm_error *err);
int reg_catalog_tag(void *db, const char *repo, const char *tag, const char *digest, cm_error *err);
int reg_catalog_link(void *db, const char *manifest, const char *blob, cm_error *err);
/* Look up the digest a tag last resolved to. Returns 1 found, 0 not found. */
int reg_catalog_lookup_tag(char *out, size_t n, void *db, const char *repo, const char *tag);

/* Bundles this cache wrote, so that an unchanged rebuild can leave the
 * file alone. Keyed by the output's absolute path; the file is trusted to
 * be unchanged while device, inode, size and mtime (ns) all match. */
typedef struct reg_catalog_bundle {
	uint64_t dev, ino, size, mtime_ns;
	char sums[65];	 /* sha256 hex of its SHA256SUMS */
	int64_t created; /* its creation time */
} reg_catalog_bundle;

/* 1 found, 0 not found. */
int reg_catalog_bundle_get(reg_catalog_bundle *out, void *db, const char *path);
int reg_catalog_bundle_put(void *db, const char *path, const reg_catalog_bundle *b, cm_error *err);

/* Packs: bundles the store keeps (hard-linked as packs/<name>) because
 * some blobs live only inside them (reg_store.h). A pack is trusted while
 * its size and mtime (ns) match. */
typedef struct reg_catalog_pack_blob {
	const char *digest;
	uint64_t off, size;
} reg_catalog_pack_blob;
typedef struct reg_catalog_pack_loc {
	char name[128];
	uint64_t off, size;		   /* the blob inside the pack */
	uint64_t pack_size, pack_mtime_ns; /* the pack as recorded */
} reg_catalog_pack_loc;

/* Record (or replace) pack name and the blobs it holds, in one transaction. */
int reg_catalog_pack_put(void *db, const char *name, uint64_t size, uint64_t mtime_ns,
			 const reg_catalog_pack_blob *v, size_t n, cm_error *err);
/* Up to max places that hold digest; returns how many were filled. */
int reg_catalog_pack_find(reg_catalog_pack_loc *out, size_t max, void *db, const char *digest);
/* Up to max packs as recorded (off and size are 0); returns how many. */
int reg_catalog_pack_list(reg_catalog_pack_loc *out, size_t max, void *db);
int reg_catalog_pack_drop(void *db, const char *name, cm_error *err);
/* A pack other than keep whose every blob another pack also holds: 1 and
 * its name in out, or 0. */
int reg_catalog_pack_covered(char *out, size_t n, void *db, const char *keep);

#endif
