/* Internal to signing/: helpers both halves share. They live in
 * sig_verify.c, which both programs link, so sig_sign.c stays the only
 * file with private-key code. */
#ifndef SIG_OSSL_H
#define SIG_OSSL_H

#include <openssl/evp.h>

#include "cm_error.h"

/* The most recent OpenSSL reason, for messages; clears the error queue. */
const char *sig_ossl_reason(void);
/* "sha256:<hex>" of the DER SubjectPublicKeyInfo of pk (out: SIG_FPR_LEN + 1). */
int sig_pkey_fingerprint(char *out, EVP_PKEY *pk, cm_error *err);
/* The PEM public key in file path and its fingerprint (fpr: SIG_FPR_LEN +
 * 1), for both key loaders: what names the file in errors ("public key",
 * "cosign key"), want the key types taken ("Ed25519"); the caller checks
 * the type. A private key, garbage or an empty file is CM_EINVAL naming
 * the file. */
int sig_pubkey_pem(EVP_PKEY **out, char *fpr, const char *path, const char *what, const char *want,
		   cm_error *err);

#endif
