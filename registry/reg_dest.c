/* Destinations: the common calls, and the content store (reg_dest.h). */
#include "reg_dest.h"

#include <stdio.h>
#include <stdlib.h>

#include "reg_ref.h"

int reg_dest_finish(reg_dest *dst, cm_error *err)
{
	return dst->ops->finish ? dst->ops->finish(dst, err) : 0;
}

void reg_dest_free(reg_dest *dst)
{
	if (dst && dst->ops->free)
		dst->ops->free(dst);
	else
		free(dst);
}

/* ---- the content store ---- */

typedef struct store_dest {
	reg_dest base;
	reg_store *st;
} store_dest;

static int st_has_blob(reg_dest *dst, const reg_desc *d)
{
	uint64_t have;
	return reg_store_has(((store_dest *)dst)->st, &d->digest, &have) && have == d->size;
}

static int st_put_blob(reg_dest *dst, reg_reader *r, cm_error *err)
{
	reg_blob_writer *w;
	int rc = reg_blob_writer_new(&w, ((store_dest *)dst)->st, &reg_reader_desc(r)->digest, err);
	if (rc == 0 && (rc = reg_reader_pump(r, reg_blob_writer_sink, w, err)) < 0)
		reg_blob_writer_abort(w); /* the temp file goes: nothing committed */
	return rc < 0 ? rc : reg_blob_writer_commit(NULL, NULL, w, err);
}

static int st_put_manifest(reg_dest *dst, const reg_desc *parent, const reg_desc *d, const void *p,
			   size_t n, cm_error *err)
{
	reg_store *st = ((store_dest *)dst)->st;
	int rc = reg_store_put(NULL, st, p, n, err);
	if (rc == 0)
		rc = reg_catalog_add_manifest(reg_store_db(st), d->digest.s, d->media_type, n, err);
	if (rc == 0 && parent)
		rc = reg_catalog_link(reg_store_db(st), parent->digest.s, d->digest.s, err);
	return rc;
}

static int st_link(reg_dest *dst, const reg_desc *parent, const reg_desc *d, cm_error *err)
{
	void *db = reg_store_db(((store_dest *)dst)->st);
	int rc = reg_catalog_add_blob(db, d->digest.s, d->size, d->media_type, err);
	return rc < 0 ? rc : reg_catalog_link(db, parent->digest.s, d->digest.s, err);
}

static int st_tag(reg_dest *dst, const char *ref, const reg_desc *root, cm_error *err)
{
	reg_ref r;
	cm_error e2;
	if (reg_ref_parse(&r, ref, &e2) < 0 || !r.tag[0])
		return 0; /* a digest reference: nothing to name */
	char repo[512];
	reg_ref_repo(repo, sizeof(repo), &r);
	return reg_catalog_tag(reg_store_db(((store_dest *)dst)->st), repo, r.tag, root->digest.s,
			       err);
}

static const struct reg_dest_ops store_ops = {"store", st_has_blob, st_put_blob, st_put_manifest,
					      st_link, st_tag,	    NULL,	 NULL};

int reg_dest_store_open(reg_dest **out, reg_store *st, cm_error *err)
{
	store_dest *s = calloc(1, sizeof(*s));
	if (!s)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	s->base.ops = &store_ops;
	s->base.jobs = 1;
	s->st = st;
	snprintf(s->base.where, sizeof(s->base.where), "store %.1000s", reg_store_root(st));
	*out = &s->base;
	return 0;
}
