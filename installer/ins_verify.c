#include "ins_verify.h"

int ins_verify_check_sig(void *ctx, const void *sums, size_t n, const void *sig, size_t sig_n,
			 cm_error *err)
{
	return sig_verify((const sig_pubkey *)ctx, sums, n, sig, sig_n, err);
}

int ins_verify_key(sig_pubkey **out, char *fpr, const char *pubkey_path, int insecure,
		   cm_error *err)
{
	*out = NULL;
	fpr[0] = '\0';
	if (insecure)
		return 0; /* the caller warns, and says so in its report */
	if (!pubkey_path)
		return cm_error_set(err, CM_EUSAGE,
				    "a public key is required (--pubkey KEY.pub); "
				    "--insecure-skip-signature checks digests only");
	int rc = sig_pubkey_load(out, pubkey_path, err);
	if (rc < 0)
		return rc;
	return sig_pubkey_fingerprint(fpr, *out, err);
}
