#include "reg_copy.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reg_catalog.h"
#include "reg_ref.h"

/* Fetch a manifest, check its digest when it is known, store it. */
static int take_manifest(reg_manifest *out_m, reg_desc *io_desc, reg_store *st, reg_source *src,
			 const char *digest, cm_error *err)
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
	if ((rc = reg_store_put(NULL, st, b.data, b.len, err)) < 0)
		goto out;
	rc = reg_catalog_add_manifest(reg_store_db(st), d.s, out_m->media_type, b.len, err);
	io_desc->digest = d;
	io_desc->size = b.len;
	snprintf(io_desc->media_type, sizeof(io_desc->media_type), "%s", out_m->media_type);
out:
	cm_buf_free(&b);
	if (rc < 0)
		reg_manifest_free(out_m);
	return rc;
}

static int take_blob(uint64_t *io_fetched, reg_store *st, reg_source *src, const reg_desc *d,
		     const char *manifest, cm_error *err)
{
	uint64_t have;
	int rc = 0;
	if ((!reg_store_has(st, &d->digest, &have) || have != d->size) &&
	    !(src->deferred && src->deferred(src->deferred_ud, &d->digest))) {
		reg_blob_writer *w;
		if ((rc = reg_blob_writer_new(&w, st, &d->digest, err)) < 0)
			return rc;
		if ((rc = src->ops->get_blob(src, d, w, err)) < 0) {
			reg_blob_writer_abort(w);
			return cm_error_wrap(err, "blob %s", d->digest.s);
		}
		uint64_t got = reg_blob_writer_size(w);
		if (got != d->size) {
			reg_blob_writer_abort(w);
			return cm_error_set(err, CM_EVERIFY,
					    "blob %s: %llu bytes, manifest says %llu", d->digest.s,
					    (unsigned long long)got, (unsigned long long)d->size);
		}
		if ((rc = reg_blob_writer_commit(NULL, NULL, w, err)) < 0)
			return cm_error_wrap(err, "blob %s", d->digest.s);
		*io_fetched += got;
	}
	void *db = reg_store_db(st);
	if ((rc = reg_catalog_add_blob(db, d->digest.s, d->size, d->media_type, err)) == 0)
		rc = reg_catalog_link(db, manifest, d->digest.s, err);
	return rc;
}

/* Copy one image manifest's config and layers. */
static int copy_manifest(reg_image *img, reg_store *st, reg_source *src, const reg_desc *md,
			 const reg_manifest *m, cm_error *err)
{
	if (m->is_index)
		return cm_error_set(err, CM_EINVAL, "nested index %s is not supported",
				    md->digest.s);
	int rc = take_blob(&img->fetched, st, src, &m->config, md->digest.s, err);
	img->total_size += md->size + m->config.size;
	for (size_t i = 0; rc == 0 && i < m->n_items; i++) {
		rc = take_blob(&img->fetched, st, src, &m->items[i], md->digest.s, err);
		img->total_size += m->items[i].size;
	}
	return rc;
}

static int write_narrowed_index(reg_desc *out, reg_store *st, const reg_manifest *idx,
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
	int rc = reg_store_put(&out->digest, st, txt, strlen(txt), err);
	out->size = strlen(txt);
	snprintf(out->media_type, sizeof(out->media_type), "%s", REG_MT_OCI_INDEX);
	free(txt);
	if (rc == 0)
		rc = reg_catalog_add_manifest(reg_store_db(st), out->digest.s, REG_MT_OCI_INDEX,
					      out->size, err);
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

int reg_copy_image(reg_image *out, reg_store *st, reg_source *src, const char *ref,
		   const char *const *platforms, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->ref, sizeof(out->ref), "%s", ref);
	reg_manifest root;
	int rc = take_manifest(&root, &out->root, st, src, NULL, err);
	if (rc < 0)
		goto done;
	if (!root.is_index) {
		rc = copy_manifest(out, st, src, &out->root, &root, err);
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
		if ((rc = take_manifest(&child, &cd, st, src, root.items[i].digest.s, err)) < 0)
			break;
		rc = copy_manifest(out, st, src, &cd, &child, err);
		if (rc == 0)
			rc = reg_catalog_link(reg_store_db(st), out->root.digest.s, cd.digest.s,
					      err);
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
		rc = write_narrowed_index(&out->root, st, &root, from, keep, err);
		out->total_size += out->root.size;
	}
	free(keep);
	reg_manifest_free(&root);
tag:
	if (rc == 0) {
		reg_ref r;
		cm_error e2;
		if (reg_ref_parse(&r, ref, &e2) == 0 && r.tag[0]) {
			char repo[512];
			reg_ref_repo(repo, sizeof(repo), &r);
			rc =
			    reg_catalog_tag(reg_store_db(st), repo, r.tag, out->root.digest.s, err);
		}
	}
done:
	if (rc < 0)
		return cm_error_wrap(err, "copying %s from %s", ref, src->where);
	return 0;
}
