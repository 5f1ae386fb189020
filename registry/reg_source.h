/* Image sources for the copy pipeline (containers/image style): the
 * pipeline asks a source for manifests and blobs and checks every digest
 * while streaming; transports never leak into it.
 *
 * Local transports today: "oci-layout:DIR[:TAG]" and "docker-archive:FILE".
 * The registry transport plugs in through the same table. */
#ifndef REG_SOURCE_H
#define REG_SOURCE_H

#include <stddef.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "reg_manifest.h"
#include "reg_store.h"

typedef struct reg_source reg_source;

struct reg_source_ops {
	const char *name;
	/* The image's root manifest when digest is NULL, else the manifest with
	 * that digest. out receives the exact bytes (capped at REG_MANIFEST_MAX),
	 * out_mt (size mt_n) the media type when the transport knows it, else "". */
	int (*get_manifest)(reg_source *s, const char *digest, cm_buf *out, char *out_mt,
			    size_t mt_n, cm_error *err);
	/* Stream blob d into w (the pipeline commits w and checks the digest). */
	int (*get_blob)(reg_source *s, const reg_desc *d, reg_blob_writer *w, cm_error *err);
	void (*free)(reg_source *s);
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

#endif
