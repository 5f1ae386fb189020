/* The build job: spec -> images into the store -> files -> bundle. */
#ifndef BLD_BUILD_H
#define BLD_BUILD_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "cm_error.h"

typedef struct bld_build_opts {
	const char *spec_path;
	const char *out_path;
	const char *key_path;
	const char *cache_dir; /* NULL: $XDG_CACHE_HOME/ferry or ~/.cache/ferry */
	time_t created;	       /* creation time and every member's mtime */
	int created_fixed;     /* created came from SOURCE_DATE_EPOCH */
	FILE *log;	       /* progress lines, or NULL for quiet */
	/* registry pulls (docs/registry-client.md); zero values are defaults */
	int jobs;	     /* parallel blob downloads (default 8) */
	double retry_budget; /* seconds of back-off per request; 0 = default (60) */
	int lock;	     /* write SPEC.lock.yaml */
	int locked;	     /* refuse tags that moved since SPEC.lock.yaml */
	int progress;	     /* BLD_PROGRESS_* (bld_progress.h); 0 = none */
	FILE *progress_out;  /* where progress goes (default: log) */
	/* manifests and models (docs/manifests-and-models.md) */
	int auto_images;       /* add the images manifests use (as `images: auto`) */
	int include_suggested; /* ...and those found only inside strings */
	int no_pin;	       /* bundle manifests without pinning images to digests */
	int allow_unpinned;    /* url: models without sha256 */
	int no_model_files;    /* no raw copies under models/<name>/<version>/ */
	uint64_t volume_size;  /* 0: one file; else parts out_path.000, ... (bld_bundle.h) */
	/* a ferry-install to carry as tools/ferry-install-linux-amd64, or NULL
	 * (docs/portable.md) */
	const char *installer_path;
	/* a delta (docs/bundle-format.md "Deltas"): a receipt, or a bundle
	 * checked with base_pubkey; NULL for a full bundle */
	const char *base_path;
	const char *base_pubkey;
	const struct reg_receipt *base; /* set by bld_build from base_path */
} bld_build_opts;

typedef struct bld_build_result {
	size_t images;
	size_t files;
	unsigned long long bytes;
	unsigned long long fetched;
	char signer[80];
	size_t parts;	/* of a volume set; 0 for one file */
	size_t omitted; /* a delta: blobs left out (the base holds them) */
	unsigned long long omitted_bytes;
} bld_build_result;

int bld_build(bld_build_result *out, const bld_build_opts *o, cm_error *err);

/* The installer a build carries when no option says: $FERRY_INSTALLER
 * ("none": none), else the portable one next to this program (a build
 * tree's <dir>/portable/ferry-install after `make portable`, or an
 * installed <dir>/../lib/ferry/ferry-install-linux-amd64), else NULL. buf
 * holds the path returned. */
const char *bld_default_installer(char *buf, size_t n);

#endif
