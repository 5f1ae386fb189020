#include "bld_bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cm_dio.h"
#include "cm_file.h"
#include "reg_bundle.h"
#include "reg_manifest.h"
#include "reg_receipt.h"

#define COPY_BUF (4u << 20)

/* One member of the bundle, in memory or on disk (hashed again as it is copied). */
typedef struct member {
	char path[1024];
	char hex[65];
	uint64_t size;
	const char *mem;    /* in-memory content, or NULL */
	char src[PATH_MAX]; /* file to copy when mem is NULL and not from_store */
	int from_store;	    /* a store blob (a file or in a pack), by hex */
	int pending;	    /* not in the store yet: a hole the download fills */
	uint64_t data_off;  /* where a pending member's bytes go */
} member;

typedef struct mlist {
	member *v;
	size_t n, cap;
	const bld_bundle_in *in; /* for add_blob */
} mlist;

static member *mlist_add(mlist *l, cm_error *err)
{
	member *v = cm_grow(l->v, l->n, &l->cap, sizeof(*v), err);
	if (!v)
		return NULL;
	l->v = v;
	memset(&v[l->n], 0, sizeof(*v));
	return &v[l->n++];
}

static int cmp_path(const void *a, const void *b)
{
	return strcmp(((const member *)a)->path, ((const member *)b)->path);
}

int bld_files_hash(bld_file *files, size_t n, cm_error *err)
{
	for (size_t i = 0; i < n; i++) {
		reg_digest d;
		int rc = reg_digest_file(&d, &files[i].size, files[i].src, err);
		if (rc < 0)
			return rc;
		memcpy(files[i].hex, REG_DIGEST_HEX(&d), 65);
	}
	return 0;
}

/* The index.json the bundle carries for its images (caller frees); compact
 * (no indentation) when set, as a delta writes it. */
static int index_json(char **out, const reg_image *images, size_t n, int compact, cm_error *err)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		const reg_image *im = &images[i];
		json_t *d =
		    json_pack("{s:s,s:s,s:I,s:{s:s,s:s}}", "mediaType", im->root.media_type,
			      "digest", im->root.digest.s, "size", (json_int_t)im->root.size,
			      "annotations", "io.containerd.image.name", im->ref,
			      "org.opencontainers.image.ref.name", im->ref);
		if (!d) {
			json_decref(arr);
			return cm_error_set(err, CM_EINVAL, "image %s: cannot describe", im->ref);
		}
		json_array_append_new(arr, d);
	}
	json_t *root = json_pack("{s:i,s:s,s:o}", "schemaVersion", 2, "mediaType", REG_MT_OCI_INDEX,
				 "manifests", arr);
	*out = json_dumps(root, (compact ? JSON_COMPACT : JSON_INDENT(2)) | JSON_SORT_KEYS);
	json_decref(root);
	if (!*out)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	return 0;
}

int bld_walk_image(reg_store *st, const reg_desc *d, int depth,
		   int (*visit)(void *ud, const reg_desc *d, cm_error *err), void *ud,
		   cm_error *err)
{
	int rc = visit(ud, d, err);
	if (rc < 0 ||
	    (!reg_media_type_is_index(d->media_type) && !reg_media_type_is_manifest(d->media_type)))
		return rc;
	if (depth > 2)
		return cm_error_set(err, CM_EINVAL, "manifest %s nests too deeply", d->digest.s);
	cm_buf b = CM_BUF_INIT;
	reg_manifest man;
	rc = reg_store_read(&b, st, &d->digest, REG_MANIFEST_MAX, err);
	if (rc == 0)
		rc = reg_manifest_parse(&man, b.data, b.len, d->media_type, err);
	cm_buf_free(&b);
	if (rc < 0)
		return rc;
	if (!man.is_index)
		rc = bld_walk_image(st, &man.config, depth + 1, visit, ud, err);
	/* an index may list children we did not keep (never: we narrow) */
	for (size_t i = 0; rc == 0 && i < man.n_items; i++)
		rc = bld_walk_image(st, &man.items[i], depth + 1, visit, ud, err);
	reg_manifest_free(&man);
	return rc;
}

int bld_base_holds(const struct reg_receipt *base, const reg_desc *d)
{
	const reg_receipt_blob *b;
	return base && !reg_media_type_is_index(d->media_type) &&
	       !reg_media_type_is_manifest(d->media_type) &&
	       (b = reg_receipt_blob_find(base, &d->digest)) && b->size == d->size;
}

/* One blob an image needs (a manifest, config or layer), once: a visitor
 * of bld_walk_image. */
static int add_blob(void *ud, const reg_desc *d, cm_error *err)
{
	mlist *l = ud;
	const bld_bundle_in *in = l->in;
	if (bld_base_holds(in->base, d))
		return 0; /* a delta: the base holds it */
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].hex, REG_DIGEST_HEX(&d->digest)) == 0)
			return 0; /* already listed (the walk still goes on to its children) */
	uint64_t have;
	int pending = 0;
	if (!reg_store_has(in->store, &d->digest, &have)) {
		pending = in->pending && in->pending(in->pending_ud, &d->digest);
		if (!pending)
			return cm_error_set(err, CM_ENOTFOUND, "blob %s is missing from the store",
					    d->digest.s);
		have = d->size;
	}
	member *m = mlist_add(l, err);
	if (!m)
		return CM_ENOMEM;
	snprintf(m->path, sizeof(m->path), "blobs/sha256/%s", REG_DIGEST_HEX(&d->digest));
	memcpy(m->hex, REG_DIGEST_HEX(&d->digest), 65);
	m->size = have;
	m->pending = pending;
	m->from_store = 1;
	snprintf(m->src, sizeof(m->src), "store blob %s", d->digest.s); /* for messages */
	return 0;
}

static int add_mem(mlist *l, const char *path, const char *data, cm_error *err)
{
	member *m = mlist_add(l, err);
	if (!m)
		return CM_ENOMEM;
	snprintf(m->path, sizeof(m->path), "%s", path);
	m->mem = data;
	m->size = strlen(data);
	reg_digest d;
	int rc = reg_digest_buf(&d, data, m->size, err);
	memcpy(m->hex, REG_DIGEST_HEX(&d), 65);
	return rc;
}

static int write_header(struct archive *a, const char *path, uint64_t size, time_t mtime,
			cm_error *err)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	archive_entry_set_pathname(e, path);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, strncmp(path, "tools/", 6) == 0 ? 0755 : 0644); /* programs */
	archive_entry_set_mtime(e, mtime, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	int r = archive_write_header(a, e);
	archive_entry_free(e);
	if (r != ARCHIVE_OK)
		return cm_error_set(err, CM_EIO, "writing tar header for %s: %s", path,
				    archive_error_string(a));
	return 0;
}

static int write_data(struct archive *a, const void *p, size_t n, const char *path, cm_error *err)
{
	if (n && archive_write_data(a, p, n) != (la_ssize_t)n)
		return cm_error_set(err, CM_EIO, "writing %s: %s", path, archive_error_string(a));
	return 0;
}

/* A second thread hashes each chunk while this one writes it, so checking
 * that cache blobs still match their names costs no wall time on a
 * machine with two cores. */
typedef struct bhash {
	pthread_t t;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	reg_hasher *h;
	const char *p;
	size_t n;
	int busy, quit;
} bhash;

static void *bhash_main(void *arg)
{
	bhash *b = arg;
	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (!b->busy && !b->quit)
			pthread_cond_wait(&b->cv, &b->mu);
		if (!b->busy)
			break; /* quit, and nothing left to hash */
		const char *p = b->p;
		size_t n = b->n;
		pthread_mutex_unlock(&b->mu);
		reg_hasher_update(b->h, p, n);
		pthread_mutex_lock(&b->mu);
		b->busy = 0;
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* Wait until the hasher has finished the chunk it was given. */
static void bhash_wait(bhash *b)
{
	pthread_mutex_lock(&b->mu);
	while (b->busy)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
}

static void bhash_post(bhash *b, const char *p, size_t n)
{
	pthread_mutex_lock(&b->mu);
	b->p = p;
	b->n = n;
	b->busy = 1;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static int bhash_start(bhash *b, reg_hasher *h, cm_error *err)
{
	memset(b, 0, sizeof(*b));
	b->h = h;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	if (pthread_create(&b->t, NULL, bhash_main, b) != 0) {
		pthread_cond_destroy(&b->cv);
		pthread_mutex_destroy(&b->mu);
		return cm_error_set(err, CM_EFAIL, "starting the hashing thread");
	}
	return 0;
}

static void bhash_stop(bhash *b)
{
	bhash_wait(b);
	pthread_mutex_lock(&b->mu);
	b->quit = 1;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	pthread_join(b->t, NULL);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
}

/* Copy one member. Two buffers: the hasher reads one while the next chunk
 * is read into the other; a buffer is reused only after its hash is done. */
static int write_member(struct archive *a, cm_dwriter *dw, reg_store *st, member *m, time_t mtime,
			char *bufs[2], bhash *hb, cm_error *err)
{
	int rc = write_header(a, m->path, m->size, mtime, err);
	if (rc < 0 || m->mem)
		return rc < 0 ? rc : write_data(a, m->mem, m->size, m->path, err);
	if (m->pending) {
		/* a hole (with its padding) the download fills through a tee;
		 * libarchive is fed zeros the writer drops */
		uint64_t padded = (m->size + 511) & ~(uint64_t)511;
		m->data_off = cm_dwriter_offset(dw);
		if ((rc = cm_dwriter_skip(dw, padded, err)) < 0)
			return rc;
		for (uint64_t left = m->size; rc == 0 && left > 0;) {
			size_t k = left < COPY_BUF ? (size_t)left : COPY_BUF;
			memset(bufs[0], 0, k);
			rc = write_data(a, bufs[0], k, m->path, err);
			left -= k;
		}
		return rc;
	}
	int fd;
	if (m->from_store) {
		reg_digest d;
		uint64_t have;
		if ((rc = reg_digest_from_hex(&d, m->hex, err)) < 0 ||
		    (rc = reg_store_open_blob(&fd, &have, st, &d, 1, err)) < 0)
			return rc;
		if (have != m->size) {
			close(fd);
			return cm_error_set(err, CM_EVERIFY, "store blob %s changed size on disk",
					    d.s);
		}
	} else if ((fd = cm_dio_open_read(m->src)) < 0) {
		return cm_error_sys(err, errno, "opening %s", m->src);
	}
	uint64_t left = m->size;
	int cur = 0;
	bhash_wait(hb);
	reg_hasher_reset(hb->h);
	while (left > 0) {
		ssize_t n = cm_dio_read(fd, bufs[cur], COPY_BUF);
		if (n <= 0) {
			rc = n < 0 ? cm_error_sys(err, errno, "reading %s", m->src)
				   : cm_error_set(err, CM_EIO, "%s shrank while being copied",
						  m->src);
			break;
		}
		if ((uint64_t)n > left)
			n = (ssize_t)left;
		bhash_wait(hb); /* the other buffer's hash is done */
		bhash_post(hb, bufs[cur], (size_t)n);
		if ((rc = write_data(a, bufs[cur], (size_t)n, m->path, err)) < 0)
			break;
		left -= (uint64_t)n;
		cur ^= 1;
	}
	close(fd);
	bhash_wait(hb);
	if (rc == 0) {
		reg_digest d;
		reg_hasher_final(hb->h, &d);
		if (strcmp(REG_DIGEST_HEX(&d), m->hex) != 0)
			rc = cm_error_set(err, CM_EVERIFY,
					  "%s changed on disk: it now hashes to %s", m->src, d.s);
	}
	return rc;
}

/* libarchive hands every piece of the tar stream straight to this
 * callback (no blocking of its own); the direct writer gathers them into
 * 4 MiB writes that go around the page cache. */
static la_ssize_t dw_write_cb(struct archive *a, void *data, const void *p, size_t n)
{
	cm_error e;
	if (cm_dwriter_write(data, p, n, &e) < 0) {
		archive_set_error(a, EIO, "%s", e.msg);
		return -1;
	}
	return (la_ssize_t)n;
}

/* ---- volumes: the tar stream split into parts as it is written ---- */

int bld_volume_size_parse(uint64_t *out, const char *s, cm_error *err)
{
	*out = 0;
	if (strcmp(s, "fat32") == 0 || strcmp(s, "FAT32") == 0) {
		*out = BLD_VOLUME_FAT32;
		return 0;
	}
	uint64_t v = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return cm_error_set(err, CM_EUSAGE,
				    "volume size '%.64s': a number with K, M, G or T, or fat32", s);
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return cm_error_set(err, CM_EUSAGE, "volume size '%.64s' is too large", s);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	static const char units[] = "KMGT"; /* powers of 1024, either case */
	char c = (char)(*p & ~0x20);
	const char *u = *p && c ? strchr(units, c) : NULL;
	if (*p && (!u || p[1] != '\0'))
		return cm_error_set(
		    err, CM_EUSAGE,
		    "volume size '%.64s': the unit is K, M, G or T (powers of 1024)", s);
	unsigned shift = u ? 10 * (unsigned)(u - units + 1) : 0;
	if (v > (UINT64_MAX >> 1) >> shift)
		return cm_error_set(err, CM_EUSAGE, "volume size '%.64s' is too large", s);
	v <<= shift;
	if (v < BLD_VOLUME_MIN)
		return cm_error_set(err, CM_EUSAGE, "volume size '%.64s' is below the 1M minimum",
				    s);
	*out = v;
	return 0;
}

#define VOLW_ASYNC_MIN ((size_t)64 << 10)

typedef struct volw {
	const char *path; /* the prefix: parts are path.000, ... */
	uint64_t vsize;
	mode_t mode;
	struct vpart {
		char *tmp; /* the temp file of a part started */
		uint64_t size;
		char hex[65];
	} * part;
	size_t n;
	int fd; /* the part being written, or -1 */
	cm_dwriter *dw;
	reg_hasher *h;
	bhash hb; /* hashes a large write while it is being written */
	int hb_on;
	uint64_t in_part, total;
} volw;

static int volw_new(volw *w, const char *path, uint64_t vsize, mode_t mode, cm_error *err)
{
	memset(w, 0, sizeof(*w));
	w->path = path;
	w->vsize = vsize;
	w->mode = mode;
	w->fd = -1;
	if (!(w->part = calloc(REG_BUNDLE_PARTS_MAX, sizeof(*w->part))))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	int rc = reg_hasher_new(&w->h, err);
	if (rc == 0 && (rc = bhash_start(&w->hb, w->h, err)) == 0)
		w->hb_on = 1;
	return rc;
}

/* Flush and close the part being written (volw_commit fsyncs them all,
 * as the single file is fsynced once at its end); its sha256 for the
 * sidecar. */
static int volw_close_part(volw *w, cm_error *err)
{
	int rc = cm_dwriter_flush(w->dw, err);
	cm_dwriter_free(w->dw);
	w->dw = NULL;
	if (close(w->fd) < 0 && rc == 0)
		rc = cm_error_sys(err, errno, "close %s", w->part[w->n - 1].tmp);
	w->fd = -1;
	reg_digest d;
	reg_hasher_final(w->h, &d);
	memcpy(w->part[w->n - 1].hex, REG_DIGEST_HEX(&d), 65);
	w->part[w->n - 1].size = w->in_part;
	return rc;
}

static int volw_open_part(volw *w, cm_error *err)
{
	if (w->n == REG_BUNDLE_PARTS_MAX)
		return cm_error_set(err, CM_EINVAL,
				    "more than %d parts of %llu bytes: choose a larger "
				    "--volume-size",
				    REG_BUNDLE_PARTS_MAX, (unsigned long long)w->vsize);
	cm_buf part = CM_BUF_INIT;
	char tmp[PATH_MAX];
	int rc = cm_buf_appendf(&part, err, "%s.%03zu", w->path, w->n);
	if (rc == 0)
		rc = cm_file_mktemp(&w->fd, tmp, sizeof(tmp), part.data, err);
	cm_buf_free(&part);
	if (rc < 0)
		return rc;
	if (!(w->part[w->n].tmp = strdup(tmp))) {
		close(w->fd);
		unlink(tmp);
		w->fd = -1;
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	w->n++;
	if (fchmod(w->fd, w->mode) < 0)
		return cm_error_sys(err, errno, "chmod %s", tmp);
	w->in_part = 0;
	reg_hasher_reset(w->h);
	return cm_dwriter_new(&w->dw, w->fd, 0, COPY_BUF, err);
}

/* Append to the set: a part is closed when it holds vsize bytes and the
 * next opened with the next byte (so no part is ever empty). */
static int volw_write(volw *w, const void *p, size_t n, cm_error *err)
{
	const char *c = p;
	while (n > 0) {
		int rc;
		if (w->fd < 0 && (rc = volw_open_part(w, err)) < 0)
			return rc;
		uint64_t room = w->vsize - w->in_part;
		size_t k = n < room ? n : (size_t)room;
		/* the sidecar's sha256: a large piece is hashed by the second
		 * thread while this one writes it (the caller's bytes stay put
		 * until we return); headers and padding here */
		if (k >= VOLW_ASYNC_MIN) {
			bhash_post(&w->hb, c, k);
			rc = cm_dwriter_write(w->dw, c, k, err);
			bhash_wait(&w->hb);
		} else {
			reg_hasher_update(w->h, c, k);
			rc = cm_dwriter_write(w->dw, c, k, err);
		}
		if (rc < 0)
			return rc;
		w->in_part += k;
		w->total += k;
		c += k;
		n -= k;
		if (w->in_part == w->vsize && (rc = volw_close_part(w, err)) < 0)
			return rc;
	}
	return 0;
}

static la_ssize_t volw_write_cb(struct archive *a, void *data, const void *p, size_t n)
{
	cm_error e;
	if (volw_write(data, p, n, &e) < 0) {
		archive_set_error(a, EIO, "%s", e.msg);
		return -1;
	}
	return (la_ssize_t)n;
}

static const char *base_of(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* Every part written: rename them into place, drop parts of an older,
 * longer set, and write the sidecar. */
static int volw_commit(volw *w, cm_error *err)
{
	int rc = 0;
	if (w->fd >= 0 && (rc = volw_close_part(w, err)) < 0)
		return rc;
	cm_buf side = CM_BUF_INIT, name = CM_BUF_INIT;
	rc = cm_buf_appendf(&side, err,
			    "# ferry volume set %s: %zu parts of at most %llu bytes, %llu bytes "
			    "in all; the parts joined in order are the bundle\n",
			    base_of(w->path), w->n, (unsigned long long)w->vsize,
			    (unsigned long long)w->total);
	/* every part on disk before any is renamed into place */
	for (size_t i = 0; rc == 0 && i < w->n; i++) {
		int fd = open(w->part[i].tmp, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0)
			rc = cm_error_sys(err, errno, "fsync %s", w->part[i].tmp);
		if (fd >= 0)
			close(fd);
	}
	for (size_t i = 0; rc == 0 && i < w->n; i++) {
		name.len = 0;
		if ((rc = cm_buf_appendf(&name, err, "%s.%03zu", w->path, i)) < 0)
			break;
		if (rename(w->part[i].tmp, name.data) < 0) {
			rc = cm_error_sys(err, errno, "renaming %s to %s", w->part[i].tmp,
					  name.data);
			break;
		}
		free(w->part[i].tmp);
		w->part[i].tmp = NULL;
		rc = cm_buf_appendf(&side, err, "# %s: %llu bytes\nSHA256 (%s) = %s\n",
				    base_of(name.data), (unsigned long long)w->part[i].size,
				    base_of(name.data), w->part[i].hex);
	}
	/* the parts of an older, longer set would join this one */
	for (size_t i = w->n; rc == 0 && i < REG_BUNDLE_PARTS_MAX; i++) {
		name.len = 0;
		if ((rc = cm_buf_appendf(&name, err, "%s.%03zu", w->path, i)) < 0)
			break;
		if (unlink(name.data) < 0 && errno != ENOENT)
			rc = cm_error_sys(err, errno, "removing %s (a part of an older set)",
					  name.data);
	}
	name.len = 0;
	if (rc == 0 && (rc = cm_buf_appendf(&name, err, "%s.parts", w->path)) == 0)
		rc = cm_file_write_atomic(name.data, side.data, side.len, w->mode, err);
	if (rc == 0)
		rc = cm_fsync_parent(w->path, err);
	cm_buf_free(&side);
	cm_buf_free(&name);
	return rc;
}

static void volw_free(volw *w)
{
	if (w->fd >= 0)
		close(w->fd);
	cm_dwriter_free(w->dw);
	for (size_t i = 0; w->part && i < w->n; i++)
		if (w->part[i].tmp) {
			unlink(w->part[i].tmp);
			free(w->part[i].tmp);
		}
	free(w->part);
	if (w->hb_on)
		bhash_stop(&w->hb);
	reg_hasher_free(w->h);
	memset(w, 0, sizeof(*w));
	w->fd = -1;
}

/* ---- a bundle with holes (bld_bundle.h) ---- */

typedef struct hole {
	reg_digest d;
	reg_tee tee;
} hole;

struct bld_bundle_pending {
	int fd, fd_direct;
	char tmp[PATH_MAX], path[PATH_MAX];
	char abs_tmp[PATH_MAX]; /* named in the store's resume files */
	reg_store *st;
	hole *v;
	size_t n;
};

static int cmp_hole(const void *a, const void *b)
{
	return strcmp(((const hole *)a)->d.s, ((const hole *)b)->d.s);
}

/* Collect the pending members; *out stays NULL when there are none. */
static int pending_new(bld_bundle_pending **out, int fd, const char *tmp, const char *path,
		       reg_store *st, const member *v, size_t n, cm_error *err)
{
	size_t k = 0;
	*out = NULL;
	for (size_t i = 0; i < n; i++)
		k += v[i].pending ? 1 : 0;
	if (!k)
		return 0;
	bld_bundle_pending *bp = calloc(1, sizeof(*bp));
	hole *h = calloc(k, sizeof(*h));
	if (!bp || !h) {
		free(bp);
		free(h);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	bp->fd = fd;
	bp->v = h;
	snprintf(bp->tmp, sizeof(bp->tmp), "%s", tmp);
	snprintf(bp->path, sizeof(bp->path), "%s", path);
	/* tees are packed only where the bundle can become a pack */
	if (!reg_store_can_pack(st, fd) || !realpath(tmp, bp->abs_tmp))
		bp->abs_tmp[0] = '\0';
	bp->st = st;
	/* a second descriptor for the downloads' direct writes, so that the
	 * plain one never changes mode under them */
	bp->fd_direct = open(tmp, O_WRONLY | O_CLOEXEC | O_DIRECT);
	size_t align = bp->fd_direct >= 0 ? cm_dio_align(bp->fd_direct) : 0;
	if (bp->fd_direct >= 0 && !align) {
		close(bp->fd_direct);
		bp->fd_direct = -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!v[i].pending)
			continue;
		hole *x = &h[bp->n++];
		int rc = reg_digest_from_hex(&x->d, v[i].hex, err);
		if (rc < 0) {
			bp->fd = -1; /* the caller's, still */
			bld_bundle_pending_abort(bp);
			return rc;
		}
		x->tee.fd_direct = bp->fd_direct;
		x->tee.fd_plain = fd;
		x->tee.align = align;
		x->tee.off = v[i].data_off;
		x->tee.size = v[i].size;
		x->tee.path = bp->abs_tmp[0] ? bp->abs_tmp : NULL;
	}
	qsort(h, bp->n, sizeof(*h), cmp_hole);
	*out = bp;
	return 0;
}

reg_tee *bld_bundle_pending_tee(void *ud, const reg_digest *d)
{
	bld_bundle_pending *bp = ud;
	if (!bp)
		return NULL;
	hole key;
	key.d = *d;
	hole *h = bsearch(&key, bp->v, bp->n, sizeof(hole), cmp_hole);
	return h ? &h->tee : NULL;
}

typedef struct fill {
	bld_bundle_pending *bp;
	reg_hasher *h;
	uint64_t off; /* where the next block goes in the bundle */
} fill;

/* A block of fill_from_store's blob: hashed, and written into its hole. */
static int fill_block(void *ctx, const void *p, size_t n, cm_error *err)
{
	fill *f = ctx;
	reg_hasher_update(f->h, p, n);
	f->off += n;
	return cm_pwrite_all(f->bp->fd, p, n, f->off - n, err);
}

/* A hole no download filled (a resumed transfer, a blob another process
 * stored meanwhile): copy the blob from the store, checking it again. */
static int fill_from_store(bld_bundle_pending *bp, const hole *h, cm_error *err)
{
	const reg_digest *d = &h->d;
	int fd;
	uint64_t size;
	int rc = reg_store_open_blob(&fd, &size, bp->st, d, 0, err);
	if (rc < 0)
		return cm_error_wrap(err, "blob %s was not downloaded", d->s);
	fill f = {.bp = bp, .off = h->tee.off};
	rc = reg_hasher_new(&f.h, err);
	if (rc == 0 && size != h->tee.size)
		rc = cm_error_set(err, CM_EVERIFY,
				  "store blob %s is %llu bytes, its manifest says %llu", d->s,
				  (unsigned long long)size, (unsigned long long)h->tee.size);
	if (rc == 0)
		rc = cm_read_each(fd, size, fill_block, &f, NULL, d->s, err);
	if (rc == 0) {
		reg_digest got;
		reg_hasher_final(f.h, &got);
		if (!reg_digest_equal(&got, d))
			rc = cm_error_set(err, CM_EVERIFY,
					  "store blob %s changed on disk: it now hashes to %s",
					  d->s, got.s);
	}
	reg_hasher_free(f.h);
	close(fd);
	return rc;
}

static void drop_stale_temps(const char *path);

int bld_bundle_pending_finish(bld_bundle_pending *bp, cm_error *err)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < bp->n; i++) {
		hole *h = &bp->v[i];
		rc = h->tee.done ? reg_tee_finish(&h->tee, err) : fill_from_store(bp, h, err);
	}
	if (bp->fd_direct >= 0)
		close(bp->fd_direct);
	bp->fd_direct = -1;
	if (rc == 0) {
		rc = cm_file_commit(bp->fd, bp->tmp, bp->path, err);
		bp->fd = -1;
	}
	if (rc < 0) {
		cm_error_wrap(err, "writing bundle %s", bp->path);
		bld_bundle_pending_abort(bp);
		return rc;
	}
	/* blobs that went into the bundle only: the store keeps them there */
	reg_catalog_pack_blob *pv = calloc(bp->n, sizeof(*pv));
	size_t k = 0;
	if (!pv)
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < bp->n; i++) {
		const hole *h = &bp->v[i];
		if (!h->tee.done || !h->tee.packed)
			continue;
		pv[k].digest = h->d.s;
		pv[k].off = h->tee.off;
		pv[k].size = h->tee.size;
		k++;
	}
	if (rc == 0)
		rc = reg_store_pack_add(bp->st, bp->path, pv, k, err);
	free(pv);
	/* killed builds' temp bundles: only now, as resumed downloads read
	 * from them */
	drop_stale_temps(bp->path);
	if (rc < 0)
		cm_error_wrap(err, "bundle %s is written, but", bp->path);
	bld_bundle_pending_abort(bp);
	return rc;
}

void bld_bundle_pending_abort(bld_bundle_pending *bp)
{
	if (!bp)
		return;
	if (bp->fd_direct >= 0)
		close(bp->fd_direct);
	if (bp->fd >= 0) {
		close(bp->fd);
		unlink(bp->tmp);
	}
	free(bp->v);
	free(bp);
}

/* Temp bundles of builds that were killed (<out>.tmp.XXXXXX, next to the
 * output): a live writer holds an flock on its temp file from before its
 * first byte, so one with bytes that can be locked is dead. An empty one
 * may be a writer between mkostemp and flock: left alone for a minute. */
static void drop_stale_temps(const char *path)
{
	char dir[PATH_MAX], prefix[NAME_MAX + 8];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	const char *base = slash ? slash + 1 : path;
	if (snprintf(prefix, sizeof(prefix), "%s.tmp.", base) >= (int)sizeof(prefix))
		return;
	if (slash)
		*slash = '\0';
	DIR *d = opendir(slash ? (dir[0] ? dir : "/") : ".");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
		    strlen(de->d_name) != strlen(prefix) + 6)
			continue;
		int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		struct stat sb;
		if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    (sb.st_size > 0 || time(NULL) - sb.st_mtime > 60) &&
		    flock(fd, LOCK_EX | LOCK_NB) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
		close(fd);
	}
	closedir(d);
}

static int cmp_rank(const void *a, const void *b)
{
	const member *x = a, *y = b;
	int rx = reg_bundle_rank(x->path), ry = reg_bundle_rank(y->path);
	if (rx != ry)
		return rx < ry ? -1 : 1;
	return strcmp(x->path, y->path);
}

/* The tar stream through cb (ud its argument; name for messages):
 * SHA256SUMS, its signature, then the members in order. */
static int write_tar(la_ssize_t (*cb)(struct archive *, void *, const void *, size_t), void *ud,
		     const char *name, cm_dwriter *dw, reg_store *st, member *order, size_t n,
		     const char *sums, const unsigned char *sig, time_t mtime, const volw *vw,
		     cm_error *err)
{
	struct archive *a = archive_write_new();
	if (!a)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_none(a);
	archive_write_set_bytes_per_block(a, 0);
	char *bufs[2] = {cm_dio_alloc(COPY_BUF), cm_dio_alloc(COPY_BUF)};
	reg_hasher *h = NULL;
	bhash hb;
	int rc = 0;
	if (archive_write_open2(a, ud, NULL, cb, NULL, NULL) != ARCHIVE_OK)
		rc = cm_error_set(err, CM_EIO, "opening %s: %s", name, archive_error_string(a));
	if (rc == 0 && (rc = write_header(a, REG_BUNDLE_SUMS, strlen(sums), mtime, err)) == 0)
		rc = write_data(a, sums, strlen(sums), REG_BUNDLE_SUMS, err);
	if (rc == 0 && (rc = write_header(a, REG_BUNDLE_SIG, SIG_LEN, mtime, err)) == 0)
		rc = write_data(a, sig, SIG_LEN, REG_BUNDLE_SIG, err);
	if (rc == 0 && (!bufs[0] || !bufs[1] || reg_hasher_new(&h, err) < 0))
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	if (rc == 0 && (rc = bhash_start(&hb, h, err)) == 0) {
		for (size_t i = 0; rc == 0 && i < n; i++) {
			rc = write_member(a, dw, st, &order[i], mtime, bufs, &hb, err);
			/* inspect reads the first part alone: it must hold
			 * SHA256SUMS, the signature and bundle.json */
			if (rc == 0 && vw && vw->n > 1 &&
			    strcmp(order[i].path, REG_BUNDLE_JSON) == 0)
				rc = cm_error_set(err, CM_EINVAL,
						  "the volume size is too small: the first part "
						  "must hold SHA256SUMS, its signature and %s",
						  REG_BUNDLE_JSON);
		}
		bhash_stop(&hb);
	}
	if (rc == 0 && archive_write_close(a) != ARCHIVE_OK)
		rc = cm_error_set(err, CM_EIO, "finishing %s: %s", name, archive_error_string(a));
	archive_write_free(a);
	free(bufs[0]);
	free(bufs[1]);
	reg_hasher_free(h);
	return rc;
}

/* The same tar stream as the single file, into parts (bld_bundle_in.volume_size). */
static int write_volumes(bld_bundle_out *o, volw *vw, int *have_vw, const char *path,
			 const bld_bundle_in *in, member *v, size_t n, const char *sums,
			 const unsigned char *sig, mode_t mode, cm_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].pending)
			return cm_error_set(err, CM_EINVAL,
					    "a volume set is written from blobs in the cache "
					    "only (%s is still to be downloaded)",
					    v[i].path);
	int rc = volw_new(vw, path, in->volume_size, mode, err);
	*have_vw = 1;
	if (rc == 0)
		rc = write_tar(volw_write_cb, vw, path, NULL, in->store, v, n, sums, sig, in->mtime,
			       vw, err);
	if (rc == 0)
		rc = volw_commit(vw, err);
	if (rc == 0) {
		o->size = vw->total;
		o->members = n + 2;
		o->parts = vw->n;
	}
	return rc;
}

int bld_bundle_write(bld_bundle_out *out, const char *path, const bld_bundle_in *in, cm_error *err)
{
	mlist l = {NULL, 0, 0, in};
	cm_buf sums = CM_BUF_INIT;
	char *index = NULL;
	cm_dwriter *dw = NULL;
	int fd = -1, rc;
	char tmp[PATH_MAX];
	volw vw;
	int have_vw = 0;
	unsigned char sig[SIG_LEN];
	bld_bundle_out o = {0};

	if ((rc = add_mem(&l, REG_BUNDLE_JSON, in->bundle_json, err)) < 0)
		goto out;
	if ((rc = add_mem(&l, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", err)) < 0)
		goto out;
	/* a delta's JSON is compact: there its metadata is a share of what it
	 * carries (docs/bundle-format.md "Deltas"); full bundles stay indented */
	if ((rc = index_json(&index, in->images, in->n_images, in->base != NULL, err)) < 0 ||
	    (rc = add_mem(&l, "index.json", index, err)) < 0)
		goto out;
	for (size_t i = 0; i < in->n_images; i++)
		if ((rc = bld_walk_image(in->store, &in->images[i].root, 0, add_blob, &l, err)) <
		    0) {
			cm_error_wrap(err, "image %s", in->images[i].ref);
			goto out;
		}
	o.blobs = l.n - 3;
	for (size_t i = 0; i < in->n_files; i++) {
		member *m = mlist_add(&l, err);
		if (!m) {
			rc = CM_ENOMEM;
			goto out;
		}
		snprintf(m->path, sizeof(m->path), "%s", in->files[i].member);
		snprintf(m->src, sizeof(m->src), "%s", in->files[i].src);
		memcpy(m->hex, in->files[i].hex, 65);
		m->size = in->files[i].size;
		if ((rc = reg_bundle_check_name(m->path, err)) < 0 ||
		    reg_bundle_rank(m->path) < 6) {
			rc = rc < 0 ? rc
				    : cm_error_set(err, CM_EINVAL, "bad member name %s", m->path);
			goto out;
		}
	}
	/* SHA256SUMS: sorted by path, sha256sum --tag format */
	qsort(l.v, l.n, sizeof(member), cmp_path);
	for (size_t i = 0; i < l.n; i++) {
		if (i && strcmp(l.v[i].path, l.v[i - 1].path) == 0) {
			rc = cm_error_set(err, CM_EINVAL, "two members named %s", l.v[i].path);
			goto out;
		}
		if ((rc = reg_bundle_sums_line(&sums, l.v[i].path, l.v[i].hex, err)) < 0)
			goto out;
	}
	reg_digest sd;
	if ((rc = reg_digest_buf(&sd, sums.data, sums.len, err)) < 0)
		goto out;
	memcpy(o.sums_hex, REG_DIGEST_HEX(&sd), 65);
	if (in->reuse_sums) {
		/* same SHA256SUMS: same members, same bytes, same (deterministic)
		 * Ed25519 signature, so the existing file is what we would write */
		if (strcmp(in->reuse_sums, o.sums_hex) == 0) {
			o.reused = 1;
			o.members = l.n + 2;
		}
		/* else o.reused stays 0: the caller writes the bundle anew */
		goto out;
	}
	if ((rc = sig_sign(sig, in->key, sums.data, sums.len, err)) < 0)
		goto out;
	/* tar order: fixed ranks, then by path */
	qsort(l.v, l.n, sizeof(member), cmp_rank);
	/* a bundle is not secret: the usual 0644 less the umask, not mkstemp's 0600 */
	mode_t um = umask(0);
	umask(um);
	if (in->volume_size) {
		rc = write_volumes(&o, &vw, &have_vw, path, in, l.v, l.n, sums.data, sig,
				   0644 & ~um, err);
		goto out;
	}

	if ((rc = cm_file_mktemp(&fd, tmp, sizeof(tmp), path, err)) < 0)
		goto out;
	/* held until the file is renamed or removed: tells a later build
	 * that this temp file is alive */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = cm_error_sys(err, errno, "locking %s", tmp);
		goto fail;
	}
	if (fchmod(fd, 0644 & ~um) < 0) {
		rc = cm_error_sys(err, errno, "chmod %s", tmp);
		goto fail;
	}
	if ((rc = cm_dwriter_new(&dw, fd, 0, COPY_BUF, err)) < 0 ||
	    (rc = write_tar(dw_write_cb, dw, tmp, dw, in->store, l.v, l.n, sums.data, sig,
			    in->mtime, NULL, err)) < 0)
		goto fail;
	if ((rc = cm_dwriter_flush(dw, err)) < 0) {
		cm_error_wrap(err, "%s", tmp);
		goto fail;
	}
	o.size = cm_dwriter_offset(dw);
	o.members = l.n + 2;
	if ((rc = pending_new(&o.pending, fd, tmp, path, in->store, l.v, l.n, err)) < 0)
		goto fail;
	if (o.pending) {
		fd = -1; /* the holes are filled, and the file renamed, later */
		goto out;
	}
	rc = cm_file_commit(fd, tmp, path, err);
	fd = -1;
	if (rc == 0)
		drop_stale_temps(path);
	goto out;
fail:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
		fd = -1;
	}
out:
	if (have_vw)
		volw_free(&vw);
	cm_dwriter_free(dw);
	free(l.v);
	free(index);
	cm_buf_free(&sums);
	if (out)
		*out = o;
	if (rc < 0)
		return cm_error_wrap(err, "writing bundle %s", path);
	return 0;
}
