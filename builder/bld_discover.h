/* Image discovery over Kubernetes YAML (docs/manifests-and-models.md).
 *
 * A bld_yset holds YAML sources (files, or kustomize output) as text, each
 * parsed with libyaml one document at a time. Parsing checks caps first
 * (file size, value size, nodes per document, nesting) with the event API,
 * so hostile input gives a clear "file:line:col" error instead of eating
 * memory. Every image reference found is one bld_occ, with the rule that
 * found it (bld_occ.rule):
 *
 *   - certain, in any kind (CustomResourceDefinitions, ConfigMaps and
 *     Secrets aside):
 *       "containers list"    the `image` of each item of a containers,
 *                            initContainers, ephemeralContainers or
 *                            *Containers list, anywhere in the object;
 *       "field image"        any string field named `image` whose value
 *       "field *Image"       (or any field whose name ends in `Image`)
 *                            parses as a reference (not a YAML null,
 *                            boolean or number, a template or a keyword);
 *       "storageUri oci://"  a `storageUri` string starting with oci://
 *                            (KServe modelcars): the reference after it;
 *       "known CRD <Kind>"   Argo `container` / `script` / `sidecars` in
 *                            Workflow, WorkflowTemplate,
 *                            ClusterWorkflowTemplate and CronWorkflow, and
 *                            any mapping with an `image` under an
 *                            InferenceService's spec (the generic rules
 *                            find their images too; this one also scans
 *                            their args and env);
 *   - suggested ("string scan"): a fully qualified reference (registry host
 *     or digest) inside a string: container args, command, env[].value,
 *     and ConfigMap data values.
 * A generic field whose value is not a reference is kept as an occurrence
 * with `ignored` set and the reason in `problem` (for images --explain).
 *
 * The text is kept, with each occurrence's character span, so that a
 * bundle can carry the same file with image values pinned to digests. */
#ifndef BLD_DISCOVER_H
#define BLD_DISCOVER_H

#include <jansson.h>
#include <stddef.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "reg_ref.h"

#define BLD_YAML_FILE_MAX ((size_t)64 << 20) /* one manifest file */
#define BLD_YAML_VALUE_MAX ((size_t)2 << 20) /* one scalar: more than any object etcd takes */
#define BLD_YAML_DOC_NODES_MAX 1000000	     /* nodes in one document */
#define BLD_YAML_DEPTH_MAX 100		     /* nesting of one document */
#define BLD_YAML_DOCS_MAX 100000	     /* documents in one file */

typedef struct bld_occ {
	char ref[REG_REF_MAX + 88];  /* normalised reference; "" when value is not a reference */
	char value[REG_REF_MAX + 1]; /* as written (the token, for string matches) */
	char problem[256];	     /* why value is not a reference, when ref is "" */
	int suggested;		     /* found inside a string, not in an image field */
	int ignored;		     /* a generic field whose value is not a reference:
					no warning (problem says why) */
	char rule[96];		     /* the rule that found it: "containers list", ... */
	char prefix[8];		     /* text of the scalar before value ("oci://"), or "" */
	size_t src;		     /* index of the source in the set */
	size_t doc;		     /* 1-based document number in the source */
	char kind[64];
	char name[256];
	char path[512];	   /* spec.template.spec.containers[0].image */
	size_t line, col;  /* 1-based position of the scalar */
	size_t start, end; /* character indexes of the scalar (libyaml marks) */
	int style;	   /* yaml_scalar_style_t of the scalar */
} bld_occ;

typedef struct bld_kind_count {
	char kind[64];
	size_t n;
} bld_kind_count;

typedef struct bld_ysrc {
	char name[4096];       /* path, or a label such as "kustomize build DIR" */
	cm_buf text;	       /* the exact bytes */
	size_t n_docs;	       /* non-empty documents */
	bld_kind_count *kinds; /* sorted by kind */
	size_t n_kinds;
} bld_ysrc;

typedef struct bld_yset {
	bld_ysrc *src;
	size_t n_src, cap_src;
	bld_occ *occ;
	size_t n_occ, cap_occ;
} bld_yset;

#define BLD_YSET_INIT                                                                              \
	{                                                                                          \
		NULL, 0, 0, NULL, 0, 0                                                             \
	}

/* Parse text (ownership of text->data moves into the set, even on error)
 * as the source called name, and discover its images. Errors name
 * "name:line:col" and the document number. */
int bld_yset_add_text(bld_yset *s, const char *name, cm_buf *text, cm_error *err);
/* Read a file (capped at BLD_YAML_FILE_MAX) and add it. */
int bld_yset_add_file(bld_yset *s, const char *path, cm_error *err);
void bld_yset_free(bld_yset *s);
/* A source's kind counts as a JSON object {kind: n}. */
json_t *bld_ysrc_kinds_json(const bld_ysrc *src);

/* One line of the discovery result: a unique normalised reference. */
typedef struct bld_found {
	const char *ref;
	int suggested;	 /* 1 when every occurrence is in a string */
	size_t first, n; /* occurrences: order[first .. first+n) */
} bld_found;

typedef struct bld_found_list {
	bld_found *v;
	size_t n;
	size_t *order; /* indexes into the set's occ, grouped by ref */
} bld_found_list;

/* Sorted unique references (skipping values that are not references). */
int bld_yset_found(bld_found_list *out, const bld_yset *s, cm_error *err);
void bld_found_list_free(bld_found_list *l);

/* Is name (or value) a fully qualified reference as the string scan
 * accepts it? Exposed for tests. */
int bld_discover_qualified(const char *token);

/* The next token of s[*i..n) as the string scan sees it (a run of
 * [A-Za-z0-9._:/@-], less leading ".:/@-_" and trailing ".:/@-"):
 * s[*a..*b), with *i moved past the run; 0 when none is left. Pinning
 * finds the tokens it rewrites with it. */
int bld_discover_token(const char *s, size_t n, size_t *i, size_t *a, size_t *b);

/* Why a generic image field's value is not taken as a reference: NULL when
 * it is one, else a reason ("a template", "a YAML boolean", ...). plain is
 * 1 for a plain (unquoted) scalar. Exposed for tests. */
const char *bld_discover_not_ref(const char *value, size_t len, int plain);

/* Peek at a file: 1 if its first document is a ferry spec
 * (apiVersion ferry/v1, kind Bundle), 0 if not or unreadable. */
int bld_yaml_is_spec(const char *path);

#endif
