/* TLS material for `ferry-install serve`: a private CA and a server
 * certificate for the names nodes will use, made with OpenSSL (ECDSA P-256,
 * SHA-256). The HTTP server (libmicrohttpd, GnuTLS in Debian) takes the PEM
 * text in memory.
 *
 * reg_tls_self_signed(DIR) keeps, in DIR:
 *   ca.crt           the CA certificate, for nodes to trust (the only *.crt,
 *                    so DIR works as a containers-style --cert-dir)
 *   ca-key.pem       its key (0600); reused on later runs so that nodes keep
 *                    trusting the same CA
 *   server-cert.pem  a fresh server certificate on every run, with DNS and
 *                    IP subjectAltNames for the given names
 *   server-key.pem   its key (0600) */
#ifndef REG_TLS_H
#define REG_TLS_H

#include <stddef.h>

#include "cm_error.h"

#define REG_TLS_CA_FILE "ca.crt"

/* Load or create the CA in dir, issue a server certificate for names (IP
 * literals become IP SANs, everything else DNS SANs) and return both PEM
 * texts (caller frees). */
int reg_tls_self_signed(char **out_cert_pem, char **out_key_pem, const char *dir,
			const char *const *names, size_t n_names, cm_error *err);

/* Read a PEM certificate (chain) and key, checking that they parse and that
 * the key belongs to the first certificate. */
int reg_tls_load(char **out_cert_pem, char **out_key_pem, const char *cert_path,
		 const char *key_path, cm_error *err);

/* Put a PEM certificate (then its chain) and its key into an OpenSSL
 * SSL_CTX (serve's TLS through OpenSSL, reg_tlsterm.h). The one other place
 * that reads a private key, with reg_tls_load. */
int reg_tls_ctx_use(void *ssl_ctx, const char *cert_pem, const char *key_pem, cm_error *err);

/* CM_EINVAL "TLS: what: " and OpenSSL's first queued error (the queue is
 * cleared). */
int reg_tls_error(cm_error *err, const char *what);

/* Is s an IPv4 or IPv6 literal? */
int reg_tls_is_ip(const char *s);

#endif
