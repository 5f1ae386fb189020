#include "ins_install_bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cm_file.h"
#include "ins_ctx.h"
#include "ins_verify.h"

static int cmp_path(const void *key, const void *m)
{
	return strcmp(key, ((const ins_member *)m)->path);
}

const ins_member *ins_bundle_member(const ins_bundle *b, const char *path)
{
	return b->n_m ? bsearch(path, b->m, b->n_m, sizeof(*b->m), cmp_path) : NULL;
}

const ins_member *ins_bundle_blob(const ins_bundle *b, const reg_digest *d)
{
	char p[96];
	snprintf(p, sizeof(p), "blobs/sha256/%s", REG_DIGEST_HEX(d));
	return ins_bundle_member(b, p);
}

/* The reader's id of m. */
static uint32_t bundle_id(const ins_bundle *b, const ins_member *m)
{
	if (m >= b->m && m < b->m + b->n_m)
		return (uint32_t)(m - b->m);
	/* a copy of a member: find it by name */
	const ins_member *in = ins_bundle_member(b, m->path);
	return in ? (uint32_t)(in - b->m) : REG_BIDX_NONE;
}

int ins_bundle_cursor(reg_bidx_cursor *c, const ins_bundle *b, const ins_member *m, int flags,
		      cm_error *err)
{
	return reg_bidx_cursor_open(c, b->x, bundle_id(b, m), flags, err);
}

int ins_bundle_copy_member(int fd, const ins_bundle *b, const ins_member *m, cm_error *err)
{
	return reg_bidx_copy(fd, b->x, bundle_id(b, m), err);
}

int ins_bundle_read(cm_buf *out, const ins_bundle *b, const ins_member *m, size_t limit,
		    cm_error *err)
{
	if (m->size > limit)
		return cm_error_set(err, CM_EINVAL, "%s: %llu bytes exceeds the %zu-byte limit",
				    m->path, (unsigned long long)m->size, limit);
	return reg_bidx_read(out, b->x, bundle_id(b, m), limit, err);
}

int ins_bundle_manifest(reg_manifest *out, cm_buf *raw, const ins_bundle *b, const reg_desc *d,
			cm_error *err)
{
	const ins_member *m = ins_bundle_blob(b, &d->digest);
	memset(out, 0, sizeof(*out));
	if (!m)
		return cm_error_set(err, CM_EVERIFY, "manifest %s is not in the bundle",
				    d->digest.s);
	cm_buf tmp = CM_BUF_INIT;
	cm_buf *buf = raw ? raw : &tmp;
	int rc = ins_bundle_read(buf, b, m, REG_MANIFEST_MAX, err);
	if (rc == 0)
		rc = reg_manifest_parse(out, buf->data, buf->len, d->media_type, err);
	cm_buf_free(&tmp);
	if (rc < 0)
		return cm_error_wrap(err, "manifest %s", d->digest.s);
	return 0;
}

/* The host's platform, "linux/amd64" style. */
static const char *host_platform(void)
{
#if defined(__x86_64__)
	return "linux/amd64";
#elif defined(__aarch64__)
	return "linux/arm64";
#elif defined(__arm__)
	return "linux/arm/v7";
#elif defined(__powerpc64__)
	return "linux/ppc64le";
#elif defined(__s390x__)
	return "linux/s390x";
#else
	return "linux/amd64";
#endif
}

int ins_bundle_pick_platform(reg_desc *out, const ins_bundle *b, const ins_image *im,
			     const char *platform, cm_error *err)
{
	if (!reg_media_type_is_index(im->root.media_type)) {
		*out = im->root;
		return 0;
	}
	reg_manifest idx;
	int rc = ins_bundle_manifest(&idx, NULL, b, &im->root, err);
	if (rc < 0)
		return rc;
	const char *want[2] = {platform ? platform : host_platform(), NULL};
	const reg_desc *pick = NULL;
	for (size_t i = 0; i < idx.n_items && !pick; i++)
		if (reg_media_type_is_manifest(idx.items[i].media_type) &&
		    idx.items[i].platform[0] && reg_platform_match(idx.items[i].platform, want))
			pick = &idx.items[i];
	for (size_t i = 0; i < idx.n_items && !pick; i++)
		if (reg_media_type_is_manifest(idx.items[i].media_type) &&
		    strcmp(idx.items[i].platform, "unknown/unknown") != 0)
			pick = &idx.items[i];
	if (pick)
		*out = *pick;
	else
		rc = cm_error_set(err, CM_EINVAL, "image %s: its index holds no image manifest",
				  im->ref);
	reg_manifest_free(&idx);
	return rc;
}

static int load_index(ins_bundle *b, json_t *bj, cm_error *err)
{
	const ins_member *im = ins_bundle_member(b, "index.json");
	if (!im)
		return 0; /* a bundle without images */
	cm_buf buf = CM_BUF_INIT;
	int rc = ins_bundle_read(&buf, b, im, (size_t)64 << 20, err);
	if (rc < 0)
		return rc;
	json_error_t je;
	json_t *root = json_loadb(buf.data, buf.len, 0, &je);
	cm_buf_free(&buf);
	if (!root)
		return cm_error_set(err, CM_EVERIFY, "index.json: %s", je.text);
	json_t *ms = json_object_get(root, "manifests");
	size_t n = json_array_size(ms);
	b->images = calloc(n ? n : 1, sizeof(ins_image));
	if (!b->images) {
		json_decref(root);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	json_t *sizes = json_object_get(bj, "images");
	for (size_t i = 0; i < n && rc == 0; i++) {
		json_t *d = json_array_get(ms, i);
		ins_image *img = &b->images[b->n_images];
		json_t *ann = json_object_get(d, "annotations");
		const char *name =
		    json_string_value(json_object_get(ann, "io.containerd.image.name"));
		if (!name)
			name = json_string_value(
			    json_object_get(ann, "org.opencontainers.image.ref.name"));
		if (!name || strlen(name) >= sizeof(img->ref)) {
			rc = cm_error_set(err, CM_EVERIFY, "index.json entry %zu has no image name",
					  i);
			break;
		}
		if ((rc = reg_ref_parse(&img->r, name, err)) < 0) {
			rc = cm_error_wrap(err, "index.json entry %zu", i);
			break;
		}
		reg_ref_string(img->ref, sizeof(img->ref), &img->r);
		reg_ref_repo(img->repo, sizeof(img->repo), &img->r);
		const char *mt = json_string_value(json_object_get(d, "mediaType"));
		if (!mt || strlen(mt) >= sizeof(img->root.media_type)) {
			rc = cm_error_set(err, CM_EVERIFY,
					  "index.json: 'mediaType' missing or too long");
			break;
		}
		memcpy(img->root.media_type, mt, strlen(mt) + 1);
		const char *dg = json_string_value(json_object_get(d, "digest"));
		if ((rc = reg_digest_parse(&img->root.digest, dg ? dg : "", err)) < 0)
			break;
		img->root.size = (uint64_t)json_integer_value(json_object_get(d, "size"));
		if (!ins_bundle_blob(b, &img->root.digest)) {
			rc = cm_error_set(err, CM_EVERIFY,
					  "image %s: manifest %s is not in the bundle", img->ref,
					  img->root.digest.s);
			break;
		}
		size_t j;
		json_t *e;
		json_array_foreach(sizes, j, e)
		{
			const char *r = json_string_value(json_object_get(e, "ref"));
			const char *g = json_string_value(json_object_get(e, "digest"));
			if (r && g && strcmp(g, img->root.digest.s) == 0) {
				img->total_size =
				    (uint64_t)json_integer_value(json_object_get(e, "size"));
				break;
			}
		}
		json_array_foreach(json_object_get(bj, "referrers"), j, e)
		{
			const char *g = json_string_value(json_object_get(e, "digest"));
			const char *sj = json_string_value(json_object_get(e, "subject"));
			if (g && strcmp(g, img->root.digest.s) == 0) {
				img->referrer = 1;
				/* signed content: a subject that is no digest is left out */
				if (!sj || reg_digest_parse(&img->subject, sj, NULL) < 0)
					memset(&img->subject, 0, sizeof(img->subject));
			}
		}
		b->n_images++;
	}
	json_decref(root);
	return rc;
}

/* manifests/... and models/<name>/<version>/... members, in path order. */
static int load_files(ins_bundle *b, cm_error *err)
{
	size_t nm = 0, nd = 0;
	for (size_t i = 0; i < b->n_m; i++) {
		nm += strncmp(b->m[i].path, "manifests/", 10) == 0;
		nd += strncmp(b->m[i].path, "models/", 7) == 0;
	}
	b->manifests = calloc(nm ? nm : 1, sizeof(ins_file));
	b->models = calloc(nd ? nd : 1, sizeof(ins_file));
	if (!b->manifests || !b->models)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < b->n_m; i++) {
		const ins_member *m = &b->m[i];
		int model = strncmp(m->path, "models/", 7) == 0;
		if (!model && strncmp(m->path, "manifests/", 10) != 0)
			continue;
		ins_file *f = model ? &b->models[b->n_models++] : &b->manifests[b->n_manifests++];
		snprintf(f->path, sizeof(f->path), "%s", m->path);
		f->m = m;
		if (model) {
			/* models/<name>/<version>/<file...> */
			const char *p = m->path + 7, *s1 = strchr(p, '/');
			const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
			if (!s1 || !s2 || s2[1] == '\0')
				return cm_error_set(
				    err, CM_EVERIFY,
				    "model member '%s' is not models/<name>/<version>/<file>",
				    m->path);
			snprintf(f->name, sizeof(f->name), "%.*s", (int)(s1 - p), p);
			snprintf(f->version, sizeof(f->version), "%.*s", (int)(s2 - s1 - 1),
				 s1 + 1);
			/* the names come from the path (checked when the bundle was
			 * verified: no "..", no "/"), never from bundle.json */
		}
	}
	return 0;
}

int ins_bundle_open(ins_bundle *b, const char *path, const ins_bundle_opts *o, cm_error *err)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->path, sizeof(b->path), "%s", path);
	sig_pubkey *key = NULL;
	int rc = ins_verify_key(&key, b->fingerprint, o->pubkey, o->insecure_skip_signature, err);
	if (rc < 0)
		return rc;
	b->insecure = key == NULL;
	cm_buf bjson = CM_BUF_INIT;
	reg_bidx_opts bo = {.bundle = path,
			    .mode = o->metadata_only ? REG_BIDX_LAZY : REG_BIDX_FULL,
			    .threads = o->threads,
			    .check_sig = key ? ins_verify_check_sig : NULL,
			    .sig_ctx = key,
			    .insecure_skip_signature = key == NULL,
			    .bundle_json = &bjson};
	reg_bidx_info info;
	double t0 = ins_now();
	rc = reg_bidx_open(&b->x, &info, &bo, err);
	b->verify_secs = ins_now() - t0;
	sig_pubkey_free(key);
	if (rc < 0) {
		cm_buf_free(&bjson);
		return rc;
	}
	b->file_size = info.file_size;
	b->bytes_hashed = info.bytes_hashed;
	b->n_m = reg_bidx_count(b->x);
	b->m = reg_bidx_members(b->x);
	b->bundle_json_len = bjson.len;
	b->bundle_json = cm_buf_detach(&bjson);
	json_error_t je;
	json_t *bj = json_loadb(b->bundle_json ? b->bundle_json : "", b->bundle_json_len, 0, &je);
	if (!json_is_object(bj)) {
		json_decref(bj);
		return cm_error_set(err, CM_EVERIFY,
				    "bundle %s: bundle.json is not a JSON object (%s)", path,
				    je.text);
	}
	const char *nm = json_string_value(json_object_get(bj, "name"));
	const char *ver = json_string_value(json_object_get(bj, "version"));
	snprintf(b->name, sizeof(b->name), "%s", nm ? nm : "bundle");
	snprintf(b->version, sizeof(b->version), "%s", ver ? ver : "");
	rc = load_index(b, bj, err);
	if (rc == 0)
		rc = load_files(b, err);
	json_decref(bj);
	if (rc < 0)
		return cm_error_wrap(err, "bundle %s", path);
	return 0;
}

void ins_bundle_close(ins_bundle *b)
{
	reg_bidx_free(b->x);
	b->x = NULL;
	free(b->images);
	free(b->manifests);
	free(b->models);
	free(b->bundle_json);
	b->bundle_json = NULL;
	b->m = NULL;
	b->images = NULL;
	b->manifests = b->models = NULL;
	b->n_m = b->n_images = b->n_manifests = b->n_models = 0;
}
