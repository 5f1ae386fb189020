#include "ins_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_file.h"
#include "reg_copy.h"

typedef struct blobset {
	const ins_member **v;
	size_t n, cap;
	/* a blob the bundle does not carry (a delta's) that this says the
	 * runtime holds is left out; NULL: every blob must be a member */
	int (*external)(void *ctx, const reg_digest *d);
	void *external_ctx;
} blobset;

static int set_add(blobset *s, const ins_member *m, cm_error *err)
{
	const ins_member **v = cm_grow(s->v, s->n, &s->cap, sizeof(*v), err);
	if (!v)
		return CM_ENOMEM;
	(s->v = v)[s->n++] = m;
	return 0;
}

static int by_offset(const void *a, const void *b)
{
	const ins_member *x = *(const ins_member *const *)a, *y = *(const ins_member *const *)b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Every blob d reaches (itself, children, config, layers). */
static int collect(blobset *s, const ins_bundle *b, const reg_desc *d, int depth, cm_error *err)
{
	const ins_member *m = ins_bundle_blob(b, &d->digest);
	if (!m && s->external && s->external(s->external_ctx, &d->digest))
		return 0;
	if (!m)
		return cm_error_set(err, CM_EVERIFY, "blob %s is not in the bundle", d->digest.s);
	int rc = set_add(s, m, err);
	if (rc < 0)
		return rc;
	if (!reg_media_type_is_index(d->media_type) && !reg_media_type_is_manifest(d->media_type))
		return 0;
	if (depth > 3)
		return cm_error_set(err, CM_EINVAL, "manifest %s nests too deeply", d->digest.s);
	reg_manifest man;
	if ((rc = ins_bundle_manifest(&man, NULL, b, d, err)) < 0)
		return rc;
	if (!man.is_index)
		rc = collect(s, b, &man.config, depth + 1, err);
	for (size_t i = 0; rc == 0 && i < man.n_items; i++)
		rc = collect(s, b, &man.items[i], depth + 1, err);
	reg_manifest_free(&man);
	return rc;
}

static int is_image_config(const char *mt)
{
	return strcmp(mt, REG_MT_OCI_CONFIG) == 0 || strcmp(mt, REG_MT_DOCKER_CONFIG) == 0;
}

int ins_archive_config_of(reg_digest *out, const ins_bundle *b, const ins_image *im,
			  const char *platform, cm_error *err)
{
	reg_desc pm;
	reg_manifest man;
	int rc = ins_bundle_pick_platform(&pm, b, im, platform, err);
	if (rc == 0)
		rc = ins_bundle_manifest(&man, NULL, b, &pm, err);
	if (rc < 0)
		return rc;
	if (!is_image_config(man.config.media_type))
		rc = cm_error_set(err, CM_ENOTFOUND, "%s is an artifact (config %s), not an image",
				  im->ref, man.config.media_type);
	else
		*out = man.config.digest;
	reg_manifest_free(&man);
	return rc;
}

/* One manifest.json entry; 1 when added, 0 when the image is an artifact. */
static int docker_entry(json_t *arr, blobset *s, const ins_bundle *b, const ins_image *im,
			const char *platform, cm_error *err)
{
	reg_desc pm;
	reg_manifest man;
	int rc = ins_bundle_pick_platform(&pm, b, im, platform, err);
	if (rc == 0)
		rc = ins_bundle_manifest(&man, NULL, b, &pm, err);
	if (rc < 0)
		return rc;
	if (!is_image_config(man.config.media_type)) {
		reg_manifest_free(&man);
		return 0;
	}
	char p[96];
	json_t *e = json_object(), *layers = json_array(), *tags = json_array();
	snprintf(p, sizeof(p), "blobs/sha256/%.64s", REG_DIGEST_HEX(&man.config.digest));
	json_object_set_new(e, "Config", json_string(p));
	if (im->r.tag[0]) {
		char t[REG_REF_MAX];
		if (snprintf(t, sizeof(t), "%s:%s", im->repo, im->r.tag) >= (int)sizeof(t))
			rc = cm_error_set(err, CM_EINVAL, "image name too long: %.200s:%.100s",
					  im->repo, im->r.tag);
		json_array_append_new(tags, json_string(t));
	}
	json_object_set_new(e, "RepoTags", tags);
	for (size_t i = 0; i < man.n_items; i++) {
		snprintf(p, sizeof(p), "blobs/sha256/%.64s", REG_DIGEST_HEX(&man.items[i].digest));
		json_array_append_new(layers, json_string(p));
	}
	json_object_set_new(e, "Layers", layers);
	json_array_append_new(arr, e);
	/* without the OCI part these are all the blobs the image needs */
	if (rc == 0)
		rc = collect(s, b, &man.config, 1, err);
	for (size_t i = 0; rc == 0 && i < man.n_items; i++)
		rc = collect(s, b, &man.items[i], 1, err);
	reg_manifest_free(&man);
	return rc < 0 ? rc : 1;
}

typedef struct wctx {
	int fd;
	int cut; /* write nothing more */
} wctx;

static la_ssize_t write_cb(struct archive *a, void *ud, const void *buf, size_t n)
{
	wctx *w = ud;
	cm_error e = {0};
	if (w->cut) {
		archive_set_error(a, ECANCELED, "the archive was cut");
		return -1;
	}
	if (cm_write_all(w->fd, buf, n, &e) < 0) {
		archive_set_error(a, e.sys_errno, "%s", strerror(e.sys_errno));
		return -1;
	}
	return (la_ssize_t)n;
}

static int put_header(struct archive *a, const char *path, int64_t size, int dir, cm_error *err)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, dir ? AE_IFDIR : AE_IFREG);
	archive_entry_set_perm(e, dir ? 0755 : 0644);
	archive_entry_set_size(e, dir ? 0 : size);
	archive_entry_set_mtime(e, 0, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	int r = archive_write_header(a, e);
	archive_entry_free(e);
	if (r != ARCHIVE_OK)
		return cm_error_set(err, CM_EIO, "writing the archive (%s): %s", path,
				    archive_error_string(a));
	return 0;
}

static int put_mem(struct archive *a, const char *path, const char *data, cm_error *err)
{
	size_t n = strlen(data);
	int rc = put_header(a, path, (int64_t)n, 0, err);
	if (rc == 0 && n && archive_write_data(a, data, n) != (la_ssize_t)n)
		rc = cm_error_set(err, CM_EIO, "writing the archive (%s): %s", path,
				  archive_error_string(a));
	return rc;
}

/* ---- the archive stream as a destination of the copy pipeline ---- */

typedef struct archive_dest {
	reg_dest base;
	struct archive *a;
	wctx w;
	int done; /* closed cleanly: the end marker is written */
} archive_dest;

static int archive_sink(void *ctx, const void *p, size_t n, cm_error *err)
{
	if (archive_write_data(ctx, p, n) != (la_ssize_t)n)
		return cm_error_set(err, CM_EIO, "writing the archive: %s",
				    archive_error_string(ctx));
	return 0;
}

static int ad_put_blob(reg_dest *dst, reg_reader *r, cm_error *err)
{
	archive_dest *ad = (archive_dest *)dst;
	const reg_desc *d = reg_reader_desc(r);
	char path[96];
	snprintf(path, sizeof(path), "blobs/sha256/%.64s", REG_DIGEST_HEX(&d->digest));
	int rc = put_header(ad->a, path, (int64_t)d->size, 0, err);
	return rc < 0 ? rc : reg_reader_pump(r, archive_sink, ad->a, err);
}

static int ad_finish(reg_dest *dst, cm_error *err)
{
	archive_dest *ad = (archive_dest *)dst;
	if (archive_write_close(ad->a) != ARCHIVE_OK)
		return cm_error_set(err, CM_EIO, "finishing the archive: %s",
				    archive_error_string(ad->a));
	ad->done = 1;
	return 0;
}

static void ad_free(reg_dest *dst)
{
	archive_dest *ad = (archive_dest *)dst;
	/* not finished: nothing more is written (no padding of a cut entry,
	 * no end marker), so that a consumer sees a truncated archive and
	 * refuses it */
	ad->w.cut = !ad->done;
	if (ad->a)
		archive_write_free(ad->a);
	free(ad);
}

static const struct reg_dest_ops archive_ops = {
    "archive stream", NULL, ad_put_blob, NULL, NULL, NULL, ad_finish, ad_free};

int ins_archive_dest_open(reg_dest **out, int fd, const char *index_json, const char *docker_json,
			  cm_error *err)
{
	archive_dest *ad = calloc(1, sizeof(*ad));
	if (!ad)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	ad->base.ops = &archive_ops;
	ad->base.jobs = 1; /* one tar stream */
	snprintf(ad->base.where, sizeof(ad->base.where), "the archive stream");
	ad->w.fd = fd;
	ad->a = archive_write_new();
	int rc = ad->a ? 0 : cm_error_set(err, CM_ENOMEM, "out of memory");
	if (rc == 0) {
		archive_write_set_format_pax_restricted(ad->a);
		archive_write_set_bytes_per_block(ad->a, 10240);
		archive_write_set_bytes_in_last_block(ad->a, 1);
		if (archive_write_open(ad->a, &ad->w, NULL, write_cb, NULL) != ARCHIVE_OK)
			rc = cm_error_set(err, CM_EIO, "opening the archive: %s",
					  archive_error_string(ad->a));
	}
	if (rc == 0 && index_json) {
		rc = put_mem(ad->a, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", err);
		if (rc == 0)
			rc = put_mem(ad->a, "index.json", index_json, err);
	}
	if (rc == 0 && docker_json)
		rc = put_mem(ad->a, "manifest.json", docker_json, err);
	if (rc == 0)
		rc = put_header(ad->a, "blobs/", 0, 1, err);
	if (rc == 0)
		rc = put_header(ad->a, "blobs/sha256/", 0, 1, err);
	if (rc < 0) {
		ad_free(&ad->base);
		return rc;
	}
	*out = &ad->base;
	return 0;
}

/* sort by offset, drop repeats */
static void set_unique(blobset *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), by_offset);
	size_t u = 0;
	for (size_t i = 0; i < s->n; i++)
		if (u == 0 || s->v[u - 1] != s->v[i])
			s->v[u++] = s->v[i];
	s->n = u;
}

int ins_archive_blobs(const ins_member ***out, size_t *n_out, const ins_bundle *b,
		      const ins_image *const *imgs, size_t n, const ins_archive_opts *o,
		      cm_error *err)
{
	blobset s = {NULL, 0, 0, o ? o->external : NULL, o ? o->external_ctx : NULL};
	int rc = 0;
	*out = NULL;
	*n_out = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		if ((rc = collect(&s, b, &imgs[i]->root, 0, err)) < 0)
			cm_error_wrap(err, "image %s", imgs[i]->ref);
	if (rc < 0) {
		free(s.v);
		return rc;
	}
	set_unique(&s);
	*out = s.v;
	*n_out = s.n;
	return 0;
}

int ins_archive_write(ins_archive_stats *st, const ins_bundle *b, const ins_image *const *imgs,
		      size_t n, int fd, const ins_archive_opts *o, cm_error *err)
{
	ins_archive_stats s0 = {0, 0, 0, 0};
	blobset s = {NULL, 0, 0, o->external, o->external_ctx};
	json_t *index = json_object(), *mans = json_array(), *docker = json_array();
	char *index_s = NULL, *docker_s = NULL;
	reg_desc *dv = NULL;
	size_t nd = 0;
	reg_source *src = NULL;
	reg_dest *dst = NULL;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const ins_image *im = imgs[i];
		if (o->oci) {
			json_t *d = json_pack("{s:s,s:s,s:I,s:{s:s,s:s}}", "mediaType",
					      im->root.media_type, "digest", im->root.digest.s,
					      "size", (json_int_t)im->root.size, "annotations",
					      "io.containerd.image.name", im->ref,
					      "org.opencontainers.image.ref.name", im->ref);
			if (!d) {
				rc = cm_error_set(err, CM_ENOMEM, "out of memory");
				break;
			}
			json_array_append_new(mans, d);
			rc = collect(&s, b, &im->root, 0, err);
		}
		if (rc == 0 && o->docker) {
			rc = docker_entry(docker, &s, b, im, o->platform, err);
			if (rc == 0)
				s0.skipped_artifacts++;
			rc = rc < 0 ? rc : 0;
		}
		if (rc < 0)
			cm_error_wrap(err, "image %s", im->ref);
		s0.images++;
	}
	if (rc < 0)
		goto out;
	json_object_set_new(index, "schemaVersion", json_integer(2));
	json_object_set_new(index, "mediaType", json_string(REG_MT_OCI_INDEX));
	json_object_set_new(index, "manifests", mans);
	mans = NULL;
	index_s = json_dumps(index, JSON_COMPACT | JSON_SORT_KEYS);
	docker_s = json_dumps(docker, JSON_COMPACT);
	if (!index_s || !docker_s) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto out;
	}
	/* unique blobs, read in bundle order, less those the runtime holds */
	set_unique(&s);
	dv = calloc(s.n ? s.n : 1, sizeof(*dv));
	if (!dv) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < s.n && rc == 0; i++) {
		if (o->skip && o->skip(o->skip_ctx, s.v[i]))
			continue;
		rc = reg_digest_from_hex(&dv[nd].digest, s.v[i]->hex, err);
		dv[nd++].size = s.v[i]->size;
	}
	/* the pipeline: bundle (verified in this process by the install, else
	 * hashed now) -> the archive stream */
	if (rc == 0)
		rc = reg_source_bundle_open(&src, b->x, NULL, REG_BIDX_TRUST_VERIFIED, err);
	if (rc == 0)
		rc = ins_archive_dest_open(&dst, fd, o->oci ? index_s : NULL,
					   o->docker ? docker_s : NULL, err);
	reg_copy_stats cs = {0, 0};
	if (rc == 0)
		rc = reg_copy_blobs(&cs, dst, src, dv, nd, err);
	if (rc == 0)
		rc = reg_dest_finish(dst, err);
	s0.bytes = cs.bytes;
	s0.blobs = cs.blobs;
out:
	reg_dest_free(dst);
	reg_source_free(src);
	free(dv);
	free(s.v);
	free(index_s);
	free(docker_s);
	json_decref(index);
	json_decref(mans);
	json_decref(docker);
	if (st)
		*st = s0;
	return rc;
}
