/* The portable build's pieces that run in every build: the CA search
 * (reg_ca.h) and the version marker an installer carries (cm_version.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_version.h"
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

/* Feed text in chunks of every size: the marker may straddle them. */
static const char *scan(const char *text, size_t len, size_t chunk, char *out)
{
	cm_vscan s;
	cm_vscan_init(&s);
	for (size_t i = 0; i < len; i += chunk)
		cm_vscan_feed(&s, text + i, len - i < chunk ? len - i : chunk);
	const char *v = cm_vscan_result(&s);
	if (!v)
		return NULL;
	memcpy(out, v, strlen(v) + 1);
	return out;
}

static void test_version_marker_scan(void)
{
	char out[CM_VERSION_MAX];
	/* the bare key (as a matcher would hold it), a false start, then a marker */
	static const char t1[] = "\x7f"
				 "ELF\0FERRY_VERSION=\0FFERRY_VERSION=x y\0"
				 "FERRY_FERRY_VERSION=1.2.3\0FERRY_VERSION=9.9.9\0";
	for (size_t chunk = 1; chunk <= sizeof(t1); chunk++) {
		const char *v = scan(t1, sizeof(t1) - 1, chunk, out);
		TU_CHECK_MSG(v && strcmp(v, "1.2.3") == 0, "chunk %zu: %s", chunk,
			     v ? v : "(none)");
	}
	/* none; a value without its NUL; one too long */
	TU_CHECK(scan("no marker here", 14, 3, out) == NULL);
	TU_CHECK(scan("FERRY_VERSION=1.0", 17, 4, out) == NULL);
	char longv[80] = "FERRY_VERSION=";
	memset(longv + 14, '1', 40);
	TU_CHECK(scan(longv, 14 + 40 + 1, 7, out) == NULL);
	/* the running program's own marker */
	TU_CHECK(scan(cm_version_marker, strlen(cm_version_marker) + 1, 5, out) != NULL);
	TU_CHECK_STR(out, FERRY_VERSION);
	TU_CHECK_STR(cm_version(), FERRY_VERSION);
}

static void test_version_cmp(void)
{
	TU_CHECK(cm_version_cmp("0.1.0", "0.1.0") == 0);
	TU_CHECK(cm_version_cmp("0.1.0", "0.2.0") < 0);
	TU_CHECK(cm_version_cmp("0.10.0", "0.9.9") > 0);
	TU_CHECK(cm_version_cmp("1.0", "0.99.99") > 0);
	TU_CHECK(cm_version_cmp("1.0", "1.0.1") < 0);
	TU_CHECK(cm_version_cmp("1.0.1", "1.0") > 0);
	TU_CHECK(cm_version_cmp("01.2", "1.2") == 0);
	TU_CHECK(cm_version_cmp("1.2a", "1.2b") < 0);
}

int main(void)
{
	TU_RUN(test_ca_search_order);
	TU_RUN(test_version_marker_scan);
	TU_RUN(test_version_cmp);
	TU_EXIT();
}
