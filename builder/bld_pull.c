#include "bld_pull.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

#include "bld_bundle.h"
#include "bld_policy.h"
#include "bld_progress.h"
#include "cm_emit.h"
#include "cm_file.h"
#include "cm_par.h"
#include "reg_client.h"
#include "reg_receipt.h"
#include "reg_ref.h"
#include "reg_source.h"

typedef struct lock_entry {
	char ref[600];
	char digest[80];
} lock_entry;

struct bld_pull {
	const bld_spec *s;
	const bld_build_opts *o;
	reg_store *st;
	reg_client *c;
	reg_endpoint *eps;
	bld_progress prog;
	reg_ref *refs;	      /* per spec image */
	char (*full)[700];    /* per spec image: refs[i] as a string */
	reg_pull_plan *plans; /* per spec image; root.size 0 when not a registry image */
	int *is_reg;
	size_t n_reg;	  /* registry images */
	lock_entry *lock; /* read for --locked */
	size_t n_lock;
	double t0, pull_secs;
	uint64_t blobs_total, bytes_total, bytes_reused, blobs_reused;
	reg_desc *heads;	 /* per spec image: what its tag's HEAD said */
	struct found_ref *found; /* referrer tags that answered */
	size_t n_found;
	reg_blob_req *batch; /* every blob of every image, once */
	size_t n_batch;
	int fetched; /* bld_pull_fetch ran */
};

typedef struct found_ref {
	size_t image;
	char tag[140];
	const char *kind;
	reg_desc desc;
	int verify_only; /* a .sig fetched for the policy under referrers: none */
} found_ref;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SPEC.yaml -> SPEC.lock.yaml */
static int lock_path(char *out, size_t n, const char *spec_path, cm_error *err)
{
	size_t l = strlen(spec_path), stem = l;
	if (l > 5 && strcmp(spec_path + l - 5, ".yaml") == 0)
		stem = l - 5;
	else if (l > 4 && strcmp(spec_path + l - 4, ".yml") == 0)
		stem = l - 4;
	int len = snprintf(out, n, "%.*s.lock.yaml", (int)stem, spec_path);
	return len < 0 || (size_t)len >= n ? cm_error_set(err, CM_EINVAL, "spec path too long") : 0;
}

/* Read SPEC.lock.yaml: images: [{ref, digest}]. */
static int lock_read(bld_pull *p, const char *path, cm_error *err)
{
	cm_buf b = CM_BUF_INIT;
	int rc = cm_file_read(&b, path, 4 << 20, err);
	if (rc < 0)
		return cm_error_wrap(err, "--locked needs %s (write it with --lock)", path);
	yaml_document_t doc;
	if ((rc = bld_yaml_load(&doc, path, &b, err)) < 0) {
		cm_buf_free(&b);
		return rc;
	}
	yaml_node_t *images = bld_yaml_get(&doc, yaml_document_get_root_node(&doc), "images");
	if (!images || images->type != YAML_SEQUENCE_NODE) {
		rc = cm_error_set(err, CM_EINVAL, "%s: no 'images' list", path);
		goto out;
	}
	size_t cnt = (size_t)(images->data.sequence.items.top - images->data.sequence.items.start);
	p->lock = calloc(cnt ? cnt : 1, sizeof(*p->lock));
	if (!p->lock) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *it =
		    yaml_document_get_node(&doc, images->data.sequence.items.start[i]);
		lock_entry *e = &p->lock[p->n_lock];
		if (it->type != YAML_MAPPING_NODE) {
			rc = cm_error_set(err, CM_EINVAL, "%s:%zu: an entry must be a mapping",
					  path, it->start_mark.line + 1);
			goto out;
		}
		yaml_node_t *r = bld_yaml_get(&doc, it, "ref"),
			    *g = bld_yaml_get(&doc, it, "digest");
		if (r && r->type == YAML_SCALAR_NODE)
			snprintf(e->ref, sizeof(e->ref), "%s", (const char *)r->data.scalar.value);
		if (g && g->type == YAML_SCALAR_NODE)
			snprintf(e->digest, sizeof(e->digest), "%s",
				 (const char *)g->data.scalar.value);
		reg_digest d;
		if (!e->ref[0] || reg_digest_parse(&d, e->digest, err) < 0) {
			rc = cm_error_set(err, CM_EINVAL,
					  "%s:%zu: an entry needs 'ref' and a valid 'digest'", path,
					  it->start_mark.line + 1);
			goto out;
		}
		p->n_lock++;
	}
out:
	yaml_document_delete(&doc);
	cm_buf_free(&b);
	return rc;
}

static int lock_write(bld_pull *p, cm_error *err)
{
	char path[PATH_MAX];
	if (lock_path(path, sizeof(path), p->s->file, err) < 0)
		return CM_EINVAL;
	/* the header comment names the spec: one line whatever its path */
	char file[PATH_MAX];
	snprintf(file, sizeof(file), "%s", p->s->file);
	for (char *c = file; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = '?';
	cm_buf b = CM_BUF_INIT;
	int rc =
	    cm_buf_appendf(&b, err,
			   "# Written by ferry-build build --lock: every registry image of %s "
			   "pinned to the digest its tag had.\n# Build with --locked to refuse "
			   "tags that moved since.\n",
			   file);
	json_t *lock =
	    json_pack("{s:s,s:s,s:[]}", "apiVersion", "ferry/v1", "kind", "Lock", "images");
	json_t *imgs = json_object_get(lock, "images");
	for (size_t i = 0; rc == 0 && imgs && i < p->s->n_images; i++) {
		if (!p->is_reg[i])
			continue;
		if (json_array_append_new(imgs, json_pack("{s:s,s:s}", "ref", p->full[i], "digest",
							  p->plans[i].root.digest.s)) < 0)
			rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	if (rc == 0)
		rc = imgs ? cm_yaml_append(&b, lock, err)
			  : cm_error_set(err, CM_ENOMEM, "out of memory");
	json_decref(lock);
	if (rc == 0)
		rc = cm_file_write_atomic(path, b.data, b.len, 0644, err);
	cm_buf_free(&b);
	if (rc == 0)
		bld_progress_lock(&p->prog, path);
	return rc;
}

/* The platforms image i is narrowed to (an index pinned by digest stays
 * whole unless the image names its own platforms; docs/registry-client.md). */
static const char *const *image_platforms(const bld_spec *s, size_t i, const reg_ref *r)
{
	static const char *const all[] = {"all", NULL};
	const bld_image_spec *is = &s->images[i];
	if (r->digest[0] && !is->platforms)
		return all;
	return (const char *const *)(is->platforms ? is->platforms : s->platforms);
}

/* The image a request is for (its ref is one of p->refs). */
static size_t img_of(const bld_pull *p, const reg_manifest_req *q)
{
	return (size_t)(q->ref - p->refs);
}

/* Run a batch of manifest requests; the first failure in spec order (of
 * those that got an answer) is the build's error. */
static int batch_run(bld_pull *p, reg_manifest_req *q, size_t k, cm_error *err)
{
	int rc = reg_client_manifests(p->c, q, k, err);
	if (rc < 0 || !k)
		return rc;
	size_t bad = k;
	for (size_t j = 0; j < k; j++)
		if (q[j].rc < 0 && q[j].err.msg[0] &&
		    (bad == k || img_of(p, &q[j]) < img_of(p, &q[bad])))
			bad = j;
	if (bad == k)
		return 0; /* nothing answered wrong: the sequential pass sorts it out */
	size_t i = img_of(p, &q[bad]);
	*err = q[bad].err;
	return cm_error_wrap(err, "%s:%d: pulling %s", p->s->file, p->s->images[i].line,
			     p->full[i]);
}

static int queued(const reg_manifest_req *q, size_t k, const char *what)
{
	for (size_t j = 0; j < k; j++)
		if (strcmp(q[j].what, what) == 0)
			return 1;
	return 0;
}

/* The manifests a batch fetched, into the store, several at once: each put
 * writes, fsyncs and renames its file and fsyncs the folder, and fsyncs
 * that run together are committed together by the filesystem (on a busy
 * disk twenty in a row took 0.1-0.3 s; docs/benchmarks.md "Ninth
 * session"). */
static int put_one(void *ctx, unsigned worker, size_t i, cm_error *err)
{
	reg_store *st = ((void **)ctx)[0];
	reg_manifest_req *r = &((reg_manifest_req *)((void **)ctx)[1])[i];
	(void)worker;
	if (r->rc != 0)
		return 0;
	return reg_store_put(NULL, st, r->body.data ? r->body.data : "", r->body.len, err);
}

#define PUT_THREADS 8

static int put_all(reg_store *st, reg_manifest_req *q, size_t k, cm_error *err)
{
	void *ctx[2] = {st, q};
	return cm_par_each(k, PUT_THREADS, put_one, ctx, err);
}

/* Before the planner runs image by image: HEAD every tag at once, then GET
 * at once every root manifest, then every wanted child manifest, the store
 * lacks. The planner then finds them all in the store, so resolving N
 * images costs three round trips, not 3N (four when a registry sends no
 * Docker-Content-Digest). heads[i].digest is left empty when image i is
 * pinned or its tag did not resolve (the planner then says why). */
static int prefetch(bld_pull *p, reg_desc *heads, cm_error *err)
{
	const bld_spec *s = p->s;
	size_t n = s->n_images;
	reg_manifest_req *q = calloc(n ? n : 1, sizeof(*q));
	size_t k = 0, cap = n ? n : 1;
	int rc = q ? 0 : cm_error_set(err, CM_ENOMEM, "out of memory");
	/* 1. tags */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (!p->is_reg[i] || p->refs[i].digest[0])
			continue;
		q[k].ref = &p->refs[i];
		if (snprintf(q[k].what, sizeof(q[k].what), "%s", p->refs[i].tag) >=
		    (int)sizeof(q[k].what))
			rc = cm_error_set(err, CM_EINVAL, "tag too long: %.64s...", p->refs[i].tag);
		q[k++].head = 1;
	}
	if (rc == 0 && (rc = batch_run(p, q, k, err)) == 0)
		for (size_t j = 0; j < k; j++)
			if (q[j].rc == 0)
				heads[img_of(p, &q[j])] = q[j].desc;
	/* 2. root manifests, 3. the children the image keeps */
	for (int round = 0; rc == 0 && round < 2; round++) {
		for (size_t j = 0; j < k; j++)
			cm_buf_free(&q[j].body);
		k = 0;
		for (size_t i = 0; rc == 0 && i < n; i++) {
			if (!p->is_reg[i])
				continue;
			reg_digest root;
			cm_error e2;
			if (heads[i].digest.s[0])
				root = heads[i].digest;
			else if (!p->refs[i].digest[0] ||
				 reg_digest_parse(&root, p->refs[i].digest, &e2) < 0)
				continue;
			reg_digest want[64];
			size_t nw = 0;
			if (round == 0) {
				want[nw++] = root;
			} else {
				cm_buf b = CM_BUF_INIT;
				reg_manifest m;
				if (reg_store_read(&b, p->st, &root, REG_MANIFEST_MAX, &e2) < 0 ||
				    reg_manifest_parse(&m, b.data, b.len, NULL, &e2) < 0) {
					cm_buf_free(&b);
					continue;
				}
				cm_buf_free(&b);
				const char *const *plat = image_platforms(s, i, &p->refs[i]);
				for (size_t c = 0; m.is_index && c < m.n_items && nw < 64; c++)
					if (reg_copy_wants_child(&m.items[c], plat))
						want[nw++] = m.items[c].digest;
				reg_manifest_free(&m);
			}
			for (size_t w = 0; w < nw; w++) {
				if (reg_store_has(p->st, &want[w], NULL) || queued(q, k, want[w].s))
					continue;
				reg_manifest_req *nq = cm_grow(q, k, &cap, sizeof(*q), err);
				if (!nq) {
					rc = CM_ENOMEM;
					break;
				}
				q = nq;
				memset(&q[k], 0, sizeof(q[k]));
				q[k].ref = &p->refs[i];
				snprintf(q[k].what, sizeof(q[k].what), "%s", want[w].s);
				k++;
			}
		}
		if (rc == 0)
			rc = batch_run(p, q, k, err);
		if (rc == 0)
			rc = put_all(p->st, q, k, err);
	}
	for (size_t j = 0; q && j < k; j++)
		cm_buf_free(&q[j].body);
	free(q);
	return rc;
}

/* GET <repository>/<what> (on r's endpoint, with its auth and TLS): *out
 * the body when the registry answered 200 with JSON, else NULL with
 * *status set (0: no answer). Only running out of memory is an error. */
static int repo_get(json_t **out, long *status, cm_buf *raw, bld_pull *p, reg_lane **l,
		    const reg_ref *r, const char *what, const char *accept, cm_error *err)
{
	*out = NULL;
	*status = 0;
	char base[600], repo[512];
	int rc = reg_client_route(base, sizeof(base), repo, sizeof(repo), p->c, r, err);
	if (rc < 0)
		return rc;
	cm_buf url = CM_BUF_INIT, scope = CM_BUF_INIT;
	if ((rc = cm_buf_appendf(&url, err, "%s/v2/%s/%s", base, repo, what)) < 0 ||
	    (rc = cm_buf_appendf(&scope, err, "repository:%s:pull", repo)) < 0)
		goto out;
	if (!*l && (rc = reg_lane_new(l, p->c, err)) < 0)
		goto out;
	reg_req q = {.method = "GET",
		     .url = url.data,
		     .scope = scope.data,
		     .ep = reg_client_endpoint(p->c, r),
		     .header = accept};
	reg_resp resp;
	memset(&resp, 0, sizeof(resp));
	rc = reg_request(&resp, *l, &q, err);
	if (rc == 0) {
		*status = resp.status;
		if (resp.status == 200)
			*out = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0,
					  NULL);
		if (*out && raw) {
			cm_buf_free(raw);
			*raw = resp.body;
			memset(&resp.body, 0, sizeof(resp.body));
		}
	}
	cm_buf_free(&resp.body);
	if (rc < 0 && rc != CM_ENOMEM) /* no answer: the caller falls back */
		rc = 0;
out:
	cm_buf_free(&url);
	cm_buf_free(&scope);
	return rc;
}

/* GET <repository>/tags/list (one page: what docker-registry and most
 * registries send whole). *out: the "tags" array, or NULL when the
 * registry did not answer 200 with one (the tags are then HEADed). */
static int tag_list(json_t **out, bld_pull *p, reg_lane **l, const reg_ref *r, cm_error *err)
{
	json_t *j;
	long status;
	int rc = repo_get(&j, &status, NULL, p, l, r, "tags/list", NULL, err);
	json_t *t = json_object_get(j, "tags");
	*out = json_is_array(t) ? json_incref(t) : NULL;
	json_decref(j);
	return rc;
}

/* The requests of referrers_find (tag listings, referrers API), several
 * at once, each worker on a lane (a connection) of its own: one at a
 * time, twenty repositories cost twenty round trips. fn runs for every i
 * with want[i]; the first failure (lowest index) is kept. */
typedef struct par_pool par_pool;
#define PAR_THREADS 8

struct par_pool {
	bld_pull *p;
	int (*fn)(par_pool *tp, size_t i, reg_lane **l, cm_error *err);
	void *out; /* fn's results, one per index */
	const unsigned char *want;
	reg_lane *lanes[PAR_THREADS]; /* one connection lane per worker */
	size_t bad;
	int rc;
	cm_error err;
	pthread_mutex_t mu;
};

/* Every wanted index runs (one failure does not stop the others): the
 * failure reported is the lowest index's, whatever the timing. */
static int par_one(void *ctx, unsigned worker, size_t i, cm_error *unused)
{
	par_pool *tp = ctx;
	(void)unused;
	if (!tp->want[i])
		return 0;
	cm_error e = {0};
	int rc = tp->fn(tp, i, &tp->lanes[worker], &e);
	if (rc < 0) {
		pthread_mutex_lock(&tp->mu);
		if (tp->rc == 0 || i < tp->bad) {
			tp->rc = rc;
			tp->err = e;
			tp->bad = i;
		}
		pthread_mutex_unlock(&tp->mu);
	}
	return 0;
}

/* 0, or the failure of index *bad (in err). */
static int par_run(bld_pull *p, int (*fn)(par_pool *, size_t, reg_lane **, cm_error *), void *out,
		   const unsigned char *want, size_t n, size_t *bad, cm_error *err)
{
	par_pool tp = {.p = p, .fn = fn, .out = out, .want = want};
	pthread_mutex_init(&tp.mu, NULL);
	size_t todo = 0;
	for (size_t i = 0; i < n; i++)
		todo += want[i];
	int rc = cm_par_each(n, todo < PAR_THREADS ? (unsigned)(todo ? todo : 1) : PAR_THREADS,
			     par_one, &tp, err);
	for (size_t w = 0; w < PAR_THREADS; w++)
		reg_lane_free(tp.lanes[w]);
	pthread_mutex_destroy(&tp.mu);
	if (rc == 0 && tp.rc < 0) {
		*err = tp.err;
		*bad = tp.bad;
		rc = tp.rc;
	}
	return rc;
}

static int tl_one(par_pool *tp, size_t i, reg_lane **l, cm_error *err)
{
	json_t **lists = tp->out;
	return tag_list(&lists[i], tp->p, l, &tp->p->refs[i], err);
}

/* One answer of the referrers API: the parsed body when it was 200 JSON,
 * and its bytes (kept byte-exact when it lists something). */
typedef struct api_res {
	json_t *j;
	cm_buf raw;
	long status;
} api_res;

static int api_one(par_pool *tp, size_t i, reg_lane **l, cm_error *err)
{
	api_res *a = &((api_res *)tp->out)[i];
	char what[120];
	snprintf(what, sizeof(what), "referrers/%s", tp->p->plans[i].root.digest.s);
	return repo_get(&a->j, &a->status, &a->raw, tp->p, l, &tp->p->refs[i], what,
			"Accept: application/vnd.oci.image.index.v1+json", err);
}

/* The answer is an image index: the registry has the referrers API. */
static int api_is_index(const api_res *a)
{
	const char *mt = json_string_value(json_object_get(a->j, "mediaType"));
	return mt && strcmp(mt, "application/vnd.oci.image.index.v1+json") == 0 &&
	       json_is_array(json_object_get(a->j, "manifests"));
}

/* Image i's repository holds tag already among the found (two spec images
 * of one digest in one repository carry its referrers once). */
static int found_dup(const bld_pull *p, size_t i, const char *tag)
{
	for (size_t f = 0; f < p->n_found; f++) {
		const reg_ref *a = &p->refs[p->found[f].image], *b = &p->refs[i];
		if (strcmp(p->found[f].tag, tag) == 0 && strcmp(a->host, b->host) == 0 &&
		    strcmp(a->path, b->path) == 0)
			return 1;
	}
	return 0;
}

static int has_tag(const json_t *tags, const char *t)
{
	size_t i;
	json_t *v;
	json_array_foreach(tags, i, v) if (json_is_string(v) &&
					   strcmp(json_string_value(v), t) == 0) return 1;
	return 0;
}

/* What is looked up for image i: its referrers mode, except that a
 * signature policy needs the .sig even under `referrers: none` (then
 * checked, not carried: *verify_only). */
static int ref_mode(const bld_pull *p, size_t i, int *verify_only)
{
	const bld_spec *s = p->s;
	int mode = s->images[i].referrers ? s->images[i].referrers : s->referrers;
	*verify_only = mode == BLD_REFERRERS_NONE && bld_spec_verify(s, i);
	return *verify_only ? BLD_REFERRERS_SIGNATURES : mode;
}

/* The registry's referrers API (GET <name>/referrers/<digest>) for every
 * image under `referrers: all` whose registry keeps no fallback index for
 * it, one request per image and repository digest, in parallel: first one
 * image per registry (the probe), then, only where the probe got an image
 * index back, the rest of that registry's images at once. A registry that
 * answers anything else (distribution 2.8: 404) has no API and costs one
 * request. An answer that lists something is kept byte-exact in the store
 * and carried as the fallback tag sha256-<hex>, the way OCI 1.1 clients
 * keep it on registries without the API. p->found has room for one more
 * per image. */
static int referrers_api(bld_pull *p, cm_error *err)
{
	const bld_spec *s = p->s;
	size_t n = s->n_images, bad = 0;
	api_res *res = calloc(n ? n : 1, sizeof(*res));
	size_t *probe = calloc(n ? n : 1, sizeof(*probe)); /* n: not asked */
	unsigned char *want = calloc(n ? n : 1, 1);
	char(*base)[600] = calloc(n ? n : 1, sizeof(*base));
	int rc = res && probe && want && base ? 0 : cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int mode = s->images[i].referrers ? s->images[i].referrers : s->referrers;
		const reg_digest *d = &p->plans[i].root.digest;
		probe[i] = n;
		if (!p->is_reg[i] || mode != BLD_REFERRERS_ALL || strncmp(d->s, "sha256:", 7) != 0)
			continue;
		char fb[80], repo[512];
		snprintf(fb, sizeof(fb), "sha256-%.64s", d->s + 7);
		cm_error e = {0};
		if (found_dup(p, i, fb) || /* a fallback index by tag */
		    reg_client_route(base[i], sizeof(base[i]), repo, sizeof(repo), p->c,
				     &p->refs[i], &e) < 0)
			continue;
		size_t j = 0, same = n;
		for (; j < i; j++) {
			if (probe[j] == n)
				continue;
			if (strcmp(p->refs[j].host, p->refs[i].host) == 0 &&
			    strcmp(p->refs[j].path, p->refs[i].path) == 0 &&
			    strcmp(p->plans[j].root.digest.s, d->s) == 0)
				break; /* asked for already */
			if (same == n && strcmp(base[j], base[i]) == 0)
				same = probe[j];
		}
		if (j < i)
			continue;
		probe[i] = same == n ? i : same;
		want[i] = probe[i] == i;
	}
	/* the probes, one per registry, at once */
	if (rc == 0 && (rc = par_run(p, api_one, res, want, n, &bad, err)) < 0)
		goto fail;
	/* then the rest, where the probe found the API */
	size_t more = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		want[i] = probe[i] < n && probe[i] != i && api_is_index(&res[probe[i]]);
		more += want[i];
	}
	if (rc == 0 && more && (rc = par_run(p, api_one, res, want, n, &bad, err)) < 0)
		goto fail;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const api_res *a = &res[i];
		if (probe[i] == n || !api_is_index(a) ||
		    json_array_size(json_object_get(a->j, "manifests")) == 0 ||
		    a->raw.len > REG_MANIFEST_MAX)
			continue;
		reg_desc desc;
		memset(&desc, 0, sizeof(desc));
		if ((rc = reg_store_put(&desc.digest, p->st, a->raw.data, a->raw.len, err)) < 0)
			break;
		desc.size = a->raw.len;
		snprintf(desc.media_type, sizeof(desc.media_type), "%s",
			 "application/vnd.oci.image.index.v1+json");
		found_ref *f = &p->found[p->n_found++];
		f->image = i;
		snprintf(f->tag, sizeof(f->tag), "sha256-%.64s", p->plans[i].root.digest.s + 7);
		f->kind = "index";
		f->desc = desc;
	}
fail:
	if (rc < 0)
		cm_error_wrap(err, "%s:%d: asking for the referrers of %s/%s", s->file,
			      s->images[bad].line, p->refs[bad].host, p->refs[bad].path);
	for (size_t i = 0; res && i < n; i++) {
		json_decref(res[i].j);
		cm_buf_free(&res[i].raw);
	}
	free(res);
	free(probe);
	free(want);
	free(base);
	return rc;
}

/* The referrer tags of every image: one tag listing per repository, then
 * the tags it names HEADed in one batch (every candidate tag when there
 * was no listing; a 404 is then the usual answer). */
static int referrers_find(bld_pull *p, cm_error *err)
{
	static const char *const sfx[] = {".sig", ".att", ".sbom", ""};
	static const char *const kinds[] = {"sig", "att", "sbom", "index"};
	const bld_spec *s = p->s;
	size_t n = s->n_images;
	reg_manifest_req *q = calloc(n ? 4 * n : 1, sizeof(*q));
	size_t *kind = calloc(n ? 4 * n : 1, sizeof(*kind));
	size_t k = 0;
	int rc = q && kind ? 0 : cm_error_set(err, CM_ENOMEM, "out of memory");
	/* one tag listing per repository says which of those tags exist */
	json_t **lists = calloc(n ? n : 1, sizeof(*lists));
	if (rc == 0 && !lists)
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	/* each repository listed once (several at once); an image of a
	 * repository listed for an earlier image shares that listing */
	size_t *same = calloc(n ? n : 1, sizeof(*same));
	unsigned char *want = calloc(n ? n : 1, 1);
	if (rc == 0 && (!same || !want))
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int vo, mode = ref_mode(p, i, &vo);
		same[i] = i;
		if (!p->is_reg[i] || mode == BLD_REFERRERS_NONE) {
			same[i] = n; /* not listed */
			continue;
		}
		for (size_t j = 0; j < i && same[i] == i; j++)
			if (want[j] && strcmp(p->refs[j].host, p->refs[i].host) == 0 &&
			    strcmp(p->refs[j].path, p->refs[i].path) == 0)
				same[i] = j;
		want[i] = same[i] == i;
	}
	size_t bad = 0;
	if (rc == 0 && (rc = par_run(p, tl_one, lists, want, n, &bad, err)) < 0)
		cm_error_wrap(err, "%s:%d: listing the tags of %s/%s", s->file, s->images[bad].line,
			      p->refs[bad].host, p->refs[bad].path);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (same[i] < n && same[i] != i)
			lists[i] = json_incref(lists[same[i]]);
	free(same);
	free(want);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int vo, mode = ref_mode(p, i, &vo);
		const reg_digest *d = &p->plans[i].root.digest;
		if (!p->is_reg[i] || mode == BLD_REFERRERS_NONE || strncmp(d->s, "sha256:", 7) != 0)
			continue;
		for (size_t x = 0; x < 4; x++) {
			if (mode == BLD_REFERRERS_SIGNATURES && x > 0)
				break;
			snprintf(q[k].what, sizeof(q[k].what), "sha256-%.64s%s", d->s + 7, sfx[x]);
			if (lists[i] && !has_tag(lists[i], q[k].what))
				continue; /* listed, and not there */
			q[k].ref = &p->refs[i];
			q[k].head = 1;
			kind[k++] = x;
		}
	}
	if (rc == 0 && k)
		rc = reg_client_manifests(p->c, q, k, err);
	/* room for the API's fallback indexes too: one per image at most */
	if (rc == 0 && !(p->found = calloc(k + n ? k + n : 1, sizeof(*p->found))))
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t j = 0; rc == 0 && j < k; j++) {
		size_t i = img_of(p, &q[j]);
		if (q[j].rc == CM_ENOTFOUND)
			continue;
		if (q[j].rc < 0) {
			char full[700];
			reg_ref_string(full, sizeof(full), q[j].ref);
			*err = q[j].err;
			rc =
			    cm_error_wrap(err, "%s:%d: looking for what is attached to %s (tag %s)",
					  s->file, s->images[i].line, full, q[j].what);
			break;
		}
		if (found_dup(p, i, q[j].what))
			continue;
		found_ref *f = &p->found[p->n_found++];
		f->image = i;
		snprintf(f->tag, sizeof(f->tag), "%s", q[j].what);
		f->kind = kinds[kind[j]];
		f->desc = q[j].desc;
		ref_mode(p, i, &f->verify_only);
	}
	/* the registry's referrers API, for images whose registry keeps no
	 * fallback index for them */
	if (rc == 0)
		rc = referrers_api(p, err);
	for (size_t j = 0; q && j < k; j++)
		cm_buf_free(&q[j].body);
	for (size_t i = 0; lists && i < n; i++)
		json_decref(lists[i]);
	free(lists);
	free(q);
	free(kind);
	return rc;
}

size_t bld_pull_referrers_count(const bld_pull *p)
{
	return p ? p->n_found : 0;
}

/* Copy what tag (desc) names in image i's repository into the store,
 * every child of an index byte-exact (no platforms); *out its image,
 * full its reference. */
static int copy_tag(bld_pull *p, size_t i, const char *tag, const reg_desc *desc, reg_image *out,
		    char *full, size_t n, cm_error *err)
{
	static const char *const all[] = {"all", NULL};
	reg_ref r = p->refs[i];
	r.digest[0] = '\0';
	snprintf(r.tag, sizeof(r.tag), "%.128s", tag); /* at most 76 */
	reg_ref_string(full, n, &r);
	reg_source *src;
	int rc = reg_source_registry_open(&src, p->c, &r, desc, p->st, err);
	if (rc == 0) {
		rc = reg_copy_image(out, p->st, src, full, all, err);
		reg_source_free(src);
	}
	return rc;
}

int bld_pull_copy_referrers(bld_pull *p, size_t i, reg_image *out, bld_referrer *meta, size_t *n,
			    size_t cap, cm_error *err)
{
	for (size_t f = 0; p && f < p->n_found; f++) {
		const found_ref *fr = &p->found[f];
		if (fr->image != i || fr->verify_only)
			continue;
		if (*n >= cap)
			return cm_error_set(err, CM_ENOMEM, "too many referrers");
		char full[700];
		if (copy_tag(p, i, fr->tag, &fr->desc, &out[*n], full, sizeof(full), err) < 0)
			return cm_error_wrap(err, "%s:%d: copying %s", p->s->file,
					     p->s->images[i].line, full);
		bld_referrer *m = &meta[*n];
		memset(m, 0, sizeof(*m));
		m->image = i;
		snprintf(m->subject, sizeof(m->subject), "%s", p->plans[i].root.digest.s);
		snprintf(m->kind, sizeof(m->kind), "%s", fr->kind);
		(*n)++;
	}
	return 0;
}

/* The signature policy (bld_policy.c) of every image under one: its .sig
 * (found by referrers_find, in image i's repository) copied into the store
 * with its blobs, then checked. Runs before any blob is downloaded. */
static int policy_check(bld_pull *p, cm_error *err)
{
	for (size_t i = 0; i < p->s->n_images; i++) {
		if (!p->is_reg[i] || !bld_spec_verify(p->s, i))
			continue;
		char t[80], sref[700];
		snprintf(t, sizeof(t), "sha256-%.64s.sig", p->plans[i].root.digest.s + 7);
		const found_ref *sig = NULL;
		for (size_t f = 0; f < p->n_found && !sig; f++) {
			const reg_ref *a = &p->refs[p->found[f].image];
			if (strcmp(p->found[f].tag, t) == 0 &&
			    strcmp(a->host, p->refs[i].host) == 0 &&
			    strcmp(a->path, p->refs[i].path) == 0)
				sig = &p->found[f];
		}
		reg_image img = {0};
		if (sig && copy_tag(p, i, t, &sig->desc, &img, sref, sizeof(sref), err) < 0)
			return cm_error_wrap(err, "%s:%d: fetching the signature %s", p->s->file,
					     p->s->images[i].line, sref);
		int rc = bld_policy_check(p->s, i, p->full[i], &p->plans[i].root.digest, p->st,
					  sig ? &img.root : NULL, p->o->log, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int bld_pull_prepare(bld_pull **out, const bld_spec *s, reg_store *st, const bld_build_opts *o,
		     cm_error *err)
{
	*out = NULL;
	bld_pull *p = calloc(1, sizeof(*p));
	if (!p)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	p->s = s;
	p->o = o;
	p->st = st;
	p->t0 = now_s();
	p->prog.mode = o->progress;
	p->prog.out = o->progress_out ? o->progress_out : (o->log ? o->log : stderr);
	int rc = 0;
	size_t n = s->n_images;
	p->refs = calloc(n ? n : 1, sizeof(*p->refs));
	p->full = calloc(n ? n : 1, sizeof(*p->full));
	p->plans = calloc(n ? n : 1, sizeof(*p->plans));
	p->is_reg = calloc(n ? n : 1, sizeof(int));
	p->heads = calloc(n ? n : 1, sizeof(*p->heads));
	p->eps = calloc(s->n_registries ? s->n_registries : 1, sizeof(*p->eps));
	if (!p->refs || !p->full || !p->plans || !p->is_reg || !p->heads || !p->eps) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		p->n_reg += p->is_reg[i] = !s->images[i].from[0];
	*out = p;
	if (p->n_reg == 0)
		return 0;
	for (size_t i = 0; i < s->n_registries; i++) {
		const bld_registry_spec *rs = &s->registries[i];
		reg_endpoint *e = &p->eps[i];
		snprintf(e->prefix, sizeof(e->prefix), "%s", rs->prefix);
		snprintf(e->endpoint, sizeof(e->endpoint), "%s", rs->endpoint);
		e->insecure = rs->insecure;
		for (size_t j = 0; j < rs->n_realm_creds && j < REG_REALM_CREDS_MAX; j++)
			snprintf(e->realm_creds[e->n_realm_creds++], sizeof(e->realm_creds[0]),
				 "%s", rs->realm_creds[j]);
		if (bld_spec_path(e->ca, sizeof(e->ca), s, rs->ca) < 0 ||
		    bld_spec_path(e->cert, sizeof(e->cert), s, rs->cert) < 0 ||
		    bld_spec_path(e->key, sizeof(e->key), s, rs->key) < 0) {
			rc =
			    cm_error_set(err, CM_EINVAL, "%s:%d: path too long", s->file, rs->line);
			goto fail;
		}
	}
	reg_client_opts co = {0};
	co.jobs = o->jobs;
	co.retry_budget = o->retry_budget > 0 ? o->retry_budget : -1;
	co.endpoints = p->eps;
	co.n_endpoints = s->n_registries;
	co.progress = bld_progress_event;
	co.progress_ud = &p->prog;
	if ((rc = reg_client_new(&p->c, &co, err)) < 0)
		goto fail;
	if (o->locked) {
		char lp[PATH_MAX];
		if ((rc = lock_path(lp, sizeof(lp), s->file, err)) < 0 ||
		    (rc = lock_read(p, lp, err)) < 0)
			goto fail;
	}
	/* 1. resolve every image: HEAD tags, GET manifests not held; all at
	 * once first, then the planner image by image from the store */
	for (size_t i = 0; i < n; i++) {
		if (!p->is_reg[i])
			continue;
		if ((rc = reg_ref_parse(&p->refs[i], s->images[i].ref, err)) < 0) {
			cm_error_wrap(err, "%s:%d", s->file, s->images[i].line);
			goto fail;
		}
		reg_ref_string(p->full[i], sizeof(p->full[i]), &p->refs[i]);
	}
	if ((rc = prefetch(p, p->heads, err)) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (!p->is_reg[i])
			continue;
		const bld_image_spec *is = &s->images[i];
		reg_ref *r = &p->refs[i];
		const char *full = p->full[i];
		const char *const *plat = image_platforms(s, i, r);
		const reg_digest *pin = p->heads[i].digest.s[0] ? &p->heads[i].digest : NULL;
		if ((rc = reg_pull_plan_make(&p->plans[i], p->c, st, r, pin, plat, err)) < 0) {
			cm_error_wrap(err, "%s:%d: pulling %s", s->file, is->line, full);
			goto fail;
		}
		if (o->locked && !r->digest[0]) {
			const lock_entry *le = p->lock;
			while (le < p->lock + p->n_lock && strcmp(le->ref, full) != 0)
				le++;
			if (le == p->lock + p->n_lock) {
				rc = cm_error_set(
				    err, CM_EVERIFY,
				    "%s:%d: %s is not in the lock file; rerun with --lock to "
				    "pin it",
				    s->file, is->line, full);
				goto fail;
			}
			if (strcmp(le->digest, p->plans[i].root.digest.s) != 0) {
				rc = cm_error_set(
				    err, CM_EVERIFY,
				    "%s:%d: %s now points to %s, but the lock file pins %s; "
				    "rerun with --lock to accept the new digest",
				    s->file, is->line, full, p->plans[i].root.digest.s, le->digest);
				goto fail;
			}
		}
		bld_progress_resolve(&p->prog, full, p->plans[i].root.digest.s,
				     p->plans[i].n_blobs);
	}
	if ((rc = referrers_find(p, err)) < 0 || (rc = policy_check(p, err)) < 0)
		goto fail;
	/* 2. the blobs of every image, once: fetched by bld_pull_fetch */
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += p->plans[i].n_blobs;
	p->batch = calloc(total ? total : 1, sizeof(*p->batch));
	if (!p->batch) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto fail;
	}
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < p->plans[i].n_blobs; j++) {
			const reg_blob_req *b = &p->plans[i].blobs[j];
			int dup = 0;
			for (size_t k = 0; k < m && !dup; k++)
				dup = reg_digest_equal(&p->batch[k].desc.digest, &b->desc.digest);
			if (dup || bld_base_holds(p->o->base, &b->desc))
				continue; /* once; a delta's base blobs never */
			p->batch[m] = *b;
			p->batch[m].ref = &p->refs[i];
			p->blobs_total++;
			p->bytes_total += b->desc.size;
			uint64_t have;
			if (reg_store_has(st, &b->desc.digest, &have) && have == b->desc.size) {
				p->blobs_reused++;
				p->bytes_reused += b->desc.size;
			}
			m++;
		}
	p->n_batch = m;
	p->pull_secs = now_s() - p->t0; /* bld_pull_fetch adds the downloads */
	return 0;
fail:
	bld_progress_end(&p->prog);
	bld_pull_free(p);
	*out = NULL;
	return rc;
}

int bld_pull_pending(void *ud, const reg_digest *d)
{
	bld_pull *p = ud;
	if (!p)
		return 0;
	for (size_t k = 0; k < p->n_batch; k++)
		if (reg_digest_equal(&p->batch[k].desc.digest, d))
			return 1;
	/* a delta's base blob: not fetched now or later (the bundle omits it) */
	const reg_receipt_blob *b = p->o->base ? reg_receipt_blob_find(p->o->base, d) : NULL;
	return b != NULL;
}

int bld_pull_fetch(bld_pull *p, reg_tee *(*tee_for)(void *ud, const reg_digest *d), void *ud,
		   cm_error *err)
{
	if (!p || !p->c || p->fetched)
		return 0;
	p->fetched = 1;
	const bld_spec *s = p->s;
	size_t n = s->n_images;
	for (size_t k = 0; k < p->n_batch; k++)
		p->batch[k].tee = tee_for ? tee_for(ud, &p->batch[k].desc.digest) : NULL;
	int rc = reg_client_fetch_blobs(p->c, p->st, p->batch, p->n_batch, err);
	p->pull_secs = now_s() - p->t0;
	if (rc < 0) {
		/* name the image(s) the failing blob belongs to */
		const char *d = err->digest[0] ? err->digest : NULL;
		size_t users = 0, first = 0;
		for (size_t i = 0; d && i < n; i++)
			for (size_t j = 0; j < p->plans[i].n_blobs; j++)
				if (strncmp(p->plans[i].blobs[j].desc.digest.s, d,
					    REG_DIGEST_STRLEN) == 0) {
					if (!users++)
						first = i;
					break;
				}
		if (users) {
			if (users > 1)
				cm_error_wrap(err, "%s:%d: pulling %s (and %zu more images)",
					      s->file, s->images[first].line, p->full[first],
					      users - 1);
			else
				cm_error_wrap(err, "%s:%d: pulling %s", s->file,
					      s->images[first].line, p->full[first]);
		}
	}
	bld_progress_end(&p->prog);
	return rc;
}

int bld_pull_copy(bld_pull *p, size_t i, reg_image *img, cm_error *err)
{
	reg_source *src;
	const bld_image_spec *is = &p->s->images[i];
	const char *full = p->full[i];
	int rc = reg_source_registry_open(&src, p->c, &p->refs[i], &p->plans[i].root, p->st, err);
	if (rc < 0)
		return cm_error_wrap(err, "%s:%d: pulling %s", p->s->file, is->line, full);
	const char *const *plat = image_platforms(p->s, i, &p->refs[i]);
	/* blobs not in the store yet arrive later, in bld_pull_fetch */
	src->deferred = bld_pull_pending;
	src->deferred_ud = p;
	rc = reg_copy_image(img, p->st, src, full, plat, err);
	reg_source_free(src);
	if (rc < 0)
		return cm_error_wrap(err, "%s:%d: pulling %s", p->s->file, is->line, full);
	/* a pinned index narrowed to one platform: say so (the digest changed) */
	if (p->refs[i].digest[0] && !img->note[0] &&
	    strcmp(img->root.digest.s, p->refs[i].digest) != 0)
		snprintf(img->note, sizeof(img->note),
			 "index %.71s narrowed to %.60s by platform; manifest %.71s kept",
			 p->refs[i].digest, img->platforms[0] ? img->platforms : plat[0],
			 img->root.digest.s);
	return 0;
}

unsigned long long bld_pull_fetched(const bld_pull *p)
{
	return p && p->c ? (unsigned long long)reg_client_stats_get(p->c)->blob_bytes : 0;
}

int bld_pull_finish(bld_pull *p, cm_error *err)
{
	if (!p || !p->c)
		return 0;
	int rc = 0;
	if (p->o->lock && (rc = lock_write(p, err)) < 0)
		return rc;
	const reg_client_stats *cs = reg_client_stats_get(p->c);
	size_t n_ref = 0; /* carried: a .sig checked under referrers: none is not */
	for (size_t f = 0; f < p->n_found; f++)
		n_ref += !p->found[f].verify_only;
	double secs = now_s() - p->t0;
	char f[32], r[32], rl[400] = "no rate-limit headers seen";
	bld_human_bytes(f, sizeof(f), (double)cs->blob_bytes);
	bld_human_bytes(r, sizeof(r), (double)p->bytes_reused);
	if (cs->ratelimit_remaining >= 0)
		snprintf(rl, sizeof(rl), "rate limit: %ld left%s%ld on %s", cs->ratelimit_remaining,
			 cs->ratelimit_limit >= 0 ? " of " : "",
			 cs->ratelimit_limit >= 0 ? cs->ratelimit_limit : 0, cs->ratelimit_host);
	if (p->prog.mode == BLD_PROGRESS_JSON) {
		json_t *o = json_pack(
		    "{s:s,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:f,s:I,s:I}", "event",
		    "summary", "images", (int)p->n_reg, "blobs", (json_int_t)p->blobs_total,
		    "blobs_fetched", (json_int_t)cs->blobs, "blobs_reused",
		    (json_int_t)p->blobs_reused, "bytes_fetched", (json_int_t)cs->blob_bytes,
		    "bytes_reused", (json_int_t)p->bytes_reused, "manifest_heads",
		    (json_int_t)cs->manifest_heads, "manifest_gets", (json_int_t)cs->manifest_gets,
		    "retries", (json_int_t)cs->retries, "seconds", secs, "ratelimit_remaining",
		    (json_int_t)cs->ratelimit_remaining, "pull_seconds", p->pull_secs,
		    "http2_responses", (json_int_t)cs->http2, "referrers", (json_int_t)n_ref);
		bld_progress_json(&p->prog, o);
	} else {
		bld_progress_msg(
		    &p->prog,
		    "pulled %zu images: %llu blobs, %llu fetched (%s), %llu reused (%s); "
		    "%llu HEAD, %llu manifest GET, %llu retries, %llu resumed; %.1fs (pull %.1fs); "
		    "%s; %zu referrers",
		    p->n_reg, (unsigned long long)p->blobs_total, (unsigned long long)cs->blobs, f,
		    (unsigned long long)p->blobs_reused, r, (unsigned long long)cs->manifest_heads,
		    (unsigned long long)cs->manifest_gets, (unsigned long long)cs->retries,
		    (unsigned long long)cs->resumes, secs, p->pull_secs, rl, n_ref);
	}
	return 0;
}

void bld_pull_free(bld_pull *p)
{
	if (!p)
		return;
	for (size_t i = 0; p->plans && i < p->s->n_images; i++)
		reg_pull_plan_free(&p->plans[i]);
	reg_client_free(p->c);
	free(p->plans);
	free(p->refs);
	free(p->full);
	free(p->is_reg);
	free(p->eps);
	free(p->lock);
	free(p->batch);
	free(p->heads);
	free(p->found);
	free(p);
}
