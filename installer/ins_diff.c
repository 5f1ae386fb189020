#include "ins_diff.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ins_receipt.h"

/* One side: its receipt view (images, blobs) and, for a bundle, its
 * bundle.json (image sizes, manifests, models). */
typedef struct side {
	reg_receipt rec;
	json_t *bj; /* NULL for a receipt */
} side;

/* A receipt is a JSON file: its first byte that is not white space is '{'.
 * A bundle starts with a tar header ("SHA256SUMS"). */
static int is_receipt(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')
			continue;
		return buf[i] == '{';
	}
	return 0;
}

static int side_open(side *s, const char *path, const sig_pubkey *key, cm_error *err)
{
	memset(s, 0, sizeof(*s));
	if (is_receipt(path))
		return reg_receipt_load(&s->rec, path, err);
	ins_rbundle b;
	int rc = ins_rbundle_open(&b, path, key, 0, err);
	if (rc < 0)
		return rc;
	if ((rc = ins_receipt_add_bundle(&s->rec, &b, err)) == 0) {
		/* a delta's omitted blobs are part of what it describes */
		reg_receipt om;
		int is_delta;
		rc = ins_delta_read(&om, &is_delta, b.bundle_json.data ? b.bundle_json.data : "",
				    b.bundle_json.len, err);
		for (size_t i = 0; rc == 0 && is_delta && i < om.n_blobs; i++)
			rc = reg_receipt_add_blob(&s->rec, &om.blobs[i].digest, om.blobs[i].size,
						  err);
		reg_receipt_free(&om);
		if (rc == 0)
			rc = reg_receipt_sort(&s->rec, err);
	}
	if (rc == 0 && !(s->bj = json_loadb(b.bundle_json.data, b.bundle_json.len, 0, NULL)))
		rc = cm_error_set(err, CM_EVERIFY, "%s: bundle.json is not JSON", path);
	ins_rbundle_close(&b);
	if (rc < 0) {
		cm_error_wrap(err, "%s", path);
		reg_receipt_free(&s->rec);
	}
	return rc;
}

static void side_free(side *s)
{
	reg_receipt_free(&s->rec);
	json_decref(s->bj);
}

/* bundle.json's images[] entry for ref (its size), or NULL. */
static json_int_t image_size(const side *s, const char *ref)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(s->bj, "images"), i, v)
	{
		const char *r = json_string_value(json_object_get(v, "ref"));
		if (r && strcmp(r, ref) == 0)
			return json_integer_value(json_object_get(v, "size"));
	}
	return 0;
}

static const reg_receipt_image *find_image(const side *s, const char *ref)
{
	for (size_t i = 0; i < s->rec.n_images; i++)
		if (strcmp(s->rec.images[i].ref, ref) == 0)
			return &s->rec.images[i];
	return NULL;
}

static json_t *images_diff(const side *a, const side *b)
{
	json_t *add = json_array(), *rem = json_array(), *chg = json_array();
	for (size_t i = 0; i < b->rec.n_images; i++) {
		const reg_receipt_image *ib = &b->rec.images[i], *ia = find_image(a, ib->ref);
		if (!ia)
			json_array_append_new(add, json_pack("{s:s,s:s,s:I}", "ref", ib->ref,
							     "digest", ib->digest.s, "size",
							     image_size(b, ib->ref)));
		else if (!reg_digest_equal(&ia->digest, &ib->digest))
			json_array_append_new(
			    chg, json_pack("{s:s,s:s,s:s,s:I,s:I}", "ref", ib->ref, "from",
					   ia->digest.s, "to", ib->digest.s, "fromSize",
					   image_size(a, ib->ref), "size", image_size(b, ib->ref)));
	}
	for (size_t i = 0; i < a->rec.n_images; i++) {
		const reg_receipt_image *ia = &a->rec.images[i];
		if (!find_image(b, ia->ref))
			json_array_append_new(rem, json_pack("{s:s,s:s,s:I}", "ref", ia->ref,
							     "digest", ia->digest.s, "size",
							     image_size(a, ia->ref)));
	}
	return json_pack("{s:o,s:o,s:o}", "added", add, "removed", rem, "changed", chg);
}

static json_t *find_path(json_t *list, const char *path)
{
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
	{
		const char *p = json_string_value(json_object_get(v, "path"));
		if (p && strcmp(p, path) == 0)
			return v;
	}
	return NULL;
}

/* manifests[] or models[] of bundle.json, matched by path. */
static json_t *files_diff(const side *a, const side *b, const char *key)
{
	json_t *add = json_array(), *rem = json_array(), *chg = json_array();
	json_t *la = json_object_get(a->bj, key), *lb = json_object_get(b->bj, key);
	size_t i;
	json_t *v;
	if (a->bj && b->bj) {
		json_array_foreach(lb, i, v)
		{
			const char *p = json_string_value(json_object_get(v, "path"));
			if (!p)
				continue;
			json_t *o = find_path(la, p);
			json_t *e = json_pack("{s:s,s:I}", "path", p, "size",
					      json_integer_value(json_object_get(v, "size")));
			if (!o)
				json_array_append_new(add, e);
			else if (!json_equal(json_object_get(o, "sha256"),
					     json_object_get(v, "sha256")))
				json_array_append_new(chg, e);
			else
				json_decref(e);
		}
		json_array_foreach(la, i, v)
		{
			const char *p = json_string_value(json_object_get(v, "path"));
			if (p && !find_path(lb, p))
				json_array_append_new(
				    rem, json_pack("{s:s,s:I}", "path", p, "size",
						   json_integer_value(json_object_get(v, "size"))));
		}
	}
	return json_pack("{s:o,s:o,s:o}", "added", add, "removed", rem, "changed", chg);
}

static void blobs_only(const reg_receipt *x, const reg_receipt *y, json_int_t *n, json_int_t *bytes)
{
	*n = *bytes = 0;
	for (size_t i = 0; i < x->n_blobs; i++)
		if (!reg_receipt_blob_find(y, &x->blobs[i].digest)) {
			(*n)++;
			*bytes += (json_int_t)x->blobs[i].size;
		}
}

int ins_diff(json_t **out, const char *a, const char *b, const sig_pubkey *key, cm_error *err)
{
	side sa, sb;
	*out = NULL;
	int rc = side_open(&sa, a, key, err);
	if (rc < 0)
		return rc;
	if ((rc = side_open(&sb, b, key, err)) < 0) {
		side_free(&sa);
		return rc;
	}
	json_int_t na, ba, nr, br;
	blobs_only(&sb.rec, &sa.rec, &na, &ba);
	blobs_only(&sa.rec, &sb.rec, &nr, &br);
	*out = json_pack("{s:s,s:s,s:o,s:o,s:o,s:{s:I,s:I,s:I,s:I}}", "a", a, "b", b, "images",
			 images_diff(&sa, &sb), "manifests", files_diff(&sa, &sb, "manifests"),
			 "models", files_diff(&sa, &sb, "models"), "blobs", "added", na,
			 "addedBytes", ba, "removed", nr, "removedBytes", br);
	side_free(&sa);
	side_free(&sb);
	return *out ? 0 : cm_error_set(err, CM_ENOMEM, "out of memory (or a path is not UTF-8)");
}
