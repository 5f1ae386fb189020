/* oci-layout:DIR[:TAG] source: blobs are read straight from DIR/blobs. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_file.h"
#include "reg_source.h"

typedef struct oci_source {
	reg_source base;
	char dir[PATH_MAX];
	char root_digest[80];
	char root_mt[256];
} oci_source;

static int blob_path(char *out, size_t n, const oci_source *o, const char *digest, cm_error *err)
{
	reg_digest d;
	int rc = reg_digest_parse(&d, digest, err); /* refuses anything path-like */
	if (rc < 0)
		return rc;
	snprintf(out, n, "%s/blobs/sha256/%s", o->dir, REG_DIGEST_HEX(&d));
	return 0;
}

static int oci_get_manifest(reg_source *s, const char *digest, cm_buf *out, char *out_mt,
			    size_t mt_n, cm_error *err)
{
	oci_source *o = (oci_source *)s;
	char p[PATH_MAX + 128];
	int rc = blob_path(p, sizeof(p), o, digest ? digest : o->root_digest, err);
	if (rc < 0)
		return rc;
	if ((rc = cm_file_read(out, p, REG_MANIFEST_MAX, err)) < 0)
		return rc;
	if (!digest) {
		/* the pipeline checks a manifest against the digest it asked for;
		 * the root's digest is only known here, from index.json */
		reg_digest got;
		if ((rc = reg_digest_buf(&got, out->data, out->len, err)) < 0)
			return rc;
		if (strcmp(got.s, o->root_digest) != 0)
			return cm_error_set(
			    err, CM_EVERIFY,
			    "manifest %s (named by %s/index.json): bytes hash to %s",
			    o->root_digest, o->dir, got.s);
	}
	snprintf(out_mt, mt_n, "%s", digest ? "" : o->root_mt);
	return 0;
}

static int oci_open_blob(reg_source *s, const reg_desc *d, reg_reader **out, cm_error *err)
{
	oci_source *o = (oci_source *)s;
	char p[PATH_MAX + 128];
	int rc = blob_path(p, sizeof(p), o, d->digest.s, err);
	if (rc < 0)
		return rc;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "opening %s", p);
	return reg_reader_fd(out, d, fd, UINT64_MAX, err); /* a longer file is caught */
}

static const struct reg_source_ops oci_ops = {"oci-layout", oci_get_manifest, oci_open_blob, NULL};

/* Does index entry e carry the tag? Tools differ: ref.name may be the tag
 * or a full reference, so accept "TAG", "...:TAG". */
static int entry_matches(json_t *e, const char *tag)
{
	static const char *keys[] = {"org.opencontainers.image.ref.name",
				     "io.containerd.image.name"};
	json_t *ann = json_object_get(e, "annotations");
	size_t tl = strlen(tag);
	for (size_t i = 0; i < 2; i++) {
		const char *v = json_string_value(json_object_get(ann, keys[i]));
		if (!v)
			continue;
		size_t vl = strlen(v);
		if (strcmp(v, tag) == 0)
			return 1;
		if (vl > tl && v[vl - tl - 1] == ':' && strcmp(v + vl - tl, tag) == 0)
			return 1;
	}
	return 0;
}

int reg_source_oci_open(reg_source **out, const char *dir, const char *tag, cm_error *err)
{
	oci_source *o = calloc(1, sizeof(*o));
	if (!o)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	o->base.ops = &oci_ops;
	snprintf(o->dir, sizeof(o->dir), "%s", dir);
	snprintf(o->base.where, sizeof(o->base.where), "oci-layout:%s%s%s", dir, tag ? ":" : "",
		 tag ? tag : "");
	char p[PATH_MAX + 32];
	cm_buf b = CM_BUF_INIT;
	json_t *root = NULL;
	int rc;
	snprintf(p, sizeof(p), "%s/index.json", dir);
	if ((rc = cm_file_read(&b, p, 16 << 20, err)) < 0)
		goto fail;
	json_error_t je;
	root = json_loadb(b.data, b.len, 0, &je);
	json_t *ms = root ? json_object_get(root, "manifests") : NULL;
	if (!json_is_array(ms)) {
		rc = cm_error_set(err, CM_EINVAL, "%s is not an OCI index (%s)", p,
				  root ? "no manifests array" : je.text);
		goto fail;
	}
	json_t *pick = NULL;
	size_t i;
	json_t *e;
	json_array_foreach(ms, i, e)
	{
		if (tag ? entry_matches(e, tag) : 1) {
			if (pick && !tag) {
				rc = cm_error_set(
				    err, CM_EINVAL,
				    "%s holds several images: name one as oci-layout:DIR:TAG", dir);
				goto fail;
			}
			if (!pick)
				pick = e;
		}
	}
	if (!pick) {
		rc = cm_error_set(err, CM_ENOTFOUND, "%s: no image %s%s", dir, tag ? "tagged " : "",
				  tag ? tag : "in index.json");
		goto fail;
	}
	const char *dg = json_string_value(json_object_get(pick, "digest"));
	const char *mt = json_string_value(json_object_get(pick, "mediaType"));
	reg_digest d;
	if (!dg || (rc = reg_digest_parse(&d, dg, err)) < 0) {
		if (!dg)
			rc = cm_error_set(err, CM_EINVAL, "index entry has no digest");
		goto fail;
	}
	snprintf(o->root_digest, sizeof(o->root_digest), "%s", d.s);
	snprintf(o->root_mt, sizeof(o->root_mt), "%s", mt ? mt : "");
	json_decref(root);
	cm_buf_free(&b);
	*out = &o->base;
	return 0;
fail:
	json_decref(root);
	cm_buf_free(&b);
	free(o);
	return cm_error_wrap(err, "reading OCI layout %s", dir);
}
