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

#endif
