/* The registry client engine: every request (ping, HEAD, GET manifest,
 * blob) is an xfer run by one curl multi loop, so auth, retries,
 * redirects and resume share one code path. */
#include "reg_client.h"
#include "reg_ca.h"
#include "reg_url.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#ifndef FERRY_VERSION
#define FERRY_VERSION "0"
#endif

#define MANIFEST_ACCEPT                                                                            \
	"Accept: " REG_MT_OCI_INDEX ", " REG_MT_OCI_MANIFEST ", " REG_MT_DOCKER_LIST               \
	", " REG_MT_DOCKER_MANIFEST
#define ERRBODY_MAX ((size_t)64 << 10)
#define MAX_REDIRECTS 10

typedef struct route {
	char origin[600]; /* scheme://host[:port] */
	char host[300];	  /* host[:port] (credentials key) */
	char repo[512];	  /* repository path on the endpoint */
	const reg_endpoint *ep;
} route;

enum { AUTH_UNKNOWN = 0, AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

typedef struct host_state {
	char origin[600];
	char host[300];
	int scheme;
	char realm[1024], service[256];
	int creds_looked, have_creds;
	char user[256];
	char secret[4096];
	char creds_src[600];
	/* credentials were held back from a token realm on another host */
	int creds_withheld;
	char withheld_realm[300];  /* that realm's host */
	char withheld_prefix[256]; /* the spec's registries: key, or "" */
} host_state;

typedef struct token {
	char origin[600];
	char scope[1300];
	char *value;
	double expires;
} token;

enum { X_QUEUED = 0, X_ACTIVE, X_WAITING, X_DONE, X_FAILED };

typedef struct xfer {
	route rt;
	int head, is_blob;
	char path[800]; /* /v2/<repo>/manifests/<ref> */
	char *url;	/* current URL (redirects change it) */
	int redirects;
	int attempts;
	double waited, not_before;
	int state;
	int auth_retries;
	int fresh_retry;
	int restarted;	    /* a 416 made the sink start over (once) */
	const char *method; /* NULL: GET, or HEAD when head */
	char scope[1300];   /* the registry auth's scope; "": no registry auth */
	/* reg_request */
	const reg_req *q;
	reg_resp *resp;
	reg_sink sink; /* blobs: over the writer; else the caller's */
	int has_sink;
	uint64_t sink_asked; /* Range start of this try */
	/* sinks */
	cm_buf *mem;
	const reg_blob_req *req;
	reg_store *store;
	reg_blob_writer *w;
	uint64_t try_start; /* writer size when this attempt started */
	uint64_t received;  /* bytes received this run */
	int body_started;
	int write_failed;
	int write_code;
	char write_err[300];
	cm_buf errbody;
	/* response */
	long status;
	char h_auth[2048], h_retry[128], h_digest[128], h_ct[256], h_crange[128];
	char h_link[2048];   /* Link (pagination), cut at 2047 bytes */
	char h_subject[128]; /* OCI-Subject (a manifest PUT on an OCI 1.1 registry) */
	char *h_loc;
	long long clen;
	reg_client *c;
	CURL *easy;
	CURLM *multi;
	struct curl_slist *hdrs;
	uint64_t resumed_from; /* bytes on disk when the writer was opened */
	char errbuf[CURL_ERROR_SIZE];
	cm_error err;
} xfer;

struct reg_client {
	reg_client_opts o;
	reg_endpoint *eps;
	CURLM *multi;
	/* auth state and statistics, shared by the lanes' threads: a
	 * recursive lock (a ping runs transfers while it is held) */
	pthread_mutex_t mu;
	host_state **hosts; /* each its own block: pointers stay valid */
	size_t n_hosts;
	token *tokens;
	size_t n_tokens;
	reg_client_stats st;
	unsigned long long rng;
};

struct reg_lane {
	reg_client *c;
	CURLM *multi;
};

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rand01(reg_client *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return (double)(c->rng >> 11) / 9007199254740992.0;
}

int reg_client_new(reg_client **out, const reg_client_opts *o, cm_error *err)
{
	static int inited;
	if (!inited) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return cm_error_set(err, CM_EFAIL, "libcurl failed to initialise");
		inited = 1;
	}
	reg_client *c = calloc(1, sizeof(*c));
	if (!c)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	c->o = *o;
	if (c->o.jobs <= 0)
		c->o.jobs = 8;
	if (c->o.jobs > 64)
		c->o.jobs = 64;
	if (c->o.retry_budget < 0)
		c->o.retry_budget = 60;
	if (c->o.max_attempts <= 0)
		c->o.max_attempts = 10;
	if (o->n_endpoints) {
		c->eps = calloc(o->n_endpoints, sizeof(*c->eps));
		if (!c->eps) {
			free(c);
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		}
		memcpy(c->eps, o->endpoints, o->n_endpoints * sizeof(*c->eps));
	}
	c->o.endpoints = c->eps;
	c->multi = curl_multi_init();
	if (!c->multi) {
		free(c->eps);
		free(c);
		return cm_error_set(err, CM_EFAIL, "libcurl: no multi handle");
	}
	curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)c->o.jobs + 2);
	c->rng = (unsigned long long)time(NULL) * 2654435761ULL ^ (unsigned long long)getpid() ^
		 (unsigned long long)(uintptr_t)c;
	if (!c->rng)
		c->rng = 88172645463325252ULL;
	c->st.ratelimit_remaining = -1;
	c->st.ratelimit_limit = -1;
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&c->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	*out = c;
	return 0;
}

void reg_client_free(reg_client *c)
{
	if (!c)
		return;
	curl_multi_cleanup(c->multi);
	for (size_t i = 0; i < c->n_hosts; i++) {
		OPENSSL_cleanse(c->hosts[i], sizeof(*c->hosts[i]));
		free(c->hosts[i]);
	}
	for (size_t i = 0; i < c->n_tokens; i++) {
		if (c->tokens[i].value) {
			OPENSSL_cleanse(c->tokens[i].value, strlen(c->tokens[i].value));
			free(c->tokens[i].value);
		}
	}
	free(c->tokens);
	free(c->hosts);
	free(c->eps);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

const reg_client_stats *reg_client_stats_get(const reg_client *c)
{
	return &c->st;
}

static void emit(reg_client *c, const reg_event *ev)
{
	if (c->o.progress)
		c->o.progress(c->o.progress_ud, ev);
}

/* ---- routing ---- */

/* Does name ("host/path") start with prefix at a component boundary? */
static size_t prefix_match(const char *name, const char *prefix)
{
	size_t l = strlen(prefix);
	while (l && prefix[l - 1] == '/')
		l--;
	if (l == 0 || strncmp(name, prefix, l) != 0)
		return 0;
	return (name[l] == '\0' || name[l] == '/') ? l : 0;
}

static int reg_client_route_internal(route *rt, reg_client *c, const reg_ref *r, cm_error *err)
{
	char name[600];
	memset(rt, 0, sizeof(*rt));
	snprintf(name, sizeof(name), "%s/%s", r->host, r->path);
	const reg_endpoint *best = NULL;
	size_t best_l = 0;
	for (size_t i = 0; i < c->o.n_endpoints; i++) {
		size_t l = prefix_match(name, c->eps[i].prefix);
		if (l > best_l) {
			best = &c->eps[i];
			best_l = l;
		}
	}
	if (!best) {
		const char *h =
		    strcmp(r->host, "docker.io") == 0 ? "registry-1.docker.io" : r->host;
		snprintf(rt->origin, sizeof(rt->origin), "https://%s", h);
		snprintf(rt->host, sizeof(rt->host), "%s", h);
		snprintf(rt->repo, sizeof(rt->repo), "%s", r->path);
		return 0;
	}
	rt->ep = best;
	const char *e = best->endpoint;
	const char *scheme = best->insecure ? "http" : "https";
	if (strncmp(e, "http://", 7) == 0) {
		scheme = "http";
		e += 7;
	} else if (strncmp(e, "https://", 8) == 0) {
		scheme = "https";
		e += 8;
	}
	size_t hl = strcspn(e, "/");
	if (hl == 0 || hl >= sizeof(rt->host))
		return cm_error_set(err, CM_EINVAL, "registry endpoint '%.200s' has no host",
				    best->endpoint);
	memcpy(rt->host, e, hl);
	rt->host[hl] = '\0';
	if (strcmp(rt->host, "docker.io") == 0)
		snprintf(rt->host, sizeof(rt->host), "registry-1.docker.io");
	snprintf(rt->origin, sizeof(rt->origin), "%s://%s", scheme, rt->host);
	const char *epath = e + hl;
	while (*epath == '/')
		epath++;
	const char *rest = name + best_l;
	while (*rest == '/')
		rest++;
	char ep_path[512];
	snprintf(ep_path, sizeof(ep_path), "%s", epath);
	size_t el = strlen(ep_path);
	while (el && ep_path[el - 1] == '/')
		ep_path[--el] = '\0';
	int n =
	    snprintf(rt->repo, sizeof(rt->repo), "%s%s%s", ep_path, (el && *rest) ? "/" : "", rest);
	if (n < 0 || (size_t)n >= sizeof(rt->repo) || !rt->repo[0])
		return cm_error_set(err, CM_EINVAL, "%s maps to no repository on %s", name,
				    best->endpoint);
	return 0;
}

const reg_endpoint *reg_client_endpoint(reg_client *c, const reg_ref *r)
{
	route rt;
	cm_error e;
	return reg_client_route_internal(&rt, c, r, &e) == 0 ? rt.ep : NULL;
}

int reg_client_route(char *base, size_t base_n, char *repo, size_t repo_n, reg_client *c,
		     const reg_ref *r, cm_error *err)
{
	route rt;
	int rc = reg_client_route_internal(&rt, c, r, err);
	if (rc < 0)
		return rc;
	snprintf(base, base_n, "%s", rt.origin);
	snprintf(repo, repo_n, "%s", rt.repo);
	return 0;
}

/* scheme://host[:port] of url into origin (lowercase), and host[:port] into
 * host; "" when url is no URL. */
static void url_origin(char *origin, size_t n, char *host_out, size_t host_n, const char *url)
{
	reg_url u;
	origin[0] = '\0';
	if (host_n)
		host_out[0] = '\0';
	if (reg_url_parse(&u, url, 0, NULL) < 0 || snprintf(origin, n, "%s", u.origin) >= (int)n) {
		origin[0] = '\0';
		return;
	}
	if (host_n)
		snprintf(host_out, host_n, "%s", origin + strlen(u.scheme) + 3);
}

/* ---- hosts, credentials and tokens ---- */

static host_state *host_get(reg_client *c, const route *rt)
{
	for (size_t i = 0; i < c->n_hosts; i++)
		if (strcmp(c->hosts[i]->origin, rt->origin) == 0)
			return c->hosts[i];
	host_state **v = realloc(c->hosts, (c->n_hosts + 1) * sizeof(*v));
	if (!v)
		return NULL;
	c->hosts = v;
	host_state *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	v[c->n_hosts++] = h;
	snprintf(h->origin, sizeof(h->origin), "%s", rt->origin);
	snprintf(h->host, sizeof(h->host), "%s", rt->host);
	return h;
}

static int host_creds(reg_client *c, host_state *h, cm_error *err)
{
	if (h->creds_looked)
		return 0;
	h->creds_looked = 1;
	int rc = reg_auth_lookup(h->user, sizeof(h->user), h->secret, sizeof(h->secret),
				 h->creds_src, sizeof(h->creds_src), h->host, err);
	if (rc < 0)
		return cm_error_wrap(err, "credentials for %s", h->host);
	h->have_creds = rc == 1;
	char msg[800];
	snprintf(msg, sizeof(msg), "%s", h->have_creds ? h->creds_src : "anonymous");
	reg_event ev = {.type = REG_EV_AUTH, .what = h->host, .msg = msg};
	emit(c, &ev);
	return 0;
}

static token *token_find(reg_client *c, const char *origin, const char *scope)
{
	for (size_t i = 0; i < c->n_tokens; i++)
		if (strcmp(c->tokens[i].origin, origin) == 0 &&
		    strcmp(c->tokens[i].scope, scope) == 0)
			return &c->tokens[i];
	return NULL;
}

static void token_drop(reg_client *c, const char *origin, const char *scope)
{
	token *t = token_find(c, origin, scope);
	if (t && t->value) {
		OPENSSL_cleanse(t->value, strlen(t->value));
		free(t->value);
		t->value = NULL;
		t->expires = 0;
	}
}

/* A header list that may hold an Authorization line: wiped, then freed. */
static void slist_free_wiped(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		if (p->data)
			OPENSSL_cleanse(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

/* Why a 401 happened when credentials were held back from a foreign
 * realm, and how to allow them ("" when they were not). */
static void withheld_hint(char *out, size_t n, const reg_client *c, const host_state *h)
{
	out[0] = '\0';
	if (!h || !h->creds_withheld)
		return;
	if (c->o.realm_flag) {
		snprintf(out, n,
			 "; the credentials for %s were not sent to its token realm, since it is "
			 "on another host (%s): if you trust %s with them, pass %s %s (docker "
			 "would send them; docs/registry-client.md)",
			 h->host, h->withheld_realm, h->withheld_realm, c->o.realm_flag,
			 h->withheld_realm);
		return;
	}
	snprintf(out, n,
		 "; the credentials from %.400s were not sent to the token realm, since it is on "
		 "another host (%s) than the registry (%s): if you trust %s with them, allow "
		 "it for this registry in the spec (registries: %s: realm-credentials: [%s]); "
		 "docker would send them (docs/registry-client.md)",
		 h->creds_src, h->withheld_realm, h->host, h->withheld_realm,
		 h->withheld_prefix[0] ? h->withheld_prefix : h->host, h->withheld_realm);
}

static int basic_header(char *out, size_t n, const host_state *h)
{
	char raw[4400];
	int l = snprintf(raw, sizeof(raw), "%s:%s", h->user, h->secret);
	if (l < 0 || (size_t)l >= sizeof(raw) || (size_t)(4 * ((l + 2) / 3) + 32) > n)
		return CM_EINVAL;
	int p = snprintf(out, n, "Authorization: Basic ");
	EVP_EncodeBlock((unsigned char *)out + p, (const unsigned char *)raw, l);
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

/* A request body in memory. */
typedef struct mem_src {
	const char *p;
	size_t len, pos;
} mem_src;

static long mem_read(void *ud, char *buf, size_t n)
{
	mem_src *m = ud;
	if (n > m->len - m->pos)
		n = m->len - m->pos;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (long)n;
}

static int mem_seek(void *ud, uint64_t off)
{
	mem_src *m = ud;
	if (off > m->len)
		return -1;
	m->pos = (size_t)off;
	return 0;
}

static void apply_tls(CURL *e, const route *rt, const char *url)
{
	char o[600];
	url_origin(o, sizeof(o), NULL, 0, url);
	if (!rt->ep || strcmp(o, rt->origin) != 0)
		return;
	if (rt->ep->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (rt->ep->ca[0])
		curl_easy_setopt(e, CURLOPT_CAINFO, rt->ep->ca);
	if (rt->ep->cert[0])
		curl_easy_setopt(e, CURLOPT_SSLCERT, rt->ep->cert);
	if (rt->ep->key[0])
		curl_easy_setopt(e, CURLOPT_SSLKEY, rt->ep->key);
}

static void common_opts(CURL *e)
{
	/* the host's CAs (reg_ca.h); apply_tls may replace the file */
	const reg_ca_paths *ca = reg_ca_system();
	if (ca->file[0])
		curl_easy_setopt(e, CURLOPT_CAINFO, ca->file);
	if (ca->dir[0])
		curl_easy_setopt(e, CURLOPT_CAPATH, ca->dir);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "ferry/" FERRY_VERSION);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
}

/* Fetch a Bearer token for scope (blocking; tokens are few). */
static int fetch_token(reg_client *c, host_state *h, const route *rt, const char *scope,
		       cm_error *err)
{
	if (host_creds(c, h, err) < 0)
		return err->code;
	/* the realm: not plain HTTP for an HTTPS registry, and the
	 * credentials go to another host only when the user allowed it */
	const char *allow[REG_REALM_CREDS_MAX];
	size_t n_allow = 0;
	for (size_t i = 0; rt->ep && i < rt->ep->n_realm_creds && i < REG_REALM_CREDS_MAX; i++)
		allow[n_allow++] = rt->ep->realm_creds[i];
	int creds_ok = 0;
	char rhost[300];
	int rc = reg_auth_realm_check(&creds_ok, rhost, sizeof(rhost), h->origin, h->realm, allow,
				      n_allow, err);
	if (rc < 0)
		return rc;
	int use_creds = h->have_creds && creds_ok;
	if (h->have_creds && !creds_ok && !h->creds_withheld) {
		h->creds_withheld = 1;
		snprintf(h->withheld_realm, sizeof(h->withheld_realm), "%s", rhost);
		snprintf(h->withheld_prefix, sizeof(h->withheld_prefix), "%s",
			 rt->ep ? rt->ep->prefix : "");
		char msg[900];
		snprintf(msg, sizeof(msg),
			 "credentials from %.400s withheld from token realm %.300s (another host); "
			 "asking for an anonymous token",
			 h->creds_src, rhost);
		reg_event ev = {.type = REG_EV_AUTH, .what = h->host, .msg = msg};
		emit(c, &ev);
	}
	/* a request on the engine like any other (its retries and budget),
	 * on a lane of its own: it runs while a transfer waits for it */
	char ah[6000] = "";
	int ident = use_creds && reg_auth_is_identity(h->user);
	reg_token_req tr;
	if ((rc = reg_auth_token_req(&tr, h->realm, h->service, scope, ident, h->secret, err)) < 0)
		return rc;
	if (!ident && use_creds && basic_header(ah, sizeof(ah), h) < 0)
		ah[0] = '\0';
	mem_src ms = {tr.form, tr.form ? strlen(tr.form) : 0, 0};
	reg_body form = {mem_read, mem_seek, &ms, ms.len};
	char o[600];
	url_origin(o, sizeof(o), NULL, 0, tr.url);
	reg_req q = {.method = tr.form ? "POST" : "GET",
		     .url = tr.url,
		     .ep = strcmp(o, rt->origin) == 0 ? rt->ep : NULL,
		     .authorization = ah,
		     .content_type = tr.form ? "application/x-www-form-urlencoded" : NULL,
		     .body = tr.form ? &form : NULL,
		     .secret = 1};
	reg_resp r = {0};
	reg_lane *l = NULL;
	rc = reg_lane_new(&l, c, err);
	if (rc == 0)
		rc = reg_request(&r, l, &q, err);
	reg_lane_free(l);
	OPENSSL_cleanse(ah, sizeof(ah));
	reg_auth_token_req_free(&tr);
	long st = r.status;
	if (rc == 0 && st == 200) {
		char *tk = NULL;
		double exp_in;
		rc = reg_auth_token_parse(&tk, &exp_in, r.body.data, r.body.len, err);
		reg_secret_free(&r.body);
		if (rc < 0)
			return cm_error_wrap(err, "token server %s", h->realm);
		token *t = token_find(c, rt->origin, scope);
		if (!t) {
			token *nv = realloc(c->tokens, (c->n_tokens + 1) * sizeof(*nv));
			if (!nv) {
				OPENSSL_cleanse(tk, strlen(tk));
				free(tk);
				return cm_error_set(err, CM_ENOMEM, "out of memory");
			}
			c->tokens = nv;
			t = &nv[c->n_tokens++];
			memset(t, 0, sizeof(*t));
			snprintf(t->origin, sizeof(t->origin), "%s", rt->origin);
			snprintf(t->scope, sizeof(t->scope), "%s", scope);
		}
		if (t->value)
			OPENSSL_cleanse(t->value, strlen(t->value));
		free(t->value);
		t->value = tk;
		t->expires = now_mono() + exp_in - 10;
		return 0;
	}
	reg_secret_free(&r.body);
	if (rc < 0)
		return cm_error_wrap(err, "token server %s", h->realm);
	if ((st == 400 || st == 401 || st == 403) && ident)
		return cm_error_set(err, CM_EFAIL,
				    "token server %s refused the identity token for %s from %s "
				    "(HTTP %ld): log in again (docker login %s)",
				    h->realm, h->host, h->creds_src, st, h->host);
	if (st == 401 || st == 403) {
		char hint[2400];
		withheld_hint(hint, sizeof(hint), c, h);
		if (use_creds)
			return cm_error_set(
			    err, CM_EFAIL,
			    "token server %s refused the credentials for %s from %s "
			    "(HTTP %ld): check the user name and password",
			    h->realm, h->host, h->creds_src, st);
		if (hint[0])
			return cm_error_set(err, CM_EFAIL,
					    "token server %s refused an anonymous token for "
					    "%s (HTTP %ld)%s",
					    h->realm, scope, st, hint);
		return cm_error_set(err, CM_EFAIL,
				    "token server %s refused an anonymous token for %s (HTTP %ld): "
				    "log in (docker login %s) or add credentials",
				    h->realm, scope, st, h->host);
	}
	return cm_error_set(err, CM_EFAIL, "token server %s answered HTTP %ld", h->realm, st);
}

/* The Authorization header for a request to rt (or "" for none). */
static int auth_header(char *out, size_t n, reg_client *c, const route *rt, const char *scope,
		       cm_error *err)
{
	out[0] = '\0';
	host_state *h = host_get(c, rt);
	if (!h)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	if (h->scheme == AUTH_NONE || h->scheme == AUTH_UNKNOWN)
		return 0;
	if (h->scheme == AUTH_BASIC) {
		if (host_creds(c, h, err) < 0)
			return err->code;
		if (h->have_creds && reg_auth_is_identity(h->user))
			return cm_error_set(
			    err, CM_EFAIL,
			    "%s asks for Basic auth, but the credentials from %s are "
			    "an identity token, which only buys Bearer tokens",
			    h->host, h->creds_src);
		if (h->have_creds)
			return basic_header(out, n, h) < 0
				   ? cm_error_set(err, CM_EINVAL, "credentials for %s too long",
						  h->host)
				   : 0;
		return 0;
	}
	token *t = token_find(c, rt->origin, scope);
	if (!t || !t->value || now_mono() >= t->expires) {
		int rc = fetch_token(c, h, rt, scope, err);
		if (rc < 0)
			return rc;
		t = token_find(c, rt->origin, scope);
	}
	if (!t || !t->value)
		return cm_error_set(err, CM_EFAIL, "no token for %s", scope);
	if (strlen(t->value) + 32 > n)
		return cm_error_set(err, CM_EINVAL, "token for %s too long", scope);
	snprintf(out, n, "Authorization: Bearer %s", t->value);
	return 0;
}

/* Learn the auth scheme from a challenge. */
static void learn_challenge(reg_client *c, const route *rt, const char *v)
{
	host_state *h = host_get(c, rt);
	if (!h)
		return;
	char scheme[32], realm[1024], service[256], scope[600];
	if (reg_auth_parse_challenge(v, scheme, sizeof(scheme), realm, sizeof(realm), service,
				     sizeof(service), scope, sizeof(scope)) < 0)
		return;
	if (strcasecmp(scheme, "Bearer") == 0 && realm[0]) {
		h->scheme = AUTH_BEARER;
		snprintf(h->realm, sizeof(h->realm), "%s", realm);
		snprintf(h->service, sizeof(h->service), "%s", service);
	} else if (strcasecmp(scheme, "Basic") == 0) {
		h->scheme = AUTH_BASIC;
	}
}

/* ---- transfers ---- */

int reg_header_parse(char *name, size_t name_n, char *value, size_t value_n, const char *line,
		     size_t len)
{
	if (name_n)
		name[0] = '\0';
	if (value_n)
		value[0] = '\0';
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	if (len >= 5 && memcmp(line, "HTTP/", 5) == 0)
		return 1;
	const char *colon = memchr(line, ':', len);
	size_t kl = colon ? (size_t)(colon - line) : 0;
	if (kl == 0 || kl >= name_n || value_n == 0)
		return 0;
	for (size_t i = 0; i < kl; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch <= ' ' || ch >= 0x7f) { /* not a token: no header */
			name[0] = '\0';
			return 0;
		}
		name[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	name[kl] = '\0';
	const char *v = colon + 1;
	size_t vl = len - kl - 1;
	while (vl && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	if (vl >= value_n)
		vl = value_n - 1;
	memcpy(value, v, vl);
	value[vl] = '\0';
	return 0;
}

static void ratelimit_seen(reg_client *c, const xfer *x, const char *name, const char *v)
{
	long n = reg_parse_ratelimit(v);
	if (n < 0)
		return;
	pthread_mutex_lock(&c->mu);
	if (strcmp(name, "ratelimit-limit") == 0) {
		c->st.ratelimit_limit = n;
	} else if (c->st.ratelimit_remaining < 0 || n < c->st.ratelimit_remaining) {
		c->st.ratelimit_remaining = n;
		snprintf(c->st.ratelimit_host, sizeof(c->st.ratelimit_host), "%.255s", x->rt.host);
	}
	pthread_mutex_unlock(&c->mu);
}

#define HDR_VALUE_MAX 8192

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
	xfer *x = ud;
	reg_client *c = x->c;
	size_t n = sz * nm;
	char name[64], v[HDR_VALUE_MAX];
	if (reg_header_parse(name, sizeof(name), v, sizeof(v), p, n) == 1) {
		/* a new response: forget the last one's headers */
		x->status = 0;
		x->h_auth[0] = x->h_retry[0] = x->h_digest[0] = x->h_ct[0] = x->h_crange[0] = '\0';
		x->h_link[0] = x->h_subject[0] = '\0';
		free(x->h_loc);
		x->h_loc = NULL;
		x->clen = -1;
		return n;
	}
	if (strcmp(name, "www-authenticate") == 0) {
		/* prefer a Bearer challenge when several are sent */
		if (!x->h_auth[0] || strncasecmp(x->h_auth, "Bearer", 6) != 0)
			snprintf(x->h_auth, sizeof(x->h_auth), "%.2000s", v);
	} else if (strcmp(name, "location") == 0) {
		free(x->h_loc);
		x->h_loc = strdup(v);
	} else if (strcmp(name, "retry-after") == 0) {
		snprintf(x->h_retry, sizeof(x->h_retry), "%.100s", v);
	} else if (strcmp(name, "docker-content-digest") == 0) {
		snprintf(x->h_digest, sizeof(x->h_digest), "%.100s", v);
	} else if (strcmp(name, "content-type") == 0) {
		v[strcspn(v, "; ")] = '\0';
		snprintf(x->h_ct, sizeof(x->h_ct), "%.200s", v);
	} else if (strcmp(name, "link") == 0) {
		snprintf(x->h_link, sizeof(x->h_link), "%.2000s", v);
	} else if (strcmp(name, "oci-subject") == 0) {
		snprintf(x->h_subject, sizeof(x->h_subject), "%.100s", v);
	} else if (strcmp(name, "content-range") == 0) {
		snprintf(x->h_crange, sizeof(x->h_crange), "%.100s", v);
	} else if (strcmp(name, "content-length") == 0) {
		x->clen = strtoll(v, NULL, 10);
	} else if (strcmp(name, "ratelimit-remaining") == 0 ||
		   strcmp(name, "ratelimit-limit") == 0) {
		ratelimit_seen(c, x, name, v);
	}
	return n;
}

static int ok_status(long s)
{
	return s == 200 || s == 206;
}

/* The blob writer as a sink. */
static int w_write(void *ud, const char *p, size_t n, cm_error *err)
{
	return reg_blob_writer_write(ud, p, n, err);
}
static uint64_t w_size(void *ud)
{
	return reg_blob_writer_size(ud);
}
static int w_reset(void *ud, cm_error *err)
{
	return reg_blob_writer_reset(ud, err);
}

static uint64_t sink_size(const xfer *x)
{
	return x->has_sink ? x->sink.size(x->sink.ud) : 0;
}

/* First body bytes into a sink: check Range handling. */
static int sink_body_start(xfer *x)
{
	cm_error e;
	if (x->status == 206) {
		unsigned long long a = 0, b = 0;
		if (sscanf(x->h_crange, "bytes %llu-%llu", &a, &b) != 2 || a != x->sink_asked) {
			snprintf(x->write_err, sizeof(x->write_err),
				 "server answered Range bytes=%llu- with Content-Range '%.60s'",
				 (unsigned long long)x->sink_asked, x->h_crange);
			x->write_code = CM_EFAIL;
			return -1;
		}
	} else if (sink_size(x) > 0) {
		/* the server ignored Range: start again */
		if (x->sink.reset(x->sink.ud, &e) < 0) {
			snprintf(x->write_err, sizeof(x->write_err), "%.250s", e.msg);
			x->write_code = e.code;
			return -1;
		}
		x->try_start = 0;
	}
	return 0;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
	xfer *x = ud;
	size_t n = sz * nm;
	cm_error e;
	if (!x->body_started) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
		x->body_started = 1;
		if (x->has_sink && ok_status(x->status) && sink_body_start(x) < 0) {
			x->write_failed = 1;
			return 0;
		}
	}
	if (x->mem && (!x->resp || !x->has_sink)) {
		if (!ok_status(x->status) && !x->resp)
			goto errbody;
		if ((x->q && x->q->secret ? reg_secret_append(x->mem, p, n, &e)
					  : cm_buf_append(x->mem, p, n, &e)) < 0) {
			snprintf(x->write_err, sizeof(x->write_err), "response too large (%.200s)",
				 e.msg);
			x->write_code = CM_EINVAL;
			x->write_failed = 1;
			return 0;
		}
		return n;
	}
	if (!ok_status(x->status))
		goto errbody;
	if (!x->has_sink)
		return n;
	if (x->sink.max && sink_size(x) + n > x->sink.max) {
		snprintf(x->write_err, sizeof(x->write_err),
			 "the server sent more than the %llu bytes expected",
			 (unsigned long long)x->sink.max);
		x->write_code = CM_EVERIFY;
		x->write_failed = 1;
		return 0;
	}
	/* the blob writer gathers the pieces into large writes (reg_store.h) */
	if (x->sink.write(x->sink.ud, p, n, &e) < 0) {
		snprintf(x->write_err, sizeof(x->write_err), "%.250s", e.msg);
		x->write_code = e.code;
		x->write_failed = 1;
		return 0;
	}
	x->received += n;
	return n;
errbody:
	if (x->errbody.len + n <= ERRBODY_MAX)
		cm_buf_append(&x->errbody, p, n, &e);
	return n;
}

static void xfer_url_reset(xfer *x)
{
	free(x->url);
	if (x->q) {
		x->url = strdup(x->q->url);
	} else {
		size_t l = strlen(x->rt.origin) + strlen(x->path) + 1;
		x->url = malloc(l);
		if (x->url)
			snprintf(x->url, l, "%s%s", x->rt.origin, x->path);
	}
	x->redirects = 0;
}

static const char *xfer_method(const xfer *x)
{
	return x->method ? x->method : x->head ? "HEAD" : "GET";
}

/* A request body for curl. */
static size_t body_read(char *buf, size_t sz, size_t nm, void *ud)
{
	const reg_body *b = ud;
	long n = b->read(b->ud, buf, sz * nm);
	return n < 0 ? CURL_READFUNC_ABORT : (size_t)n;
}

static int body_seek(void *ud, curl_off_t off, int origin)
{
	const reg_body *b = ud;
	if (origin != SEEK_SET || off < 0 || !b->seek)
		return CURL_SEEKFUNC_CANTSEEK;
	return b->seek(b->ud, (uint64_t)off) < 0 ? CURL_SEEKFUNC_FAIL : CURL_SEEKFUNC_OK;
}

/* The method, headers and body of x on ez. */
static int xfer_setup(xfer *x, CURL *ez, const char *auth)
{
	struct curl_slist *h = NULL, *t;
#define ADD(line)                                                                                  \
	do {                                                                                       \
		if (!(t = curl_slist_append(h, line)))                                             \
			goto nomem;                                                                \
		h = t;                                                                             \
	} while (0)
	if (auth[0])
		ADD(auth);
	const reg_req *q = x->q;
	if (!q && !x->is_blob)
		ADD(MANIFEST_ACCEPT);
	if (x->has_sink && sink_size(x) > 0) {
		char rh[64];
		snprintf(rh, sizeof(rh), "Range: bytes=%llu-", (unsigned long long)sink_size(x));
		ADD(rh);
	}
	x->sink_asked = sink_size(x);
	const char *m = xfer_method(x);
	if (strcmp(m, "HEAD") == 0)
		curl_easy_setopt(ez, CURLOPT_NOBODY, 1L);
	if (q) {
		char line[400];
		if (q->content_type) {
			snprintf(line, sizeof(line), "Content-Type: %.300s", q->content_type);
			ADD(line);
		}
		if (q->header)
			ADD(q->header);
		ADD("Expect:"); /* no 100-continue round trip before a body */
		if (strcmp(m, "POST") == 0 && !q->body) {
			curl_easy_setopt(ez, CURLOPT_POSTFIELDS, "");
			curl_easy_setopt(ez, CURLOPT_POSTFIELDSIZE, 0L);
		} else if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
			curl_easy_setopt(ez, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(ez, CURLOPT_CUSTOMREQUEST, m);
			curl_easy_setopt(ez, CURLOPT_INFILESIZE_LARGE,
					 (curl_off_t)(q->body ? q->body->len : 0));
			/* a larger upload buffer than curl's 64 KiB: fewer, larger sends */
			curl_easy_setopt(ez, CURLOPT_UPLOAD_BUFFERSIZE, 256L << 10);
			if (q->body) {
				if (q->body->seek && q->body->seek(q->body->ud, 0) < 0) {
					curl_slist_free_all(h);
					return CM_EIO;
				}
				curl_easy_setopt(ez, CURLOPT_READFUNCTION, body_read);
				curl_easy_setopt(ez, CURLOPT_READDATA, q->body);
				curl_easy_setopt(ez, CURLOPT_SEEKFUNCTION, body_seek);
				curl_easy_setopt(ez, CURLOPT_SEEKDATA, q->body);
			}
		}
	}
#undef ADD
	x->hdrs = h;
	curl_easy_setopt(ez, CURLOPT_HTTPHEADER, h);
	return 0;
nomem:
	slist_free_wiped(h);
	return CM_ENOMEM;
}

static void xfer_fail(xfer *x, int code, const char *fmt, const char *a, const char *b)
{
	cm_error_set(&x->err, code, fmt, a ? a : "", b ? b : "");
	x->state = X_FAILED;
}

static int ensure_ping(reg_client *c, const route *rt, cm_error *err);

/* Start x: returns 0 (active, or done/failed without a request). */
static void xfer_start(reg_client *c, xfer *x)
{
	cm_error e;
	if (!x->url)
		xfer_url_reset(x);
	if (!x->url) {
		xfer_fail(x, CM_ENOMEM, "out of memory%s%s", NULL, NULL);
		return;
	}
	if (x->is_blob) {
		const reg_desc *d = &x->req->desc;
		uint64_t have;
		if (!x->w && reg_store_has(x->store, &d->digest, &have) && have == d->size) {
			x->state = X_DONE;
			return;
		}
		if (!x->w) {
			if (reg_blob_writer_resume(&x->w, x->store, &d->digest, x->req->tee, &e) <
			    0) {
				x->err = e;
				x->state = X_FAILED;
				return;
			}
			uint64_t on_disk = reg_blob_writer_size(x->w);
			x->resumed_from = on_disk;
			reg_event ev = {.type = REG_EV_BLOB_START,
					.what = d->digest.s,
					.repo = x->rt.repo,
					.done = on_disk,
					.total = d->size};
			emit(c, &ev);
			if (on_disk > 0 && on_disk <= d->size) {
				c->st.resumes++;
				reg_event rv = {.type = REG_EV_RESUME,
						.what = d->digest.s,
						.done = on_disk,
						.total = d->size};
				emit(c, &rv);
			}
		}
		uint64_t sz = reg_blob_writer_size(x->w);
		if (sz > d->size && reg_blob_writer_reset(x->w, &e) < 0) {
			x->err = e;
			x->state = X_FAILED;
			return;
		}
		if (sz == d->size) {
			/* everything is on disk already: the caller's commit checks it */
			x->status = 200;
			x->state = X_DONE;
			return;
		}
		x->try_start = reg_blob_writer_size(x->w);
		x->sink = (reg_sink){w_write, w_size, w_reset, x->w, d->size};
		x->has_sink = 1;
	} else if (x->has_sink) {
		x->try_start = sink_size(x);
		if (x->try_start > 0) {
			pthread_mutex_lock(&c->mu);
			c->st.resumes++;
			reg_event rv = {
			    .type = REG_EV_RESUME, .what = x->q->url, .done = x->try_start};
			emit(c, &rv);
			pthread_mutex_unlock(&c->mu);
		}
	}
	char o[600];
	url_origin(o, sizeof(o), NULL, 0, x->url);
	int same_origin = strcmp(o, x->rt.origin) == 0;
	char ah[8192] = "";
	int rc = 0;
	if (same_origin && x->scope[0]) {
		pthread_mutex_lock(&c->mu);
		rc = ensure_ping(c, &x->rt, &e);
		if (rc == 0)
			rc = auth_header(ah, sizeof(ah), c, &x->rt, x->scope, &e);
		pthread_mutex_unlock(&c->mu);
	} else if (same_origin && x->q && x->q->authorization) {
		if (snprintf(ah, sizeof(ah), "%s", x->q->authorization) >= (int)sizeof(ah))
			rc = cm_error_set(&e, CM_EINVAL, "the credentials for %s are too long", o);
	}
	if (rc < 0) {
		x->err = e;
		x->state = X_FAILED;
		return;
	}
	x->easy = curl_easy_init();
	if (!x->easy || (rc = xfer_setup(x, x->easy, ah)) < 0) {
		OPENSSL_cleanse(ah, sizeof(ah));
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
		if (rc == CM_EIO) {
			char shown[600];
			reg_url_redact(shown, sizeof(shown), x->url);
			xfer_fail(x, CM_EIO, "%s %s: the request body cannot be read again",
				  xfer_method(x), shown);
		} else
			xfer_fail(x, CM_ENOMEM, "out of memory%s%s", NULL, NULL);
		return;
	}
	OPENSSL_cleanse(ah, sizeof(ah));
	CURL *ez = x->easy;
	common_opts(ez);
	curl_easy_setopt(ez, CURLOPT_URL, x->url);
	curl_easy_setopt(ez, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(ez, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(ez, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(ez, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(ez, CURLOPT_PRIVATE, x);
	/* wait for a connection that may multiplex only where HTTP/2 can be
	 * offered (TLS, ALPN); over plain HTTP that wait would serialize the
	 * first requests to a host */
	curl_easy_setopt(ez, CURLOPT_PIPEWAIT, strncmp(x->url, "https://", 8) == 0 ? 1L : 0L);
	x->errbuf[0] = '\0';
	curl_easy_setopt(ez, CURLOPT_ERRORBUFFER, x->errbuf);
	if (x->has_sink) /* a large body: fewer, larger writes (a small answer keeps curl's 16 KiB)
			  */
		curl_easy_setopt(ez, CURLOPT_BUFFERSIZE, 128L << 10);
	apply_tls(ez, &x->rt, x->url);
	if (same_origin && x->q && x->q->netrc) {
		const char *nf = getenv("NETRC");
		curl_easy_setopt(ez, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		if (nf && nf[0])
			curl_easy_setopt(ez, CURLOPT_NETRC_FILE, nf);
	}
	x->status = 0;
	x->clen = -1;
	x->body_started = 0;
	x->write_failed = 0;
	x->errbody.len = 0;
	if (x->errbody.data)
		x->errbody.data[0] = '\0';
	if (x->mem) {
		x->mem->len = 0;
		if (x->mem->data)
			x->mem->data[0] = '\0';
	}
	if (curl_multi_add_handle(x->multi, ez) != CURLM_OK) {
		curl_easy_cleanup(ez);
		x->easy = NULL;
		xfer_fail(x, CM_EFAIL, "libcurl refused a transfer%s%s", NULL, NULL);
		return;
	}
	x->state = X_ACTIVE;
}

static void xfer_release(xfer *x)
{
	if (x->easy) {
		curl_multi_remove_handle(x->multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	slist_free_wiped(x->hdrs);
	x->hdrs = NULL;
}

/* The registry's error message from a JSON error body, if any. */
static void registry_error(char *out, size_t n, const cm_buf *b)
{
	out[0] = '\0';
	if (!b->data || !b->len)
		return;
	json_error_t je;
	json_t *j = json_loadb(b->data, b->len, 0, &je);
	json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
	const char *code = json_string_value(json_object_get(e0, "code"));
	const char *msg = json_string_value(json_object_get(e0, "message"));
	if (code || msg)
		snprintf(out, n, " (%.60s%s%.300s)", code ? code : "", code && msg ? ": " : "",
			 msg ? msg : "");
	json_decref(j);
}

/* Schedule a retry after a transient failure. */
static void xfer_retry(reg_client *c, xfer *x, const char *why, double retry_after, int progressed)
{
	if (!progressed)
		x->attempts++;
	double delay;
	if (retry_after >= 0)
		delay = retry_after;
	else if (progressed)
		delay = 0;
	else {
		int k = x->attempts - 1 < 8 ? x->attempts - 1 : 8;
		delay = 0.25 * (double)(1 << k);
		if (delay > 30)
			delay = 30;
		delay *= 0.5 + rand01(c); /* jitter */
	}
	char label[200], shown[180];
	if (x->url)
		reg_url_redact(shown, sizeof(shown), x->url);
	else
		snprintf(shown, sizeof(shown), "%.179s", x->path);
	snprintf(label, sizeof(label), "%s %s", xfer_method(x), shown);
	if (x->attempts >= c->o.max_attempts || x->waited + delay > c->o.retry_budget) {
		cm_error_set(&x->err, CM_EFAIL,
			     "%.400s: giving up after %d tries and %.1fs of back-off (retry budget "
			     "%.0fs%s): %s",
			     label, x->attempts, x->waited, c->o.retry_budget,
			     x->attempts >= c->o.max_attempts ? ", attempts exhausted" : "", why);
		x->state = X_FAILED;
		return;
	}
	x->waited += delay;
	x->not_before = now_mono() + delay;
	x->state = X_WAITING;
	c->st.retries++;
	xfer_url_reset(x);
	reg_event ev = {.type = REG_EV_RETRY,
			.what = x->is_blob ? x->req->desc.digest.s : label,
			.status = (int)x->status,
			.wait = delay,
			.msg = why};
	emit(c, &ev);
}

static void xfer_finish(reg_client *c, xfer *x, CURLcode cr)
{
	char o[600];
	url_origin(o, sizeof(o), NULL, 0, x->url);
	int same_origin = strcmp(o, x->rt.origin) == 0;
	long status = 0;
	long hv = 0;
	if (x->easy)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	x->status = status;
	if (x->easy && curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &hv) == CURLE_OK &&
	    hv == CURL_HTTP_VERSION_2_0)
		c->st.http2++;
	char why[600];
	char label[1200];
	char shown[1100];
	reg_url_redact(shown, sizeof(shown), x->url); /* no user:password or query in messages */
	snprintf(label, sizeof(label), "%s %s", xfer_method(x), shown);
	int progressed = x->has_sink && sink_size(x) > x->try_start;
	xfer_release(x);
	if (x->write_failed) {
		if (x->write_code == CM_EVERIFY || x->write_code == CM_EINVAL ||
		    x->write_code == CM_EIO || x->write_code == CM_ENOMEM) {
			cm_error_set(&x->err, x->write_code ? x->write_code : CM_EFAIL, "%s: %s",
				     label, x->write_err);
			x->state = X_FAILED;
			return;
		}
		/* Content-Range mismatch: start again from scratch */
		cm_error e;
		if (x->has_sink)
			x->sink.reset(x->sink.ud, &e);
		xfer_retry(c, x, x->write_err, -1, 0);
		return;
	}
	if (cr != CURLE_OK) {
		snprintf(why, sizeof(why), "%s%s%.400s%s", curl_easy_strerror(cr),
			 x->errbuf[0] ? " (" : "", x->errbuf, x->errbuf[0] ? ")" : "");
		/* TLS trouble does not heal by waiting: a bad certificate, or the
		 * server's alert (e.g. it wants a client certificate) */
		if (cr == CURLE_PEER_FAILED_VERIFICATION || cr == CURLE_SSL_CACERT_BADFILE ||
		    cr == CURLE_SSL_CERTPROBLEM || cr == CURLE_SSL_CONNECT_ERROR ||
		    cr == CURLE_UNSUPPORTED_PROTOCOL || cr == CURLE_URL_MALFORMAT ||
		    cr == CURLE_ABORTED_BY_CALLBACK || cr == CURLE_READ_ERROR ||
		    strstr(x->errbuf, "alert") || strstr(x->errbuf, "certificate")) {
			cm_error_set(&x->err, CM_EFAIL, "%s: %s", label, why);
			x->state = X_FAILED;
			return;
		}
		x->status = 0;
		xfer_retry(c, x, why, -1, progressed);
		return;
	}
	if (status == 401 && same_origin && x->scope[0]) {
		host_state *h = host_get(c, &x->rt);
		if (x->h_auth[0])
			learn_challenge(c, &x->rt, x->h_auth);
		token_drop(c, x->rt.origin, x->scope);
		if (x->auth_retries++ < 2 && x->h_auth[0]) {
			x->state = X_QUEUED;
			xfer_url_reset(x);
			return;
		}
		char hint[2400];
		withheld_hint(hint, sizeof(hint), c, h);
		if (hint[0])
			cm_error_set(&x->err, CM_EFAIL, "%s: %s requires credentials (HTTP 401)%s",
				     label, x->rt.host, hint);
		else if (h && h->have_creds)
			cm_error_set(
			    &x->err, CM_EFAIL,
			    "%s: %s refused the credentials from %s (HTTP 401): check the user "
			    "name and password",
			    label, x->rt.host, h->creds_src);
		else
			cm_error_set(
			    &x->err, CM_EFAIL,
			    "%s: %s requires credentials (HTTP 401) and none were found: run "
			    "docker login %s, or set DOCKER_CONFIG or REGISTRY_AUTH_FILE",
			    label, x->rt.host, x->rt.host);
		x->state = X_FAILED;
		return;
	}
	/* GET and HEAD follow every redirect; another method only 307 and 308,
	 * which keep it and its body (read again from the start) */
	int may_follow = strcmp(xfer_method(x), "GET") == 0 ||
			 strcmp(xfer_method(x), "HEAD") == 0 || status == 307 || status == 308;
	if ((status == 301 || status == 302 || status == 303 || status == 307 || status == 308) &&
	    x->h_loc && may_follow) {
		if (++x->redirects > MAX_REDIRECTS) {
			xfer_fail(x, CM_EFAIL, "%s: too many redirects%s", label, NULL);
			return;
		}
		char *nu = NULL;
		if (reg_url_resolve(&nu, x->url, x->h_loc, NULL) < 0) {
			xfer_fail(x, CM_EFAIL, "%s: bad redirect target%s", label, NULL);
			return;
		}
		free(x->url);
		x->url = nu;
		x->state = X_QUEUED; /* keep the redirect target for this try */
		return;
	}
	if (status == 408 || status == 425 || status == 429 || status == 500 || status == 502 ||
	    status == 503 || status == 504) {
		char re[400];
		registry_error(re, sizeof(re), &x->errbody);
		snprintf(why, sizeof(why), "HTTP %ld%s", status, re);
		double ra =
		    x->h_retry[0] ? reg_parse_retry_after(x->h_retry, (double)time(NULL)) : -1;
		xfer_retry(c, x, why, ra, progressed);
		return;
	}
	if (x->q) {
		if (status == 416 && x->has_sink && x->sink_asked > 0 && !x->restarted) {
			/* what is held is longer than the file now: start over once */
			cm_error e;
			x->restarted = 1;
			if (x->sink.reset(x->sink.ud, &e) < 0) {
				x->err = e;
				x->state = X_FAILED;
			} else {
				x->state = X_QUEUED;
				xfer_url_reset(x);
			}
			return;
		}
		x->state = X_DONE; /* the caller judges the status */
		return;
	}
	if (!ok_status(status)) {
		char re[400];
		registry_error(re, sizeof(re), &x->errbody);
		int code = status == 404 ? CM_ENOTFOUND : CM_EFAIL;
		if (status == 404 && !re[0])
			snprintf(re, sizeof(re), " (%s not found)",
				 x->is_blob ? "blob" : "manifest");
		cm_error_set(&x->err, code, "%s: HTTP %ld%s", label, status, re);
		if (status == 403)
			cm_error_wrap(&x->err, "access denied");
		x->state = X_FAILED;
		return;
	}
	if (x->is_blob && reg_blob_writer_size(x->w) < x->req->desc.size) {
		/* the connection ended cleanly but early: resume */
		xfer_retry(c, x, "the body ended early", -1, progressed);
		return;
	}
	x->state = X_DONE;
}

/* A blob transfer finished: check the digest and move it into the store. */
static void blob_commit(reg_client *c, xfer *x)
{
	if (x->state != X_DONE || !x->w)
		return;
	cm_error e;
	const reg_desc *d = &x->req->desc;
	uint64_t got = reg_blob_writer_size(x->w);
	reg_blob_writer *w = x->w;
	x->w = NULL;
	if (reg_blob_writer_commit(NULL, NULL, w, &e) < 0) {
		if (e.code == CM_EVERIFY && x->resumed_from > 0 && !x->fresh_retry) {
			/* bytes kept from an earlier run may be bad: once more from scratch */
			x->fresh_retry = 1;
			x->resumed_from = 0;
			x->state = X_QUEUED;
			xfer_url_reset(x);
			return;
		}
		x->err = e;
		cm_error_wrap(&x->err, "blob %s from %s/%s", d->digest.s, x->rt.origin, x->rt.repo);
		x->state = X_FAILED;
		return;
	}
	c->st.blobs++;
	reg_event ev = {
	    .type = REG_EV_BLOB_DONE, .what = d->digest.s, .done = x->received, .total = got};
	emit(c, &ev);
}

/* Run transfers until every one is done or failed. */
static void run_xfers(reg_client *c, CURLM *multi, xfer **xs, size_t n, int max_active)
{
	for (size_t i = 0; i < n; i++) {
		xs[i]->c = c;
		xs[i]->multi = multi;
	}
	int active = 0, failed_hard = 0;
	double last_tick = 0, t0 = now_mono();
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++)
		if (xs[i]->is_blob)
			total += xs[i]->req->desc.size;
	for (;;) {
		double now = now_mono();
		int pending = 0;
		double next_wake = now + 1;
		for (size_t i = 0; i < n; i++) {
			xfer *x = xs[i];
			if (x->state == X_QUEUED || x->state == X_WAITING) {
				if (failed_hard) {
					if (!x->err.msg[0])
						cm_error_set(&x->err, CM_ECANCELED, "cancelled");
					x->state = X_FAILED;
					continue;
				}
				pending++;
				if (x->state == X_WAITING && x->not_before > now) {
					if (x->not_before < next_wake)
						next_wake = x->not_before;
					continue;
				}
				if (active >= max_active)
					continue;
				pthread_mutex_lock(&c->mu);
				xfer_start(c, x);
				if (x->state == X_DONE && x->is_blob)
					blob_commit(c, x);
				pthread_mutex_unlock(&c->mu);
				if (x->state == X_ACTIVE)
					active++;
				else if (x->state == X_FAILED && x->is_blob)
					failed_hard = 1;
			}
		}
		if (active == 0 && pending == 0) /* nothing runs, and nothing waits to */
			break;
		int running = 0;
		curl_multi_perform(multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			xfer *x = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			CURLcode cr = m->data.result;
			active--;
			pthread_mutex_lock(&c->mu);
			xfer_finish(c, x, cr);
			if (x->is_blob)
				blob_commit(c, x);
			pthread_mutex_unlock(&c->mu);
			if (x->state == X_FAILED && x->is_blob)
				failed_hard = 1;
		}
		now = now_mono();
		if (c->o.progress && now - last_tick >= 0.25) {
			last_tick = now;
			reg_active av[64];
			size_t na = 0;
			uint64_t done = 0;
			for (size_t i = 0; i < n; i++) {
				xfer *x = xs[i];
				if (!x->is_blob)
					continue;
				if (x->state == X_DONE)
					done += x->req->desc.size;
				else if (x->w)
					done += reg_blob_writer_size(x->w);
				if (x->state == X_ACTIVE && x->w && na < 64) {
					av[na].digest = x->req->desc.digest.s;
					av[na].done = reg_blob_writer_size(x->w);
					av[na].total = x->req->desc.size;
					na++;
				}
			}
			if (total) {
				reg_event ev = {.type = REG_EV_TICK,
						.active = av,
						.n_active = na,
						.all_done = done,
						.all_total = total,
						.elapsed = now - t0};
				emit(c, &ev);
			}
		}
		int remaining = 0;
		for (size_t i = 0; i < n && !remaining; i++)
			remaining = xs[i]->state == X_QUEUED || xs[i]->state == X_WAITING ||
				    xs[i]->state == X_ACTIVE;
		if (!remaining)
			break;
		int timeout_ms = 200;
		if (active == 0) {
			double w = next_wake - now;
			timeout_ms = w <= 0 ? 0 : (int)(w * 1000) + 1;
			if (timeout_ms > 1000)
				timeout_ms = 1000;
		}
		if (active > 0 || timeout_ms > 0)
			curl_multi_poll(multi, NULL, 0, timeout_ms, NULL);
	}
}

static void xfer_init(xfer *x, const route *rt)
{
	memset(x, 0, sizeof(*x));
	x->rt = *rt;
	snprintf(x->scope, sizeof(x->scope), "repository:%.600s:pull", rt->repo);
	x->clen = -1;
	x->errbody.limit = ERRBODY_MAX;
}

static void xfer_clear(xfer *x)
{
	free(x->url);
	free(x->h_loc);
	cm_buf_free(&x->errbody);
	x->url = x->h_loc = NULL;
}

/* GET /v2/ once per endpoint, on a lane of its own (a ping may happen while
 * blob transfers run): the registry answers, and its challenge names the
 * auth scheme. */
static int ensure_ping(reg_client *c, const route *rt, cm_error *err)
{
	host_state *h = host_get(c, rt);
	if (!h)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	if (h->scheme != AUTH_UNKNOWN)
		return 0;
	char url[700];
	snprintf(url, sizeof(url), "%s/v2/", rt->origin);
	reg_req q = {.method = "GET", .url = url, .ep = rt->ep};
	reg_resp r = {0};
	reg_lane *l = NULL;
	int rc = reg_lane_new(&l, c, err);
	if (rc == 0)
		rc = reg_request(&r, l, &q, err);
	reg_lane_free(l);
	if (rc == 0 && r.status == 401)
		learn_challenge(c, rt, r.www_authenticate);
	else if (rc == 0 && r.status != 200)
		rc = cm_error_set(err, CM_EFAIL, "GET %s: not a registry (v2 API): HTTP %ld", url,
				  r.status);
	if (rc == 0 && h->scheme == AUTH_UNKNOWN)
		h->scheme = AUTH_NONE; /* 200, or a 401 without a usable challenge */
	cm_buf_free(&r.body);
	return rc;
}

int reg_client_ping(reg_client *c, const char *base, const reg_endpoint *ep, cm_error *err)
{
	route rt;
	memset(&rt, 0, sizeof(rt));
	url_origin(rt.origin, sizeof(rt.origin), rt.host, sizeof(rt.host), base);
	if (!rt.origin[0])
		return cm_error_set(err, CM_EINVAL, "%.200s: not an http(s) URL", base);
	rt.ep = ep;
	pthread_mutex_lock(&c->mu);
	int rc = ensure_ping(c, &rt, err);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static int refuse_schema1(const char *ct, const reg_ref *r, const char *ref, cm_error *err)
{
	if (strcmp(ct, REG_MT_DOCKER_SCHEMA1) == 0 || strcmp(ct, REG_MT_DOCKER_SCHEMA1_SIGNED) == 0)
		return cm_error_set(err, CM_EINVAL,
				    "%s/%s:%s is a Docker schema 1 manifest: obsolete and not "
				    "supported; ask the publisher for a schema 2 or OCI image",
				    r->host, r->path, ref);
	return 0;
}

int reg_client_manifest(reg_manifest_req *q, reg_client *c, const reg_ref *r, const char *what,
			int head, cm_error *err)
{
	memset(q, 0, sizeof(*q));
	q->ref = r;
	q->head = head;
	if (snprintf(q->what, sizeof(q->what), "%s", what) >= (int)sizeof(q->what))
		return cm_error_set(err, CM_EINVAL, "manifest reference too long: %s", what);
	int rc = reg_client_manifests(c, q, 1, err);
	if (rc == 0 && q->rc < 0) {
		*err = q->err;
		rc = q->rc;
	}
	return rc;
}

/* n transfers and the list of those to run (both zeroed). */
static int xfers_new(xfer **out_xa, xfer ***out_xs, size_t n, cm_error *err)
{
	*out_xa = calloc(n ? n : 1, sizeof(**out_xa));
	*out_xs = calloc(n ? n : 1, sizeof(**out_xs));
	if (*out_xa && *out_xs)
		return 0;
	free(*out_xa);
	free(*out_xs);
	return cm_error_set(err, CM_ENOMEM, "out of memory");
}

static int no_digest(const reg_manifest_req *q)
{
	return q->head && q->rc == 0 && !q->desc.digest.s[0];
}

/* The HEADs of v answered without a usable Docker-Content-Digest: GET the
 * same references in one more batch and hash the bytes. */
static int digest_by_get(reg_client *c, reg_manifest_req *v, size_t n, cm_error *err)
{
	size_t nf = 0;
	for (size_t i = 0; i < n; i++)
		nf += no_digest(&v[i]);
	if (!nf)
		return 0;
	reg_manifest_req *g = calloc(nf, sizeof(*g));
	if (!g)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0, j = 0; i < n; i++)
		if (no_digest(&v[i])) {
			g[j].ref = v[i].ref;
			memcpy(g[j++].what, v[i].what, sizeof(v[i].what));
		}
	int rc = reg_client_manifests(c, g, nf, err); /* GETs only: no recursion */
	for (size_t i = 0, j = 0; rc == 0 && i < n; i++)
		if (no_digest(&v[i])) {
			v[i].rc = g[j].rc;
			v[i].err = g[j].err;
			v[i].desc = g[j].desc;
			cm_buf_free(&g[j++].body);
		}
	for (size_t j = 0; rc < 0 && j < nf; j++)
		cm_buf_free(&g[j].body);
	free(g);
	return rc;
}

int reg_client_manifests(reg_client *c, reg_manifest_req *v, size_t n, cm_error *err)
{
	xfer *xa;
	xfer **xs;
	if (xfers_new(&xa, &xs, n, err) < 0)
		return CM_ENOMEM;
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		reg_manifest_req *q = &v[i];
		q->rc = 0;
		cm_error_clear(&q->err);
		memset(&q->desc, 0, sizeof(q->desc));
		q->mt[0] = '\0';
		cm_buf_free(&q->body);
		route rt;
		if ((q->rc = reg_client_route_internal(&rt, c, q->ref, &q->err)) < 0)
			continue;
		xfer *x = &xa[i];
		xfer_init(x, &rt);
		x->head = q->head;
		snprintf(x->path, sizeof(x->path), "/v2/%s/manifests/%s", rt.repo, q->what);
		q->body.limit = REG_MANIFEST_MAX;
		x->mem = &q->body;
		xs[m++] = x;
	}
	if (m)
		run_xfers(c, c->multi, xs, m, c->o.jobs);
	for (size_t i = 0; i < n; i++) {
		reg_manifest_req *q = &v[i];
		if (q->rc < 0) /* no route: never sent */
			continue;
		xfer *x = &xa[i];
		if (q->head)
			c->st.manifest_heads++;
		else
			c->st.manifest_gets++;
		if (x->state != X_DONE) {
			q->err = x->err;
			q->rc = q->err.code ? q->err.code : CM_EFAIL;
		} else if ((q->rc = refuse_schema1(x->h_ct, q->ref, q->what, &q->err)) < 0) {
			/* refused */
		} else if (q->head) {
			if (x->h_digest[0] && x->clen >= 0 &&
			    reg_digest_parse(&q->desc.digest, x->h_digest, &q->err) == 0) {
				snprintf(q->desc.media_type, sizeof(q->desc.media_type), "%s",
					 x->h_ct);
				q->desc.size = (uint64_t)x->clen;
			} else {
				memset(&q->desc, 0, sizeof(q->desc));
				cm_error_clear(&q->err);
			}
		} else if ((q->rc =
				reg_digest_buf(&q->desc.digest, q->body.data ? q->body.data : "",
					       q->body.len, &q->err)) == 0) {
			/* by digest: the bytes must hash to it; by tag: they say
			 * what the tag points to */
			reg_digest want;
			cm_error e2;
			if (strncmp(q->what, "sha256:", 7) == 0 &&
			    reg_digest_parse(&want, q->what, &e2) == 0 &&
			    !reg_digest_equal(&q->desc.digest, &want))
				q->rc = cm_error_set(
				    &q->err, CM_EVERIFY, "manifest %s from %s/%s: bytes hash to %s",
				    want.s, q->ref->host, q->ref->path, q->desc.digest.s);
			snprintf(q->desc.media_type, sizeof(q->desc.media_type), "%s", x->h_ct);
			q->desc.size = q->body.len;
			snprintf(q->mt, sizeof(q->mt), "%s", x->h_ct);
		}
		if (q->head || q->rc < 0)
			cm_buf_free(&q->body);
		x->mem = NULL;
		xfer_clear(x);
	}
	free(xa);
	free(xs);
	return digest_by_get(c, v, n, err);
}

/* 0 done; 1 not done (cancelled, or never finished); 2 failed. */
static int fail_rank(const xfer *x)
{
	return x->state == X_DONE ? 0 : x->state == X_FAILED && x->err.code != CM_ECANCELED ? 2 : 1;
}

int reg_client_fetch_blobs(reg_client *c, reg_store *st, const reg_blob_req *v, size_t n,
			   cm_error *err)
{
	xfer *xa;
	xfer **xs;
	if (xfers_new(&xa, &xs, n, err) < 0)
		return CM_ENOMEM;
	int rc = 0;
	size_t m = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		/* one transfer per digest */
		int dup = 0;
		for (size_t j = 0; j < m && !dup; j++)
			dup = reg_digest_equal(&xs[j]->req->desc.digest, &v[i].desc.digest);
		uint64_t have;
		if (dup || (reg_store_has(st, &v[i].desc.digest, &have) && have == v[i].desc.size))
			continue;
		route rt;
		if ((rc = reg_client_route_internal(&rt, c, v[i].ref, err)) < 0)
			break;
		xfer *x = &xa[m];
		xfer_init(x, &rt);
		x->is_blob = 1;
		x->req = &v[i];
		x->store = st;
		snprintf(x->path, sizeof(x->path), "/v2/%s/blobs/%s", rt.repo, v[i].desc.digest.s);
		xs[m++] = x;
	}
	if (rc == 0) {
		run_xfers(c, c->multi, xs, m, c->o.jobs);
		xfer *bad = NULL; /* the first failure, a cancellation only if nothing else */
		for (size_t i = 0; i < m; i++) {
			c->st.blob_bytes += xs[i]->received;
			if (fail_rank(xs[i]) > (bad ? fail_rank(bad) : 0))
				bad = xs[i];
		}
		if (bad) {
			*err = bad->err;
			if (!err->digest[0])
				cm_error_set_digest(err, bad->req->desc.digest.s);
			rc = err->code ? err->code : CM_EFAIL;
		}
	}
	for (size_t i = 0; i < m; i++) {
		xfer_release(xs[i]);
		reg_blob_writer_keep(xs[i]->w);
		xfer_clear(xs[i]);
	}
	free(xa);
	free(xs);
	return rc;
}

/* ---- one request on a lane ---- */

int reg_lane_new(reg_lane **out, reg_client *c, cm_error *err)
{
	reg_lane *l = calloc(1, sizeof(*l));
	if (!l || !(l->multi = curl_multi_init())) {
		free(l);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	l->c = c;
	*out = l;
	return 0;
}

void reg_lane_free(reg_lane *l)
{
	if (!l)
		return;
	curl_multi_cleanup(l->multi);
	free(l);
}

int reg_request(reg_resp *out, reg_lane *l, const reg_req *q, cm_error *err)
{
	reg_client *c = l->c;
	cm_buf_free(&out->body);
	memset(out, 0, sizeof(*out));
	out->body.limit = (size_t)4 << 20;
	route rt;
	memset(&rt, 0, sizeof(rt));
	url_origin(rt.origin, sizeof(rt.origin), rt.host, sizeof(rt.host), q->url);
	if (!rt.origin[0] ||
	    (strncmp(rt.origin, "http://", 7) != 0 && strncmp(rt.origin, "https://", 8) != 0)) {
		char shown[300];
		reg_url_redact(shown, sizeof(shown), q->url);
		return cm_error_set(err, CM_EINVAL, "%s %s: not an http(s) URL", q->method, shown);
	}
	rt.ep = q->ep;
	xfer x;
	xfer_init(&x, &rt);
	x.q = q;
	x.resp = out;
	x.method = q->method;
	x.head = strcmp(q->method, "HEAD") == 0;
	if (snprintf(x.scope, sizeof(x.scope), "%s", q->scope ? q->scope : "") >=
	    (int)sizeof(x.scope))
		return cm_error_set(err, CM_EINVAL, "auth scope too long: %.200s", q->scope);
	if (q->sink) {
		x.sink = *q->sink;
		x.has_sink = 1;
	} else {
		x.mem = &out->body;
	}
	xfer *xp = &x;
	run_xfers(c, l->multi, &xp, 1, 1);
	int rc = 0;
	if (x.state != X_DONE) {
		*err = x.err;
		rc = err->code ? err->code : CM_EFAIL;
	} else {
		out->status = x.status;
		snprintf(out->digest, sizeof(out->digest), "%s", x.h_digest);
		snprintf(out->content_type, sizeof(out->content_type), "%s", x.h_ct);
		snprintf(out->www_authenticate, sizeof(out->www_authenticate), "%s", x.h_auth);
		snprintf(out->link, sizeof(out->link), "%s", x.h_link);
		snprintf(out->oci_subject, sizeof(out->oci_subject), "%s", x.h_subject);
		if (x.has_sink && x.errbody.len)
			rc = cm_buf_append(&out->body, x.errbody.data, x.errbody.len, err);
		if (x.h_loc && rc == 0) {
			/* made absolute against the URL that answered */
			char *nu = NULL;
			if (reg_url_resolve(&nu, x.url, x.h_loc, err) < 0 ||
			    snprintf(out->location, sizeof(out->location), "%s", nu) >=
				(int)sizeof(out->location)) {
				char shown[300];
				reg_url_redact(shown, sizeof(shown), q->url);
				rc = cm_error_set(err, CM_EINVAL,
						  "%s %s: the Location is no URL or too long",
						  q->method, shown);
			}
			free(nu);
		}
	}
	xfer_clear(&x);
	return rc;
}

int reg_resp_error(cm_error *err, const reg_resp *r, const char *what)
{
	char re[400];
	registry_error(re, sizeof(re), &r->body);
	return cm_error_set(err, r->status == 404 ? CM_ENOTFOUND : CM_EFAIL, "%s: HTTP %ld%s", what,
			    r->status, re);
}
