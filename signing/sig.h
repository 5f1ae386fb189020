/* Ed25519 signatures over SHA256SUMS, signify style.
 *
 * Split in two so the installer can link verify-only code:
 *   sig_verify.c  public keys, fingerprints, verification (both programs)
 *   sig_sign.c    key generation and signing (ferry-build only)
 */
#ifndef SIG_H
#define SIG_H

#include <stddef.h>

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
