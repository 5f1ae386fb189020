/* cosign signatures, verify side (docs/supply-chain.md): public keys as
 * `cosign generate-key-pair` writes them, simple-signing payloads, .sig
 * manifests and the signature files containers/image writes. Linked by both
 * programs (libsigverify.a): no private-key code here.
 *
 * Checked against:
 *  - sigstore/sigstore pkg/signature/ecdsa.go (ECDSAVerifier: SHA-256 of the
 *    message, ecdsa.VerifyASN1) and ed25519.go (ED25519Verifier: pure
 *    ed25519.Verify over the message, no prehash); containers/image
 *    signature/internal/sigstore_payload.go loads them with LoadVerifier(key,
 *    SHA256), which is pure Ed25519 for an Ed25519 key;
 *  - containers/image signature/internal/sigstore_payload.go
 *    (strictUnmarshalJSON: "critical" has exactly type, image, identity;
 *    image exactly docker-manifest-digest; identity exactly
 *    docker-reference) and internal/signature/sigstore.go (the
 *    "\0sigstore-json\n" blob of a signature-N file);
 *  - cosign pkg/oci/static (the layer annotation
 *    dev.cosignproject.cosign/signature) and pkg/types (the media type). */
#include "sig.h"

#include <fnmatch.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "reg_digest.h"
#include "sig_ossl.h"

struct sig_cosign_key {
	EVP_PKEY *pkey;
	int ed25519;
	char fpr[SIG_FPR_LEN + 1];
};

int sig_cosign_key_load(sig_cosign_key **out, const char *path, cm_error *err)
{
	*out = NULL;
	EVP_PKEY *pk;
	char fpr[SIG_FPR_LEN + 1];
	int rc = sig_pubkey_pem(&pk, fpr, path, "cosign key", "ECDSA P-256 or Ed25519", err);
	if (rc < 0)
		return rc;
	int ed = EVP_PKEY_get_id(pk) == EVP_PKEY_ED25519;
	char curve[64] = "";
	size_t cl = 0;
	if (!ed && (EVP_PKEY_get_id(pk) != EVP_PKEY_EC ||
		    EVP_PKEY_get_utf8_string_param(pk, "group", curve, sizeof(curve), &cl) != 1 ||
		    strcmp(curve, "prime256v1") != 0)) {
		const char *t = EVP_PKEY_get0_type_name(pk);
		ERR_clear_error();
		rc = cm_error_set(err, CM_EINVAL,
				  "cosign key %s is %s%s%s, want ECDSA P-256 or Ed25519", path,
				  t ? t : "an unknown key type", curve[0] ? " on " : "", curve);
		EVP_PKEY_free(pk);
		return rc;
	}
	sig_cosign_key *k = calloc(1, sizeof(*k));
	if (!k) {
		EVP_PKEY_free(pk);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	k->pkey = pk;
	k->ed25519 = ed;
	memcpy(k->fpr, fpr, sizeof(fpr));
	*out = k;
	return 0;
}

void sig_cosign_key_free(sig_cosign_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *sig_cosign_key_type(const sig_cosign_key *k)
{
	return k && k->ed25519 ? "Ed25519" : "ECDSA P-256";
}

const char *sig_cosign_key_fingerprint(const sig_cosign_key *k)
{
	return k ? k->fpr : "";
}

/* Strict standard base64 (as Go's base64.StdEncoding decodes it): the
 * alphabet, padded to a multiple of 4, no blanks. out holds 3*len/4 bytes. */
static int b64_decode(unsigned char *out, size_t *out_n, const char *s, size_t len)
{
	if (len == 0 || len % 4 || len > INT_MAX)
		return -1;
	size_t pad = s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
	for (size_t i = 0; i < len - pad; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/'))
			return -1;
	}
	int n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n < pad)
		return -1;
	*out_n = (size_t)n - pad;
	return 0;
}

/* The object o's members are exactly the names given (NULL-terminated). */
static int exact_fields(const json_t *o, const char *const *names, const char *where, cm_error *err)
{
	if (!json_is_object(o))
		return cm_error_set(err, CM_EVERIFY, "payload: %s is not an object", where);
	size_t want = 0;
	for (; names[want]; want++)
		if (!json_object_get(o, names[want]))
			return cm_error_set(err, CM_EVERIFY, "payload: %s has no \"%s\"", where,
					    names[want]);
	if (json_object_size(o) != want)
		return cm_error_set(err, CM_EVERIFY,
				    "payload: %s has other fields than the %zu it may hold", where,
				    want);
	return 0;
}

/* A payload is untrusted: not empty, and capped before it is parsed. */
static int payload_size_ok(const void *payload, size_t n, cm_error *err)
{
	if (!payload || n == 0)
		return cm_error_set(err, CM_EVERIFY, "payload is empty");
	if (n > SIG_COSIGN_PAYLOAD_MAX)
		return cm_error_set(err, CM_EVERIFY,
				    "payload is %zu bytes, more than the %zu allowed", n,
				    SIG_COSIGN_PAYLOAD_MAX);
	return 0;
}

int sig_cosign_payload_parse(sig_cosign_claims *out, const void *payload, size_t n, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	int rc = payload_size_ok(payload, n, err);
	if (rc < 0)
		return rc;
	json_error_t je;
	json_t *j = json_loadb(payload, n, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return cm_error_set(err, CM_EVERIFY, "payload is not JSON: %s (at byte %d)",
				    je.text, je.position);
	/* exactly critical and optional (cosign writes "optional": null) */
	static const char *const top[] = {"critical", "optional", NULL};
	static const char *const crit[] = {"type", "image", "identity", NULL};
	static const char *const img[] = {"docker-manifest-digest", NULL};
	static const char *const idn[] = {"docker-reference", NULL};
	rc = exact_fields(j, top, "the payload", err);
	json_t *c = json_object_get(j, "critical");
	json_t *opt = json_object_get(j, "optional");
	if (rc == 0 && !json_is_null(opt) && !json_is_object(opt))
		rc = cm_error_set(err, CM_EVERIFY,
				  "payload: optional is neither null nor an object");
	if (rc == 0)
		rc = exact_fields(c, crit, "critical", err);
	json_t *im = json_object_get(c, "image"), *id = json_object_get(c, "identity");
	if (rc == 0)
		rc = exact_fields(im, img, "critical.image", err);
	if (rc == 0)
		rc = exact_fields(id, idn, "critical.identity", err);
	const char *t = json_string_value(json_object_get(c, "type"));
	const char *d = json_string_value(json_object_get(im, "docker-manifest-digest"));
	const char *r = json_string_value(json_object_get(id, "docker-reference"));
	if (rc == 0 && (!t || strcmp(t, SIG_COSIGN_TYPE) != 0))
		rc = cm_error_set(err, CM_EVERIFY,
				  "payload: critical.type is %s%.100s%s, not \"" SIG_COSIGN_TYPE
				  "\"",
				  t ? "\"" : "", t ? t : "not a string", t ? "\"" : "");
	reg_digest rd;
	if (rc == 0 && (!d || strncmp(d, "sha256:", 7) != 0 || reg_digest_parse(&rd, d, NULL) < 0))
		rc = cm_error_set(err, CM_EVERIFY,
				  "payload: critical.image.docker-manifest-digest %.100s is not a "
				  "sha256 digest",
				  d ? d : "(not a string)");
	if (rc == 0 && (!r || strlen(r) >= sizeof(out->identity)))
		rc = cm_error_set(err, CM_EVERIFY,
				  "payload: critical.identity.docker-reference is %s",
				  r ? "too long" : "not a string");
	if (rc == 0) {
		snprintf(out->digest, sizeof(out->digest), "%s", d);
		snprintf(out->identity, sizeof(out->identity), "%s", r);
	}
	json_decref(j);
	return rc;
}

/* The signature b64sig by k over msg: ECDSA P-256 with SHA-256 (DER), or
 * pure Ed25519 (EVP_DigestVerify with no digest, as OpenSSL wants it). */
static int verify_sig(const sig_cosign_key *k, const void *msg, size_t n, const char *b64sig,
		      cm_error *err)
{
	size_t bl = b64sig ? strlen(b64sig) : 0;
	if (bl == 0)
		return cm_error_set(err, CM_EVERIFY, "the signature annotation is empty");
	if (bl > SIG_COSIGN_B64_MAX)
		return cm_error_set(
		    err, CM_EVERIFY,
		    "the signature annotation is %zu bytes, more than the %d allowed", bl,
		    SIG_COSIGN_B64_MAX);
	unsigned char sig[SIG_COSIGN_B64_MAX];
	size_t sl = 0;
	if (b64_decode(sig, &sl, b64sig, bl) < 0)
		return cm_error_set(err, CM_EVERIFY, "the signature annotation is not base64");
	if (k->ed25519 && sl != SIG_LEN)
		return cm_error_set(
		    err, CM_EVERIFY,
		    "the signature is %zu bytes, an Ed25519 signature is %d (signed "
		    "by another key?)",
		    sl, SIG_LEN);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	int ok =
	    EVP_DigestVerifyInit(ctx, NULL, k->ed25519 ? NULL : EVP_sha256(), NULL, k->pkey) == 1
		? EVP_DigestVerify(ctx, sig, sl, msg, n)
		: -1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	if (ok == 1)
		return 0;
	return cm_error_set(err, CM_EVERIFY,
			    "the signature does not verify with the %s key %s: signed by another "
			    "key, or the payload was changed",
			    sig_cosign_key_type(k), k->fpr);
}

/* The signed identity matches the policy's glob as signed or, for Docker
 * Hub, with the host cosign writes by default (go-containerregistry's
 * Repository.Name(): "index.docker.io/...") read as "docker.io/...". */
static int identity_matches(const char *pattern, const char *identity)
{
	static const char hub[] = "index.docker.io/";
	if (fnmatch(pattern, identity, 0) == 0)
		return 1;
	char alt[600];
	if (strncmp(identity, hub, sizeof(hub) - 1) == 0 &&
	    (size_t)snprintf(alt, sizeof(alt), "docker.io/%s", identity + sizeof(hub) - 1) <
		sizeof(alt))
		return fnmatch(pattern, alt, 0) == 0;
	return 0;
}

int sig_cosign_check(sig_cosign_claims *out, const sig_cosign_key *k, const void *payload, size_t n,
		     const char *b64sig, const char *want_digest, const char *pattern,
		     cm_error *err)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!k)
		return cm_error_set(err, CM_EINVAL, "checking a cosign signature: no key");
	int rc = payload_size_ok(payload, n, err);
	if (rc < 0)
		return rc;
	rc = verify_sig(k, payload, n, b64sig, err);
	sig_cosign_claims c;
	if (rc == 0)
		rc = sig_cosign_payload_parse(&c, payload, n, err);
	if (rc < 0)
		return rc;
	if (out)
		*out = c;
	if (!want_digest || strcmp(c.digest, want_digest) != 0)
		return cm_error_set(err, CM_EVERIFY,
				    "the signature is for %s, not %s (a signature replayed from "
				    "another image?)",
				    c.digest, want_digest ? want_digest : "(none)");
	if (pattern && pattern[0] && !identity_matches(pattern, c.identity))
		return cm_error_set(err, CM_EVERIFY,
				    "the signed identity %s is not %s (the policy's identity)",
				    c.identity, pattern);
	return 0;
}

void sig_cosign_layers_free(sig_cosign_layer *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].sig_b64);
	free(v);
}

int sig_cosign_manifest_layers(sig_cosign_layer **out, size_t *out_n, const void *manifest,
			       size_t len, cm_error *err)
{
	*out = NULL;
	*out_n = 0;
	if (len > SIG_COSIGN_MANIFEST_MAX)
		return cm_error_set(err, CM_EVERIFY,
				    "signature manifest is %zu bytes, more than the %zu allowed",
				    len, SIG_COSIGN_MANIFEST_MAX);
	json_error_t je;
	json_t *j = json_loadb(manifest, len, JSON_REJECT_DUPLICATES, &je);
	json_t *ls = json_object_get(j, "layers");
	int rc = 0;
	if (!j)
		rc = cm_error_set(err, CM_EVERIFY, "signature manifest is not JSON: %s", je.text);
	else if (!json_is_array(ls))
		rc = cm_error_set(err, CM_EVERIFY, "signature manifest has no \"layers\" list");
	else if (json_array_size(ls) > SIG_COSIGN_LAYERS_MAX)
		rc = cm_error_set(err, CM_EVERIFY,
				  "signature manifest lists %zu layers, more than %d",
				  json_array_size(ls), SIG_COSIGN_LAYERS_MAX);
	size_t cnt = rc == 0 ? json_array_size(ls) : 0;
	sig_cosign_layer *v = rc == 0 ? calloc(cnt ? cnt : 1, sizeof(*v)) : NULL;
	if (rc == 0 && !v)
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < cnt; i++) {
		json_t *l = json_array_get(ls, i);
		const char *mt = json_string_value(json_object_get(l, "mediaType"));
		const char *d = json_string_value(json_object_get(l, "digest"));
		json_t *sz = json_object_get(l, "size");
		const char *s = json_string_value(
		    json_object_get(json_object_get(l, "annotations"), SIG_COSIGN_ANNOTATION));
		reg_digest rd;
		if (!d || reg_digest_parse(&rd, d, NULL) < 0 || !json_is_integer(sz) ||
		    json_integer_value(sz) < 0) {
			rc = cm_error_set(
			    err, CM_EVERIFY,
			    "signature manifest: layer %zu has no valid digest and size", i + 1);
			break;
		}
		snprintf(v[i].digest, sizeof(v[i].digest), "%s", rd.s);
		v[i].size = (unsigned long long)json_integer_value(sz);
		if (!mt || strcmp(mt, SIG_COSIGN_MEDIA_TYPE) != 0)
			snprintf(v[i].why, sizeof(v[i].why), "layer type %.100s is not a signature",
				 mt ? mt : "(none)");
		else if (!s)
			snprintf(v[i].why, sizeof(v[i].why),
				 "no " SIG_COSIGN_ANNOTATION " annotation");
		else if (!(v[i].sig_b64 = strdup(s)))
			rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	json_decref(j);
	if (rc < 0) {
		sig_cosign_layers_free(v, cnt);
		return rc;
	}
	*out = v;
	*out_n = cnt;
	return 0;
}

int sig_cosign_blob_parse(cm_buf *out_payload, char **out_sig_b64, const void *blob, size_t n,
			  cm_error *err)
{
	static const char head[] = "\0sigstore-json\n";
	const size_t hl = sizeof(head) - 1;
	*out_sig_b64 = NULL;
	if (n < hl || memcmp(blob, head, hl) != 0)
		return cm_error_set(
		    err, CM_EVERIFY,
		    "not a sigstore signature (no \"\\0sigstore-json\\n\" header; a "
		    "simple-signing GPG signature?)");
	/* the payload is base64 inside: 4/3 of the cap, plus the rest */
	if (n - hl > SIG_COSIGN_PAYLOAD_MAX * 2 + SIG_COSIGN_B64_MAX + 4096)
		return cm_error_set(err, CM_EVERIFY, "the signature file is too large (%zu bytes)",
				    n);
	json_error_t je;
	json_t *j = json_loadb((const char *)blob + hl, n - hl, JSON_REJECT_DUPLICATES, &je);
	const char *mt = json_string_value(json_object_get(j, "mimeType"));
	const char *p = json_string_value(json_object_get(j, "payload"));
	const char *s = json_string_value(
	    json_object_get(json_object_get(j, "annotations"), SIG_COSIGN_ANNOTATION));
	int rc = 0;
	unsigned char *dec = NULL;
	size_t pl = p ? strlen(p) : 0, dl = 0;
	if (!j)
		rc = cm_error_set(err, CM_EVERIFY, "the signature file is not JSON: %s", je.text);
	else if (!mt || strcmp(mt, SIG_COSIGN_MEDIA_TYPE) != 0)
		rc = cm_error_set(err, CM_EVERIFY,
				  "the signature's mimeType is %.100s, not " SIG_COSIGN_MEDIA_TYPE,
				  mt ? mt : "missing");
	else if (!p)
		rc = cm_error_set(err, CM_EVERIFY, "the signature file has no payload");
	else if (!s)
		rc = cm_error_set(err, CM_EVERIFY,
				  "the signature file has no " SIG_COSIGN_ANNOTATION " annotation");
	else if (pl / 4 * 3 > SIG_COSIGN_PAYLOAD_MAX + 3)
		rc = cm_error_set(err, CM_EVERIFY, "the payload is more than %zu bytes",
				  SIG_COSIGN_PAYLOAD_MAX);
	else if (!(dec = malloc(pl / 4 * 3 + 4)))
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	else if (b64_decode(dec, &dl, p, pl) < 0)
		rc = cm_error_set(err, CM_EVERIFY, "the signature file's payload is not base64");
	if (rc == 0)
		rc = cm_buf_append(out_payload, dec, dl, err);
	if (rc == 0 && !(*out_sig_b64 = strdup(s)))
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	free(dec);
	json_decref(j);
	return rc;
}
