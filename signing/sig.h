/* Ed25519 signatures over SHA256SUMS, signify style.
 *
 * Split in two so the installer can link verify-only code:
 *   sig_verify.c  public keys, fingerprints, verification (both programs)
 *   sig_sign.c    key generation and signing (ferry-build only)
 */
#ifndef SIG_H
#define SIG_H

#include <stddef.h>

#include "cm_buf.h"
#include "cm_error.h"

#define SIG_LEN 64	      /* raw Ed25519 signature size */
#define SIG_FPR_LEN 71	      /* "sha256:" + 64 hex */
#define SIG_KEYFILE_MAX 16384 /* cap on any key file we read */

/* --- verify side (sig_verify.c) --- */

typedef struct sig_pubkey sig_pubkey;

/* Load an SPKI PEM Ed25519 public key. Anything else (an RSA key, a private
 * key, garbage, a file over SIG_KEYFILE_MAX) is CM_EINVAL naming the file. */
int sig_pubkey_load(sig_pubkey **out, const char *path, cm_error *err);
void sig_pubkey_free(sig_pubkey *k);

/* "sha256:<hex>" of the DER SubjectPublicKeyInfo. out must hold
 * SIG_FPR_LEN + 1 bytes. */
int sig_pubkey_fingerprint(char *out, const sig_pubkey *k, cm_error *err);

/* Verify a raw Ed25519 signature over msg. A bad or wrong-key signature is
 * CM_EVERIFY. */
int sig_verify(const sig_pubkey *k, const void *msg, size_t msg_len, const void *sig,
	       size_t sig_len, cm_error *err);

/* --- cosign signatures (sig_cosign.c, verify side; docs/supply-chain.md) ---
 *
 * What `cosign sign --key` writes: a manifest tagged sha256-<hex>.sig whose
 * layers are simple-signing payloads (SIG_COSIGN_MEDIA_TYPE) with the
 * signature in the annotation SIG_COSIGN_ANNOTATION: base64 of an ASN.1 DER
 * ECDSA P-256/SHA-256 signature, or of a raw (pure) Ed25519 signature,
 * over the payload bytes. Every input here is untrusted. */
#define SIG_COSIGN_MEDIA_TYPE "application/vnd.dev.cosign.simplesigning.v1+json"
#define SIG_COSIGN_ANNOTATION "dev.cosignproject.cosign/signature"
#define SIG_COSIGN_TYPE "cosign container image signature"
#define SIG_COSIGN_PAYLOAD_MAX ((size_t)64 << 10) /* a payload is ~250 bytes */
#define SIG_COSIGN_B64_MAX 1024			  /* a DER P-256 signature is <= 72 bytes */
#define SIG_COSIGN_MANIFEST_MAX ((size_t)4 << 20)
#define SIG_COSIGN_LAYERS_MAX 256

typedef struct sig_cosign_key sig_cosign_key;

/* An SPKI PEM public key as `cosign generate-key-pair` writes it: ECDSA
 * P-256 or Ed25519. Another curve or type, a private key or an encrypted
 * cosign key is CM_EINVAL naming the file. */
int sig_cosign_key_load(sig_cosign_key **out, const char *path, cm_error *err);
/* NULL is a no-op. */
void sig_cosign_key_free(sig_cosign_key *k);
/* "ECDSA P-256" or "Ed25519". */
const char *sig_cosign_key_type(const sig_cosign_key *k);
/* "sha256:<hex>" of the DER SubjectPublicKeyInfo. */
const char *sig_cosign_key_fingerprint(const sig_cosign_key *k);

/* The signed claims of a simple-signing payload. */
typedef struct sig_cosign_claims {
	char digest[80];    /* critical.image.docker-manifest-digest */
	char identity[512]; /* critical.identity.docker-reference */
} sig_cosign_claims;

/* Parse a payload (at most SIG_COSIGN_PAYLOAD_MAX bytes of JSON):
 * "critical" holds exactly type, image and identity (as containers/image
 * reads it), type is SIG_COSIGN_TYPE, the digest is "sha256:<64 hex>".
 * Anything else is CM_EVERIFY saying what. */
int sig_cosign_payload_parse(sig_cosign_claims *out, const void *payload, size_t n, cm_error *err);

/* Check one signature: b64sig by k over payload (the signature first, as
 * cosign does, so an unsigned claim is never parsed further), then the
 * claims: the digest equals want_digest and the identity matches pattern
 * (fnmatch(3) glob, also tried with a signed "index.docker.io/" read as
 * "docker.io/"; NULL or "" accepts any). CM_EVERIFY saying which check
 * failed ("signed by another key", "signed for sha256:... (a signature
 * replayed from another image?)", "identity ... is not ..."). out (may be
 * NULL) receives the claims once the signature verified. */
int sig_cosign_check(sig_cosign_claims *out, const sig_cosign_key *k, const void *payload, size_t n,
		     const char *b64sig, const char *want_digest, const char *pattern,
		     cm_error *err);

/* The signature layers of a .sig manifest (OCI or Docker schema 2 JSON, at
 * most SIG_COSIGN_MANIFEST_MAX bytes). A layer of another media type or
 * without the annotation is listed with sig_b64 NULL (and why), so the
 * caller can say so. */
typedef struct sig_cosign_layer {
	char digest[80];
	unsigned long long size;
	char *sig_b64; /* the annotation, or NULL */
	char why[160]; /* why it is not a signature layer, when sig_b64 is NULL */
} sig_cosign_layer;
int sig_cosign_manifest_layers(sig_cosign_layer **out, size_t *out_n, const void *manifest,
			       size_t len, cm_error *err);
void sig_cosign_layers_free(sig_cosign_layer *v, size_t n);

/* A signature file containers/image writes into a `dir:` copy
 * (signature-N): "\0sigstore-json\n" then {"mimeType", "payload" (base64),
 * "annotations"}. out_payload gets the decoded payload, *out_sig_b64 (free)
 * the signature annotation. Another format or a hostile file is CM_EVERIFY. */
int sig_cosign_blob_parse(cm_buf *out_payload, char **out_sig_b64, const void *blob, size_t n,
			  cm_error *err);

/* --- sign side (sig_sign.c) --- */

typedef struct sig_seckey sig_seckey;

/* Write PREFIX.key (PKCS#8 PEM, mode 0600, O_EXCL: never overwrites) and
 * PREFIX.pub (SPKI PEM). out_fpr (SIG_FPR_LEN + 1 bytes) gets the
 * fingerprint. */
int sig_keygen(char *out_fpr, const char *prefix, cm_error *err);

/* Load a PKCS#8 PEM Ed25519 private key. The file buffer is wiped after
 * parsing. */
int sig_seckey_load(sig_seckey **out, const char *path, cm_error *err);
/* Frees and wipes; NULL is a no-op. */
void sig_seckey_free(sig_seckey *k);
/* Fingerprint of the matching public key. */
int sig_seckey_fingerprint(char *out, const sig_seckey *k, cm_error *err);
/* out receives SIG_LEN bytes. */
int sig_sign(unsigned char *out, const sig_seckey *k, const void *msg, size_t msg_len,
	     cm_error *err);

#endif
