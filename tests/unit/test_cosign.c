/* Unit tests for signing/sig_cosign.c: cosign public keys (ECDSA P-256,
 * Ed25519), simple-signing payloads, .sig manifests and containers/image
 * signature files, with hostile inputs. Keys and signatures are made here
 * with OpenSSL (the test's own signer, independent of the code under test). */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "cm_file.h"
#include "sig.h"
#include "tu.h"

static char g_dir[] = "/tmp/ferry-cosign-test.XXXXXX";
static EVP_PKEY *g_ec, *g_ed, *g_ec2;
static char g_ec_pub[300], g_ed_pub[300], g_ec2_pub[300];

#define DIG_A "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DIG_B "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void payload(char *out, size_t n, const char *digest, const char *identity)
{
	snprintf(out, n,
		 "{\"critical\":{\"identity\":{\"docker-reference\":\"%s\"},\"image\":{\"docker-"
		 "manifest-digest\":\"%s\"},\"type\":\"cosign container image signature\"},"
		 "\"optional\":null}",
		 identity, digest);
}

static void write_pub(char *path, size_t n, EVP_PKEY *k, const char *name)
{
	snprintf(path, n, "%s/%s", g_dir, name);
	FILE *f = fopen(path, "w");
	if (f) {
		PEM_write_PUBKEY(f, k);
		fclose(f);
	}
}

/* base64 signature of msg by k (ECDSA: SHA-256, DER; Ed25519: pure). */
static void sign_b64(char *out, size_t n, EVP_PKEY *k, const char *msg)
{
	unsigned char sig[256];
	size_t sl = sizeof(sig);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ed = EVP_PKEY_get_id(k) == EVP_PKEY_ED25519;
	out[0] = '\0';
	if (EVP_DigestSignInit(c, NULL, ed ? NULL : EVP_sha256(), NULL, k) == 1 &&
	    EVP_DigestSign(c, sig, &sl, (const unsigned char *)msg, strlen(msg)) == 1 &&
	    n > 4 * ((sl + 2) / 3))
		EVP_EncodeBlock((unsigned char *)out, sig, (int)sl);
	EVP_MD_CTX_free(c);
}

static sig_cosign_key *load(const char *path)
{
	sig_cosign_key *k = NULL;
	cm_error err = {0};
	if (sig_cosign_key_load(&k, path, &err) < 0)
		printf("#   load %s: %s\n", path, err.msg);
	return k;
}

static void test_keys(void)
{
	sig_cosign_key *ec = load(g_ec_pub), *ed = load(g_ed_pub);
	TU_CHECK(ec && ed);
	TU_CHECK_STR(sig_cosign_key_type(ec), "ECDSA P-256");
	TU_CHECK_STR(sig_cosign_key_type(ed), "Ed25519");
	TU_CHECK(strncmp(sig_cosign_key_fingerprint(ec), "sha256:", 7) == 0);
	sig_cosign_key_free(ec);
	sig_cosign_key_free(ed);
	sig_cosign_key_free(NULL);

	/* a P-384 key, an RSA key, a private key, garbage: refused naming the file */
	cm_error err = {0};
	sig_cosign_key *k = NULL;
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp384r1");
	char path[300];
	write_pub(path, sizeof(path), p384, "p384.pub");
	TU_CHECK(sig_cosign_key_load(&k, path, &err) == CM_EINVAL && !k);
	TU_CHECK_MSG(strstr(err.msg, "want ECDSA P-256 or Ed25519") && strstr(err.msg, path), "%s",
		     err.msg);
	EVP_PKEY_free(p384);
	snprintf(path, sizeof(path), "%s/priv.pem", g_dir);
	FILE *f = fopen(path, "w");
	PEM_write_PrivateKey(f, g_ec, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	TU_CHECK(sig_cosign_key_load(&k, path, &err) == CM_EINVAL);
	TU_CHECK_MSG(strstr(err.msg, "is a private key"), "%s", err.msg);
	snprintf(path, sizeof(path), "%s/enc.key", g_dir);
	static const char enc[] =
	    "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnt9fQ==\n"
	    "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n";
	cm_file_write_atomic(path, enc, sizeof(enc) - 1, 0644, &err);
	TU_CHECK(sig_cosign_key_load(&k, path, &err) == CM_EINVAL);
	TU_CHECK_MSG(strstr(err.msg, "is a private key"), "%s", err.msg);
	snprintf(path, sizeof(path), "%s/empty.pub", g_dir);
	cm_file_write_atomic(path, "", 0, 0644, &err);
	TU_CHECK(sig_cosign_key_load(&k, path, &err) == CM_EINVAL);
	TU_CHECK_MSG(strstr(err.msg, "is empty"), "%s", err.msg);
	snprintf(path, sizeof(path), "%s/junk.pub", g_dir);
	cm_file_write_atomic(path, "hello\n", 6, 0644, &err);
	TU_CHECK(sig_cosign_key_load(&k, path, &err) == CM_EINVAL);
	TU_CHECK_MSG(strstr(err.msg, "not a PEM public key"), "%s", err.msg);
}

/* A good signature passes with both key types; the claims come back. */
static void test_check_ok(void)
{
	EVP_PKEY *keys[] = {g_ec, g_ed};
	const char *pubs[] = {g_ec_pub, g_ed_pub};
	for (int i = 0; i < 2; i++) {
		sig_cosign_key *k = load(pubs[i]);
		char p[600], s[200];
		payload(p, sizeof(p), DIG_A, "docker.io/kserve/sklearn:1");
		sign_b64(s, sizeof(s), keys[i], p);
		sig_cosign_claims c;
		cm_error err = {0};
		int rc =
		    sig_cosign_check(&c, k, p, strlen(p), s, DIG_A, "docker.io/kserve/*", &err);
		TU_CHECK_MSG(rc == 0, "%s: %s", sig_cosign_key_type(k), err.msg);
		TU_CHECK_STR(c.digest, DIG_A);
		TU_CHECK_STR(c.identity, "docker.io/kserve/sklearn:1");
		/* cosign's default identity for Docker Hub: index.docker.io/... */
		char p2[600], s2[200];
		payload(p2, sizeof(p2), DIG_A, "index.docker.io/kserve/sklearn");
		sign_b64(s2, sizeof(s2), keys[i], p2);
		TU_CHECK(sig_cosign_check(NULL, k, p2, strlen(p2), s2, DIG_A, "docker.io/kserve/*",
					  &err) == 0);
		TU_CHECK(sig_cosign_check(NULL, k, p2, strlen(p2), s2, DIG_A, "docker.io/acme/*",
					  &err) == CM_EVERIFY);
		/* no pattern: any identity */
		TU_CHECK(sig_cosign_check(NULL, k, p, strlen(p), s, DIG_A, NULL, &err) == 0);
		sig_cosign_key_free(k);
	}
}

/* Each refusal says which check failed. */
static void test_check_refusals(void)
{
	sig_cosign_key *k = load(g_ec_pub), *ked = load(g_ed_pub);
	char p[600], s[200], s2[200];
	payload(p, sizeof(p), DIG_A, "docker.io/kserve/sklearn:1");
	sign_b64(s, sizeof(s), g_ec, p);
	sign_b64(s2, sizeof(s2), g_ec2, p);
	cm_error err = {0};
	/* another key */
	TU_CHECK(sig_cosign_check(NULL, k, p, strlen(p), s2, DIG_A, NULL, &err) == CM_EVERIFY);
	TU_CHECK_MSG(strstr(err.msg, "another key"), "%s", err.msg);
	/* an ECDSA signature checked with an Ed25519 key */
	TU_CHECK(sig_cosign_check(NULL, ked, p, strlen(p), s, DIG_A, NULL, &err) == CM_EVERIFY);
	/* replayed onto another digest */
	TU_CHECK(sig_cosign_check(NULL, k, p, strlen(p), s, DIG_B, NULL, &err) == CM_EVERIFY);
	TU_CHECK_MSG(strstr(err.msg, "replayed") && strstr(err.msg, DIG_A), "%s", err.msg);
	/* identity outside the pattern */
	TU_CHECK(sig_cosign_check(NULL, k, p, strlen(p), s, DIG_A, "docker.io/acme/*", &err) ==
		 CM_EVERIFY);
	TU_CHECK_MSG(strstr(err.msg, "identity docker.io/kserve/sklearn:1 is not"), "%s", err.msg);
	/* a tampered payload (one byte) */
	char t[600];
	snprintf(t, sizeof(t), "%s", p);
	t[strlen(t) - 3] = 'X';
	TU_CHECK(sig_cosign_check(NULL, k, t, strlen(t), s, DIG_A, NULL, &err) == CM_EVERIFY);
	TU_CHECK_MSG(strstr(err.msg, "does not verify"), "%s", err.msg);
	/* bad base64: blanks, bad alphabet, no padding, empty, huge */
	const char *bad[] = {"MEUCIQ D=", "MEUC*Q==", "MEUCIQ", "", "===="};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TU_CHECK(sig_cosign_check(NULL, k, p, strlen(p), bad[i], DIG_A, NULL, &err) ==
			 CM_EVERIFY);
		TU_CHECK_MSG(strstr(err.msg, "base64") || strstr(err.msg, "empty") ||
				 strstr(err.msg, "does not verify"),
			     "%s", err.msg);
	}
	char huge[4000];
	memset(huge, 'A', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	TU_CHECK(sig_cosign_check(NULL, k, p, strlen(p), huge, DIG_A, NULL, &err) == CM_EVERIFY);
	TU_CHECK_MSG(strstr(err.msg, "more than"), "%s", err.msg);
	TU_CHECK(sig_cosign_check(NULL, k, p, strlen(p), NULL, DIG_A, NULL, &err) == CM_EVERIFY);
	/* a wrong-length Ed25519 signature */
	TU_CHECK(sig_cosign_check(NULL, ked, p, strlen(p), "AAAA", DIG_A, NULL, &err) ==
		 CM_EVERIFY);
	TU_CHECK_MSG(strstr(err.msg, "Ed25519 signature is 64"), "%s", err.msg);
	/* a huge payload: refused before any parsing */
	size_t hn = SIG_COSIGN_PAYLOAD_MAX + 1;
	char *hp = malloc(hn);
	memset(hp, ' ', hn);
	TU_CHECK(sig_cosign_check(NULL, k, hp, hn, s, DIG_A, NULL, &err) == CM_EVERIFY);
	TU_CHECK_MSG(strstr(err.msg, "more than"), "%s", err.msg);
	free(hp);
	sig_cosign_key_free(k);
	sig_cosign_key_free(ked);
}

/* Payloads that are signed but not what a cosign signature claims. */
static void test_payload_parse(void)
{
	struct {
		const char *json, *want;
	} cases[] = {
	    {"[]", "not an object"},
	    {"{\"critical\":{}", "not JSON"},
	    {"{\"critical\":{\"identity\":{\"docker-reference\":\"x\"},\"image\":{\"docker-"
	     "manifest-"
	     "digest\":\"" DIG_A "\"},\"type\":\"atomic container signature\"},\"optional\":null}",
	     "critical.type is \"atomic container signature\""},
	    {"{\"critical\":{\"identity\":{\"docker-reference\":\"x\"},\"image\":{\"docker-"
	     "manifest-"
	     "digest\":\"" DIG_A "\"},\"type\":7},\"optional\":null}",
	     "not a string"},
	    {"{\"critical\":{\"identity\":{\"docker-reference\":\"x\"},\"image\":{\"docker-"
	     "manifest-"
	     "digest\":\"sha256:zz\"},\"type\":\"cosign container image signature\"},\"optional\":"
	     "null}",
	     "is not a sha256 digest"},
	    {"{\"critical\":{\"identity\":{\"docker-reference\":\"x\"},\"image\":{\"docker-"
	     "manifest-"
	     "digest\":\"" DIG_A "\"},\"type\":\"cosign container image signature\",\"extra\":1},"
	     "\"optional\":null}",
	     "critical has other fields"},
	    {"{\"critical\":{\"identity\":{\"docker-reference\":\"x\"},\"image\":{},\"type\":"
	     "\"cosign container image signature\"},\"optional\":null}",
	     "critical.image has no"},
	    {"{\"critical\":{\"identity\":{\"docker-reference\":\"x\"},\"image\":{\"docker-"
	     "manifest-"
	     "digest\":\"" DIG_A "\"},\"type\":\"cosign container image signature\"}}",
	     "has no \"optional\""},
	    {"{\"critical\":{\"identity\":{\"docker-reference\":\"x\"},\"image\":{\"docker-"
	     "manifest-"
	     "digest\":\"" DIG_A "\"},\"type\":\"cosign container image signature\"},\"optional\":"
	     "null,\"optional\":null}",
	     "not JSON"}, /* a duplicate key */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sig_cosign_claims c;
		cm_error err = {0};
		int rc = sig_cosign_payload_parse(&c, cases[i].json, strlen(cases[i].json), &err);
		TU_CHECK_MSG(rc == CM_EVERIFY && strstr(err.msg, cases[i].want),
			     "case %zu: rc %d, %s (want %s)", i, rc, err.msg, cases[i].want);
	}
	/* a signed payload with a wrong type is refused by the check too */
	sig_cosign_key *k = load(g_ed_pub);
	char s[200];
	sign_b64(s, sizeof(s), g_ed, cases[2].json);
	cm_error err = {0};
	TU_CHECK(sig_cosign_check(NULL, k, cases[2].json, strlen(cases[2].json), s, DIG_A, NULL,
				  &err) == CM_EVERIFY);
	TU_CHECK_MSG(strstr(err.msg, "critical.type"), "%s", err.msg);
	sig_cosign_key_free(k);
}

static void test_manifest_layers(void)
{
	const char *m =
	    "{\"schemaVersion\":2,\"layers\":[{\"mediaType\":\"" SIG_COSIGN_MEDIA_TYPE
	    "\",\"size\":10,\"digest\":\"" DIG_A "\",\"annotations\":{\"" SIG_COSIGN_ANNOTATION
	    "\":\"QUJD\"}},{\"mediaType\":\"application/json\",\"size\":1,\"digest\":\"" DIG_B
	    "\"},{\"mediaType\":\"" SIG_COSIGN_MEDIA_TYPE "\",\"size\":1,\"digest\":\"" DIG_B
	    "\"}]}";
	sig_cosign_layer *v = NULL;
	size_t n = 0;
	cm_error err = {0};
	TU_CHECK(sig_cosign_manifest_layers(&v, &n, m, strlen(m), &err) == 0);
	TU_CHECK(n == 3);
	if (n == 3) {
		TU_CHECK_STR(v[0].sig_b64, "QUJD");
		TU_CHECK_STR(v[0].digest, DIG_A);
		TU_CHECK(v[0].size == 10);
		TU_CHECK(!v[1].sig_b64 && strstr(v[1].why, "not a signature"));
		TU_CHECK(!v[2].sig_b64 && strstr(v[2].why, "no dev.cosignproject"));
	}
	sig_cosign_layers_free(v, n);
	const char *bad[] = {"{", "{\"layers\":{}}",
			     "{\"layers\":[{\"mediaType\":\"x\",\"size\":-1,\"digest\":\"" DIG_A
			     "\"}]}",
			     "{\"layers\":[{\"size\":1,\"digest\":\"sha256:12\"}]}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TU_CHECK(sig_cosign_manifest_layers(&v, &n, bad[i], strlen(bad[i]), &err) ==
			 CM_EVERIFY);
		TU_CHECK(!v && n == 0);
	}
}

static void test_blob_parse(void)
{
	char p[600], s[200], b64p[1000], blob[2000];
	payload(p, sizeof(p), DIG_A, "docker.io/acme/app:1");
	sign_b64(s, sizeof(s), g_ec, p);
	EVP_EncodeBlock((unsigned char *)b64p, (const unsigned char *)p, (int)strlen(p));
	int bl = snprintf(blob, sizeof(blob),
			  "%csigstore-json\n{\"mimeType\":\"" SIG_COSIGN_MEDIA_TYPE
			  "\",\"payload\":\"%s\",\"annotations\":{\"" SIG_COSIGN_ANNOTATION
			  "\":\"%s\"}}",
			  0, b64p, s);
	cm_buf out = CM_BUF_INIT;
	char *sig = NULL;
	cm_error err = {0};
	TU_CHECK_MSG(sig_cosign_blob_parse(&out, &sig, blob, (size_t)bl, &err) == 0, "%s", err.msg);
	TU_CHECK(out.len == strlen(p) && memcmp(out.data, p, out.len) == 0);
	TU_CHECK_STR(sig, s);
	sig_cosign_key *k = load(g_ec_pub);
	TU_CHECK(sig_cosign_check(NULL, k, out.data, out.len, sig, DIG_A, NULL, &err) == 0);
	sig_cosign_key_free(k);
	free(sig);
	cm_buf_free(&out);

	/* hostile: no header, bad base64 payload, wrong mimeType, truncated, huge */
	const char *bad[] = {
	    "{\"mimeType\":1}",
	    "\0sigstore-json\n{\"mimeType\":\"" SIG_COSIGN_MEDIA_TYPE
	    "\",\"payload\":\"!!!!\",\"annotations\":{\"" SIG_COSIGN_ANNOTATION "\":\"QQ==\"}}",
	    "\0sigstore-json\n{\"mimeType\":\"text/plain\",\"payload\":\"QQ==\","
	    "\"annotations\":{\"" SIG_COSIGN_ANNOTATION "\":\"QQ==\"}}",
	    "\0sigstore-json\n{\"mimeType\":\"" SIG_COSIGN_MEDIA_TYPE "\",\"payload\":\"QQ==\"}",
	    "\0sigstore-json\n{\"mimeType\":"};
	const char *why[] = {"no \"\\0sigstore-json", "not base64", "mimeType is text/plain",
			     "no dev.cosignproject", "not JSON"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = i == 0 ? strlen(bad[i]) : 15 + strlen(bad[i] + 15);
		TU_CHECK_MSG(sig_cosign_blob_parse(&out, &sig, bad[i], n, &err) == CM_EVERIFY &&
				 strstr(err.msg, why[i]),
			     "case %zu: %s", i, err.msg);
		TU_CHECK(!sig);
		cm_buf_free(&out);
	}
	size_t hn = 1 << 20;
	char *huge = calloc(1, hn);
	memcpy(huge, "\0sigstore-json\n", 15);
	memset(huge + 15, 'A', hn - 15);
	TU_CHECK(sig_cosign_blob_parse(&out, &sig, huge, hn, &err) == CM_EVERIFY);
	TU_CHECK_MSG(strstr(err.msg, "too large"), "%s", err.msg);
	free(huge);
	cm_buf_free(&out);
}

int main(void)
{
	if (!mkdtemp(g_dir))
		return 1;
	g_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	g_ec2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	g_ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!g_ec || !g_ec2 || !g_ed)
		return 1;
	write_pub(g_ec_pub, sizeof(g_ec_pub), g_ec, "ec.pub");
	write_pub(g_ec2_pub, sizeof(g_ec2_pub), g_ec2, "ec2.pub");
	write_pub(g_ed_pub, sizeof(g_ed_pub), g_ed, "ed.pub");
	TU_RUN(test_keys);
	TU_RUN(test_check_ok);
	TU_RUN(test_check_refusals);
	TU_RUN(test_payload_parse);
	TU_RUN(test_manifest_layers);
	TU_RUN(test_blob_parse);
	EVP_PKEY_free(g_ec);
	EVP_PKEY_free(g_ec2);
	EVP_PKEY_free(g_ed);
	cm_rmtree(g_dir);
	TU_EXIT();
}
