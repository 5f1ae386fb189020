/* The copy pipeline: source -> digesting reader -> destination
 * (reg_source.h, reg_reader.h, reg_dest.h). Every blob reaches a
 * destination through a reader that fails its last read when the digest
 * or the size is wrong; every manifest is hashed whole. Transport details
 * stay inside the sources and destinations. */
#ifndef REG_COPY_H
#define REG_COPY_H

#include <stdint.h>

#include "cm_error.h"
#include "reg_dest.h"
#include "reg_manifest.h"
#include "reg_source.h"
#include "reg_store.h"

typedef struct reg_image {
	char ref[512];	     /* normalised upstream reference (the name kept in the bundle) */
	reg_desc root;	     /* the manifest or index the reference resolves to */
	char platforms[512]; /* comma-separated platforms held, or "" for a single-platform image */
	uint64_t total_size; /* manifests + configs + layers, shared blobs counted once */
	uint64_t fetched;    /* bytes actually transferred by this copy */
	char note[256];	     /* set when an index was narrowed by the platform filter */
} reg_image;

/* The child-selection rule reg_copy_image applies to an index: is this
 * child kept for platforms? (Planners that fetch ahead use the same rule.) */
int reg_copy_wants_child(const reg_desc *child, const char *const *platforms);

/* Copy the image that src resolves to into dst and name it ref there.
 * platforms is NULL-terminated ("all" keeps every child); for an index:
 *   - every child selected: the index is kept byte-exact;
 *   - one child selected: the image becomes that platform's manifest;
 *   - several: a new index listing only them is written and noted.
 * Blobs dst holds already are not sent (out->fetched counts those sent). */
int reg_copy_image_to(reg_image *out, reg_dest *dst, reg_source *src, const char *ref,
		      const char *const *platforms, cm_error *err);
/* The same into the content store st, recorded in its catalog. */
int reg_copy_image(reg_image *out, reg_store *st, reg_source *src, const char *ref,
		   const char *const *platforms, cm_error *err);

/* Copy blobs v[0..n) that dst lacks, dst->jobs at a time, in the order
 * given (put the largest first). The first error stops the others after
 * the blob each is sending. out (may be NULL): what was sent. */
#define REG_COPY_JOBS_MAX 16
typedef struct reg_copy_stats {
	uint64_t blobs, bytes;
} reg_copy_stats;
int reg_copy_blobs(reg_copy_stats *out, reg_dest *dst, reg_source *src, const reg_desc *v, size_t n,
		   cm_error *err);

#endif
