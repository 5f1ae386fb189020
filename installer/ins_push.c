/* Push mode: copy every bundle image into an existing registry over
 * libcurl (registry-protocol.md), straight from the bundle's offsets.
 *
 * Repositories on the target are [PREFIX/]<upstream-host>/<path>, the
 * layout mirror configuration expects. Per image:
 *   - blobs (configs, layers): HEAD, skip when present; else mount from a
 *     repository that holds it (POST ?mount=&from=, 201); else upload:
 *     monolithic POST + PUT ?digest= up to CHUNK bytes, PATCH chunks and a
 *     final PUT beyond;
 *   - manifests: children of an index first (by digest), then the root
 *     (by tag, or by digest for digest-only references), each skipped
 *     when a HEAD already answers with its digest.
 * Auth: anonymous, Basic or Bearer (tokens per scope), credentials from
 * $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json, ~/.docker/config.json
 * or a credential helper (reg_auth_lookup). The blobs of all images form
 * one queue, largest first, taken by twice --jobs threads (each with its
 * own handle and keep-alive connection), at most --jobs of which stream a
 * large body at a time; an image's manifests go as soon as all of its
 * blobs are there.
 *
 * Verification in the same pass, through the bundle reader's one scheduler
 * (reg_bidx.h: one state per member, shared by every thread). The bundle
 * may come opened with metadata_only (signature, SHA256SUMS, the layout and
 * the metadata members checked; content not read): every other member is
 * then hashed exactly once, and that is the whole check of its content:
 *   - a blob that is uploaded is hashed by the reader's cursor that feeds
 *     the upload (reg_bidx_take), unless an idle-time hasher (the reader's,
 *     one per CPU at SCHED_IDLE, working from the end of the queue) got to
 *     it first;
 *   - a blob that is not read for upload (HEAD found it, mounted, put by
 *     this run already) is queued for the reader's worker thread, and a
 *     worker that needs it before then hashes it itself (reg_bidx_verify);
 *   - a manifest or index is hashed when it is read, before it is parsed;
 *   - the reader's worker hashes manifests/ and models/ meanwhile, and
 *     every member still unhashed is hashed once the images are pushed.
 * A manifest or index is put only after everything it references was
 * hashed and matched; the first mismatch stops every worker (CM_EVERIFY,
 * naming the member), so no manifest or tag that references unverified
 * content is ever put. Blobs are content-addressed and the registry checks
 * each upload against its digest, so an upload never stores wrong bytes
 * under a right name. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ins_install.h"
#include "reg_bundle.h"
#include "reg_ca.h"
#include "reg_client.h"
#include "reg_digest.h"
#include "reg_ref.h"

#define CHUNK ((uint64_t)64 << 20)
#define TOKENS 64
#define HASH_BUF ((size_t)256 << 10)
#define UPLOAD_BUF (256L << 10) /* curl's upload buffer (default 64 KiB) */
/* A body this small (a config) streams without taking a stream slot: it
 * costs the registry next to nothing, and must not wait behind the large
 * uploads at the end of the queue. */
#define SMALL_BLOB ((uint64_t)1 << 20)
#define PREHASHERS 8

typedef struct token {
	char scope[600];
	char value[8192];
	time_t expires;
} token;

typedef struct shared {
	const ins_bundle *b;
	const ins_install_opts *o;
	char base[640];	  /* scheme://host:port */
	char prefix[300]; /* "" or "prefix/" */
	char host[300];
	char user[256], secret[1024];
	int have_creds;
	/* the challenge (scheme "", "basic", "bearer"; realm, service) and the
	 * tokens: under mu once the workers run */
	char scheme[16];
	char realm[1024], service[256];
	int creds_withheld;	  /* held back from a realm on another host */
	char withheld_realm[300]; /* that realm's host */
	token tok[TOKENS];
	size_t n_tok;
	/* blob hex -> a repository known to hold it (for mounts) */
	struct {
		char hex[65];
		char repo[600];
		int state;
	} * where;
	size_t n_where, cap_where;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	ins_push_stats st;
	/* verification: the states are the reader's (reg_bidx.h); these
	 * record the outcome (under mu) */
	int stop; /* a failure anywhere: workers stop */
	int vbad; /* verr holds the first digest mismatch */
	cm_error verr;
	size_t vbad_i; /* its member */
	int vfail;     /* vfail_err holds the final check's own failure (I/O) */
	cm_error vfail_err;
	uint64_t members_idle; /* hashed by an idle-time hasher */
	/* blob members for the idle-time hashers, the last uploaded first */
	uint32_t *pre;
	size_t n_pre;
	/* upload bodies streaming at once (under mu, cv): a worker gives its
	 * slot back when its body is sent, not when the registry answers, so
	 * that the registry's commit of one blob (an fsync) overlaps the next
	 * upload instead of leaving the CPUs idle */
	int streams_free;
} shared;

typedef struct conn {
	shared *s;
	CURL *c;
	char *buf; /* HASH_BUF bytes: what an upload did not read, read to be checked */
} conn;

typedef struct resp {
	long status;
	char location[4096];
	char digest[80];
	char auth[2048];
	cm_buf body;
} resp;

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	resp *r = ud;
	size_t len = sz * n;
	char line[4096];
	size_t l = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
	memcpy(line, p, l);
	line[l] = '\0';
	while (l && (line[l - 1] == '\r' || line[l - 1] == '\n'))
		line[--l] = '\0';
	struct {
		const char *name;
		char *dst;
		size_t n;
	} h[] = {{"location:", r->location, sizeof(r->location)},
		 {"docker-content-digest:", r->digest, sizeof(r->digest)},
		 {"www-authenticate:", r->auth, sizeof(r->auth)}};
	for (size_t i = 0; i < 3; i++) {
		size_t k = strlen(h[i].name);
		if (strncasecmp(line, h[i].name, k) == 0) {
			const char *v = line + k;
			while (*v == ' ')
				v++;
			snprintf(h[i].dst, h[i].n, "%s", v);
		}
	}
	if (strncmp(line, "HTTP/", 5) == 0) /* a new response (after 100 or a redirect) */
		r->location[0] = r->digest[0] = r->auth[0] = '\0';
	return len;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	resp *r = ud;
	if (cm_buf_append(&r->body, p, sz * n, NULL) < 0)
		return 0;
	return sz * n;
}

/* Request bodies: a bundle member range, or memory. */
typedef struct src {
	const ins_bundle *b;
	const ins_member *m;
	uint64_t off, end, pos;
	const char *mem;
	size_t mem_len;
	cm_error err;
	shared *gate; /* holds a stream slot of gate while non-NULL */
	/* the bundle reader's verified read of m: it hashes what it hands out
	 * (unless m was verified in this process already) and fails on a
	 * mismatch before the last bytes go out. A rewind (retry, redirect)
	 * seeks it, which hashes the bytes before the new position again. */
	reg_bidx_cursor cur;
	int have_cur;
} src;

/* A stream slot for body (see shared.streams_free). */
static void stream_take(shared *s, src *body)
{
	pthread_mutex_lock(&s->mu);
	while (!s->streams_free && !s->stop)
		pthread_cond_wait(&s->cv, &s->mu);
	if (s->streams_free) {
		s->streams_free--;
		body->gate = s;
	}
	pthread_mutex_unlock(&s->mu);
}

static void stream_give(src *body)
{
	shared *s = body->gate;
	if (!s)
		return;
	body->gate = NULL;
	pthread_mutex_lock(&s->mu);
	s->streams_free++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static size_t on_read(char *buf, size_t sz, size_t n, void *ud)
{
	src *s = ud;
	size_t want = sz * n;
	if (s->mem) {
		size_t left = s->mem_len - (size_t)s->pos;
		if (want > left)
			want = left;
		memcpy(buf, s->mem + s->pos, want);
		s->pos += want;
		return want;
	}
	uint64_t left = s->end - (s->off + s->pos);
	if (want > left)
		want = (size_t)left;
	size_t got = 0;
	uint64_t at = s->off + s->pos;
	if (s->cur.pos != at && reg_bidx_cursor_seek(&s->cur, at, &s->err) < 0)
		return CURL_READFUNC_ABORT;
	if (want && reg_bidx_cursor_read(&s->cur, buf, want, &got, &s->err) < 0)
		return CURL_READFUNC_ABORT;
	s->pos += got;
	if (s->off + s->pos >= s->end)
		stream_give(s); /* all sent: what is left is the registry's */
	return got;
}

static int seek_cb(void *ud, curl_off_t off, int origin)
{
	src *s = ud;
	if (origin != SEEK_SET)
		return CURL_SEEKFUNC_CANTSEEK;
	s->pos = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static const token *find_token(shared *s, const char *scope)
{
	time_t now = time(NULL);
	for (size_t i = 0; i < s->n_tok; i++)
		if (strcmp(s->tok[i].scope, scope) == 0 && s->tok[i].expires > now + 5)
			return &s->tok[i];
	return NULL;
}

/* A token server's answer: its buffer never leaves a copy behind. */
static size_t on_secret_body(char *p, size_t sz, size_t n, void *ud)
{
	resp *r = ud;
	return reg_secret_append(&r->body, p, sz * n, NULL) < 0 ? 0 : sz * n;
}

/* A header list that may hold an Authorization line: wiped, then freed. */
static void slist_free_wiped(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		if (p->data)
			OPENSSL_cleanse(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

/* Why a 401 came when the credentials were held back from a token realm
 * on another host, and how to allow them ("" when they were not). */
static void withheld_hint(char *out, size_t n, shared *s)
{
	pthread_mutex_lock(&s->mu);
	out[0] = '\0';
	if (s->creds_withheld)
		snprintf(out, n,
			 "; the credentials for %s were not sent to its token realm, since it is "
			 "on another host (%s): if you trust %s with them, pass "
			 "--realm-credentials %s (docker would send them; "
			 "docs/registry-client.md)",
			 s->host, s->withheld_realm, s->withheld_realm, s->withheld_realm);
	pthread_mutex_unlock(&s->mu);
}

/* Buy a bearer token for scope (space-separated scopes). */
static int fetch_token(conn *k, const char *scope, cm_error *err)
{
	shared *s = k->s;
	char realm[sizeof(s->realm)], service[sizeof(s->service)];
	pthread_mutex_lock(&s->mu);
	memcpy(realm, s->realm, sizeof(realm));
	memcpy(service, s->service, sizeof(service));
	pthread_mutex_unlock(&s->mu);
	/* the realm: not plain HTTP for an HTTPS registry, and the
	 * credentials go to another host only with --realm-credentials */
	int creds_ok = 0;
	char rhost[300];
	int rc = reg_auth_realm_check(&creds_ok, rhost, sizeof(rhost), s->base, realm,
				      s->o->realm_creds, s->o->n_realm_creds, err);
	if (rc < 0)
		return rc;
	int use_creds = s->have_creds && creds_ok;
	if (s->have_creds && !creds_ok) {
		pthread_mutex_lock(&s->mu);
		int first = !s->creds_withheld;
		s->creds_withheld = 1;
		snprintf(s->withheld_realm, sizeof(s->withheld_realm), "%s", rhost);
		pthread_mutex_unlock(&s->mu);
		if (first)
			ins_say(s->o, INS_SAY_WARN,
				"credentials for %s withheld from token realm %s (another host): "
				"asking for an anonymous token",
				s->host, rhost);
	}
	int ident = use_creds && reg_auth_is_identity(s->user);
	reg_token_req tr;
	rc = reg_auth_token_req(&tr, realm, service, scope, ident, s->secret, err);
	if (rc < 0)
		return rc;
	resp r;
	memset(&r, 0, sizeof(r));
	r.body.limit = (size_t)1 << 20;
	curl_easy_reset(k->c);
	reg_ca_curl(k->c);
	curl_easy_setopt(k->c, CURLOPT_URL, tr.url);
	curl_easy_setopt(k->c, CURLOPT_WRITEFUNCTION, on_secret_body);
	curl_easy_setopt(k->c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(k->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(k->c, CURLOPT_TIMEOUT, 60L);
	if (tr.form) {
		curl_easy_setopt(k->c, CURLOPT_POSTFIELDS, tr.form);
	} else if (use_creds) {
		curl_easy_setopt(k->c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(k->c, CURLOPT_USERNAME, s->user);
		curl_easy_setopt(k->c, CURLOPT_PASSWORD, s->secret);
	}
	if (s->o->ca)
		curl_easy_setopt(k->c, CURLOPT_CAINFO, s->o->ca);
	CURLcode cc = curl_easy_perform(k->c);
	curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &r.status);
	curl_easy_reset(k->c); /* drops libcurl's copies of the user and password */
	reg_auth_token_req_free(&tr);
	char *t = NULL;
	double exp;
	if (cc != CURLE_OK || r.status != 200) {
		char hint[1200] = "";
		if (cc == CURLE_OK && (r.status == 401 || r.status == 403))
			withheld_hint(hint, sizeof(hint), s);
		rc = cm_error_set(err, CM_EFAIL, "token from %s: %s%s", realm,
				  cc != CURLE_OK ? curl_easy_strerror(cc) : "refused (HTTP status)",
				  hint);
	} else if ((rc = reg_auth_token_parse(&t, &exp, r.body.data, r.body.len, err)) < 0) {
		cm_error_wrap(err, "token from %s", realm);
	} else if (strlen(t) >= sizeof(s->tok[0].value)) {
		rc = cm_error_set(err, CM_EFAIL, "token from %s: too long", realm);
	} else {
		pthread_mutex_lock(&s->mu);
		size_t i = s->n_tok < TOKENS ? s->n_tok++ : (size_t)(time(NULL) % TOKENS);
		OPENSSL_cleanse(s->tok[i].value, sizeof(s->tok[i].value));
		snprintf(s->tok[i].scope, sizeof(s->tok[i].scope), "%s", scope);
		snprintf(s->tok[i].value, sizeof(s->tok[i].value), "%s", t);
		s->tok[i].expires = time(NULL) + (time_t)exp;
		pthread_mutex_unlock(&s->mu);
	}
	if (t) {
		OPENSSL_cleanse(t, strlen(t));
		free(t);
	}
	reg_secret_free(&r.body);
	return rc;
}

/* One HTTP request with auth (retried once after a 401, and on transport
 * errors and 5xx up to 3 times). */
static int request(conn *k, resp *r, const char *method, const char *url, const char *scope,
		   const char *ctype, src *body, uint64_t body_len, const char *extra_hdr,
		   cm_error *err)
{
	shared *s = k->s;
	for (int attempt = 0; attempt < 4; attempt++) {
		memset(r, 0, sizeof(*r) - sizeof(r->body));
		r->body.len = 0;
		r->body.limit = (size_t)4 << 20;
		curl_easy_reset(k->c);
		reg_ca_curl(k->c);
		curl_easy_setopt(k->c, CURLOPT_URL, url);
		curl_easy_setopt(k->c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(k->c, CURLOPT_CONNECTTIMEOUT, 30L);
		curl_easy_setopt(k->c, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(k->c, CURLOPT_HEADERDATA, r);
		curl_easy_setopt(k->c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(k->c, CURLOPT_WRITEDATA, r);
		if (s->o->ca)
			curl_easy_setopt(k->c, CURLOPT_CAINFO, s->o->ca);
		struct curl_slist *h = NULL;
		char ah[8300];
		char scheme[sizeof(s->scheme)];
		int have_tok = 0;
		pthread_mutex_lock(&s->mu);
		memcpy(scheme, s->scheme, sizeof(scheme));
		if (strcmp(scheme, "bearer") == 0) {
			const token *t = find_token(s, scope);
			if (t) {
				snprintf(ah, sizeof(ah), "Authorization: Bearer %s", t->value);
				have_tok = 1;
			}
		}
		pthread_mutex_unlock(&s->mu);
		if (have_tok) {
			h = curl_slist_append(h, ah);
			OPENSSL_cleanse(ah, sizeof(ah));
		} else if (strcmp(scheme, "basic") == 0 && s->have_creds) {
			curl_easy_setopt(k->c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
			curl_easy_setopt(k->c, CURLOPT_USERNAME, s->user);
			curl_easy_setopt(k->c, CURLOPT_PASSWORD, s->secret);
		}
		if (ctype) {
			char ct[300];
			snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
			h = curl_slist_append(h, ct);
		}
		if (extra_hdr)
			h = curl_slist_append(h, extra_hdr);
		h = curl_slist_append(h, "Expect:");
		curl_easy_setopt(k->c, CURLOPT_HTTPHEADER, h);
		if (strcmp(method, "HEAD") == 0) {
			curl_easy_setopt(k->c, CURLOPT_NOBODY, 1L);
		} else if (strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
			curl_easy_setopt(k->c, CURLOPT_UPLOAD, 1L);
			if (strcmp(method, "PATCH") == 0)
				curl_easy_setopt(k->c, CURLOPT_CUSTOMREQUEST, "PATCH");
			if (body) {
				body->pos = 0;
				curl_easy_setopt(k->c, CURLOPT_UPLOAD_BUFFERSIZE, UPLOAD_BUF);
				curl_easy_setopt(k->c, CURLOPT_READFUNCTION, on_read);
				curl_easy_setopt(k->c, CURLOPT_READDATA, body);
				curl_easy_setopt(k->c, CURLOPT_SEEKFUNCTION, seek_cb);
				curl_easy_setopt(k->c, CURLOPT_SEEKDATA, body);
			}
			curl_easy_setopt(k->c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
		} else if (strcmp(method, "POST") == 0) {
			curl_easy_setopt(k->c, CURLOPT_POST, 1L);
			curl_easy_setopt(k->c, CURLOPT_POSTFIELDS, "");
			curl_easy_setopt(k->c, CURLOPT_POSTFIELDSIZE, 0L);
		}
		CURLcode cc = curl_easy_perform(k->c);
		if (body)
			stream_give(body);
		slist_free_wiped(h);
		curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &r->status);
		if (body && body->err.code)
			return cm_error_set(err, body->err.code, "%s", body->err.msg);
		if (cc != CURLE_OK) {
			if (attempt < 3) {
				struct timespec ts = {0, 200000000L << attempt};
				nanosleep(&ts, NULL);
				continue;
			}
			return cm_error_set(err, CM_EFAIL, "%s %s: %s", method, url,
					    curl_easy_strerror(cc));
		}
		if (r->status == 401 && attempt == 0 && r->auth[0]) {
			char sch[32], realm[1024], svc[256], scp[600];
			reg_auth_parse_challenge(r->auth, sch, sizeof(sch), realm, sizeof(realm),
						 svc, sizeof(svc), scp, sizeof(scp));
			for (char *p = sch; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
			pthread_mutex_lock(&s->mu);
			snprintf(s->scheme, sizeof(s->scheme), "%s", sch);
			if (strcmp(sch, "bearer") == 0) {
				snprintf(s->realm, sizeof(s->realm), "%s", realm);
				snprintf(s->service, sizeof(s->service), "%s", svc);
			}
			pthread_mutex_unlock(&s->mu);
			if (strcmp(sch, "basic") == 0 && !s->have_creds)
				return cm_error_set(
				    err, CM_EFAIL,
				    "%s asks for credentials and none were found for %s "
				    "(docker login / REGISTRY_AUTH_FILE)",
				    s->host, s->host);
			if (strcmp(sch, "basic") == 0 && reg_auth_is_identity(s->user))
				return cm_error_set(
				    err, CM_EFAIL,
				    "%s asks for Basic auth, but its credentials are "
				    "an identity token, which only buys Bearer tokens",
				    s->host);
			if (strcmp(sch, "bearer") == 0) {
				int rc = fetch_token(k, scope, err);
				if (rc < 0)
					return rc;
			}
			continue;
		}
		if (r->status == 401) {
			char hint[1200];
			withheld_hint(hint, sizeof(hint), s);
			if (hint[0])
				return cm_error_set(err, CM_EFAIL,
						    "%s %s: %s requires credentials (HTTP 401)%s",
						    method, url, s->host, hint);
		}
		if (r->status >= 500 && attempt < 3) {
			struct timespec ts = {0, 200000000L << attempt};
			nanosleep(&ts, NULL);
			continue;
		}
		return 0;
	}
	return 0;
}

static int http_error(cm_error *err, const resp *r, const char *what)
{
	char msg[512] = "";
	json_t *j = r->body.data ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
	json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
	if (e0) {
		const char *code = json_string_value(json_object_get(e0, "code"));
		const char *m = json_string_value(json_object_get(e0, "message"));
		snprintf(msg, sizeof(msg), ": %s %s", code ? code : "", m ? m : "");
	}
	json_decref(j);
	return cm_error_set(err, CM_EFAIL, "%s: HTTP %ld%s", what, r->status, msg);
}

static void abs_url(char *out, size_t n, const shared *s, const char *loc)
{
	if (strncmp(loc, "http://", 7) == 0 || strncmp(loc, "https://", 8) == 0)
		snprintf(out, n, "%s", loc);
	else
		snprintf(out, n, "%s%s%s", s->base, loc[0] == '/' ? "" : "/", loc);
}

enum { B_UPLOADING = 0, B_DONE = 1, B_FAILED = 2 };

/* Claim a blob: 0 when this worker is to HEAD/upload it (then release()),
 * 1 when it is already in a repository of the target (from filled: mount
 * it). While another worker uploads it: with wait, waits for that, so that
 * the second repository mounts instead of uploading the same bytes again;
 * without, returns 2 at once (the caller pushes its other blobs first). */
static int claim(shared *s, const char *hex, const char *repo, char *from, size_t n, int wait)
{
	pthread_mutex_lock(&s->mu);
	for (;;) {
		size_t i;
		for (i = 0; i < s->n_where; i++)
			if (strcmp(s->where[i].hex, hex) == 0)
				break;
		if (i == s->n_where) {
			if (s->n_where == s->cap_where) {
				size_t cap = s->cap_where ? s->cap_where * 2 : 64;
				void *v = realloc(s->where, cap * sizeof(*s->where));
				if (!v) {
					pthread_mutex_unlock(&s->mu);
					return 0; /* no bookkeeping: just upload */
				}
				s->where = v;
				s->cap_where = cap;
			}
			s->n_where++;
			snprintf(s->where[i].hex, 65, "%s", hex);
			snprintf(s->where[i].repo, sizeof(s->where[0].repo), "%s", repo);
			s->where[i].state = B_UPLOADING;
			pthread_mutex_unlock(&s->mu);
			return 0;
		}
		if (s->where[i].state == B_DONE) {
			snprintf(from, n, "%s", s->where[i].repo);
			pthread_mutex_unlock(&s->mu);
			return 1;
		}
		if (s->where[i].state == B_FAILED) {
			s->where[i].state = B_UPLOADING;
			snprintf(s->where[i].repo, sizeof(s->where[0].repo), "%s", repo);
			pthread_mutex_unlock(&s->mu);
			return 0;
		}
		if (!wait) {
			pthread_mutex_unlock(&s->mu);
			return 2;
		}
		pthread_cond_wait(&s->cv, &s->mu);
	}
}

static void release(shared *s, const char *hex, const char *repo, int ok)
{
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n_where; i++)
		if (strcmp(s->where[i].hex, hex) == 0) {
			s->where[i].state = ok ? B_DONE : B_FAILED;
			if (ok)
				snprintf(s->where[i].repo, sizeof(s->where[0].repo), "%s", repo);
		}
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void count(shared *s, uint64_t *field, uint64_t v)
{
	pthread_mutex_lock(&s->mu);
	*field += v;
	pthread_mutex_unlock(&s->mu);
}

/* --- verification of member contents ------------------------------------ */

static size_t member_index(const shared *s, const ins_member *m)
{
	return (size_t)(m - s->b->m);
}

/* Stop every worker (after a failure anywhere). */
static void stop_all(shared *s)
{
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static int stopped(shared *s, cm_error *err)
{
	pthread_mutex_lock(&s->mu);
	int st = s->stop;
	pthread_mutex_unlock(&s->mu);
	return st ? cm_error_set(err, CM_EFAIL, "stopped after a failure elsewhere") : 0;
}

/* Record a mismatch of member i: stop everything; the first one (e says
 * which) is what the run reports. */
static void record_bad(shared *s, size_t i, const cm_error *e)
{
	pthread_mutex_lock(&s->mu);
	if (!s->vbad) {
		s->verr = *e;
		s->verr.code = CM_EVERIFY;
		s->vbad_i = i;
	}
	s->vbad = 1;
	s->stop = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* The reader settled a member: a mismatch found by any of its threads
 * stops the push at once. */
static void on_settle(void *ctx, uint32_t id, int ok)
{
	shared *s = ctx;
	if (ok)
		return;
	cm_error e;
	cm_error_set(&e, CM_EVERIFY,
		     "digest mismatch in member '%s': its bytes do not hash to %s as SHA256SUMS "
		     "says",
		     s->b->m[id].path, s->b->m[id].hex);
	record_bad(s, id, &e);
}

/* Member i must have matched before anything that references it is put:
 * waits while another thread hashes it, hashes it here when nobody has. */
static int verified(conn *k, size_t i, cm_error *err)
{
	int rc = reg_bidx_verify(k->s->b->x, (uint32_t)i, err);
	if (rc == CM_EVERIFY)
		record_bad(k->s, i, err);
	return rc;
}

/* A blob this worker does not read for upload: the reader's worker hashes
 * it (before the background work). */
static void enqueue(shared *s, size_t i)
{
	reg_bidx_queue(s->b->x, (uint32_t)i, 1);
}

/* Every member still unhashed, hashed in this thread while the reader's
 * worker takes the queued ones: after the images are pushed, or in a dry
 * run. */
static void check_rest(shared *s)
{
	const ins_bundle *b = s->b;
	for (size_t i = 0; i < b->n_m; i++)
		reg_bidx_queue(b->x, (uint32_t)i, 0);
	for (size_t i = 0; i < b->n_m && !stopped(s, NULL); i++) {
		cm_error e = {0};
		int rc = reg_bidx_verify(b->x, (uint32_t)i, &e);
		if (rc == CM_EVERIFY) {
			record_bad(s, i, &e);
		} else if (rc < 0) {
			pthread_mutex_lock(&s->mu);
			if (!s->vfail)
				s->vfail_err = e;
			s->vfail = 1;
			s->stop = 1;
			pthread_mutex_unlock(&s->mu);
		}
	}
}

/* One blob into repo (m: its member, NULL when the bundle lacks it). When wait is 0 and another
 * worker uploads this blob right now, nothing is done and *later is set: push it after the others
 * (by then it can be mounted). */
static int push_blob(conn *k, const char *repo, const reg_desc *d, const ins_member *m, int wait,
		     int *later, cm_error *err)
{
	shared *s = k->s;
	if (!m)
		return cm_error_set(err, CM_EVERIFY, "blob %s is not in the bundle", d->digest.s);
	size_t mi = member_index(s, m);
	char url[4096], scope[600], from[600], scope2[1300];
	resp r;
	memset(&r, 0, sizeof(r));
	src body;
	memset(&body, 0, sizeof(body));
	int rc = 0, hashing = 0;
	if ((rc = stopped(s, err)) < 0)
		return rc;
	snprintf(scope, sizeof(scope), "repository:%s:pull,push", repo);
	const char *hex = REG_DIGEST_HEX(&d->digest);
	int cl = claim(s, hex, repo, from, sizeof(from), wait);
	if (cl == 2) {
		*later = 1;
		return 0;
	}
	int owner = cl == 0;
	if (owner && (rc = stopped(s, err)) < 0)
		goto out;
	if (!owner && strcmp(from, repo) == 0) {
		count(s, &s->st.blobs_skipped, 1); /* this run put it there already */
		enqueue(s, mi);
		goto out;
	}
	snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", s->base, repo, d->digest.s);
	if ((rc = request(k, &r, "HEAD", url, scope, NULL, NULL, 0, NULL, err)) < 0)
		goto out;
	if (r.status == 200) {
		count(s, &s->st.blobs_skipped, 1);
		enqueue(s, mi);
		goto out;
	}
	/* mount from a repository that holds it */
	char loc[4096] = "";
	if (!owner) {
		snprintf(url, sizeof(url), "%s/v2/%s/blobs/uploads/?mount=%s&from=%s", s->base,
			 repo, d->digest.s, from);
		snprintf(scope2, sizeof(scope2), "repository:%s:pull,push repository:%s:pull", repo,
			 from);
		if ((rc = request(k, &r, "POST", url, scope2, NULL, NULL, 0, NULL, err)) < 0)
			goto out;
		if (r.status == 201) {
			count(s, &s->st.blobs_mounted, 1);
			enqueue(s, mi);
			goto out;
		}
		if (r.status == 202 && r.location[0])
			snprintf(loc, sizeof(loc), "%s", r.location); /* fell back to an upload */
	}
	if (!loc[0]) {
		snprintf(url, sizeof(url), "%s/v2/%s/blobs/uploads/", s->base, repo);
		if ((rc = request(k, &r, "POST", url, scope, NULL, NULL, 0, NULL, err)) < 0)
			goto out;
		if (r.status != 202 || !r.location[0]) {
			rc = http_error(err, &r, "starting an upload");
			goto out;
		}
		snprintf(loc, sizeof(loc), "%s", r.location);
	}
	/* the read that feeds the upload also hashes, unless another thread
	 * hashes (or hashed) this member */
	hashing = reg_bidx_take(s->b->x, (uint32_t)mi);
	body.b = s->b;
	body.m = m;
	if ((rc = ins_bundle_cursor(&body.cur, s->b, m, hashing ? 0 : REG_BIDX_TRUST_VERIFIED,
				    err)) < 0) {
		if (hashing)
			reg_bidx_untake(s->b->x, (uint32_t)mi);
		hashing = 0;
		goto out;
	}
	body.have_cur = 1;
	if (m->size > CHUNK) {
		/* chunked: PATCH each chunk, following the new Location */
		for (uint64_t off = 0; off < m->size; off += CHUNK) {
			uint64_t end = off + CHUNK < m->size ? off + CHUNK : m->size;
			char cr[96];
			snprintf(cr, sizeof(cr), "Content-Range: %llu-%llu",
				 (unsigned long long)off, (unsigned long long)(end - 1));
			body.off = off;
			body.end = end;
			abs_url(url, sizeof(url), s, loc);
			stream_take(s, &body);
			if ((rc = request(k, &r, "PATCH", url, scope, "application/octet-stream",
					  &body, end - off, cr, err)) < 0)
				goto out;
			if (r.status != 202 || !r.location[0]) {
				rc = http_error(err, &r, "uploading a chunk");
				goto out;
			}
			snprintf(loc, sizeof(loc), "%s", r.location);
		}
		abs_url(url, sizeof(url), s, loc);
		size_t l = strlen(url);
		snprintf(url + l, sizeof(url) - l, "%sdigest=%s", strchr(url, '?') ? "&" : "?",
			 d->digest.s);
		rc = request(k, &r, "PUT", url, scope, "application/octet-stream", NULL, 0, NULL,
			     err);
	} else {
		abs_url(url, sizeof(url), s, loc);
		size_t l = strlen(url);
		snprintf(url + l, sizeof(url) - l, "%sdigest=%s", strchr(url, '?') ? "&" : "?",
			 d->digest.s);
		body.off = 0;
		body.end = m->size;
		if (m->size >= SMALL_BLOB)
			stream_take(s, &body);
		rc = request(k, &r, "PUT", url, scope, "application/octet-stream", &body, m->size,
			     NULL, err);
	}
	if (rc == 0 && r.status != 201)
		rc = http_error(err, &r, "finishing an upload");
	if (rc == 0) {
		count(s, &s->st.blobs_uploaded, 1);
		count(s, &s->st.bytes_uploaded, m->size);
	}
out:
	/* A digest mismatch outranks the upload's own outcome (a registry
	 * refuses a tampered upload with a less telling DIGEST_INVALID). */
	if (hashing) {
		/* read what the upload did not, so the reader checks the whole */
		cm_error ve = {0};
		int vr = 0;
		size_t got = 1;
		while (got &&
		       (vr = reg_bidx_cursor_read(&body.cur, k->buf, HASH_BUF, &got, &ve)) == 0)
			;
		/* the cursor's last read (or, for an empty member, its end) settled it */
		if (vr < 0 && vr != CM_EVERIFY)
			reg_bidx_untake(s->b->x, (uint32_t)mi);
		else if (vr == CM_EVERIFY)
			record_bad(s, mi, &ve);
		if (vr == CM_EVERIFY || (vr < 0 && rc == 0)) {
			rc = vr;
			*err = ve;
		}
	} else if (rc < 0 && rc != CM_EVERIFY && stopped(s, NULL) == 0) {
		cm_error ve = {0};
		if (verified(k, mi, &ve) == CM_EVERIFY) {
			rc = CM_EVERIFY;
			*err = ve;
		}
	}
	if (body.have_cur)
		reg_bidx_cursor_close(&body.cur);
	if (owner)
		release(s, hex, repo, rc == 0);
	cm_buf_free(&r.body);
	if (rc < 0)
		cm_error_wrap(err, "blob %s to %s", d->digest.s, repo);
	return rc;
}

/* Every blob man references must have matched its digest. */
static int blobs_verified(conn *k, const reg_manifest *man, cm_error *err)
{
	for (size_t j = 0; j <= man->n_items; j++) {
		const reg_desc *d = j == 0 ? &man->config : &man->items[j - 1];
		const ins_member *m = ins_bundle_blob(k->s->b, &d->digest);
		if (!m)
			return cm_error_set(err, CM_EVERIFY, "blob %s is not in the bundle",
					    d->digest.s);
		if (verified(k, member_index(k->s, m), err) < 0)
			return cm_error_wrap(err, "blob %s", d->digest.s);
	}
	return 0;
}

/* Read the manifest or index d names, check its bytes against its digest
 * (before they are parsed or pushed), and parse it. raw receives the
 * bytes that are pushed. */
static int read_manifest(conn *k, reg_manifest *out, cm_buf *raw, const reg_desc *d, cm_error *err)
{
	shared *s = k->s;
	memset(out, 0, sizeof(*out));
	const ins_member *m = ins_bundle_blob(s->b, &d->digest);
	if (!m)
		return cm_error_set(err, CM_EVERIFY, "manifest %s is not in the bundle",
				    d->digest.s);
	size_t mi = member_index(s, m);
	/* the read hashes these bytes (and settles the member) */
	int mine = reg_bidx_take(s->b->x, (uint32_t)mi);
	int rc = ins_bundle_read(raw, s->b, m, REG_MANIFEST_MAX, err);
	if (rc == CM_EVERIFY)
		record_bad(s, mi, err);
	else if (rc < 0 && mine)
		reg_bidx_untake(s->b->x, (uint32_t)mi);
	if (rc < 0)
		return cm_error_wrap(err, "manifest %s", d->digest.s);
	if (rc == 0)
		rc = reg_manifest_parse(out, raw->data, raw->len, d->media_type, err);
	if (rc < 0)
		return cm_error_wrap(err, "manifest %s", d->digest.s);
	return 0;
}

/* PUT a manifest (its checked bytes raw) under ref (tag or digest) unless
 * it is there already. */
static int push_manifest(conn *k, const char *repo, const reg_desc *d, const char *ref,
			 const cm_buf *raw, cm_error *err)
{
	shared *s = k->s;
	char url[4096], scope[600];
	resp r;
	memset(&r, 0, sizeof(r));
	int rc = stopped(s, err);
	if (rc < 0)
		return rc;
	snprintf(scope, sizeof(scope), "repository:%s:pull,push", repo);
	snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", s->base, repo, ref);
	char accept[600];
	snprintf(accept, sizeof(accept), "Accept: %s", d->media_type);
	rc = request(k, &r, "HEAD", url, scope, NULL, NULL, 0, accept, err);
	if (rc == 0 && r.status == 200 && strcmp(r.digest, d->digest.s) == 0) {
		cm_buf_free(&r.body);
		return 0;
	}
	src body;
	memset(&body, 0, sizeof(body));
	body.mem = raw->data ? raw->data : "";
	body.mem_len = raw->len;
	if (rc == 0)
		rc = stopped(s, err); /* the last moment a mismatch elsewhere can stop it */
	if (rc == 0)
		rc = request(k, &r, "PUT", url, scope, d->media_type, &body, raw->len, NULL, err);
	if (rc == 0 && r.status != 201)
		rc = http_error(err, &r, "putting the manifest");
	if (rc == 0 && r.digest[0] && strcmp(r.digest, d->digest.s) != 0)
		rc = cm_error_set(err, CM_EFAIL, "the registry stored the manifest as %s, not %s",
				  r.digest, d->digest.s);
	if (rc == 0)
		count(s, &s->st.manifests_put, 1);
	cm_buf_free(&r.body);
	if (rc < 0)
		cm_error_wrap(err, "manifest %s:%s", repo, ref);
	return rc;
}

/* Every member an index references directly must have matched (a child
 * that is itself an index is put as it is). */
static int items_verified(conn *k, const reg_manifest *idx, cm_error *err)
{
	for (size_t j = 0; j < idx->n_items; j++) {
		const ins_member *m = ins_bundle_blob(k->s->b, &idx->items[j].digest);
		int rc = m ? verified(k, member_index(k->s, m), err) : 0;
		if (rc < 0)
			return cm_error_wrap(err, "manifest %s", idx->items[j].digest.s);
	}
	return 0;
}

/* The manifests of an image whose blobs are all in repo: children of an
 * index first, then the root; each only once what it references matched. */
static int push_image(conn *k, const ins_image *im, cm_error *err)
{
	shared *s = k->s;
	char repo[700];
	snprintf(repo, sizeof(repo), "%s%s", s->prefix, im->repo);
	reg_manifest root;
	cm_buf rraw = CM_BUF_INIT;
	int rc = read_manifest(k, &root, &rraw, &im->root, err);
	if (rc < 0) {
		cm_buf_free(&rraw);
		return rc;
	}
	if (!root.is_index) {
		rc = blobs_verified(k, &root, err);
	} else {
		for (size_t i = 0; i < root.n_items && rc == 0; i++) {
			const reg_desc *kid = &root.items[i];
			if (!reg_media_type_is_manifest(kid->media_type) &&
			    !reg_media_type_is_index(kid->media_type))
				continue;
			reg_manifest man;
			cm_buf raw = CM_BUF_INIT;
			rc = read_manifest(k, &man, &raw, kid, err);
			if (rc == 0)
				rc = man.is_index ? items_verified(k, &man, err)
						  : blobs_verified(k, &man, err);
			if (rc == 0)
				rc = push_manifest(k, repo, kid, kid->digest.s, &raw, err);
			reg_manifest_free(&man);
			cm_buf_free(&raw);
		}
		if (rc == 0)
			rc = items_verified(k, &root, err);
	}
	if (rc == 0)
		rc = push_manifest(k, repo, &im->root, im->r.tag[0] ? im->r.tag : im->root.digest.s,
				   &rraw, err);
	reg_manifest_free(&root);
	cm_buf_free(&rraw);
	if (rc == 0) {
		count(s, &s->st.images, 1);
		ins_say(s->o, INS_SAY_INFO, "pushed %s -> %s/%s%s%s", im->ref, s->host, repo,
			im->r.tag[0] ? ":" : "@", im->r.tag[0] ? im->r.tag : im->root.digest.s);
	}
	return rc;
}

/* The work: first every blob of every image into its repository, as one
 * queue, largest first, so that --jobs streams stay busy to the end (a
 * blob another worker is uploading right now goes to the back once, and
 * is then mounted); then the manifests, image by image, each as soon as
 * all of its image's blobs are there. Under shared.mu. */
typedef struct btask {
	size_t image;	     /* index in b->images */
	size_t seq;	     /* order of discovery (ties in the sort) */
	const ins_member *m; /* its member; NULL: not in the bundle (push_blob says so) */
	int deferred;
	reg_desc d;
} btask;

typedef struct work {
	shared *s;
	btask *t;
	size_t n_t, cap_t;
	size_t *q; /* ring of task indices still to push */
	size_t q_head, q_len;
	size_t *pending; /* per image: blob tasks not done yet */
	size_t next;	 /* next image for the manifest phase */
	int failed;
	cm_error err;
} work;

static int add_task(work *w, size_t image, const reg_desc *d, cm_error *err)
{
	if (w->n_t == w->cap_t) {
		size_t cap = w->cap_t ? w->cap_t * 2 : 64;
		btask *v = realloc(w->t, cap * sizeof(*v));
		if (!v)
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		w->t = v;
		w->cap_t = cap;
	}
	btask *t = &w->t[w->n_t];
	t->image = image;
	t->seq = w->n_t;
	t->m = ins_bundle_blob(w->s->b, &d->digest);
	t->deferred = 0;
	t->d = *d;
	w->n_t++;
	return 0;
}

/* The blobs of image i (its manifests are read and checked here). */
static int plan_image(conn *k, work *w, size_t i, cm_error *err)
{
	const ins_image *im = &w->s->b->images[i];
	reg_manifest root;
	cm_buf raw = CM_BUF_INIT;
	int rc = read_manifest(k, &root, &raw, &im->root, err);
	const reg_desc *kids = root.is_index ? root.items : &im->root;
	size_t nk = rc < 0 ? 0 : root.is_index ? root.n_items : 1;
	for (size_t j = 0; j < nk && rc == 0; j++) {
		reg_manifest man;
		if (!reg_media_type_is_manifest(kids[j].media_type) &&
		    !reg_media_type_is_index(kids[j].media_type))
			continue;
		if (root.is_index)
			rc = read_manifest(k, &man, &raw, &kids[j], err);
		else
			man = root;
		if (rc == 0 && !man.is_index) {
			rc = add_task(w, i, &man.config, err);
			for (size_t l = 0; l < man.n_items && rc == 0; l++)
				rc = add_task(w, i, &man.items[l], err);
		}
		if (root.is_index)
			reg_manifest_free(&man);
	}
	reg_manifest_free(&root);
	cm_buf_free(&raw);
	if (rc < 0)
		return cm_error_wrap(err, "image %s", im->ref);
	return 0;
}

/* Largest first, so that the streams finish together. */
static int cmp_task(const void *a, const void *b)
{
	const btask *x = a, *y = b;
	uint64_t xs = x->m ? x->m->size : 0, ys = y->m ? y->m->size : 0;
	if (xs != ys)
		return xs > ys ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void fail(work *w, cm_error *e, const char *ref)
{
	shared *s = w->s;
	pthread_mutex_lock(&s->mu);
	if (!w->failed) {
		w->err = *e;
		if (ref)
			cm_error_wrap(&w->err, "image %s", ref);
	}
	w->failed = 1;
	s->stop = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void *worker(void *arg)
{
	work *w = arg;
	shared *s = w->s;
	conn k = {s, curl_easy_init(), malloc(HASH_BUF)};
	cm_error e = {0};
	if (!k.c || !k.buf) {
		cm_error_set(&e, CM_ENOMEM, "out of memory");
		fail(w, &e, NULL);
		if (k.c)
			curl_easy_cleanup(k.c);
		free(k.buf);
		return NULL;
	}
	/* 1. blobs */
	for (;;) {
		pthread_mutex_lock(&s->mu);
		if (s->stop || w->q_len == 0) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		size_t ti = w->q[w->q_head];
		w->q_head = (w->q_head + 1) % w->n_t;
		w->q_len--;
		btask *t = &w->t[ti];
		int wait = t->deferred || w->q_len == 0;
		pthread_mutex_unlock(&s->mu);
		const ins_image *im = &s->b->images[t->image];
		char repo[700];
		snprintf(repo, sizeof(repo), "%s%s", s->prefix, im->repo);
		int later = 0;
		cm_error_clear(&e);
		int rc = push_blob(&k, repo, &t->d, t->m, wait, &later, &e);
		if (rc < 0) {
			fail(w, &e, im->ref);
			break;
		}
		pthread_mutex_lock(&s->mu);
		if (later) {
			t->deferred = 1;
			w->q[(w->q_head + w->q_len) % w->n_t] = ti;
			w->q_len++;
		} else {
			w->pending[t->image]--;
			pthread_cond_broadcast(&s->cv);
		}
		pthread_mutex_unlock(&s->mu);
	}
	/* 2. manifests */
	for (;;) {
		pthread_mutex_lock(&s->mu);
		size_t i = w->next;
		if (!s->stop && i < s->b->n_images)
			w->next++;
		while (!s->stop && i < s->b->n_images && w->pending[i])
			pthread_cond_wait(&s->cv, &s->mu);
		int go = !s->stop && i < s->b->n_images;
		pthread_mutex_unlock(&s->mu);
		if (!go)
			break;
		cm_error_clear(&e);
		if (push_image(&k, &s->b->images[i], &e) < 0) {
			fail(w, &e, s->b->images[i].ref);
			break;
		}
	}
	curl_easy_cleanup(k.c);
	free(k.buf);
	return NULL;
}

/* HOST[:PORT][/PREFIX] (an http:// or https:// scheme allowed) into
 * s->host, s->prefix ("" or "prefix/") and s->base. */
static int parse_to(char *host_out, size_t host_n, char *prefix_out, size_t prefix_n,
		    char *base_out, size_t base_n, const char *to, int plain, cm_error *err);

static int parse_target(shared *s, cm_error *err)
{
	return parse_to(s->host, sizeof(s->host), s->prefix, sizeof(s->prefix), s->base,
			sizeof(s->base), s->o->push_to, s->o->push_insecure, err);
}

int ins_push_check_target(const char *to, cm_error *err)
{
	char host[300], prefix[300], base[640];
	return parse_to(host, sizeof(host), prefix, sizeof(prefix), base, sizeof(base), to, 0, err);
}

/* HOST[:PORT][/PREFIX] into host, prefix ("" or "prefix/") and base. */
static int parse_to(char *host_out, size_t host_n, char *prefix_out, size_t prefix_n,
		    char *base_out, size_t base_n, const char *to, int plain, cm_error *err)
{
	if (strncmp(to, "https://", 8) == 0)
		to += 8;
	else if (strncmp(to, "http://", 7) == 0) {
		to += 7;
		plain = 1;
	}
	/* curl's URL parser, not ours: HOST[:PORT] only (no user, query or
	 * fragment), and a prefix that is a repository path */
	/* characters that could break out of hosts.toml, registries.conf or a
	 * YAML value, and curl's separators for what an address has not (curl
	 * drops an empty query or fragment: "host#" would pass it) */
	for (const char *q = to; *q; q++)
		if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e ||
		    strchr("\"'\\@?#{}", *q))
			return cm_error_set(err, CM_EUSAGE,
					    "'%.200s': only HOST[:PORT][/PREFIX] (no user, query, "
					    "fragment, quotes or spaces)",
					    to);
	char url[1024];
	if (snprintf(url, sizeof(url), "https://%s", to) >= (int)sizeof(url))
		return cm_error_set(err, CM_EUSAGE, "'%.100s...': too long", to);
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *path = NULL, *user = NULL, *query = NULL, *frag = NULL;
	int rc = 0;
	if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_PATH_AS_IS) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0])
		rc = cm_error_set(err, CM_EUSAGE, "'%.200s' is not HOST[:PORT][/PREFIX]", to);
	if (rc == 0) {
		curl_url_get(u, CURLUPART_PORT, &port, 0);
		curl_url_get(u, CURLUPART_PATH, &path, 0);
		curl_url_get(u, CURLUPART_USER, &user, 0);
		curl_url_get(u, CURLUPART_QUERY, &query, 0);
		curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
		if (user || query || frag || strchr(to, '@'))
			rc = cm_error_set(err, CM_EUSAGE,
					  "'%.200s': only HOST[:PORT][/PREFIX] (no user, query "
					  "or fragment)",
					  to);
	}
	if (rc == 0) {
		snprintf(host_out, host_n, "%s%s%s", host, port ? ":" : "", port ? port : "");
		const char *p = path ? path : "";
		while (*p == '/')
			p++;
		snprintf(prefix_out, prefix_n, "%s", p);
		size_t l = strlen(prefix_out);
		while (l && prefix_out[l - 1] == '/')
			prefix_out[--l] = '\0';
		if (l && !reg_ref_valid_path(prefix_out))
			rc = cm_error_set(err, CM_EUSAGE,
					  "'%.200s': prefix '%s' is not a repository path", to,
					  prefix_out);
		else if (l)
			snprintf(prefix_out + l, prefix_n - l, "/");
		snprintf(base_out, base_n, "%s://%s", plain ? "http" : "https", host_out);
	}
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(user);
	curl_free(query);
	curl_free(frag);
	curl_url_cleanup(u);
	return rc;
}

/* GET /v2/: the registry answers, and its challenge names the auth scheme. */
static int ping(shared *s, cm_error *err)
{
	conn k = {s, curl_easy_init(), NULL};
	resp r;
	memset(&r, 0, sizeof(r));
	char url[700];
	snprintf(url, sizeof(url), "%s/v2/", s->base);
	int rc = k.c ? request(&k, &r, "GET", url, "registry:catalog:*", NULL, NULL, 0, NULL, err)
		     : cm_error_set(err, CM_ENOMEM, "curl_easy_init failed");
	if (rc == 0 && r.status != 200 && r.status != 401)
		rc = http_error(err, &r, "GET /v2/");
	if (rc == 0 && r.status == 401 && r.auth[0] && !s->scheme[0]) {
		char sch[32], realm[1024], svc[256], scp[600];
		reg_auth_parse_challenge(r.auth, sch, sizeof(sch), realm, sizeof(realm), svc,
					 sizeof(svc), scp, sizeof(scp));
		for (char *p = sch; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		snprintf(s->scheme, sizeof(s->scheme), "%s", sch);
		snprintf(s->realm, sizeof(s->realm), "%s", realm);
		snprintf(s->service, sizeof(s->service), "%s", svc);
	}
	cm_buf_free(&r.body);
	if (k.c)
		curl_easy_cleanup(k.c);
	return rc < 0 ? cm_error_wrap(err, "registry %s", s->host) : 0;
}

/* The plan: every image's manifests read and checked, its blobs queued
 * largest first, and the idle-time hashers' list (the queue backwards). */
static int plan(work *w, cm_error *err)
{
	shared *s = w->s;
	const ins_bundle *b = s->b;
	conn pk = {s, NULL, NULL}; /* manifests are read whole: no buffer */
	int rc = 0;
	if (!(w->pending = calloc(b->n_images ? b->n_images : 1, sizeof(size_t))))
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < b->n_images && rc == 0; i++)
		rc = plan_image(&pk, w, i, err);
	if (rc == 0 && w->n_t && !(w->q = calloc(w->n_t, sizeof(size_t))))
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	if (rc < 0)
		return rc;
	qsort(w->t, w->n_t, sizeof(btask), cmp_task);
	for (size_t i = 0; i < w->n_t; i++) {
		w->q[i] = i;
		w->pending[w->t[i].image]++;
	}
	w->q_len = w->n_t;
	/* without it, the uploads hash everything themselves */
	s->pre = calloc(w->n_t ? w->n_t : 1, sizeof(uint32_t));
	for (size_t i = 0; s->pre && i < w->n_t; i++) {
		const ins_member *m = w->t[w->n_t - 1 - i].m;
		if (m)
			s->pre[s->n_pre++] = (uint32_t)member_index(s, m);
	}
	return 0;
}

/* --jobs streams with twice as many workers, and one idle-time hasher per
 * CPU this process may run on; returns when the workers are done and the
 * idle-time hashers have let go of what they held. */
static void run_workers(work *w)
{
	shared *s = w->s;
	size_t most = w->n_t > s->b->n_images ? w->n_t : s->b->n_images;
	int jobs = s->o->jobs > 0 ? s->o->jobs : 4;
	if ((size_t)jobs > most)
		jobs = (int)(most ? most : 1);
	/* jobs bodies stream at once; twice as many workers, so that one whose
	 * body is sent and that waits for the registry's answer leaves its
	 * slot to another */
	s->streams_free = jobs;
	int threads = (size_t)jobs * 2 > most ? (int)most : jobs * 2;
	pthread_t th[64];
	int started = 0;
	/* w->failed is written by workers under mu: read it so */
	int failed = stopped(s, NULL) < 0;
	for (int i = 0; i < threads && i < 64 && !failed; i++)
		if (pthread_create(&th[i], NULL, worker, w) == 0)
			started++;
	cpu_set_t set;
	long cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
								 : sysconf(_SC_NPROCESSORS_ONLN);
	if (s->o->push_no_idle_hash)
		cpus = 0;
	cm_error ie;
	if (stopped(s, NULL) == 0 && s->n_pre)
		reg_bidx_idle_start(s->b->x, s->pre, s->n_pre,
				    (unsigned)(cpus > PREHASHERS ? PREHASHERS : cpus), &ie);
	if (started == 0 && !failed)
		worker(w);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	/* what the idle-time hashers hold now is hashed at normal priority */
	s->members_idle = reg_bidx_idle_stop(s->b->x);
}

/* The run's outcome: a tampered bundle outranks every other failure, then
 * a worker's, then the verifier's own (I/O). */
static int outcome(shared *s, const work *w, cm_error *err)
{
	if (!s->vbad && !w->failed && !s->vfail)
		return 0;
	if (s->vbad)
		*err = w->failed && w->err.code == CM_EVERIFY ? w->err : s->verr;
	else
		*err = w->failed ? w->err : s->vfail_err;
	int rc = s->vbad ? CM_EVERIFY : err->code ? err->code : CM_EFAIL;
	err->code = rc;
	return rc;
}

int ins_push_bundle(ins_push_stats *st, const ins_bundle *b, const ins_install_opts *o,
		    cm_error *err)
{
	memset(st, 0, sizeof(*st));
	shared *s = calloc(1, sizeof(*s));
	if (!s)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	s->b = b;
	s->o = o;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	work w;
	memset(&w, 0, sizeof(w));
	w.s = s;
	int rc = 0;
	/* bundle.json, oci-layout and index.json were hashed when the bundle
	 * was opened (the scanner always hashes them); the reader hashes the
	 * rest: its worker starts on what no image needs (manifests/, models/)
	 * while the pushing starts, and a mismatch anywhere stops the push */
	if ((rc = parse_target(s, err)) < 0)
		goto out;
	reg_bidx_on_settle(b->x, on_settle, s);
	if ((rc = reg_bidx_workers(b->x, 1, err)) < 0)
		goto out;
	for (size_t i = 0; i < b->n_m; i++) {
		int r = reg_bundle_rank(b->m[i].path);
		if (r == 6 || r == 7)
			reg_bidx_queue(b->x, (uint32_t)i, 0);
	}
	char src_desc[512] = "";
	cm_error ae = {0};
	int found = reg_auth_lookup(s->user, sizeof(s->user), s->secret, sizeof(s->secret),
				    src_desc, sizeof(src_desc), s->host, &ae);
	s->have_creds = found == 1;
	ins_say(o, INS_SAY_INFO, "push to %s%s%s: credentials %s", s->base, s->prefix[0] ? "/" : "",
		s->prefix,
		s->have_creds ? src_desc
		: found < 0   ? ae.msg
			      : "none (anonymous)");
	if (o->dry_run) {
		/* nothing is pushed, but the content is checked all the same */
		check_rest(s);
		for (size_t i = 0; i < b->n_images && !s->vbad && !s->vfail; i++)
			ins_say(o, INS_SAY_INFO, "would push %s -> %s/%s%s", b->images[i].ref,
				s->host, s->prefix, b->images[i].repo);
	} else {
		if ((rc = ping(s, err)) == 0)
			rc = plan(&w, err);
		if (rc < 0) {
			w.failed = 1;
			w.err = *err;
			stop_all(s);
		}
		run_workers(&w);
		/* the images are out: whatever is left is hashed now */
		if (!w.failed)
			check_rest(s);
	}
	/* the reader's threads stop before s goes (its callback uses it) */
	reg_bidx_stop(b->x);
	reg_bidx_on_settle(b->x, NULL, NULL);
	rc = outcome(s, &w, err);
	uint64_t n_checked = 0, bytes_checked = 0;
	for (size_t i = 0; i < b->n_m; i++) {
		if (rc == 0 && !reg_bidx_is_verified(b->x, (uint32_t)i))
			rc = cm_error_set(err, CM_EVERIFY, "member '%s' was not verified",
					  b->m[i].path); /* cannot happen: all were hashed above */
		if (reg_bundle_rank(b->m[i].path) > 4) {
			n_checked++;
			bytes_checked += b->m[i].size;
		}
	}
	if (rc == 0)
		ins_say(
		    o, INS_SAY_INFO,
		    "verified %llu members (%llu bytes) while pushing, %llu of them in idle time",
		    (unsigned long long)n_checked, (unsigned long long)bytes_checked,
		    (unsigned long long)s->members_idle);
	*st = s->st;
out:
	/* the reader's threads stop before s goes (its callback uses it) */
	reg_bidx_stop(b->x);
	reg_bidx_on_settle(b->x, NULL, NULL);
	free(w.t);
	free(w.q);
	free(w.pending);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->pre);
	free(s->where);
	OPENSSL_cleanse(s->secret, sizeof(s->secret));
	OPENSSL_cleanse(s->tok, sizeof(s->tok));
	free(s);
	return rc;
}
