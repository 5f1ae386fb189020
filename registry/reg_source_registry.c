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
static int manifest_bytes(cm_buf *out, char *mt, size_t mt_n, reg_client *c, reg_store *st,
			  const reg_ref *r, const reg_digest *d, cm_error *err)
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
	return reg_store_put(NULL, st, out->data, out->len, err);
}

static int plan_add(reg_pull_plan *p, const reg_ref *r, const reg_desc *d, cm_error *err)
{
	for (size_t i = 0; i < p->n_blobs; i++)
		if (reg_digest_equal(&p->blobs[i].desc.digest, &d->digest))
			return 0;
	if (CM_GROW(&p->blobs, p->n_blobs, &p->cap, err) < 0)
		return CM_ENOMEM;
	p->blobs[p->n_blobs].ref = r;
	p->blobs[p->n_blobs].desc = *d;
	p->n_blobs++;
	return 0;
}

/* The planner's destination: it holds every blob, so the copy pipeline
 * fetches none and each is recorded into the plan; the first manifest it
 * is shown without a parent is the root, as the registry names it. */
typedef struct plan_dest {
	reg_dest base;
	reg_pull_plan *p;
	const reg_ref *r;
	int rc, has_root;
	cm_error err;
} plan_dest;

static int pd_has_blob(reg_dest *dst, const reg_desc *d)
{
	plan_dest *pd = (plan_dest *)dst;
	if (pd->rc == 0)
		pd->rc = plan_add(pd->p, pd->r, d, &pd->err);
	return 1;
}

static int pd_put_manifest(reg_dest *dst, const reg_desc *parent, const reg_desc *d, const void *p,
			   size_t n, cm_error *err)
{
	plan_dest *pd = (plan_dest *)dst;
	(void)p, (void)n, (void)err;
	if (!parent && !pd->has_root++)
		pd->p->root = *d;
	return 0;
}

static const struct reg_dest_ops plan_ops = {"plan", pd_has_blob, NULL, pd_put_manifest,
					     NULL,   NULL,	  NULL, NULL};

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
	/* the copy pipeline's walk of the image (the platforms kept, manifests
	 * fetched into st), into a destination that only takes notes */
	plan_dest pd = {.base = {.ops = &plan_ops, .where = "the pull plan"}, .p = out, .r = r};
	reg_source *src = NULL;
	reg_image img;
	char ref[700];
	reg_ref_string(ref, sizeof(ref), r);
	if ((rc = reg_source_registry_open(&src, c, r, &out->root, st, err)) == 0)
		rc = reg_copy_image_to(&img, &pd.base, src, ref, platforms, err);
	reg_source_free(src);
	if (rc == 0 && pd.rc < 0) {
		*err = pd.err;
		rc = pd.rc;
	}
	if (rc < 0)
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
	int rc = manifest_bytes(out, out_mt, mt_n, g->c, g->st, &g->ref, &d, err);
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
