/* The system's CA certificates, wherever the distribution keeps them.
 *
 * The portable (static, musl) build carries an OpenSSL whose built-in
 * default paths need not match the host's; libcurl is built there without a
 * bundle of its own. So every curl handle is pointed at the host's bundle:
 *
 *   file  $SSL_CERT_FILE, else the first that exists of
 *           /etc/ssl/certs/ca-certificates.crt        Debian, Ubuntu, Gentoo
 *           /etc/pki/tls/certs/ca-bundle.crt          RHEL, Fedora, CentOS
 *           /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem   RHEL, Fedora
 *           /etc/ssl/ca-bundle.pem                    openSUSE
 *           /etc/ssl/cert.pem                         Alpine, Arch, macOS
 *   dir   $SSL_CERT_DIR, else /etc/ssl/certs when it is a folder (hashed
 *         names, as `openssl rehash` makes them: Debian, Alpine)
 *
 * An explicit CA given for one registry (--ca, hosts) is set after this and
 * replaces the file. docs/portable.md. */
#ifndef REG_CA_H
#define REG_CA_H

#include <stddef.h>

#define REG_CA_PATH_MAX 4096

typedef struct {
	char file[REG_CA_PATH_MAX]; /* "" when none was found */
	char dir[REG_CA_PATH_MAX];  /* "" when none was found */
} reg_ca_paths;

/* Find the CA file and folder under root ("" for /), with env_file and
 * env_dir (NULL or "" when unset) taking the place of the search, as
 * SSL_CERT_FILE and SSL_CERT_DIR do for OpenSSL. Paths are returned without
 * root. A value that does not fit is dropped (as if unset). */
void reg_ca_find(reg_ca_paths *out, const char *root, const char *env_file, const char *env_dir);

/* The host's paths, found once (thread-safe). */
const reg_ca_paths *reg_ca_system(void);

#endif
