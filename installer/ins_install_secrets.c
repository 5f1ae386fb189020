/* Pull secrets for a mirror that needs credentials (push mode into a
 * registry with auth): on OKD the cluster-wide pull-secret in
 * openshift-config gets the registry's entry merged in; elsewhere each
 * namespace the manifests use gets a kubernetes.io/dockerconfigjson Secret
 * and its default ServiceAccount lists it in imagePullSecrets. Secrets only
 * ever travel on kubectl's stdin, never in argv or messages, and every
 * buffer that held one is wiped (OPENSSL_cleanse) before it is freed. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_emit.h"
#include "ins_install.h"
#include "reg_client.h"

#define SECRET_NAME "ferry-pull-secret"
/* kubectl's answer holding the cluster's pull-secret: allocated at its
 * cap up front, so that growing never leaves a copy in freed memory
 * (ins_kube_get with wipe) */
#define PULL_SECRET_MAX ((size_t)1 << 20)

static char *b64(const void *p, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

static char *unb64(const char *s, size_t *n)
{
	size_t l = strlen(s);
	unsigned char *out = malloc(l + 1);
	if (out && reg_b64_decode(out, n, s, l) < 0) {
		OPENSSL_cleanse(out, l + 1);
		free(out);
		out = NULL;
	}
	return (char *)out;
}

int ins_pull_auth(char **out_auth, const char *host, cm_error *err)
{
	char user[256], secret[1024], src[512];
	*out_auth = NULL;
	int found = reg_auth_lookup(user, sizeof(user), secret, sizeof(secret), src, sizeof(src),
				    host, err);
	if (found <= 0)
		return found;
	if (reg_auth_is_identity(user)) {
		OPENSSL_cleanse(secret, sizeof(secret));
		return cm_error_set(err, CM_EFAIL,
				    "the credentials for %s from %s are an identity token, which a "
				    "kubelet pull secret cannot carry; give a user and password",
				    host, src);
	}
	char up[1300];
	int l = snprintf(up, sizeof(up), "%s:%s", user, secret);
	*out_auth = l > 0 && (size_t)l < sizeof(up) ? b64(up, (size_t)l) : NULL;
	OPENSSL_cleanse(up, sizeof(up));
	OPENSSL_cleanse(secret, sizeof(secret));
	if (l < 0 || (size_t)l >= sizeof(up))
		return cm_error_set(err, CM_EINVAL, "the credentials for %s from %s are too long",
				    host, src);
	return *out_auth ? 1 : cm_error_set(err, CM_ENOMEM, "out of memory");
}

static const char *const apply_stdin[] = {
    "apply", "--server-side", "--force-conflicts", "--field-manager=ferry", "-f", "-", NULL};

/* Apply the Secret name in ns holding cfg (a dockerconfigjson document,
 * at most cap bytes as text), written as JSON (which kubectl reads as YAML): jansson's output
 * goes into buffers allocated at their caps, and every copy of the secret
 * is wiped; cfg is dropped. */
static int apply_secret(const ins_ctx *c, const ins_kube *k, const char *name, const char *ns,
			json_t *cfg, size_t cap, cm_error *err)
{
	char *doc = NULL, *enc = NULL, *y = NULL;
	int rc = cm_json_text(&doc, cfg, cap, 1, err);
	cm_json_decref_wiped(cfg);
	if (rc == 0 && !(enc = b64(doc, strlen(doc))))
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	cm_free_wiped(doc);
	json_t *s =
	    rc < 0 ? NULL
		   : json_pack("{s:s,s:s,s:{s:s,s:s},s:s,s:{s:s}}", "apiVersion", "v1", "kind",
			       "Secret", "metadata", "name", name, "namespace", ns, "type",
			       "kubernetes.io/dockerconfigjson", "data", ".dockerconfigjson", enc);
	if (rc == 0)
		rc = s ? cm_json_text(&y, s, strlen(enc) + 4096, 0, err)
		       : cm_error_set(err, CM_EINVAL, "the namespace %s is not UTF-8", ns);
	cm_free_wiped(enc);
	cm_json_decref_wiped(s);
	if (rc == 0)
		rc = ins_kube_run(c, k, apply_stdin, y, strlen(y), " < (secret)", NULL, err);
	cm_free_wiped(y);
	return rc;
}

int ins_okd_pull_secret(const ins_ctx *c, const ins_kube *k, const char *host, const char *auth,
			cm_error *err)
{
	/* the current pull-secret, merged with our entry; start afresh only
	 * when there is none: a failed read must not replace the cluster's
	 * other registry credentials */
	ins_ctx_say(c, INS_SAY_INFO, "query: the cluster's pull-secret (openshift-config)");
	json_t *sec = NULL, *cfg = NULL;
	cm_error ge = {0};
	int grc = ins_kube_get(&sec, c, k, "secret", "pull-secret", "openshift-config",
			       PULL_SECRET_MAX, 1, &ge);
	if (grc < 0)
		return cm_error_set(
		    err, grc, "reading openshift-config/pull-secret (left as it is): %s", ge.msg);
	const char *enc =
	    json_string_value(json_object_get(json_object_get(sec, "data"), ".dockerconfigjson"));
	if (enc) {
		size_t n;
		char *dec = unb64(enc, &n);
		if (dec) {
			cfg = json_loadb(dec, n, 0, NULL);
			OPENSSL_cleanse(dec, n);
		}
		free(dec);
	}
	cm_json_decref_wiped(sec);
	if (!json_is_object(cfg)) {
		json_decref(cfg);
		cfg = json_object();
	}
	json_t *auths = json_object_get(cfg, "auths");
	if (!json_is_object(auths)) {
		auths = json_object();
		json_object_set_new(cfg, "auths", auths);
	}
	const char *have = json_string_value(json_object_get(json_object_get(auths, host), "auth"));
	if (have && strcmp(have, auth) == 0) {
		cm_json_decref_wiped(cfg);
		ins_ctx_say(c, INS_SAY_INFO, "the pull-secret already holds %s", host);
		return 0;
	}
	json_object_set_new(auths, host, json_pack("{s:s}", "auth", auth));
	if (apply_secret(c, k, "pull-secret", "openshift-config", cfg, 2 * PULL_SECRET_MAX, err) <
	    0)
		return cm_error_wrap(err, "merging %s into openshift-config/pull-secret", host);
	ins_ctx_say(c, INS_SAY_INFO,
		    "openshift-config/pull-secret now holds %s (nodes roll it out)", host);
	return 0;
}

/* The default ServiceAccount of ns: 1 and *has when it lists our secret,
 * *any when it lists any; 0 when there is no such ServiceAccount (yet). */
static int sa_pull_secrets(int *has, int *any, const ins_ctx *c, const ins_kube *k, const char *ns)
{
	json_t *sa = NULL;
	*has = *any = 0;
	int rc = ins_kube_get(&sa, c, k, "serviceaccount", "default", ns, (size_t)1 << 20, 0, NULL);
	size_t i;
	json_t *it;
	json_array_foreach(json_object_get(sa, "imagePullSecrets"), i, it)
	{
		*any = 1;
		const char *nm = json_string_value(json_object_get(it, "name"));
		*has |= nm && strcmp(nm, SECRET_NAME) == 0;
	}
	json_decref(sa);
	return rc;
}

int ins_ns_pull_secret(const ins_ctx *c, const ins_kube *k, const char *ns, const char *host,
		       const char *auth, cm_error *err)
{
	json_t *cfg = json_pack("{s:{s:{s:s}}}", "auths", host, "auth", auth);
	if (!cfg)
		return cm_error_set(err, CM_EINVAL, "the registry %s is not UTF-8", host);
	int rc = apply_secret(c, k, SECRET_NAME, ns, cfg, 16384, err);
	if (rc < 0)
		return cm_error_wrap(err, "pull secret in namespace %s", ns);
	/* the default ServiceAccount lists it (added, never replacing others) */
	int have = 0, any = 0;
	sa_pull_secrets(&have, &any, c, k, ns);
	if (have)
		return 0;
	/* a JSON patch: append to the list, or create it */
	json_t *pj = any ? json_pack("[{s:s,s:s,s:{s:s}}]", "op", "add", "path",
				     "/imagePullSecrets/-", "value", "name", SECRET_NAME)
			 : json_pack("[{s:s,s:s,s:[{s:s}]}]", "op", "add", "path",
				     "/imagePullSecrets", "value", "name", SECRET_NAME);
	char *patch = NULL;
	rc = pj ? cm_json_text(&patch, pj, 1024, 0, err)
		: cm_error_set(err, CM_ENOMEM, "out of memory");
	json_decref(pj);
	if (rc < 0)
		return rc;
	const char *p[] = {
	    "patch", "serviceaccount", "default", "-n", ns, "--type=json", "-p", patch, NULL};
	/* the default ServiceAccount appears shortly after its namespace:
	 * while it is absent, wait and try again */
	double wait = k->backoff > 0 ? k->backoff : 0.5;
	for (int attempt = 0;; attempt++) {
		cm_error e = {0};
		rc = ins_kube_run(c, k, p, NULL, 0, attempt ? "" : NULL, NULL, &e);
		if (rc < 0 && attempt < k->retries && sa_pull_secrets(&have, &any, c, k, ns) == 0) {
			ins_kube_backoff(&wait);
			continue;
		}
		if (rc < 0)
			cm_error_set(err, rc, "%s", e.msg);
		break;
	}
	free(patch);
	if (rc < 0)
		return cm_error_wrap(err, "adding the pull secret to serviceaccount default in %s",
				     ns);
	return 0;
}
