/* The signature policy of the spec (verify.sigstore, builder/bld_spec.c)
 * and its check against a .sig manifest in a store (builder/bld_policy.c):
 * parse errors name file:line:column; per image wins over global; the
 * check passes one good layer among bad ones, refuses a payload whose
 * descriptor size lies, a manifest without signature layers, an image with
 * 'from:'. Keys and signatures are made here with OpenSSL. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bld_policy.h"
#include "bld_spec.h"
#include "cm_error.h"
#include "cm_file.h"
#include "reg_store.h"
#include "sig.h"
#include "tu.h"

static char g_dir[] = "/tmp/ferry-policy-test.XXXXXX";
static int g_seq;

#define HEAD "apiVersion: ferry/v1\nkind: Bundle\nmetadata:\n  name: t\n"
#define DIG_A "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DIG_B "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static int load(bld_spec *s, const char *text, cm_error *err)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/spec%d.yaml", g_dir, ++g_seq);
	cm_file_write_atomic(path, text, strlen(text), 0644, err);
	return bld_spec_load(s, path, err);
}

/* refused with CM_EINVAL at LINE, the message holding want */
static void refused(const char *text, int line, const char *want)
{
	bld_spec s;
	cm_error err = {0};
	int rc = load(&s, text, &err);
	char at[64];
	snprintf(at, sizeof(at), ".yaml:%d:", line);
	TU_CHECK_MSG(rc == CM_EINVAL && strstr(err.msg, at) && strstr(err.msg, want),
		     "rc %d: %s (want line %d, '%s')", rc, err.msg, line, want);
	if (rc == 0)
		bld_spec_free(&s);
}

static void test_spec_parse(void)
{
	bld_spec s;
	cm_error err = {0};
	int rc =
	    load(&s,
		 HEAD "verify:\n  sigstore:\n    key: keys/a.pub\n    identity: \"docker.io/x/*\"\n"
		      "images:\n  - docker.io/x/a:1\n  - ref: docker.io/x/b:1\n    verify:\n"
		      "      sigstore:\n        key: /abs/b.pub\n",
		 &err);
	TU_CHECK_MSG(rc == 0, "%s", err.msg);
	if (rc == 0) {
		TU_CHECK_STR(s.verify.key, "keys/a.pub");
		TU_CHECK_STR(s.verify.identity, "docker.io/x/*");
		TU_CHECK(s.verify.line == 5);
		const bld_verify_spec *a = bld_spec_verify(&s, 0), *b = bld_spec_verify(&s, 1);
		TU_CHECK(a == &s.verify);
		TU_CHECK(b && strcmp(b->key, "/abs/b.pub") == 0 && !b->identity[0] &&
			 b->line == 12);
		bld_spec_free(&s);
	}
	/* no policy: none for any image */
	rc = load(&s, HEAD "images:\n  - docker.io/x/a:1\n", &err);
	TU_CHECK(rc == 0 && bld_spec_verify(&s, 0) == NULL);
	if (rc == 0)
		bld_spec_free(&s);

	refused(HEAD "verify:\n  sigstore:\n    identity: x\n", 7, "verify.sigstore needs 'key'");
	refused(HEAD "verify:\n  sigstore:\n    key: k\n    keyless: true\n", 8,
		"keyless verification");
	refused(HEAD "verify:\n  sigstore:\n    key: k\n    rekor: https://rekor\n", 8,
		"not supported");
	refused(HEAD "verify:\n  notation: {}\n", 6, "unknown key 'notation' in verify");
	refused(HEAD "verify:\n  sigstore:\n    key: k\n    key: j\n", 8, "given twice");
	refused(HEAD "verify: yes\n", 5, "'verify' must be a mapping");
	refused(HEAD "verify: {}\n", 5, "needs 'sigstore'");
	refused(HEAD "images:\n  - ref: a/b:1\n    verify:\n      sigstore:\n        key: [a]\n", 9,
		"must be a scalar");
	refused(HEAD "images:\n  - ref: a/b:1\n    verfy: {}\n", 7, "unknown key 'verfy'");
}

/* A store holding a .sig manifest with given layers; the check of it. */
static EVP_PKEY *g_key;
static char g_pub[600];

static void put(reg_digest *out, reg_store *st, const char *s)
{
	cm_error err = {0};
	reg_store_put(out, st, s, strlen(s), &err);
}

static void sign_b64(char *out, size_t n, const char *msg)
{
	unsigned char sig[256];
	size_t sl = sizeof(sig);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	out[0] = '\0';
	if (EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, g_key) == 1 &&
	    EVP_DigestSign(c, sig, &sl, (const unsigned char *)msg, strlen(msg)) == 1 &&
	    n > 4 * ((sl + 2) / 3))
		EVP_EncodeBlock((unsigned char *)out, sig, (int)sl);
	EVP_MD_CTX_free(c);
}

static void test_check(void)
{
	char spec[8192], sdir[600];
	snprintf(sdir, sizeof(sdir), "%s/store", g_dir);
	reg_store *st = NULL;
	cm_error err = {0};
	TU_CHECK_MSG(reg_store_open(&st, sdir, &err) == 0, "%s", err.msg);
	if (!st)
		return;
	snprintf(spec, sizeof(spec),
		 HEAD "verify:\n  sigstore:\n    key: %s\n    identity: \"docker.io/x/*\"\n"
		      "images:\n  - docker.io/x/a:1\n",
		 g_pub);
	bld_spec s;
	int rc = load(&s, spec, &err);
	TU_CHECK_MSG(rc == 0, "%s", err.msg);
	if (rc < 0) {
		reg_store_free(st);
		return;
	}
	TU_CHECK(bld_policy_precheck(&s, &err) == 0);

	char good[400], bad[400], sig[200], sig_bad[200];
	snprintf(
	    good, sizeof(good),
	    "{\"critical\":{\"identity\":{\"docker-reference\":\"docker.io/x/a:1\"},\"image\":{"
	    "\"docker-manifest-digest\":\"%s\"},\"type\":\"cosign container image "
	    "signature\"},\"optional\":null}",
	    DIG_A);
	snprintf(bad, sizeof(bad), "%s", good);
	bad[strlen(bad) - 5] = 'X'; /* not signed as such */
	sign_b64(sig, sizeof(sig), good);
	snprintf(sig_bad, sizeof(sig_bad), "%s", sig);
	reg_digest pg, pb, man;
	put(&pg, st, good);
	put(&pb, st, bad);
	char m[4096];
	/* a bad layer, a layer of another type, then the good one: passes */
	snprintf(m, sizeof(m),
		 "{\"schemaVersion\":2,\"layers\":["
		 "{\"mediaType\":\"" SIG_COSIGN_MEDIA_TYPE "\",\"size\":%zu,\"digest\":\"%s\","
		 "\"annotations\":{\"" SIG_COSIGN_ANNOTATION "\":\"%s\"}},"
		 "{\"mediaType\":\"text/plain\",\"size\":%zu,\"digest\":\"%s\"},"
		 "{\"mediaType\":\"" SIG_COSIGN_MEDIA_TYPE "\",\"size\":%zu,\"digest\":\"%s\","
		 "\"annotations\":{\"" SIG_COSIGN_ANNOTATION "\":\"%s\"}}]}",
		 strlen(bad), pb.s, sig_bad, strlen(good), pg.s, strlen(good), pg.s, sig);
	put(&man, st, m);
	reg_desc d;
	memset(&d, 0, sizeof(d));
	d.digest = man;
	d.size = strlen(m);
	reg_digest subj;
	reg_digest_parse(&subj, DIG_A, &err);
	rc = bld_policy_check(&s, 0, "docker.io/x/a:1", &subj, st, &d, NULL, &err);
	TU_CHECK_MSG(rc == 0, "%s", err.msg);
	/* the same signature for another image: refused, saying why per layer */
	reg_digest other;
	reg_digest_parse(&other, DIG_B, &err);
	rc = bld_policy_check(&s, 0, "docker.io/x/a:1", &other, st, &d, NULL, &err);
	TU_CHECK(rc == CM_EVERIFY);
	TU_CHECK_MSG(strstr(err.msg, "image docker.io/x/a:1 is refused by the signature policy") &&
			 strstr(err.msg, "signature 1: the signature does not verify") &&
			 strstr(err.msg, "signature 2: layer type text/plain") &&
			 strstr(err.msg, "signature 3: the signature is for " DIG_A),
		     "%s", err.msg);
	/* unsigned */
	rc = bld_policy_check(&s, 0, "docker.io/x/a:1", &subj, st, NULL, NULL, &err);
	TU_CHECK(rc == CM_EVERIFY && strstr(err.msg, "it is not signed"));
	/* a descriptor whose size lies about the payload */
	snprintf(m, sizeof(m),
		 "{\"layers\":[{\"mediaType\":\"" SIG_COSIGN_MEDIA_TYPE
		 "\",\"size\":%zu,\"digest\":"
		 "\"%s\",\"annotations\":{\"" SIG_COSIGN_ANNOTATION "\":\"%s\"}}]}",
		 strlen(good) + 1, pg.s, sig);
	put(&man, st, m);
	d.digest = man;
	rc = bld_policy_check(&s, 0, "docker.io/x/a:1", &subj, st, &d, NULL, &err);
	TU_CHECK_MSG(rc == CM_EVERIFY && strstr(err.msg, "its descriptor says"), "%s", err.msg);
	/* a manifest with no layers; one that is not JSON */
	put(&man, st, "{\"layers\":[]}");
	d.digest = man;
	rc = bld_policy_check(&s, 0, "docker.io/x/a:1", &subj, st, &d, NULL, &err);
	TU_CHECK_MSG(rc == CM_EVERIFY && strstr(err.msg, "lists no signature"), "%s", err.msg);
	put(&man, st, "not json");
	d.digest = man;
	rc = bld_policy_check(&s, 0, "docker.io/x/a:1", &subj, st, &d, NULL, &err);
	TU_CHECK_MSG(rc == CM_EVERIFY && strstr(err.msg, "not JSON"), "%s", err.msg);
	bld_spec_free(&s);

	/* an image from an archive under a policy is refused before any fetch */
	snprintf(spec, sizeof(spec),
		 HEAD "verify:\n  sigstore:\n    key: %s\nimages:\n  - ref: docker.io/x/a:1\n"
		      "    from: oci-archive:a.tar\n",
		 g_pub);
	rc = load(&s, spec, &err);
	TU_CHECK(rc == 0);
	if (rc == 0) {
		rc = bld_policy_precheck(&s, &err);
		TU_CHECK_MSG(rc == CM_EVERIFY && strstr(err.msg, ":9: image docker.io/x/a:1") &&
				 strstr(err.msg, "holds no cosign signature"),
			     "%s", err.msg);
		bld_spec_free(&s);
	}
	/* a key that is not there: CM_EINVAL naming the spec line */
	rc =
	    load(&s, HEAD "verify:\n  sigstore:\n    key: nothere.pub\nimages:\n  - a/b:1\n", &err);
	TU_CHECK(rc == 0);
	if (rc == 0) {
		rc = bld_policy_precheck(&s, &err);
		TU_CHECK_MSG(rc < 0 && rc != CM_EVERIFY &&
				 strstr(err.msg, ":5: verify.sigstore.key"),
			     "%s", err.msg);
		bld_spec_free(&s);
	}
	reg_store_free(st);
}

int main(void)
{
	if (!mkdtemp(g_dir))
		return 1;
	g_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	snprintf(g_pub, sizeof(g_pub), "%s/k.pub", g_dir);
	FILE *f = fopen(g_pub, "w");
	if (!g_key || !f)
		return 1;
	PEM_write_PUBKEY(f, g_key);
	fclose(f);
	TU_RUN(test_spec_parse);
	TU_RUN(test_check);
	EVP_PKEY_free(g_key);
	cm_rmtree(g_dir);
	TU_EXIT();
}
