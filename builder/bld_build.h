/* The build job: spec -> images into the store -> files -> bundle. */
#ifndef BLD_BUILD_H
#define BLD_BUILD_H

#include <stdio.h>
#include <time.h>

#include "cm_error.h"

typedef struct bld_build_opts {
	const char *spec_path;
	const char *out_path;
	const char *key_path;
	const char *cache_dir; /* NULL: $XDG_CACHE_HOME/ferry or ~/.cache/ferry */
	time_t created;        /* creation time and every member's mtime */
	FILE *log;             /* progress lines, or NULL for quiet */
} bld_build_opts;

typedef struct bld_build_result {
	size_t images;
	size_t files;
	unsigned long long bytes;
	unsigned long long fetched;
	char signer[80];
} bld_build_result;

int bld_build(bld_build_result *out, const bld_build_opts *o, cm_error *err);

/* The default cache folder (out must hold PATH_MAX). */
int bld_default_cache(char *out, size_t n, cm_error *err);

#endif
