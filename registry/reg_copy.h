/* The copy pipeline: source -> store, with every digest checked while
 * streaming. Transport details stay inside the source. */
#ifndef REG_COPY_H
#define REG_COPY_H

#include <stdint.h>

#include "cm_error.h"
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

/* Copy the image that src resolves to into st and record it in the
 * catalog under ref. platforms is NULL-terminated ("all" keeps every
 * child); for an index:
 *   - every child selected: the index is kept byte-exact;
 *   - one child selected: the image becomes that platform's manifest;
 *   - several: a new index listing only them is written and noted. */
/* The child-selection rule reg_copy_image applies to an index: is this
 * child kept for platforms? (Planners that fetch ahead use the same rule.) */
int reg_copy_wants_child(const reg_desc *child, const char *const *platforms);

int reg_copy_image(reg_image *out, reg_store *st, reg_source *src, const char *ref,
		   const char *const *platforms, cm_error *err);

#endif
