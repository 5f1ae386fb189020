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
/* The artifacts attached to image i found upstream (docs/supply-chain.md):
 * the tags sha256-<hex>.sig, .att, .sbom and the OCI 1.1 fallback index
 * sha256-<hex>, HEADed for every image at once in bld_pull_prepare. Each is
 * copied byte-exact into the store as <repo>:<tag> and appended to
 * out[*n..cap) (with its subject and kind in meta, same positions).
 * CM_ENOMEM when cap is too small. */
typedef struct bld_referrer {
	size_t image;	  /* index in the spec's images */
	char subject[80]; /* the digest it is attached to */
	char kind[16];	  /* "sig", "att", "sbom" or "index" (fallback tag) */
} bld_referrer;
size_t bld_pull_referrers_count(const bld_pull *p);
int bld_pull_copy_referrers(bld_pull *p, size_t i, reg_image *out, bld_referrer *meta, size_t *n,
			    size_t cap, cm_error *err);
/* Blob bytes transferred. */
unsigned long long bld_pull_fetched(const bld_pull *p);
void bld_pull_free(bld_pull *p);

#endif
