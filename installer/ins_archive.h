/* Streaming images out of a bundle as the archive a runtime loads.
 *
 * One tar, the dual format Docker 25 writes (formats.md):
 *   oci-layout, index.json         -> ctr images import (OCI layout)
 *   manifest.json                  -> docker load, podman load (docker-archive)
 *   blobs/sha256/<hex>             -> shared by both
 * index.json names each image with io.containerd.image.name and
 * org.opencontainers.image.ref.name (the full upstream reference);
 * manifest.json gives one platform manifest per image with RepoTags
 * name:tag (digest-only references get no RepoTags).
 *
 * The blobs go through the copy pipeline: the bundle source's verified
 * cursors -> the archive destination (libarchive writing to a file
 * descriptor: a pipe to the runtime, or a file). There is no temp copy of
 * the bundle. */
#ifndef INS_ARCHIVE_H
#define INS_ARCHIVE_H

#include <stdint.h>

#include "cm_error.h"
#include "ins_install_bundle.h"
#include "reg_dest.h"

typedef struct ins_archive_opts {
	int oci;	      /* oci-layout + index.json (every platform) */
	int docker;	      /* manifest.json (one platform per image) */
	const char *platform; /* the platform for manifest.json; NULL: the host's */
	/* blobs for which skip returns 1 are left out (the runtime holds them
	 * already, e.g. streamed into its content store beforehand); NULL: none */
	int (*skip)(void *ctx, const ins_member *m);
	void *skip_ctx;
	/* a blob the bundle lacks (a delta's: in the runtime already, or put
	 * there from a base beforehand) for which external returns 1 is left
	 * out; any other missing blob is an error. NULL: none */
	int (*external)(void *ctx, const reg_digest *d);
	void *external_ctx;
} ins_archive_opts;

typedef struct ins_archive_stats {
	uint64_t bytes; /* blob bytes written */
	uint64_t blobs;
	uint64_t images;
	uint64_t skipped_artifacts; /* images left out of manifest.json: not container images */
} ins_archive_stats;

/* Write the archive of imgs[0..n) to fd. st may be NULL. */
int ins_archive_write(ins_archive_stats *st, const ins_bundle *b, const ins_image *const *imgs,
		      size_t n, int fd, const ins_archive_opts *o, cm_error *err);

/* The archive stream as a reg_dest writing to fd: oci-layout and
 * index_json (when not NULL), manifest.json (docker_json, when not NULL)
 * first, then each blob as blobs/sha256/<hex>, one at a time. Finishing
 * writes the end marker; a destination freed unfinished (a blob failed)
 * pads nothing and writes no end marker, so a consumer refuses the cut
 * archive. */
int ins_archive_dest_open(reg_dest **out, int fd, const char *index_json, const char *docker_json,
			  cm_error *err);

/* The blobs the OCI part of the archive of imgs[0..n) carries (each image's
 * root, children, configs and layers), each once, in bundle order. *out is
 * malloc'ed (free it); the members belong to b. o may be NULL (only its
 * external is used). */
int ins_archive_blobs(const ins_member ***out, size_t *n_out, const ins_bundle *b,
		      const ins_image *const *imgs, size_t n, const ins_archive_opts *o,
		      cm_error *err);

/* For an image: the config digest of the platform manifest docker or
 * podman would load (their image ID), or CM_ENOTFOUND for an artifact. */
int ins_archive_config_of(reg_digest *out, const ins_bundle *b, const ins_image *im,
			  const char *platform, cm_error *err);

#endif
