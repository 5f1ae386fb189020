/* Image references: parsing and normalisation, following the rules of
 * the docker/distribution "reference" package.
 *
 *   mysql                        -> docker.io/library/mysql:latest
 *   localhost:5000/a/b:1         -> host "localhost:5000", path "a/b", tag "1"
 *   quay.io/x/y@sha256:...       -> digest only (no tag)
 *   gcr.io/x/y:1.0@sha256:...    -> tag and digest
 */
#ifndef REG_REF_H
#define REG_REF_H

#include <stddef.h>

#include "cm_error.h"

#define REG_REF_MAX 512 /* longest accepted reference, bytes */

typedef struct reg_ref {
	char host[256];	 /* "docker.io", "registry.k8s.io", "localhost:5000" */
	char path[256];	 /* "library/mysql" */
	char tag[129];	 /* "" when absent (after normalisation: "latest" if no digest) */
	char digest[72]; /* "sha256:<hex>" or "" */
} reg_ref;

/* Parse and normalise s. A missing host becomes docker.io, a single-component
 * docker.io path gets "library/", and a reference with neither tag nor digest
 * gets tag "latest". Invalid names are CM_EINVAL with a message that quotes
 * the input and says what is wrong. */
int reg_ref_parse(reg_ref *out, const char *s, cm_error *err);

/* "host/path" (the repository, without tag or digest). */
int reg_ref_repo(char *out, size_t n, const reg_ref *r);
/* The full normalised string: host/path[:tag][@digest]. */
int reg_ref_string(char *out, size_t n, const reg_ref *r);

/* Validate a repository path (no host) against the distribution name
 * grammar: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/...)* . Returns 1 if valid. */
int reg_ref_valid_path(const char *path);
/* Validate a tag: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. Returns 1 if valid. */
int reg_ref_valid_tag(const char *tag);

#endif
