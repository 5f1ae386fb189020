/* Sign side of the signing module: Ed25519 key generation, private-key
 * loading and signing. Linked into ferry-build only. */
#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_file.h"
#include "reg_client.h"
#include "sig_ossl.h"
#include "reg_digest.h"

struct sig_seckey {
	EVP_PKEY *pkey;
};

/* Never prompt on the terminal for a passphrase: encrypted keys are refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* --- key generation --- */

/* PEM of pk into a secure-heap memory BIO (wiped by OpenSSL when freed). */
static int pem_to_bio(BIO **out, EVP_PKEY *pk, int private, cm_error *err)
{
	BIO *b = BIO_new(private ? BIO_s_secmem() : BIO_s_mem());
	if (!b)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	int ok = private ? PEM_write_bio_PKCS8PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL)
			 : PEM_write_bio_PUBKEY(b, pk);
	if (ok != 1) {
		BIO_free(b);
		return cm_error_set(err, CM_EFAIL, "encoding %s key: %s",
				    private ? "private" : "public", sig_ossl_reason());
	}
	*out = b;
	return 0;
}

static int write_bio_fd(int fd, BIO *b, cm_error *err)
{
	char *p = NULL;
	long n = BIO_get_mem_data(b, &p);
	if (n <= 0 || !p)
		return cm_error_set(err, CM_EFAIL, "empty PEM output");
	return cm_write_all(fd, p, (size_t)n, err);
}

/* Create path with O_EXCL (never overwrites), mode 0600, write the private
 * key PEM and fsync. On failure the file is removed again. */
static int write_seckey(const char *path, EVP_PKEY *pk, cm_error *err)
{
	BIO *b = NULL;
	int rc = pem_to_bio(&b, pk, 1, err);
	if (rc < 0)
		return cm_error_wrap(err, "writing %s", path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		BIO_free(b);
		if (e == EEXIST)
			return cm_error_set(err, CM_EFAIL,
					    "refusing to overwrite existing key %s; move it away "
					    "or choose another prefix",
					    path);
		return cm_error_sys(err, e, "creating %s", path);
	}
	/* O_CREAT's mode is filtered by the umask; make it exactly 0600. */
	if (fchmod(fd, 0600) < 0)
		rc = cm_error_sys(err, errno, "chmod %s", path);
	if (rc == 0)
		rc = write_bio_fd(fd, b, err);
	if (rc == 0 && fsync(fd) < 0)
		rc = cm_error_sys(err, errno, "fsync %s", path);
	BIO_free(b);
	if (close(fd) < 0 && rc == 0)
		rc = cm_error_sys(err, errno, "close %s", path);
	if (rc < 0) {
		unlink(path);
		return cm_error_wrap(err, "writing %s", path);
	}
	return 0;
}

/* Write the public key PEM to path, mode 0644, atomically and without ever
 * replacing an existing file: temp file, fsync, link(2) to the final name
 * (fails with EEXIST instead of overwriting), fsync of the folder. */
static int write_pubkey(const char *path, EVP_PKEY *pk, cm_error *err)
{
	BIO *b = NULL;
	int rc = pem_to_bio(&b, pk, 0, err);
	if (rc < 0)
		return cm_error_wrap(err, "writing %s", path);
	char tmp[PATH_MAX + 16];
	int fd;
	rc = cm_file_mktemp(&fd, tmp, sizeof(tmp), path, err);
	if (rc < 0) {
		BIO_free(b);
		return rc;
	}
	if (fchmod(fd, 0644) < 0)
		rc = cm_error_sys(err, errno, "chmod %s", tmp);
	if (rc == 0)
		rc = write_bio_fd(fd, b, err);
	if (rc == 0 && fsync(fd) < 0)
		rc = cm_error_sys(err, errno, "fsync %s", tmp);
	BIO_free(b);
	if (close(fd) < 0 && rc == 0)
		rc = cm_error_sys(err, errno, "close %s", tmp);
	if (rc == 0 && link(tmp, path) < 0) {
		if (errno == EEXIST)
			rc = cm_error_set(err, CM_EFAIL, "refusing to overwrite existing %s", path);
		else
			rc = cm_error_sys(err, errno, "linking %s to %s", tmp, path);
	}
	unlink(tmp);
	if (rc == 0 && (rc = cm_fsync_parent(path, err)) < 0)
		unlink(path); /* ours: link(2) just made it */
	if (rc < 0)
		return cm_error_wrap(err, "writing %s", path);
	return 0;
}

int sig_keygen(char *out_fpr, const char *prefix, cm_error *err)
{
	char keypath[PATH_MAX], pubpath[PATH_MAX];
	int n1 = snprintf(keypath, sizeof(keypath), "%s.key", prefix);
	int n2 = snprintf(pubpath, sizeof(pubpath), "%s.pub", prefix);
	if (!prefix[0] || n1 < 0 || (size_t)n1 >= sizeof(keypath) || n2 < 0 ||
	    (size_t)n2 >= sizeof(pubpath))
		return cm_error_set(err, CM_EINVAL, "bad key prefix '%.200s'", prefix);

	/* Refuse early so a leftover .pub does not cost us a fresh .key; the
	 * O_EXCL open and link(2) below still close the race. */
	struct stat st;
	if (lstat(keypath, &st) == 0)
		return cm_error_set(err, CM_EFAIL,
				    "refusing to overwrite existing key %s; move it away or "
				    "choose another prefix",
				    keypath);
	if (lstat(pubpath, &st) == 0)
		return cm_error_set(err, CM_EFAIL,
				    "refusing to overwrite existing %s; move it away or choose "
				    "another prefix",
				    pubpath);

	EVP_PKEY *pk = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &pk) != 1) {
		EVP_PKEY_CTX_free(ctx);
		return cm_error_set(err, CM_EFAIL, "generating Ed25519 key: %s", sig_ossl_reason());
	}
	EVP_PKEY_CTX_free(ctx);

	char fpr[SIG_FPR_LEN + 1];
	int rc = sig_pkey_fingerprint(fpr, pk, err);
	if (rc == 0)
		rc = write_seckey(keypath, pk, err);
	if (rc == 0) {
		rc = write_pubkey(pubpath, pk, err);
		if (rc < 0) {
			/* Ours: write_seckey created it with O_EXCL. */
			unlink(keypath);
			cm_error cleanup;
			cm_fsync_parent(keypath, &cleanup);
		}
	}
	EVP_PKEY_free(pk);
	if (rc < 0)
		return rc;
	if (out_fpr)
		memcpy(out_fpr, fpr, sizeof(fpr));
	return 0;
}

/* --- private keys --- */

int sig_seckey_load(sig_seckey **out, const char *path, cm_error *err)
{
	*out = NULL;
	/* not cm_file_read: its buffers would leave copies of the key */
	cm_buf b = CM_BUF_INIT;
	int rc = reg_secret_read(&b, path, SIG_KEYFILE_MAX, err);
	const char *buf = b.data;
	if (rc < 0) {
		reg_secret_free(&b);
		return cm_error_wrap(err, "loading private key");
	}
	EVP_PKEY *pk = NULL;
	BIO *bio = BIO_new_mem_buf(buf, (int)b.len); /* read-only view, no copy */
	if (!bio)
		rc = cm_error_set(err, CM_ENOMEM, "loading private key %s: out of memory", path);
	else {
		pk = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
		BIO_free(bio);
		if (!pk) {
			const char *why = sig_ossl_reason();
			if (strstr(buf, "ENCRYPTED"))
				rc = cm_error_set(err, CM_EINVAL,
						  "private key %s is encrypted; ferry needs an "
						  "unencrypted PKCS#8 key",
						  path);
			else if (strstr(buf, "PUBLIC KEY-----"))
				rc = cm_error_set(err, CM_EINVAL,
						  "private key %s is a public key; give the .key "
						  "file",
						  path);
			else if (!strstr(buf, "-----BEGIN "))
				rc = cm_error_set(err, CM_EINVAL,
						  "private key %s is not a PEM private key (want "
						  "an Ed25519 \"BEGIN PRIVATE KEY\" file): no PEM "
						  "block found",
						  path);
			else
				rc = cm_error_set(err, CM_EINVAL,
						  "private key %s is not a PEM private key (want "
						  "an Ed25519 \"BEGIN PRIVATE KEY\" file): %s",
						  path, why);
		}
	}
	reg_secret_free(&b);
	if (rc < 0)
		return rc;

	if (EVP_PKEY_get_id(pk) != EVP_PKEY_ED25519) {
		const char *type = EVP_PKEY_get0_type_name(pk);
		rc = cm_error_set(err, CM_EINVAL, "private key %s has key type %s, want Ed25519",
				  path, type ? type : "unknown");
		EVP_PKEY_free(pk);
		return rc;
	}
	sig_seckey *k = calloc(1, sizeof(*k));
	if (!k) {
		EVP_PKEY_free(pk);
		return cm_error_set(err, CM_ENOMEM, "loading private key %s: out of memory", path);
	}
	k->pkey = pk;
	*out = k;
	return 0;
}

void sig_seckey_free(sig_seckey *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey); /* OpenSSL wipes Ed25519 private key material */
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

int sig_seckey_fingerprint(char *out, const sig_seckey *k, cm_error *err)
{
	if (!k || !out)
		return cm_error_set(err, CM_EINVAL, "fingerprint: no private key");
	return sig_pkey_fingerprint(out, k->pkey, err);
}

int sig_sign(unsigned char *out, const sig_seckey *k, const void *msg, size_t msg_len,
	     cm_error *err)
{
	if (!k || !out)
		return cm_error_set(err, CM_EINVAL, "signing: no private key");
	if (!msg && msg_len)
		return cm_error_set(err, CM_EINVAL, "signing: no message");
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return cm_error_set(err, CM_ENOMEM, "signing: out of memory");
	size_t siglen = SIG_LEN;
	int rc = 0;
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, out, &siglen, msg ? msg : (const void *)"", msg_len) != 1)
		rc = cm_error_set(err, CM_EFAIL, "signing: %s", sig_ossl_reason());
	else if (siglen != SIG_LEN)
		rc = cm_error_set(err, CM_EFAIL, "signing: got a %zu-byte signature, want %d",
				  siglen, SIG_LEN);
	EVP_MD_CTX_free(ctx);
	return rc;
}
