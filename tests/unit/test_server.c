/* reg_server: Range parsing, and the HTTP server over a mock backend (a temp
 * file holding a "manifest" and two "blobs"), in both connection modes,
 * including the wait for a blob that is still being verified. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reg_server.h"
#include "reg_tls.h"
#include "tu.h"

static void t_range(void)
{
	uint64_t a = 0, b = 0;
	TU_CHECK(reg_server_parse_range(NULL, 100, &a, &b) == 0);
	TU_CHECK(reg_server_parse_range("bytes=0-9", 100, &a, &b) == 1 && a == 0 && b == 9);
	TU_CHECK(reg_server_parse_range("bytes=90-", 100, &a, &b) == 1 && a == 90 && b == 99);
	TU_CHECK(reg_server_parse_range("bytes=90-1000", 100, &a, &b) == 1 && b == 99);
	TU_CHECK(reg_server_parse_range("bytes=-10", 100, &a, &b) == 1 && a == 90 && b == 99);
	TU_CHECK(reg_server_parse_range("bytes=-1000", 100, &a, &b) == 1 && a == 0 && b == 99);
	TU_CHECK(reg_server_parse_range("bytes=100-", 100, &a, &b) == -1);
	TU_CHECK(reg_server_parse_range("bytes=10-5", 100, &a, &b) == -1);
	TU_CHECK(reg_server_parse_range("bytes=-0", 100, &a, &b) == -1);
	TU_CHECK(reg_server_parse_range("bytes=x-5", 100, &a, &b) == -1);
	TU_CHECK(reg_server_parse_range("bytes=0-0", 0, &a, &b) == -1);
	TU_CHECK(reg_server_parse_range("bytes=99999999999999999999-", 100, &a, &b) == -1);
	TU_CHECK(reg_server_parse_range("bytes=0-1,5-6", 100, &a, &b) == 0); /* all of it */
	TU_CHECK(reg_server_parse_range("items=0-1", 100, &a, &b) == 0);
	/* RFC 9110 14.1.2: an end past the blob is clamped, not 416 */
	TU_CHECK(reg_server_parse_range("bytes=0-999999", 10, &a, &b) == 1 && a == 0 && b == 9);
	TU_CHECK(reg_server_parse_range("bytes=9-10", 10, &a, &b) == 1 && a == 9 && b == 9);
	TU_CHECK(reg_server_parse_range("bytes=0-18446744073709551615", 10, &a, &b) == 1 &&
		 a == 0 && b == 9);
	TU_CHECK(reg_server_parse_range("bytes=3-99999999999999999999999", 10, &a, &b) == 1 &&
		 a == 3 && b == 9);
	TU_CHECK(reg_server_parse_range("bytes=-99999999999999999999999", 10, &a, &b) == 1 &&
		 a == 0 && b == 9);
	/* a first byte past the end stays 416, however the end reads */
	TU_CHECK(reg_server_parse_range("bytes=10-999999", 10, &a, &b) == -1);
	TU_CHECK(reg_server_parse_range("bytes=18446744073709551615-", 10, &a, &b) == -1);
	TU_CHECK(reg_server_parse_range("bytes=0-999999", 0, &a, &b) == -1);
	TU_CHECK(reg_server_parse_range("bytes=0-9x", 10, &a, &b) == -1);
}

static void t_is_ip(void)
{
	TU_CHECK(reg_tls_is_ip("127.0.0.1"));
	TU_CHECK(reg_tls_is_ip("::1"));
	TU_CHECK(!reg_tls_is_ip("localhost"));
	TU_CHECK(!reg_tls_is_ip("1.2.3"));
}

/* ---- a mock backend --------------------------------------------------- */

#define MANIFEST "{\"schemaVersion\":2}"
#define BLOB_OK "hello blob"
#define BLOB_BAD "tampered"

typedef struct mock {
	int fd;
	reg_digest dm, d1, d2;
	int pending; /* blob 1: PENDING until a helper thread wakes the waiter */
	pthread_mutex_t mu;
} mock;

static int m_has_repo(void *ctx, const char *repo)
{
	(void)ctx;
	return strcmp(repo, "docker.io/library/x") == 0;
}

static int m_manifest(void *ctx, const char *repo, const char *ref, reg_srv_obj *out)
{
	mock *m = ctx;
	if (!m_has_repo(ctx, repo) || (strcmp(ref, "1") != 0 && strcmp(ref, m->dm.s) != 0))
		return 0;
	out->id = 0;
	out->offset = 0;
	out->size = strlen(MANIFEST);
	out->digest = m->dm;
	out->media_type = "application/vnd.oci.image.manifest.v1+json";
	return 1;
}

static int m_blob(void *ctx, const char *repo, const reg_digest *d, reg_srv_obj *out)
{
	mock *m = ctx;
	if (!m_has_repo(ctx, repo))
		return 0;
	memset(out, 0, sizeof(*out));
	if (reg_digest_equal(d, &m->d1)) {
		out->id = 1;
		out->offset = strlen(MANIFEST);
		out->size = strlen(BLOB_OK);
	} else if (reg_digest_equal(d, &m->d2)) {
		out->id = 2;
		out->offset = strlen(MANIFEST) + strlen(BLOB_OK);
		out->size = strlen(BLOB_BAD);
	} else {
		return 0;
	}
	out->digest = *d;
	return 1;
}

static const char *tags[] = {"1", "2", "3"};
static size_t m_tags(void *ctx, const char *repo, const char *const **out)
{
	*out = tags;
	return m_has_repo(ctx, repo) ? 3 : 0;
}

static const char *repos[] = {"docker.io/library/x"};
static size_t m_repos(void *ctx, const char *const **out)
{
	(void)ctx;
	*out = repos;
	return 1;
}

typedef struct waker {
	void (*wake)(void *);
	void *arg;
	mock *m;
} waker;

static void *wake_later(void *p)
{
	waker *w = p;
	usleep(100 * 1000);
	pthread_mutex_lock(&w->m->mu);
	w->m->pending = 0;
	pthread_mutex_unlock(&w->m->mu);
	w->wake(w->arg);
	free(w);
	return NULL;
}

static int m_check(void *ctx, uint32_t id, void (*wake)(void *), void *arg)
{
	mock *m = ctx;
	if (id == 2)
		return REG_SRV_BAD;
	if (id != 1)
		return REG_SRV_READY;
	pthread_mutex_lock(&m->mu);
	int p = m->pending;
	pthread_mutex_unlock(&m->mu);
	if (!p)
		return REG_SRV_READY;
	if (wake) {
		waker *w = malloc(sizeof(*w));
		w->wake = wake;
		w->arg = arg;
		w->m = m;
		pthread_t t;
		pthread_create(&t, NULL, wake_later, w);
		pthread_detach(t);
	}
	return REG_SRV_PENDING;
}

/* A bundle in parts, mocked: objects split at byte SPLIT (inside blob 1)
 * into two pieces; map (when set) hands out a copy of the range's bytes
 * and counts what it handed out and what came back. */
#define SPLIT 24

typedef struct split_mock {
	mock *m;
	int map_mode; /* 0: no map; 1: map; 2: map that fails */
	int maps, unmaps;
	pthread_mutex_t mu;
} split_mock;
static split_mock g_split;

static size_t m_segs(void *ctx, uint64_t off, uint64_t len, reg_srv_seg *out, size_t max)
{
	mock *m = ctx;
	size_t n = 0;
	if (off < SPLIT && n < max) {
		out[n].fd = m->fd;
		out[n].off = off;
		out[n].len = off + len <= SPLIT ? len : SPLIT - off;
		n++;
	}
	if (off + len > SPLIT) {
		if (n < max) {
			out[n].fd = m->fd;
			out[n].off = off > SPLIT ? off : SPLIT;
			out[n].len = off + len - out[n].off;
		}
		n++;
	}
	return n;
}

static int m_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	mock *m = ctx;
	return pread(m->fd, buf, n, (off_t)off) == (ssize_t)n ? 0 : -1;
}

static void *m_map(void *ctx, uint64_t off, uint64_t len, reg_srv_iov *out, size_t max, size_t *n)
{
	*n = 0;
	if (g_split.map_mode == 2 || max < 2)
		return NULL;
	char *b = malloc(len ? len : 1);
	if (!b || m_read(ctx, off, b, len) < 0) {
		free(b);
		return NULL;
	}
	size_t first = off < SPLIT && off + len > SPLIT ? SPLIT - off : len;
	out[0].p = b;
	out[0].len = first;
	*n = 1;
	if (first < len) {
		out[1].p = b + first;
		out[1].len = len - first;
		*n = 2;
	}
	pthread_mutex_lock(&g_split.mu);
	g_split.maps++;
	pthread_mutex_unlock(&g_split.mu);
	return b;
}

static void m_unmap(void *handle)
{
	free(handle);
	pthread_mutex_lock(&g_split.mu);
	g_split.unmaps++;
	pthread_mutex_unlock(&g_split.mu);
}

/* ---- a tiny client ---------------------------------------------------- */

typedef struct resp {
	long code;
	char body[4096];
	size_t len;
	char hdrs[4096];
	size_t hlen;
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	resp *r = ud;
	size_t k = sz * n;
	size_t room = sizeof(r->body) - 1 - r->len;
	memcpy(r->body + r->len, p, k < room ? k : room);
	r->len += k < room ? k : room;
	r->body[r->len] = '\0';
	return k;
}

static size_t on_hdr(char *p, size_t sz, size_t n, void *ud)
{
	resp *r = ud;
	size_t k = sz * n;
	size_t room = sizeof(r->hdrs) - 1 - r->hlen;
	memcpy(r->hdrs + r->hlen, p, k < room ? k : room);
	r->hlen += k < room ? k : room;
	r->hdrs[r->hlen] = '\0';
	return k;
}

static void get(resp *r, const char *base, const char *path, const char *method, const char *range)
{
	char url[1024];
	snprintf(url, sizeof(url), "%s%s", base, path);
	memset(r, 0, sizeof(*r));
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_hdr);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	if (method && strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (range)
		curl_easy_setopt(c, CURLOPT_RANGE, range);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
	curl_easy_cleanup(c);
}

static void run_server(unsigned threads, int split)
{
	char path[] = "/tmp/ferry-test-server.XXXXXX";
	mock m;
	memset(&m, 0, sizeof(m));
	pthread_mutex_init(&m.mu, NULL);
	m.fd = mkstemp(path);
	TU_CHECK(m.fd >= 0);
	unlink(path);
	const char all[] = MANIFEST BLOB_OK BLOB_BAD;
	TU_CHECK(write(m.fd, all, sizeof(all) - 1) == (ssize_t)(sizeof(all) - 1));
	reg_digest_buf(&m.dm, MANIFEST, strlen(MANIFEST), NULL);
	reg_digest_buf(&m.d1, BLOB_OK, strlen(BLOB_OK), NULL);
	reg_digest_buf(&m.d2, BLOB_BAD, strlen(BLOB_BAD), NULL);
	m.pending = 1;
	reg_srv_backend be = {&m,      m.fd, m_has_repo, m_manifest, m_blob, m_tags, m_repos,
			      m_check, NULL, NULL,	 NULL,	     NULL,   NULL};
	if (split) { /* objects in two pieces: read, mapped, or a map that fails */
		be.segs = m_segs;
		be.read = m_read;
		g_split.map_mode = split - 1;
		g_split.maps = g_split.unmaps = 0;
		pthread_mutex_init(&g_split.mu, NULL);
		if (split > 1) {
			be.map = m_map;
			be.unmap = m_unmap;
		}
	}
	reg_server_opts o;
	memset(&o, 0, sizeof(o));
	o.listen = "127.0.0.1:0";
	o.threads = threads;
	o.timeout_s = 5;
	o.access_log_fd = -1;
	o.be = &be;
	reg_server *s = NULL;
	cm_error err;
	TU_CHECK(reg_server_start(&s, &o, &err) == 0);
	if (!s) {
		close(m.fd);
		return;
	}
	char base[128], p[512];
	snprintf(base, sizeof(base), "http://%s", reg_server_addr(s));
	resp r;

	get(&r, base, "/v2/", NULL, NULL);
	TU_CHECK(r.code == 200 && strcmp(r.body, "{}") == 0);
	TU_CHECK(strstr(r.hdrs, "Docker-Distribution-API-Version: registry/2.0") != NULL);

	get(&r, base, "/v2/docker.io/library/x/manifests/1", NULL, NULL);
	TU_CHECK(r.code == 200 && strcmp(r.body, MANIFEST) == 0);
	TU_CHECK(strstr(r.hdrs, "Content-Type: application/vnd.oci.image.manifest.v1+json") !=
		 NULL);
	TU_CHECK(strstr(r.hdrs, m.dm.s) != NULL);

	/* ns: the bare path with the upstream host */
	get(&r, base, "/v2/library/x/manifests/1?ns=docker.io", NULL, NULL);
	TU_CHECK(r.code == 200);
	get(&r, base, "/v2/library/x/manifests/1", NULL, NULL);
	TU_CHECK(r.code == 404 && strstr(r.body, "NAME_UNKNOWN") != NULL);

	/* blob 1 is "being verified": the request waits, then gets the bytes */
	snprintf(p, sizeof(p), "/v2/docker.io/library/x/blobs/%s", m.d1.s);
	get(&r, base, p, NULL, NULL);
	TU_CHECK(r.code == 200 && strcmp(r.body, BLOB_OK) == 0);
	get(&r, base, p, NULL, "6-9");
	TU_CHECK(r.code == 206 && strcmp(r.body, "blob") == 0);
	TU_CHECK(strstr(r.hdrs, "Content-Range: bytes 6-9/10") != NULL);
	get(&r, base, p, NULL, "10-");
	TU_CHECK(r.code == 416);
	TU_CHECK(strstr(r.hdrs, "Content-Range: bytes */10") != NULL);
	/* an end past the blob is clamped to its last byte (RFC 9110 14.1.2) */
	get(&r, base, p, NULL, "0-999999");
	TU_CHECK(r.code == 206 && strcmp(r.body, BLOB_OK) == 0);
	TU_CHECK(strstr(r.hdrs, "Content-Range: bytes 0-9/10") != NULL);
	get(&r, base, p, NULL, "6-10");
	TU_CHECK(r.code == 206 && strcmp(r.body, "blob") == 0);
	TU_CHECK(strstr(r.hdrs, "Content-Range: bytes 6-9/10") != NULL);
	get(&r, base, p, "HEAD", NULL);
	TU_CHECK(r.code == 200 && r.len == 0 && strstr(r.hdrs, "Content-Length: 10") != NULL);

	/* blob 2 failed verification: an error, never its bytes */
	snprintf(p, sizeof(p), "/v2/docker.io/library/x/blobs/%s", m.d2.s);
	get(&r, base, p, NULL, NULL);
	TU_CHECK(r.code == 500 && strstr(r.body, "DIGEST_INVALID") != NULL);
	TU_CHECK(strstr(r.body, BLOB_BAD) == NULL);

	get(&r, base, "/v2/docker.io/library/x/tags/list?n=2", NULL, NULL);
	TU_CHECK(r.code == 200 && strstr(r.body, "[\"1\",\"2\"]") != NULL);
	TU_CHECK(strstr(r.hdrs, "Link: </v2/docker.io/library/x/tags/list?n=2&last=2>") != NULL);
	get(&r, base, "/v2/docker.io/library/x/tags/list?last=2", NULL, NULL);
	TU_CHECK(strstr(r.body, "[\"3\"]") != NULL);
	get(&r, base, "/v2/_catalog", NULL, NULL);
	TU_CHECK(r.code == 200 && strstr(r.body, "docker.io/library/x") != NULL);

	get(&r, base, "/v2/docker.io/library/x/manifests/1", "DELETE", NULL);
	TU_CHECK(r.code == 405 && strstr(r.body, "UNSUPPORTED") != NULL);
	get(&r, base, "/v2/docker.io/library/x/blobs/sha256:../../etc", NULL, NULL);
	TU_CHECK(r.code >= 400 && r.code < 500);
	get(&r, base, "/v2/a/../../b/manifests/1", NULL, NULL); /* curl squashes ../ */
	TU_CHECK(r.code >= 400 && r.code < 500);

	if (split) {
		/* a Range inside the second piece, and one across the split */
		snprintf(p, sizeof(p), "/v2/docker.io/library/x/blobs/%s", m.d1.s);
		get(&r, base, p, NULL, "6-9");
		TU_CHECK(r.code == 206 && strcmp(r.body, "blob") == 0);
		get(&r, base, p, NULL, "3-7");
		TU_CHECK(r.code == 206 && strcmp(r.body, "lo bl") == 0);
	}

	TU_CHECK(reg_server_drain(s, 5) == 0);
	reg_server_free(s);
	close(m.fd);
	pthread_mutex_destroy(&m.mu);
	if (split) {
		/* every body across the split went from memory when it could, and
		 * every mapping came back when its response was done */
		TU_CHECK_MSG(split == 2 ? g_split.maps == 4 : g_split.maps == 0,
			     "split %d: %d maps", split, g_split.maps);
		TU_CHECK(g_split.unmaps == g_split.maps);
		pthread_mutex_destroy(&g_split.mu);
	}
}

static void t_server_thread_per_connection(void)
{
	run_server(0, 0);
}

static void t_server_epoll_pool(void)
{
	run_server(2, 0);
}

/* a bundle in parts: a body across two pieces is read through the
 * backend's buffer, sent from the backend's memory (an iovec response), or
 * read when the mapping fails; the same bytes every time */
static void t_server_parts(void)
{
	for (int split = 1; split <= 3; split++) {
		run_server(0, split);
		run_server(2, split);
	}
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	TU_RUN(t_range);
	TU_RUN(t_is_ip);
	TU_RUN(t_server_thread_per_connection);
	TU_RUN(t_server_epoll_pool);
	TU_RUN(t_server_parts);
	curl_global_cleanup();
	TU_EXIT();
}
