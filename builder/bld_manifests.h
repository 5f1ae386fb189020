/* Manifests for a bundle (docs/manifests-and-models.md): collect `path:`
 * files and folders and `kustomize:` folders (rendered at build time with
 * `kustomize build` or `kubectl kustomize`), parse every document, find
 * images, and write the bundle's manifests/NN-name.yaml with each bundled
 * image pinned to its digest. */
#ifndef BLD_MANIFESTS_H
#define BLD_MANIFESTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "bld_bundle.h"
#include "bld_discover.h"
#include "bld_spec.h"
#include "cm_error.h"
#include "reg_copy.h"

#define BLD_KUSTOMIZE_TIMEOUT 600 /* seconds */

typedef struct bld_mfile {
	char member[256];  /* manifests/NN-name.yaml */
	char origin[4096]; /* the file, or the kustomization folder */
	int rendered;	   /* 1: kustomize output */
	int spec_line;	   /* the spec's manifests entry, 0 if none */
	size_t src;	   /* its source in the yset */
	size_t pinned;	   /* image values rewritten */
	char **unbundled;  /* references not in the bundle (left as written) */
	size_t n_unbundled;
} bld_mfile;

typedef struct bld_manifests {
	bld_yset set;
	bld_mfile *files;
	size_t n_files, cap_files;
	FILE *log; /* progress lines or NULL */
} bld_manifests;

/* Add a YAML file, or a folder's *.yaml, *.yml and *.json files (not
 * recursive, sorted by name). A folder holding a kustomization is rendered
 * when render_kustomizations is set, else refused ("use kustomize:"). */
int bld_manifests_add_path(bld_manifests *m, const char *path, int render_kustomizations,
			   cm_error *err);
/* Render a kustomization folder and add the output. */
int bld_manifests_add_kustomize(bld_manifests *m, const char *dir, cm_error *err);
/* Every manifests: entry of a spec, in order. */
int bld_manifests_from_spec(bld_manifests *m, const bld_spec *s, cm_error *err);
void bld_manifests_free(bld_manifests *m);

/* Rewrite source src of set: each image value whose normalised reference
 * is one of imgs becomes "<repository as written>@<digest>" (with
 * suggested references rewritten inside their strings when
 * pin_suggested). Only those values change; the result is parsed again
 * and checked. n_pinned counts rewritten values; unbundled (may be NULL)
 * receives each reference not found in imgs, once. */
int bld_pin_text(cm_buf *out, const bld_yset *set, size_t src, const reg_image *imgs, size_t n,
		 int pin_suggested, size_t *n_pinned, char ***unbundled, size_t *n_unbundled,
		 cm_error *err);

/* Write every member into dir (pinned unless !pin) and return them as
 * bld_file entries with sha256 and size filled in (caller frees *out). */
int bld_manifests_write(bld_manifests *m, const char *dir, const reg_image *imgs, size_t n, int pin,
			int pin_suggested, bld_file **out, size_t *n_out, cm_error *err);

/* The bundle.json "manifests" array: path, sha256, size, source,
 * documents, kinds {Kind: count}, pinned, unbundledImages. files are the
 * entries bld_manifests_write returned. */
json_t *bld_manifests_json(const bld_manifests *m, const bld_file *files, size_t n);

/* Images for `images: auto`: append each discovered reference (certain
 * ones, plus suggested ones when include_suggested) that the spec does
 * not list yet to s->images, with no `from:`. n_added may be NULL. */
int bld_manifests_auto_images(bld_spec *s, const bld_manifests *m, int include_suggested,
			      size_t *n_added, cm_error *err);

#endif
