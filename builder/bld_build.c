#include "bld_build.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bld_bundle.h"
#include "bld_manifests.h"
#include "bld_models.h"
#include "bld_policy.h"
#include "bld_pull.h"
#include "bld_spec.h"
#include "cm_file.h"
#include "cm_version.h"
#include "reg_bidx.h"
#include "reg_catalog.h"
#include "reg_manifest.h"
#include "reg_receipt.h"
#include "reg_ref.h"
#include "reg_source.h"
#include "sig.h"

/* The cache folder: --cache, else the default (out must hold PATH_MAX). */
static int cache_dir(char *out, size_t n, const char *opt, cm_error *err)
{
	const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int len;
	if (opt)
		len = snprintf(out, n, "%s", opt);
	else if (x && *x)
		len = snprintf(out, n, "%s/ferry", x);
	else if (home && *home)
		len = snprintf(out, n, "%s/.cache/ferry", home);
	else
		return cm_error_set(err, CM_EINVAL,
				    "no cache folder: set --cache, XDG_CACHE_HOME or HOME");
	return (len < 0 || (size_t)len >= n) ? cm_error_set(err, CM_EINVAL, "cache path too long")
					     : 0;
}

typedef struct flist {
	bld_file *v;
	size_t n;
} flist;

/* Append v's n files to l; v is freed. (Manifests and models come from
 * bld_manifests.c and bld_models.c, the installer from add_installer.) */
static int flist_take(flist *l, bld_file *v, size_t n, cm_error *err)
{
	bld_file *nv = n ? realloc(l->v, (l->n + n) * sizeof(*nv)) : l->v;
	if (nv && n) {
		memcpy(nv + l->n, v, n * sizeof(*v));
		l->v = nv;
		l->n += n;
	}
	free(v);
	return nv || !n ? 0 : cm_error_set(err, CM_ENOMEM, "out of memory");
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

/* ---- deltas (docs/bundle-format.md "Deltas") ---------------------------- */

static int base_sig(void *ctx, const void *sums, size_t n, const void *sig, size_t sig_n,
		    cm_error *err)
{
	return sig_verify((const sig_pubkey *)ctx, sums, n, sig, sig_n, err);
}

/* --base: a receipt, or (with --base-pubkey) a bundle whose signed
 * SHA256SUMS lists what it holds. */
static int base_load(reg_receipt *out, const bld_build_opts *o, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!o->base_pubkey) {
		int rc = reg_receipt_load(out, o->base_path, err);
		if (rc == CM_EINVAL)
			cm_error_wrap(err, "--base (a bundle as base needs --base-pubkey)");
		return rc;
	}
	sig_pubkey *k = NULL;
	reg_bidx *x = NULL;
	reg_bidx_info info;
	cm_buf bj = CM_BUF_INIT;
	int rc = sig_pubkey_load(&k, o->base_pubkey, err);
	/* the signed SHA256SUMS: what the base holds */
	reg_bidx_opts bo = {.bundle = o->base_path,
			    .mode = REG_BIDX_LAZY,
			    .bundle_json = &bj,
			    .check_sig = base_sig,
			    .sig_ctx = k};
	if (rc == 0)
		rc = reg_bidx_open(&x, &info, &bo, err);
	if (rc < 0) {
		cm_error_wrap(err, "--base %s", o->base_path);
		goto done;
	}
	reg_receipt_bundle id;
	if ((rc = reg_receipt_bundle_from_json(&id, bj.data ? bj.data : "", bj.len,
					       info.sums_sha256, err)) < 0 ||
	    (rc = reg_receipt_add_bundle(out, &id, err)) < 0)
		goto done;
	const reg_bidx_member *m = reg_bidx_members(x);
	for (size_t i = 0; rc == 0 && i < reg_bidx_count(x); i++) {
		reg_digest d;
		char s[REG_DIGEST_STRLEN + 1];
		if (strncmp(m[i].path, "blobs/sha256/", 13) != 0)
			continue;
		snprintf(s, sizeof(s), "sha256:%.64s", m[i].hex);
		if ((rc = reg_digest_parse(&d, s, err)) == 0)
			rc = reg_receipt_add_blob(out, &d, m[i].size, err);
	}
	if (rc == 0)
		rc = reg_receipt_sort(out, err);
done:
	reg_bidx_free(x);
	cm_buf_free(&bj);
	sig_pubkey_free(k);
	if (rc < 0)
		reg_receipt_free(out);
	return rc;
}

typedef struct omitted {
	json_t *list;
	uint64_t *bytes;
	const reg_receipt *base;
} omitted;

/* A config or layer blob of the images that the base holds, once: a
 * visitor of bld_walk_image filling bundle.json's delta.omitted. */
static int omitted_add(void *ud, const reg_desc *d, cm_error *err)
{
	omitted *o = ud;
	size_t i;
	json_t *v;
	if (!bld_base_holds(o->base, d))
		return 0;
	json_array_foreach(o->list, i,
			   v) if (strcmp(json_string_value(json_object_get(v, "digest")),
					 d->digest.s) == 0) return 0;
	*o->bytes += d->size;
	return json_array_append_new(o->list, json_pack("{s:s,s:I}", "digest", d->digest.s, "size",
							(json_int_t)d->size)) < 0
		   ? cm_error_set(err, CM_ENOMEM, "out of memory")
		   : 0;
}

static int delta_json(json_t **out, size_t *n_omitted, uint64_t *bytes, reg_store *st,
		      const reg_receipt *base, const reg_image *imgs, size_t n, cm_error *err)
{
	json_t *bb = json_array(), *om = json_array();
	int rc = 0;
	*bytes = 0;
	for (size_t i = 0; i < base->n_bundles; i++) {
		const reg_receipt_bundle *b = &base->bundles[i];
		json_array_append_new(bb, json_pack("{s:s,s:s,s:s,s:s,s:s}", "name", b->name,
						    "version", b->version, "created", b->created,
						    "signer", b->signer, "sumsSha256", b->sums));
	}
	omitted oc = {om, bytes, base};
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = bld_walk_image(st, &imgs[i].root, 0, omitted_add, &oc, err);
	if (rc < 0) {
		json_decref(bb);
		json_decref(om);
		return rc;
	}
	*n_omitted = json_array_size(om);
	*out = json_pack("{s:o,s:o,s:I}", "baseBundles", bb, "omitted", om, "omittedBytes",
			 (json_int_t)*bytes);
	return *out ? 0 : cm_error_set(err, CM_ENOMEM, "out of memory");
}

/* bundle.json's "referrers": imgs[0..n_ref) with meta (docs/supply-chain.md);
 * a fallback index lists its entries as "artifacts" */
static json_t *referrers_json(reg_store *st, const reg_image *imgs, const bld_referrer *meta,
			      size_t n_ref)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n_ref; i++) {
		json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:I}", "ref", imgs[i].ref, "kind",
				      meta[i].kind, "subject", meta[i].subject, "digest",
				      imgs[i].root.digest.s, "size", (json_int_t)imgs[i].root.size,
				      "mediaType", imgs[i].root.media_type, "totalSize",
				      (json_int_t)imgs[i].total_size);
		cm_buf b = CM_BUF_INIT;
		cm_error e2;
		json_t *idx = NULL;
		if (o && strcmp(meta[i].kind, "index") == 0 &&
		    reg_store_read(&b, st, &imgs[i].root.digest, REG_MANIFEST_MAX, &e2) == 0)
			idx = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
		cm_buf_free(&b);
		json_t *arts = json_array(), *e;
		size_t k;
		json_array_foreach(json_object_get(idx, "manifests"), k, e)
		{
			const char *at = json_string_value(json_object_get(e, "artifactType"));
			const char *dg = json_string_value(json_object_get(e, "digest"));
			json_array_append_new(
			    arts, json_pack("{s:s,s:s,s:I}", "artifactType", at ? at : "", "digest",
					    dg ? dg : "", "size",
					    json_integer_value(json_object_get(e, "size"))));
		}
		json_decref(idx);
		if (o && json_array_size(arts))
			json_object_set_new(o, "artifacts", arts);
		else
			json_decref(arts);
		json_array_append_new(a, o);
	}
	return a;
}

static char *bundle_json(const bld_spec *s, const reg_image *imgs, size_t n, const flist *files,
			 json_t *manifests, json_t *model_artifacts, const char *signer,
			 time_t created, json_t *delta, json_t *referrers)
{
	char ts[32];
	struct tm tm;
	gmtime_r(&created, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	const char *base = strrchr(s->file, '/');
	json_t *plats = json_array();
	for (size_t i = 0; s->platforms && s->platforms[i]; i++)
		json_array_append_new(plats, json_string(s->platforms[i]));
	json_t *root =
	    json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:o}", "formatVersion", 1, "name", s->name,
		      "version", s->version, "created", ts, "builder", "ferry-build " FERRY_VERSION,
		      "signer", signer, "platforms", plats);
	if (!root)
		return NULL;
	json_object_set_new(root, "spec",
			    json_pack("{s:s,s:s%}", "file", base ? base + 1 : s->file, "text",
				      s->text.data, s->text.len));
	json_t *ia = json_array();
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "ref", imgs[i].ref, "digest",
				      imgs[i].root.digest.s, "mediaType", imgs[i].root.media_type,
				      "size", (json_int_t)imgs[i].total_size);
		json_object_set_new(o, "platforms", platform_list(imgs[i].platforms));
		if (imgs[i].note[0])
			json_object_set_new(o, "note", json_string(imgs[i].note));
		if (i < s->n_images && bld_spec_verify(s, i)) /* the build checked it */
			json_object_set_new(o, "verified", json_string("sigstore"));
		json_array_append_new(ia, o);
		total += imgs[i].total_size;
	}
	json_object_set_new(root, "images", ia);
	json_t *mo = json_array(), *tools = NULL;
	for (size_t i = 0; i < files->n; i++) {
		const bld_file *f = &files->v[i];
		json_t *o = json_pack("{s:s,s:s,s:I}", "path", f->member, "sha256", f->hex, "size",
				      (json_int_t)f->size);
		total += f->size;
		if (strncmp(f->member, "manifests/", 10) == 0) {
			json_decref(o); /* listed by bld_manifests_json, with kind counts */
		} else if (strncmp(f->member, "tools/", 6) == 0) {
			if (!tools)
				tools = json_array();
			json_array_append_new(tools, o);
		} else {
			/* models/<name>/<version>/<file> */
			char name[256] = "", ver[128] = "";
			sscanf(f->member + 7, "%255[^/]/%127[^/]", name, ver);
			json_object_set_new(o, "name", json_string(name));
			json_object_set_new(o, "version", json_string(ver));
			json_array_append_new(mo, o);
		}
	}
	json_object_set_new(root, "manifests", manifests ? manifests : json_array());
	json_object_set_new(root, "models", mo);
	json_object_set_new(root, "modelArtifacts",
			    model_artifacts ? model_artifacts : json_array());
	if (tools) /* only then: bundles without stay byte for byte as they were */
		json_object_set_new(root, "tools", tools);
	if (referrers && json_array_size(referrers)) { /* the same: only when some */
		for (size_t i = 0; i < json_array_size(referrers); i++)
			total += (uint64_t)json_integer_value(
			    json_object_get(json_array_get(referrers, i), "totalSize"));
		json_object_set_new(root, "referrers", referrers);
	} else {
		json_decref(referrers);
	}
	json_object_set_new(root, "totalSize", json_integer((json_int_t)total));
	if (delta)
		json_object_set(root, "delta", delta); /* the caller keeps its reference */
	/* a delta's bundle.json is compact (docs/bundle-format.md "Deltas") */
	char *txt = json_dumps(root, delta ? JSON_COMPACT : JSON_INDENT(2));
	json_decref(root);
	return txt;
}

static uint64_t mtime_ns(const struct stat *st)
{
	return (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
}

/* The output's absolute path (its folder resolved), and whether the
 * catalog holds a record of it that still matches the file on disk. */
static int out_record(char *abs, size_t n, reg_catalog_bundle *rec, reg_store *st, const char *path)
{
	char dir[PATH_MAX], real[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	const char *base = slash ? slash + 1 : path;
	if (slash)
		*slash = '\0';
	if (!realpath(slash ? (dir[0] ? dir : "/") : ".", real) ||
	    snprintf(abs, n, "%s/%s", real, base) >= (int)n) {
		abs[0] = '\0';
		return 0;
	}
	struct stat sb;
	if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    !reg_catalog_bundle_get(rec, reg_store_db(st), abs))
		return 0;
	return rec->dev == (uint64_t)sb.st_dev && rec->ino == (uint64_t)sb.st_ino &&
	       rec->size == (uint64_t)sb.st_size && rec->mtime_ns == mtime_ns(&sb);
}

/* Remember what was written where; failing to is not an error (the next
 * build just writes again). */
static void record_output(reg_store *st, const char *abs, const char *path, const char *sums,
			  time_t created)
{
	struct stat sb;
	if (!abs[0] || stat(path, &sb) < 0)
		return;
	reg_catalog_bundle b = {
	    (uint64_t)sb.st_dev, (uint64_t)sb.st_ino, (uint64_t)sb.st_size, mtime_ns(&sb), "",
	    (int64_t)created};
	snprintf(b.sums, sizeof(b.sums), "%s", sums);
	cm_error e;
	reg_catalog_bundle_put(reg_store_db(st), abs, &b, &e);
}

const char *bld_default_installer(char *buf, size_t n)
{
	const char *env = getenv("FERRY_INSTALLER");
	if (env && strcmp(env, "none") == 0)
		return NULL;
	if (env && *env) {
		if ((size_t)snprintf(buf, n, "%s", env) >= n)
			return env;
		return buf;
	}
	char exe[PATH_MAX];
	ssize_t l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (l <= 0)
		return NULL;
	exe[l] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	static const char *const rel[] = {"/portable/ferry-install",
					  "/../lib/ferry/ferry-install-linux-amd64"};
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		struct stat sb;
		int k = snprintf(buf, n, "%s%s", exe, rel[i]);
		if (k > 0 && (size_t)k < n && stat(buf, &sb) == 0 && S_ISREG(sb.st_mode))
			return buf;
	}
	return NULL;
}

/* The installer a bundle carries: an ELF file holding ferry's version
 * marker (so that a wrong file is refused), hashed like any member. */
static int add_installer(flist *files, const char *path, FILE *log, cm_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "--with-installer %s", path);
	unsigned char buf[1 << 16];
	cm_vscan vs;
	cm_vscan_init(&vs);
	int elf = 0;
	uint64_t total = 0;
	ssize_t k;
	while ((k = read(fd, buf, sizeof(buf))) > 0) {
		if (total == 0)
			elf = k >= 4 && memcmp(buf, "\177ELF", 4) == 0;
		cm_vscan_feed(&vs, buf, (size_t)k);
		total += (uint64_t)k;
	}
	int rerr = k < 0 ? errno : 0;
	close(fd);
	if (rerr)
		return cm_error_sys(err, rerr, "reading --with-installer %s", path);
	if (!elf || !cm_vscan_result(&vs))
		return cm_error_set(err, CM_EINVAL, "--with-installer %s: not a ferry-install (%s)",
				    path, elf ? "no FERRY_VERSION= marker" : "not an ELF file");
	bld_file *f = calloc(1, sizeof(*f));
	if (!f)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	snprintf(f->member, sizeof(f->member), "tools/ferry-install-linux-amd64");
	int rc = (size_t)snprintf(f->src, sizeof(f->src), "%s", path) >= sizeof(f->src)
		     ? cm_error_set(err, CM_EINVAL, "--with-installer: path too long")
		     : bld_files_hash(f, 1, err);
	if (rc < 0) {
		free(f);
		return rc;
	}
	if (log)
		fprintf(log, "installer %s <- %s: ferry-install %s, %llu bytes\n", f->member, path,
			cm_vscan_result(&vs), (unsigned long long)f->size);
	return flist_take(files, f, 1, err);
}

int bld_build(bld_build_result *out, const bld_build_opts *o, cm_error *err)
{
	bld_spec s;
	reg_store *st = NULL;
	sig_seckey *key = NULL;
	reg_image *imgs = NULL;
	flist files = {NULL, 0};
	char *bj = NULL;
	bld_pull *pull = NULL;
	bld_manifests mf = {.log = o->log};
	bld_models models = {0};
	size_t n_imgs = 0, n_ref = 0;
	bld_referrer *rmeta = NULL;
	char mdir[PATH_MAX] = "";
	char cache[PATH_MAX];
	char signer[SIG_FPR_LEN + 1];
	reg_receipt base = {0};
	json_t *delta = NULL;
	size_t n_omitted = 0;
	uint64_t omitted_bytes = 0;
	bld_build_opts lo = *o;
	int rc = bld_spec_load(&s, o->spec_path, err);
	if (rc < 0)
		return rc;
	if ((rc = sig_seckey_load(&key, o->key_path, err)) < 0 ||
	    (rc = sig_seckey_fingerprint(signer, key, err)) < 0)
		goto out;
	if (o->base_path) {
		/* a delta: the base's blobs are neither fetched nor carried */
		if ((rc = base_load(&base, o, err)) < 0)
			goto out;
		lo.base = &base;
		o = &lo;
	}
	if ((rc = cache_dir(cache, sizeof(cache), o->cache_dir, err)) < 0 ||
	    (rc = reg_store_open(&st, cache, err)) < 0)
		goto out;
	/* manifests are read (and kustomizations rendered) before images are
	 * fetched: `images: auto` takes its list from them */
	if ((rc = bld_manifests_from_spec(&mf, &s, err)) < 0)
		goto out;
	if ((s.images_auto || o->auto_images) &&
	    (rc = bld_manifests_auto_images(&s, &mf, o->include_suggested, NULL, err)) < 0)
		goto out;
	if ((rc = bld_policy_precheck(&s, err)) < 0)
		goto out;
	imgs = calloc(s.n_images + 2 * s.n_models + 1, sizeof(*imgs));
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
				rc = cm_error_set(err, CM_EINVAL, "%s:%d: image %s is listed twice",
						  s.file, is->line, full);
				goto out;
			}
		if (!is->from[0]) {
			/* from its registry: resolved up front, blobs downloaded
			 * later into the cache and the bundle at once */
			if (!pull && (rc = bld_pull_prepare(&pull, &s, st, o, err)) < 0)
				goto out;
			if ((rc = bld_pull_copy(pull, i, &imgs[i], err)) < 0)
				goto out;
		} else {
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
		}
		if (o->log)
			fprintf(o->log, "image %s -> %s (%llu bytes%s%s)\n", full,
				imgs[i].root.digest.s, (unsigned long long)imgs[i].total_size,
				imgs[i].note[0] ? "; " : "", imgs[i].note);
		if (out)
			out->fetched += imgs[i].fetched;
	}
	n_imgs = s.n_images;
	/* models: an artifact and a modelcar image each, then raw copies */
	if ((rc = bld_models_build(&models, &s, st, cache, o, err)) < 0)
		goto out;
	for (size_t i = 0; i < models.n; i++) {
		imgs[n_imgs++] = models.v[i].artifact;
		imgs[n_imgs++] = models.v[i].modelcar;
	}
	if (out)
		out->fetched += models.fetched;
	/* what is attached to the pulled images (signatures, attestations,
	 * SBOMs): after them in imgs, listed apart in bundle.json */
	size_t cap_ref = bld_pull_referrers_count(pull);
	if (cap_ref) {
		reg_image *ni = realloc(imgs, (n_imgs + cap_ref) * sizeof(*imgs));
		if (ni)
			imgs = ni;
		rmeta = calloc(cap_ref, sizeof(*rmeta));
		if (!ni || !rmeta) {
			rc = cm_error_set(err, CM_ENOMEM, "out of memory");
			goto out;
		}
		memset(imgs + n_imgs, 0, cap_ref * sizeof(*imgs));
		for (size_t i = 0; i < s.n_images; i++)
			if (!s.images[i].from[0] &&
			    (rc = bld_pull_copy_referrers(pull, i, imgs + n_imgs, rmeta, &n_ref,
							  cap_ref, err)) < 0)
				goto out;
		for (size_t i = 0; o->log && i < n_ref; i++)
			fprintf(o->log, "referrer %s (%s of %s) -> %s\n", imgs[n_imgs + i].ref,
				rmeta[i].kind, rmeta[i].subject, imgs[n_imgs + i].root.digest.s);
	}
	/* manifests, pinned to the digests of the images now in the store */
	bld_file *fv;
	size_t fn;
	if ((size_t)snprintf(mdir, sizeof(mdir), "%s/tmp/manifests.XXXXXX", cache) >=
		sizeof(mdir) ||
	    !mkdtemp(mdir)) {
		rc = cm_error_sys(err, errno, "making a folder under %s/tmp", cache);
		mdir[0] = '\0';
		goto out;
	}
	if ((rc = bld_manifests_write(&mf, mdir, imgs, n_imgs, !o->no_pin, 1, &fv, &fn, err)) < 0 ||
	    (rc = flist_take(&files, fv, fn, err)) < 0)
		goto out;
	if (!o->no_model_files && ((rc = bld_models_files(&models, st, &fv, &fn, err)) < 0 ||
				   (rc = flist_take(&files, fv, fn, err)) < 0))
		goto out;
	if (o->installer_path && (rc = add_installer(&files, o->installer_path, o->log, err)) < 0)
		goto out;
	/* An output this cache wrote, unchanged on disk since: when the new
	 * content is the same (keeping its creation time unless
	 * SOURCE_DATE_EPOCH says otherwise), leave it alone. */
	char abs_out[PATH_MAX];
	reg_catalog_bundle rec;
	bld_bundle_out bo;
	/* a volume set is written anew each time (no record of parts) */
	if (o->base && (rc = delta_json(&delta, &n_omitted, &omitted_bytes, st, o->base, imgs,
					n_imgs + n_ref, err)) < 0)
		goto out;
	int have_rec =
	    !o->volume_size && out_record(abs_out, sizeof(abs_out), &rec, st, o->out_path);
	/* with a record: its creation time and SHA256SUMS first; the same sums
	 * leave the bundle on disk as it is, else (or without one) it is
	 * written anew */
	for (int reuse = have_rec;; reuse = 0) {
		time_t t = reuse && !o->created_fixed ? (time_t)rec.created : o->created;
		free(bj);
		bj =
		    bundle_json(&s, imgs, n_imgs, &files, bld_manifests_json(&mf, files.v, files.n),
				bld_models_json(&models), signer, t, delta,
				referrers_json(st, imgs + n_imgs, rmeta, n_ref));
		if (!bj) {
			rc = cm_error_set(err, CM_ENOMEM, "out of memory");
			goto out;
		}
		bld_bundle_in in = {
		    st,	    imgs, n_imgs + n_ref,	   files.v,	     files.n, bj,
		    key,    t,	  reuse ? rec.sums : NULL, bld_pull_pending, pull,    0,
		    o->base};
		if (!reuse && o->volume_size) {
			/* parts are written in order from the cache: the downloads
			 * land there first (no holes) */
			if ((rc = bld_pull_fetch(pull, NULL, NULL, err)) < 0)
				goto out;
			in.pending = NULL;
			in.pending_ud = NULL;
			in.volume_size = o->volume_size;
		}
		if ((rc = bld_bundle_write(&bo, o->out_path, &in, err)) < 0)
			goto out;
		if (!reuse)
			break;
		if (bo.reused) {
			bo.size = rec.size;
			if (o->log)
				fprintf(o->log, "%s is up to date (same content, written before)\n",
					o->out_path);
			goto written;
		}
	}
	/* the downloads fill the bundle's holes as they land in the cache */
	if ((rc = bld_pull_fetch(pull, bld_bundle_pending_tee, bo.pending, err)) < 0) {
		bld_bundle_pending_abort(bo.pending);
		goto out;
	}
	if (bo.pending && (rc = bld_bundle_pending_finish(bo.pending, err)) < 0)
		goto out;
	if (!o->volume_size)
		record_output(st, abs_out, o->out_path, bo.sums_hex, o->created);
written:
	if ((rc = bld_pull_finish(pull, err)) < 0)
		goto out;
	if (out) {
		out->fetched += bld_pull_fetched(pull);
		out->images = n_imgs;
		out->files = files.n;
		out->bytes = bo.size;
		out->parts = bo.parts;
		out->omitted = n_omitted;
		out->omitted_bytes = omitted_bytes;
		snprintf(out->signer, sizeof(out->signer), "%s", signer);
	}
out:
	if (mdir[0])
		cm_rmtree(mdir);
	bld_manifests_free(&mf);
	bld_models_free(&models);
	bld_pull_free(pull);
	free(bj);
	free(files.v);
	free(imgs);
	free(rmeta);
	sig_seckey_free(key);
	json_decref(delta);
	reg_receipt_free(&base);
	reg_store_free(st);
	bld_spec_free(&s);
	return rc;
}
