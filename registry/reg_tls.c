#include "reg_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_buf.h"
#include "cm_file.h"

#define CA_DAYS 3650
#define SERVER_DAYS 825
#define PEM_MAX ((size_t)1 << 20)

int reg_tls_is_ip(const char *s)
{
	unsigned char b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static int ossl_err(cm_error *err, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return cm_error_set(err, CM_EFAIL, "%s%s%s", what, e ? ": " : "", buf);
}

static EVP_PKEY *new_key(void)
{
	return EVP_EC_gen("P-256");
}

/* PEM text of a key or certificate (caller frees). */
static char *to_pem(EVP_PKEY *k, X509 *c)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return NULL;
	int ok = k ? PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)
		   : PEM_write_bio_X509(b, c);
	char *out = NULL;
	if (ok) {
		char *p;
		long n = BIO_get_mem_data(b, &p);
		if (n > 0 && (out = malloc((size_t)n + 1))) {
			memcpy(out, p, (size_t)n);
			out[n] = '\0';
		}
	}
	BIO_free(b);
	return out;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return 0;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

static X509 *new_cert(EVP_PKEY *key, const char *cn, long days)
{
	X509 *c = X509_new();
	if (!c)
		return NULL;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	int ok = X509_set_version(c, 2) && RAND_bytes(serial, sizeof(serial)) == 1;
	if (ok) {
		serial[0] &= 0x7f; /* positive */
		ok = (bn = BN_bin2bn(serial, sizeof(serial), NULL)) &&
		     (ai = BN_to_ASN1_INTEGER(bn, NULL)) && X509_set_serialNumber(c, ai);
	}
	BN_free(bn);
	ASN1_INTEGER_free(ai);
	X509_NAME *name = X509_get_subject_name(c);
	ok = ok && X509_gmtime_adj(X509_getm_notBefore(c), -3600) &&
	     X509_gmtime_adj(X509_getm_notAfter(c), days * 24 * 3600) && X509_set_pubkey(c, key) &&
	     X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"ferry", -1,
					-1, 0) &&
	     X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
					0);
	if (!ok) {
		X509_free(c);
		return NULL;
	}
	return c;
}

static int make_ca(EVP_PKEY **out_key, X509 **out_cert, cm_error *err)
{
	EVP_PKEY *k = new_key();
	if (!k)
		return ossl_err(err, "generating the CA key");
	char cn[64];
	unsigned char rnd[4];
	RAND_bytes(rnd, sizeof(rnd));
	snprintf(cn, sizeof(cn), "ferry serve CA %02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	X509 *c = new_cert(k, cn, CA_DAYS);
	int ok = c && X509_set_issuer_name(c, X509_get_subject_name(c)) &&
		 add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
		 add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") &&
		 add_ext(c, c, NID_subject_key_identifier, "hash") &&
		 X509_sign(c, k, EVP_sha256()) > 0;
	if (!ok) {
		X509_free(c);
		EVP_PKEY_free(k);
		return ossl_err(err, "making the CA certificate");
	}
	*out_key = k;
	*out_cert = c;
	return 0;
}

/* A certificate and key PEM file read into cb and kb, and parsed: *c and
 * *k NULL when they do not parse. */
static int read_pair(cm_buf *cb, cm_buf *kb, X509 **c, EVP_PKEY **k, const char *cert_path,
		     const char *key_path, cm_error *err)
{
	*c = NULL;
	*k = NULL;
	int rc = cm_file_read(cb, cert_path, PEM_MAX, err);
	if (rc == 0)
		rc = cm_file_read(kb, key_path, PEM_MAX, err);
	if (rc < 0)
		return rc;
	BIO *b1 = BIO_new_mem_buf(cb->data, (int)cb->len),
	    *b2 = BIO_new_mem_buf(kb->data, (int)kb->len);
	*c = b1 ? PEM_read_bio_X509(b1, NULL, NULL, NULL) : NULL;
	*k = b2 ? PEM_read_bio_PrivateKey(b2, NULL, NULL, NULL) : NULL;
	BIO_free(b1);
	BIO_free(b2);
	return 0;
}

static int load_ca(EVP_PKEY **out_key, X509 **out_cert, const char *cert_path, const char *key_path,
		   cm_error *err)
{
	cm_buf cb = CM_BUF_INIT, kb = CM_BUF_INIT;
	X509 *c;
	EVP_PKEY *k;
	int rc = read_pair(&cb, &kb, &c, &k, cert_path, key_path, err);
	cm_buf_free(&cb);
	cm_buf_free(&kb);
	if (rc < 0)
		return rc;
	if (!c || !k || X509_check_private_key(c, k) != 1) {
		X509_free(c);
		EVP_PKEY_free(k);
		return ossl_err(err,
				"the CA in the TLS folder is unreadable or its key does not match");
	}
	*out_key = k;
	*out_cert = c;
	return 0;
}

static int write_pem(const char *dir, const char *file, const char *pem, mode_t mode, cm_error *err)
{
	char path[4096];
	int l = snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (l < 0 || (size_t)l >= sizeof(path))
		return cm_error_set(err, CM_EINVAL, "TLS folder path too long");
	return cm_file_write_atomic(path, pem, strlen(pem), mode, err);
}

int reg_tls_self_signed(char **out_cert_pem, char **out_key_pem, const char *dir,
			const char *const *names, size_t n_names, cm_error *err)
{
	*out_cert_pem = *out_key_pem = NULL;
	if (n_names == 0)
		return cm_error_set(err, CM_EINVAL, "a server certificate needs at least one name");
	int rc = cm_mkdirs(dir, err);
	if (rc < 0)
		return cm_error_wrap(err, "TLS folder");
	char ca_crt[4096], ca_key[4096];
	snprintf(ca_crt, sizeof(ca_crt), "%s/%s", dir, REG_TLS_CA_FILE);
	snprintf(ca_key, sizeof(ca_key), "%s/ca-key.pem", dir);
	EVP_PKEY *cak = NULL, *sk = NULL;
	X509 *cac = NULL, *sc = NULL;
	char *pem = NULL, *kpem = NULL, *capem = NULL;
	cm_buf san = CM_BUF_INIT;
	if (access(ca_crt, F_OK) == 0 || access(ca_key, F_OK) == 0) {
		if ((rc = load_ca(&cak, &cac, ca_crt, ca_key, err)) < 0)
			goto out;
	} else {
		if ((rc = make_ca(&cak, &cac, err)) < 0)
			goto out;
		char *ckp = to_pem(cak, NULL);
		capem = to_pem(NULL, cac);
		if (!ckp || !capem) {
			free(ckp);
			rc = ossl_err(err, "encoding the CA");
			goto out;
		}
		/* key first: a ca.crt never exists without its key */
		rc = write_pem(dir, "ca-key.pem", ckp, 0600, err);
		free(ckp);
		if (rc == 0)
			rc = write_pem(dir, REG_TLS_CA_FILE, capem, 0644, err);
		if (rc < 0)
			goto out;
	}
	for (size_t i = 0; i < n_names; i++) {
		const char *n = names[i];
		if (!*n || strlen(n) > 253 || strpbrk(n, ", \t\r\n"))
			continue;
		if ((rc = cm_buf_appendf(&san, err, "%s%s:%s", san.len ? "," : "",
					 reg_tls_is_ip(n) ? "IP" : "DNS", n)) < 0)
			goto out;
	}
	if (!san.len) {
		rc = cm_error_set(err, CM_EINVAL, "no usable name for the server certificate");
		goto out;
	}
	if (!(sk = new_key())) {
		rc = ossl_err(err, "generating the server key");
		goto out;
	}
	sc = new_cert(sk, names[0], SERVER_DAYS);
	if (!sc || !X509_set_issuer_name(sc, X509_get_subject_name(cac)) ||
	    !add_ext(sc, cac, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(sc, cac, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(sc, cac, NID_ext_key_usage, "serverAuth") ||
	    !add_ext(sc, cac, NID_subject_key_identifier, "hash") ||
	    !add_ext(sc, cac, NID_authority_key_identifier, "keyid:always") ||
	    !add_ext(sc, cac, NID_subject_alt_name, san.data) ||
	    X509_sign(sc, cak, EVP_sha256()) <= 0) {
		rc = ossl_err(err, "making the server certificate");
		goto out;
	}
	pem = to_pem(NULL, sc);
	kpem = to_pem(sk, NULL);
	if (!pem || !kpem) {
		rc = ossl_err(err, "encoding the server certificate");
		goto out;
	}
	if ((rc = write_pem(dir, "server-key.pem", kpem, 0600, err)) < 0 ||
	    (rc = write_pem(dir, "server-cert.pem", pem, 0644, err)) < 0)
		goto out;
	*out_cert_pem = pem;
	*out_key_pem = kpem;
	pem = kpem = NULL;
out:
	free(pem);
	if (kpem)
		OPENSSL_cleanse(kpem, strlen(kpem));
	free(kpem);
	free(capem);
	cm_buf_free(&san);
	X509_free(cac);
	X509_free(sc);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(sk);
	return rc;
}

int reg_tls_load(char **out_cert_pem, char **out_key_pem, const char *cert_path,
		 const char *key_path, cm_error *err)
{
	*out_cert_pem = *out_key_pem = NULL;
	cm_buf cb = CM_BUF_INIT, kb = CM_BUF_INIT;
	X509 *c;
	EVP_PKEY *k;
	int rc = read_pair(&cb, &kb, &c, &k, cert_path, key_path, err);
	if (rc < 0)
		cm_error_wrap(err, "TLS");
	else if (!c)
		rc = ossl_err(err, "--tls-cert holds no PEM certificate");
	else if (!k)
		rc = ossl_err(err, "--tls-key holds no PEM private key (encrypted keys are not "
				   "supported)");
	else if (X509_check_private_key(c, k) != 1)
		rc = ossl_err(err, "--tls-key does not belong to the certificate in --tls-cert");
	X509_free(c);
	EVP_PKEY_free(k);
	if (rc < 0) {
		cm_buf_free(&cb);
		if (kb.data)
			OPENSSL_cleanse(kb.data, kb.len);
		cm_buf_free(&kb);
		return rc;
	}
	*out_cert_pem = cm_buf_detach(&cb);
	*out_key_pem = cm_buf_detach(&kb);
	return 0;
}

int reg_tls_error(cm_error *err, const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return cm_error_set(err, CM_EINVAL, "TLS: %s: %s", what, e ? buf : "unknown error");
}

int reg_tls_ctx_use(void *ssl_ctx, const char *cert_pem, const char *key_pem, cm_error *err)
{
	SSL_CTX *ctx = ssl_ctx;
	BIO *b = BIO_new_mem_buf(cert_pem, -1);
	if (!b)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	if (!x || SSL_CTX_use_certificate(ctx, x) != 1) {
		X509_free(x);
		BIO_free(b);
		return reg_tls_error(err, "the server certificate");
	}
	X509_free(x);
	X509 *c;
	while ((c = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		if (SSL_CTX_add0_chain_cert(ctx, c) != 1) {
			X509_free(c);
			BIO_free(b);
			return reg_tls_error(err, "the certificate chain");
		}
	ERR_clear_error(); /* the end of the PEM text */
	BIO_free(b);
	b = BIO_new_mem_buf(key_pem, -1);
	if (!b)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	int ok = k && SSL_CTX_use_PrivateKey(ctx, k) == 1 && SSL_CTX_check_private_key(ctx) == 1;
	EVP_PKEY_free(k);
	return ok ? 0 : reg_tls_error(err, "the server key");
}
