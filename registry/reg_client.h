/* A registry client on libcurl (docs/registry-client.md).
 *
 * - Endpoints: an upstream prefix ("docker.io", "gcr.io/ml-pipeline") can be
 *   mapped to another endpoint (mirror, test registry); names kept in the
 *   bundle stay upstream. docker.io means registry-1.docker.io.
 * - Auth: /v2/ is pinged once per endpoint; Bearer challenges get tokens
 *   (anonymous or bought with credentials) cached per scope until they
 *   expire; Basic challenges get credentials. Credentials come from
 *   $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json, ~/.docker/config.json
 *   (auths, credHelpers, credsStore through docker-credential-<x> get).
 *   Secrets never reach an error message or a log.
 * - Resolve: HEAD a tag for its digest; GET manifests only by digest and
 *   only when the caller does not hold them.
 * - Blobs: parallel downloads through curl multi (HTTP/2 when offered),
 *   hashed while streaming into resumable temp files of the store, resumed
 *   with Range after a cut (same run or next run), committed only when the
 *   digest matches.
 * - Retries: 429/5xx/connection errors back off exponentially with jitter,
 *   honouring Retry-After, within a per-request time budget.
 * - Redirects are followed by hand; Authorization never leaves the
 *   registry's own origin. */
#ifndef REG_CLIENT_H
#define REG_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "reg_manifest.h"
#include "reg_ref.h"
#include "reg_store.h"

typedef struct reg_client reg_client;

#define REG_REALM_CREDS_MAX 8

/* Where an upstream prefix is served from. */
typedef struct reg_endpoint {
	char prefix[256];   /* upstream "host[/path]" the mapping applies to */
	char endpoint[512]; /* "host[:port][/path]" or with http:// / https:// */
	int insecure;	    /* plain HTTP (and no TLS verification) */
	char ca[4096];	    /* PEM bundle to verify the server, or "" */
	char cert[4096];    /* client certificate (PEM), or "" */
	char key[4096];	    /* client key (PEM), or "" */
	/* token realm hosts ("host" or "host:port") on another host than the
	 * endpoint that may receive its credentials (reg_auth_realm_check) */
	char realm_creds[REG_REALM_CREDS_MAX][256];
	size_t n_realm_creds;
} reg_endpoint;

/* Progress events, for the front end to render. */
enum {
	REG_EV_BLOB_START = 1, /* digest, repo, total, done (bytes already on disk) */
	REG_EV_BLOB_DONE,      /* digest, total, done (bytes transferred this run) */
	REG_EV_RETRY,	       /* digest or url in what, status, wait seconds, msg */
	REG_EV_RESUME,	       /* digest, done (offset resumed from) */
	REG_EV_TICK,	       /* periodic: active[] and totals */
	REG_EV_AUTH,	       /* host in what, msg says which credentials (never secrets) */
};

typedef struct reg_active {
	const char *digest;
	uint64_t done, total;
} reg_active;

typedef struct reg_event {
	int type;
	const char *what; /* digest, or host, or url */
	const char *repo;
	uint64_t done, total;
	int status;  /* HTTP status, 0 for a transport error */
	double wait; /* seconds, for REG_EV_RETRY */
	const char *msg;
	/* REG_EV_TICK */
	const reg_active *active;
	size_t n_active;
	uint64_t all_done, all_total; /* bytes this batch */
	double elapsed;
} reg_event;

typedef void (*reg_progress_fn)(void *ud, const reg_event *ev);

typedef struct reg_client_opts {
	int jobs;	     /* parallel blob downloads; 0 means 8 */
	double retry_budget; /* seconds of back-off one request may spend; <0 means 60 */
	int max_attempts;    /* tries per request without progress; 0 means 10 */
	const reg_endpoint *endpoints;
	size_t n_endpoints;
	reg_progress_fn progress;
	void *progress_ud;
	/* NULL: messages name the spec's realm-credentials: key as the way to
	 * send credentials to a token realm on another host; else this
	 * command-line flag ("--realm-credentials") */
	const char *realm_flag;
} reg_client_opts;

typedef struct reg_client_stats {
	uint64_t blob_bytes;	/* blob bytes received */
	uint64_t blobs;		/* blobs committed */
	uint64_t manifest_gets; /* manifest GETs */
	uint64_t manifest_heads;
	uint64_t retries;
	uint64_t resumes;
	uint64_t http2;		  /* responses that came over HTTP/2 */
	long ratelimit_remaining; /* lowest seen, -1 when no registry sent one */
	long ratelimit_limit;
	char ratelimit_host[256];
} reg_client_stats;

int reg_client_new(reg_client **out, const reg_client_opts *o, cm_error *err);
/* NULL is a no-op. */
void reg_client_free(reg_client *c);
const reg_client_stats *reg_client_stats_get(const reg_client *c);

/* Where r's repository is fetched from: "https://host" base URL and the
 * repository path on that endpoint. */
int reg_client_route(char *base, size_t base_n, char *repo, size_t repo_n, reg_client *c,
		     const reg_ref *r, cm_error *err);
/* The endpoint (of reg_client_opts.endpoints) r is routed through, or NULL
 * when none names it. */
const reg_endpoint *reg_client_endpoint(reg_client *c, const reg_ref *r);

/* Many manifest requests at once, up to the client's jobs in flight, so
 * that resolving N images costs a few round trips instead of N. */
typedef struct reg_manifest_req {
	const reg_ref *ref;
	char what[136]; /* a tag (at most 128), or "sha256:..." */
	int head;	/* 1: HEAD, 0: GET */
	/* results: rc 0, or a negative code with err */
	int rc;
	cm_error err;
	reg_desc desc; /* HEAD: digest, media type, size; when the registry
			* sent no usable Docker-Content-Digest, they come
			* from a GET of the same reference (bytes hashed,
			* then freed); GET: the same, of the bytes */
	cm_buf body;   /* GET: the exact bytes, checked when what is a
			* digest; the caller frees it */
	char mt[256];  /* GET: the media type the registry named */
} reg_manifest_req;
/* Runs every request of v. A Docker schema 1 manifest is refused.
 * Returns 0 unless memory ran out; each request carries its own result. */
int reg_client_manifests(reg_client *c, reg_manifest_req *v, size_t n, cm_error *err);
/* One request (what: a tag or "sha256:..."), its result in q and returned
 * (q->body is the caller's to free either way). */
int reg_client_manifest(reg_manifest_req *q, reg_client *c, const reg_ref *r, const char *what,
			int head, cm_error *err);

/* A blob to download: from r's repository. */
typedef struct reg_blob_req {
	const reg_ref *ref;
	reg_desc desc;
	reg_tee *tee; /* NULL, or where the bytes also go (reg_store.h) */
} reg_blob_req;

/* Download blobs into st in parallel (up to jobs at once), skipping those
 * st already holds. Fails after every transfer has ended when any one
 * failed (the first error is reported); committed blobs stay. */
int reg_client_fetch_blobs(reg_client *c, reg_store *st, const reg_blob_req *v, size_t n,
			   cm_error *err);

/* ---- one request (push, model downloads) ----
 *
 * The same engine as above (auth, retries with Retry-After within the
 * budget, redirects followed by hand, TLS from the endpoint), for one
 * request at a time on a lane: a lane is a connection pool of its own, so
 * that several threads each run requests at once over keep-alive
 * connections. The client's auth state (challenges, credentials, tokens) is
 * shared by every lane, under a lock. */
typedef struct reg_lane reg_lane;
int reg_lane_new(reg_lane **out, reg_client *c, cm_error *err);
/* NULL is a no-op. */
void reg_lane_free(reg_lane *l);

/* A request body, read from the start on every try (a retry, a 401). */
typedef struct reg_body {
	/* up to n bytes into buf; returns how many (0 at the end), or -1 to
	 * abort the request (the callback keeps its own error) */
	long (*read)(void *ud, char *buf, size_t n);
	/* start again from byte off; 0, or -1 when it cannot */
	int (*seek)(void *ud, uint64_t off);
	void *ud;
	uint64_t len;
} reg_body;

/* Where a GET's body goes when it is resumable: bytes already held are
 * asked for with Range on a retry (and the Content-Range is checked). */
typedef struct reg_sink {
	int (*write)(void *ud, const char *p, size_t n, cm_error *err);
	uint64_t (*size)(void *ud);	       /* bytes held */
	int (*reset)(void *ud, cm_error *err); /* drop them: start over */
	void *ud;
	uint64_t max; /* more bytes than this are refused (CM_EVERIFY); 0: no cap */
} reg_sink;

typedef struct reg_req {
	const char *method; /* "GET", "HEAD", "POST", "PUT", "PATCH" */
	const char *url;    /* absolute http:// or https:// URL */
	/* the registry's auth for url's origin (ping, challenge, Basic or a
	 * Bearer token for scope, "repository:x:pull,push ..."); NULL: none */
	const char *scope;
	const reg_endpoint *ep; /* TLS and realm rules for url's origin; NULL: none */
	/* an "Authorization: ..." line for url's origin only (a redirect
	 * elsewhere goes without); NULL or "": none */
	const char *authorization;
	const char *content_type;
	const char *header; /* one more header line; NULL: none */
	const reg_body *body;
	const reg_sink *sink;
	int secret; /* the answer is a secret: its buffer is wiped as it grows
		     * (reg_secret_append); free it with reg_secret_free */
	/* Basic credentials for url's origin from $NETRC, else ~/.netrc
	 * (libcurl's reader), when it has an entry for the host; a redirect
	 * elsewhere goes without */
	int netrc;
} reg_req;

typedef struct reg_resp {
	long status;	     /* the final answer (after redirects, 401s, retries) */
	char location[4096]; /* Location, made absolute against the request URL */
	char digest[128];    /* Docker-Content-Digest */
	char content_type[256];
	char www_authenticate[2048]; /* a Bearer challenge rather than another */
	char link[2048];	     /* Link (pagination), as sent, "" when none */
	char oci_subject[128];	     /* OCI-Subject (OCI 1.1: a manifest PUT whose
				      * subject the registry indexed), "" when none */
	cm_buf body;		     /* without a sink: the body (at most 4 MiB; free it) */
} reg_resp;

/* GET base/v2/ ("http(s)://host[:port]") unless this client pinged that
 * origin already: the engine's own once-per-endpoint ping (the registry
 * answers; a 401 teaches the auth scheme), so that a later request does
 * not ping again. */
int reg_client_ping(reg_client *c, const char *base, const reg_endpoint *ep, cm_error *err);
/* Run q on l. Returns 0 with the final status in out (the caller judges
 * it: reg_resp_error), or an error: a transport failure or a retryable
 * status that outlasted the budget, a 401 that credentials did not cure,
 * a sink's or body's failure. GET and HEAD follow redirects, other methods
 * 307 and 308 (the body is read again); a redirect to another origin never
 * carries Authorization. */
int reg_request(reg_resp *out, reg_lane *l, const reg_req *q, cm_error *err);
/* "what: HTTP <status> (<the registry's error code: message>)". */
int reg_resp_error(cm_error *err, const reg_resp *r, const char *what);

/* The one header parser: a line as libcurl hands it ("HTTP/1.1 200 OK",
 * "Name: value\r\n"; the status itself comes from CURLINFO_RESPONSE_CODE).
 * Returns 1 for a status line (a new response begins: after a 100 or an
 * interim answer), else 0 with the header's name, lowercased ("" when the
 * line is no header or the name is longer than name_n allows), and its value
 * without surrounding blanks, cut at value_n - 1 bytes. */
int reg_header_parse(char *name, size_t name_n, char *value, size_t value_n, const char *line,
		     size_t len);

/* Standard base64 of an EVP_DecodeBlock-style input (length a multiple of 4,
 * padded): decoded into out (at least 3*len/4+1 bytes), its length in
 * *out_n without the padding. Returns 0, or -1 when s is not base64. */
int reg_b64_decode(unsigned char *out, size_t *out_n, const char *s, size_t len);

/* ---- listing a registry (reg_catalog_client.c; `ferry-install receipt
 * --registry`) ----
 *
 * GET /v2/_catalog and /v2/<repo>/tags/list on a lane, page by page
 * (?n=, then the Link header's rel="next", which must stay on the
 * registry's origin), with the registry's auth (scope registry:catalog:*,
 * or repository:<repo>:pull). Every answer is untrusted: at most max names
 * (more is CM_EINVAL, naming the registry and the cap), at most
 * REG_LIST_MAX_PAGES pages, a page that repeats the last next URL is
 * refused, each name must be a repository path (reg_ref_valid_path) or a
 * tag (at most 128 bytes of [A-Za-z0-9_.-]). */
#define REG_LIST_PAGE 100
#define REG_LIST_MAX_PAGES 1000
typedef struct reg_names {
	char **v;
	size_t n, cap;
} reg_names;
/* base is "http(s)://host[:port]"; names in the order the registry sent
 * them. out is zeroed first; free it with reg_names_free in every case. */
int reg_list_repositories(reg_names *out, reg_lane *l, const reg_endpoint *ep, const char *base,
			  size_t max, cm_error *err);
int reg_list_tags(reg_names *out, reg_lane *l, const reg_endpoint *ep, const char *base,
		  const char *repo, size_t max, cm_error *err);
/* NULL is a no-op. */
void reg_names_free(reg_names *n);
/* The rel="next" target of a Link header value ("" when none), resolved
 * against url; CM_EINVAL when it is no URL, too long for n, or on another
 * origin than url's. */
int reg_link_next(char *out, size_t n, const char *link, const char *url, cm_error *err);

/* ---- the registry transport (reg_source_registry.c) ---- */

struct reg_source;

/* What one image needs: its root (the tag's manifest or index, as the
 * registry names it), and every config and layer blob of the selected
 * platforms. Manifests are fetched (by digest, only when st lacks them)
 * and put into st while planning. */
typedef struct reg_pull_plan {
	reg_desc root;
	reg_blob_req *blobs; /* ref points at the caller's reg_ref */
	size_t n_blobs, cap;
} reg_pull_plan;

/* Plan r: root is pinned (no HEAD) when pinned is non-NULL or r has a
 * digest; else the tag is HEADed. platforms follows reg_copy_wants_child. */
int reg_pull_plan_make(reg_pull_plan *out, reg_client *c, reg_store *st, const reg_ref *r,
		       const reg_digest *pinned, const char *const *platforms, cm_error *err);
void reg_pull_plan_free(reg_pull_plan *p);

/* A reg_source for reg_copy_image: manifests from st (else GET by
 * digest), blobs from st (else downloaded through the client). */
int reg_source_registry_open(struct reg_source **out, reg_client *c, const reg_ref *r,
			     const reg_desc *root, reg_store *st, cm_error *err);

/* Helpers exposed for unit tests. */

/* Parse a WWW-Authenticate value: scheme ("Bearer"/"Basic") and the
 * realm, service and scope parameters ("" when absent). */
int reg_auth_parse_challenge(const char *v, char *scheme, size_t scheme_n, char *realm,
			     size_t realm_n, char *service, size_t service_n, char *scope,
			     size_t scope_n);
/* Retry-After: delta seconds or an HTTP date; -1 when unparseable. */
double reg_parse_retry_after(const char *v, double now);
/* "ratelimit-remaining: 20;w=21600" -> 20; -1 when unparseable. */
long reg_parse_ratelimit(const char *v);
/* The credentials key(s) for an endpoint host: docker.io's is
 * https://index.docker.io/v1/. Returns 1 when key (a config auths key)
 * names host. */
int reg_auth_key_matches(const char *key, const char *host);
/* Look up credentials for host (user and secret, "" when none). src gets a
 * description of where they came from (a file or a helper), never the
 * secret. Returns 1 found, 0 none, <0 error. An identity token (config
 * `identitytoken`, or a helper answering Username "<token>") comes back as
 * user REG_AUTH_IDENTITY with the token as secret: it buys Bearer tokens
 * through the OAuth2 refresh-token grant (reg_auth_refresh_form) and
 * cannot answer a Basic challenge. */
#define REG_AUTH_IDENTITY "<token>"
int reg_auth_lookup(char *user, size_t user_n, char *secret, size_t secret_n, char *src,
		    size_t src_n, const char *host, cm_error *err);
/* The form body of an OAuth2 refresh-token grant (POST to the realm, as
 * docker does for identity tokens): grant_type, service, scope (the
 * space-separated scopes), client_id and refresh_token, URL-escaped, into
 * out (caller frees with OPENSSL_cleanse then free). */
int reg_auth_refresh_form(char **out, const char *service, const char *scope,
			  const char *refresh_token, cm_error *err);
/* 1 when user names an identity token. */
int reg_auth_is_identity(const char *user);

/* What to send to realm for a Bearer token for scope (space-separated
 * scopes): url (a GET with one scope= each, and service= when service is
 * not empty), or for an identity token (identity set, secret the token)
 * the realm as url and form, the refresh-token grant to POST. The caller
 * adds Basic credentials to a GET when it has any. Both strings are
 * malloc'd; reg_auth_token_req_free wipes the form and frees them. */
typedef struct reg_token_req {
	char *url;
	char *form; /* NULL: a GET */
} reg_token_req;
int reg_auth_token_req(reg_token_req *out, const char *realm, const char *service,
		       const char *scope, int identity, const char *secret, cm_error *err);
void reg_auth_token_req_free(reg_token_req *r);
/* May the Bearer token realm a registry named be used, and may the
 * registry's credentials (Basic user:password, identity token) go there?
 * origin is the registry's "scheme://host[:port]".
 * - A realm that is not an http(s) URL with a host, and a plain http://
 *   realm for an https:// registry, are refused (CM_EINVAL, naming both).
 * - *out_creds is 1 when the realm is on the registry's own host (any
 *   port), when it is Docker Hub's https://auth.docker.io for
 *   registry-1.docker.io, or when its host (or host:port) is one of
 *   allow[0..n_allow) (what the user allowed for this registry); else 0:
 *   the token is asked for anonymously.
 * out_host gets the realm's host, for messages. */
int reg_auth_realm_check(int *out_creds, char *out_host, size_t host_n, const char *origin,
			 const char *realm, const char *const *allow, size_t n_allow,
			 cm_error *err);
/* Parse a credential helper's answer to `get` ({"Username","Secret"},
 * other members ignored) into user and secret. Returns 1, or CM_EINVAL
 * (not that JSON object, a value not a string, a NUL, too long for
 * user_n/secret_n) with a message that never holds the secret. */
int reg_auth_parse_helper_output(char *user, size_t user_n, char *secret, size_t secret_n,
				 const char *out, size_t len, cm_error *err);
/* Secrets in a cm_buf: append like cm_buf_append, but growing copies the
 * bytes into a new block and wipes the old one (realloc would leave a
 * copy in freed memory); reg_secret_free wipes the whole allocation, then
 * frees it. Every JSON document jansson frees is wiped too (a process-wide
 * allocator, installed before main by reg_client_auth.c). */
int reg_secret_append(cm_buf *b, const void *p, size_t n, cm_error *err);
void reg_secret_free(cm_buf *b);
/* A file of secrets (a credentials config, a private key) into b, at
 * most limit bytes (more is CM_EINVAL), leaving no copy behind: read a
 * small wiped piece at a time (not cm_file_read, whose buffers are freed
 * unwiped). On error b may hold part of it: reg_secret_free it. */
int reg_secret_read(cm_buf *b, const char *path, size_t limit, cm_error *err);

/* The token in a token server's answer ("token", else "access_token";
 * *out malloc'd) and its lifetime ("expires_in", at least 60 s, the
 * spec's minimum). */
int reg_auth_token_parse(char **out, double *out_expires_in, const char *body, size_t len,
			 cm_error *err);

#endif
