/* `ferry-install receipt` and the lab side of deltas (docs/bundle-format.md
 * "Receipts" and "Deltas"): what bundles hold, read through the bundle
 * reader (reg_bidx.h) with their signature checked. */
#ifndef INS_RECEIPT_H
#define INS_RECEIPT_H

#include <stdint.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "reg_bidx.h"
#include "reg_manifest.h"
#include "reg_receipt.h"
#include "sig.h"

/* A bundle opened through the reader: its SHA256SUMS signature checked
 * against key (NULL: not checked), then every member hashed (full) or only
 * the metadata (!full; blobs are trusted from the signed SHA256SUMS). */
typedef struct ins_rbundle {
	reg_bidx *x;
	reg_bidx_info info;
	cm_buf bundle_json;
} ins_rbundle;
int ins_rbundle_open(ins_rbundle *out, const char *path, const sig_pubkey *key, int full,
		     cm_error *err);
void ins_rbundle_close(ins_rbundle *b);

/* Add what an opened bundle holds to r: its identity (bundle.json's name,
 * version, created, signer and the sha256 of SHA256SUMS), its images
 * (bundle.json's refs and digests) and every blobs/sha256/ member with
 * its size. */
int ins_receipt_add_bundle(reg_receipt *r, const ins_rbundle *b, cm_error *err);

/* Add what a containerd node holds (ctr --address=sock --namespace=ns;
 * ns NULL: k8s.io): every image (`ctr images ls`: ref and manifest digest)
 * and, walking each image's manifests (`ctr content get`, checked against
 * their digests), every manifest, config and layer present in the content
 * store (`ctr content ls -q`) with its size from the manifests. */
int ins_receipt_add_containerd(reg_receipt *r, const char *sock, const char *ns, cm_error *err);

/* Add what a registry holds (docs/bundle-format.md "Receipts"): to is
 * push's target address, HOST[:PORT][/PREFIX] (split by
 * ins_push_target_parse), plain for HTTP, ca a PEM file or NULL;
 * credentials as push finds them (the engine: $REGISTRY_AUTH_FILE,
 * $DOCKER_CONFIG). Every repository of the catalog under PREFIX/ (at most
 * INS_RECEIPT_MAX_REPOS in the catalog), each tag of it (at most
 * INS_RECEIPT_MAX_TAGS per repository) as an image whose ref is the
 * repository without PREFIX/ and the tag (push's mapping inverted: the
 * bundle's ref), with the manifest's digest; every manifest (an index's
 * children too), config and layer as a blob with its size. At most
 * INS_RECEIPT_MAX_MANIFESTS manifests are fetched, 32 at a time. */
#define INS_RECEIPT_MAX_REPOS 10000
#define INS_RECEIPT_MAX_TAGS 10000
#define INS_RECEIPT_MAX_MANIFESTS 100000 /* tags and index children, in all */
typedef struct ins_receipt_registry_opts {
	const char *to;
	int plain;
	const char *ca;
	/* token-realm hosts (host or host:port) allowed the registry's
	 * credentials, as push --realm-credentials */
	const char *const *realm_creds;
	size_t n_realm_creds;
	size_t max_repos, max_tags; /* 0: the defaults above */
} ins_receipt_registry_opts;
int ins_receipt_add_registry(reg_receipt *r, const ins_receipt_registry_opts *o, cm_error *err);

/* The delta record of a bundle.json: *is_delta 0 for a full bundle; else
 * base->bundles are the bases it was built against (may be none: a
 * receipt made by other means) and base->blobs the blobs it leaves out. */
int ins_delta_read(reg_receipt *base, int *is_delta, const char *bundle_json, size_t len,
		   cm_error *err);

/* Check a delta on its own: every blob its images need (manifests walked
 * from index.json's images) is a member or listed as omitted with the
 * size its manifest gives. CM_EVERIFY otherwise, naming the blob and
 * image. */
int ins_delta_check_self(ins_rbundle *b, const reg_receipt *omitted, cm_error *err);

/* Check the bases of a delta (each opened with full verification): each
 * must be one the delta records (when it records any: CM_EVERIFY naming
 * it otherwise), and every omitted blob must be a member of one of them
 * with the recorded size. The blobs found nowhere go into *missing (an
 * empty receipt when all are there). */
int ins_delta_check_bases(reg_receipt *missing, const reg_receipt *omitted, ins_rbundle *bases,
			  const char *const *names, size_t n, cm_error *err);

/* Walk every image of b (bundle.json's images, their manifests read
 * through the reader): fn gets each config and layer descriptor with the
 * image's ref. A non-zero return stops the walk. */
typedef int (*ins_walk_fn)(void *ctx, const char *ref, const reg_desc *d, cm_error *err);
int ins_delta_walk(ins_rbundle *b, ins_walk_fn fn, void *ctx, cm_error *err);

/* A delta and its bases, for install (docs/install.md "Deltas"). */
typedef struct ins_delta_set {
	int is_delta;
	reg_receipt omitted; /* the delta record (bundles: its recorded bases) */
	ins_rbundle *bases;  /* opened with full verification */
	reg_bidx **x;	     /* their readers, in the order given */
	size_t n;
} ins_delta_set;
/* Read the delta record of an opened bundle (x, bundle_json), check it on
 * its own (ins_delta_check_self), and open the bases (full verification,
 * signature with the key at pubkey, as the bundle's; none with insecure),
 * each of which must be one the delta records.
 * Whether the bases hold the omitted blobs is not checked here: a node
 * may hold them. *out is zeroed first; free it in every case. A full
 * bundle gives is_delta 0 and opens nothing. */
int ins_delta_set_open(ins_delta_set *out, reg_bidx *x, const char *bundle_json, size_t len,
		       const char *const *bases, size_t n, const char *pubkey, int insecure,
		       cm_error *err);
void ins_delta_set_free(ins_delta_set *d);

/* The first of the n readers x that holds blob d of size bytes (*id: its
 * member there), or n when none does. */
size_t ins_delta_find(reg_bidx *const *x, size_t n, const reg_digest *d, uint64_t size,
		      uint32_t *id);

/* The images (refs) of b that need blob d, comma-separated into out. */
void ins_delta_users(char *out, size_t n, ins_rbundle *b, const reg_digest *d);

#endif
