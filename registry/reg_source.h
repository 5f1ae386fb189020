/* Image sources for the copy pipeline (containers/image style): the
 * pipeline asks a source for manifests and blobs; a blob comes as a
 * digesting reader (reg_reader.h), so a destination never sees a whole
 * bad blob. Transports never leak into the pipeline.
 *
 * Transports: "oci-layout:DIR[:TAG]", "docker-archive:FILE", a registry
 * (reg_client.h) and a verified bundle (reg_source_bundle_open). */
#ifndef REG_SOURCE_H
#define REG_SOURCE_H

#include <stddef.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "reg_bidx.h"
#include "reg_manifest.h"
#include "reg_reader.h"
#include "reg_store.h"

typedef struct reg_source reg_source;

struct reg_source_ops {
	const char *name;
	/* The image's root manifest when digest is NULL, else the manifest with
	 * that digest. out receives the exact bytes (capped at REG_MANIFEST_MAX),
	 * out_mt (size mt_n) the media type when the transport knows it, else "". */
	int (*get_manifest)(reg_source *s, const char *digest, cm_buf *out, char *out_mt,
			    size_t mt_n, cm_error *err);
	/* A reader of blob d (checked against d's digest and size). */
	int (*open_blob)(reg_source *s, const reg_desc *d, reg_reader **out, cm_error *err);
	void (*free)(reg_source *s); /* NULL: free(s) */
};

struct reg_source {
	const struct reg_source_ops *ops;
	char where[1024]; /* human-readable location, for messages */
	/* Set by a caller that downloads blobs itself, in one batch, after
	 * the copy: 1 when blob d is one of those. The pipeline then records
	 * it without fetching it. */
	int (*deferred)(void *ud, const reg_digest *d);
	void *deferred_ud;
};

/* Open a source from a spec "from:" string. Relative paths resolve against
 * base_dir (the spec file's folder). Sources may import into store at open
 * time when random access is costly (docker-archive). */
int reg_source_open(reg_source **out, const char *from, const char *base_dir, reg_store *store,
		    cm_error *err);
/* NULL is a no-op. */
void reg_source_free(reg_source *s);

int reg_source_oci_open(reg_source **out, const char *dir, const char *tag, cm_error *err);
int reg_source_docker_archive_open(reg_source **out, const char *file, reg_store *store,
				   cm_error *err);
/* The blobs and manifests of a verified bundle, through the bundle
 * reader's hashing cursors (flags: REG_BIDX_TRUST_VERIFIED or 0). root is
 * the image get_manifest(NULL) returns; NULL for a source of blobs only.
 * x stays the caller's. */
int reg_source_bundle_open(reg_source **out, reg_bidx *x, const reg_desc *root, int flags,
			   cm_error *err);
/* A reader of blob d from st (sources that land blobs in the store). */
int reg_source_store_blob(reg_reader **out, reg_store *st, const reg_desc *d, cm_error *err);

#endif
