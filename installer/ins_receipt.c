#include "ins_receipt.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ins_install.h"
#include "ins_runner.h"
#include "ins_verify.h"
#include "reg_client.h"
#include "reg_manifest.h"

int ins_rbundle_open(ins_rbundle *out, const char *path, const sig_pubkey *key, int full,
		     cm_error *err)
{
	memset(out, 0, sizeof(*out));
	out->bundle_json = (cm_buf)CM_BUF_INIT;
	reg_bidx_opts o = {.bundle = path,
			   .mode = full ? REG_BIDX_FULL : REG_BIDX_LAZY,
			   .insecure_skip_signature = key == NULL,
			   .bundle_json = &out->bundle_json,
			   .check_sig = key ? ins_verify_check_sig : NULL,
			   .sig_ctx = (void *)key};
	int rc = reg_bidx_open(&out->x, &out->info, &o, err);
	if (rc < 0) {
		cm_error_wrap(err, "%s", path);
		ins_rbundle_close(out);
	}
	return rc;
}

void ins_rbundle_close(ins_rbundle *b)
{
	if (!b)
		return;
	reg_bidx_free(b->x);
	b->x = NULL;
	cm_buf_free(&b->bundle_json);
}

/* bundle.json's images: ref, digest and media type each. */
typedef struct bj_image {
	char ref[512];
	reg_desc root;
} bj_image;

static int bj_images(bj_image **out, size_t *n, const cm_buf *bj, cm_error *err)
{
	*out = NULL;
	*n = 0;
	json_t *root = json_loadb(bj->data ? bj->data : "", bj->len, 0, NULL);
	json_t *a = json_object_get(root, "images");
	if (!json_is_array(a)) {
		json_decref(root);
		return cm_error_set(err, CM_EVERIFY, "bundle.json has no images list");
	}
	size_t k = json_array_size(a), i;
	json_t *v;
	int rc = 0;
	if (k > REG_RECEIPT_MAX_IMAGES || !(*out = calloc(k ? k : 1, sizeof(**out)))) {
		json_decref(root);
		return cm_error_set(err, CM_EINVAL, "bundle.json: too many images");
	}
	json_array_foreach(a, i, v)
	{
		const char *ref = json_string_value(json_object_get(v, "ref"));
		const char *dg = json_string_value(json_object_get(v, "digest"));
		const char *mt = json_string_value(json_object_get(v, "mediaType"));
		bj_image *im = &(*out)[i];
		if (!ref || !dg || strlen(ref) >= sizeof(im->ref) ||
		    reg_digest_parse(&im->root.digest, dg, err) < 0) {
			rc = cm_error_set(err, CM_EVERIFY, "bundle.json: images[%zu] is malformed",
					  i);
			break;
		}
		memcpy(im->ref, ref, strlen(ref) + 1);
		snprintf(im->root.media_type, sizeof(im->root.media_type), "%s", mt ? mt : "");
	}
	json_decref(root);
	if (rc < 0) {
		free(*out);
		*out = NULL;
		return rc;
	}
	*n = k;
	return 0;
}

int ins_receipt_add_bundle(reg_receipt *r, const ins_rbundle *b, cm_error *err)
{
	reg_receipt_bundle id;
	int rc = reg_receipt_bundle_from_json(&id, b->bundle_json.data ? b->bundle_json.data : "",
					      b->bundle_json.len, b->info.sums_sha256, err);
	if (rc < 0 || (rc = reg_receipt_add_bundle(r, &id, err)) < 0)
		return rc;
	bj_image *imgs;
	size_t n;
	if ((rc = bj_images(&imgs, &n, &b->bundle_json, err)) < 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = reg_receipt_add_image(r, imgs[i].ref, &imgs[i].root.digest, err);
	free(imgs);
	const reg_bidx_member *m = reg_bidx_members(b->x);
	size_t cnt = reg_bidx_count(b->x);
	for (size_t i = 0; rc == 0 && i < cnt; i++) {
		if (strncmp(m[i].path, "blobs/sha256/", 13) != 0)
			continue;
		reg_digest d;
		char s[REG_DIGEST_STRLEN + 1];
		snprintf(s, sizeof(s), "sha256:%.64s", m[i].hex);
		if ((rc = reg_digest_parse(&d, s, err)) == 0)
			rc = reg_receipt_add_blob(r, &d, m[i].size, err);
	}
	return rc < 0 ? rc : reg_receipt_sort(r, err);
}

int ins_delta_read(reg_receipt *base, int *is_delta, const char *bundle_json, size_t len,
		   cm_error *err)
{
	memset(base, 0, sizeof(*base));
	*is_delta = 0;
	json_t *root = json_loadb(bundle_json, len, 0, NULL);
	json_t *d = json_object_get(root, "delta");
	if (!d) {
		json_decref(root);
		return 0;
	}
	int rc;
	json_t *bb = json_object_get(d, "baseBundles"), *om = json_object_get(d, "omitted");
	if (!json_is_object(d) || !json_is_array(bb) || !json_is_array(om)) {
		json_decref(root);
		return cm_error_set(err, CM_EVERIFY,
				    "bundle.json: \"delta\" lacks baseBundles or omitted");
	}
	/* the same shape as a receipt: parsed (and capped) by the same code */
	json_t *rec = json_pack("{s:i,s:O,s:O}", "receiptVersion", 1, "bundles", bb, "blobs", om);
	char *t = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
	json_decref(rec);
	json_decref(root);
	if (!t)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	rc = reg_receipt_parse(base, t, strlen(t), "bundle.json: delta", err);
	free(t);
	if (rc < 0)
		return rc == CM_EINVAL ? (err->code = CM_EVERIFY, CM_EVERIFY) : rc;
	*is_delta = 1;
	return 0;
}

/* Walk desc d of image ref: fn(ctx, ref, desc) for every config and layer
 * it needs (an index's children walked), manifests read through the
 * reader. */
static int walk(ins_rbundle *b, const char *ref, const reg_desc *d, int depth, ins_walk_fn fn,
		void *ctx, cm_error *err)
{
	if (depth > 2)
		return cm_error_set(err, CM_EVERIFY, "%s: manifest %s nests too deeply", ref,
				    d->digest.s);
	uint32_t id = reg_bidx_find_blob(b->x, &d->digest);
	if (id == REG_BIDX_NONE)
		return cm_error_set(err, CM_EVERIFY, "%s: manifest %s is not in the bundle", ref,
				    d->digest.s);
	cm_buf buf = CM_BUF_INIT;
	reg_manifest man;
	int rc = reg_bidx_read(&buf, b->x, id, REG_MANIFEST_MAX, err);
	if (rc == 0)
		rc = reg_manifest_parse(&man, buf.data, buf.len,
					d->media_type[0] ? d->media_type : NULL, err);
	cm_buf_free(&buf);
	if (rc < 0)
		return cm_error_wrap(err, "%s: manifest %s", ref, d->digest.s);
	if (!man.is_index)
		rc = fn(ctx, ref, &man.config, err);
	for (size_t i = 0; rc == 0 && i < man.n_items; i++) {
		const reg_desc *c = &man.items[i];
		if (man.is_index) /* a narrowed index lists only the children kept */
			rc = walk(b, ref, c, depth + 1, fn, ctx, err);
		else
			rc = fn(ctx, ref, c, err);
	}
	reg_manifest_free(&man);
	return rc;
}

int ins_delta_walk(ins_rbundle *b, ins_walk_fn fn, void *ctx, cm_error *err)
{
	bj_image *imgs;
	size_t n;
	int rc = bj_images(&imgs, &n, &b->bundle_json, err);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = walk(b, imgs[i].ref, &imgs[i].root, 0, fn, ctx, err);
	free(imgs);
	return rc;
}

typedef struct self_ctx {
	ins_rbundle *b;
	const reg_receipt *om;
} self_ctx;

static int self_check(void *ctx, const char *ref, const reg_desc *d, cm_error *err)
{
	self_ctx *s = ctx;
	uint32_t id = reg_bidx_find_blob(s->b->x, &d->digest);
	if (id != REG_BIDX_NONE) {
		reg_bidx_member m;
		reg_bidx_member_at(s->b->x, id, &m);
		if (m.size != d->size)
			return cm_error_set(err, CM_EVERIFY,
					    "%s: blob %s is %llu bytes, its manifest says %llu",
					    ref, d->digest.s, (unsigned long long)m.size,
					    (unsigned long long)d->size);
		return 0;
	}
	const reg_receipt_blob *o = reg_receipt_blob_find(s->om, &d->digest);
	if (!o)
		return cm_error_set(err, CM_EVERIFY,
				    "%s: blob %s is neither in the bundle nor listed as omitted",
				    ref, d->digest.s);
	if (o->size != d->size)
		return cm_error_set(
		    err, CM_EVERIFY,
		    "%s: blob %s is listed as omitted with %llu bytes, its manifest "
		    "says %llu",
		    ref, d->digest.s, (unsigned long long)o->size, (unsigned long long)d->size);
	return 0;
}

int ins_delta_check_self(ins_rbundle *b, const reg_receipt *omitted, cm_error *err)
{
	self_ctx s = {b, omitted};
	for (size_t i = 0; i < omitted->n_blobs; i++)
		if (reg_bidx_find_blob(b->x, &omitted->blobs[i].digest) != REG_BIDX_NONE)
			return cm_error_set(err, CM_EVERIFY,
					    "bundle.json lists %s as omitted, but the bundle "
					    "holds it",
					    omitted->blobs[i].digest.s);
	return ins_delta_walk(b, self_check, &s, err);
}

typedef struct users_ctx {
	const reg_digest *d;
	char *out;
	size_t n, len;
} users_ctx;

static int users_fn(void *ctx, const char *ref, const reg_desc *d, cm_error *err)
{
	(void)err;
	users_ctx *u = ctx;
	if (!reg_digest_equal(&d->digest, u->d))
		return 0;
	for (const char *p = strstr(u->out, ref); p; p = strstr(p + 1, ref)) {
		size_t l = strlen(ref);
		if ((p == u->out || p[-1] == ' ') && (p[l] == ',' || p[l] == '\0'))
			return 0; /* listed already (a blob two platforms share) */
	}
	if (u->len + strlen(ref) + 3 >= u->n)
		return 0;
	int k = snprintf(u->out + u->len, u->n - u->len, "%s%s", u->len ? ", " : "", ref);
	if (k > 0)
		u->len += (size_t)k;
	return 0;
}

void ins_delta_users(char *out, size_t n, ins_rbundle *b, const reg_digest *d)
{
	users_ctx u = {d, out, n, 0};
	cm_error e = {0};
	out[0] = '\0';
	ins_delta_walk(b, users_fn, &u, &e);
}

int ins_delta_check_bases(reg_receipt *missing, const reg_receipt *omitted, ins_rbundle *bases,
			  const char *const *names, size_t n, cm_error *err)
{
	memset(missing, 0, sizeof(*missing));
	for (size_t i = 0; i < n && omitted->n_bundles; i++) {
		size_t k = 0;
		while (k < omitted->n_bundles &&
		       strcmp(omitted->bundles[k].sums, bases[i].info.sums_sha256) != 0)
			k++;
		if (k == omitted->n_bundles)
			return cm_error_set(err, CM_EVERIFY,
					    "%s is not a base of this delta: it was built against "
					    "%s %s (SHA256SUMS sha256 %s)%s",
					    names[i], omitted->bundles[0].name,
					    omitted->bundles[0].version, omitted->bundles[0].sums,
					    omitted->n_bundles > 1 ? " and others" : "");
	}
	for (size_t j = 0; j < omitted->n_blobs; j++) {
		const reg_receipt_blob *o = &omitted->blobs[j];
		int found = 0;
		for (size_t i = 0; i < n && !found; i++) {
			uint32_t id = reg_bidx_find_blob(bases[i].x, &o->digest);
			if (id == REG_BIDX_NONE)
				continue;
			reg_bidx_member m;
			reg_bidx_member_at(bases[i].x, id, &m);
			found = m.size == o->size && reg_bidx_is_verified(bases[i].x, id);
		}
		int rc;
		if (!found && (rc = reg_receipt_add_blob(missing, &o->digest, o->size, err)) < 0) {
			reg_receipt_free(missing);
			return rc;
		}
	}
	return 0;
}

size_t ins_delta_find(reg_bidx *const *x, size_t n, const reg_digest *d, uint64_t size,
		      uint32_t *id)
{
	for (size_t i = 0; i < n; i++) {
		reg_bidx_member m;
		if ((*id = reg_bidx_find_blob(x[i], d)) == REG_BIDX_NONE)
			continue;
		reg_bidx_member_at(x[i], *id, &m);
		if (m.size == size)
			return i;
	}
	return n;
}

int ins_delta_set_open(ins_delta_set *out, reg_bidx *x, const char *bundle_json, size_t len,
		       const char *const *bases, size_t n, const char *pubkey, int insecure,
		       cm_error *err)
{
	memset(out, 0, sizeof(*out));
	int rc = ins_delta_read(&out->omitted, &out->is_delta, bundle_json, len, err);
	if (rc < 0 || !out->is_delta)
		return rc;
	ins_rbundle self;
	memset(&self, 0, sizeof(self));
	self.x = x; /* a view: the caller owns the reader and the bytes */
	self.bundle_json.data = (char *)bundle_json;
	self.bundle_json.len = len;
	if ((rc = ins_delta_check_self(&self, &out->omitted, err)) < 0)
		return rc;
	if (n == 0)
		return 0;
	if (!(out->bases = calloc(n, sizeof(*out->bases))) ||
	    !(out->x = calloc(n, sizeof(*out->x))))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	sig_pubkey *key = NULL;
	char fpr[SIG_FPR_LEN + 1];
	rc = ins_verify_key(&key, fpr, pubkey, insecure, err);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if ((rc = ins_rbundle_open(&out->bases[i], bases[i], key, 1, err)) == 0)
			out->x[out->n++] = out->bases[i].x;
	sig_pubkey_free(key);
	if (rc < 0)
		return rc;
	reg_receipt missing;
	rc = ins_delta_check_bases(&missing, &out->omitted, out->bases, bases, n, err);
	if (rc == 0)
		reg_receipt_free(&missing);
	return rc;
}

void ins_delta_set_free(ins_delta_set *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		ins_rbundle_close(&d->bases[i]);
	free(d->bases);
	free(d->x);
	reg_receipt_free(&d->omitted);
	memset(d, 0, sizeof(*d));
}

/* ---- a containerd node ------------------------------------------------ */

#define CTR_OUT_MAX ((size_t)64 << 20)

typedef struct ctr_ctx {
	const char *sock, *ns;
	reg_receipt held; /* `content ls -q`, sorted */
	reg_receipt *r;
} ctr_ctx;

static int ctr_run(cm_buf *out, const ctr_ctx *c, const char *const *rest, size_t cap,
		   cm_error *err)
{
	ins_argv a = {NULL, 0, 0};
	int rc = ins_argv_add(&a, "ctr", err);
	if (rc == 0)
		rc = ins_argv_addf(&a, err, "--address=%s", c->sock);
	if (rc == 0)
		rc = ins_argv_addf(&a, err, "--namespace=%s", c->ns);
	if (rc == 0)
		rc = ins_argv_addv(&a, rest, err);
	if (rc == 0) {
		ins_proc_io io = {.out = out};
		out->len = 0;
		out->limit = cap;
		rc = ins_proc_run((const char *const *)a.v, &io, err);
	}
	ins_argv_free(&a);
	return rc;
}

static int ctr_walk(ctr_ctx *c, const reg_desc *d, int depth, cm_error *err)
{
	if (!reg_receipt_blob_find(&c->held, &d->digest))
		return 0; /* not held (e.g. a platform that was not pulled) */
	if (!reg_media_type_is_index(d->media_type) && !reg_media_type_is_manifest(d->media_type))
		return reg_receipt_add_blob(c->r, &d->digest, d->size, err);
	if (depth > 2)
		return cm_error_set(err, CM_EINVAL, "manifest %s nests too deeply", d->digest.s);
	cm_buf b = CM_BUF_INIT;
	const char *get[] = {"content", "get", d->digest.s, NULL};
	int rc = ctr_run(&b, c, get, REG_MANIFEST_MAX, err);
	reg_digest got;
	if (rc == 0 && (rc = reg_digest_buf(&got, b.data ? b.data : "", b.len, err)) == 0 &&
	    !reg_digest_equal(&got, &d->digest))
		rc = cm_error_set(err, CM_EVERIFY, "containerd's %s hashes to %s", d->digest.s,
				  got.s);
	reg_manifest man;
	if (rc == 0 &&
	    (rc = reg_manifest_parse(&man, b.data, b.len, d->media_type[0] ? d->media_type : NULL,
				     err)) == 0) {
		rc = reg_receipt_add_blob(c->r, &d->digest, b.len, err);
		if (rc == 0 && !man.is_index)
			rc = ctr_walk(c, &man.config, depth + 1, err);
		for (size_t i = 0; rc == 0 && i < man.n_items; i++)
			rc = ctr_walk(c, &man.items[i], depth + 1, err);
		reg_manifest_free(&man);
	}
	cm_buf_free(&b);
	return rc < 0 ? cm_error_wrap(err, "manifest %s", d->digest.s) : 0;
}

int ins_receipt_add_containerd(reg_receipt *r, const char *sock, const char *ns, cm_error *err)
{
	ctr_ctx c = {.sock = sock, .ns = ns ? ns : "k8s.io", .r = r};
	cm_buf q = CM_BUF_INIT, il = CM_BUF_INIT;
	const char *ls[] = {"content", "ls", "-q", NULL};
	const char *ils[] = {"images", "ls", NULL};
	char *p, *line;
	reg_digest held;
	int rc = ctr_run(&q, &c, ls, CTR_OUT_MAX, err);
	p = q.data;
	while (rc == 0 && p && (line = ins_next_line(&p)))
		if (reg_digest_parse(&held, line, NULL) == 0)
			rc = reg_receipt_add_blob(&c.held, &held, 0, err);
	if (rc == 0)
		rc = reg_receipt_sort(&c.held, err);
	if (rc == 0)
		rc = ctr_run(&il, &c, ils, CTR_OUT_MAX, err);
	/* REF TYPE DIGEST SIZE PLATFORMS LABELS, after a header line */
	p = il.data;
	int header = 1;
	while (rc == 0 && p && (line = ins_next_line(&p))) {
		char ref[512], type[256], dg[128];
		if (header) {
			header = 0;
			continue;
		}
		if (sscanf(line, "%511s %255s %127s", ref, type, dg) != 3)
			continue;
		reg_desc d;
		memset(&d, 0, sizeof(d));
		if (reg_digest_parse(&d.digest, dg, err) < 0) {
			rc = cm_error_wrap(err, "ctr images ls: %s", ref);
			break;
		}
		snprintf(d.media_type, sizeof(d.media_type), "%s", type);
		if ((rc = reg_receipt_add_image(r, ref, &d.digest, err)) == 0)
			rc = ctr_walk(&c, &d, 0, err);
		if (rc < 0)
			cm_error_wrap(err, "image %s", ref);
	}
	reg_receipt_free(&c.held);
	cm_buf_free(&q);
	cm_buf_free(&il);
	if (rc == 0)
		rc = reg_receipt_sort(r, err);
	return rc < 0 ? cm_error_wrap(err, "containerd %s", sock) : 0;
}

/* ---- a registry ------------------------------------------------------- */

typedef struct rg_ctx {
	reg_receipt *r;
	reg_client *c;
	const char *host, *base; /* the target's (ins_push_target) */
	size_t n_manifests;	 /* fetched so far (INS_RECEIPT_MAX_MANIFESTS) */
} rg_ctx;

/* Manifest GETs at once: bounds the bodies held (each at most
 * REG_MANIFEST_MAX) while keeping several requests in flight. */
#define RG_BATCH 32

/* GET the manifests whats[0..n) of repository ref (tags when img_refs is
 * non-NULL: each recorded as image img_refs[i]; else an index's children
 * by digest, at depth), RG_BATCH at a time: each recorded as a blob with
 * the configs and layers it names, and an index's child manifests fetched
 * the same way (depth + 1, at most 2). */
static int rg_fetch(rg_ctx *g, const reg_ref *ref, char *const *whats, size_t n,
		    char *const *img_refs, int depth, cm_error *err)
{
	int rc = 0;
	for (size_t at = 0; rc == 0 && at < n; at += RG_BATCH) {
		size_t m = n - at < RG_BATCH ? n - at : RG_BATCH;
		if ((g->n_manifests += m) > INS_RECEIPT_MAX_MANIFESTS)
			return cm_error_set(err, CM_EINVAL, "more than %d manifests (the cap)",
					    INS_RECEIPT_MAX_MANIFESTS);
		reg_manifest_req v[RG_BATCH];
		memset(v, 0, sizeof(v));
		for (size_t i = 0; i < m; i++) {
			v[i].ref = ref;
			v[i].body = (cm_buf)CM_BUF_INIT;
			snprintf(v[i].what, sizeof(v[i].what), "%s", whats[at + i]);
		}
		char **kids = NULL; /* child manifests' digests */
		size_t n_kids = 0, cap = 0;
		rc = reg_client_manifests(g->c, v, m, err);
		for (size_t i = 0; rc == 0 && i < m; i++) {
			reg_manifest_req *q = &v[i];
			if (q->rc < 0) {
				if (depth > 0 && q->rc == CM_ENOTFOUND)
					continue; /* a sparse index: a child the registry lacks */
				*err = q->err;
				rc = cm_error_wrap(err, "%s%s%s", ref->path, depth ? "@" : ":",
						   q->what);
				break;
			}
			reg_manifest man;
			if ((rc = reg_manifest_parse(&man, q->body.data ? q->body.data : "",
						     q->body.len, q->mt[0] ? q->mt : NULL, err)) <
			    0) {
				cm_error_wrap(err, "%s: manifest %s", ref->path, q->what);
				break;
			}
			if (img_refs)
				rc = reg_receipt_add_image(g->r, img_refs[at + i], &q->desc.digest,
							   err);
			if (rc == 0)
				rc = reg_receipt_add_blob(g->r, &q->desc.digest, q->body.len, err);
			if (rc == 0 && !man.is_index)
				rc = reg_receipt_add_blob(g->r, &man.config.digest, man.config.size,
							  err);
			for (size_t k = 0; rc == 0 && k < man.n_items; k++) {
				const reg_desc *d = &man.items[k];
				if (!man.is_index) {
					rc = reg_receipt_add_blob(g->r, &d->digest, d->size, err);
					continue;
				}
				if (!reg_media_type_is_manifest(d->media_type) &&
				    !reg_media_type_is_index(d->media_type))
					continue;
				if (depth >= 2) {
					rc = cm_error_set(err, CM_EINVAL,
							  "%s: manifest %s nests too deeply",
							  ref->path, d->digest.s);
					break;
				}
				char **nv = cm_grow(kids, n_kids, &cap, sizeof(*nv), err);
				if (!nv) {
					rc = CM_ENOMEM;
					break;
				}
				if (!((kids = nv)[n_kids] = strdup(d->digest.s)))
					rc = cm_error_set(err, CM_ENOMEM, "out of memory");
				else
					n_kids++;
			}
			reg_manifest_free(&man);
		}
		for (size_t i = 0; i < m; i++)
			cm_buf_free(&v[i].body);
		if (rc == 0 && n_kids)
			rc = rg_fetch(g, ref, kids, n_kids, NULL, depth + 1, err);
		for (size_t i = 0; i < n_kids; i++)
			free(kids[i]);
		free(kids);
	}
	return rc;
}

/* Every tag of repository repo (on the registry; the bundle's name is
 * name): its manifests, recorded. */
static int rg_repo(rg_ctx *g, reg_lane *l, const reg_endpoint *ep, const char *repo,
		   const char *name, size_t max_tags, cm_error *err)
{
	reg_ref ref;
	memset(&ref, 0, sizeof(ref));
	if (snprintf(ref.host, sizeof(ref.host), "%s", g->host) >= (int)sizeof(ref.host) ||
	    snprintf(ref.path, sizeof(ref.path), "%s", repo) >= (int)sizeof(ref.path))
		return cm_error_set(err, CM_EINVAL, "repository %.200s: name too long", repo);
	reg_names tags;
	int rc = reg_list_tags(&tags, l, ep, g->base, repo, max_tags, err);
	if (rc < 0) {
		reg_names_free(&tags);
		return cm_error_wrap(err, "repository %s", repo);
	}
	char **refs = calloc(tags.n ? tags.n : 1, sizeof(*refs));
	if (!refs)
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < tags.n; i++) {
		size_t k = strlen(name) + strlen(tags.v[i]) + 2;
		if (!(refs[i] = malloc(k))) {
			rc = cm_error_set(err, CM_ENOMEM, "out of memory");
			break;
		}
		snprintf(refs[i], k, "%s:%s", name, tags.v[i]);
		if (strlen(refs[i]) >= sizeof(((reg_receipt_image *)0)->ref))
			rc = cm_error_set(err, CM_EINVAL, "%.200s: name too long", refs[i]);
	}
	if (rc == 0)
		rc = rg_fetch(g, &ref, tags.v, tags.n, refs, 0, err);
	for (size_t i = 0; refs && i < tags.n; i++)
		free(refs[i]);
	free(refs);
	reg_names_free(&tags);
	return rc;
}

int ins_receipt_add_registry(reg_receipt *r, const ins_receipt_registry_opts *o, cm_error *err)
{
	/* push's own parse of the address */
	ins_push_target *t = malloc(sizeof(*t));
	if (!t)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	rg_ctx g = {.r = r, .host = t->host, .base = t->base};
	const char *prefix = t->prefix; /* "" or "prefix/" */
	reg_endpoint *ep = &t->ep;
	reg_client_opts co = {.jobs = 8,
			      .retry_budget = -1,
			      .endpoints = ep,
			      .n_endpoints = 1,
			      .realm_flag = "--realm-credentials"};
	reg_lane *l = NULL;
	reg_names repos;
	memset(&repos, 0, sizeof(repos));
	int rc =
	    ins_push_target_parse(t, o->to, o->plain, o->ca, o->realm_creds, o->n_realm_creds, err);
	if (rc < 0) {
		free(t);
		return rc;
	}
	size_t pl = strlen(prefix);
	if ((rc = reg_client_new(&g.c, &co, err)) == 0)
		rc = reg_lane_new(&l, g.c, err);
	if (rc == 0)
		rc =
		    reg_list_repositories(&repos, l, ep, g.base,
					  o->max_repos ? o->max_repos : INS_RECEIPT_MAX_REPOS, err);
	size_t taken = 0;
	for (size_t i = 0; rc == 0 && i < repos.n; i++) {
		const char *repo = repos.v[i];
		if (strncmp(repo, prefix, pl) != 0)
			continue;
		rc = rg_repo(&g, l, ep, repo, repo + pl,
			     o->max_tags ? o->max_tags : INS_RECEIPT_MAX_TAGS, err);
		taken++;
	}
	reg_names_free(&repos);
	reg_lane_free(l);
	reg_client_free(g.c);
	if (rc == 0 && taken == 0)
		rc = cm_error_set(err, CM_ENOTFOUND, "no repository under '%.*s'",
				  pl ? (int)pl - 1 : 40, pl ? prefix : "(the whole catalog)");
	if (rc == 0)
		rc = reg_receipt_sort(r, err);
	if (rc < 0)
		cm_error_wrap(err, "registry %s", g.host);
	free(t);
	return rc < 0 ? rc : 0;
}
