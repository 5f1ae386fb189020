/* The signature side of verification: the public key and the check that
 * the bundle reader (reg_bidx.h) calls over the exact SHA256SUMS bytes, so
 * that the registry library never links key code. */
#ifndef INS_VERIFY_H
#define INS_VERIFY_H

#include <stddef.h>

#include "cm_error.h"
#include "sig.h"

/* Load the key at pubkey_path into *out and its fingerprint into fpr
 * (SIG_FPR_LEN + 1 bytes). With insecure (--insecure-skip-signature), *out
 * is NULL and fpr "" whatever key is given. A missing key without insecure
 * is CM_EUSAGE. */
int ins_verify_key(sig_pubkey **out, char *fpr, const char *pubkey_path, int insecure,
		   cm_error *err);

/* reg_bidx_opts.check_sig for a sig_pubkey ctx. */
int ins_verify_check_sig(void *ctx, const void *sums, size_t n, const void *sig, size_t sig_n,
			 cm_error *err);

#endif
