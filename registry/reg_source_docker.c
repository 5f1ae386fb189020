/* docker-archive:FILE source (a `docker save` tar). Tar members are not
 * seekable by name, so the archive is read twice: once for manifest.json,
 * once to stream the config and layers into the store. The image's
 * manifest is then synthesised. An archive carries no manifest of its own,
 * so the synthesised one uses OCI media types: skopeo's oci: transport
 * ignores index.json entries of Docker types, and the bundle's index.json
 * must stay readable by it (the config and layer bytes are unchanged). */
#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_buf.h"
#include "reg_source.h"

typedef struct dk_member {
	char path[1024];
	reg_desc desc;
	int done;
} dk_member;

typedef struct dk_source {
	reg_source base;
	cm_buf manifest; /* synthesised manifest bytes */
	reg_store *store;
} dk_source;

static struct archive *open_tar(const char *file, cm_error *err)
{
	struct archive *a = archive_read_new();
	if (!a) {
		cm_error_set(err, CM_ENOMEM, "out of memory");
		return NULL;
	}
	archive_read_support_format_tar(a);
	archive_read_support_filter_none(a);
	if (archive_read_open_filename(a, file, 1 << 20) != ARCHIVE_OK) {
		cm_error_set(err, CM_EIO, "opening %s: %s", file, archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

static const char *strip_dot(const char *p)
{
	if (!p)
		p = "";
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	return p;
}

static int read_manifest_json(cm_buf *out, const char *file, cm_error *err)
{
	struct archive *a = open_tar(file, err);
	if (!a)
		return CM_EIO;
	struct archive_entry *e;
	int r, rc = CM_ENOTFOUND;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (strcmp(strip_dot(archive_entry_pathname(e)), "manifest.json") != 0)
			continue;
		out->limit = REG_MANIFEST_MAX;
		const void *buf;
		size_t len;
		int64_t off;
		rc = 0;
		while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK)
			if ((rc = cm_buf_append(out, buf, len, err)) < 0)
				break;
		if (rc == 0 && r != ARCHIVE_EOF)
			rc = cm_error_set(err, CM_EIO, "reading manifest.json: %s",
					  archive_error_string(a));
		break;
	}
	if (rc == CM_ENOTFOUND)
		cm_error_set(err, CM_EINVAL, "%s has no manifest.json (not a docker-archive)",
			     r == ARCHIVE_FATAL ? archive_error_string(a) : "tar");
	archive_read_free(a);
	return rc;
}

#define MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

static const char *layer_media_type(const unsigned char *head, size_t n)
{
	if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b)
		return REG_MT_OCI_LAYER_GZIP;
	if (n >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd)
		return MT_OCI_LAYER_ZSTD;
	return MT_OCI_LAYER;
}

static int import_members(dk_member *m, size_t n, const char *file, reg_store *store, cm_error *err)
{
	struct archive *a = open_tar(file, err);
	if (!a)
		return CM_EIO;
	struct archive_entry *e;
	int r, rc = 0;
	while (rc == 0 && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = strip_dot(archive_entry_pathname(e));
		dk_member *hit = NULL;
		for (size_t i = 0; i < n; i++)
			if (!m[i].done && strcmp(m[i].path, name) == 0)
				hit = &m[i];
		if (!hit)
			continue;
		if (archive_entry_filetype(e) != AE_IFREG) {
			/* reading a link's data would import an empty blob */
			rc = cm_error_set(err, CM_EINVAL,
					  "member %s named by manifest.json is not a regular file",
					  name);
			break;
		}
		reg_blob_writer *w;
		if ((rc = reg_blob_writer_new(&w, store, NULL, err)) < 0)
			break;
		const void *buf;
		size_t len;
		int64_t off;
		int first = 1;
		if (hit != &m[0]) /* an empty layer has no first block */
			snprintf(hit->desc.media_type, sizeof(hit->desc.media_type), "%s",
				 MT_OCI_LAYER);
		while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
			if (first && hit != &m[0]) {
				snprintf(hit->desc.media_type, sizeof(hit->desc.media_type), "%s",
					 layer_media_type(buf, len));
				first = 0;
			}
			if ((rc = reg_blob_writer_write(w, buf, len, err)) < 0)
				break;
		}
		if (rc == 0 && r != ARCHIVE_EOF)
			rc = cm_error_set(err, CM_EIO, "reading %s: %s", name,
					  archive_error_string(a));
		if (rc < 0) {
			reg_blob_writer_abort(w);
			break;
		}
		if ((rc = reg_blob_writer_commit(&hit->desc.digest, &hit->desc.size, w, err)) < 0)
			break;
		/* the same path may be listed twice (repeated layer) */
		for (size_t i = 0; i < n; i++)
			if (strcmp(m[i].path, name) == 0) {
				m[i].desc.digest = hit->desc.digest;
				m[i].desc.size = hit->desc.size;
				if (&m[i] != &m[0])
					memcpy(m[i].desc.media_type, hit->desc.media_type,
					       sizeof(hit->desc.media_type));
				m[i].done = 1;
			}
	}
	archive_read_free(a);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (!m[i].done)
			return cm_error_set(err, CM_EINVAL,
					    "member %s named by manifest.json is missing",
					    m[i].path);
	return 0;
}

static int dk_get_manifest(reg_source *s, const char *digest, cm_buf *out, char *out_mt,
			   size_t mt_n, cm_error *err)
{
	dk_source *d = (dk_source *)s;
	if (digest)
		return cm_error_set(err, CM_ENOTFOUND, "docker-archive has no manifest %s", digest);
	snprintf(out_mt, mt_n, "%s", REG_MT_OCI_MANIFEST);
	return cm_buf_append(out, d->manifest.data, d->manifest.len, err);
}

static int dk_open_blob(reg_source *s, const reg_desc *desc, reg_reader **out, cm_error *err)
{
	/* every blob was imported into the store at open time */
	return reg_source_store_blob(out, ((dk_source *)s)->store, desc, err);
}

static void dk_free(reg_source *s)
{
	dk_source *d = (dk_source *)s;
	cm_buf_free(&d->manifest);
	free(d);
}

static const struct reg_source_ops dk_ops = {"docker-archive", dk_get_manifest, dk_open_blob,
					     dk_free};

static json_t *desc_json(const reg_desc *d)
{
	return json_pack("{s:s,s:s,s:I}", "mediaType", d->media_type, "digest", d->digest.s, "size",
			 (json_int_t)d->size);
}

int reg_source_docker_archive_open(reg_source **out, const char *file, reg_store *store,
				   cm_error *err)
{
	cm_buf mj = CM_BUF_INIT;
	json_t *root = NULL, *man = NULL;
	dk_member *m = NULL;
	dk_source *d = NULL;
	int rc = read_manifest_json(&mj, file, err);
	if (rc < 0)
		goto out;
	json_error_t je;
	root = json_loadb(mj.data, mj.len, 0, &je);
	if (!json_is_array(root) || json_array_size(root) == 0) {
		rc = cm_error_set(err, CM_EINVAL, "manifest.json is not a non-empty array");
		goto out;
	}
	if (json_array_size(root) > 1) {
		rc = cm_error_set(err, CM_EINVAL,
				  "manifest.json lists %zu images; a docker-archive source must "
				  "hold exactly one",
				  json_array_size(root));
		goto out;
	}
	json_t *ent = json_array_get(root, 0);
	const char *cfg = json_string_value(json_object_get(ent, "Config"));
	json_t *layers = json_object_get(ent, "Layers");
	if (!cfg || !json_is_array(layers) || json_array_size(layers) > REG_MANIFEST_MAX_ITEMS) {
		rc = cm_error_set(err, CM_EINVAL, "manifest.json entry lacks Config or Layers");
		goto out;
	}
	size_t nl = json_array_size(layers);
	m = calloc(nl + 1, sizeof(*m));
	if (!m) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(m[0].path, sizeof(m[0].path), "%s", strip_dot(cfg));
	snprintf(m[0].desc.media_type, sizeof(m[0].desc.media_type), "%s", REG_MT_OCI_CONFIG);
	for (size_t i = 0; i < nl; i++) {
		const char *l = json_string_value(json_array_get(layers, i));
		if (!l) {
			rc = cm_error_set(err, CM_EINVAL,
					  "manifest.json Layers[%zu] is not a string", i);
			goto out;
		}
		snprintf(m[i + 1].path, sizeof(m[i + 1].path), "%s", strip_dot(l));
	}
	if ((rc = import_members(m, nl + 1, file, store, err)) < 0)
		goto out;
	man = json_object();
	json_object_set_new(man, "schemaVersion", json_integer(2));
	json_object_set_new(man, "mediaType", json_string(REG_MT_OCI_MANIFEST));
	json_object_set_new(man, "config", desc_json(&m[0].desc));
	json_t *ls = json_array();
	for (size_t i = 0; i < nl; i++)
		json_array_append_new(ls, desc_json(&m[i + 1].desc));
	json_object_set_new(man, "layers", ls);
	d = calloc(1, sizeof(*d));
	char *txt = json_dumps(man, JSON_COMPACT);
	if (!d || !txt) {
		free(txt);
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto out;
	}
	rc = cm_buf_append(&d->manifest, txt, strlen(txt), err);
	free(txt);
	if (rc < 0)
		goto out;
	d->base.ops = &dk_ops;
	d->store = store;
	snprintf(d->base.where, sizeof(d->base.where), "docker-archive:%s", file);
	*out = &d->base;
	d = NULL;
out:
	if (d)
		dk_free(&d->base);
	free(m);
	json_decref(man);
	json_decref(root);
	cm_buf_free(&mj);
	if (rc < 0)
		return cm_error_wrap(err, "reading docker-archive %s", file);
	return 0;
}
