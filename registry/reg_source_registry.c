/* The registry transport for the copy pipeline, and the pull planner that
 * lets a build fetch the blobs of all its images in one parallel batch. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reg_client.h"
#include "reg_copy.h"
#include "reg_source.h"

/* A manifest by digest: from the store when held, else GET (checked) and
 * put into the store. */
static int manifest_bytes(cm_buf *out, char *mt, size_t mt_n, uint64_t *gets, reg_client *c,
			  reg_store *st, const reg_ref *r, const reg_digest *d, cm_error *err)
{
	if (mt_n)
		mt[0] = '\0';
	if (reg_store_has(st, d, NULL)) {
		cm_error e2;
		if (reg_store_read(out, st, d, REG_MANIFEST_MAX, &e2) == 0)
			return 0;
		cm_buf_free(out); /* unreadable or corrupt copy: fetch it again */
	}
	reg_manifest_req q;
	int rc = reg_client_manifest(&q, c, r, d->s, 0, err); /* the bytes are checked */
	if (rc < 0) {
		cm_buf_free(&q.body);
		return rc;
	}
	cm_buf_free(out);
	*out = q.body;
	snprintf(mt, mt_n, "%s", q.mt);
	if (gets)
		(*gets)++;
	return reg_store_put(NULL, st, out->data, out->len, err);
}

static int plan_add(reg_pull_plan *p, const reg_ref *r, const reg_desc *d, cm_error *err)
{
	for (size_t i = 0; i < p->n_blobs; i++)
		if (reg_digest_equal(&p->blobs[i].desc.digest, &d->digest))
			return 0;
	if (p->n_blobs == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		reg_blob_req *v = realloc(p->blobs, cap * sizeof(*v));
		if (!v)
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		p->blobs = v;
		p->cap = cap;
	}
	p->blobs[p->n_blobs].ref = r;
	p->blobs[p->n_blobs].desc = *d;
	p->n_blobs++;
	return 0;
}

static int plan_manifest(reg_pull_plan *p, const reg_ref *r, const reg_manifest *m, cm_error *err)
{
	int rc = plan_add(p, r, &m->config, err);
	for (size_t i = 0; rc == 0 && i < m->n_items; i++)
		rc = plan_add(p, r, &m->items[i], err);
	return rc;
}

int reg_pull_plan_make(reg_pull_plan *out, reg_client *c, reg_store *st, const reg_ref *r,
		       const reg_digest *pinned, const char *const *platforms, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	int rc;
	if (pinned || r->digest[0]) {
		if (pinned)
			out->root.digest = *pinned;
		else if ((rc = reg_digest_parse(&out->root.digest, r->digest, err)) < 0)
			return rc;
	} else {
		reg_manifest_req q;
		rc = reg_client_manifest(&q, c, r, r->tag, 1, err);
		cm_buf_free(&q.body);
		if (rc < 0)
			return rc;
		out->root = q.desc;
	}
	cm_buf b = CM_BUF_INIT;
	char mt[256];
	reg_manifest m;
	memset(&m, 0, sizeof(m));
	if ((rc = manifest_bytes(&b, mt, sizeof(mt), &out->manifest_gets, c, st, r,
				 &out->root.digest, err)) < 0)
		goto fail;
	if (!out->root.media_type[0])
		snprintf(out->root.media_type, sizeof(out->root.media_type), "%s", mt);
	out->root.size = b.len;
	if ((rc = reg_manifest_parse(&m, b.data, b.len,
				     out->root.media_type[0] ? out->root.media_type : NULL, err)) <
	    0) {
		cm_error_wrap(err, "manifest %s", out->root.digest.s);
		goto fail;
	}
	snprintf(out->root.media_type, sizeof(out->root.media_type), "%s", m.media_type);
	cm_buf_free(&b);
	if (!m.is_index) {
		rc = plan_manifest(out, r, &m, err);
		reg_manifest_free(&m);
		if (rc < 0)
			goto fail;
		return 0;
	}
	size_t kept = 0;
	for (size_t i = 0; i < m.n_items; i++) {
		if (!reg_copy_wants_child(&m.items[i], platforms))
			continue;
		kept++;
		reg_manifest cm;
		char cmt[256];
		if ((rc = manifest_bytes(&b, cmt, sizeof(cmt), &out->manifest_gets, c, st, r,
					 &m.items[i].digest, err)) < 0)
			break;
		rc = reg_manifest_parse(&cm, b.data, b.len, m.items[i].media_type, err);
		cm_buf_free(&b);
		if (rc < 0) {
			cm_error_wrap(err, "manifest %s", m.items[i].digest.s);
			break;
		}
		if (cm.is_index)
			rc = cm_error_set(err, CM_EINVAL, "nested index %s is not supported",
					  m.items[i].digest.s);
		else
			rc = plan_manifest(out, r, &cm, err);
		reg_manifest_free(&cm);
		if (rc < 0)
			break;
	}
	if (rc == 0 && kept == 0)
		rc = cm_error_set(err, CM_ENOTFOUND,
				  "index %s has no manifest for the platforms asked",
				  out->root.digest.s);
	reg_manifest_free(&m);
	if (rc < 0)
		goto fail;
	return 0;
fail:
	cm_buf_free(&b);
	reg_pull_plan_free(out);
	return rc;
}

void reg_pull_plan_free(reg_pull_plan *p)
{
	if (!p)
		return;
	free(p->blobs);
	p->blobs = NULL;
	p->n_blobs = p->cap = 0;
}

typedef struct rg_source {
	reg_source base;
	reg_client *c;
	reg_ref ref;
	reg_desc root;
	reg_store *st;
} rg_source;

static int rg_get_manifest(reg_source *s, const char *digest, cm_buf *out, char *out_mt,
			   size_t mt_n, cm_error *err)
{
	rg_source *g = (rg_source *)s;
	reg_digest d;
	if (!digest) {
		d = g->root.digest;
	} else {
		int rc = reg_digest_parse(&d, digest, err);
		if (rc < 0)
			return rc;
	}
	int rc = manifest_bytes(out, out_mt, mt_n, NULL, g->c, g->st, &g->ref, &d, err);
	if (rc == 0 && !digest && !out_mt[0])
		snprintf(out_mt, mt_n, "%s", g->root.media_type);
	return rc;
}

static int rg_open_blob(reg_source *s, const reg_desc *d, reg_reader **out, cm_error *err)
{
	rg_source *g = (rg_source *)s;
	reg_blob_req req = {&g->ref, *d, NULL};
	int rc = reg_client_fetch_blobs(g->c, g->st, &req, 1, err);
	/* now in the store: read it from there */
	return rc < 0 ? rc : reg_source_store_blob(out, g->st, d, err);
}

static const struct reg_source_ops rg_ops = {"registry", rg_get_manifest, rg_open_blob, NULL};

int reg_source_registry_open(reg_source **out, reg_client *c, const reg_ref *r,
			     const reg_desc *root, reg_store *st, cm_error *err)
{
	rg_source *g = calloc(1, sizeof(*g));
	if (!g)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	g->base.ops = &rg_ops;
	g->c = c;
	g->ref = *r;
	g->root = *root;
	g->st = st;
	char base[600], repo[512];
	int rc = reg_client_route(base, sizeof(base), repo, sizeof(repo), c, r, err);
	if (rc < 0) {
		free(g);
		return rc;
	}
	if (snprintf(g->base.where, sizeof(g->base.where), "%s/%s", base, repo) >=
	    (int)sizeof(g->base.where)) {
		free(g);
		return cm_error_set(err, CM_EINVAL, "registry address too long: %.200s/%.200s",
				    base, repo);
	}
	*out = &g->base;
	return 0;
}
