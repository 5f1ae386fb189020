/* Verify side of the signing module: Ed25519 public keys, fingerprints and
 * signature checks. The installer links this file alone, so it must hold no
 * private-key code (no signing, no key generation, no private-key parsing). */
#include "sig.h"

#include <limits.h>
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

int sig_pubkey_load(sig_pubkey **out, const char *path, cm_error *err)
{
	*out = NULL;
	cm_buf buf = CM_BUF_INIT;
	int rc = cm_file_read(&buf, path, SIG_KEYFILE_MAX, err);
	if (rc < 0) {
		cm_buf_free(&buf);
		return cm_error_wrap(err, "loading public key");
	}
	if (buf.len > INT_MAX) { /* cannot happen with the cap; keeps the cast honest */
		cm_buf_free(&buf);
		return cm_error_set(err, CM_EINVAL, "public key %s is too large", path);
	}

	BIO *bio = BIO_new_mem_buf(buf.data, (int)buf.len);
	if (!bio) {
		cm_buf_free(&buf);
		return cm_error_set(err, CM_ENOMEM, "loading public key %s: out of memory", path);
	}
	EVP_PKEY *pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!pk) {
		const char *why = sig_ossl_reason();
		if (strstr(buf.data, "PRIVATE KEY-----"))
			rc = cm_error_set(err, CM_EINVAL,
					  "public key %s is a private key; give the .pub file",
					  path);
		else if (!strstr(buf.data, "-----BEGIN "))
			rc = cm_error_set(err, CM_EINVAL,
					  "public key %s is not a PEM public key (want an Ed25519 "
					  "\"BEGIN PUBLIC KEY\" file): no PEM block found",
					  path);
		else
			rc = cm_error_set(err, CM_EINVAL,
					  "public key %s is not a PEM public key (want an Ed25519 "
					  "\"BEGIN PUBLIC KEY\" file): %s",
					  path, why);
		cm_buf_free(&buf);
		return rc;
	}
	cm_buf_free(&buf);

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
	rc = sig_pkey_fingerprint(k->fpr, pk, err);
	if (rc < 0) {
		sig_pubkey_free(k);
		return cm_error_wrap(err, "loading public key %s", path);
	}
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
