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
 * or a credential helper (reg_auth_lookup). Blobs of different repositories
 * are pushed in parallel with --jobs threads, each with its own handle. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ins_install.h"
#include "reg_client.h"

#define CHUNK ((uint64_t)64 << 20)
#define TOKENS 64

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
	char scheme[16]; /* challenge scheme: "", "basic", "bearer" */
	char realm[1024], service[256];
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
} shared;

typedef struct conn {
	shared *s;
	CURL *c;
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
} src;

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
	if (want && ins_bundle_pread(s->b, s->m, s->off + s->pos, buf, want, &got, &s->err) < 0)
		return CURL_READFUNC_ABORT;
	s->pos += got;
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

static int url_escape(char *out, size_t n, CURL *c, const char *s)
{
	char *e = curl_easy_escape(c, s, 0);
	if (!e)
		return -1;
	snprintf(out, n, "%s", e);
	curl_free(e);
	return 0;
}

/* Buy a bearer token for scope (space-separated scopes). */
static int fetch_token(conn *k, const char *scope, cm_error *err)
{
	shared *s = k->s;
	char url[4096], svc[600] = "", sc[1200];
	size_t l = (size_t)snprintf(url, sizeof(url), "%s?", s->realm);
	if (s->service[0] && url_escape(svc, sizeof(svc), k->c, s->service) == 0)
		l += (size_t)snprintf(url + l, sizeof(url) - l, "service=%s&", svc);
	/* one scope= per scope */
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s", scope);
	char *save = NULL;
	for (char *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		url_escape(sc, sizeof(sc), k->c, t);
		l += (size_t)snprintf(url + l, sizeof(url) - l, "scope=%s&", sc);
	}
	resp r;
	memset(&r, 0, sizeof(r));
	r.body.limit = (size_t)1 << 20;
	curl_easy_reset(k->c);
	curl_easy_setopt(k->c, CURLOPT_URL, url);
	curl_easy_setopt(k->c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(k->c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(k->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(k->c, CURLOPT_TIMEOUT, 60L);
	if (s->have_creds) {
		curl_easy_setopt(k->c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(k->c, CURLOPT_USERNAME, s->user);
		curl_easy_setopt(k->c, CURLOPT_PASSWORD, s->secret);
	}
	if (s->o->ca)
		curl_easy_setopt(k->c, CURLOPT_CAINFO, s->o->ca);
	CURLcode cc = curl_easy_perform(k->c);
	curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &r.status);
	int rc = 0;
	if (cc != CURLE_OK || r.status != 200) {
		rc =
		    cm_error_set(err, CM_EFAIL, "token from %s: %s", s->realm,
				 cc != CURLE_OK ? curl_easy_strerror(cc) : "refused (HTTP status)");
		goto out;
	}
	json_t *j = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
	const char *t = json_string_value(json_object_get(j, "token"));
	if (!t)
		t = json_string_value(json_object_get(j, "access_token"));
	json_int_t exp = json_integer_value(json_object_get(j, "expires_in"));
	if (!t || strlen(t) >= sizeof(s->tok[0].value)) {
		rc = cm_error_set(err, CM_EFAIL, "token from %s: no token in the answer", s->realm);
	} else {
		pthread_mutex_lock(&s->mu);
		size_t i = s->n_tok < TOKENS ? s->n_tok++ : (size_t)(time(NULL) % TOKENS);
		snprintf(s->tok[i].scope, sizeof(s->tok[i].scope), "%s", scope);
		snprintf(s->tok[i].value, sizeof(s->tok[i].value), "%s", t);
		s->tok[i].expires = time(NULL) + (exp > 0 ? (time_t)exp : 60);
		pthread_mutex_unlock(&s->mu);
	}
	json_decref(j);
out:
	cm_buf_free(&r.body);
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
		if (strcmp(s->scheme, "bearer") == 0) {
			pthread_mutex_lock(&s->mu);
			const token *t = find_token(s, scope);
			if (t)
				snprintf(ah, sizeof(ah), "Authorization: Bearer %s", t->value);
			pthread_mutex_unlock(&s->mu);
			if (t)
				h = curl_slist_append(h, ah);
		} else if (strcmp(s->scheme, "basic") == 0 && s->have_creds) {
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
		curl_slist_free_all(h);
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
			if (strcmp(sch, "bearer") == 0) {
				int rc = fetch_token(k, scope, err);
				if (rc < 0)
					return rc;
			}
			continue;
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
 * it). Waits while another worker uploads it, so that the second
 * repository mounts instead of uploading the same bytes again. */
static int claim(shared *s, const char *hex, const char *repo, char *from, size_t n)
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

/* One blob into repo. */
static int push_blob(conn *k, const char *repo, const reg_desc *d, cm_error *err)
{
	shared *s = k->s;
	const ins_member *m = ins_bundle_blob(s->b, &d->digest);
	if (!m)
		return cm_error_set(err, CM_EVERIFY, "blob %s is not in the bundle", d->digest.s);
	char url[4096], scope[600], from[600], scope2[1300];
	resp r;
	memset(&r, 0, sizeof(r));
	int rc = 0;
	snprintf(scope, sizeof(scope), "repository:%s:pull,push", repo);
	const char *hex = REG_DIGEST_HEX(&d->digest);
	int owner = claim(s, hex, repo, from, sizeof(from)) == 0;
	if (!owner && strcmp(from, repo) == 0) {
		count(s, &s->st.blobs_skipped, 1); /* this run put it there already */
		goto out;
	}
	snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", s->base, repo, d->digest.s);
	if ((rc = request(k, &r, "HEAD", url, scope, NULL, NULL, 0, NULL, err)) < 0)
		goto out;
	if (r.status == 200) {
		count(s, &s->st.blobs_skipped, 1);
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
	src body;
	memset(&body, 0, sizeof(body));
	body.b = s->b;
	body.m = m;
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
	if (owner)
		release(s, hex, repo, rc == 0);
	cm_buf_free(&r.body);
	if (rc < 0)
		cm_error_wrap(err, "blob %s to %s", d->digest.s, repo);
	return rc;
}

/* PUT a manifest under ref (tag or digest) unless it is there already. */
static int push_manifest(conn *k, const char *repo, const reg_desc *d, const char *ref,
			 cm_error *err)
{
	shared *s = k->s;
	const ins_member *m = ins_bundle_blob(s->b, &d->digest);
	if (!m)
		return cm_error_set(err, CM_EVERIFY, "manifest %s is not in the bundle",
				    d->digest.s);
	char url[4096], scope[600];
	resp r;
	memset(&r, 0, sizeof(r));
	snprintf(scope, sizeof(scope), "repository:%s:pull,push", repo);
	snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", s->base, repo, ref);
	char accept[600];
	snprintf(accept, sizeof(accept), "Accept: %s", d->media_type);
	int rc = request(k, &r, "HEAD", url, scope, NULL, NULL, 0, accept, err);
	if (rc == 0 && r.status == 200 && strcmp(r.digest, d->digest.s) == 0) {
		cm_buf_free(&r.body);
		return 0;
	}
	cm_buf raw = CM_BUF_INIT;
	if (rc == 0)
		rc = ins_bundle_read(&raw, s->b, m, REG_MANIFEST_MAX, err);
	src body;
	memset(&body, 0, sizeof(body));
	body.mem = raw.data;
	body.mem_len = raw.len;
	if (rc == 0)
		rc = request(k, &r, "PUT", url, scope, d->media_type, &body, raw.len, NULL, err);
	if (rc == 0 && r.status != 201)
		rc = http_error(err, &r, "putting the manifest");
	if (rc == 0 && r.digest[0] && strcmp(r.digest, d->digest.s) != 0)
		rc = cm_error_set(err, CM_EFAIL, "the registry stored the manifest as %s, not %s",
				  r.digest, d->digest.s);
	if (rc == 0)
		count(s, &s->st.manifests_put, 1);
	cm_buf_free(&raw);
	cm_buf_free(&r.body);
	if (rc < 0)
		cm_error_wrap(err, "manifest %s:%s", repo, ref);
	return rc;
}

/* Blobs, then child manifests, then the root. */
static int push_image(conn *k, const ins_image *im, cm_error *err)
{
	shared *s = k->s;
	char repo[700];
	snprintf(repo, sizeof(repo), "%s%s", s->prefix, im->repo);
	reg_manifest root;
	int rc = ins_bundle_manifest(&root, NULL, s->b, &im->root, err);
	if (rc < 0)
		return rc;
	const reg_desc *kids = root.is_index ? root.items : &im->root;
	size_t nk = root.is_index ? root.n_items : 1;
	for (size_t i = 0; i < nk && rc == 0; i++) {
		reg_manifest man;
		if (!reg_media_type_is_manifest(kids[i].media_type) &&
		    !reg_media_type_is_index(kids[i].media_type))
			continue;
		if ((rc = ins_bundle_manifest(&man, NULL, s->b, &kids[i], err)) < 0)
			break;
		if (!man.is_index)
			rc = push_blob(k, repo, &man.config, err);
		for (size_t j = 0; j < man.n_items && rc == 0 && !man.is_index; j++)
			rc = push_blob(k, repo, &man.items[j], err);
		if (rc == 0 && root.is_index)
			rc = push_manifest(k, repo, &kids[i], kids[i].digest.s, err);
		reg_manifest_free(&man);
	}
	if (rc == 0)
		rc = push_manifest(k, repo, &im->root, im->r.tag[0] ? im->r.tag : im->root.digest.s,
				   err);
	reg_manifest_free(&root);
	if (rc == 0) {
		count(s, &s->st.images, 1);
		ins_say(s->o, INS_SAY_INFO, "pushed %s -> %s/%s%s%s", im->ref, s->host, repo,
			im->r.tag[0] ? ":" : "@", im->r.tag[0] ? im->r.tag : im->root.digest.s);
	}
	return rc;
}

/* Workers take images in order; an image whose blobs another image is
 * uploading right now could race for a mount, so images sharing a
 * repository are never split (they are pushed in bundle order). */
typedef struct work {
	shared *s;
	size_t next;
	int failed;
	cm_error err;
	pthread_mutex_t mu;
} work;

static void *worker(void *arg)
{
	work *w = arg;
	conn k = {w->s, curl_easy_init()};
	if (!k.c) {
		pthread_mutex_lock(&w->mu);
		if (!w->failed)
			cm_error_set(&w->err, CM_ENOMEM, "curl_easy_init failed");
		w->failed = 1;
		pthread_mutex_unlock(&w->mu);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&w->mu);
		size_t i = w->next++;
		int stop = w->failed || i >= w->s->b->n_images;
		pthread_mutex_unlock(&w->mu);
		if (stop)
			break;
		cm_error e = {0, ""};
		if (push_image(&k, &w->s->b->images[i], &e) < 0) {
			pthread_mutex_lock(&w->mu);
			if (!w->failed) {
				w->err = e;
				cm_error_wrap(&w->err, "image %s", w->s->b->images[i].ref);
			}
			w->failed = 1;
			pthread_mutex_unlock(&w->mu);
		}
	}
	curl_easy_cleanup(k.c);
	return NULL;
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
	int rc = 0;
	/* HOST[:PORT][/PREFIX] */
	const char *to = o->push_to;
	int plain = o->push_insecure;
	if (strncmp(to, "https://", 8) == 0)
		to += 8;
	else if (strncmp(to, "http://", 7) == 0) {
		to += 7;
		plain = 1;
	}
	snprintf(s->host, sizeof(s->host), "%.*s", (int)strcspn(to, "/"), to);
	const char *slash = strchr(to, '/');
	if (slash && slash[1]) {
		snprintf(s->prefix, sizeof(s->prefix), "%s", slash + 1);
		size_t l = strlen(s->prefix);
		while (l && s->prefix[l - 1] == '/')
			s->prefix[--l] = '\0';
		if (l)
			snprintf(s->prefix + l, sizeof(s->prefix) - l, "/");
	}
	snprintf(s->base, sizeof(s->base), "%s://%s", plain ? "http" : "https", s->host);
	char src_desc[512] = "";
	cm_error ae = {0, ""};
	int found = reg_auth_lookup(s->user, sizeof(s->user), s->secret, sizeof(s->secret),
				    src_desc, sizeof(src_desc), s->host, &ae);
	s->have_creds = found == 1;
	ins_say(o, INS_SAY_INFO, "push to %s%s%s: credentials %s", s->base, s->prefix[0] ? "/" : "",
		s->prefix,
		s->have_creds ? src_desc
		: found < 0   ? ae.msg
			      : "none (anonymous)");
	if (o->dry_run) {
		for (size_t i = 0; i < b->n_images; i++)
			ins_say(o, INS_SAY_INFO, "would push %s -> %s/%s%s", b->images[i].ref,
				s->host, s->prefix, b->images[i].repo);
		st->images = 0;
		goto out;
	}
	/* ping /v2/ to learn the auth scheme */
	conn k = {s, curl_easy_init()};
	resp r;
	memset(&r, 0, sizeof(r));
	char url[700];
	snprintf(url, sizeof(url), "%s/v2/", s->base);
	rc = k.c ? request(&k, &r, "GET", url, "registry:catalog:*", NULL, NULL, 0, NULL, err)
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
	if (rc < 0) {
		cm_error_wrap(err, "registry %s", s->host);
		goto out;
	}
	/* images in parallel */
	work w;
	memset(&w, 0, sizeof(w));
	w.s = s;
	pthread_mutex_init(&w.mu, NULL);
	int jobs = o->jobs > 0 ? o->jobs : 4;
	if ((size_t)jobs > b->n_images)
		jobs = (int)(b->n_images ? b->n_images : 1);
	pthread_t th[64];
	int started = 0;
	for (int i = 0; i < jobs && i < 64; i++)
		if (pthread_create(&th[i], NULL, worker, &w) == 0)
			started++;
	if (started == 0)
		worker(&w);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&w.mu);
	if (w.failed) {
		rc = w.err.code ? w.err.code : CM_EFAIL;
		cm_error_set(err, rc, "%s", w.err.msg);
	}
	*st = s->st;
out:
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->where);
	memset(s->secret, 0, sizeof(s->secret));
	free(s);
	return rc;
}
