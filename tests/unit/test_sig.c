/* Unit tests for signing/: key generation, loading, signing, verification,
 * and compatibility with the stock openssl(1) command. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "cm_file.h"
#include "sig.h"
#include "tu.h"

static char g_dir[] = "/tmp/ferry-sig-test.XXXXXX";
static int g_seq;

/* A fresh path prefix inside the temp dir. */
static void fresh(char *out, size_t n, const char *stem)
{
	snprintf(out, n, "%s/%s%d", g_dir, stem, ++g_seq);
}

static void cat_path(char *out, size_t n, const char *prefix, const char *suffix)
{
	snprintf(out, n, "%s%s", prefix, suffix);
}

static int write_file(const char *path, const void *p, size_t n)
{
	cm_error err;
	return cm_file_write_atomic(path, p, n, 0644, &err);
}

/* Whole file into a malloc'd buffer (NUL-terminated); NULL on error. */
static char *slurp(const char *path, size_t *len)
{
	cm_buf b = CM_BUF_INIT;
	cm_error err;
	if (cm_file_read(&b, path, 1 << 20, &err) < 0) {
		cm_buf_free(&b);
		return NULL;
	}
	if (len)
		*len = b.len;
	return cm_buf_detach(&b);
}

static mode_t file_mode(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static int count_tmp_files(void);

/* Run argv (PATH lookup, no shell) with stdout to out_path (or /dev/null)
 * and stderr to /dev/null when quiet. Returns the exit status, or -1. */
static int run(const char *out_path, int quiet, char *const argv[])
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out_path ? out_path : "/dev/null",
					 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (quiet)
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		printf("#   cannot run %s: %s\n", argv[0], strerror(rc));
		return -1;
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int is_fpr(const char *s)
{
	if (strlen(s) != SIG_FPR_LEN || strncmp(s, "sha256:", 7) != 0)
		return 0;
	for (const char *p = s + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

/* keygen at a fresh prefix; paths of the two files returned. */
static int make_key(char *prefix, size_t n, char *key, char *pub, size_t pn, char *fpr)
{
	fresh(prefix, n, "k");
	cat_path(key, pn, prefix, ".key");
	cat_path(pub, pn, prefix, ".pub");
	cm_error err;
	int rc = sig_keygen(fpr, prefix, &err);
	if (rc < 0)
		printf("#   keygen %s: %s\n", prefix, err.msg);
	return rc;
}

/* Write pk as PEM (public or unencrypted PKCS#8 private) to path. */
static int write_pem(const char *path, EVP_PKEY *pk, int private)
{
	BIO *b = BIO_new(BIO_s_mem());
	int ok = private ? PEM_write_bio_PKCS8PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL)
			 : PEM_write_bio_PUBKEY(b, pk);
	char *p = NULL;
	long n = BIO_get_mem_data(b, &p);
	int rc = (ok == 1 && n > 0) ? write_file(path, p, (size_t)n) : -1;
	BIO_free(b);
	return rc;
}

static const char MSG[] = "0123abcd  blobs/sha256/0123abcd\n4567ef01  index.json\n";

/* --- cases --- */

static void test_free_null(void)
{
	/* In a child: a crash there is a failed check here, not a lost run. */
	pid_t pid = fork();
	TU_CHECK(pid >= 0);
	if (pid == 0) {
		sig_pubkey_free(NULL);
		sig_seckey_free(NULL);
		_exit(0);
	}
	int status = -1;
	TU_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	TU_CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		     "freeing NULL keys: child status 0x%x", status);
}

static void test_keygen_files_and_modes(void)
{
	char prefix[512], key[600], pub[600], fpr[SIG_FPR_LEN + 1] = "";
	mode_t old = umask(077); /* the pub must still come out 0644 */
	int rc = make_key(prefix, sizeof(prefix), key, pub, sizeof(key), fpr);
	umask(old);
	TU_CHECK(rc == 0);
	TU_CHECK(file_mode(key) == 0600);
	TU_CHECK(file_mode(pub) == 0644);
	TU_CHECK(is_fpr(fpr));
	char *k = slurp(key, NULL), *p = slurp(pub, NULL);
	TU_CHECK(k && strncmp(k, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
	TU_CHECK(k && !strstr(k, "ENCRYPTED"));
	TU_CHECK(p && strncmp(p, "-----BEGIN PUBLIC KEY-----\n", 27) == 0);
	free(k);
	free(p);

	TU_CHECK(count_tmp_files() == 0);
}

static void test_keygen_never_overwrites(void)
{
	char prefix[512], key[600], pub[600], fpr[SIG_FPR_LEN + 1];
	TU_CHECK(make_key(prefix, sizeof(prefix), key, pub, sizeof(key), fpr) == 0);
	size_t klen = 0, plen = 0;
	char *k0 = slurp(key, &klen), *p0 = slurp(pub, &plen);
	TU_CHECK(k0 && p0);

	/* Both exist. */
	cm_error err;
	char fpr2[SIG_FPR_LEN + 1] = "untouched";
	int rc = sig_keygen(fpr2, prefix, &err);
	TU_CHECK(rc < 0);
	TU_CHECK(rc < 0 && strstr(err.msg, key) != NULL);
	TU_CHECK_STR(fpr2, "untouched");
	size_t klen2 = 0, plen2 = 0;
	char *k1 = slurp(key, &klen2), *p1 = slurp(pub, &plen2);
	TU_CHECK(k1 && klen2 == klen && memcmp(k0, k1, klen) == 0);
	TU_CHECK(p1 && plen2 == plen && memcmp(p0, p1, plen) == 0);
	TU_CHECK(file_mode(key) == 0600);
	free(k1);
	free(p1);

	/* Only the .key exists: refused, key untouched, no .pub made. */
	TU_CHECK(unlink(pub) == 0);
	rc = sig_keygen(NULL, prefix, &err);
	TU_CHECK(rc < 0 && strstr(err.msg, key) != NULL);
	TU_CHECK(!exists(pub));
	k1 = slurp(key, &klen2);
	TU_CHECK(k1 && klen2 == klen && memcmp(k0, k1, klen) == 0);
	free(k1);

	/* Only the .pub exists: refused naming it, and no .key is created. */
	TU_CHECK(rename(key, pub) == 0); /* any file will do */
	rc = sig_keygen(NULL, prefix, &err);
	TU_CHECK(rc < 0 && strstr(err.msg, pub) != NULL);
	TU_CHECK(!exists(key));

	/* A dangling symlink at .key is not followed. */
	char prefix2[512], key2[600], pub2[600], target[600];
	fresh(prefix2, sizeof(prefix2), "sym");
	cat_path(key2, sizeof(key2), prefix2, ".key");
	cat_path(pub2, sizeof(pub2), prefix2, ".pub");
	cat_path(target, sizeof(target), prefix2, ".target");
	TU_CHECK(symlink(target, key2) == 0);
	TU_CHECK(sig_keygen(NULL, prefix2, &err) < 0);
	TU_CHECK(!exists(target) && !exists(pub2));

	free(k0);
	free(p0);
}

/* If the .pub cannot be written after the .key was made, the .key is
 * removed again. A 250-character name leaves room for "NAME.key" but not
 * for the .pub's temp file "NAME.pub.tmp.XXXXXX" (NAME_MAX is 255). */
static void test_keygen_pub_failure_removes_key(void)
{
	char prefix[1024], key[1100], pub[1100];
	int n = snprintf(prefix, sizeof(prefix), "%s/", g_dir);
	memset(prefix + n, 'p', 250);
	prefix[n + 250] = '\0';
	cat_path(key, sizeof(key), prefix, ".key");
	cat_path(pub, sizeof(pub), prefix, ".pub");
	cm_error err;
	char fpr[SIG_FPR_LEN + 1] = "untouched";
	int rc = sig_keygen(fpr, prefix, &err);
	TU_CHECK(rc < 0);
	TU_CHECK(rc < 0 && strstr(err.msg, pub) != NULL);
	TU_CHECK(!exists(key));
	TU_CHECK(!exists(pub));
	TU_CHECK_STR(fpr, "untouched");
}

/* Names in g_dir containing ".tmp." (leftover temp files). */
static int count_tmp_files(void)
{
	DIR *d = opendir(g_dir);
	int n = 0;
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".tmp."))
			n++;
	closedir(d);
	return n;
}

static void test_sign_verify_ok(void)
{
	char prefix[512], key[600], pub[600], fpr[SIG_FPR_LEN + 1];
	TU_CHECK(make_key(prefix, sizeof(prefix), key, pub, sizeof(key), fpr) == 0);
	cm_error err;
	sig_seckey *sk = NULL;
	sig_pubkey *pk = NULL;
	TU_CHECK(sig_seckey_load(&sk, key, &err) == 0);
	TU_CHECK(sig_pubkey_load(&pk, pub, &err) == 0);
	if (!sk || !pk)
		goto out;
	unsigned char sig[SIG_LEN], sig2[SIG_LEN];
	TU_CHECK(sig_sign(sig, sk, MSG, strlen(MSG), &err) == 0);
	TU_CHECK(sig_verify(pk, MSG, strlen(MSG), sig, SIG_LEN, &err) == 0);
	/* Ed25519 is deterministic. */
	TU_CHECK(sig_sign(sig2, sk, MSG, strlen(MSG), &err) == 0);
	TU_CHECK(memcmp(sig, sig2, SIG_LEN) == 0);
	/* Empty message. */
	TU_CHECK(sig_sign(sig2, sk, "", 0, &err) == 0);
	TU_CHECK(sig_verify(pk, "", 0, sig2, SIG_LEN, &err) == 0);
	TU_CHECK(sig_verify(pk, MSG, strlen(MSG), sig2, SIG_LEN, &err) == CM_EVERIFY);
out:
	sig_seckey_free(sk);
	sig_pubkey_free(pk);
}

/* Shared setup for the negative cases. */
struct pair {
	sig_seckey *sk;
	sig_pubkey *pk;
	char fpr[SIG_FPR_LEN + 1];
	unsigned char sig[SIG_LEN];
};

static int pair_new(struct pair *p)
{
	char prefix[512], key[600], pub[600];
	cm_error err;
	memset(p, 0, sizeof(*p));
	if (make_key(prefix, sizeof(prefix), key, pub, sizeof(key), p->fpr) < 0 ||
	    sig_seckey_load(&p->sk, key, &err) < 0 || sig_pubkey_load(&p->pk, pub, &err) < 0 ||
	    sig_sign(p->sig, p->sk, MSG, strlen(MSG), &err) < 0)
		return -1;
	return 0;
}

static void pair_free(struct pair *p)
{
	sig_seckey_free(p->sk);
	sig_pubkey_free(p->pk);
}

static void test_flipped_message_byte(void)
{
	struct pair p;
	TU_CHECK(pair_new(&p) == 0);
	if (p.pk) {
		char m[sizeof(MSG)];
		memcpy(m, MSG, sizeof(MSG));
		size_t n = strlen(MSG);
		size_t where[] = {0, n / 2, n - 1};
		for (size_t i = 0; i < 3; i++) {
			m[where[i]] ^= 0x01;
			cm_error err;
			int rc = sig_verify(p.pk, m, n, p.sig, SIG_LEN, &err);
			TU_CHECK(rc == CM_EVERIFY);
			TU_CHECK(rc == CM_EVERIFY && strstr(err.msg, "signature does not match"));
			m[where[i]] ^= 0x01;
		}
		/* Appended or dropped bytes too. */
		cm_error err;
		TU_CHECK(sig_verify(p.pk, MSG, strlen(MSG) - 1, p.sig, SIG_LEN, &err) ==
			 CM_EVERIFY);
		TU_CHECK(sig_verify(p.pk, MSG, sizeof(MSG), p.sig, SIG_LEN, &err) == CM_EVERIFY);
		TU_CHECK(sig_verify(p.pk, m, n, p.sig, SIG_LEN, &err) == 0);
	}
	pair_free(&p);
}

static void test_flipped_signature_byte(void)
{
	struct pair p;
	TU_CHECK(pair_new(&p) == 0);
	if (p.pk) {
		for (size_t i = 0; i < SIG_LEN; i++) {
			unsigned char s[SIG_LEN];
			memcpy(s, p.sig, SIG_LEN);
			s[i] ^= 0x80;
			cm_error err;
			int rc = sig_verify(p.pk, MSG, strlen(MSG), s, SIG_LEN, &err);
			if (rc != CM_EVERIFY)
				printf("#   flipped sig byte %zu: rc %d\n", i, rc);
			TU_CHECK(rc == CM_EVERIFY);
		}
		unsigned char zero[SIG_LEN] = {0};
		cm_error err;
		TU_CHECK(sig_verify(p.pk, MSG, strlen(MSG), zero, SIG_LEN, &err) == CM_EVERIFY);
	}
	pair_free(&p);
}

static void test_other_key(void)
{
	struct pair a, b;
	TU_CHECK(pair_new(&a) == 0);
	TU_CHECK(pair_new(&b) == 0);
	if (a.pk && b.pk) {
		TU_CHECK(strcmp(a.fpr, b.fpr) != 0);
		cm_error err;
		int rc = sig_verify(b.pk, MSG, strlen(MSG), a.sig, SIG_LEN, &err);
		TU_CHECK(rc == CM_EVERIFY);
		/* The message names the key it checked against. */
		TU_CHECK(rc == CM_EVERIFY && strstr(err.msg, b.fpr) != NULL);
		TU_CHECK(sig_verify(a.pk, MSG, strlen(MSG), b.sig, SIG_LEN, &err) == CM_EVERIFY);
	}
	pair_free(&a);
	pair_free(&b);
}

static void test_wrong_length_signature(void)
{
	struct pair p;
	TU_CHECK(pair_new(&p) == 0);
	if (p.pk) {
		cm_error err;
		unsigned char longer[SIG_LEN + 1];
		memcpy(longer, p.sig, SIG_LEN);
		longer[SIG_LEN] = 0;
		TU_CHECK(sig_verify(p.pk, MSG, strlen(MSG), p.sig, SIG_LEN - 1, &err) ==
			 CM_EVERIFY);
		TU_CHECK(sig_verify(p.pk, MSG, strlen(MSG), p.sig, 32, &err) == CM_EVERIFY);
		TU_CHECK(sig_verify(p.pk, MSG, strlen(MSG), p.sig, 0, &err) == CM_EVERIFY);
		TU_CHECK(sig_verify(p.pk, MSG, strlen(MSG), NULL, 0, &err) == CM_EVERIFY);
		TU_CHECK(sig_verify(p.pk, MSG, strlen(MSG), longer, SIG_LEN + 1, &err) ==
			 CM_EVERIFY);
		TU_CHECK(strstr(err.msg, "65 bytes") != NULL);
	}
	pair_free(&p);
}

/* Loading pubkey from path must fail with CM_EINVAL naming the file (and
 * mentioning want, if given). */
static void expect_bad_pub(const char *path, const char *want)
{
	sig_pubkey *k = (sig_pubkey *)&k; /* must be reset to NULL */
	cm_error err;
	int rc = sig_pubkey_load(&k, path, &err);
	if (rc != CM_EINVAL)
		printf("#   %s: rc %d: %s\n", path, rc, rc ? err.msg : "");
	TU_CHECK(rc == CM_EINVAL);
	TU_CHECK(k == NULL);
	TU_CHECK(rc != CM_EINVAL || strstr(err.msg, path) != NULL);
	TU_CHECK_MSG(!want || rc != CM_EINVAL || strstr(err.msg, want),
		     "%s: message '%s' lacks '%s'", path, err.msg, want ? want : "");
	sig_pubkey_free(k);
}

static void expect_bad_sec(const char *path, const char *want)
{
	sig_seckey *k = NULL;
	cm_error err;
	int rc = sig_seckey_load(&k, path, &err);
	if (rc != CM_EINVAL)
		printf("#   %s: rc %d: %s\n", path, rc, rc ? err.msg : "");
	TU_CHECK(rc == CM_EINVAL);
	TU_CHECK(k == NULL);
	TU_CHECK(rc != CM_EINVAL || strstr(err.msg, path) != NULL);
	TU_CHECK_MSG(!want || rc != CM_EINVAL || strstr(err.msg, want),
		     "%s: message '%s' lacks '%s'", path, err.msg, want ? want : "");
	sig_seckey_free(k);
}

static void test_load_rejects_bad_public_keys(void)
{
	char path[512];

	fresh(path, sizeof(path), "garbage");
	TU_CHECK(write_file(path, "hello, not a key\n", 17) == 0);
	expect_bad_pub(path, "not a PEM public key");

	fresh(path, sizeof(path), "empty");
	TU_CHECK(write_file(path, "", 0) == 0);
	expect_bad_pub(path, NULL);

	fresh(path, sizeof(path), "badb64");
	const char *bad = "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n";
	TU_CHECK(write_file(path, bad, strlen(bad)) == 0);
	expect_bad_pub(path, NULL);

	/* Too big: a valid key padded past the cap. */
	char prefix[512], key[600], pub[600], fpr[SIG_FPR_LEN + 1];
	TU_CHECK(make_key(prefix, sizeof(prefix), key, pub, sizeof(key), fpr) == 0);
	size_t plen = 0;
	char *p = slurp(pub, &plen);
	TU_CHECK(p != NULL);
	if (p) {
		size_t n = SIG_KEYFILE_MAX + 1;
		char *big = malloc(n);
		memset(big, '\n', n);
		memcpy(big, p, plen);
		fresh(path, sizeof(path), "big");
		TU_CHECK(write_file(path, big, n) == 0);
		expect_bad_pub(path, NULL);
		/* Right at the cap it still loads. */
		TU_CHECK(write_file(path, big, n - 1) == 0);
		sig_pubkey *k = NULL;
		cm_error err;
		TU_CHECK(sig_pubkey_load(&k, path, &err) == 0);
		sig_pubkey_free(k);
		free(big);
		free(p);
	}

	/* A private key file given as the public key. */
	expect_bad_pub(key, "private key");

	/* Other key types, including X25519 (same size, wrong algorithm). */
	const char *types[] = {"RSA", "EC", "X25519", "ED448"};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		EVP_PKEY *pk = NULL;
		if (i == 0)
			pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		else if (i == 1)
			pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		else
			pk = EVP_PKEY_Q_keygen(NULL, NULL, types[i]);
		TU_CHECK(pk != NULL);
		if (!pk)
			continue;
		char stem[32];
		snprintf(stem, sizeof(stem), "%s-", types[i]);
		fresh(path, sizeof(path), stem);
		TU_CHECK(write_pem(path, pk, 0) == 0);
		expect_bad_pub(path, "want Ed25519");
		/* And as private keys. */
		fresh(path, sizeof(path), stem);
		TU_CHECK(write_pem(path, pk, 1) == 0);
		expect_bad_sec(path, "want Ed25519");
		EVP_PKEY_free(pk);
	}

	/* Missing file: an I/O error naming it. */
	fresh(path, sizeof(path), "missing");
	sig_pubkey *k = NULL;
	cm_error err;
	int rc = sig_pubkey_load(&k, path, &err);
	TU_CHECK(rc == CM_EIO && strstr(err.msg, path) != NULL);
	TU_CHECK(k == NULL);
}

static void test_load_rejects_bad_private_keys(void)
{
	char prefix[512], key[600], pub[600], fpr[SIG_FPR_LEN + 1], path[512];
	TU_CHECK(make_key(prefix, sizeof(prefix), key, pub, sizeof(key), fpr) == 0);
	expect_bad_sec(pub, "is a public key");

	fresh(path, sizeof(path), "garbage");
	TU_CHECK(write_file(path, "nope\n", 5) == 0);
	expect_bad_sec(path, "not a PEM private key");

	/* Encrypted: refused without prompting for a passphrase. */
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	TU_CHECK(pk != NULL);
	if (pk) {
		BIO *b = BIO_new(BIO_s_mem());
		char pass[] = "secret";
		TU_CHECK(PEM_write_bio_PKCS8PrivateKey(b, pk, EVP_aes_256_cbc(), pass,
						       (int)strlen(pass), NULL, NULL) == 1);
		char *p = NULL;
		long n = BIO_get_mem_data(b, &p);
		fresh(path, sizeof(path), "enc");
		TU_CHECK(n > 0 && write_file(path, p, (size_t)n) == 0);
		BIO_free(b);
		expect_bad_sec(path, "encrypted");
		EVP_PKEY_free(pk);
	}

	fresh(path, sizeof(path), "missing");
	sig_seckey *k = NULL;
	cm_error err;
	TU_CHECK(sig_seckey_load(&k, path, &err) == CM_EIO && strstr(err.msg, path));
}

static void test_fingerprints_match(void)
{
	char prefix[512], key[600], pub[600], fpr[SIG_FPR_LEN + 1];
	TU_CHECK(make_key(prefix, sizeof(prefix), key, pub, sizeof(key), fpr) == 0);
	cm_error err;
	sig_seckey *sk = NULL;
	sig_pubkey *pk = NULL;
	TU_CHECK(sig_seckey_load(&sk, key, &err) == 0);
	TU_CHECK(sig_pubkey_load(&pk, pub, &err) == 0);
	char f1[SIG_FPR_LEN + 1] = "", f2[SIG_FPR_LEN + 1] = "";
	TU_CHECK(sk && sig_seckey_fingerprint(f1, sk, &err) == 0);
	TU_CHECK(pk && sig_pubkey_fingerprint(f2, pk, &err) == 0);
	TU_CHECK(is_fpr(f1));
	TU_CHECK_STR(f1, f2);
	TU_CHECK_STR(f1, fpr);
	sig_seckey_free(sk);
	sig_pubkey_free(pk);
}

/* fingerprint == `openssl pkey -pubin -in PUB -outform DER | sha256sum` */
static void test_openssl_fingerprint(void)
{
	char prefix[512], key[600], pub[600], fpr[SIG_FPR_LEN + 1];
	TU_CHECK(make_key(prefix, sizeof(prefix), key, pub, sizeof(key), fpr) == 0);
	char der[600], sum[600];
	cat_path(der, sizeof(der), prefix, ".der");
	cat_path(sum, sizeof(sum), prefix, ".sum");
	char *a1[] = {"openssl", "pkey", "-pubin", "-in", pub, "-outform", "DER", NULL};
	TU_CHECK(run(der, 0, a1) == 0);
	char *a2[] = {"sha256sum", der, NULL};
	TU_CHECK(run(sum, 0, a2) == 0);
	char *out = slurp(sum, NULL);
	TU_CHECK(out && strlen(out) > 64);
	if (out && strlen(out) > 64) {
		char want[SIG_FPR_LEN + 1];
		snprintf(want, sizeof(want), "sha256:%.64s", out);
		TU_CHECK_STR(fpr, want);
	}
	free(out);
}

/* Our signature verifies with `openssl pkeyutl -verify -rawin`, openssl's
 * signature verifies with ours, and an openssl-made key loads. */
static void test_openssl_interop(void)
{
	char prefix[512], key[600], pub[600], fpr[SIG_FPR_LEN + 1];
	TU_CHECK(make_key(prefix, sizeof(prefix), key, pub, sizeof(key), fpr) == 0);
	char msgf[600], sigf[600], bad[600];
	cat_path(msgf, sizeof(msgf), prefix, ".msg");
	cat_path(sigf, sizeof(sigf), prefix, ".sig");
	cat_path(bad, sizeof(bad), prefix, ".bad");
	TU_CHECK(write_file(msgf, MSG, strlen(MSG)) == 0);
	TU_CHECK(write_file(bad, MSG, strlen(MSG) - 1) == 0);

	cm_error err;
	sig_seckey *sk = NULL;
	sig_pubkey *pk = NULL;
	TU_CHECK(sig_seckey_load(&sk, key, &err) == 0);
	TU_CHECK(sig_pubkey_load(&pk, pub, &err) == 0);
	unsigned char sig[SIG_LEN];
	TU_CHECK(sk && sig_sign(sig, sk, MSG, strlen(MSG), &err) == 0);
	TU_CHECK(write_file(sigf, sig, SIG_LEN) == 0);

	char *v[] = {"openssl", "pkeyutl", "-verify", "-pubin",	  "-inkey", pub,
		     "-rawin",	"-in",	   msgf,      "-sigfile", sigf,	    NULL};
	TU_CHECK(run(NULL, 0, v) == 0);
	char *vbad[] = {"openssl", "pkeyutl", "-verify", "-pubin",   "-inkey", pub,
			"-rawin",  "-in",     bad,	 "-sigfile", sigf,     NULL};
	TU_CHECK(run(NULL, 1, vbad) == 1);

	/* openssl signs with our key; we verify. */
	char osig[600];
	cat_path(osig, sizeof(osig), prefix, ".osig");
	char *s[] = {"openssl", "pkeyutl", "-sign", "-inkey", key, "-rawin",
		     "-in",	msgf,	   "-out",  osig,     NULL};
	TU_CHECK(run(NULL, 0, s) == 0);
	size_t olen = 0;
	char *o = slurp(osig, &olen);
	TU_CHECK(o && olen == SIG_LEN);
	TU_CHECK(o && olen == SIG_LEN && memcmp(o, sig, SIG_LEN) == 0); /* deterministic */
	TU_CHECK(pk && o && sig_verify(pk, MSG, strlen(MSG), o, olen, &err) == 0);
	free(o);

	/* A key made by `openssl genpkey -algorithm ed25519` loads and matches
	 * the public key openssl derives from it. */
	char okey[600], opub[600];
	cat_path(okey, sizeof(okey), prefix, ".okey");
	cat_path(opub, sizeof(opub), prefix, ".opub");
	char *g[] = {"openssl", "genpkey", "-algorithm", "ed25519", "-out", okey, NULL};
	TU_CHECK(run(NULL, 0, g) == 0);
	char *gp[] = {"openssl", "pkey", "-in", okey, "-pubout", "-out", opub, NULL};
	TU_CHECK(run(NULL, 0, gp) == 0);
	sig_seckey *sk2 = NULL;
	sig_pubkey *pk2 = NULL;
	TU_CHECK(sig_seckey_load(&sk2, okey, &err) == 0);
	TU_CHECK(sig_pubkey_load(&pk2, opub, &err) == 0);
	if (sk2 && pk2) {
		char f1[SIG_FPR_LEN + 1], f2[SIG_FPR_LEN + 1];
		TU_CHECK(sig_seckey_fingerprint(f1, sk2, &err) == 0);
		TU_CHECK(sig_pubkey_fingerprint(f2, pk2, &err) == 0);
		TU_CHECK_STR(f1, f2);
		TU_CHECK(sig_sign(sig, sk2, MSG, strlen(MSG), &err) == 0);
		TU_CHECK(sig_verify(pk2, MSG, strlen(MSG), sig, SIG_LEN, &err) == 0);
		TU_CHECK(sig_verify(pk, MSG, strlen(MSG), sig, SIG_LEN, &err) == CM_EVERIFY);
	}
	/* An RSA key from `openssl genpkey -algorithm RSA` is refused. */
	char rkey[600], rpub[600];
	cat_path(rkey, sizeof(rkey), prefix, ".rsa");
	cat_path(rpub, sizeof(rpub), prefix, ".rsapub");
	char *r[] = {"openssl", "genpkey", "-algorithm", "RSA", "-out", rkey, NULL};
	TU_CHECK(run(NULL, 1, r) == 0);
	char *rp[] = {"openssl", "pkey", "-in", rkey, "-pubout", "-out", rpub, NULL};
	TU_CHECK(run(NULL, 0, rp) == 0);
	expect_bad_pub(rpub, "RSA");
	expect_bad_sec(rkey, "RSA");

	sig_seckey_free(sk);
	sig_pubkey_free(pk);
	sig_seckey_free(sk2);
	sig_pubkey_free(pk2);
}

int main(void)
{
	if (!mkdtemp(g_dir)) {
		printf("not ok - setup: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	TU_RUN(test_free_null);
	TU_RUN(test_keygen_files_and_modes);
	TU_RUN(test_keygen_never_overwrites);
	TU_RUN(test_keygen_pub_failure_removes_key);
	TU_RUN(test_sign_verify_ok);
	TU_RUN(test_flipped_message_byte);
	TU_RUN(test_flipped_signature_byte);
	TU_RUN(test_other_key);
	TU_RUN(test_wrong_length_signature);
	TU_RUN(test_load_rejects_bad_public_keys);
	TU_RUN(test_load_rejects_bad_private_keys);
	TU_RUN(test_fingerprints_match);
	TU_RUN(test_openssl_fingerprint);
	TU_RUN(test_openssl_interop);
	cm_rmtree(g_dir);
	TU_EXIT();
}
