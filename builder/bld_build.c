#include "bld_build.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bld_bundle.h"
#include "bld_spec.h"
#include "cm_file.h"
#include "reg_ref.h"
#include "reg_source.h"
#include "sig.h"

int bld_default_cache(char *out, size_t n, cm_error *err)
{
	const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int len;
	if (x && *x)
		len = snprintf(out, n, "%s/ferry", x);
	else if (home && *home)
		len = snprintf(out, n, "%s/.cache/ferry", home);
	else
		return cm_error_set(err, CM_EINVAL, "no cache folder: set --cache, XDG_CACHE_HOME or HOME");
	return (len < 0 || (size_t)len >= n) ? cm_error_set(err, CM_EINVAL, "cache path too long") : 0;
}

typedef struct flist {
	bld_file *v;
	size_t n, cap;
} flist;

static bld_file *flist_add(flist *l, cm_error *err)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		bld_file *v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			cm_error_set(err, CM_ENOMEM, "out of memory");
			return NULL;
		}
		l->v = v;
		l->cap = cap;
	}
	bld_file *f = &l->v[l->n++];
	memset(f, 0, sizeof(*f));
	return f;
}

static int resolve(char *out, size_t n, const char *dir, const char *p)
{
	int len = p[0] == '/' ? snprintf(out, n, "%s", p) : snprintf(out, n, "%s/%s", dir, p);
	return (len < 0 || (size_t)len >= n) ? CM_EINVAL : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in a folder (caller frees each and the array). */
static int list_dir(char ***out, size_t *out_n, const char *dir, cm_error *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return cm_error_sys(err, errno, "opening %s", dir);
	char **v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nv = realloc(v, cap * sizeof(char *));
			if (!nv)
				break;
			v = nv;
		}
		v[n] = strdup(e->d_name);
		if (!v[n])
			break;
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(char *), cmp_str);
	*out = v;
	*out_n = n;
	return 0;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int is_yaml(const char *name)
{
	size_t l = strlen(name);
	return (l > 5 && strcmp(name + l - 5, ".yaml") == 0) || (l > 4 && strcmp(name + l - 4, ".yml") == 0);
}

static int safe_name(char *out, size_t n, const char *in)
{
	size_t j = 0;
	for (size_t i = 0; in[i] && j + 1 < n; i++) {
		char c = in[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			 c == '.' || c == '_' || c == '-';
		out[j++] = ok ? c : '_';
	}
	out[j] = '\0';
	if (j == 0 || out[0] == '.')
		out[0] = '_';
	return 0;
}

static int add_manifest_file(flist *l, int *seq, const char *src, const char *name, cm_error *err)
{
	bld_file *f = flist_add(l, err);
	if (!f)
		return CM_ENOMEM;
	char clean[256];
	safe_name(clean, sizeof(clean), name);
	snprintf(f->member, sizeof(f->member), "manifests/%02d-%s", (*seq)++, clean);
	snprintf(f->src, sizeof(f->src), "%s", src);
	return 0;
}

static int collect_manifests(flist *l, const bld_spec *s, cm_error *err)
{
	int seq = 1, rc = 0;
	for (size_t i = 0; i < s->n_manifests && rc == 0; i++) {
		const bld_manifest_spec *m = &s->manifests[i];
		char p[PATH_MAX];
		if (m->kustomize[0])
			return cm_error_set(err, CM_EINVAL,
					    "%s:%d: kustomize rendering is not supported by this build yet",
					    s->file, m->line);
		if (resolve(p, sizeof(p), s->dir, m->path) < 0)
			return cm_error_set(err, CM_EINVAL, "%s:%d: path too long", s->file, m->line);
		struct stat st;
		if (stat(p, &st) < 0)
			return cm_error_sys(err, errno, "%s:%d: manifests path %s", s->file, m->line, p);
		if (S_ISREG(st.st_mode)) {
			const char *base = strrchr(p, '/');
			rc = add_manifest_file(l, &seq, p, base ? base + 1 : p, err);
			continue;
		}
		char **names;
		size_t n;
		if ((rc = list_dir(&names, &n, p, err)) < 0)
			return rc;
		for (size_t j = 0; j < n && rc == 0; j++) {
			char fp[PATH_MAX];
			struct stat fst;
			if (!is_yaml(names[j]) || snprintf(fp, sizeof(fp), "%s/%s", p, names[j]) >= (int)sizeof(fp) ||
			    stat(fp, &fst) < 0 || !S_ISREG(fst.st_mode))
				continue;
			rc = add_manifest_file(l, &seq, fp, names[j], err);
		}
		free_names(names, n);
	}
	return rc;
}

/* Model files go under models/<name>/<version>/ (a folder is walked one
 * level deep: model folders are flat in practice). */
static int collect_models(flist *l, const bld_spec *s, cm_error *err)
{
	for (size_t i = 0; i < s->n_models; i++) {
		const bld_model_spec *m = &s->models[i];
		char p[PATH_MAX];
		if (m->url[0])
			return cm_error_set(err, CM_EINVAL,
					    "%s:%d: model %s: downloading models by url is not supported "
					    "by this build yet",
					    s->file, m->line, m->name);
		if (resolve(p, sizeof(p), s->dir, m->path) < 0)
			return cm_error_set(err, CM_EINVAL, "%s:%d: path too long", s->file, m->line);
		struct stat st;
		if (stat(p, &st) < 0)
			return cm_error_sys(err, errno, "%s:%d: model %s path %s", s->file, m->line,
					    m->name, p);
		size_t first = l->n;
		if (S_ISREG(st.st_mode)) {
			bld_file *f = flist_add(l, err);
			if (!f)
				return CM_ENOMEM;
			const char *base = strrchr(p, '/');
			char clean[256];
			safe_name(clean, sizeof(clean), base ? base + 1 : p);
			snprintf(f->member, sizeof(f->member), "models/%s/%s/%s", m->name, m->version, clean);
			snprintf(f->src, sizeof(f->src), "%s", p);
		} else {
			char **names;
			size_t n;
			int rc = list_dir(&names, &n, p, err);
			if (rc < 0)
				return rc;
			for (size_t j = 0; j < n; j++) {
				char fp[PATH_MAX];
				struct stat fst;
				if (snprintf(fp, sizeof(fp), "%s/%s", p, names[j]) >= (int)sizeof(fp) ||
				    stat(fp, &fst) < 0 || !S_ISREG(fst.st_mode))
					continue;
				bld_file *f = flist_add(l, err);
				if (!f) {
					free_names(names, n);
					return CM_ENOMEM;
				}
				char clean[256];
				safe_name(clean, sizeof(clean), names[j]);
				snprintf(f->member, sizeof(f->member), "models/%s/%s/%s", m->name,
					 m->version, clean);
				snprintf(f->src, sizeof(f->src), "%s", fp);
			}
			free_names(names, n);
		}
		int rc = bld_files_hash(l->v + first, l->n - first, err);
		if (rc < 0)
			return rc;
		if (m->sha256[0]) {
			if (l->n - first != 1)
				return cm_error_set(err, CM_EINVAL,
						    "%s:%d: model %s: sha256 applies to a single file", s->file,
						    m->line, m->name);
			if (strcmp(l->v[first].hex, m->sha256) != 0)
				return cm_error_set(err, CM_EVERIFY,
						    "%s:%d: model %s: %s hashes to %s, the spec says %s",
						    s->file, m->line, m->name, p, l->v[first].hex, m->sha256);
		}
	}
	return 0;
}

static json_t *str_list(char *const *v)
{
	json_t *a = json_array();
	for (size_t i = 0; v && v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *platform_list(const char *csv)
{
	json_t *a = json_array();
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", csv);
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		json_array_append_new(a, json_string(t));
	return a;
}

static char *bundle_json(const bld_spec *s, const reg_image *imgs, size_t n, const flist *files,
			 const char *signer, time_t created)
{
	char ts[32];
	struct tm tm;
	gmtime_r(&created, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	const char *base = strrchr(s->file, '/');
	json_t *root = json_object();
	json_object_set_new(root, "formatVersion", json_integer(1));
	json_object_set_new(root, "name", json_string(s->name));
	json_object_set_new(root, "version", json_string(s->version));
	json_object_set_new(root, "created", json_string(ts));
	json_object_set_new(root, "builder", json_string("ferry-build " FERRY_VERSION));
	json_object_set_new(root, "signer", json_string(signer));
	json_object_set_new(root, "platforms", str_list(s->platforms));
	json_object_set_new(root, "spec", json_pack("{s:s,s:s%}", "file", base ? base + 1 : s->file,
						    "text", s->text.data, s->text.len));
	json_t *ia = json_array();
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "ref", imgs[i].ref, "digest",
				      imgs[i].root.digest.s, "mediaType", imgs[i].root.media_type,
				      "size", (json_int_t)imgs[i].total_size);
		json_object_set_new(o, "platforms", platform_list(imgs[i].platforms));
		if (imgs[i].note[0])
			json_object_set_new(o, "note", json_string(imgs[i].note));
		json_array_append_new(ia, o);
		total += imgs[i].total_size;
	}
	json_object_set_new(root, "images", ia);
	json_t *ma = json_array(), *mo = json_array();
	for (size_t i = 0; i < files->n; i++) {
		const bld_file *f = &files->v[i];
		json_t *o = json_pack("{s:s,s:s,s:I}", "path", f->member, "sha256", f->hex, "size",
				      (json_int_t)f->size);
		total += f->size;
		if (strncmp(f->member, "manifests/", 10) == 0) {
			json_array_append_new(ma, o);
		} else {
			/* models/<name>/<version>/<file> */
			char name[256], ver[128];
			const char *p = f->member + 7;
			const char *s1 = strchr(p, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
			snprintf(name, sizeof(name), "%.*s", s1 ? (int)(s1 - p) : 0, p);
			snprintf(ver, sizeof(ver), "%.*s", s2 ? (int)(s2 - s1 - 1) : 0, s1 ? s1 + 1 : "");
			json_object_set_new(o, "name", json_string(name));
			json_object_set_new(o, "version", json_string(ver));
			json_array_append_new(mo, o);
		}
	}
	json_object_set_new(root, "manifests", ma);
	json_object_set_new(root, "models", mo);
	json_object_set_new(root, "totalSize", json_integer((json_int_t)total));
	char *txt = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	return txt;
}

int bld_build(bld_build_result *out, const bld_build_opts *o, cm_error *err)
{
	bld_spec s;
	reg_store *st = NULL;
	sig_seckey *key = NULL;
	reg_image *imgs = NULL;
	flist files = { NULL, 0, 0 };
	char *bj = NULL;
	char cache[PATH_MAX];
	char signer[SIG_FPR_LEN + 1];
	int rc = bld_spec_load(&s, o->spec_path, err);
	if (rc < 0)
		return rc;
	if ((rc = sig_seckey_load(&key, o->key_path, err)) < 0 ||
	    (rc = sig_seckey_fingerprint(signer, key, err)) < 0)
		goto out;
	if (o->cache_dir)
		snprintf(cache, sizeof(cache), "%s", o->cache_dir);
	else if ((rc = bld_default_cache(cache, sizeof(cache), err)) < 0)
		goto out;
	if ((rc = reg_store_open(&st, cache, err)) < 0)
		goto out;
	imgs = calloc(s.n_images ? s.n_images : 1, sizeof(*imgs));
	if (!imgs) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < s.n_images; i++) {
		const bld_image_spec *is = &s.images[i];
		reg_ref r;
		char full[600];
		if ((rc = reg_ref_parse(&r, is->ref, err)) < 0) {
			cm_error_wrap(err, "%s:%d", s.file, is->line);
			goto out;
		}
		reg_ref_string(full, sizeof(full), &r);
		for (size_t j = 0; j < i; j++)
			if (strcmp(imgs[j].ref, full) == 0) {
				rc = cm_error_set(err, CM_EINVAL, "%s:%d: image %s is listed twice", s.file,
						  is->line, full);
				goto out;
			}
		if (!is->from[0]) {
			rc = cm_error_set(err, CM_EINVAL,
					  "%s:%d: image %s has no 'from:'; pulling from registries is "
					  "not supported by this build yet",
					  s.file, is->line, full);
			goto out;
		}
		reg_source *src;
		if ((rc = reg_source_open(&src, is->from, s.dir, st, err)) < 0) {
			cm_error_wrap(err, "%s:%d: image %s", s.file, is->line, full);
			goto out;
		}
		const char *const *plat =
			(const char *const *)(is->platforms ? is->platforms : s.platforms);
		rc = reg_copy_image(&imgs[i], st, src, full, plat, err);
		reg_source_free(src);
		if (rc < 0)
			goto out;
		if (o->log)
			fprintf(o->log, "image %s -> %s (%llu bytes%s%s)\n", full, imgs[i].root.digest.s,
				(unsigned long long)imgs[i].total_size, imgs[i].note[0] ? "; " : "",
				imgs[i].note);
		if (out)
			out->fetched += imgs[i].fetched;
	}
	if ((rc = collect_manifests(&files, &s, err)) < 0 ||
	    (rc = bld_files_hash(files.v, files.n, err)) < 0 ||
	    (rc = collect_models(&files, &s, err)) < 0)
		goto out;
	bj = bundle_json(&s, imgs, s.n_images, &files, signer, o->created);
	if (!bj) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto out;
	}
	bld_bundle_in in = { st, imgs, s.n_images, files.v, files.n, bj, key, o->created };
	bld_bundle_out bo;
	if ((rc = bld_bundle_write(&bo, o->out_path, &in, err)) < 0)
		goto out;
	if (out) {
		out->images = s.n_images;
		out->files = files.n;
		out->bytes = bo.size;
		snprintf(out->signer, sizeof(out->signer), "%s", signer);
	}
out:
	free(bj);
	free(files.v);
	free(imgs);
	sig_seckey_free(key);
	reg_store_free(st);
	bld_spec_free(&s);
	return rc;
}
