#include "bld_models.h"

#include <archive.h>
#include <archive_entry.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cm_file.h"
#include "reg_catalog.h"
#include "reg_client.h"
#include "reg_url.h"
#include "reg_manifest.h"
#include "reg_ref.h"

#define MODEL_FILES_MAX 10000

/* ---- downloads: requests on the registry client's engine ---- */

/* The part file as the engine's resumable sink. */
typedef struct dl {
	int fd;
	uint64_t have; /* bytes in the part file */
	uint64_t got;  /* bytes received in this run */
	reg_hasher *h;
	const char *url;
	FILE *log;
} dl;

static int dl_write(void *ud, const char *p, size_t n, cm_error *err)
{
	dl *d = ud;
	int rc = cm_write_all(d->fd, p, n, err);
	if (rc < 0)
		return rc;
	reg_hasher_update(d->h, p, n);
	d->have += n;
	d->got += n;
	return 0;
}

static uint64_t dl_size(void *ud)
{
	return ((dl *)ud)->have;
}

static int dl_reset(void *ud, cm_error *err)
{
	dl *d = ud;
	if (ftruncate(d->fd, 0) < 0 || lseek(d->fd, 0, SEEK_SET) < 0) {
		char shown[600];
		reg_url_redact(shown, sizeof(shown), d->url);
		return cm_error_sys(err, errno, "truncating the download of %s", shown);
	}
	reg_hasher_reset(d->h);
	d->have = 0;
	return 0;
}

static void dl_event(void *ud, const reg_event *ev)
{
	dl *d = ud;
	if (!d->log)
		return;
	if (ev->type == REG_EV_RESUME)
		fprintf(d->log, "  %s: resuming at byte %llu\n", d->url,
			(unsigned long long)ev->done);
	else if (ev->type == REG_EV_RETRY)
		fprintf(d->log, "  %s: %s after %llu bytes; retrying in %.1fs\n", d->url, ev->msg,
			(unsigned long long)d->have, ev->wait);
}

/* A Hugging Face token ($HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN) for a URL
 * on huggingface.co (or on $HF_ENDPOINT's host): sent to that origin only,
 * never along a resolve/ redirect to the CDN. */
static const char *hf_token(const char *url)
{
	const char *t = getenv("HF_TOKEN");
	if (!t || !t[0])
		t = getenv("HUGGING_FACE_HUB_TOKEN");
	if (!t || !t[0])
		return NULL;
	const char *ep = getenv("HF_ENDPOINT");
	reg_url u, e;
	if (reg_url_parse(&u, url, 0, NULL) < 0)
		return NULL;
	int ok =
	    strcasecmp(u.host, "huggingface.co") == 0 ||
	    (ep && ep[0] && reg_url_parse(&e, ep, 0, NULL) == 0 && strcasecmp(u.host, e.host) == 0);
	return ok ? t : NULL;
}

/* GET url into d's part file, resuming from what it holds. */
static int fetch(dl *d, const char *url, cm_error *err)
{
	reg_client_opts co = {.jobs = 1,
			      .retry_budget = -1,
			      .max_attempts = BLD_DOWNLOAD_TRIES,
			      .progress = dl_event,
			      .progress_ud = d};
	reg_client *c = NULL;
	reg_lane *l = NULL;
	int rc = reg_client_new(&c, &co, err);
	if (rc == 0)
		rc = reg_lane_new(&l, c, err);
	if (rc < 0) {
		reg_client_free(c);
		return rc;
	}
	if (d->log && d->have == 0)
		fprintf(d->log, "  %s: downloading\n", d->url);
	reg_sink sink = {dl_write, dl_size, dl_reset, d, 0};
	char ah[4200] = "";
	const char *tok = hf_token(url);
	if (tok && snprintf(ah, sizeof(ah), "Authorization: Bearer %s", tok) >= (int)sizeof(ah))
		rc = cm_error_set(err, CM_EINVAL, "$HF_TOKEN is too long");
	reg_req q = {.method = "GET", .url = url, .authorization = ah, .sink = &sink, .netrc = 1};
	reg_resp r = {0};
	if (rc == 0)
		rc = reg_request(&r, l, &q, err);
	OPENSSL_cleanse(ah, sizeof(ah));
	if (rc == 0 && r.status != 200 && r.status != 206)
		rc = cm_error_set(err, r.status == 404 ? CM_ENOTFOUND : CM_EFAIL,
				  "GET %s: the server answered HTTP %ld", d->url, r.status);
	cm_buf_free(&r.body);
	reg_lane_free(l);
	reg_client_free(c);
	return rc;
}

/* Hash what the part file already holds. */
static int hash_existing(dl *d, const char *path, cm_error *err)
{
	int rc = 0;
	if (lseek(d->fd, 0, SEEK_SET) < 0)
		rc = cm_error_sys(err, errno, "seeking %s", path);
	if (rc == 0)
		rc = cm_read_each(d->fd, d->have, reg_hasher_sink, d->h, NULL, path, err);
	if (rc == 0 && lseek(d->fd, 0, SEEK_END) < 0)
		rc = cm_error_sys(err, errno, "seeking %s", path);
	return rc;
}

/* Put a verified file into the store under its digest: the part file and
 * the store share the cache folder, so this is a rename, not a copy. */
static int adopt(reg_store *st, const char *part, int fd, const reg_digest *d, uint64_t size,
		 cm_error *err)
{
	char dst[PATH_MAX];
	uint64_t have;
	if (reg_store_has_file(st, d, &have) && have == size) {
		unlink(part);
		return 0;
	}
	if (fsync(fd) < 0)
		return cm_error_sys(err, errno, "fsync %s", part);
	if (reg_store_blob_path(dst, sizeof(dst), st, d) < 0)
		return cm_error_set(err, CM_EINVAL, "store path too long");
	if (fchmod(fd, 0644) < 0)
		return cm_error_sys(err, errno, "chmod %s", part);
	if (rename(part, dst) < 0)
		return cm_error_sys(err, errno, "moving %s to %s", part, dst);
	int rc = cm_fsync_parent(dst, err);
	if (rc == 0)
		rc = reg_catalog_add_blob(reg_store_db(st), d->s, size, NULL, err);
	return rc;
}

/* Download url into the store. expect may be NULL (then any content is
 * taken and its digest returned). fetched (may be NULL) receives the
 * bytes transferred. */
static int download(reg_digest *out, uint64_t *out_size, uint64_t *fetched, reg_store *st,
		    const char *cache, const char *url, const reg_digest *expect, FILE *log,
		    cm_error *err)
{
	uint64_t have;
	char shown[1100]; /* the url for logs and messages: no user:password */
	reg_url_redact(shown, sizeof(shown), url);
	if (fetched)
		*fetched = 0;
	if (expect && reg_store_has_file(st, expect, &have)) {
		*out = *expect;
		*out_size = have;
		if (log)
			fprintf(log, "  %s: in the cache (%s)\n", shown, expect->s);
		return 0;
	}
	char dir[PATH_MAX], part[PATH_MAX];
	reg_digest key; /* the part file is named by the URL's digest */
	int rc = reg_digest_buf(&key, url, strlen(url), err);
	if (rc == 0 && ((size_t)snprintf(dir, sizeof(dir), "%s/downloads", cache) >= sizeof(dir) ||
			(size_t)snprintf(part, sizeof(part), "%s/%s.part", dir,
					 REG_DIGEST_HEX(&key)) >= sizeof(part)))
		rc = cm_error_set(err, CM_EINVAL, "cache path too long");
	if (rc < 0 || (rc = cm_mkdirs(dir, err)) < 0)
		return rc;
	dl d = {.fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644)};
	if (d.fd < 0)
		return cm_error_sys(err, errno, "opening %s", part);
	if (flock(d.fd, LOCK_EX) < 0) {
		rc = cm_error_sys(err, errno, "locking %s", part);
		close(d.fd);
		return rc;
	}
	struct stat pst;
	if (fstat(d.fd, &pst) < 0 || (rc = reg_hasher_new(&d.h, err)) < 0) {
		rc = rc < 0 ? rc : cm_error_sys(err, errno, "stat %s", part);
		close(d.fd);
		return rc;
	}
	/* another build may have finished it while we waited for the lock: the
	 * call again finds it in the store (or a new part file) */
	if (pst.st_nlink == 0 || (expect && reg_store_has_file(st, expect, &have))) {
		reg_hasher_free(d.h);
		close(d.fd);
		return download(out, out_size, fetched, st, cache, url, expect, log, err);
	}
	d.have = (uint64_t)pst.st_size;
	if (d.have > 0 && (rc = hash_existing(&d, part, err)) < 0)
		goto done;
	d.url = shown;
	d.log = log;
	rc = fetch(&d, url, err);
	if (fetched)
		*fetched = d.got;
	if (rc < 0) {
		if (d.have == 0)
			unlink(part);
		goto done;
	}
	reg_digest got;
	reg_hasher_final(d.h, &got);
	if (expect && !reg_digest_equal(&got, expect)) {
		unlink(part);
		rc = cm_error_set(err, CM_EVERIFY,
				  "%s: the %llu bytes downloaded hash to %s, the spec says %s",
				  shown, (unsigned long long)d.have, got.s, expect->s);
		goto done;
	}
	if ((rc = adopt(st, part, d.fd, &got, d.have, err)) < 0)
		goto done;
	*out = got;
	*out_size = d.have;
	if (log)
		fprintf(log, "  %s: %llu bytes, %s\n", shown, (unsigned long long)d.have, got.s);
done:
	reg_hasher_free(d.h);
	close(d.fd);
	return rc;
}

/* ---- local files ---- */

static int import_file(reg_digest *out, uint64_t *out_size, reg_store *st, const char *path,
		       cm_error *err)
{
	int rc = reg_digest_file(out, out_size, path, err);
	uint64_t have;
	if (rc < 0 || (reg_store_has_file(st, out, &have) && have == *out_size))
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "opening %s", path);
	reg_blob_writer *w;
	if ((rc = reg_blob_writer_new(&w, st, out, err)) == 0 &&
	    (rc = cm_read_each(fd, *out_size, reg_blob_writer_sink, w, NULL, path, err)) < 0)
		reg_blob_writer_abort(w);
	close(fd);
	if (rc < 0)
		return rc;
	if ((rc = reg_blob_writer_commit(NULL, NULL, w, err)) < 0)
		return cm_error_wrap(err, "%s changed while it was read", path);
	return reg_catalog_add_blob(reg_store_db(st), out->s, *out_size, NULL, err);
}

/* The file name a URL gives: its last path segment, made safe. */
static void url_file_name(char *out, size_t n, const char *url)
{
	const char *end = url + strcspn(url, "?#");
	const char *s = end;
	while (s > url && s[-1] != '/')
		s--;
	size_t j = 0;
	for (const char *p = s; p < end && j + 1 < n; p++) {
		char c = *p;
		out[j++] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || strchr("._-+@=,", c))
			       ? c
			       : '_';
	}
	out[j] = '\0';
	if (j == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
		snprintf(out, n, "model");
	if (out[0] == '.')
		out[0] = '_';
}

typedef struct flist {
	bld_model_file *v;
	size_t n, cap;
} flist;

static bld_model_file *flist_add(flist *l, cm_error *err)
{
	if (l->n >= MODEL_FILES_MAX) {
		cm_error_set(err, CM_EINVAL, "more than %d files in one model", MODEL_FILES_MAX);
		return NULL;
	}
	bld_model_file *v = cm_grow(l->v, l->n, &l->cap, sizeof(*v), err);
	if (!v)
		return NULL;
	l->v = v;
	memset(&v[l->n], 0, sizeof(*v));
	return &v[l->n++];
}

/* Every regular file under dir, relative paths in lexical order. */
static int walk_dir(flist *l, reg_store *st, const char *root, const char *rel, int depth,
		    cm_error *err)
{
	char dir[PATH_MAX];
	if ((size_t)snprintf(dir, sizeof(dir), "%s%s%s", root, rel[0] ? "/" : "", rel) >=
	    sizeof(dir))
		return cm_error_set(err, CM_EINVAL, "path too long under %s", root);
	if (depth > 16)
		return cm_error_set(err, CM_EINVAL, "%s nests too deeply", dir);
	char **names;
	size_t n;
	int rc = cm_dir_names(&names, &n, dir, err);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char sub[1024], full[PATH_MAX];
		if (names[i][0] == '.')
			continue; /* .git, .cache and friends */
		char safe[1024];  /* the name as a file name: the same, or refused */
		url_file_name(safe, sizeof(safe), names[i]);
		if (strcmp(safe, names[i]) != 0) {
			rc = cm_error_set(
			    err, CM_EINVAL,
			    "%s/%s: model file names may hold only letters, digits and ._-+@=,",
			    dir, names[i]);
			break;
		}
		if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "",
				     names[i]) >= sizeof(sub) ||
		    (size_t)snprintf(full, sizeof(full), "%s/%s", root, sub) >= sizeof(full)) {
			rc = cm_error_set(err, CM_EINVAL, "path too long: %s/%s", dir, names[i]);
			break;
		}
		struct stat fst;
		if (stat(full, &fst) < 0) {
			rc = cm_error_sys(err, errno, "%s", full);
			break;
		}
		if (S_ISDIR(fst.st_mode)) {
			rc = walk_dir(l, st, root, sub, depth + 1, err);
		} else if (S_ISREG(fst.st_mode)) {
			bld_model_file *f = flist_add(l, err);
			if (!f) {
				rc = err->code;
				break;
			}
			snprintf(f->path, sizeof(f->path), "%s", sub);
			rc = import_file(&f->digest, &f->size, st, full, err);
		}
	}
	cm_names_free(names, n);
	return rc;
}

/* ---- media types ---- */

static int has_suffix_ci(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcasecmp(s + a - b, suf) == 0;
}

/* The ModelPack layer media type for a file name. */
static const char *media_type(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (strncasecmp(base, "README", 6) == 0 || strncasecmp(base, "LICENSE", 7) == 0 ||
	    strncasecmp(base, "NOTICE", 6) == 0 || has_suffix_ci(base, ".md"))
		return "application/vnd.cncf.model.doc.v1.raw";
	if (has_suffix_ci(base, ".py") || has_suffix_ci(base, ".sh") ||
	    has_suffix_ci(base, ".ipynb"))
		return "application/vnd.cncf.model.code.v1.raw";
	if (has_suffix_ci(base, ".json") || has_suffix_ci(base, ".yaml") ||
	    has_suffix_ci(base, ".yml") || has_suffix_ci(base, ".txt") ||
	    strcasecmp(base, "tokenizer.model") == 0 || strncasecmp(base, "vocab", 5) == 0 ||
	    strncasecmp(base, "merges", 6) == 0)
		return "application/vnd.cncf.model.weight.config.v1.raw";
	return "application/vnd.cncf.model.weight.v1.raw";
}

static const char *model_format(const bld_model *m)
{
	static const struct {
		const char *ext, *fmt;
	} t[] = {{".onnx", "onnx"},	{".safetensors", "safetensors"},
		 {".gguf", "gguf"},	{".pt", "pytorch"},
		 {".pth", "pytorch"},	{".bin", "pytorch"},
		 {".pb", "tensorflow"}, {".h5", "keras"},
		 {".keras", "keras"},	{".tflite", "tflite"},
		 {".pkl", "pickle"},	{".joblib", "joblib"},
		 {".bst", "xgboost"},	{".pmml", "pmml"}};
	const bld_model_file *big = NULL;
	for (size_t i = 0; i < m->n_files; i++)
		if (strcmp(m->files[i].media_type, "application/vnd.cncf.model.weight.v1.raw") ==
			0 &&
		    (!big || m->files[i].size > big->size))
			big = &m->files[i];
	for (size_t i = 0; big && i < sizeof(t) / sizeof(t[0]); i++)
		if (has_suffix_ci(big->path, t[i].ext))
			return t[i].fmt;
	return NULL;
}

/* ---- blobs and manifests ---- */

static int put_json(reg_desc *out, reg_store *st, json_t *j, const char *mt, cm_error *err)
{
	char *txt = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (!txt)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	memset(out, 0, sizeof(*out));
	size_t len = strlen(txt);
	int rc = reg_store_put(&out->digest, st, txt, len, err);
	free(txt);
	out->size = len;
	snprintf(out->media_type, sizeof(out->media_type), "%s", mt);
	return rc;
}

static json_t *desc_json(const reg_desc *d)
{
	return json_pack("{s:s,s:s,s:I}", "mediaType", d->media_type, "digest", d->digest.s, "size",
			 (json_int_t)d->size);
}

/* Store a manifest over config and layers, record it in the catalog and
 * tag it: repo:tag. */
static int put_manifest(reg_image *img, reg_store *st, const char *repo, const char *tag,
			const char *artifact_type, const reg_desc *config, const reg_desc *layers,
			json_t *const *layer_ann, size_t n, cm_error *err)
{
	json_t *la = json_array();
	uint64_t total = config->size;
	for (size_t i = 0; i < n; i++) {
		json_t *d = desc_json(&layers[i]);
		if (layer_ann && layer_ann[i])
			json_object_set(d, "annotations", layer_ann[i]);
		json_array_append_new(la, d);
		total += layers[i].size;
	}
	/* keys sorted when written (put_json) */
	json_t *m = json_pack("{s:i,s:s,s:s*,s:o,s:o,s:{s:s}}", "schemaVersion", 2, "mediaType",
			      REG_MT_OCI_MANIFEST, "artifactType", artifact_type, "config",
			      desc_json(config), "layers", la, "annotations",
			      "org.opencontainers.image.created", BLD_MODEL_CREATED);
	reg_desc md;
	int rc = put_json(&md, st, m, REG_MT_OCI_MANIFEST, err);
	if (rc < 0)
		return rc;
	void *db = reg_store_db(st);
	if ((rc = reg_catalog_add_manifest(db, md.digest.s, REG_MT_OCI_MANIFEST, md.size, err)) <
		0 ||
	    (rc = reg_catalog_add_blob(db, config->digest.s, config->size, config->media_type,
				       err)) < 0 ||
	    (rc = reg_catalog_link(db, md.digest.s, config->digest.s, err)) < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if ((rc = reg_catalog_add_blob(db, layers[i].digest.s, layers[i].size,
					       layers[i].media_type, err)) < 0 ||
		    (rc = reg_catalog_link(db, md.digest.s, layers[i].digest.s, err)) < 0)
			return rc;
	if ((rc = reg_catalog_tag(db, repo, tag, md.digest.s, err)) < 0)
		return rc;
	memset(img, 0, sizeof(*img));
	snprintf(img->ref, sizeof(img->ref), "%s:%s", repo, tag);
	img->root = md;
	img->total_size = total + md.size;
	return 0;
}

/* ---- tar layers, streamed into the store ---- */

typedef struct tarw {
	reg_blob_writer *w;
	cm_error *err;
	int failed;
	struct archive *a; /* tar_file's: the entry being written */
	const char *path;
} tarw;

static la_ssize_t tar_write_cb(struct archive *a, void *arg, const void *p, size_t n)
{
	(void)a;
	tarw *t = arg;
	if (reg_blob_writer_write(t->w, p, n, t->err) < 0) {
		t->failed = 1;
		return -1;
	}
	return (la_ssize_t)n;
}

static int tar_open(struct archive **out, tarw *t, reg_store *st, cm_error *err)
{
	t->err = err;
	t->failed = 0;
	int rc = reg_blob_writer_new(&t->w, st, NULL, err);
	if (rc < 0)
		return rc;
	struct archive *a = archive_write_new();
	if (!a) {
		reg_blob_writer_abort(t->w);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_none(a);
	archive_write_set_bytes_per_block(a, 10240);
	archive_write_set_bytes_in_last_block(a, 1);
	if (archive_write_open2(a, t, NULL, tar_write_cb, NULL, NULL) != ARCHIVE_OK) {
		rc = cm_error_set(err, CM_EIO, "starting a tar layer: %s", archive_error_string(a));
		archive_write_free(a);
		reg_blob_writer_abort(t->w);
		return rc;
	}
	*out = a;
	return 0;
}

static int tar_entry(struct archive *a, tarw *t, const char *path, mode_t type, int perm,
		     uint64_t size, const char *link, cm_error *err)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, (mode_t)perm);
	archive_entry_set_size(e, type == AE_IFREG ? (la_int64_t)size : 0);
	archive_entry_set_mtime(e, BLD_MODEL_EPOCH, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	if (link)
		archive_entry_set_symlink(e, link);
	int r = archive_write_header(a, e);
	archive_entry_free(e);
	if (r != ARCHIVE_OK)
		return t->failed ? err->code
				 : cm_error_set(err, CM_EIO, "tar entry %s: %s", path,
						archive_error_string(a));
	return 0;
}

/* A block of tar_file's source into its entry. */
static int tar_data(void *ctx, const void *p, size_t n, cm_error *err)
{
	tarw *t = ctx;
	if (archive_write_data(t->a, p, n) == (la_ssize_t)n)
		return 0;
	return t->failed ? err->code
			 : cm_error_set(err, CM_EIO, "tar data %s: %s", t->path,
					archive_error_string(t->a));
}

static int tar_file(struct archive *a, tarw *t, const char *path, int perm, const char *src,
		    uint64_t size, cm_error *err)
{
	int rc = tar_entry(a, t, path, AE_IFREG, perm, size, NULL, err);
	if (rc < 0)
		return rc;
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "opening %s", src);
	t->a = a;
	t->path = path;
	rc = cm_read_each(fd, size, tar_data, t, NULL, src, err);
	close(fd);
	return rc;
}

static int tar_close(reg_desc *out, struct archive *a, tarw *t, int rc, cm_error *err)
{
	if (rc == 0 && archive_write_close(a) != ARCHIVE_OK)
		rc = t->failed ? err->code
			       : cm_error_set(err, CM_EIO, "finishing a tar layer: %s",
					      archive_error_string(a));
	archive_write_free(a);
	if (rc < 0) {
		reg_blob_writer_abort(t->w);
		return rc;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->media_type, sizeof(out->media_type), "%s", BLD_MT_OCI_LAYER_TAR);
	return reg_blob_writer_commit(&out->digest, &out->size, t->w, err);
}

/* Static x86-64 ELF? (a dynamic busybox would not run in the modelcar) */
static int check_busybox(const char *path, cm_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno,
				    "the modelcar image needs a static busybox at %s (Debian "
				    "package busybox-static, "
				    "or set FERRY_BUSYBOX)",
				    path);
	unsigned char eh[64];
	int rc = 0;
	if (pread(fd, eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) || memcmp(eh, "\177ELF", 4) != 0 ||
	    eh[4] != 2 || eh[5] != 1) {
		rc = cm_error_set(err, CM_EINVAL, "%s is not a 64-bit little-endian ELF program",
				  path);
	} else if ((eh[18] | eh[19] << 8) != 62) {
		rc = cm_error_set(err, CM_EINVAL,
				  "%s is not an x86-64 program; the modelcar image is linux/amd64",
				  path);
	} else {
		uint64_t phoff = 0;
		for (int i = 7; i >= 0; i--)
			phoff = phoff << 8 | eh[32 + i];
		unsigned phentsize = eh[54] | eh[55] << 8, phnum = eh[56] | eh[57] << 8;
		for (unsigned i = 0; rc == 0 && i < phnum && i < 64; i++) {
			unsigned char ph[4];
			if (pread(fd, ph, 4, (off_t)(phoff + (uint64_t)i * phentsize)) != 4)
				break;
			if ((ph[0] | ph[1] << 8 | ph[2] << 16 | (unsigned)ph[3] << 24) ==
			    3 /* PT_INTERP */)
				rc = cm_error_set(err, CM_EINVAL,
						  "%s is dynamically linked; the modelcar image "
						  "needs a static busybox "
						  "(Debian package busybox-static)",
						  path);
		}
	}
	close(fd);
	return rc;
}

static const char *const applets[] = {"cat", "echo", "ln", "ls", "sh", "sleep", "true"};

static int busybox_layer(reg_desc *out, reg_store *st, const char *busybox, cm_error *err)
{
	int rc = check_busybox(busybox, err);
	struct stat bst;
	if (rc == 0 && stat(busybox, &bst) < 0)
		rc = cm_error_sys(err, errno, "%s", busybox);
	if (rc < 0)
		return rc;
	struct archive *a;
	tarw t;
	if ((rc = tar_open(&a, &t, st, err)) < 0)
		return rc;
	rc = tar_entry(a, &t, "bin/", AE_IFDIR, 0755, 0, NULL, err);
	if (rc == 0)
		rc = tar_file(a, &t, "bin/busybox", 0755, busybox, (uint64_t)bst.st_size, err);
	for (size_t i = 0; rc == 0 && i < sizeof(applets) / sizeof(applets[0]); i++) {
		char p[32];
		snprintf(p, sizeof(p), "bin/%s", applets[i]);
		rc = tar_entry(a, &t, p, AE_IFLNK, 0777, 0, "busybox", err);
	}
	for (const char *const *d = (const char *const[]){"mnt/", "tmp/", NULL}; rc == 0 && *d; d++)
		rc = tar_entry(a, &t, *d, AE_IFDIR, strcmp(*d, "tmp/") == 0 ? 01777 : 0755, 0, NULL,
			       err);
	return tar_close(out, a, &t, rc, err);
}

/* The model layer is cached by the digests of its files: a 10 GB model is
 * not re-tarred on every build. */
static int model_layer(reg_desc *out, reg_store *st, const char *cache, const bld_model *m,
		       cm_error *err)
{
	reg_hasher *h;
	int rc = reg_hasher_new(&h, err);
	if (rc < 0)
		return rc;
	const char tagline[] = "ferry modelcar layer v1\n";
	reg_hasher_update(h, tagline, sizeof(tagline) - 1);
	for (size_t i = 0; i < m->n_files; i++) {
		reg_hasher_update(h, m->files[i].path, strlen(m->files[i].path) + 1);
		reg_hasher_update(h, m->files[i].digest.s, strlen(m->files[i].digest.s) + 1);
	}
	reg_digest key;
	reg_hasher_final(h, &key);
	reg_hasher_free(h);
	char memo[PATH_MAX], dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/modelcar-layers", cache);
	if ((size_t)snprintf(memo, sizeof(memo), "%s/%s", dir, REG_DIGEST_HEX(&key)) >=
	    sizeof(memo))
		return cm_error_set(err, CM_EINVAL, "cache path too long");
	cm_buf b = CM_BUF_INIT;
	cm_error e2;
	if (cm_file_read(&b, memo, 256, &e2) == 0) {
		char dg[80];
		unsigned long long sz;
		uint64_t have;
		memset(out, 0, sizeof(*out));
		if (sscanf(b.data, "%79s %llu", dg, &sz) == 2 &&
		    reg_digest_parse(&out->digest, dg, &e2) == 0 &&
		    reg_store_has_file(st, &out->digest, &have) && have == sz) {
			out->size = sz;
			snprintf(out->media_type, sizeof(out->media_type), "%s",
				 BLD_MT_OCI_LAYER_TAR);
			cm_buf_free(&b);
			return 0;
		}
	}
	cm_buf_free(&b);
	struct archive *a;
	tarw t;
	if ((rc = tar_open(&a, &t, st, err)) < 0)
		return rc;
	rc = tar_entry(a, &t, "models/", AE_IFDIR, 0755, 0, NULL, err);
	for (size_t i = 0; rc == 0 && i < m->n_files; i++) {
		const bld_model_file *f = &m->files[i];
		char p[1100], src[PATH_MAX];
		/* parent folders first (files are in lexical order) */
		for (const char *s = strchr(f->path, '/'); rc == 0 && s; s = strchr(s + 1, '/')) {
			snprintf(p, sizeof(p), "models/%.*s/", (int)(s - f->path), f->path);
			int seen = 0;
			for (size_t j = 0; j < i && !seen; j++)
				seen = strncmp(m->files[j].path, f->path,
					       (size_t)(s - f->path) + 1) == 0;
			if (!seen)
				rc = tar_entry(a, &t, p, AE_IFDIR, 0755, 0, NULL, err);
		}
		snprintf(p, sizeof(p), "models/%s", f->path);
		reg_store_blob_path(src, sizeof(src), st, &f->digest);
		if (rc == 0)
			rc = tar_file(a, &t, p, 0644, src, f->size, err);
	}
	if ((rc = tar_close(out, a, &t, rc, err)) < 0)
		return rc;
	char line[128];
	int n =
	    snprintf(line, sizeof(line), "%s %llu\n", out->digest.s, (unsigned long long)out->size);
	if (cm_mkdirs(dir, &e2) == 0)
		cm_file_write_atomic(memo, line, (size_t)n, 0644,
				     &e2); /* a memo: failure only costs time */
	return 0;
}

/* ---- the two images ---- */

static int make_artifact(bld_model *m, reg_store *st, cm_error *err)
{
	reg_desc *layers = calloc(m->n_files, sizeof(reg_desc));
	json_t **ann = calloc(m->n_files, sizeof(json_t *));
	json_t *diff = json_array();
	int rc = 0;
	if (!layers || !ann) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < m->n_files; i++) {
		const bld_model_file *f = &m->files[i];
		layers[i].digest = f->digest;
		layers[i].size = f->size;
		snprintf(layers[i].media_type, sizeof(layers[i].media_type), "%s", f->media_type);
		ann[i] = json_pack("{s:s,s:s}", "org.opencontainers.image.title", f->path,
				   "org.cncf.model.filepath", f->path);
		json_array_append_new(diff, json_string(f->digest.s));
	}
	json_t *cfg = json_pack("{s:{s:s,s:s,s:s},s:{},s:{s:s,s:O}}", "descriptor", "name", m->name,
				"version", m->version, "createdAt", BLD_MODEL_CREATED, "config",
				"modelfs", "type", "layers", "diffIds", diff);
	const char *fmt = model_format(m);
	if (cfg && fmt)
		json_object_set_new(json_object_get(cfg, "config"), "format", json_string(fmt));
	reg_desc cd;
	if (!cfg) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = put_json(&cd, st, cfg, BLD_MT_MODEL_CONFIG, err)) < 0)
		goto out;
	/* BLD_MODEL_HOST/<name>:<version>: a host no public registry owns
	 * (without one, every client reads docker.io/models/<name>) */
	char repo[300];
	snprintf(repo, sizeof(repo), "%s/%s", BLD_MODEL_HOST, m->name);
	rc = put_manifest(&m->artifact, st, repo, m->version, BLD_MT_MODEL_ARTIFACT, &cd, layers,
			  ann, m->n_files, err);
out:
	for (size_t i = 0; ann && i < m->n_files; i++)
		json_decref(ann[i]);
	free(ann);
	free(layers);
	json_decref(diff);
	return rc;
}

static int make_modelcar(bld_model *m, const bld_model_spec *ms, reg_store *st, const char *cache,
			 const reg_desc *bb, cm_error *err)
{
	reg_desc layers[2];
	layers[0] = *bb;
	int rc = model_layer(&layers[1], st, cache, m, err);
	if (rc < 0)
		return rc;
	char hist[400];
	snprintf(hist, sizeof(hist), "ferry: model %s %s in /models", m->name, m->version);
	json_t *cfg = json_pack(
	    "{s:s,s:s,s:s,s:{s:[s],s:[s],s:s},s:{s:s,s:[s,s]},s:[{s:s,s:s},{s:s,s:s}]}",
	    "architecture", "amd64", "os", "linux", "created", BLD_MODEL_CREATED, "config", "Env",
	    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "Cmd", "/bin/sh",
	    "WorkingDir", "/", "rootfs", "type", "layers", "diff_ids", layers[0].digest.s,
	    layers[1].digest.s, "history", "created", BLD_MODEL_CREATED, "created_by",
	    "ferry: busybox (sh, ln, sleep, ls, cat, echo, true)", "created", BLD_MODEL_CREATED,
	    "created_by", hist);
	if (!cfg)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	reg_desc cd;
	if ((rc = put_json(&cd, st, cfg, REG_MT_OCI_CONFIG, err)) < 0)
		return rc;
	/* models[].image, else models.ferry.local/<name>-modelcar:<version> */
	return put_manifest(&m->modelcar, st, ms->image_repo, ms->image_tag, NULL, &cd, layers,
			    NULL, 2, err);
}

static int check_names(const bld_spec *s, const bld_model_spec *ms, cm_error *err)
{
	char repo[300];
	snprintf(repo, sizeof(repo), "models/%s-modelcar", ms->name);
	if (!reg_ref_valid_path(repo))
		return cm_error_set(err, CM_EINVAL,
				    "%s:%d: model name '%s' cannot name an image: use lower-case "
				    "letters, digits and "
				    "single '.', '_' or '-' between them",
				    s->file, ms->line, ms->name);
	if (!reg_ref_valid_tag(ms->version))
		return cm_error_set(err, CM_EINVAL,
				    "%s:%d: model version '%s' cannot be an image tag", s->file,
				    ms->line, ms->version);
	for (const bld_model_spec *o = s->models; o < ms; o++)
		if (strcmp(o->name, ms->name) == 0 && strcmp(o->version, ms->version) == 0)
			return cm_error_set(
			    err, CM_EINVAL,
			    "%s:%d: model %s version %s is listed twice (first at line %d)",
			    s->file, ms->line, ms->name, ms->version, o->line);
	/* the artifact, BLD_MODEL_HOST/<name>:<version>, is no model's
	 * modelcar (model "a-modelcar" and model "a", or models[].image) */
	char art[400];
	snprintf(art, sizeof(art), "%s/%s", BLD_MODEL_HOST, ms->name);
	for (size_t k = 0; k < s->n_models; k++) {
		const bld_model_spec *o = &s->models[k];
		if (strcmp(o->image_repo, art) == 0 && strcmp(o->image_tag, ms->version) == 0)
			return cm_error_set(
			    err, CM_EINVAL,
			    "%s:%d: model %s version %s: its artifact %s:%s is also the "
			    "image of model %s (line %d); give that model another "
			    "models[].image",
			    s->file, ms->line, ms->name, ms->version, art, ms->version, o->name,
			    o->line);
	}
	return 0;
}

static int one_model(bld_model *m, bld_models *all, const bld_spec *s, const bld_model_spec *ms,
		     reg_store *st, const char *cache, const bld_build_opts *o, const reg_desc *bb,
		     cm_error *err)
{
	snprintf(m->name, sizeof(m->name), "%s", ms->name);
	snprintf(m->version, sizeof(m->version), "%s", ms->version);
	m->pinned = ms->sha256[0] != 0;
	reg_digest want;
	int rc = 0;
	if (m->pinned && (rc = reg_digest_from_hex(&want, ms->sha256, err)) < 0)
		return cm_error_wrap(err, "%s:%d: model %s: sha256", s->file, ms->line, ms->name);
	flist l = {NULL, 0, 0};
	if (ms->url[0]) {
		if (!m->pinned && !o->allow_unpinned)
			return cm_error_set(
			    err, CM_EINVAL,
			    "%s:%d: model %s: a url: model needs 'sha256:' (or build with "
			    "--allow-unpinned "
			    "to take whatever the server sends and record its digest)",
			    s->file, ms->line, ms->name);
		/* recorded in bundle.json and logged: no user, password or query */
		reg_url_redact(m->source, sizeof(m->source), ms->url);
		if (o->log)
			fprintf(o->log, "model %s %s: %s\n", ms->name, ms->version, m->source);
		bld_model_file *f = flist_add(&l, err);
		uint64_t fetched = 0;
		if (!f)
			return err->code;
		url_file_name(f->path, sizeof(f->path), ms->url);
		rc = download(&f->digest, &f->size, &fetched, st, cache, ms->url,
			      m->pinned ? &want : NULL, o->log, err);
		all->fetched += fetched;
	} else {
		char p[PATH_MAX];
		if (bld_spec_path(p, sizeof(p), s, ms->path) < 0)
			return cm_error_set(err, CM_EINVAL, "%s:%d: path too long", s->file,
					    ms->line);
		snprintf(m->source, sizeof(m->source), "%s", p);
		struct stat pst;
		if (stat(p, &pst) < 0)
			return cm_error_sys(err, errno, "%s:%d: model %s path %s", s->file,
					    ms->line, ms->name, p);
		if (S_ISREG(pst.st_mode)) {
			bld_model_file *f = flist_add(&l, err);
			if (!f)
				return err->code;
			const char *base = strrchr(p, '/');
			url_file_name(f->path, sizeof(f->path), base ? base : p);
			rc = import_file(&f->digest, &f->size, st, p, err);
		} else {
			rc = walk_dir(&l, st, p, "", 0, err);
			if (rc == 0 && l.n == 0)
				rc = cm_error_set(err, CM_EINVAL, "%s holds no files", p);
		}
		if (rc == 0 && m->pinned) {
			if (l.n != 1)
				rc = cm_error_set(err, CM_EINVAL,
						  "sha256 applies to a single file; %s holds %zu",
						  p, l.n);
			else if (!reg_digest_equal(&l.v[0].digest, &want))
				rc = cm_error_set(err, CM_EVERIFY,
						  "%s hashes to %s, the spec says %s", p,
						  l.v[0].digest.s, want.s);
		}
	}
	m->files = l.v; /* bld_models_free frees them, also after an error */
	m->n_files = l.n;
	for (size_t i = 0; i < l.n; i++) {
		snprintf(l.v[i].media_type, sizeof(l.v[i].media_type), "%s",
			 media_type(l.v[i].path));
		m->size += l.v[i].size;
	}
	if (rc == 0 && (rc = make_artifact(m, st, err)) == 0)
		rc = make_modelcar(m, ms, st, cache, bb, err);
	if (rc < 0)
		return cm_error_wrap(err, "%s:%d: model %s", s->file, ms->line, ms->name);
	if (o->log)
		fprintf(o->log, "model %s %s: %zu files, %llu bytes; %s -> %s; %s -> %s\n", m->name,
			m->version, m->n_files, (unsigned long long)m->size, m->artifact.ref,
			m->artifact.root.digest.s, m->modelcar.ref, m->modelcar.root.digest.s);
	return 0;
}

int bld_models_build(bld_models *out, const bld_spec *s, reg_store *st, const char *cache,
		     const bld_build_opts *o, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (s->n_models == 0)
		return 0;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < s->n_models; i++)
		rc = check_names(s, &s->models[i], err);
	if (rc < 0)
		return rc;
	out->v = calloc(s->n_models, sizeof(bld_model));
	if (!out->v)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	const char *bbpath = getenv("FERRY_BUSYBOX");
	if (!bbpath || !*bbpath)
		bbpath = BLD_BUSYBOX_DEFAULT;
	reg_desc bb;
	if ((rc = busybox_layer(&bb, st, bbpath, err)) < 0)
		return cm_error_wrap(err, "models");
	for (size_t i = 0; rc == 0 && i < s->n_models; i++) {
		rc = one_model(&out->v[i], out, s, &s->models[i], st, cache, o, &bb, err);
		out->n = i + 1;
	}
	return rc;
}

void bld_models_free(bld_models *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].files);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

int bld_models_files(const bld_models *m, reg_store *st, bld_file **out, size_t *n_out,
		     cm_error *err)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n; i++)
		n += m->v[i].n_files;
	*out = NULL;
	*n_out = 0;
	if (n == 0)
		return 0;
	bld_file *v = calloc(n, sizeof(*v));
	if (!v)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < m->n; i++)
		for (size_t j = 0; j < m->v[i].n_files; j++, k++) {
			const bld_model_file *f = &m->v[i].files[j];
			if (snprintf(v[k].member, sizeof(v[k].member), "models/%s/%s/%s",
				     m->v[i].name, m->v[i].version,
				     f->path) >= (int)sizeof(v[k].member) ||
			    reg_store_blob_path(v[k].src, sizeof(v[k].src), st, &f->digest) < 0) {
				free(v);
				return cm_error_set(
				    err, CM_EINVAL,
				    "model %s: member name or store path too long for "
				    "models/%s/%s/%.200s",
				    m->v[i].name, m->v[i].name, m->v[i].version, f->path);
			}
			snprintf(v[k].hex, sizeof(v[k].hex), "%s", REG_DIGEST_HEX(&f->digest));
			v[k].size = f->size;
		}
	*out = v;
	*n_out = n;
	return 0;
}

json_t *bld_models_json(const bld_models *m)
{
	json_t *a = json_array();
	for (size_t i = 0; i < m->n; i++) {
		const bld_model *md = &m->v[i];
		json_t *files = json_array();
		for (size_t j = 0; j < md->n_files; j++)
			json_array_append_new(
			    files, json_pack("{s:s,s:s,s:I,s:s}", "path", md->files[j].path,
					     "sha256", REG_DIGEST_HEX(&md->files[j].digest), "size",
					     (json_int_t)md->files[j].size, "mediaType",
					     md->files[j].media_type));
		json_t *o = json_pack(
		    "{s:s,s:s,s:s,s:b,s:I,s:{s:s,s:s},s:{s:s,s:s,s:s},s:o}", "name", md->name,
		    "version", md->version, "source", md->source, "pinned", md->pinned, "size",
		    (json_int_t)md->size, "artifact", "ref", md->artifact.ref, "digest",
		    md->artifact.root.digest.s, "modelcar", "ref", md->modelcar.ref, "digest",
		    md->modelcar.root.digest.s, "platform", "linux/amd64", "files", files);
		if (md->n_files == 1)
			json_object_set_new(o, "sha256",
					    json_string(REG_DIGEST_HEX(&md->files[0].digest)));
		json_array_append_new(a, o);
	}
	return a;
}
