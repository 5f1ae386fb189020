#include "bld_policy.h"

#include <string.h>

#include "sig.h"

static int key_load(sig_cosign_key **out, const bld_spec *s, const bld_verify_spec *v,
		    cm_error *err)
{
	char path[8192];
	if (bld_spec_path(path, sizeof(path), s, v->key) < 0)
		return cm_error_set(err, CM_EINVAL, "%s:%d: verify.sigstore.key is too long",
				    s->file, v->line);
	if (sig_cosign_key_load(out, path, err) < 0)
		return cm_error_wrap(err, "%s:%d: verify.sigstore.key", s->file, v->line);
	return 0;
}

int bld_policy_precheck(const bld_spec *s, cm_error *err)
{
	const bld_verify_spec *done[64];
	size_t n_done = 0;
	for (size_t i = 0; i <= s->n_images; i++) {
		/* the global policy (i == n_images), then each image's own */
		const bld_verify_spec *v = i < s->n_images ? bld_spec_verify(s, i) : &s->verify;
		if (!v || !v->key[0])
			continue;
		if (i < s->n_images && s->images[i].from[0])
			return cm_error_set(err, CM_EVERIFY,
					    "%s:%d: image %s is refused by the signature policy "
					    "(verify.sigstore, line %d): it comes from %s, which "
					    "holds no cosign signature to check",
					    s->file, s->images[i].line, s->images[i].ref, v->line,
					    s->images[i].from);
		int seen = 0;
		for (size_t j = 0; j < n_done && !seen; j++)
			seen = done[j] == v;
		if (seen)
			continue;
		sig_cosign_key *k = NULL;
		int rc = key_load(&k, s, v, err);
		sig_cosign_key_free(k);
		if (rc < 0)
			return rc;
		if (n_done < sizeof(done) / sizeof(done[0]))
			done[n_done++] = v;
	}
	return 0;
}

/* One layer of the .sig manifest: its payload from the store (read by the
 * layer's digest, which the store checks) against the policy. */
static int check_layer(const sig_cosign_layer *l, const sig_cosign_key *k, const char *subject,
		       const bld_verify_spec *v, reg_store *st, sig_cosign_claims *claims,
		       cm_error *err)
{
	if (!l->sig_b64)
		return cm_error_set(err, CM_EVERIFY, "%s", l->why);
	if (l->size > SIG_COSIGN_PAYLOAD_MAX)
		return cm_error_set(err, CM_EVERIFY,
				    "payload is %llu bytes, more than the %zu allowed", l->size,
				    SIG_COSIGN_PAYLOAD_MAX);
	reg_digest d;
	cm_buf payload = CM_BUF_INIT;
	int rc = reg_digest_parse(&d, l->digest, err);
	if (rc == 0)
		rc = reg_store_read(&payload, st, &d, SIG_COSIGN_PAYLOAD_MAX, err);
	if (rc == 0 && payload.len != l->size)
		rc = cm_error_set(err, CM_EVERIFY, "payload is %zu bytes, its descriptor says %llu",
				  payload.len, l->size);
	if (rc == 0)
		rc = sig_cosign_check(claims, k, payload.data, payload.len, l->sig_b64, subject,
				      v->identity, err);
	cm_buf_free(&payload);
	return rc < 0 && rc != CM_ENOMEM ? CM_EVERIFY : rc;
}

int bld_policy_check(const bld_spec *s, size_t i, const char *full, const reg_digest *subject,
		     reg_store *st, const reg_desc *sig, FILE *log, cm_error *err)
{
	const bld_verify_spec *v = bld_spec_verify(s, i);
	if (!v)
		return 0;
	int line = s->images[i].line;
	if (!sig)
		return cm_error_set(err, CM_EVERIFY,
				    "%s:%d: image %s is refused by the signature policy "
				    "(verify.sigstore, line %d): it is not signed (no "
				    "sha256-%.64s.sig upstream)",
				    s->file, line, full, v->line, subject->s + 7);
	sig_cosign_key *k = NULL;
	int rc = key_load(&k, s, v, err);
	if (rc < 0)
		return rc;
	cm_buf man = CM_BUF_INIT;
	sig_cosign_layer *ls = NULL;
	size_t n = 0;
	if ((rc = reg_store_read(&man, st, &sig->digest, SIG_COSIGN_MANIFEST_MAX, err)) == 0)
		rc = sig_cosign_manifest_layers(&ls, &n, man.data, man.len, err);
	cm_buf_free(&man);
	char why[1500] = "";
	size_t wl = 0;
	int pass = 0;
	for (size_t j = 0; rc == 0 && j < n && !pass; j++) {
		cm_error le = {0};
		sig_cosign_claims c;
		int lr = check_layer(&ls[j], k, subject->s, v, st, &c, &le);
		if (lr == CM_ENOMEM)
			rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		else if (lr == 0) {
			pass = 1;
			if (log)
				fprintf(log,
					"verified %s: signed by %s key %s, identity %s "
					"(verify.sigstore, %s:%d)\n",
					full, sig_cosign_key_type(k), sig_cosign_key_fingerprint(k),
					c.identity, s->file, v->line);
		} else if (wl < sizeof(why) - 1) {
			int w = snprintf(why + wl, sizeof(why) - wl, "%ssignature %zu: %s",
					 wl ? "; " : "", j + 1, le.msg);
			wl = w < 0 ? wl : wl + (size_t)w;
			if (wl >= sizeof(why))
				wl = sizeof(why) - 1;
		}
	}
	sig_cosign_layers_free(ls, n);
	sig_cosign_key_free(k);
	if (rc < 0)
		return cm_error_wrap(err, "%s:%d: image %s: checking its signature %s", s->file,
				     line, full, sig->digest.s);
	if (!pass)
		return cm_error_set(err, CM_EVERIFY,
				    "%s:%d: image %s is refused by the signature policy "
				    "(verify.sigstore, line %d): %s",
				    s->file, line, full, v->line,
				    n ? why : "its .sig manifest lists no signature");
	return 0;
}
