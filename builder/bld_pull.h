/* Images pulled from registries: resolve every image first (HEAD tags,
 * GET only manifests not held) and run each through the copy pipeline
 * (blobs not held yet are recorded, not fetched); the bundle is then laid
 * out with holes for those, and one parallel batch downloads them into
 * the store and, through tees, into the bundle's holes (docs/architecture.md).
 * Also SPEC.lock.yaml (--lock / --locked). */
#ifndef BLD_PULL_H
#define BLD_PULL_H

#include "bld_build.h"
#include "bld_spec.h"
#include "cm_error.h"
#include "reg_copy.h"
#include "reg_store.h"

typedef struct bld_pull bld_pull;

/* Resolve every image of s that has no 'from:'. */
int bld_pull_prepare(bld_pull **out, const bld_spec *s, reg_store *st, const bld_build_opts *o,
		     cm_error *err);
/* Copy image i (an image with no 'from:') into img; its blobs not in the
 * store yet are left to bld_pull_fetch. */
int bld_pull_copy(bld_pull *p, size_t i, reg_image *img, cm_error *err);
/* 1 when blob d is one bld_pull_fetch downloads (ud is the bld_pull;
 * NULL answers 0). */
int bld_pull_pending(void *ud, const reg_digest *d);
/* Download every blob not held yet, in one parallel batch. tee_for (may be
 * NULL) names a second destination per blob. Runs once; p may be NULL. */
int bld_pull_fetch(bld_pull *p, reg_tee *(*tee_for)(void *ud, const reg_digest *d), void *ud,
		   cm_error *err);
/* After a successful build: write the lock (--lock) and the summary. */
int bld_pull_finish(bld_pull *p, cm_error *err);
/* Blob bytes transferred. */
unsigned long long bld_pull_fetched(const bld_pull *p);
void bld_pull_free(bld_pull *p);

/* SPEC.yaml -> SPEC.lock.yaml */
int bld_lock_path(char *out, size_t n, const char *spec_path);

#endif
