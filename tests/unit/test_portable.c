/* The portable build's pieces that run in every build: the CA search
 * (reg_ca.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reg_ca.h"
#include "tu.h"

static char root[256];

static void mkdirs(const char *rel)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s", root);
	const char *s = rel;
	while (*s) {
		const char *e = strchr(s + 1, '/');
		size_t n = e ? (size_t)(e - rel) : strlen(rel);
		snprintf(p, sizeof(p), "%s%.*s", root, (int)n, rel);
		mkdir(p, 0755);
		if (!e)
			break;
		s = e;
	}
}

static void touch(const char *rel)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s%s", root, rel);
	FILE *f = fopen(p, "w");
	if (f)
		fclose(f);
}

static void test_ca_search_order(void)
{
	snprintf(root, sizeof(root), "/tmp/ferry-ca.XXXXXX");
	TU_CHECK(mkdtemp(root) != NULL);
	reg_ca_paths p;
	/* an empty root: nothing */
	reg_ca_find(&p, root, NULL, NULL);
	TU_CHECK_STR(p.file, "");
	TU_CHECK_STR(p.dir, "");
	/* Alpine: /etc/ssl/cert.pem only */
	mkdirs("/etc/ssl");
	touch("/etc/ssl/cert.pem");
	reg_ca_find(&p, root, NULL, "");
	TU_CHECK_STR(p.file, "/etc/ssl/cert.pem");
	TU_CHECK_STR(p.dir, "");
	/* RHEL: the extracted bundle comes before cert.pem, ca-bundle.crt before that */
	mkdirs("/etc/pki/ca-trust/extracted/pem");
	touch("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem");
	reg_ca_find(&p, root, NULL, NULL);
	TU_CHECK_STR(p.file, "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem");
	mkdirs("/etc/pki/tls/certs");
	touch("/etc/pki/tls/certs/ca-bundle.crt");
	reg_ca_find(&p, root, NULL, NULL);
	TU_CHECK_STR(p.file, "/etc/pki/tls/certs/ca-bundle.crt");
	/* Debian: first, and /etc/ssl/certs is the folder */
	mkdirs("/etc/ssl/certs");
	reg_ca_find(&p, root, NULL, NULL);
	TU_CHECK_STR(p.file, "/etc/pki/tls/certs/ca-bundle.crt"); /* a folder alone is no file */
	TU_CHECK_STR(p.dir, "/etc/ssl/certs");
	touch("/etc/ssl/certs/ca-certificates.crt");
	reg_ca_find(&p, root, NULL, NULL);
	TU_CHECK_STR(p.file, "/etc/ssl/certs/ca-certificates.crt");
	/* a folder where a bundle is expected is skipped */
	mkdirs("/etc/ssl/ca-bundle.pem");
	/* SSL_CERT_FILE and SSL_CERT_DIR replace the search, each its own */
	reg_ca_find(&p, root, "/x/my.pem", NULL);
	TU_CHECK_STR(p.file, "/x/my.pem");
	TU_CHECK_STR(p.dir, "/etc/ssl/certs");
	reg_ca_find(&p, root, "", "/x/dir");
	TU_CHECK_STR(p.file, "/etc/ssl/certs/ca-certificates.crt");
	TU_CHECK_STR(p.dir, "/x/dir");
	/* a value too long is dropped, not cut */
	char big[REG_CA_PATH_MAX + 10];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	reg_ca_find(&p, root, big, big);
	TU_CHECK_STR(p.file, "");
	TU_CHECK_STR(p.dir, "");
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	TU_CHECK(strncmp(root, "/tmp/ferry-ca.", 14) == 0);
	FILE *f = popen(cmd, "r");
	if (f)
		pclose(f);
}

int main(void)
{
	TU_RUN(test_ca_search_order);
	TU_EXIT();
}
