#include "ins_verify.h"

#include <string.h>

typedef struct vctx {
	const sig_pubkey *key;
	const ins_verify_opts *o;
} vctx;

static int check_sig(void *ctx, const void *sums, size_t n, const void *sig, size_t sig_n,
		     cm_error *err)
{
	vctx *v = ctx;
	return sig_verify(v->key, sums, n, sig, sig_n, err);
}

static int on_member(void *ctx, const reg_bundle_member *m, cm_error *err)
{
	vctx *v = ctx;
	return v->o->on_member ? v->o->on_member(v->o->ctx, m, err) : 0;
}

int ins_verify_bundle(ins_verify_result *out, const char *bundle, const ins_verify_opts *o,
		      cm_error *err)
{
	sig_pubkey *key = NULL;
	memset(out, 0, sizeof(*out));
	if (!o->insecure_skip_signature) {
		if (!o->pubkey_path)
			return cm_error_set(err, CM_EUSAGE,
					    "a public key is required (--pubkey KEY.pub); "
					    "--insecure-skip-signature checks digests only");
		int rc = sig_pubkey_load(&key, o->pubkey_path, err);
		if (rc < 0)
			return rc;
		sig_pubkey_fingerprint(out->fingerprint, key, err);
	}
	vctx v = {key, o};
	reg_bundle_opts bo = {key ? check_sig : NULL, &v, o->hash_data, on_member, o->bundle_json};
	bo.ctx = &v;
	int rc = reg_bundle_scan(&out->stats, bundle, &bo, err);
	sig_pubkey_free(key);
	return rc;
}
