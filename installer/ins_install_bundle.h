/* A verified bundle, opened for the lab verbs: the images of index.json,
 * the manifests and models, over the one bundle reader (reg_bidx.h).
 *
 * ins_bundle_open() verifies the whole bundle first (signature and every
 * digest, on every core) and only then builds the view. With
 * metadata_only (inspect, mirror-config, push) the signature, SHA256SUMS,
 * the strict layout and the metadata members are checked, and every other
 * member is hashed when it is read. Every read goes through the reader and
 * hashes what it hands out (ins_bundle_read, ins_bundle_copy_member,
 * ins_bundle_cursor): the bytes given to kubectl, placed as models or
 * loaded into a runtime are the bytes that matched SHA256SUMS, even if the
 * file changes after the verification. There is never an unpacked copy. */
#ifndef INS_INSTALL_BUNDLE_H
#define INS_INSTALL_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "reg_bidx.h"
#include "reg_digest.h"
#include "reg_manifest.h"
#include "reg_ref.h"
#include "sig.h"

/* A member: the reader's own table entry (path, hex, off, size). */
typedef reg_bidx_member ins_member;

typedef struct ins_image {
	char ref[REG_REF_MAX]; /* full normalised upstream reference */
	reg_ref r;
	char repo[512];	     /* host/path */
	reg_desc root;	     /* the manifest or index the reference names */
	uint64_t total_size; /* from bundle.json, 0 when absent */
	int referrer;	     /* a signature, attestation, SBOM or referrers index
			      * (bundle.json "referrers"): content, never unpacked */
	reg_digest subject;  /* a referrer's subject ("" when not a referrer) */
} ins_image;

/* A manifest file or a model file carried by the bundle. */
typedef struct ins_file {
	char path[1024];   /* member path: manifests/..., models/<name>/<version>/... */
	char name[256];	   /* model name ("" for manifests) */
	char version[128]; /* model version */
	const ins_member *m;
} ins_file;

typedef struct ins_bundle {
	char path[4096];
	reg_bidx *x; /* the reader; members m[i] are its ids i */
	char name[256], version[128];
	char fingerprint[SIG_FPR_LEN + 1]; /* "" when the signature was not checked */
	uint64_t file_size, bytes_hashed;
	double verify_secs;
	const ins_member *m; /* the reader's table, sorted by path */
	size_t n_m;
	char *bundle_json; /* the verified bytes of bundle.json (owned) */
	size_t bundle_json_len;
	int insecure; /* the signature was not checked (--insecure-skip-signature) */
	ins_image *images;
	size_t n_images;
	ins_file *manifests;
	size_t n_manifests;
	ins_file *models;
	size_t n_models;
} ins_bundle;

typedef struct ins_bundle_opts {
	const char *pubkey;	     /* required unless insecure_skip_signature */
	int insecure_skip_signature; /* digests are still checked */
	int metadata_only;	     /* check the signature, the layout and the metadata
					members only (SHA256SUMS, bundle.json, index.json):
					every other member is hashed when it is read */
	unsigned threads;	     /* hashing threads; 0: one per CPU */
} ins_bundle_opts;

/* Verify the bundle at path (full hash) and index it. A failed
 * verification is CM_EVERIFY. *b is zeroed first; close it in every case. */
int ins_bundle_open(ins_bundle *b, const char *path, const ins_bundle_opts *o, cm_error *err);
void ins_bundle_close(ins_bundle *b);

const ins_member *ins_bundle_member(const ins_bundle *b, const char *path);
const ins_member *ins_bundle_blob(const ins_bundle *b, const reg_digest *d);

/* Read a whole member (at most limit bytes) into out. */
int ins_bundle_read(cm_buf *out, const ins_bundle *b, const ins_member *m, size_t limit,
		    cm_error *err);
/* A verified sequential read of m (reg_bidx_cursor_*). */
int ins_bundle_cursor(reg_bidx_cursor *c, const ins_bundle *b, const ins_member *m, int flags,
		      cm_error *err);
/* Copy all of m into fd, hashing it: CM_EVERIFY naming m when the bytes
 * are not what SHA256SUMS says (the caller discards what fd received). */
int ins_bundle_copy_member(int fd, const ins_bundle *b, const ins_member *m, cm_error *err);
/* Read and parse the manifest or index blob d names. raw (may be NULL)
 * receives its exact bytes. */
int ins_bundle_manifest(reg_manifest *out, cm_buf *raw, const ins_bundle *b, const reg_desc *d,
			cm_error *err);

/* For an image: the platform manifest to use where only one can be taken
 * (docker load, podman load). For an index, the child matching platform
 * ("os/arch[/variant]", NULL means the host's), else the first child;
 * for a manifest, the manifest itself. */
int ins_bundle_pick_platform(reg_desc *out, const ins_bundle *b, const ins_image *im,
			     const char *platform, cm_error *err);

#endif
