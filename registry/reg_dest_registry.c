/* A registry as a copy-pipeline destination (reg_dest_registry.h). */
#include "reg_dest_registry.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_buf.h"
#include "reg_ref.h"
#include "reg_url.h"

#define LANES_MAX 64

typedef struct kept {
	reg_desc d;
	int child; /* put_manifest had a parent */
	cm_buf bytes;
} kept;

/* What siblings share: the options, the lanes, the counts. */
typedef struct pool {
	reg_dest_registry_opts o;
	char base_url[640];
	pthread_mutex_t mu;
	reg_lane *idle[LANES_MAX]; /* lanes not in use */
	size_t n_idle;
	reg_dest_registry_stats st;
	unsigned refs;
	int saw_subject; /* a manifest PUT answered OCI-Subject */
} pool;

typedef struct rdest {
	reg_dest base;
	pool *p;
	char repo[512], scope[600];
	pthread_mutex_t mu; /* the kept manifests */
	kept *m;
	size_t n_m, cap_m;
	uint64_t puts; /* manifests this destination PUT (reg_dest_registry_puts) */
} rdest;

static int take_lane(reg_lane **out, rdest *r, cm_error *err)
{
	pool *p = r->p;
	pthread_mutex_lock(&p->mu);
	*out = p->n_idle ? p->idle[--p->n_idle] : NULL;
	pthread_mutex_unlock(&p->mu);
	return *out ? 0 : reg_lane_new(out, p->o.client, err);
}

static void give_lane(rdest *r, reg_lane *l)
{
	pool *p = r->p;
	pthread_mutex_lock(&p->mu);
	if (p->n_idle < LANES_MAX) {
		p->idle[p->n_idle++] = l;
		l = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	reg_lane_free(l);
}

static void count(rdest *r, uint64_t *field, uint64_t v)
{
	pthread_mutex_lock(&r->p->mu);
	*field += v;
	pthread_mutex_unlock(&r->p->mu);
}

static int mkurl(char *out, size_t n, cm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int mkurl(char *out, size_t n, cm_error *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int l = vsnprintf(out, n, fmt, ap);
	va_end(ap);
	if (l < 0 || (size_t)l >= n)
		return cm_error_set(err, CM_EINVAL, "URL too long: %.200s...", out);
	return 0;
}

/* A request body: the reader from byte 0 (rewound), or memory. */
typedef struct body {
	reg_reader *rd;
	pool *gate;		 /* holds a slot of the caller's gate while non-NULL */
	uint64_t pos, base, end; /* in the blob; this request sends [base, end) */
	const char *mem;
	size_t len;
	cm_error err; /* the reader's own failure */
	char junk[16384];
} body;

static void gate_give(body *b)
{
	if (b->gate)
		b->gate->o.gate(b->gate->o.ud, 0);
	b->gate = NULL;
}

static long on_read(void *ud, char *buf, size_t want)
{
	body *b = ud;
	if (!b->mem && want > b->end - b->pos)
		want = (size_t)(b->end - b->pos);
	if (b->mem) {
		size_t left = b->len - (size_t)b->pos;
		want = want > left ? left : want;
		memcpy(buf, b->mem + b->pos, want);
		b->pos += want;
		return (long)want;
	}
	size_t got = 0;
	if (reg_reader_read(b->rd, buf, want, &got, &b->err) < 0)
		return -1; /* curl aborts: the registry never gets the whole blob */
	b->pos += got;
	if (b->pos >= b->end)
		gate_give(b); /* all sent: what is left is the registry's */
	return (long)got;
}

/* Back to byte off: a PATCH or PUT sent again (a retry, a 401, a 307). */
static int on_seek(void *ud, uint64_t off)
{
	body *b = ud;
	if (b->mem) {
		b->pos = off;
		return 0;
	}
	off += b->base;
	if (off == b->pos)
		return 0;
	if (off < b->pos) {
		if (reg_reader_rewind(b->rd, &b->err) < 0)
			return -1;
		b->pos = 0;
	}
	while (b->pos < off) {
		size_t want =
		    off - b->pos < sizeof(b->junk) ? (size_t)(off - b->pos) : sizeof(b->junk);
		size_t got = 0;
		if (reg_reader_read(b->rd, b->junk, want, &got, &b->err) < 0 || got == 0)
			return -1;
		b->pos += got;
	}
	return 0;
}

static int request(rdest *r, reg_lane *l, reg_resp *resp, const char *method, const char *url,
		   const char *scope, const char *ctype, body *b, uint64_t len, const char *hdr,
		   cm_error *err)
{
	reg_body rb = {on_read, on_seek, b, len};
	if (b && !b->mem) {
		b->base = b->pos;
		b->end = b->pos + len;
		if (len >= REG_DEST_REGISTRY_SMALL && r->p->o.gate) {
			r->p->o.gate(r->p->o.ud, 1);
			b->gate = r->p;
		}
	}
	reg_req q = {.method = method,
		     .url = url,
		     .scope = scope ? scope : r->scope,
		     .ep = r->p->o.ep,
		     .content_type = ctype,
		     .header = hdr,
		     .body = b ? &rb : NULL};
	cm_buf_free(&resp->body);
	int rc = reg_request(resp, l, &q, err);
	if (b)
		gate_give(b);
	if (b && b->err.code) {
		*err = b->err; /* the reader's verdict outranks the transfer's */
		return b->err.code;
	}
	return rc;
}

static int rg_has_blob(reg_dest *dst, const reg_desc *d)
{
	rdest *r = (rdest *)dst;
	reg_lane *l;
	reg_resp resp = {0};
	cm_error e = {0};
	char url[4096], from[512], scope2[1200];
	int have = 0;
	if (take_lane(&l, r, &e) < 0)
		return 0; /* put_blob reports the trouble */
	if (mkurl(url, sizeof(url), &e, "%s/v2/%s/blobs/%s", r->p->base_url, r->repo,
		  d->digest.s) == 0 &&
	    request(r, l, &resp, "HEAD", url, NULL, NULL, NULL, 0, NULL, &e) == 0 &&
	    resp.status == 200) {
		have = 1;
		count(r, &r->p->st.blobs_skipped, 1);
	} else if (r->p->o.mount_from && r->p->o.mount_from(r->p->o.ud, d, from, sizeof(from)) &&
		   strcmp(from, r->repo) != 0 &&
		   snprintf(scope2, sizeof(scope2), "%s repository:%s:pull", r->scope, from) <
		       (int)sizeof(scope2) &&
		   mkurl(url, sizeof(url), &e, "%s/v2/%s/blobs/uploads/?mount=%s&from=%s",
			 r->p->base_url, r->repo, d->digest.s, from) == 0 &&
		   request(r, l, &resp, "POST", url, scope2, NULL, NULL, 0, NULL, &e) == 0 &&
		   resp.status == 201) {
		have = 1; /* a 202 (mount refused) opened a session: it is left to expire */
		count(r, &r->p->st.blobs_mounted, 1);
	}
	if (have && r->p->o.holds)
		r->p->o.holds(r->p->o.ud, d, r->repo);
	cm_buf_free(&resp.body);
	give_lane(r, l);
	return have;
}

/* One upload session: POST, PATCH chunks beyond the chunk size, PUT. */
static int upload(rdest *r, reg_lane *l, reg_resp *resp, body *b, const reg_desc *d, cm_error *err)
{
	char url[4096], loc[4096], q[100];
	int rc = mkurl(url, sizeof(url), err, "%s/v2/%s/blobs/uploads/", r->p->base_url, r->repo);
	if (rc == 0 &&
	    (rc = request(r, l, resp, "POST", url, NULL, NULL, NULL, 0, NULL, err)) == 0 &&
	    (resp->status != 202 || !resp->location[0]))
		rc = reg_resp_error(err, resp, "starting an upload");
	if (rc < 0)
		return rc;
	snprintf(loc, sizeof(loc), "%s", resp->location);
	uint64_t off = 0;
	if (d->size > REG_DEST_REGISTRY_CHUNK) {
		for (; off < d->size; off += REG_DEST_REGISTRY_CHUNK) {
			uint64_t end = off + REG_DEST_REGISTRY_CHUNK < d->size
					   ? off + REG_DEST_REGISTRY_CHUNK
					   : d->size;
			char cr[96];
			snprintf(cr, sizeof(cr), "Content-Range: %llu-%llu",
				 (unsigned long long)off, (unsigned long long)(end - 1));
			if ((rc = request(r, l, resp, "PATCH", loc, NULL,
					  "application/octet-stream", b, end - off, cr, err)) < 0)
				return rc;
			if (resp->status != 202 || !resp->location[0])
				return reg_resp_error(err, resp, "uploading a chunk");
			snprintf(loc, sizeof(loc), "%s", resp->location);
		}
		off = d->size;
	}
	snprintf(q, sizeof(q), "digest=%s", d->digest.s);
	if ((rc = reg_url_add_query(url, sizeof(url), loc, q, err)) < 0)
		return cm_error_wrap(err, "the registry's upload location");
	/* the PUT carries the rest and, for an empty tail, reads the reader
	 * to its end: its checks run before the registry commits */
	rc = request(r, l, resp, "PUT", url, NULL, "application/octet-stream", b, d->size - off,
		     NULL, err);
	if (rc == 0 && b->pos == d->size) {
		size_t got = 1;
		char c;
		rc = reg_reader_read(b->rd, &c, 1, &got, err); /* the end: every check passed */
		if (rc == 0 && got)
			rc = cm_error_set(err, CM_EVERIFY, "more bytes than %llu",
					  (unsigned long long)d->size);
	}
	if (rc == 0 && resp->status != 201)
		rc = reg_resp_error(err, resp, "finishing an upload");
	return rc;
}

static int rg_put_blob(reg_dest *dst, reg_reader *rd, cm_error *err)
{
	rdest *r = (rdest *)dst;
	const reg_desc *d = reg_reader_desc(rd);
	reg_lane *l;
	int rc = take_lane(&l, r, err);
	if (rc < 0)
		return rc;
	reg_resp resp = {0};
	body *b = calloc(1, sizeof(*b));
	if (!b)
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	for (int round = 1; b; round++) {
		if (round > 1 && (rc = reg_reader_rewind(rd, err)) < 0)
			break;
		memset(b, 0, sizeof(*b));
		b->rd = rd;
		if ((rc = upload(r, l, &resp, b, d, err)) == 0 || rc == CM_EVERIFY || b->err.code ||
		    round >= r->p->o.tries)
			break;
		if (r->p->o.warn) {
			char msg[1400];
			snprintf(msg, sizeof(msg),
				 "blob %s to %.300s: %.600s; uploading it again (%d of %d)",
				 d->digest.s, r->repo, err->msg, round + 1, r->p->o.tries);
			r->p->o.warn(r->p->o.ud, msg);
		}
		cm_error_clear(err);
	}
	if (rc == 0) {
		count(r, &r->p->st.blobs_uploaded, 1);
		count(r, &r->p->st.bytes_uploaded, d->size);
		if (r->p->o.holds)
			r->p->o.holds(r->p->o.ud, d, r->repo);
	}
	free(b);
	cm_buf_free(&resp.body);
	give_lane(r, l);
	return rc;
}

static int rg_put_manifest(reg_dest *dst, const reg_desc *parent, const reg_desc *d, const void *p,
			   size_t n, cm_error *err)
{
	rdest *r = (rdest *)dst;
	pthread_mutex_lock(&r->mu);
	int rc = CM_GROW(&r->m, r->n_m, &r->cap_m, err);
	if (rc == 0) {
		kept *k = &r->m[r->n_m];
		memset(k, 0, sizeof(*k));
		k->d = *d;
		k->child = parent != NULL;
		if ((rc = cm_buf_append(&k->bytes, p, n, err)) == 0)
			r->n_m++;
		else
			cm_buf_free(&k->bytes);
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* PUT a kept manifest under ref unless a HEAD answers with its digest. */
static int put_one(rdest *r, reg_lane *l, const kept *k, const char *ref, cm_error *err)
{
	char url[4096], accept[600];
	reg_resp resp = {0};
	snprintf(accept, sizeof(accept), "Accept: %.300s", k->d.media_type);
	int rc =
	    mkurl(url, sizeof(url), err, "%s/v2/%s/manifests/%s", r->p->base_url, r->repo, ref);
	if (rc == 0)
		rc = request(r, l, &resp, "HEAD", url, NULL, NULL, NULL, 0, accept, err);
	if (rc == 0 && resp.status == 200 && strcmp(resp.digest, k->d.digest.s) == 0) {
		cm_buf_free(&resp.body);
		return 0;
	}
	body b;
	memset(&b, 0, sizeof(b));
	b.mem = k->bytes.data ? k->bytes.data : "";
	b.len = k->bytes.len;
	if (rc == 0 && r->p->o.proceed)
		rc = r->p->o.proceed(r->p->o.ud, err); /* the last moment to stop it */
	if (rc == 0)
		rc = request(r, l, &resp, "PUT", url, NULL, k->d.media_type, &b, b.len, NULL, err);
	if (rc == 0 && resp.status != 201)
		rc = reg_resp_error(err, &resp, "putting the manifest");
	if (rc == 0 && resp.digest[0] && strcmp(resp.digest, k->d.digest.s) != 0)
		rc = cm_error_set(err, CM_EFAIL, "the registry stored the manifest as %s, not %s",
				  resp.digest, k->d.digest.s);
	if (rc == 0) {
		count(r, &r->p->st.manifests_put, 1);
		count(r, &r->puts, 1);
	}
	if (rc == 0 && resp.oci_subject[0]) {
		pthread_mutex_lock(&r->p->mu);
		r->p->saw_subject = 1;
		pthread_mutex_unlock(&r->p->mu);
	}
	cm_buf_free(&resp.body);
	return rc < 0 ? cm_error_wrap(err, "manifest %s:%s", r->repo, ref) : 0;
}

/* The kept children by digest, then (with name) the root under name; the
 * kept manifests are dropped in every case. */
static int put_kept(rdest *r, const reg_desc *root, const char *name, cm_error *err)
{
	reg_lane *l;
	int rc = take_lane(&l, r, err);
	const kept *top = NULL;
	for (size_t i = 0; rc == 0 && i < r->n_m; i++) {
		const kept *k = &r->m[i];
		if (reg_digest_equal(&k->d.digest, &root->digest))
			top = k;
		else if (k->child)
			rc = put_one(r, l, k, k->d.digest.s, err);
	}
	if (rc == 0 && name && !top)
		rc = cm_error_set(err, CM_EINVAL, "manifest %s was never handed over",
				  root->digest.s);
	if (rc == 0 && name)
		rc = put_one(r, l, top, name, err);
	for (size_t i = 0; i < r->n_m; i++)
		cm_buf_free(&r->m[i].bytes);
	r->n_m = 0;
	if (l)
		give_lane(r, l);
	return rc;
}

static int rg_tag(reg_dest *dst, const char *ref, const reg_desc *root, cm_error *err)
{
	reg_ref p;
	cm_error e2;
	const char *name = reg_ref_parse(&p, ref, &e2) == 0 && p.tag[0] ? p.tag : root->digest.s;
	return put_kept((rdest *)dst, root, name, err);
}

static void rg_free(reg_dest *dst)
{
	rdest *r = (rdest *)dst;
	pool *p = r->p;
	for (size_t i = 0; i < r->n_m; i++)
		cm_buf_free(&r->m[i].bytes);
	free(r->m);
	pthread_mutex_destroy(&r->mu);
	free(r);
	pthread_mutex_lock(&p->mu);
	unsigned left = --p->refs;
	pthread_mutex_unlock(&p->mu);
	if (left)
		return;
	for (size_t i = 0; i < p->n_idle; i++)
		reg_lane_free(p->idle[i]);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static const struct reg_dest_ops registry_ops = {
    "registry", rg_has_blob, rg_put_blob, rg_put_manifest, NULL, rg_tag, NULL, rg_free};

static int open_repo(reg_dest **out, pool *p, const char *repo, cm_error *err)
{
	rdest *r = calloc(1, sizeof(*r));
	if (!r)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	if (snprintf(r->repo, sizeof(r->repo), "%s", repo) >= (int)sizeof(r->repo) ||
	    snprintf(r->scope, sizeof(r->scope), "repository:%s:pull,push", repo) >=
		(int)sizeof(r->scope)) {
		free(r);
		return cm_error_set(err, CM_EINVAL, "repository %.200s...: name too long", repo);
	}
	pthread_mutex_init(&r->mu, NULL);
	r->p = p;
	r->base.ops = &registry_ops;
	r->base.jobs = p->o.jobs ? p->o.jobs : 1;
	snprintf(r->base.where, sizeof(r->base.where), "registry %.500s/%.500s", p->base_url, repo);
	pthread_mutex_lock(&p->mu);
	p->refs++;
	pthread_mutex_unlock(&p->mu);
	*out = &r->base;
	return 0;
}

int reg_dest_registry_open(reg_dest **out, const reg_dest_registry_opts *o, cm_error *err)
{
	pool *p = calloc(1, sizeof(*p));
	if (!p)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	p->o = *o;
	p->o.tries = o->tries > 0 ? o->tries : 3;
	if (snprintf(p->base_url, sizeof(p->base_url), "%s", o->base) >= (int)sizeof(p->base_url)) {
		free(p);
		return cm_error_set(err, CM_EINVAL, "registry %.200s...: too long", o->base);
	}
	pthread_mutex_init(&p->mu, NULL);
	int rc = open_repo(out, p, o->repo, err);
	if (rc < 0) {
		pthread_mutex_destroy(&p->mu);
		free(p);
	}
	return rc;
}

int reg_dest_registry_sibling(reg_dest **out, reg_dest *first, const char *repo, cm_error *err)
{
	return open_repo(out, ((rdest *)first)->p, repo, err);
}

void reg_dest_registry_stats_get(reg_dest_registry_stats *out, reg_dest *dst)
{
	pool *p = ((rdest *)dst)->p;
	pthread_mutex_lock(&p->mu);
	*out = p->st;
	pthread_mutex_unlock(&p->mu);
}

int reg_dest_registry_put_children(reg_dest *dst, const reg_desc *root, cm_error *err)
{
	return put_kept((rdest *)dst, root, NULL, err);
}

uint64_t reg_dest_registry_puts(reg_dest *dst)
{
	rdest *r = (rdest *)dst;
	pthread_mutex_lock(&r->p->mu);
	uint64_t n = r->puts;
	pthread_mutex_unlock(&r->p->mu);
	return n;
}

int reg_dest_registry_referrers_api(int *out, reg_dest *dst, const reg_digest *subject,
				    cm_error *err)
{
	rdest *r = (rdest *)dst;
	reg_lane *l;
	reg_resp resp = {0};
	char url[4096];
	*out = 0;
	int rc = mkurl(url, sizeof(url), err, "%s/v2/%s/referrers/%s", r->p->base_url, r->repo,
		       subject->s);
	if (rc == 0)
		rc = take_lane(&l, r, err);
	if (rc < 0)
		return rc;
	rc =
	    request(r, l, &resp, "GET", url, NULL, NULL, NULL, 0, "Accept: " REG_MT_OCI_INDEX, err);
	/* the API answers an image index (empty when nothing refers to the
	 * digest); distribution 2.8 answers 404, others 400 or 405 */
	size_t ml = strlen(REG_MT_OCI_INDEX);
	if (rc == 0 && resp.status == 200 &&
	    strncmp(resp.content_type, REG_MT_OCI_INDEX, ml) == 0 &&
	    (resp.content_type[ml] == '\0' || resp.content_type[ml] == ';'))
		*out = 1;
	cm_buf_free(&resp.body);
	give_lane(r, l);
	return rc < 0 ? cm_error_wrap(err, "GET /v2/%s/referrers/%s", r->repo, subject->s) : 0;
}

int reg_dest_registry_saw_subject(reg_dest *dst)
{
	pool *p = ((rdest *)dst)->p;
	pthread_mutex_lock(&p->mu);
	int v = p->saw_subject;
	pthread_mutex_unlock(&p->mu);
	return v;
}
