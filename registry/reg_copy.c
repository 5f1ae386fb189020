#include "reg_copy.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_par.h"
#include "reg_ref.h"

/* Fetch a manifest, check its digest when it is known, hand it to dst. */
static int take_manifest(reg_manifest *out_m, reg_desc *io_desc, reg_dest *dst, reg_source *src,
			 const reg_desc *parent, const char *digest, cm_error *err)
{
	cm_buf b = CM_BUF_INIT;
	char mt[256] = "";
	memset(out_m, 0, sizeof(*out_m)); /* freed on every error path below */
	int rc = src->ops->get_manifest(src, digest, &b, mt, sizeof(mt), err);
	if (rc < 0)
		goto out;
	reg_digest d;
	if ((rc = reg_digest_buf(&d, b.data, b.len, err)) < 0)
		goto out;
	if (digest && strcmp(d.s, digest) != 0) {
		rc = cm_error_set(err, CM_EVERIFY, "manifest %s: bytes hash to %s", digest, d.s);
		goto out;
	}
	if ((rc = reg_manifest_parse(out_m, b.data, b.len, mt[0] ? mt : NULL, err)) < 0) {
		cm_error_wrap(err, "manifest %s", d.s);
		goto out;
	}
	io_desc->digest = d;
	io_desc->size = b.len;
	snprintf(io_desc->media_type, sizeof(io_desc->media_type), "%s", out_m->media_type);
	if (dst->ops->put_manifest)
		rc = dst->ops->put_manifest(dst, parent, io_desc, b.data, b.len, err);
out:
	cm_buf_free(&b);
	if (rc < 0)
		reg_manifest_free(out_m);
	return rc;
}

/* One blob from src into dst unless dst holds it; *sent: 1 when sent. */
static int copy_blob(int *sent, reg_dest *dst, reg_source *src, const reg_desc *d, cm_error *err)
{
	*sent = 0;
	if ((dst->ops->has_blob && dst->ops->has_blob(dst, d)) ||
	    (src->deferred && src->deferred(src->deferred_ud, &d->digest)))
		return 0;
	reg_reader *r;
	int rc = src->ops->open_blob(src, d, &r, err);
	if (rc == 0) {
		rc = dst->ops->put_blob(dst, r, err);
		reg_reader_free(r);
	}
	if (rc < 0 && err && !err->digest[0]) { /* the reader names the blob itself */
		cm_error_wrap(err, "blob %s", d->digest.s);
		cm_error_set_digest(err, d->digest.s);
	}
	if (rc < 0)
		return rc;
	*sent = 1;
	return 0;
}

typedef struct blob_pool {
	reg_dest *dst;
	reg_source *src;
	const reg_desc *v;
	reg_copy_stats st; /* added to atomically */
} blob_pool;

static int pool_copy(void *ctx, unsigned worker, size_t i, cm_error *err)
{
	blob_pool *p = ctx;
	(void)worker;
	int sent = 0;
	int rc = copy_blob(&sent, p->dst, p->src, &p->v[i], err);
	if (sent) {
		__atomic_add_fetch(&p->st.blobs, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&p->st.bytes, p->v[i].size, __ATOMIC_RELAXED);
	}
	return rc;
}

int reg_copy_blobs(reg_copy_stats *out, reg_dest *dst, reg_source *src, const reg_desc *v, size_t n,
		   cm_error *err)
{
	blob_pool p = {.dst = dst, .src = src, .v = v};
	size_t jobs = dst->jobs > REG_COPY_JOBS_MAX ? REG_COPY_JOBS_MAX : dst->jobs;
	int rc = cm_par_each(n, (unsigned)jobs, pool_copy, &p, err);
	if (out)
		*out = p.st;
	return rc;
}

/* A blob of manifest md: sent when dst lacks it, linked either way. */
static int take_blob(uint64_t *io_fetched, reg_dest *dst, reg_source *src, const reg_desc *d,
		     const reg_desc *md, cm_error *err)
{
	int sent;
	int rc = copy_blob(&sent, dst, src, d, err);
	*io_fetched += sent ? d->size : 0;
	if (rc == 0 && dst->ops->link)
		rc = dst->ops->link(dst, md, d, err);
	return rc;
}

/* Copy one image manifest's config and layers. */
static int copy_manifest(reg_image *img, reg_dest *dst, reg_source *src, const reg_desc *md,
			 const reg_manifest *m, cm_error *err)
{
	if (m->is_index)
		return cm_error_set(err, CM_EINVAL, "nested index %s is not supported",
				    md->digest.s);
	int rc = take_blob(&img->fetched, dst, src, &m->config, md, err);
	img->total_size += md->size + m->config.size;
	for (size_t i = 0; rc == 0 && i < m->n_items; i++) {
		rc = take_blob(&img->fetched, dst, src, &m->items[i], md, err);
		img->total_size += m->items[i].size;
	}
	return rc;
}

static int write_narrowed_index(reg_desc *out, reg_dest *dst, const reg_manifest *idx,
				const char *from, const int *keep, cm_error *err)
{
	json_t *root = json_object(), *arr = json_array();
	json_object_set_new(root, "schemaVersion", json_integer(2));
	json_object_set_new(root, "mediaType", json_string(REG_MT_OCI_INDEX));
	for (size_t i = 0; i < idx->n_items; i++) {
		if (!keep[i])
			continue;
		const reg_desc *c = &idx->items[i];
		json_t *d = json_pack("{s:s,s:s,s:I}", "mediaType", c->media_type, "digest",
				      c->digest.s, "size", (json_int_t)c->size);
		char os[96];
		snprintf(os, sizeof(os), "%s", c->platform);
		char *arch = strchr(os, '/');
		if (arch) {
			*arch++ = '\0';
			char *var = strchr(arch, '/');
			if (var)
				*var++ = '\0';
			json_t *p = json_pack("{s:s,s:s}", "architecture", arch, "os", os);
			if (var)
				json_object_set_new(p, "variant", json_string(var));
			json_object_set_new(d, "platform", p);
		}
		json_array_append_new(arr, d);
	}
	json_object_set_new(root, "manifests", arr);
	json_object_set_new(root, "annotations",
			    json_pack("{s:s}", "io.ferry.narrowed-from", from));
	char *txt = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (!txt)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	int rc = reg_digest_buf(&out->digest, txt, strlen(txt), err);
	out->size = strlen(txt);
	snprintf(out->media_type, sizeof(out->media_type), "%s", REG_MT_OCI_INDEX);
	if (rc == 0 && dst->ops->put_manifest)
		rc = dst->ops->put_manifest(dst, NULL, out, txt, out->size, err);
	free(txt);
	return rc;
}

int reg_copy_wants_child(const reg_desc *child, const char *const *platforms)
{
	const char *p = child->platform;
	int want_all = platforms && platforms[0] && strcmp(platforms[0], "all") == 0;
	/* attestation manifests (unknown/unknown) ride along only with "all" */
	return want_all ||
	       (p[0] && strcmp(p, "unknown/unknown") != 0 && reg_platform_match(p, platforms));
}

static void add_platform(reg_image *img, const char *p)
{
	size_t l = strlen(img->platforms);
	snprintf(img->platforms + l, sizeof(img->platforms) - l, "%s%s", l ? "," : "", p);
}

int reg_copy_image_to(reg_image *out, reg_dest *dst, reg_source *src, const char *ref,
		      const char *const *platforms, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->ref, sizeof(out->ref), "%s", ref);
	reg_manifest root;
	int rc = take_manifest(&root, &out->root, dst, src, NULL, NULL, err);
	if (rc < 0)
		goto done;
	if (!root.is_index) {
		rc = copy_manifest(out, dst, src, &out->root, &root, err);
		reg_manifest_free(&root);
		goto tag;
	}
	int *keep = calloc(root.n_items ? root.n_items : 1, sizeof(int));
	if (!keep) {
		reg_manifest_free(&root);
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto done;
	}
	size_t nkeep = 0, last = 0;
	for (size_t i = 0; i < root.n_items; i++) {
		if (reg_copy_wants_child(&root.items[i], platforms)) {
			keep[i] = 1;
			nkeep++;
			last = i;
		}
	}
	if (nkeep == 0) {
		rc = cm_error_set(err, CM_ENOTFOUND,
				  "index %s has no manifest for the platforms asked",
				  out->root.digest.s);
		free(keep);
		reg_manifest_free(&root);
		goto done;
	}
	uint64_t index_size = out->root.size;
	for (size_t i = 0; rc == 0 && i < root.n_items; i++) {
		if (!keep[i])
			continue;
		reg_manifest child;
		reg_desc cd = root.items[i];
		if ((rc = take_manifest(&child, &cd, dst, src, &out->root, root.items[i].digest.s,
					err)) < 0)
			break;
		rc = copy_manifest(out, dst, src, &cd, &child, err);
		reg_manifest_free(&child);
		add_platform(out, root.items[i].platform);
	}
	if (rc == 0 && nkeep == root.n_items) {
		out->total_size += index_size;
	} else if (rc == 0 && nkeep == 1) {
		out->root = root.items[last];
		out->platforms[0] = '\0';
	} else if (rc == 0) {
		snprintf(out->note, sizeof(out->note),
			 "index %.80s narrowed to %zu of %zu platforms; new index written",
			 out->root.digest.s, nkeep, root.n_items);
		char from[REG_DIGEST_STRLEN + 1];
		snprintf(from, sizeof(from), "%s", out->root.digest.s);
		rc = write_narrowed_index(&out->root, dst, &root, from, keep, err);
		out->total_size += out->root.size;
	}
	free(keep);
	reg_manifest_free(&root);
tag:
	if (rc == 0 && dst->ops->tag)
		rc = dst->ops->tag(dst, ref, &out->root, err);
done:
	if (rc < 0)
		return cm_error_wrap(err, "copying %s from %s to %s", ref, src->where, dst->where);
	return 0;
}

int reg_copy_image(reg_image *out, reg_store *st, reg_source *src, const char *ref,
		   const char *const *platforms, cm_error *err)
{
	reg_dest *dst = NULL;
	int rc = reg_dest_store_open(&dst, st, err);
	if (rc == 0)
		rc = reg_copy_image_to(out, dst, src, ref, platforms, err);
	reg_dest_free(dst);
	return rc;
}
