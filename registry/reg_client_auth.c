/* Registry credentials and challenges: docker config.json / containers
 * auth.json, credential helpers (posix_spawn, never a shell), and
 * WWW-Authenticate parsing. No secret ever reaches an error message. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cm_file.h"
#include "reg_client.h"
#include "reg_url.h"

extern char **environ;

#define HUB_KEY "https://index.docker.io/v1/"

/* Jansson copies every string it parses (lexer buffers, the values) and
 * frees them without wiping; the documents parsed here hold passwords,
 * identity tokens and Bearer tokens. Every block jansson frees is wiped
 * first, process-wide, installed before main runs (no thread exists yet,
 * and no JSON was parsed). */
static void json_free_wiped(void *p)
{
	if (p) {
		OPENSSL_cleanse(p, malloc_usable_size(p));
		free(p);
	}
}

__attribute__((constructor)) static void json_wipe_init(void)
{
	json_set_alloc_funcs(malloc, json_free_wiped);
}

int reg_secret_append(cm_buf *b, const void *p, size_t n, cm_error *err)
{
	size_t limit = b->limit ? b->limit : CM_BUF_DEFAULT_LIMIT;
	if (n > limit || b->len > limit - n)
		return cm_error_set(err, CM_EINVAL, "data exceeds the %zu-byte limit", limit);
	size_t need = b->len + n + 1;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < need)
			cap *= 2;
		char *nd = malloc(cap);
		if (!nd)
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		if (b->data) {
			memcpy(nd, b->data, b->len);
			OPENSSL_cleanse(b->data, b->cap);
			free(b->data);
		}
		b->data = nd;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

void reg_secret_free(cm_buf *b)
{
	if (!b)
		return;
	if (b->data)
		OPENSSL_cleanse(b->data, b->cap);
	cm_buf_free(b);
}

static void copy_bounded(char *dst, size_t n, const char *src, size_t len)
{
	if (!n)
		return;
	if (len >= n)
		len = n - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

int reg_auth_parse_challenge(const char *v, char *scheme, size_t scheme_n, char *realm,
			     size_t realm_n, char *service, size_t service_n, char *scope,
			     size_t scope_n)
{
	if (scheme_n)
		scheme[0] = '\0';
	if (realm_n)
		realm[0] = '\0';
	if (service_n)
		service[0] = '\0';
	if (scope_n)
		scope[0] = '\0';
	while (*v == ' ' || *v == '\t')
		v++;
	size_t sl = strcspn(v, " \t");
	if (sl == 0)
		return CM_EINVAL;
	copy_bounded(scheme, scheme_n, v, sl);
	const char *p = v + sl;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *k = p;
		while (*p && *p != '=' && *p != ',' && *p != ' ')
			p++;
		size_t kl = (size_t)(p - k);
		if (*p != '=') {
			/* token68 or junk: skip to the next comma */
			p += strcspn(p, ",");
			continue;
		}
		p++;
		char val[2048];
		size_t vl = 0;
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				if (vl + 1 < sizeof(val))
					val[vl++] = *p;
				p++;
			}
			if (*p == '"')
				p++;
		} else {
			while (*p && *p != ',' && *p != ' ') {
				if (vl + 1 < sizeof(val))
					val[vl++] = *p;
				p++;
			}
		}
		val[vl] = '\0';
		if (kl == 5 && strncasecmp(k, "realm", 5) == 0)
			copy_bounded(realm, realm_n, val, vl);
		else if (kl == 7 && strncasecmp(k, "service", 7) == 0)
			copy_bounded(service, service_n, val, vl);
		else if (kl == 5 && strncasecmp(k, "scope", 5) == 0)
			copy_bounded(scope, scope_n, val, vl);
	}
	return 0;
}

double reg_parse_retry_after(const char *v, double now)
{
	while (*v == ' ')
		v++;
	if (!*v)
		return -1;
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (end != v && errno == 0) {
		while (*end == ' ')
			end++;
		if (!*end)
			return d < 0 ? 0 : d;
	}
	/* an HTTP date */
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *r = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!r)
		return -1;
	time_t t = timegm(&tm);
	double dd = (double)t - now;
	return dd < 0 ? 0 : dd;
}

long reg_parse_ratelimit(const char *v)
{
	while (*v == ' ')
		v++;
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (end == v || errno || n < 0)
		return -1;
	return n;
}

static int is_hub(const char *h)
{
	return strcasecmp(h, "docker.io") == 0 || strcasecmp(h, "index.docker.io") == 0 ||
	       strcasecmp(h, "registry-1.docker.io") == 0 ||
	       strcasecmp(h, "registry.hub.docker.com") == 0;
}

/* "https://host:5000/v1/" -> "host:5000" */
static void norm_key(char *out, size_t n, const char *key)
{
	if (strncasecmp(key, "https://", 8) == 0)
		key += 8;
	else if (strncasecmp(key, "http://", 7) == 0)
		key += 7;
	size_t l = strcspn(key, "/");
	copy_bounded(out, n, key, l);
}

int reg_auth_key_matches(const char *key, const char *host)
{
	char k[512], h[512];
	norm_key(k, sizeof(k), key);
	norm_key(h, sizeof(h), host);
	if (is_hub(h))
		return is_hub(k);
	return strcasecmp(k, h) == 0;
}

static int valid_helper(const char *name)
{
	if (!*name || strlen(name) > 100)
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			return 0;
	return 1;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run docker-credential-<helper> get with server on stdin; parse
 * {"Username","Secret"}. Returns 1 found, 0 not found, <0 error. */
static int run_helper(char *user, size_t user_n, char *secret, size_t secret_n, const char *helper,
		      const char *server, cm_error *err)
{
	if (!valid_helper(helper))
		return cm_error_set(err, CM_EINVAL, "credential helper name '%.100s' is not valid",
				    helper);
	char prog[160];
	snprintf(prog, sizeof(prog), "docker-credential-%s", helper);
	int in[2] = {-1, -1}, out[2] = {-1, -1};
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		int e = errno;
		if (in[0] >= 0) {
			close(in[0]);
			close(in[1]);
		}
		return cm_error_sys(err, e, "running %s", prog);
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	char *argv[] = {prog, (char *)"get", NULL};
	pid_t pid;
	int sr = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	if (sr != 0) {
		close(in[1]);
		close(out[0]);
		return cm_error_set(err, CM_ENOTFOUND,
				    "credential helper %s is configured but could not be run (%s)",
				    prog, strerror(sr));
	}
	/* write the server URL; a helper that exits early must not SIGPIPE us */
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	ssize_t wr = write(in[1], server, strlen(server));
	(void)wr;
	close(in[1]);
	struct timespec zero = {0, 0};
	while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	cm_buf b = CM_BUF_INIT;
	b.limit = 64 << 10;
	int rc = 0;
	double deadline = mono_now() + 30;
	char tmp[4096];
	for (;;) {
		struct pollfd pfd = {out[0], POLLIN, 0};
		int left = (int)((deadline - mono_now()) * 1000);
		if (left <= 0) {
			rc = cm_error_set(err, CM_EFAIL, "credential helper %s timed out", prog);
			kill(pid, SIGKILL);
			break;
		}
		int pr = poll(&pfd, 1, left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		ssize_t n = read(out[0], tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (reg_secret_append(&b, tmp, (size_t)n, err) < 0) {
			rc = cm_error_set(err, CM_EINVAL, "credential helper %s printed too much",
					  prog);
			kill(pid, SIGKILL);
			break;
		}
	}
	OPENSSL_cleanse(tmp, sizeof(tmp));
	close(out[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		/* "credentials not found in native keychain" means: none */
		if (b.data && strstr(b.data, "credentials not found"))
			rc = 0;
		else
			rc = cm_error_set(err, CM_EFAIL, "credential helper %s failed (exit %d)",
					  prog, WIFEXITED(status) ? WEXITSTATUS(status) : 128);
		reg_secret_free(&b);
		return rc;
	}
	if (rc < 0) {
		reg_secret_free(&b);
		return rc;
	}
	rc = reg_auth_parse_helper_output(user, user_n, secret, secret_n, b.data ? b.data : "",
					  b.len, err);
	reg_secret_free(&b);
	if (rc < 0)
		return cm_error_wrap(err, "credential helper %s", prog);
	return 1;
}

int reg_auth_parse_helper_output(char *user, size_t user_n, char *secret, size_t secret_n,
				 const char *out, size_t len, cm_error *err)
{
	if (user_n)
		user[0] = '\0';
	if (secret_n)
		secret[0] = '\0';
	json_error_t je;
	/* NUL inside a string is refused (no JSON_ALLOW_NUL) */
	json_t *j = json_loadb(out, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return cm_error_set(err, CM_EINVAL,
				    "the answer is not JSON (line %d, column %d); want "
				    "{\"Username\",\"Secret\"}",
				    je.line, je.column);
	const char *u = json_string_value(json_object_get(j, "Username"));
	const char *s = json_string_value(json_object_get(j, "Secret"));
	int rc = 0;
	if (!json_is_object(j) || !u || !s)
		rc = cm_error_set(err, CM_EINVAL, "the answer is not {\"Username\",\"Secret\"}");
	else if (strlen(u) >= user_n || strlen(s) >= secret_n)
		rc = cm_error_set(err, CM_EINVAL,
				  "credentials too long (user at most %zu bytes, "
				  "secret at most %zu)",
				  user_n ? user_n - 1 : 0, secret_n ? secret_n - 1 : 0);
	if (rc == 0) {
		memcpy(user, u, strlen(u) + 1);
		memcpy(secret, s, strlen(s) + 1);
	}
	json_decref(j); /* wiped as it is freed (json_free_wiped) */
	return rc == 0 ? 1 : rc;
}

int reg_b64_decode(unsigned char *out, size_t *out_n, const char *s, size_t len)
{
	if (len > INT_MAX)
		return -1;
	int n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
	if (n < 0)
		return -1;
	/* EVP_DecodeBlock counts the padding as zero bytes */
	for (size_t i = len; i > 0 && len - i < 2 && s[i - 1] == '='; i--)
		n--;
	out[n] = '\0';
	*out_n = (size_t)n;
	return 0;
}

static int decode_auth(char *user, size_t user_n, char *secret, size_t secret_n, const char *b64)
{
	size_t l = strlen(b64);
	if (l == 0 || l > 8192 || l % 4)
		return 0;
	unsigned char *raw = malloc(l + 1);
	if (!raw)
		return 0;
	size_t n;
	if (reg_b64_decode(raw, &n, b64, l) < 0) {
		free(raw);
		return 0;
	}
	unsigned char *colon = memchr(raw, ':', n);
	int ok = 0;
	if (colon) {
		size_t ul = (size_t)(colon - raw), sl = n - ul - 1;
		if (ul < user_n && sl < secret_n && !memchr(raw, '\0', n)) {
			memcpy(user, raw, ul);
			user[ul] = '\0';
			memcpy(secret, colon + 1, sl);
			secret[sl] = '\0';
			ok = 1;
		}
	}
	OPENSSL_cleanse(raw, l + 1);
	free(raw);
	return ok;
}

int reg_secret_read(cm_buf *b, const char *path, size_t limit, cm_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "opening %s", path);
	b->limit = limit;
	char tmp[4096];
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = cm_error_sys(err, errno, "reading %s", path);
		if (n <= 0)
			break;
		if ((rc = reg_secret_append(b, tmp, (size_t)n, err)) < 0) {
			cm_error_wrap(err, "%s", path);
			break;
		}
	}
	OPENSSL_cleanse(tmp, sizeof(tmp));
	close(fd);
	if (rc == 0 && !b->data)
		rc = reg_secret_append(b, "", 0, err);
	return rc;
}

/* One config file. Returns 1 found, 0 none, <0 error. */
static int lookup_file(char *user, size_t user_n, char *secret, size_t secret_n, char *src,
		       size_t src_n, const char *path, const char *host, cm_error *err)
{
	if (access(path, F_OK) != 0)
		return 0;
	cm_buf b = CM_BUF_INIT;
	if (reg_secret_read(&b, path, (size_t)1 << 20, NULL) < 0) {
		reg_secret_free(&b);
		return 0; /* unreadable: treat as absent, like docker */
	}
	json_error_t je;
	json_t *root = json_loadb(b.data, b.len, 0, &je);
	reg_secret_free(&b);
	if (!json_is_object(root)) {
		json_decref(root);
		/* not je.text: it quotes the input, which may be a secret */
		return cm_error_set(err, CM_EINVAL,
				    "%s is not a valid JSON object (line %d, column %d)", path,
				    je.line, je.column);
	}
	const char *server = is_hub(host) ? HUB_KEY : host;
	int rc = 0;
	json_t *helpers = json_object_get(root, "credHelpers");
	const char *k;
	json_t *v;
	json_object_foreach(helpers, k, v)
	{
		if (json_is_string(v) && reg_auth_key_matches(k, host)) {
			rc = run_helper(user, user_n, secret, secret_n, json_string_value(v),
					server, err);
			if (rc == 1)
				snprintf(src, src_n, "credential helper docker-credential-%s (%s)",
					 json_string_value(v), path);
			goto out;
		}
	}
	json_t *auths = json_object_get(root, "auths");
	json_object_foreach(auths, k, v)
	{
		if (!reg_auth_key_matches(k, host))
			continue;
		const char *a = json_string_value(json_object_get(v, "auth"));
		const char *u = json_string_value(json_object_get(v, "username"));
		const char *p = json_string_value(json_object_get(v, "password"));
		const char *it = json_string_value(json_object_get(v, "identitytoken"));
		if (it && *it && strlen(it) < secret_n) {
			/* docker login stored a refresh token: it wins over auth */
			snprintf(user, user_n, "%s", REG_AUTH_IDENTITY);
			snprintf(secret, secret_n, "%s", it);
			rc = 1;
		} else if (a && decode_auth(user, user_n, secret, secret_n, a)) {
			rc = 1;
		} else if (u && p && strlen(u) < user_n && strlen(p) < secret_n) {
			snprintf(user, user_n, "%s", u);
			snprintf(secret, secret_n, "%s", p);
			rc = 1;
		}
		if (rc == 1) {
			snprintf(src, src_n, "%s (auths.%s)", path, k);
			goto out;
		}
	}
	const char *store = json_string_value(json_object_get(root, "credsStore"));
	if (store && *store) {
		rc = run_helper(user, user_n, secret, secret_n, store, server, err);
		if (rc == 1)
			snprintf(src, src_n, "credential store docker-credential-%s (%s)", store,
				 path);
	}
out:
	json_decref(root);
	return rc;
}

int reg_auth_lookup(char *user, size_t user_n, char *secret, size_t secret_n, char *src,
		    size_t src_n, const char *host, cm_error *err)
{
	char paths[3][4096];
	size_t np = 0;
	const char *raf = getenv("REGISTRY_AUTH_FILE");
	const char *dc = getenv("DOCKER_CONFIG");
	const char *home = getenv("HOME");
	if (raf && *raf)
		snprintf(paths[np++], sizeof(paths[0]), "%s", raf);
	if (dc && *dc)
		snprintf(paths[np++], sizeof(paths[0]), "%s/config.json", dc);
	if (home && *home)
		snprintf(paths[np++], sizeof(paths[0]), "%s/.docker/config.json", home);
	user[0] = secret[0] = '\0';
	if (src_n)
		src[0] = '\0';
	for (size_t i = 0; i < np; i++) {
		int rc =
		    lookup_file(user, user_n, secret, secret_n, src, src_n, paths[i], host, err);
		if (rc < 0)
			OPENSSL_cleanse(secret, secret_n);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int reg_auth_is_identity(const char *user)
{
	return user && strcmp(user, REG_AUTH_IDENTITY) == 0;
}

/* An http(s) URL split, its host in lower case (IPv6 in brackets). */
static int http_url(reg_url *u, const char *url)
{
	if (reg_url_parse(u, url, 0, NULL) < 0 ||
	    (strcmp(u->scheme, "http") != 0 && strcmp(u->scheme, "https") != 0))
		return CM_EINVAL;
	for (char *p = u->host; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	return 0;
}

int reg_auth_realm_check(int *out_creds, char *out_host, size_t host_n, const char *origin,
			 const char *realm, const char *const *allow, size_t n_allow, cm_error *err)
{
	reg_url r, o;
	*out_creds = 0;
	if (host_n)
		out_host[0] = '\0';
	if (http_url(&r, realm) < 0)
		return cm_error_set(err, CM_EINVAL,
				    "registry %.300s names the token realm '%.300s', which is not "
				    "an http(s) URL with a host",
				    origin, realm);
	if (http_url(&o, origin) < 0)
		return cm_error_set(err, CM_EINVAL, "registry '%.300s' is not an http(s) URL",
				    origin);
	if (host_n)
		snprintf(out_host, host_n, "%s", r.host);
	if (strcmp(o.scheme, "https") == 0 && strcmp(r.scheme, "http") == 0)
		return cm_error_set(err, CM_EINVAL,
				    "registry %.300s names a plain-HTTP token realm (%.300s): "
				    "refused, since credentials and tokens would cross the network "
				    "in clear text for an HTTPS registry",
				    origin, realm);
	if (strcmp(r.host, o.host) == 0) {
		*out_creds = 1;
		return 0;
	}
	/* Docker Hub: registry-1.docker.io sends its users to auth.docker.io */
	if (strcmp(o.host, "registry-1.docker.io") == 0 && strcmp(r.host, "auth.docker.io") == 0 &&
	    strcmp(r.scheme, "https") == 0) {
		*out_creds = 1;
		return 0;
	}
	char hp[320];
	snprintf(hp, sizeof(hp), "%s:%ld", r.host, r.port_n);
	for (size_t i = 0; i < n_allow; i++) {
		if (allow[i] &&
		    (strcasecmp(allow[i], r.host) == 0 || strcasecmp(allow[i], hp) == 0)) {
			*out_creds = 1;
			break;
		}
	}
	return 0;
}

/* Append "&key=escaped(value)" (no "&" first) to b. */
static int form_add(cm_buf *b, const char *key, const char *value, cm_error *err)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;
	if (b->len)
		rc = reg_secret_append(b, "&", 1, err);
	if (rc == 0)
		rc = reg_secret_append(b, key, strlen(key), err);
	if (rc == 0)
		rc = reg_secret_append(b, "=", 1, err);
	for (const unsigned char *p = (const unsigned char *)value; rc == 0 && *p; p++) {
		char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
		int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || strchr("-._~", *p);
		rc = plain ? reg_secret_append(b, (const char *)p, 1, err)
			   : reg_secret_append(b, e, 3, err);
	}
	return rc;
}

int reg_auth_refresh_form(char **out, const char *service, const char *scope,
			  const char *refresh_token, cm_error *err)
{
	cm_buf b = CM_BUF_INIT;
	*out = NULL;
	int rc = form_add(&b, "grant_type", "refresh_token", err);
	if (rc == 0 && service && *service)
		rc = form_add(&b, "service", service, err);
	if (rc == 0 && scope && *scope)
		rc = form_add(&b, "scope", scope, err);
	if (rc == 0)
		rc = form_add(&b, "client_id", "ferry", err);
	if (rc == 0)
		rc = form_add(&b, "refresh_token", refresh_token, err);
	if (rc < 0) {
		reg_secret_free(&b);
		return rc;
	}
	*out = cm_buf_detach(&b); /* NUL-terminated; reg_auth_token_req_free wipes it */
	return 0;
}

int reg_auth_token_req(reg_token_req *out, const char *realm, const char *service,
		       const char *scope, int identity, const char *secret, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (identity) {
		int rc = reg_auth_refresh_form(&out->form, service, scope, secret, err);
		if (rc == 0 && !(out->url = strdup(realm)))
			rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		if (rc < 0)
			reg_auth_token_req_free(out);
		return rc;
	}
	cm_buf q = CM_BUF_INIT, b = CM_BUF_INIT;
	int rc = 0;
	if (service && *service)
		rc = form_add(&q, "service", service, err);
	/* one scope= per scope */
	for (const char *p = scope; rc == 0 && p && *p;) {
		size_t l = strcspn(p, " ");
		char one[600];
		if (l && l < sizeof(one)) {
			memcpy(one, p, l);
			one[l] = '\0';
			rc = form_add(&q, "scope", one, err);
		}
		p += l;
		p += strspn(p, " ");
	}
	if (rc == 0)
		rc = cm_buf_append(&b, realm, strlen(realm), err);
	if (rc == 0 && q.len)
		rc = cm_buf_appendf(&b, err, "%c%s", strchr(realm, '?') ? '&' : '?', q.data);
	cm_buf_free(&q);
	if (rc < 0) {
		cm_buf_free(&b);
		return rc;
	}
	out->url = cm_buf_detach(&b);
	return 0;
}

void reg_auth_token_req_free(reg_token_req *r)
{
	if (r->form)
		OPENSSL_cleanse(r->form, strlen(r->form));
	free(r->form);
	free(r->url);
	r->form = r->url = NULL;
}

int reg_auth_token_parse(char **out, double *out_expires_in, const char *body, size_t len,
			 cm_error *err)
{
	json_t *j = json_loadb(body ? body : "", len, 0, NULL);
	const char *tk = json_string_value(json_object_get(j, "token"));
	if (!tk || !*tk)
		tk = json_string_value(json_object_get(j, "access_token"));
	json_t *ei = json_object_get(j, "expires_in");
	double exp_in = json_is_integer(ei) ? (double)json_integer_value(ei) : 60;
	*out_expires_in = exp_in < 60 ? 60 : exp_in;
	*out = tk && *tk ? strdup(tk) : NULL;
	int rc = 0;
	if (!tk || !*tk)
		rc = cm_error_set(err, CM_EFAIL, "the answer holds no token");
	else if (!*out)
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	json_decref(j);
	return rc;
}
