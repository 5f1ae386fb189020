#include "reg_manifest.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int reg_media_type_is_index(const char *mt)
{
	return strcmp(mt, REG_MT_OCI_INDEX) == 0 || strcmp(mt, REG_MT_DOCKER_LIST) == 0;
}

int reg_media_type_is_manifest(const char *mt)
{
	return strcmp(mt, REG_MT_OCI_MANIFEST) == 0 || strcmp(mt, REG_MT_DOCKER_MANIFEST) == 0 ||
	       strcmp(mt, "application/vnd.cncf.model.manifest.v1+json") == 0;
}

static int copy_str(char *dst, size_t n, json_t *v, const char *what, cm_error *err)
{
	if (!json_is_string(v))
		return cm_error_set(err, CM_EINVAL, "%s is not a string", what);
	const char *s = json_string_value(v);
	if (strlen(s) >= n)
		return cm_error_set(err, CM_EINVAL, "%s is too long", what);
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int parse_desc(reg_desc *d, json_t *o, const char *what, cm_error *err)
{
	memset(d, 0, sizeof(*d));
	if (!json_is_object(o))
		return cm_error_set(err, CM_EINVAL, "%s is not an object", what);
	int rc = copy_str(d->media_type, sizeof(d->media_type), json_object_get(o, "mediaType"),
			  "mediaType", err);
	if (rc < 0)
		return cm_error_wrap(err, "%s", what);
	json_t *dg = json_object_get(o, "digest");
	if (!json_is_string(dg))
		return cm_error_set(err, CM_EINVAL, "%s: digest missing", what);
	if ((rc = reg_digest_parse(&d->digest, json_string_value(dg), err)) < 0)
		return cm_error_wrap(err, "%s", what);
	json_t *sz = json_object_get(o, "size");
	if (!json_is_integer(sz) || json_integer_value(sz) < 0)
		return cm_error_set(err, CM_EINVAL, "%s: size missing or negative", what);
	d->size = (uint64_t)json_integer_value(sz);
	json_t *p = json_object_get(o, "platform");
	if (json_is_object(p)) {
		const char *os = json_string_value(json_object_get(p, "os"));
		const char *arch = json_string_value(json_object_get(p, "architecture"));
		const char *var = json_string_value(json_object_get(p, "variant"));
		if (os && arch)
			snprintf(d->platform, sizeof(d->platform), "%s/%s%s%s", os, arch,
				 var ? "/" : "", var ? var : "");
	}
	json_t *ann = json_object_get(o, "annotations");
	const char *title =
	    json_string_value(json_object_get(ann, "org.opencontainers.image.title"));
	if (title)
		snprintf(d->title, sizeof(d->title), "%s", title);
	return 0;
}

int reg_manifest_parse(reg_manifest *out, const void *data, size_t len, const char *media_type,
		       cm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (len > REG_MANIFEST_MAX)
		return cm_error_set(err, CM_EINVAL, "manifest of %zu bytes exceeds the 4 MiB cap",
				    len);
	json_error_t je;
	json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return cm_error_set(err, CM_EINVAL, "manifest is not valid JSON (line %d: %s)",
				    je.line, je.text);
	int rc = 0;
	if (!json_is_object(root)) {
		rc = cm_error_set(err, CM_EINVAL, "manifest is not a JSON object");
		goto out;
	}
	json_t *sv = json_object_get(root, "schemaVersion");
	const char *mt = json_string_value(json_object_get(root, "mediaType"));
	if ((json_is_integer(sv) && json_integer_value(sv) == 1) ||
	    (media_type && (strcmp(media_type, REG_MT_DOCKER_SCHEMA1) == 0 ||
			    strcmp(media_type, REG_MT_DOCKER_SCHEMA1_SIGNED) == 0))) {
		rc = cm_error_set(err, CM_EINVAL,
				  "Docker schema 1 manifests are obsolete and not supported; "
				  "ask the publisher for a schema 2 or OCI image");
		goto out;
	}
	if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
		rc = cm_error_set(err, CM_EINVAL, "manifest schemaVersion must be 2");
		goto out;
	}
	if (!mt)
		mt = media_type;
	json_t *manifests = json_object_get(root, "manifests");
	if (!mt || !*mt) /* OCI allows mediaType to be absent: infer from shape */
		mt = json_is_array(manifests) ? REG_MT_OCI_INDEX : REG_MT_OCI_MANIFEST;
	snprintf(out->media_type, sizeof(out->media_type), "%s", mt);
	out->is_index = reg_media_type_is_index(mt);
	json_t *arr = out->is_index ? manifests : json_object_get(root, "layers");
	if (!out->is_index && !reg_media_type_is_manifest(mt)) {
		rc = cm_error_set(err, CM_EINVAL, "unsupported manifest media type '%.200s'", mt);
		goto out;
	}
	if (!json_is_array(arr)) {
		rc = cm_error_set(err, CM_EINVAL, "manifest has no %s array",
				  out->is_index ? "manifests" : "layers");
		goto out;
	}
	if (!out->is_index) {
		if ((rc = parse_desc(&out->config, json_object_get(root, "config"), "config",
				     err)) < 0)
			goto out;
	}
	size_t n = json_array_size(arr);
	if (n > REG_MANIFEST_MAX_ITEMS) {
		rc = cm_error_set(err, CM_EINVAL, "manifest lists %zu entries (cap %d)", n,
				  REG_MANIFEST_MAX_ITEMS);
		goto out;
	}
	out->items = calloc(n ? n : 1, sizeof(reg_desc));
	if (!out->items) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char what[64];
		snprintf(what, sizeof(what), "%s[%zu]", out->is_index ? "manifests" : "layers", i);
		if ((rc = parse_desc(&out->items[i], json_array_get(arr, i), what, err)) < 0)
			goto out;
		out->n_items++;
	}
out:
	json_decref(root);
	if (rc < 0)
		reg_manifest_free(out);
	return rc;
}

void reg_manifest_free(reg_manifest *m)
{
	if (!m)
		return;
	free(m->items);
	m->items = NULL;
	m->n_items = 0;
}

int reg_platform_match(const char *platform, const char *const *want)
{
	if (!want || !want[0])
		return 1;
	for (size_t i = 0; want[i]; i++) {
		const char *w = want[i];
		size_t wl = strlen(w);
		if (strcmp(w, "all") == 0 || strcmp(w, platform) == 0)
			return 1;
		/* "linux/arm64" matches "linux/arm64/v8" */
		if (strncmp(w, platform, wl) == 0 && platform[wl] == '/')
			return 1;
	}
	return 0;
}
