/* A verified bundle as an image source: manifests are read whole and
 * hashed (reg_bidx_read), blobs come through the bundle reader's hashing
 * cursor, whose last read fails with CM_EVERIFY when the member does not
 * match SHA256SUMS; the pipeline's reader then checks only the size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reg_source.h"

typedef struct bundle_source {
	reg_source base;
	reg_bidx *x;
	reg_desc root;
	int has_root, flags;
} bundle_source;

/* The member holding blob d: named by its digest and of d's size. */
static int member_of(uint32_t *out, bundle_source *b, const reg_desc *d, cm_error *err)
{
	reg_bidx_member m;
	*out = reg_bidx_find_blob(b->x, &d->digest);
	if (*out == REG_BIDX_NONE)
		return cm_error_set(err, CM_ENOTFOUND, "blob %s is not in the bundle", d->digest.s);
	reg_bidx_member_at(b->x, *out, &m);
	if (strcmp(m.hex, REG_DIGEST_HEX(&d->digest)) != 0 || m.size != d->size) {
		cm_error_set(err, CM_EVERIFY,
			     "blob %s: the bundle's member %s (%llu bytes) is not the %llu bytes "
			     "the manifest gives",
			     d->digest.s, m.path, (unsigned long long)m.size,
			     (unsigned long long)d->size);
		cm_error_set_digest(err, d->digest.s);
		return CM_EVERIFY;
	}
	return 0;
}

static int bs_get_manifest(reg_source *s, const char *digest, cm_buf *out, char *out_mt,
			   size_t mt_n, cm_error *err)
{
	bundle_source *b = (bundle_source *)s;
	reg_desc d = b->root;
	int rc = 0;
	if (!digest && !b->has_root)
		return cm_error_set(err, CM_EINVAL, "%s: no image named", s->where);
	if (digest) {
		memset(&d, 0, sizeof(d));
		rc = reg_digest_parse(&d.digest, digest, err);
	}
	uint32_t id = rc == 0 ? reg_bidx_find_blob(b->x, &d.digest) : REG_BIDX_NONE;
	if (rc == 0 && id == REG_BIDX_NONE)
		rc =
		    cm_error_set(err, CM_ENOTFOUND, "manifest %s is not in the bundle", d.digest.s);
	if (rc == 0)
		rc = reg_bidx_read(out, b->x, id, REG_MANIFEST_MAX, err);
	snprintf(out_mt, mt_n, "%s", digest ? "" : d.media_type);
	return rc;
}

static int cur_read(void *ctx, void *buf, size_t n, size_t *got, cm_error *err)
{
	return reg_bidx_cursor_read(ctx, buf, n, got, err);
}

static int cur_rewind(void *ctx, cm_error *err)
{
	return reg_bidx_cursor_seek(ctx, 0, err);
}

static void cur_close(void *ctx)
{
	reg_bidx_cursor_close(ctx);
	free(ctx);
}

static const reg_stream_ops cursor_ops = {cur_read, cur_rewind, cur_close};

static int bs_open_blob(reg_source *s, const reg_desc *d, reg_reader **out, cm_error *err)
{
	bundle_source *b = (bundle_source *)s;
	uint32_t id;
	int rc = member_of(&id, b, d, err);
	if (rc < 0)
		return rc;
	reg_bidx_cursor *c = malloc(sizeof(*c));
	if (!c)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	if ((rc = reg_bidx_cursor_open(c, b->x, id, b->flags, err)) < 0) {
		free(c);
		return rc;
	}
	return reg_reader_new(out, d, &cursor_ops, c, REG_READER_SELF_VERIFIED, err);
}

static const struct reg_source_ops bundle_ops = {"bundle", bs_get_manifest, bs_open_blob, NULL};

int reg_source_bundle_open(reg_source **out, reg_bidx *x, const reg_desc *root, int flags,
			   cm_error *err)
{
	bundle_source *b = calloc(1, sizeof(*b));
	if (!b)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	b->base.ops = &bundle_ops;
	b->x = x;
	b->flags = flags;
	if (root) {
		b->root = *root;
		b->has_root = 1;
	}
	snprintf(b->base.where, sizeof(b->base.where), "bundle%s%s", root ? " image " : "",
		 root ? root->digest.s : "");
	*out = &b->base;
	return 0;
}
