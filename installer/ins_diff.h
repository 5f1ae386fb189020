/* `ferry-install diff A B`: what changed between two bundles, or a bundle
 * and a receipt (docs/bundle-format.md "Diff"). */
#ifndef INS_DIFF_H
#define INS_DIFF_H

#include <jansson.h>

#include "cm_error.h"
#include "sig.h"

/* A and B: bundle paths (a file or a volume set; opened through the bundle
 * reader with key, NULL for --insecure-skip-signature) or receipt files
 * (JSON). *out (caller decrefs):
 *   {"a": A, "b": B,
 *    "images":    {"added": [...], "removed": [...], "changed": [...]},
 *    "manifests": {...}, "models": {...},   (bundles only; [] otherwise)
 *    "blobs": {"added", "addedBytes", "removed", "removedBytes"}}
 * Images are matched by ref (changed: another digest), manifests and
 * models by path (changed: another sha256). A delta's omitted blobs count
 * as its content. */
int ins_diff(json_t **out, const char *a, const char *b, const sig_pubkey *key, cm_error *err);

#endif
