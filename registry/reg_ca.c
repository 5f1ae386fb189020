/* The system's CA certificates: reg_ca.h. */
#include "reg_ca.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const ca_files[] = {
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
};
static const char ca_dir[] = "/etc/ssl/certs";

static int exists_as(const char *root, const char *path, int want_dir)
{
	char full[2 * REG_CA_PATH_MAX];
	int n = snprintf(full, sizeof(full), "%s%s", root, path);
	struct stat st;
	if (n < 0 || (size_t)n >= sizeof(full) || stat(full, &st) != 0)
		return 0;
	return want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

static void set_path(char *out, const char *v)
{
	size_t n = strlen(v);
	if (n < REG_CA_PATH_MAX)
		memcpy(out, v, n + 1);
}

void reg_ca_find(reg_ca_paths *out, const char *root, const char *env_file, const char *env_dir)
{
	out->file[0] = out->dir[0] = '\0';
	if (!root)
		root = "";
	if (env_file && env_file[0]) {
		set_path(out->file, env_file);
	} else {
		for (size_t i = 0; i < sizeof(ca_files) / sizeof(ca_files[0]); i++)
			if (exists_as(root, ca_files[i], 0)) {
				set_path(out->file, ca_files[i]);
				break;
			}
	}
	if (env_dir && env_dir[0])
		set_path(out->dir, env_dir);
	else if (exists_as(root, ca_dir, 1))
		set_path(out->dir, ca_dir);
}

static reg_ca_paths sys_paths;
static pthread_once_t sys_once = PTHREAD_ONCE_INIT;

static void find_system(void)
{
	reg_ca_find(&sys_paths, "", getenv("SSL_CERT_FILE"), getenv("SSL_CERT_DIR"));
}

const reg_ca_paths *reg_ca_system(void)
{
	pthread_once(&sys_once, find_system);
	return &sys_paths;
}
