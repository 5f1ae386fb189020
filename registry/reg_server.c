#include "reg_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "reg_ref.h"
#include "reg_tlsterm.h"

#define API_VERSION "registry/2.0"
#define CT_JSON "application/json"
#define CT_OCTET "application/octet-stream"
#define CT_INDEX "application/vnd.oci.image.index.v1+json"
#define PAGE_MAX 100000
#define LOG_URL_MAX 512

struct reg_server {
	struct MHD_Daemon *d;
	int sndbuf; /* SO_SNDBUF for each connection; 0: the kernel's autotuning */
	int tpc;    /* a thread per connection (else an epoll pool) */
	reg_srv_backend be;
	char addr[96];
	int stopping;
	unsigned long in_flight;
	int log_fd;
	void (*log)(void *ctx, const char *msg);
	void *log_ctx;
	char *cert, *key;
	reg_tlsterm *term; /* TLS through OpenSSL in front of plain libmicrohttpd */
	int mhd_tls;	   /* TLS inside libmicrohttpd (GnuTLS) */
	int via_term;	   /* connections are socketpairs from term */
};

typedef struct req {
	reg_server *s;
	struct MHD_Connection *c;
	struct timespec t0;
	char method[12];
	char url[LOG_URL_MAX + 1];
	int status;
	uint64_t bytes;
	int queued;
	int woken;
	pthread_mutex_t mu; /* thread-per-connection: waiting for a hash */
	pthread_cond_t cv;
} req;

/* ---- small helpers ---------------------------------------------------- */

static void slog(reg_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void slog(reg_server *s, const char *fmt, ...)
{
	if (!s->log)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->log(s->log_ctx, msg);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	reg_server *s = cls;
	if (!s->log)
		return;
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	/* TCP options do not apply to the socketpair of a connection whose TLS
	 * OpenSSL terminates (nor does Nagle's delay they warn about) */
	if (s->via_term && (strncmp(msg, "Setting TCP_", 12) == 0 ||
			    strncmp(msg, "Failed to push the data", 23) == 0))
		return;
	s->log(s->log_ctx, msg);
}

/* Printable ASCII copy of untrusted text, for messages and the log. */
static void clean(char *out, size_t n, const char *in)
{
	size_t j = 0;
	for (size_t i = 0; in && in[i] && j + 1 < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		out[j++] = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '?';
	}
	if (n)
		out[j] = '\0';
}

static int is_head(const req *r)
{
	return strcmp(r->method, "HEAD") == 0;
}

static enum MHD_Result queue(req *r, unsigned status, struct MHD_Response *resp, uint64_t len)
{
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Docker-Distribution-API-Version", API_VERSION);
	if (__atomic_load_n(&r->s->stopping, __ATOMIC_RELAXED))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	r->status = (int)status;
	r->bytes = is_head(r) ? 0 : len;
	r->queued = 1;
	enum MHD_Result ret = MHD_queue_response(r->c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* A range over several files (a bundle in parts): read into the
 * response a buffer at a time through the backend. */
typedef struct span {
	const reg_srv_backend *be;
	uint64_t off, len;
} span;

#define SPAN_BLOCK (256u << 10)

static ssize_t span_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	span *sp = cls;
	if (pos >= sp->len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	size_t n = sp->len - pos < max ? (size_t)(sp->len - pos) : max;
	if (sp->be->read(sp->be->ctx, sp->off + pos, buf, n) < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return (ssize_t)n;
}

static struct MHD_Response *span_response(reg_server *s, uint64_t off, uint64_t len)
{
	if (!s->be.read)
		return NULL;
	span *sp = malloc(sizeof(*sp));
	if (!sp)
		return NULL;
	sp->be = &s->be;
	sp->off = off;
	sp->len = len;
	struct MHD_Response *resp =
	    MHD_create_response_from_callback(len, SPAN_BLOCK, span_read, sp, free);
	if (!resp)
		free(sp);
	return resp;
}

/* The same range as memory from the backend (a mapping of each piece):
 * sent from it with writev/sendmsg, released when the response is. */
typedef struct iov_hold {
	void (*unmap)(void *handle);
	void *handle;
} iov_hold;

static void iov_free(void *cls)
{
	iov_hold *h = cls;
	h->unmap(h->handle);
	free(h);
}

#define IOV_MAX_PIECES 8

static struct MHD_Response *iov_response(reg_server *s, uint64_t off, uint64_t len)
{
	/* Not under libmicrohttpd's own TLS: GnuTLS reads the mapping in this
	 * process, and a file that shrinks under it (a truncated part, a
	 * pulled stick) raises SIGBUS there; sendmsg, which reads it in the
	 * kernel, gets EFAULT instead and only that connection ends
	 * (tests/e2e/serve_parts_truncated.sh). */
	if (!s->be.map || !s->be.unmap || s->mhd_tls)
		return NULL;
	reg_srv_iov v[IOV_MAX_PIECES];
	size_t n = 0;
	iov_hold *h = malloc(sizeof(*h));
	if (!h)
		return NULL;
	h->unmap = s->be.unmap;
	h->handle = s->be.map(s->be.ctx, off, len, v, IOV_MAX_PIECES, &n);
	if (!h->handle || n == 0 || n > IOV_MAX_PIECES) {
		if (h->handle)
			h->unmap(h->handle);
		free(h);
		return NULL;
	}
	struct MHD_IoVec iov[IOV_MAX_PIECES];
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = v[i].p;
		iov[i].iov_len = v[i].len;
		sum += v[i].len;
	}
	struct MHD_Response *resp =
	    sum == len ? MHD_create_response_from_iovec(iov, (unsigned)n, iov_free, h) : NULL;
	if (!resp)
		iov_free(h);
	return resp;
}

static struct MHD_Response *buf_response(const char *body, size_t len, const char *ct)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (resp && ct)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ct);
	return resp;
}

/* j (taken; NULL: none) as a compact JSON response of type ct, *len its
 * bytes; with digest, its Docker-Content-Digest too. */
static struct MHD_Response *json_response(json_t *j, const char *ct, int digest, size_t *len)
{
	char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!txt)
		return NULL;
	*len = strlen(txt);
	struct MHD_Response *resp = buf_response(txt, *len, ct);
	reg_digest id;
	if (resp && digest && reg_digest_buf(&id, txt, *len, NULL) == 0)
		MHD_add_response_header(resp, "Docker-Content-Digest", id.s);
	free(txt);
	return resp;
}

static enum MHD_Result send_json(req *r, unsigned status, json_t *j, const char *ct)
{
	size_t len = 0;
	struct MHD_Response *resp = json_response(j, ct ? ct : CT_JSON, 0, &len);
	return queue(r, status, resp, len);
}

static enum MHD_Result send_error(req *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_error(req *r, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512], safe[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clean(safe, sizeof(safe), msg);
	json_t *j =
	    json_pack("{s:[{s:s,s:s,s:{}}]}", "errors", "code", code, "message", safe, "detail");
	size_t len = 0;
	struct MHD_Response *resp = json_response(j, CT_JSON, 0, &len);
	if (resp && status == MHD_HTTP_METHOD_NOT_ALLOWED) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
		/* the body of a refused write is never read: end the connection */
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	}
	return queue(r, status, resp, len);
}

/* ---- ranges ----------------------------------------------------------- */

/* Digits only; a value past 2^64-1 saturates (a position that large is
 * past any blob, which the caller handles as RFC 9110 says). */
static int parse_u64(const char *s, const char *end, uint64_t *out)
{
	if (s == end || end - s > 4096)
		return -1;
	uint64_t v = 0;
	for (const char *p = s; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		uint64_t d = (uint64_t)(*p - '0');
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*out = v;
	return 0;
}

int reg_server_parse_range(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
	if (!h)
		return 0;
	while (*h == ' ')
		h++;
	if (strncmp(h, "bytes=", 6) != 0)
		return 0; /* another unit: ignore the header */
	h += 6;
	while (*h == ' ')
		h++;
	if (strchr(h, ','))
		return 0; /* several ranges: answer with everything */
	const char *dash = strchr(h, '-');
	if (!dash)
		return -1;
	const char *end = h + strlen(h);
	while (end > dash + 1 && end[-1] == ' ')
		end--;
	uint64_t a, b;
	if (dash == h) { /* suffix: the last b bytes */
		if (parse_u64(dash + 1, end, &b) < 0 || b == 0 || size == 0)
			return -1;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return 1;
	}
	if (parse_u64(h, dash, &a) < 0 || a >= size)
		return -1;
	if (dash + 1 == end)
		b = size - 1;
	else if (parse_u64(dash + 1, end, &b) < 0 || b < a)
		return -1;
	/* RFC 9110 14.1.2: a last position past the end means the last byte;
	 * only a first position past the end is unsatisfiable (above). */
	if (b >= size)
		b = size - 1;
	*first = a;
	*last = b;
	return 1;
}

/* ---- objects ---------------------------------------------------------- */

/* epoll pool: the connection was suspended; resume it */
static void wake_resume(void *arg)
{
	req *r = arg;
	r->woken = 1;
	MHD_resume_connection(r->c);
}

/* thread per connection: the handler waits on its own condition */
static void wake_signal(void *arg)
{
	req *r = arg;
	pthread_mutex_lock(&r->mu);
	r->woken = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static enum MHD_Result serve_object(req *r, const reg_srv_obj *o, int manifest)
{
	reg_server *s = r->s;
	char etag[REG_DIGEST_STRLEN + 3];
	snprintf(etag, sizeof(etag), "\"%s\"", o->digest.s);
	const char *inm =
	    MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (inm && (strcmp(inm, etag) == 0 || strcmp(inm, o->digest.s) == 0)) {
		struct MHD_Response *resp = buf_response("", 0, NULL);
		if (resp) {
			MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
			MHD_add_response_header(resp, "Docker-Content-Digest", o->digest.s);
		}
		return queue(r, MHD_HTTP_NOT_MODIFIED, resp, 0);
	}
	if (s->be.check) {
		int st = s->be.check(s->be.ctx, o->id, NULL, NULL);
		if (st == REG_SRV_PENDING && !is_head(r) && s->tpc && !r->woken) {
			/* Hash it on a worker; only this connection's thread waits. */
			st = s->be.check(s->be.ctx, o->id, wake_signal, r);
			if (st == REG_SRV_PENDING) {
				pthread_mutex_lock(&r->mu);
				while (!r->woken)
					pthread_cond_wait(&r->cv, &r->mu);
				pthread_mutex_unlock(&r->mu);
				st = s->be.check(s->be.ctx, o->id, NULL, NULL);
			}
			r->woken = 1;
		}
		if (st == REG_SRV_UNAVAILABLE || (st == REG_SRV_PENDING && !is_head(r))) {
			if (r->woken || st == REG_SRV_UNAVAILABLE)
				return send_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE",
						  "%s could not be verified now; try again",
						  o->digest.s);
			/* Hash it on a worker; this connection is suspended meanwhile
			 * and the pool thread serves the others. */
			MHD_suspend_connection(r->c);
			st = s->be.check(s->be.ctx, o->id, wake_resume, r);
			if (st != REG_SRV_PENDING) {
				r->woken = 1;
				MHD_resume_connection(r->c);
			}
			return MHD_YES;
		}
		if (st == REG_SRV_BAD)
			return send_error(
			    r, MHD_HTTP_INTERNAL_SERVER_ERROR, "DIGEST_INVALID",
			    "%s %s does not match its digest in the signed bundle; it is "
			    "not served",
			    manifest ? "manifest" : "blob", o->digest.s);
	}
	uint64_t first = 0, len = o->size;
	int ranged = 0;
	const char *rh = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
	uint64_t a, b;
	int pr = reg_server_parse_range(rh, o->size, &a, &b);
	if (pr < 0) {
		char cr[64];
		snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)o->size);
		char msg[] =
		    "{\"errors\":[{\"code\":\"RANGE_INVALID\",\"message\":\"requested range "
		    "not satisfiable\",\"detail\":{}}]}";
		struct MHD_Response *resp = buf_response(msg, sizeof(msg) - 1, CT_JSON);
		if (resp)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
		return queue(r, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp, sizeof(msg) - 1);
	}
	if (pr == 1) {
		ranged = 1;
		first = a;
		len = b - a + 1;
	}
	/* An empty body needs no file; anything else (a HEAD too, so that
	 * libmicrohttpd sends the right Content-Length) is a range of the file
	 * behind its own descriptor, which the response closes. */
	struct MHD_Response *resp = len == 0 ? buf_response("", 0, NULL) : NULL;
	int src_fd = s->be.fd;
	uint64_t src_off = o->offset + first;
	if (!resp && s->be.segs) {
		/* a bundle in parts: one part is a file response like any other;
		 * a range over two parts goes from memory (the backend maps each
		 * piece; writev), else it is read into the response */
		reg_srv_seg seg[1];
		size_t nseg = s->be.segs(s->be.ctx, o->offset + first, len, seg, 1);
		if (nseg == 0)
			return send_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "UNKNOWN",
					  "%s lies outside the bundle", o->digest.s);
		if (nseg == 1) {
			src_fd = seg[0].fd;
			src_off = seg[0].off;
		} else if (!(resp = iov_response(s, o->offset + first, len)) &&
			   !(resp = span_response(s, o->offset + first, len))) {
			return MHD_NO;
		}
	}
	if (!resp) {
		int fd = fcntl(src_fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return send_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE",
					  "out of file descriptors");
		resp = MHD_create_response_from_fd_at_offset64(len, fd, src_off);
		if (!resp) {
			close(fd);
			return MHD_NO;
		}
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				manifest && o->media_type ? o->media_type : CT_OCTET);
	MHD_add_response_header(resp, "Docker-Content-Digest", o->digest.s);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	if (ranged) {
		char cr[96];
		snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)first,
			 (unsigned long long)(first + len - 1), (unsigned long long)o->size);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
	}
	return queue(r, ranged ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK, resp, len);
}

/* ---- lists ------------------------------------------------------------ */

/* n and last for tags/list and _catalog: 0 ok, -1 bad n. */
static int page_args(req *r, long *n, const char **last)
{
	const char *ns = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "n");
	*last = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "last");
	*n = -1;
	if (ns) {
		uint64_t v;
		if (parse_u64(ns, ns + strlen(ns), &v) < 0 || v > PAGE_MAX)
			return -1;
		*n = (long)v;
	}
	return 0;
}

/* The slice [*from, *to) of a sorted list after last, at most n long. */
static void page(const char *const *list, size_t count, long n, const char *last, size_t *from,
		 size_t *to)
{
	size_t lo = 0, hi = count;
	if (last && *last) {
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (strcmp(list[mid], last) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	*from = lo;
	*to = n < 0 || count - lo < (size_t)n ? count : lo + (size_t)n;
}

static enum MHD_Result send_list(req *r, const char *key, const char *name, const char *ns,
				 const char *const *list, size_t count, const char *link_path)
{
	long n;
	const char *last;
	if (page_args(r, &n, &last) < 0)
		return send_error(r, MHD_HTTP_BAD_REQUEST, "PAGINATION_NUMBER_INVALID",
				  "n must be a number from 0 to %d", PAGE_MAX);
	size_t from, to;
	page(list, count, n, last, &from, &to);
	json_t *arr = json_array();
	for (size_t i = from; i < to; i++)
		json_array_append_new(arr, json_string(list[i]));
	json_t *j =
	    name ? json_pack("{s:s,s:o}", "name", name, key, arr) : json_pack("{s:o}", key, arr);
	size_t len = 0;
	struct MHD_Response *resp = json_response(j, CT_JSON, 0, &len);
	if (resp && n > 0 && to < count) {
		char link[1024];
		int l = snprintf(link, sizeof(link), "<%s?n=%ld&last=%s%s%s>; rel=\"next\"",
				 link_path, n, list[to - 1], ns ? "&ns=" : "", ns ? ns : "");
		if (l > 0 && (size_t)l < sizeof(link))
			MHD_add_response_header(resp, "Link", link);
	}
	return queue(r, MHD_HTTP_OK, resp, len);
}

/* ---- routing ---------------------------------------------------------- */

static int valid_ns(const char *ns)
{
	size_t n = strlen(ns);
	if (n == 0 || n > 253 || ns[0] == '.' || ns[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = ns[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '-' || ch == ':'))
			return 0;
	}
	return 1;
}

static int ends_with(const char *s, size_t n, const char *suf)
{
	size_t l = strlen(suf);
	return n >= l && memcmp(s + n - l, suf, l) == 0;
}

/* ---- referrers --------------------------------------------------------- */

#define REFERRER_MANIFEST_MAX ((size_t)4 << 20)

/* The exact bytes of a manifest the backend holds, hashed here against its
 * digest (a lazily verified bundle may not have checked it yet). NULL when
 * unreadable or wrong; the caller frees. */
static char *object_bytes(reg_server *s, const reg_srv_obj *o, size_t *len)
{
	if (o->size == 0 || o->size > REFERRER_MANIFEST_MAX)
		return NULL;
	char *b = malloc((size_t)o->size);
	if (!b)
		return NULL;
	/* through the backend's reader (the bundle reader); none: nothing */
	int ok = s->be.read && s->be.read(s->be.ctx, o->offset, b, (size_t)o->size) >= 0;
	reg_digest got;
	if (!ok || reg_digest_buf(&got, b, (size_t)o->size, NULL) < 0 ||
	    !reg_digest_equal(&got, &o->digest)) {
		free(b);
		return NULL;
	}
	*len = (size_t)o->size;
	return b;
}

/* Add desc to list unless its digest is there already or at filters it out. */
static void referrer_add(json_t *list, json_t *desc, const char *at)
{
	const char *dg = json_string_value(json_object_get(desc, "digest"));
	const char *t = json_string_value(json_object_get(desc, "artifactType"));
	size_t i;
	json_t *v;
	int dup = !dg;
	json_array_foreach(list, i, v) dup |=
	    dg && strcmp(dg, json_string_value(json_object_get(v, "digest"))) == 0;
	if (!dup && (!at || (t && strcmp(t, at) == 0)))
		json_array_append(list, desc);
	json_decref(desc);
}

/* GET /v2/<repo>/referrers/<digest>[?artifactType=T]: an OCI image index of
 * what the bundle holds attached to d: the manifests tagged
 * sha256-<hex>.sig, .att, .sbom (artifactType: the manifest's own, else
 * cosign's application/vnd.dev.cosign.artifact.<kind>.v1+json) and every
 * entry of the OCI 1.1 fallback index tagged sha256-<hex>
 * (docs/supply-chain.md). */
static enum MHD_Result serve_referrers(req *r, const char *repo, const reg_digest *d)
{
	reg_server *s = r->s;
	const char *at = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "artifactType");
	if (at && !at[0])
		at = NULL;
	json_t *list = json_array();
	char base[80];
	int bl = snprintf(base, sizeof(base), "sha256-%.64s", d->s + 7);
	const char *const *tags;
	size_t nt = strncmp(d->s, "sha256:", 7) == 0 ? s->be.tags(s->be.ctx, repo, &tags) : 0;
	for (size_t i = 0; list && i < nt; i++) {
		const char *t = tags[i];
		if (strncmp(t, base, (size_t)bl) != 0)
			continue;
		const char *sfx = t + bl;
		if (sfx[0] && strcmp(sfx, ".sig") && strcmp(sfx, ".att") && strcmp(sfx, ".sbom"))
			continue;
		reg_srv_obj o;
		memset(&o, 0, sizeof(o));
		size_t len = 0;
		char *b = s->be.manifest(s->be.ctx, repo, t, &o) ? object_bytes(s, &o, &len) : NULL;
		json_t *m = b ? json_loadb(b, len, 0, NULL) : NULL;
		free(b);
		if (!json_is_object(m)) {
			json_decref(m);
			continue;
		}
		if (!sfx[0]) { /* the fallback index: its entries as they are */
			size_t k;
			json_t *e;
			json_array_foreach(json_object_get(m, "manifests"), k,
					   e) if (json_is_object(e))
			    referrer_add(list, json_incref(e), at);
		} else {
			const char *mt = json_string_value(json_object_get(m, "mediaType"));
			const char *own = json_string_value(json_object_get(m, "artifactType"));
			char cos[80];
			snprintf(cos, sizeof(cos), "application/vnd.dev.cosign.artifact.%s.v1+json",
				 sfx + 1);
			json_t *desc = json_pack("{s:s,s:s,s:I,s:s}", "mediaType",
						 mt		? mt
						 : o.media_type ? o.media_type
								: "",
						 "digest", o.digest.s, "size", (json_int_t)o.size,
						 "artifactType", own ? own : cos);
			json_t *ann = json_object_get(m, "annotations");
			if (desc && json_is_object(ann))
				json_object_set(desc, "annotations", ann);
			if (desc)
				referrer_add(list, desc, at);
		}
		json_decref(m);
	}
	json_t *j = list ? json_pack("{s:i,s:s,s:o}", "schemaVersion", 2, "mediaType", CT_INDEX,
				     "manifests", list)
			 : NULL;
	size_t len = 0;
	struct MHD_Response *resp = json_response(j, CT_INDEX, 1, &len);
	if (resp && at)
		MHD_add_response_header(resp, "OCI-Filters-Applied", "artifactType");
	return queue(r, MHD_HTTP_OK, resp, len);
}

static enum MHD_Result route(req *r, const char *url)
{
	reg_server *s = r->s;
	const reg_srv_backend *be = &s->be;
	size_t ulen = strlen(url);
	if (ulen > REG_SERVER_URL_MAX)
		return send_error(r, MHD_HTTP_URI_TOO_LONG, "NAME_INVALID",
				  "request path of %zu bytes is longer than %d", ulen,
				  REG_SERVER_URL_MAX);
	if (strncmp(url, "/v2", 3) != 0 || (url[3] != '/' && url[3] != '\0'))
		return send_error(r, MHD_HTTP_NOT_FOUND, "NOT_FOUND", "not a registry API path");
	if (strcmp(r->method, "GET") != 0 && !is_head(r))
		return send_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "UNSUPPORTED",
				  "this registry is read-only (%s is not supported)", r->method);
	const char *rest = url[3] ? url + 4 : url + 3;
	if (*rest == '\0')
		return send_json(r, MHD_HTTP_OK, json_object(), NULL);
	if (strcmp(rest, "_catalog") == 0) {
		const char *const *list;
		size_t n = be->repos(be->ctx, &list);
		return send_list(r, "repositories", NULL, NULL, list, n, "/v2/_catalog");
	}
	char path[REG_SERVER_URL_MAX + 1];
	memcpy(path, rest, strlen(rest) + 1);
	char *slash = strrchr(path, '/');
	if (!slash)
		return send_error(r, MHD_HTTP_NOT_FOUND, "NOT_FOUND", "unknown registry endpoint");
	*slash = '\0';
	const char *ref = slash + 1;
	const char *kind;
	size_t plen = strlen(path);
	if (strcmp(ref, "list") == 0 && ends_with(path, plen, "/tags")) {
		path[plen - 5] = '\0';
		kind = "tags";
	} else {
		char *s2 = strrchr(path, '/');
		if (!s2)
			return send_error(r, MHD_HTTP_NOT_FOUND, "NOT_FOUND",
					  "unknown registry endpoint");
		*s2 = '\0';
		kind = s2 + 1;
	}
	const char *name = path;
	size_t nlen = strlen(name);
	if (strcmp(kind, "uploads") == 0 && ends_with(name, nlen, "/blobs"))
		return send_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "UNSUPPORTED",
				  "this registry is read-only (no uploads)");
	if (strcmp(kind, "manifests") != 0 && strcmp(kind, "blobs") != 0 &&
	    strcmp(kind, "referrers") != 0 && strcmp(kind, "tags") != 0)
		return send_error(r, MHD_HTTP_NOT_FOUND, "NOT_FOUND", "unknown registry endpoint");
	if (nlen == 0 || nlen > REG_SERVER_NAME_MAX || !reg_ref_valid_path(name))
		return send_error(r, MHD_HTTP_BAD_REQUEST, "NAME_INVALID",
				  "invalid repository name (%zu bytes)", nlen);
	const char *ns = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, "ns");
	if (ns && !valid_ns(ns))
		return send_error(r, MHD_HTTP_BAD_REQUEST, "NAME_INVALID", "invalid ns parameter");
	char repo[2 * REG_SERVER_NAME_MAX + 2];
	int found = 0;
	if (ns) {
		int l = snprintf(repo, sizeof(repo), "%s/%s", ns, name);
		found = l > 0 && (size_t)l < sizeof(repo) && be->has_repo(be->ctx, repo);
	}
	if (!found) {
		memcpy(repo, name, nlen + 1);
		found = be->has_repo(be->ctx, repo);
	}
	if (!found)
		return send_error(r, MHD_HTTP_NOT_FOUND, "NAME_UNKNOWN",
				  "repository %s is not in this bundle%s%s", name,
				  ns ? " (ns=" : "", ns ? ns : "");
	if (strcmp(kind, "tags") == 0) {
		const char *const *list;
		size_t n = be->tags(be->ctx, repo, &list);
		char lp[REG_SERVER_NAME_MAX + 32];
		if (snprintf(lp, sizeof(lp), "/v2/%s/tags/list", name) >= (int)sizeof(lp))
			return send_error(r, MHD_HTTP_BAD_REQUEST, "NAME_INVALID",
					  "repository name too long");
		return send_list(r, "tags", name, ns, list, n, lp);
	}
	reg_srv_obj o;
	memset(&o, 0, sizeof(o));
	if (strcmp(kind, "manifests") == 0) {
		reg_digest d;
		if (strchr(ref, ':')) {
			if (reg_digest_parse(&d, ref, NULL) < 0)
				return send_error(r, MHD_HTTP_BAD_REQUEST, "DIGEST_INVALID",
						  "invalid digest (want sha256:<64 hex>)");
		} else if (!reg_ref_valid_tag(ref)) {
			return send_error(r, MHD_HTTP_BAD_REQUEST, "TAG_INVALID", "invalid tag");
		}
		if (!be->manifest(be->ctx, repo, ref, &o))
			return send_error(r, MHD_HTTP_NOT_FOUND, "MANIFEST_UNKNOWN",
					  "manifest %s not found in %s", ref, name);
		return serve_object(r, &o, 1);
	}
	reg_digest d;
	if (reg_digest_parse(&d, ref, NULL) < 0)
		return send_error(r, MHD_HTTP_BAD_REQUEST, "DIGEST_INVALID",
				  "invalid digest (want sha256:<64 hex>)");
	if (strcmp(kind, "referrers") == 0)
		return serve_referrers(r, repo, &d);
	if (!be->blob(be->ctx, repo, &d, &o))
		return send_error(r, MHD_HTTP_NOT_FOUND, "BLOB_UNKNOWN", "blob %s not found in %s",
				  d.s, name);
	return serve_object(r, &o, 0);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	reg_server *s = cls;
	req *r = *con_cls;
	(void)version;
	(void)upload;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->s = s;
		r->c = c;
		pthread_mutex_init(&r->mu, NULL);
		pthread_cond_init(&r->cv, NULL);
		clock_gettime(CLOCK_MONOTONIC, &r->t0);
		clean(r->method, sizeof(r->method), method);
		clean(r->url, sizeof(r->url), url);
		const char *ns = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ns");
		if (ns) {
			size_t l = strlen(r->url);
			char tmp[LOG_URL_MAX + 1];
			clean(tmp, sizeof(tmp), ns);
			snprintf(r->url + l, sizeof(r->url) - l, "?ns=%s", tmp);
		}
		__atomic_add_fetch(&s->in_flight, 1, __ATOMIC_RELAXED);
		*con_cls = r;
		/* A write is refused at once, before its body is read (the
		 * connection is then closed). Anything else is answered on the
		 * next call, once the request is complete: a response queued in
		 * the first call makes libmicrohttpd close the connection. */
		if (strcmp(r->method, "GET") != 0 && !is_head(r))
			return route(r, url);
		return MHD_YES;
	}
	if (r->queued || *upload_size) { /* a body we do not want: discard it */
		*upload_size = 0;
		return MHD_YES;
	}
	return route(r, url);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	reg_server *s = cls;
	req *r = *con_cls;
	(void)c;
	if (!r)
		return;
	*con_cls = NULL;
	if (s->log_fd >= 0) {
		struct timespec t1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double secs =
		    (double)(t1.tv_sec - r->t0.tv_sec) + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e9;
		char when[32] = "-", ip[INET6_ADDRSTRLEN] = "-";
		time_t now = time(NULL);
		struct tm tm;
		if (gmtime_r(&now, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(r->c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ci && ci->client_addr) {
			const struct sockaddr *sa = ci->client_addr;
			if (sa->sa_family == AF_INET)
				inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip,
					  sizeof(ip));
			else if (sa->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
					  ip, sizeof(ip));
		}
		char line[LOG_URL_MAX + 256];
		int l = snprintf(line, sizeof(line), "%s %s \"%s %s\" %d %llu %.3fs%s\n", when, ip,
				 r->method, r->url, r->status, (unsigned long long)r->bytes, secs,
				 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted");
		if (l > 0) {
			size_t n = (size_t)l < sizeof(line) ? (size_t)l : sizeof(line) - 1;
			ssize_t w = write(s->log_fd, line, n);
			(void)w;
		}
	}
	__atomic_sub_fetch(&s->in_flight, 1, __ATOMIC_RELAXED);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

/* ---- lifecycle -------------------------------------------------------- */

/* A fixed, modest send buffer: on loopback and LANs it keeps the data in
 * cache between sendfile() and the receiver and measured ~1.5x the
 * throughput of autotuned multi-MiB buffers, with less kernel memory per
 * connection. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	reg_server *s = cls;
	(void)socket_context;
	if (code != MHD_CONNECTION_NOTIFY_STARTED || s->sndbuf <= 0)
		return;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci)
		setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &s->sndbuf, sizeof(s->sndbuf));
}

/* A connection the TLS terminator has shaken hands with. */
static int hand_conn(void *ctx, int fd, const struct sockaddr *peer, socklen_t len)
{
	reg_server *s = ctx;
	return MHD_add_connection(s->d, fd, peer, len) == MHD_YES ? 0 : -1;
}

static int parse_listen(struct sockaddr_storage *ss, socklen_t *sl, char *host, size_t hn,
			const char *listen, cm_error *err)
{
	char buf[256];
	if (!listen || strlen(listen) >= sizeof(buf))
		return cm_error_set(err, CM_EUSAGE, "bad listen address '%.100s'",
				    listen ? listen : "");
	memcpy(buf, listen, strlen(listen) + 1);
	char *h = buf, *p;
	if (buf[0] == '[') {
		char *e = strchr(buf, ']');
		if (!e || e[1] != ':')
			return cm_error_set(err, CM_EUSAGE,
					    "bad listen address '%s' (want [ADDR]:PORT)", listen);
		*e = '\0';
		h = buf + 1;
		p = e + 2;
	} else {
		char *colon = strrchr(buf, ':');
		if (!colon)
			return cm_error_set(err, CM_EUSAGE,
					    "bad listen address '%s' (want ADDR:PORT)", listen);
		*colon = '\0';
		p = colon + 1;
	}
	uint64_t port;
	if (parse_u64(p, p + strlen(p), &port) < 0 || port > 65535)
		return cm_error_set(err, CM_EUSAGE, "bad port in listen address '%s'", listen);
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int g = getaddrinfo(*h ? h : "0.0.0.0", p, &hints, &res);
	if (g != 0 || !res)
		return cm_error_set(err, CM_EUSAGE, "cannot use listen address '%s': %s", listen,
				    gai_strerror(g));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sl = res->ai_addrlen;
	freeaddrinfo(res);
	if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ss)->sin6_addr, host, (socklen_t)hn);
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr, host, (socklen_t)hn);
	return 0;
}

int reg_server_check_listen(const char *listen, cm_error *err)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char host[INET6_ADDRSTRLEN];
	return parse_listen(&ss, &sl, host, sizeof(host), listen, err);
}

int reg_server_start(reg_server **out, const reg_server_opts *o, cm_error *err)
{
	*out = NULL;
	if (!o->be || !o->be->has_repo || !o->be->manifest || !o->be->blob || !o->be->tags ||
	    !o->be->repos)
		return cm_error_set(err, CM_EINVAL, "incomplete registry backend");
	int tls = o->tls_cert_pem || o->tls_key_pem;
	if (tls && (!o->tls_cert_pem || !o->tls_key_pem))
		return cm_error_set(err, CM_EUSAGE, "TLS needs both a certificate and a key");
	/* A libmicrohttpd without TLS (the portable build's) gets OpenSSL in
	 * front of it (reg_tlsterm.h); FERRY_SERVE_TLS=openssl picks that
	 * path with any libmicrohttpd (tests). */
	const char *tls_env = getenv("FERRY_SERVE_TLS");
	int term = tls && (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
			   (tls_env && strcmp(tls_env, "openssl") == 0));
	struct sockaddr_storage ss;
	socklen_t sl;
	char host[INET6_ADDRSTRLEN];
	int rc = parse_listen(&ss, &sl, host, sizeof(host), o->listen, err);
	if (rc < 0)
		return rc;
	reg_server *s = calloc(1, sizeof(*s));
	if (!s)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	s->be = *o->be;
	s->sndbuf = o->send_buffer < 0 ? 0 : o->send_buffer ? o->send_buffer : REG_SERVER_SNDBUF;
	s->log_fd = o->access_log_fd;
	s->log = o->log;
	s->log_ctx = o->log_ctx;
	if (tls && (!(s->cert = strdup(o->tls_cert_pem)) || !(s->key = strdup(o->tls_key_pem)))) {
		reg_server_free(s);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	/* Default: a thread per connection. libmicrohttpd then sends files in
	 * 2 MiB sendfile() steps (128 KiB in its epoll pool), which measured
	 * about 25% more throughput for less CPU on loopback; a lazy hash
	 * simply blocks that connection's thread. --threads N selects an
	 * epoll pool of N threads, suspending connections during hashes. */
	unsigned threads = o->threads;
	s->tpc = threads == 0;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
	if (s->tpc)
		flags |= MHD_USE_THREAD_PER_CONNECTION;
	else
		flags |= MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
	s->via_term = term;
	s->mhd_tls = tls && !term;
	if (term)
		flags |= MHD_USE_NO_LISTEN_SOCKET;
	else if (tls)
		flags |= MHD_USE_TLS;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	struct MHD_OptionItem ops[16];
	int k = 0;
#define OPT(opt, v, p) ops[k++] = (struct MHD_OptionItem){opt, (intptr_t)(v), p}
	OPT(MHD_OPTION_SOCK_ADDR, 0, &ss);
	if (s->tpc)
		OPT(MHD_OPTION_THREAD_STACK_SIZE, (size_t)1 << 20, NULL);
	else
		OPT(MHD_OPTION_THREAD_POOL_SIZE, threads, NULL);
	OPT(MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s ? o->timeout_s : 60, NULL);
	unsigned max_conns = o->max_conns ? o->max_conns : REG_SERVER_MAX_CONNS;
	unsigned per_ip = o->max_conns_per_ip ? o->max_conns_per_ip : REG_SERVER_PER_IP;
	OPT(MHD_OPTION_CONNECTION_LIMIT, max_conns, NULL);
	OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip < max_conns ? per_ip : max_conns, NULL);
	OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024, NULL);
	OPT(MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL);
	OPT(MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, NULL);
	OPT(MHD_OPTION_NOTIFY_CONNECTION, on_connection, s);
	if (tls && !term) {
		OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, s->key);
		OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert);
	}
	OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, handler, s, MHD_OPTION_EXTERNAL_LOGGER,
				mhd_logger, s, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
				MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
	if (!s->d) {
		reg_server_free(s);
		return cm_error_set(err, CM_EIO,
				    "cannot listen on %s (address in use, or a bad TLS key or "
				    "certificate?)",
				    o->listen);
	}
	unsigned port = 0;
	if (term) {
		reg_tlsterm_opts to = {.addr = (struct sockaddr *)&ss,
				       .addr_len = sl,
				       .cert_pem = s->cert,
				       .key_pem = s->key,
				       .timeout_s = o->timeout_s,
				       .max_conns = max_conns,
				       .hand = hand_conn,
				       .ctx = s};
		if ((rc = reg_tlsterm_start(&s->term, &to, err)) < 0) {
			reg_server_free(s);
			cm_error_wrap(err, "cannot serve TLS on %s", o->listen);
			return rc;
		}
		port = reg_tlsterm_port(s->term);
	} else {
		const union MHD_DaemonInfo *di =
		    MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
		port = di ? di->port : 0;
	}
	if (ss.ss_family == AF_INET6)
		snprintf(s->addr, sizeof(s->addr), "[%s]:%u", host, port);
	else
		snprintf(s->addr, sizeof(s->addr), "%s:%u", host, port);
	const char *proto = term ? "https through OpenSSL" : tls ? "https" : "http";
	if (s->tpc)
		slog(s, "listening on %s (%s, a thread per connection)", s->addr, proto);
	else
		slog(s, "listening on %s (%s, %u epoll threads)", s->addr, proto, threads);
	*out = s;
	return 0;
}

const char *reg_server_addr(const reg_server *s)
{
	return s->addr;
}

unsigned reg_server_drain(reg_server *s, unsigned timeout_s)
{
	if (!s || !s->d)
		return 0;
	__atomic_store_n(&s->stopping, 1, __ATOMIC_RELAXED);
	reg_tlsterm_quiesce(s->term);
	MHD_socket ls = MHD_quiesce_daemon(s->d);
	if (ls != MHD_INVALID_SOCKET)
		close(ls);
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		unsigned long n = __atomic_load_n(&s->in_flight, __ATOMIC_RELAXED);
		if (n == 0)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= (time_t)timeout_s)
			return (unsigned)n;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

void reg_server_free(reg_server *s)
{
	if (!s)
		return;
	__atomic_store_n(&s->stopping, 1, __ATOMIC_RELAXED);
	if (s->be.shutdown)
		s->be.shutdown(s->be.ctx);
	reg_tlsterm_free(s->term); /* its connections close before the daemon stops */
	if (s->d)
		MHD_stop_daemon(s->d);
	free(s->cert);
	free(s->key);
	free(s);
}
