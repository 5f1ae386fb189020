#include "reg_receipt.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cm_buf.h"
#include "cm_file.h"

static int grow(void **v, size_t *cap, size_t n, size_t elem, size_t max, const char *what,
		cm_error *err)
{
	if (n >= max)
		return cm_error_set(err, CM_EINVAL, "more than %zu %s", max, what);
	return cm_grow_at(v, n, cap, elem, err);
}

int reg_receipt_add_bundle(reg_receipt *r, const reg_receipt_bundle *b, cm_error *err)
{
	int rc = grow((void **)&r->bundles, &r->cap_bundles, r->n_bundles, sizeof(*b),
		      REG_RECEIPT_MAX_BUNDLES, "bundles", err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < r->n_bundles; i++)
		if (strcmp(r->bundles[i].sums, b->sums) == 0)
			return 0;
	r->bundles[r->n_bundles++] = *b;
	return 0;
}

int reg_receipt_add_image(reg_receipt *r, const char *ref, const reg_digest *d, cm_error *err)
{
	if (strlen(ref) >= sizeof(r->images[0].ref))
		return cm_error_set(err, CM_EINVAL, "image reference too long: %.80s...", ref);
	int rc = grow((void **)&r->images, &r->cap_images, r->n_images, sizeof(*r->images),
		      REG_RECEIPT_MAX_IMAGES, "images", err);
	if (rc < 0)
		return rc;
	reg_receipt_image *im = &r->images[r->n_images++];
	memset(im, 0, sizeof(*im));
	memcpy(im->ref, ref, strlen(ref) + 1);
	im->digest = *d;
	return 0;
}

int reg_receipt_add_blob(reg_receipt *r, const reg_digest *d, uint64_t size, cm_error *err)
{
	int rc = grow((void **)&r->blobs, &r->cap_blobs, r->n_blobs, sizeof(*r->blobs),
		      REG_RECEIPT_MAX_BLOBS, "blobs", err);
	if (rc < 0)
		return rc;
	r->blobs[r->n_blobs].digest = *d;
	r->blobs[r->n_blobs].size = size;
	r->n_blobs++;
	return 0;
}

static int blob_cmp(const void *a, const void *b)
{
	return strcmp(((const reg_receipt_blob *)a)->digest.s,
		      ((const reg_receipt_blob *)b)->digest.s);
}

int reg_receipt_sort(reg_receipt *r, cm_error *err)
{
	if (!r->n_blobs)
		return 0;
	qsort(r->blobs, r->n_blobs, sizeof(*r->blobs), blob_cmp);
	size_t k = 1;
	for (size_t i = 1; i < r->n_blobs; i++) {
		if (strcmp(r->blobs[i].digest.s, r->blobs[k - 1].digest.s) == 0) {
			if (r->blobs[i].size != r->blobs[k - 1].size)
				return cm_error_set(err, CM_EINVAL,
						    "blob %s is listed with two sizes (%" PRIu64
						    " and %" PRIu64 ")",
						    r->blobs[i].digest.s, r->blobs[k - 1].size,
						    r->blobs[i].size);
			continue;
		}
		r->blobs[k++] = r->blobs[i];
	}
	r->n_blobs = k;
	return 0;
}

const reg_receipt_blob *reg_receipt_blob_find(const reg_receipt *r, const reg_digest *d)
{
	reg_receipt_blob key;
	if (!r || !r->n_blobs)
		return NULL;
	key.digest = *d;
	return bsearch(&key, r->blobs, r->n_blobs, sizeof(key), blob_cmp);
}

/* A string member of o copied into out (size n); absent is "" when
 * optional. */
static int get_str(char *out, size_t n, json_t *o, const char *key, int required, const char *where,
		   cm_error *err)
{
	json_t *v = json_object_get(o, key);
	out[0] = '\0';
	if (!v) {
		if (required)
			return cm_error_set(err, CM_EINVAL, "%s: \"%s\" is missing", where, key);
		return 0;
	}
	if (!json_is_string(v))
		return cm_error_set(err, CM_EINVAL, "%s: \"%s\" is not a string", where, key);
	size_t l = json_string_length(v);
	if (l >= n || strlen(json_string_value(v)) != l)
		return cm_error_set(err, CM_EINVAL,
				    "%s: \"%s\" is longer than %zu bytes or holds NUL", where, key,
				    n - 1);
	memcpy(out, json_string_value(v), l + 1);
	return 0;
}

static int get_digest(reg_digest *out, json_t *o, const char *where, cm_error *err)
{
	char s[REG_DIGEST_STRLEN + 1];
	int rc = get_str(s, sizeof(s), o, "digest", 1, where, err);
	if (rc == 0 && (rc = reg_digest_parse(out, s, err)) < 0)
		cm_error_wrap(err, "%s", where);
	return rc;
}

/* A bundle's name, version, created and signer (each optional). */
static int get_bundle(reg_receipt_bundle *b, json_t *o, const char *where, cm_error *err)
{
	int rc = get_str(b->name, sizeof(b->name), o, "name", 0, where, err);
	if (rc == 0)
		rc = get_str(b->version, sizeof(b->version), o, "version", 0, where, err);
	if (rc == 0)
		rc = get_str(b->created, sizeof(b->created), o, "created", 0, where, err);
	return rc < 0 ? rc : get_str(b->signer, sizeof(b->signer), o, "signer", 0, where, err);
}

static json_t *get_array(json_t *root, const char *key, size_t max, const char *what, cm_error *err,
			 int *rc)
{
	json_t *a = json_object_get(root, key);
	*rc = 0;
	if (!a)
		return NULL;
	if (!json_is_array(a)) {
		*rc = cm_error_set(err, CM_EINVAL, "%s: \"%s\" is not an array", what, key);
		return NULL;
	}
	if (json_array_size(a) > max) {
		*rc = cm_error_set(err, CM_EINVAL, "%s: more than %zu %s", what, max, key);
		return NULL;
	}
	return a;
}

int reg_receipt_parse(reg_receipt *out, const char *data, size_t len, const char *what,
		      cm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (len > REG_RECEIPT_MAX_BYTES)
		return cm_error_set(err, CM_EINVAL, "%s: larger than %zu bytes", what,
				    REG_RECEIPT_MAX_BYTES);
	json_error_t je;
	json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return cm_error_set(err, CM_EINVAL, "%s: not JSON: line %d: %s", what, je.line,
				    je.text);
	int rc = 0;
	json_t *a, *v;
	size_t i;
	char where[600];
	if (!json_is_object(root)) {
		rc = cm_error_set(err, CM_EINVAL, "%s: not a JSON object", what);
		goto out;
	}
	v = json_object_get(root, "receiptVersion");
	if (!json_is_integer(v) || json_integer_value(v) != 1) {
		rc = cm_error_set(err, CM_EINVAL, "%s: \"receiptVersion\" is not 1", what);
		goto out;
	}
	a = get_array(root, "bundles", REG_RECEIPT_MAX_BUNDLES, what, err, &rc);
	json_array_foreach(a, i, v)
	{
		reg_receipt_bundle b;
		snprintf(where, sizeof(where), "%.500s: bundles[%zu]", what, i);
		if (!json_is_object(v)) {
			rc = cm_error_set(err, CM_EINVAL, "%s: not an object", where);
			goto out;
		}
		if ((rc = get_bundle(&b, v, where, err)) < 0 ||
		    (rc = get_str(b.sums, sizeof(b.sums), v, "sumsSha256", 1, where, err)) < 0)
			goto out;
		if (strlen(b.sums) != 64 || strspn(b.sums, "0123456789abcdef") != 64) {
			rc = cm_error_set(err, CM_EINVAL, "%s: \"sumsSha256\" is not 64 hex digits",
					  where);
			goto out;
		}
		if ((rc = reg_receipt_add_bundle(out, &b, err)) < 0)
			goto out;
	}
	if (rc < 0)
		goto out;
	a = get_array(root, "images", REG_RECEIPT_MAX_IMAGES, what, err, &rc);
	json_array_foreach(a, i, v)
	{
		char ref[512];
		reg_digest d;
		snprintf(where, sizeof(where), "%.500s: images[%zu]", what, i);
		if (!json_is_object(v)) {
			rc = cm_error_set(err, CM_EINVAL, "%s: not an object", where);
			goto out;
		}
		if ((rc = get_str(ref, sizeof(ref), v, "ref", 1, where, err)) < 0 ||
		    (rc = get_digest(&d, v, where, err)) < 0 ||
		    (rc = reg_receipt_add_image(out, ref, &d, err)) < 0)
			goto out;
	}
	if (rc < 0)
		goto out;
	a = get_array(root, "blobs", REG_RECEIPT_MAX_BLOBS, what, err, &rc);
	json_array_foreach(a, i, v)
	{
		reg_digest d;
		snprintf(where, sizeof(where), "%.500s: blobs[%zu]", what, i);
		if (!json_is_object(v)) {
			rc = cm_error_set(err, CM_EINVAL, "%s: not an object", where);
			goto out;
		}
		json_t *sz = json_object_get(v, "size");
		if (!json_is_integer(sz) || json_integer_value(sz) < 0) {
			rc = cm_error_set(err, CM_EINVAL,
					  "%s: \"size\" is not a non-negative integer", where);
			goto out;
		}
		if ((rc = get_digest(&d, v, where, err)) < 0 ||
		    (rc = reg_receipt_add_blob(out, &d, (uint64_t)json_integer_value(sz), err)) < 0)
			goto out;
	}
	if (rc < 0)
		goto out;
	if ((rc = reg_receipt_sort(out, err)) < 0)
		cm_error_wrap(err, "%s", what);
out:
	json_decref(root);
	if (rc < 0)
		reg_receipt_free(out);
	return rc;
}

int reg_receipt_load(reg_receipt *out, const char *path, cm_error *err)
{
	cm_buf b = CM_BUF_INIT;
	memset(out, 0, sizeof(*out));
	int rc = cm_file_read(&b, path, REG_RECEIPT_MAX_BYTES, err);
	if (rc < 0) {
		cm_buf_free(&b);
		return cm_error_wrap(err, "receipt %s", path);
	}
	rc = reg_receipt_parse(out, b.data ? b.data : "", b.len, path, err);
	cm_buf_free(&b);
	return rc;
}

int reg_receipt_dump(char **out, const reg_receipt *r, cm_error *err)
{
	*out = NULL;
	json_t *root = json_object(), *ba = json_array(), *ia = json_array(), *la = json_array();
	if (!root || !ba || !ia || !la)
		goto oom;
	json_object_set_new(root, "receiptVersion", json_integer(1));
	for (size_t i = 0; i < r->n_bundles; i++) {
		const reg_receipt_bundle *b = &r->bundles[i];
		json_array_append_new(ba, json_pack("{s:s,s:s,s:s,s:s,s:s}", "name", b->name,
						    "version", b->version, "created", b->created,
						    "signer", b->signer, "sumsSha256", b->sums));
	}
	for (size_t i = 0; i < r->n_images; i++)
		json_array_append_new(ia, json_pack("{s:s,s:s}", "ref", r->images[i].ref, "digest",
						    r->images[i].digest.s));
	for (size_t i = 0; i < r->n_blobs; i++)
		json_array_append_new(la, json_pack("{s:s,s:I}", "digest", r->blobs[i].digest.s,
						    "size", (json_int_t)r->blobs[i].size));
	json_object_set_new(root, "bundles", ba);
	json_object_set_new(root, "images", ia);
	json_object_set_new(root, "blobs", la);
	*out = json_dumps(root, JSON_INDENT(1));
	json_decref(root);
	if (!*out)
		return cm_error_set(err, CM_EINVAL,
				    "the receipt cannot be written as JSON (a name is not UTF-8)");
	return 0;
oom:
	json_decref(root);
	json_decref(ba);
	json_decref(ia);
	json_decref(la);
	return cm_error_set(err, CM_ENOMEM, "out of memory");
}

int reg_receipt_save(const reg_receipt *r, const char *path, cm_error *err)
{
	char *t;
	int rc = reg_receipt_dump(&t, r, err);
	if (rc < 0)
		return rc;
	size_t n = strlen(t);
	t[n] = '\n'; /* json_dumps' NUL becomes the final newline */
	rc = cm_file_write_atomic(path, t, n + 1, 0644, err);
	free(t);
	return rc;
}

int reg_receipt_bundle_from_json(reg_receipt_bundle *out, const char *bundle_json, size_t len,
				 const char *sums_hex, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	json_error_t je;
	json_t *root = json_loadb(bundle_json, len, 0, &je);
	if (!json_is_object(root)) {
		json_decref(root);
		return cm_error_set(err, CM_EINVAL, "bundle.json is not a JSON object");
	}
	int rc = get_bundle(out, root, "bundle.json", err);
	json_decref(root);
	snprintf(out->sums, sizeof(out->sums), "%s", sums_hex);
	return rc;
}

void reg_receipt_free(reg_receipt *r)
{
	if (!r)
		return;
	free(r->bundles);
	free(r->images);
	free(r->blobs);
	memset(r, 0, sizeof(*r));
}
