/* Verifying a bundle against a public key: the signature check plugged
 * into the registry library's bundle scanner. */
#ifndef INS_VERIFY_H
#define INS_VERIFY_H

#include "cm_buf.h"
#include "cm_error.h"
#include "reg_bundle.h"
#include "sig.h"

typedef struct ins_verify_opts {
	const char *pubkey_path; /* NULL only with insecure_skip_signature */
	int insecure_skip_signature;
	int hash_data; /* 0: signature and metadata only */
	int (*on_member)(void *ctx, const reg_bundle_member *m, cm_error *err);
	void *ctx;
	cm_buf *bundle_json; /* receives bundle.json, may be NULL */
} ins_verify_opts;

typedef struct ins_verify_result {
	reg_bundle_stats stats;
	char fingerprint[SIG_FPR_LEN + 1]; /* key that verified it, or "" */
} ins_verify_result;

int ins_verify_bundle(ins_verify_result *out, const char *bundle, const ins_verify_opts *o,
		      cm_error *err);

#endif
