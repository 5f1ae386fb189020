/* The signature policy at build time (docs/supply-chain.md, "Policy at build
 * time"): with verify.sigstore.key set (globally or per image), an image is
 * carried only with a cosign signature by that key over its upstream
 * manifest digest, whose signed identity matches verify.sigstore.identity.
 * The signatures themselves are checked by signing/sig_cosign.c. */
#ifndef BLD_POLICY_H
#define BLD_POLICY_H

#include <stdio.h>

#include "bld_spec.h"
#include "cm_error.h"
#include "reg_manifest.h"
#include "reg_store.h"

/* Before anything is fetched: every policy key loads (CM_EINVAL naming the
 * spec line), and an image with 'from:' under a policy is refused
 * (CM_EVERIFY: an archive carries no .sig to check). */
int bld_policy_precheck(const bld_spec *s, cm_error *err);

/* Image i (full: its normalised reference; subject: the digest it resolved
 * to upstream, an index's own for an index) under its policy: sig is the
 * descriptor of its sha256-<hex>.sig manifest, copied into st with its
 * blobs, or NULL when the registry has none. 0 when one signature layer
 * passes (a line to log when not NULL); CM_EVERIFY naming the image, the
 * spec line and why each layer was refused. */
int bld_policy_check(const bld_spec *s, size_t i, const char *full, const reg_digest *subject,
		     reg_store *st, const reg_desc *sig, FILE *log, cm_error *err);

#endif
