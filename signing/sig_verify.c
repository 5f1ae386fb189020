/* Verify side of the signing module: Ed25519 public keys, fingerprints and
 * signature checks. The installer links this file alone, so it must hold no
 * private-key code (no signing, no key generation, no private-key parsing). */
#include "sig.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "cm_buf.h"
#include "cm_file.h"
#include "sig_ossl.h"
#include "reg_digest.h"

struct sig_pubkey {
	EVP_PKEY *pkey;
	char fpr[SIG_FPR_LEN + 1];
};

/* The most recent OpenSSL reason, for messages; clears the error queue so
 * nothing stale is left for the next caller. */
const char *sig_ossl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	ERR_clear_error();
	return r ? r : "unknown OpenSSL error";
}

/* "sha256:<hex>" of the DER SubjectPublicKeyInfo of pk. */
int sig_pkey_fingerprint(char *out, EVP_PKEY *pk, cm_error *err)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(pk, &der);
	if (n <= 0)
		return cm_error_set(err, CM_EFAIL, "encoding public key: %s", sig_ossl_reason());
	reg_digest d;
	int rc = reg_digest_buf(&d, der, (size_t)n, err);
	OPENSSL_free(der);
	if (rc < 0)
		return rc;
	memcpy(out, d.s, SIG_FPR_LEN + 1);
	return 0;
}

int sig_pubkey_pem(EVP_PKEY **out, char *fpr, const char *path, const char *what, const char *want,
		   cm_error *err)
{
	cm_buf buf = CM_BUF_INIT;
	int rc = cm_file_read(&buf, path, SIG_KEYFILE_MAX, err);
	if (rc < 0) {
		cm_buf_free(&buf);
		return cm_error_wrap(err, "loading %s", what);
	}
	/* (the cap keeps the length within an int) */
	BIO *bio = buf.len ? BIO_new_mem_buf(buf.data, (int)buf.len) : NULL;
	*out = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	const char *text = buf.data ? buf.data : "";
	if (!buf.len)
		rc = cm_error_set(err, CM_EINVAL, "%s %s is empty", what, path);
	else if (!*out && strstr(text, "PRIVATE KEY-----"))
		rc = cm_error_set(err, CM_EINVAL,
				  "%s %s is a private key; give the public key (.pub)", what, path);
	else if (!*out)
		rc = cm_error_set(err, CM_EINVAL,
				  "%s %s is not a PEM public key (want an %s \"BEGIN PUBLIC KEY\" "
				  "file): %s",
				  what, path, want,
				  strstr(text, "-----BEGIN ") ? sig_ossl_reason()
							      : "no PEM block found");
	else if ((rc = sig_pkey_fingerprint(fpr, *out, err)) < 0) {
		EVP_PKEY_free(*out);
		*out = NULL;
		cm_error_wrap(err, "loading %s %s", what, path);
	}
	cm_buf_free(&buf);
	return rc;
}

int sig_pubkey_load(sig_pubkey **out, const char *path, cm_error *err)
{
	*out = NULL;
	EVP_PKEY *pk;
	char fpr[SIG_FPR_LEN + 1];
	int rc = sig_pubkey_pem(&pk, fpr, path, "public key", "Ed25519", err);
	if (rc < 0)
		return rc;
	if (EVP_PKEY_get_id(pk) != EVP_PKEY_ED25519) {
		const char *type = EVP_PKEY_get0_type_name(pk);
		rc = cm_error_set(err, CM_EINVAL, "public key %s has key type %s, want Ed25519",
				  path, type ? type : "unknown");
		EVP_PKEY_free(pk);
		return rc;
	}
	sig_pubkey *k = calloc(1, sizeof(*k));
	if (!k) {
		EVP_PKEY_free(pk);
		return cm_error_set(err, CM_ENOMEM, "loading public key %s: out of memory", path);
	}
	k->pkey = pk;
	memcpy(k->fpr, fpr, sizeof(fpr));
	*out = k;
	return 0;
}

void sig_pubkey_free(sig_pubkey *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

int sig_pubkey_fingerprint(char *out, const sig_pubkey *k, cm_error *err)
{
	if (!k || !out)
		return cm_error_set(err, CM_EINVAL, "fingerprint: no public key");
	memcpy(out, k->fpr, SIG_FPR_LEN + 1);
	return 0;
}

int sig_verify(const sig_pubkey *k, const void *msg, size_t msg_len, const void *sig,
	       size_t sig_len, cm_error *err)
{
	if (!k)
		return cm_error_set(err, CM_EINVAL, "verifying signature: no public key");
	if (!msg && msg_len)
		return cm_error_set(err, CM_EINVAL, "verifying signature: no message");
	if (!sig || sig_len != SIG_LEN)
		return cm_error_set(err, CM_EVERIFY,
				    "signature does not match key %s: it is %zu bytes, an Ed25519 "
				    "signature is %d (truncated or not a signature file?)",
				    k->fpr, sig ? sig_len : 0, SIG_LEN);

	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return cm_error_set(err, CM_ENOMEM, "verifying signature: out of memory");
	int rc;
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) != 1) {
		rc = cm_error_set(err, CM_EFAIL, "verifying signature: %s", sig_ossl_reason());
		EVP_MD_CTX_free(ctx);
		return rc;
	}
	int ok = EVP_DigestVerify(ctx, sig, SIG_LEN, msg ? msg : (const void *)"", msg_len);
	EVP_MD_CTX_free(ctx);
	if (ok == 1)
		return 0;
	ERR_clear_error();
	return cm_error_set(err, CM_EVERIFY,
			    "signature does not match key %s: wrong key or tampered SHA256SUMS",
			    k->fpr);
}
