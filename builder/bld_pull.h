/* Images pulled from registries: resolve every image first (HEAD tags,
 * GET only manifests not held), download the blobs of all of them in one
 * parallel batch, then run each through the copy pipeline from the store.
 * Also SPEC.lock.yaml (--lock / --locked). */
#ifndef BLD_PULL_H
#define BLD_PULL_H

#include "bld_build.h"
#include "bld_spec.h"
#include "cm_error.h"
#include "reg_copy.h"
#include "reg_store.h"

typedef struct bld_pull bld_pull;

/* Resolve and download every image of s that has no 'from:'. */
int bld_pull_prepare(bld_pull **out, const bld_spec *s, reg_store *st, const bld_build_opts *o,
		     cm_error *err);
/* Copy image i (an image with no 'from:') into img. */
int bld_pull_copy(bld_pull *p, size_t i, reg_image *img, cm_error *err);
/* After a successful build: write the lock (--lock) and the summary. */
int bld_pull_finish(bld_pull *p, cm_error *err);
/* Blob bytes transferred. */
unsigned long long bld_pull_fetched(const bld_pull *p);
void bld_pull_free(bld_pull *p);

/* SPEC.yaml -> SPEC.lock.yaml */
int bld_lock_path(char *out, size_t n, const char *spec_path);

#endif
