#include "reg_bidx.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cm_buf.h"
#include "cm_file.h"
#include "reg_bundle.h"
#include "reg_manifest.h"
#include "reg_ref.h"

#define INDEX_FORMAT "3"
#define HASH_CHUNK ((size_t)1 << 20)
/* an idle-time hasher checks between blocks whether it was taken over */
#define IDLE_CHUNK ((size_t)256 << 10)
#define INDEX_JSON_MAX ((size_t)16 << 20)
#define WALK_DEPTH 4
#define NO_MEMBER UINT32_MAX

/* Verification state of a member: the one scheduler's (see "the
 * scheduler" below). BUSY: a thread hashes it, others wait for it; IDLE: an
 * idle-time hasher hashes it, anyone who needs it takes it over. */
enum { ST_UNVERIFIED = 0, ST_QUEUED, ST_OK, ST_BAD, ST_BUSY, ST_IDLE };

typedef struct member {
	char *path;
	char hex[REG_DIGEST_HEXLEN + 1];
	uint64_t off, size;
	int state;	/* guarded by reg_bidx.mu once the server runs */
	const char *mt; /* manifest media type (owned by mt_owned) or NULL */
	char *mt_owned;
	uint32_t *kids; /* manifests: members it references that the bundle holds */
	size_t nkids;
	int walked; /* manifest read and parsed */
	int dirty;  /* hashed by this start-up, not yet recorded */
} member;

typedef struct tag {
	char *name;
	uint32_t id; /* the manifest */
} tag;

typedef struct repo {
	char *name;
	tag *tags; /* sorted by name */
	size_t ntags, cap_tags;
	char **tag_names; /* the same, for reg_bidx_tags */
	uint32_t *objs;	  /* sorted, unique member indices */
	size_t nobjs, cap_objs;
} repo;

typedef struct waiter {
	uint32_t id;
	void (*wake)(void *arg);
	void *arg;
	struct waiter *next;
} waiter;

typedef struct job {
	uint32_t id;
	struct job *next;
} job;

struct reg_bidx {
	reg_bundle_vol *vol; /* the file, or the parts of a volume set; the
				parts' stat as verified: a change resets every
				state */
	int mode;
	char path[4096];
	member *m; /* sorted by path */
	size_t nm, cap_m;
	reg_bidx_member *pub; /* the same, as the public table */
	repo *r;	      /* sorted by name */
	size_t nr, cap_r;
	char **repo_names;

	pthread_mutex_t mu;
	pthread_cond_t cv;  /* the queue */
	pthread_cond_t vcv; /* any settle or untake */
	job *q_head, *q_tail;
	waiter *waiters;
	int stopping;
	pthread_t *threads;
	unsigned nthreads;
	/* idle-time hashers (reg_bidx_idle_start) */
	uint32_t *idle_ids;
	size_t idle_n, idle_next;
	int idle_stop;
	uint64_t idle_done;
	pthread_t idle_th[8];
	unsigned idle_threads;
	void (*on_settle)(void *ctx, uint32_t id, int ok);
	void *on_settle_ctx;

	sqlite3 *db;
	pthread_mutex_t dbmu;
	cm_buf key; /* what the saved index is valid for (index_key) */

	void (*notify)(void *ctx, const char *msg);
	void *notify_ctx;
	uint64_t bytes_hashed;
};

static int raw_read(reg_bidx *x, const member *m, uint64_t at, void *buf, size_t n, cm_error *err);
static void say(reg_bidx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(reg_bidx *x, const char *fmt, ...)
{
	if (!x->notify)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	x->notify(x->notify_ctx, msg);
}

/* " (its bytes are in B.tar.001, B.tar.002)" for a member of a volume set,
 * "" for a single file. */
static void parts_of(const reg_bidx *x, const member *m, char *buf, size_t n)
{
	buf[0] = '\0';
	if (x->vol->n < 2)
		return;
	char parts[900];
	reg_bundle_vol_where(x->vol, m->off, m->size, parts, sizeof(parts));
	snprintf(buf, n, " (its bytes are in %.900s)", parts);
}

/* The error for a member whose bytes did not match SHA256SUMS. */
static int bad_member(const reg_bidx *x, const member *m, cm_error *err)
{
	char where[1024];
	parts_of(x, m, where, sizeof(where));
	return cm_error_set(err, CM_EVERIFY,
			    "digest mismatch in member '%s'%s: its bytes do not hash to %s as "
			    "SHA256SUMS says",
			    m->path, where, m->hex);
}

/* ---- members ---------------------------------------------------------- */

static int add_member(reg_bidx *x, const char *path, const char *hex, uint64_t off, uint64_t size,
		      int verified, cm_error *err)
{
	if (strlen(hex) != REG_DIGEST_HEXLEN)
		return cm_error_set(err, CM_EVERIFY, "member %s: bad digest", path);
	if (x->nm >= NO_MEMBER - 1)
		return cm_error_set(err, CM_EINVAL, "too many members");
	if (CM_GROW(&x->m, x->nm, &x->cap_m, err) < 0)
		return CM_ENOMEM;
	member *m = &x->m[x->nm];
	memset(m, 0, sizeof(*m));
	if (!(m->path = strdup(path)))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	memcpy(m->hex, hex, REG_DIGEST_HEXLEN + 1);
	m->off = off;
	m->size = size;
	m->state = verified ? ST_OK : ST_UNVERIFIED;
	x->nm++;
	return 0;
}

static int member_cmp(const void *a, const void *b)
{
	return strcmp(((const member *)a)->path, ((const member *)b)->path);
}

/* bsearch: a name against a member's path, a repository's name, a tag */
static int path_key_cmp(const void *key, const void *m)
{
	return strcmp(key, ((const member *)m)->path);
}

static int name_key_cmp(const void *key, const void *r)
{
	return strcmp(key, ((const repo *)r)->name);
}

static int tag_key_cmp(const void *key, const void *t)
{
	return strcmp(key, ((const tag *)t)->name);
}

/* bsearch, but an empty (NULL) table is no call: its base must not be NULL */
static void *find(const void *key, const void *base, size_t n, size_t size,
		  int (*cmp)(const void *, const void *))
{
	return n ? bsearch(key, base, n, size, cmp) : NULL;
}

uint32_t reg_bidx_find(const reg_bidx *x, const char *path)
{
	const member *m = find(path, x->m, x->nm, sizeof(member), path_key_cmp);
	return m ? (uint32_t)(m - x->m) : NO_MEMBER;
}

uint32_t reg_bidx_find_blob(const reg_bidx *x, const reg_digest *d)
{
	char path[16 + REG_DIGEST_HEXLEN];
	snprintf(path, sizeof(path), "blobs/sha256/%s", REG_DIGEST_HEX(d));
	return reg_bidx_find(x, path);
}

/* Read a member (at most cap bytes) and check it against its digest. 1 if
 * it matched, 0 if not; <0 on I/O errors. */
static int read_member(reg_bidx *x, uint32_t id, cm_buf *out, size_t cap, cm_error *err)
{
	member *m = &x->m[id];
	if (m->size > cap)
		return cm_error_set(err, CM_EVERIFY, "%s: %llu bytes is more than the %zu allowed",
				    m->path, (unsigned long long)m->size, cap);
	char *p = malloc(m->size + 1);
	if (!p)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	reg_digest d;
	int rc = raw_read(x, m, 0, p, (size_t)m->size, err);
	if (rc == 0)
		rc = reg_digest_buf(&d, p, m->size, err);
	if (rc < 0) {
		free(p);
		return rc;
	}
	p[m->size] = '\0';
	__atomic_add_fetch(&x->bytes_hashed, m->size, __ATOMIC_RELAXED);
	out->data = p;
	out->len = m->size;
	out->cap = m->size + 1;
	return strcmp(REG_DIGEST_HEX(&d), m->hex) == 0;
}

/* Hash a member in place. 1 match, 0 mismatch, CM_EFAIL when stopped, <0
 * on errors. (The member table does not change once the reader is open.) */
static int hash_member(reg_bidx *x, uint32_t id, char *buf, reg_hasher *h, cm_error *err)
{
	const member *m = &x->m[id];
	reg_hasher_reset(h);
	int rc =
	    reg_bundle_vol_hash(h, x->vol, m->off, m->size, buf, HASH_CHUNK, &x->stopping, err);
	if (rc < 0) /* CM_EFAIL: stopped */
		return rc == CM_EFAIL
			   ? rc
			   : cm_error_wrap(err, "reading %s from bundle %s", m->path, x->path);
	reg_digest d;
	reg_hasher_final(h, &d);
	__atomic_add_fetch(&x->bytes_hashed, m->size, __ATOMIC_RELAXED);
	return strcmp(REG_DIGEST_HEX(&d), m->hex) == 0;
}

/* ---- the saved index -------------------------------------------------- */

/* What a saved index is valid for, as one string: its format, the sha256
 * of SHA256SUMS (which ties the table to the signed list), and every
 * part's device, inode, size, mtime and ctime. The ctime is in it because
 * an in-place rewrite can restore the mtime (utimensat) but never the
 * ctime. */
static int index_key(cm_buf *out, const reg_bundle_vol *v, const char *sums, cm_error *err)
{
	int rc = cm_buf_appendf(out, err, "format %s sums %s", INDEX_FORMAT, sums);
	for (size_t i = 0; rc == 0 && i < v->n; i++) {
		const struct stat *sb = &v->p[i].st;
		rc = cm_buf_appendf(out, err, " %llu:%llu:%llu:%lld.%09ld:%lld.%09ld",
				    (unsigned long long)sb->st_dev, (unsigned long long)sb->st_ino,
				    (unsigned long long)sb->st_size, (long long)sb->st_mtim.tv_sec,
				    sb->st_mtim.tv_nsec, (long long)sb->st_ctim.tv_sec,
				    sb->st_ctim.tv_nsec);
	}
	return rc;
}

/* A file or folder we may trust: ours (this effective user), and not
 * writable by group or others. */
static int private_stat(const struct stat *sb)
{
	return sb->st_uid == geteuid() && (sb->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* The saved index is trusted only when it is a regular file (not a link)
 * that only we could have written, in a folder only we can write. */
static int index_trusted(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	struct stat ds, fs;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int ok = fstat(fd, &fs) == 0 && S_ISREG(fs.st_mode) && private_stat(&fs) &&
		 (fs.st_mode & 077) == 0 && lstat(slash ? dir : ".", &ds) == 0 &&
		 S_ISDIR(ds.st_mode) && private_stat(&ds);
	close(fd);
	return ok;
}

static int db_exec(sqlite3 *db, const char *sql, cm_error *err)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = cm_error_set(err, CM_EIO, "sqlite: %s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return rc;
	}
	return 0;
}

/* Load the member table from a saved index whose key matches. 1 loaded,
 * 0 absent or stale. */
static int db_load(reg_bidx *x, const char *path, const char *key)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int ok = 0;
	if (!index_trusted(path))
		return 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW, NULL) !=
	    SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = 'key'", -1, &st, NULL) !=
		SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW || !sqlite3_column_text(st, 0) ||
	    strcmp((const char *)sqlite3_column_text(st, 0), key) != 0)
		goto out;
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT path, hex, off, size, verified FROM members", -1, &st,
			       NULL) != SQLITE_OK)
		goto out;
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(st, 0);
		const char *hex = (const char *)sqlite3_column_text(st, 1);
		sqlite3_int64 off = sqlite3_column_int64(st, 2);
		sqlite3_int64 size = sqlite3_column_int64(st, 3);
		cm_error e;
		if (!p || !hex || off < 0 || size < 0 || (uint64_t)off > x->vol->size ||
		    (uint64_t)size > x->vol->size - (uint64_t)off ||
		    add_member(x, p, hex, (uint64_t)off, (uint64_t)size,
			       sqlite3_column_int(st, 4) == 1, &e) < 0)
			goto out;
	}
	ok = r == SQLITE_DONE && x->nm > 0;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (!ok) {
		for (size_t i = 0; i < x->nm; i++)
			free(x->m[i].path);
		x->nm = 0;
	}
	return ok;
}

/* Write the member table to a fresh file and move it into place. */
static int db_save(reg_bidx *x, const char *path, const char *key, const char *bundle,
		   cm_error *err)
{
	char tmp[4200];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int tfd;
	/* a fresh name nobody can have prepared (mkstemp: O_EXCL, 0600) */
	int rc = cm_file_mktemp(&tfd, tmp, sizeof(tmp), path, err);
	if (rc < 0)
		return rc;
	if (sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL) !=
	    SQLITE_OK) {
		rc = cm_error_set(err, CM_EIO, "creating %s: %s", tmp,
				  db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	if ((rc =
		 db_exec(db,
			 "PRAGMA journal_mode=DELETE; PRAGMA synchronous=NORMAL;"
			 "CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
			 "CREATE TABLE members(path TEXT PRIMARY KEY, hex TEXT NOT NULL,"
			 " off INTEGER NOT NULL, size INTEGER NOT NULL, verified INTEGER NOT NULL);"
			 "BEGIN;",
			 err)) < 0)
		goto out;
	if (sqlite3_prepare_v2(db, "INSERT INTO meta VALUES('key', ?), ('bundle', ?)", -1, &st,
			       NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, bundle, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "INSERT INTO members VALUES(?, ?, ?, ?, ?)", -1, &st, NULL) !=
	    SQLITE_OK)
		goto dberr;
	for (size_t i = 0; i < x->nm; i++) {
		member *m = &x->m[i];
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, m->path, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, m->hex, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)m->off);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)m->size);
		sqlite3_bind_int(st, 5, m->state == ST_OK);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto dberr;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = db_exec(db, "COMMIT;", err)) < 0)
		goto out;
	if (sqlite3_close(db) != SQLITE_OK) {
		db = NULL;
		rc = cm_error_set(err, CM_EIO, "closing %s", tmp);
		goto out;
	}
	db = NULL;
	return cm_file_commit(tfd, tmp, path, err); /* its fsync is of the file sqlite wrote */
dberr:
	rc = cm_error_set(err, CM_EIO, "writing %s: %s", tmp, sqlite3_errmsg(db));
out:
	sqlite3_finalize(st);
	if (db)
		sqlite3_close(db);
	close(tfd);
	unlink(tmp);
	return rc;
}

/* Record that a member hashed correctly (best effort). */
static void db_mark(reg_bidx *x, const char *path)
{
	pthread_mutex_lock(&x->dbmu);
	if (x->db) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(x->db, "UPDATE members SET verified = 1 WHERE path = ?", -1,
				       &st, NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_DONE)
				say(x, "could not record verification of %s: %s", path,
				    sqlite3_errmsg(x->db));
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&x->dbmu);
}

/* Make (or check) a folder for indexes: ours and private. */
static int private_dir(const char *dir, cm_error *err)
{
	int rc = cm_mkdirs(dir, err);
	if (rc < 0)
		return rc;
	struct stat sb;
	if (lstat(dir, &sb) < 0)
		return cm_error_sys(err, errno, "stat %s", dir);
	if (!S_ISDIR(sb.st_mode) || !private_stat(&sb))
		return cm_error_set(err, CM_EINVAL,
				    "index folder %s is not a folder owned by this user and closed "
				    "to group and others: its index could be forged",
				    dir);
	return 0;
}

/* Where the index lives: --index-dir (a folder owned by this user and
 * writable by nobody else), else a private cache folder,
 * $XDG_CACHE_HOME/ferry/serve-index or ~/.cache/ferry/serve-index, made
 * 0700. Never beside the bundle: a shared folder (/tmp, a mount point)
 * would let another user plant a table that serve then trusts. */
static int index_path(char *out, size_t n, const reg_bidx_opts *o, const char *bundle,
		      const char *sums, cm_error *err)
{
	char copy[4096];
	if ((size_t)snprintf(copy, sizeof(copy), "%s", bundle) >= sizeof(copy))
		return cm_error_set(err, CM_EINVAL, "bundle path too long");
	const char *base = basename(copy);
	const char *dir = o->index_dir;
	char cache[4096];
	if (!dir) {
		const char *xdg = getenv("XDG_CACHE_HOME");
		const char *home = getenv("HOME");
		char parent[4096];
		if (xdg && *xdg)
			snprintf(parent, sizeof(parent), "%s/ferry", xdg);
		else if (home && *home)
			snprintf(parent, sizeof(parent), "%s/.cache/ferry", home);
		else
			return cm_error_set(err, CM_EINVAL,
					    "no place for the index: set HOME or give --index-dir");
		int rc = cm_mkdirs(parent, err);
		if (rc < 0)
			return rc;
		if (snprintf(cache, sizeof(cache), "%s/serve-index", parent) >= (int)sizeof(cache))
			return cm_error_set(err, CM_EINVAL, "cache path too long");
		if (mkdir(cache, 0700) < 0 && errno != EEXIST)
			return cm_error_sys(err, errno, "creating %s", cache);
		dir = cache;
	}
	int rc = private_dir(dir, err);
	if (rc < 0)
		return rc;
	int l = snprintf(out, n, "%s/%s.%.16s.ferry-index", dir, base, sums);
	if (l < 0 || (size_t)l >= n)
		return cm_error_set(err, CM_EINVAL, "index path too long");
	return 0;
}

/* ---- scanning --------------------------------------------------------- */

typedef struct scan_ctx {
	reg_bidx *x;
	const reg_bidx_opts *o;
} scan_ctx;

static int scan_sig(void *ctx, const void *sums, size_t n, const void *sig, size_t sig_n,
		    cm_error *err)
{
	scan_ctx *s = ctx;
	return s->o->check_sig ? s->o->check_sig(s->o->sig_ctx, sums, n, sig, sig_n, err) : 0;
}

static int scan_member(void *ctx, const reg_bundle_member *m, cm_error *err)
{
	scan_ctx *s = ctx;
	return add_member(s->x, m->path, m->hex, m->data_offset, m->size, m->verified, err);
}

/* Scan the descriptor we hold: sig_only stops after the signature (the
 * sha256 of SHA256SUMS keys the saved index). */
static int run_scan(reg_bidx *x, const reg_bidx_opts *o, int hash_data, int sig_only,
		    reg_bundle_stats *st, cm_error *err)
{
	scan_ctx s = {x, o};
	reg_bundle_opts bo;
	memset(&bo, 0, sizeof(bo));
	bo.check_sig = scan_sig;
	bo.ctx = &s;
	bo.hash_data = hash_data;
	bo.threads = o->threads;
	bo.sig_only = sig_only;
	bo.on_member = scan_member;
	bo.bundle_json = sig_only ? NULL : o->bundle_json;
	return reg_bundle_scan_vol(st, x->vol, &bo, err);
}

/* ---- repositories ----------------------------------------------------- */

static int repo_cmp(const void *a, const void *b)
{
	return strcmp(((const repo *)a)->name, ((const repo *)b)->name);
}

static repo *get_repo(reg_bidx *x, const char *name, int create, cm_error *err)
{
	for (size_t i = 0; i < x->nr; i++) /* start-up only; sorted afterwards */
		if (strcmp(x->r[i].name, name) == 0)
			return &x->r[i];
	if (!create)
		return NULL;
	if (CM_GROW(&x->r, x->nr, &x->cap_r, err) < 0)
		return NULL;
	repo *r = &x->r[x->nr];
	memset(r, 0, sizeof(*r));
	if (!(r->name = strdup(name))) {
		cm_error_set(err, CM_ENOMEM, "out of memory");
		return NULL;
	}
	x->nr++;
	return r;
}

static int add_obj(repo *r, uint32_t id, cm_error *err)
{
	if (CM_GROW(&r->objs, r->nobjs, &r->cap_objs, err) < 0)
		return CM_ENOMEM;
	r->objs[r->nobjs++] = id;
	return 0;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Read, hash and parse manifest member id (once), recording its media type
 * and the members it references. */
static int walk_manifest(reg_bidx *x, uint32_t id, const char *desc_mt, int depth, cm_error *err)
{
	member *m = &x->m[id];
	if (m->walked)
		return 0;
	m->walked = 1;
	if (!m->mt_owned &&
	    !(m->mt_owned = strdup(desc_mt && *desc_mt ? desc_mt : REG_MT_OCI_MANIFEST)))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	m->mt = m->mt_owned;
	if (m->state == ST_BAD)
		return 0;
	cm_buf b = CM_BUF_INIT;
	int rc = read_member(x, id, &b, REG_MANIFEST_MAX, err);
	if (rc == 0) {
		cm_buf_free(&b);
		rc = bad_member(x, m, err);
	}
	if (rc < 0) {
		if (rc != CM_EVERIFY)
			return cm_error_wrap(err, "manifest sha256:%s", m->hex);
		say(x, "manifest sha256:%s is not served: %s", m->hex, err->msg);
		cm_error_clear(err);
		m->state = ST_BAD;
		return 0;
	}
	if (m->state != ST_OK)
		m->dirty = 1;
	m->state = ST_OK;
	reg_manifest man;
	cm_error perr;
	if (reg_manifest_parse(&man, b.data, b.len, desc_mt, &perr) < 0) {
		/* Not an image manifest we understand (an artifact, say): serve
		 * it with its own media type, without children. */
		json_t *j = json_loadb(b.data, b.len, 0, NULL);
		const char *mt = json_string_value(json_object_get(j, "mediaType"));
		if (mt && strlen(mt) < 256) {
			free(m->mt_owned);
			m->mt_owned = strdup(mt);
			m->mt = m->mt_owned ? m->mt_owned : REG_MT_OCI_MANIFEST;
		}
		json_decref(j);
		cm_buf_free(&b);
		return 0;
	}
	cm_buf_free(&b);
	free(m->mt_owned);
	m = &x->m[id];
	if (!(m->mt_owned = strdup(man.media_type))) {
		reg_manifest_free(&man);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	m->mt = m->mt_owned;
	size_t n = man.n_items + 1;
	m->kids = calloc(n, sizeof(uint32_t));
	if (!m->kids) {
		reg_manifest_free(&man);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const reg_desc *d = i == 0 ? &man.config : &man.items[i - 1];
		if (i == 0 && man.is_index)
			continue;
		uint32_t kid = reg_bidx_find_blob(x, &d->digest);
		if (kid == NO_MEMBER)
			continue; /* not in the bundle (another platform, say) */
		x->m[id].kids[x->m[id].nkids++] = kid;
		if (man.is_index && depth < WALK_DEPTH &&
		    (rc = walk_manifest(x, kid, d->media_type, depth + 1, err)) < 0)
			break;
	}
	reg_manifest_free(&man);
	return rc < 0 ? rc : 0;
}

/* Add a manifest and everything it reaches to repo r's object set. */
static int reach(reg_bidx *x, repo *r, uint32_t id, int depth, cm_error *err)
{
	int rc = add_obj(r, id, err);
	if (rc < 0 || depth > WALK_DEPTH)
		return rc;
	member *m = &x->m[id];
	for (size_t i = 0; i < m->nkids && rc == 0; i++) {
		uint32_t k = m->kids[i];
		rc = x->m[k].mt && x->m[k].walked ? reach(x, r, k, depth + 1, err)
						  : add_obj(r, k, err);
	}
	return rc;
}

static int add_tag(repo *r, const char *name, uint32_t id, cm_error *err)
{
	for (size_t i = 0; i < r->ntags; i++)
		if (strcmp(r->tags[i].name, name) == 0) {
			r->tags[i].id = id; /* a later entry wins */
			return 0;
		}
	if (CM_GROW(&r->tags, r->ntags, &r->cap_tags, err) < 0)
		return CM_ENOMEM;
	if (!(r->tags[r->ntags].name = strdup(name)))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	r->tags[r->ntags++].id = id;
	return 0;
}

static int tag_cmp(const void *a, const void *b)
{
	return strcmp(((const tag *)a)->name, ((const tag *)b)->name);
}

static int build_repos(reg_bidx *x, cm_error *err)
{
	uint32_t ij = reg_bidx_find(x, "index.json");
	if (ij == NO_MEMBER)
		return cm_error_set(err, CM_EVERIFY, "the bundle has no index.json");
	cm_buf b = CM_BUF_INIT;
	int rc = read_member(x, ij, &b, INDEX_JSON_MAX, err);
	if (rc == 0) {
		cm_buf_free(&b);
		rc = bad_member(x, &x->m[ij], err);
	}
	if (rc < 0)
		return cm_error_wrap(err, "index.json");
	json_error_t je;
	json_t *root = json_loadb(b.data, b.len, 0, &je);
	cm_buf_free(&b);
	json_t *arr = json_object_get(root, "manifests");
	if (!json_is_array(arr)) {
		json_decref(root);
		return cm_error_set(err, CM_EVERIFY, "index.json has no manifests array");
	}
	size_t i;
	json_t *e;
	rc = 0;
	json_array_foreach(arr, i, e)
	{
		json_t *ann = json_object_get(e, "annotations");
		const char *name =
		    json_string_value(json_object_get(ann, "io.containerd.image.name"));
		const char *dg = json_string_value(json_object_get(e, "digest"));
		const char *mt = json_string_value(json_object_get(e, "mediaType"));
		reg_digest d;
		reg_ref ref;
		cm_error e2;
		if (!name || !dg || reg_digest_parse(&d, dg, &e2) < 0 ||
		    reg_ref_parse(&ref, name, &e2) < 0) {
			say(x, "index.json entry %zu has no usable image name or digest; skipped",
			    i);
			continue;
		}
		char rname[600];
		snprintf(rname, sizeof(rname), "%s/%s", ref.host, ref.path);
		if (!reg_ref_valid_path(rname)) {
			say(x,
			    "image %s cannot be served under the name %s (a host with a port?); "
			    "skipped",
			    name, rname);
			continue;
		}
		uint32_t id = reg_bidx_find_blob(x, &d);
		if (id == NO_MEMBER) {
			say(x, "image %s: manifest %s is not in the bundle; skipped", name, dg);
			continue;
		}
		if ((rc = walk_manifest(x, id, mt, 0, err)) < 0)
			break;
		repo *r = get_repo(x, rname, 1, err);
		if (!r) {
			rc = CM_ENOMEM;
			break;
		}
		if ((rc = reach(x, r, id, 0, err)) < 0)
			break;
		if (ref.tag[0] && (rc = add_tag(r, ref.tag, id, err)) < 0)
			break;
	}
	json_decref(root);
	if (rc < 0)
		return rc;
	if (x->nr)
		qsort(x->r, x->nr, sizeof(repo), repo_cmp);
	x->repo_names = calloc(x->nr + 1, sizeof(char *));
	if (!x->repo_names)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t k = 0; k < x->nr; k++) {
		repo *r = &x->r[k];
		x->repo_names[k] = r->name;
		if (r->ntags) /* a repository of digest-only references has none (NULL) */
			qsort(r->tags, r->ntags, sizeof(tag), tag_cmp);
		if (!(r->tag_names = calloc(r->ntags + 1, sizeof(char *))))
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		for (size_t j = 0; j < r->ntags; j++)
			r->tag_names[j] = r->tags[j].name;
		if (r->nobjs)
			qsort(r->objs, r->nobjs, sizeof(uint32_t), u32_cmp);
		size_t w = 0;
		for (size_t j = 0; j < r->nobjs; j++)
			if (w == 0 || r->objs[w - 1] != r->objs[j])
				r->objs[w++] = r->objs[j];
		r->nobjs = w;
	}
	return 0;
}

/* ---- the scheduler ---------------------------------------------------- *
 *
 * One state per member (ST_*), under mu, for every way a member gets
 * verified: a worker thread (serve's lazy mode, push's background checks),
 * a thread that needs the member now (reg_bidx_verify, or reg_bidx_take and
 * a hashing cursor), or an idle-time hasher. A member is hashed by one
 * thread at a time; the others wait for it (vcv, or a waiter's callback),
 * except that an idle-time hasher's member is taken over rather than waited
 * for (it may not get a CPU for a long time). */

/* Under mu: the waiters of id, unlinked. */
static waiter *take_waiters(reg_bidx *x, uint32_t id)
{
	waiter *mine = NULL, **pp = &x->waiters;
	while (*pp) {
		waiter *w = *pp;
		if (w->id == id) {
			*pp = w->next;
			w->next = mine;
			mine = w;
		} else {
			pp = &w->next;
		}
	}
	return mine;
}

static void wake_all(waiter *w)
{
	while (w) {
		waiter *n = w->next;
		w->wake(w->arg);
		free(w);
		w = n;
	}
}

/* Under mu: put id on the queue (urgent: in front). */
static int enqueue(reg_bidx *x, uint32_t id, int urgent)
{
	job *j = malloc(sizeof(*j));
	if (!j)
		return -1;
	j->id = id;
	j->next = NULL;
	if (urgent || !x->q_head) {
		j->next = x->q_head;
		x->q_head = j;
		if (!x->q_tail)
			x->q_tail = j;
	} else {
		x->q_tail->next = j;
		x->q_tail = j;
	}
	x->m[id].state = ST_QUEUED;
	pthread_cond_signal(&x->cv);
	return 0;
}

/* The outcome of hashing id: OK or BAD, waiters woken. */
static void settle(reg_bidx *x, uint32_t id, int ok)
{
	pthread_mutex_lock(&x->mu);
	x->m[id].state = ok ? ST_OK : ST_BAD;
	waiter *mine = take_waiters(x, id);
	pthread_cond_broadcast(&x->vcv);
	pthread_mutex_unlock(&x->mu);
	if (ok) {
		db_mark(x, x->m[id].path);
	} else {
		char where[1024];
		parts_of(x, &x->m[id], where, sizeof(where));
		say(x,
		    "member %s%s does not match its digest (changed after signing?): it is not "
		    "used",
		    x->m[id].path, where);
	}
	if (x->on_settle)
		x->on_settle(x->on_settle_ctx, id, ok);
	wake_all(mine);
}

int reg_bidx_take(reg_bidx *x, uint32_t id)
{
	pthread_mutex_lock(&x->mu);
	int st = x->m[id].state;
	int mine = st == ST_UNVERIFIED || st == ST_QUEUED || st == ST_IDLE;
	if (mine)
		x->m[id].state = ST_BUSY; /* a queued job finds it taken and skips it */
	pthread_mutex_unlock(&x->mu);
	return mine;
}

void reg_bidx_untake(reg_bidx *x, uint32_t id)
{
	pthread_mutex_lock(&x->mu);
	x->m[id].state = ST_UNVERIFIED;
	/* someone waits for it: a worker is to try again */
	for (waiter *w = x->waiters; w; w = w->next)
		if (w->id == id && !x->stopping && x->nthreads && enqueue(x, id, 1) == 0)
			break;
	pthread_cond_broadcast(&x->vcv);
	pthread_mutex_unlock(&x->mu);
}

/* Give id back unhashed after a read error, waking its waiters without
 * queueing it again: they answer "try again" (an error that stays, a bad
 * disk or a pulled stick, must not keep a worker hashing in a loop). */
static void give_back(reg_bidx *x, uint32_t id)
{
	pthread_mutex_lock(&x->mu);
	x->m[id].state = ST_UNVERIFIED;
	waiter *mine = take_waiters(x, id);
	pthread_cond_broadcast(&x->vcv);
	pthread_mutex_unlock(&x->mu);
	wake_all(mine);
}

/* Hash member id, which this thread holds (BUSY), and settle it. 0 matched,
 * CM_EVERIFY not (or its bytes are no longer all there: a file or part
 * shrank); other errors give it back unhashed. */
static int hash_held(reg_bidx *x, uint32_t id, char *buf, reg_hasher *h, cm_error *err)
{
	int rc = hash_member(x, id, buf, h, err);
	if (rc == CM_EVERIFY) {
		settle(x, id, 0);
		return rc;
	}
	if (rc < 0) {
		if (rc == CM_EFAIL) /* stopping */
			reg_bidx_untake(x, id);
		else
			give_back(x, id);
		return rc;
	}
	settle(x, id, rc == 1);
	if (rc == 0)
		return bad_member(x, &x->m[id], err);
	return 0;
}

/* Hash a member this thread took, and settle it (0 or CM_EVERIFY). */
static int hash_held_now(reg_bidx *x, uint32_t id, cm_error *err)
{
	char *buf = malloc(HASH_CHUNK);
	reg_hasher *h = NULL;
	int rc = buf ? reg_hasher_new(&h, err) : cm_error_set(err, CM_ENOMEM, "out of memory");
	if (rc == 0)
		rc = hash_held(x, id, buf, h, err);
	else
		reg_bidx_untake(x, id);
	free(buf);
	reg_hasher_free(h);
	return rc;
}

int reg_bidx_queue(reg_bidx *x, uint32_t id, int urgent)
{
	if (id >= x->nm)
		return CM_ENOTFOUND;
	pthread_mutex_lock(&x->mu);
	int rc = 0;
	if (x->m[id].state == ST_UNVERIFIED && enqueue(x, id, urgent) < 0)
		rc = CM_ENOMEM;
	pthread_mutex_unlock(&x->mu);
	return rc;
}

void reg_bidx_on_settle(reg_bidx *x, void (*cb)(void *ctx, uint32_t id, int ok), void *ctx)
{
	x->on_settle = cb;
	x->on_settle_ctx = ctx;
}

static void *worker(void *arg)
{
	reg_bidx *x = arg;
	char *buf = malloc(HASH_CHUNK);
	reg_hasher *h = NULL;
	cm_error err;
	if (!buf || reg_hasher_new(&h, &err) < 0) {
		free(buf);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&x->mu);
		while (!x->stopping && !x->q_head)
			pthread_cond_wait(&x->cv, &x->mu);
		if (x->stopping) {
			pthread_mutex_unlock(&x->mu);
			break;
		}
		job *j = x->q_head;
		x->q_head = j->next;
		if (!x->q_head)
			x->q_tail = NULL;
		uint32_t id = j->id;
		free(j);
		int mine = x->m[id].state == ST_QUEUED; /* else taken, or done */
		if (mine)
			x->m[id].state = ST_BUSY;
		pthread_mutex_unlock(&x->mu);
		if (!mine)
			continue;
		int rc = hash_held(x, id, buf, h, &err);
		if (rc < 0 && rc != CM_EVERIFY && !x->stopping)
			say(x, "member %s could not be verified: %s", x->m[id].path, err.msg);
	}
	free(buf);
	reg_hasher_free(h);
	return NULL;
}

int reg_bidx_workers(reg_bidx *x, unsigned n, cm_error *err)
{
	pthread_t *t = realloc(x->threads, (x->nthreads + n + 1) * sizeof(pthread_t));
	if (!t)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	x->threads = t;
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&x->threads[x->nthreads], NULL, worker, x) != 0)
			return cm_error_set(err, CM_EFAIL, "cannot start verify threads");
		x->nthreads++;
	}
	return 0;
}

/* Under mu: has the file changed since it was verified? Then nothing
 * verified before holds: every state goes back to unverified (and is
 * hashed again on demand), and the saved index is no longer updated. */
static void notice_change(reg_bidx *x)
{
	if (reg_bundle_vol_same(x->vol))
		return;
	reg_bundle_vol_restat(x->vol);
	for (size_t i = 0; i < x->nm; i++)
		if (x->m[i].state == ST_OK || x->m[i].state == ST_BAD)
			x->m[i].state = ST_UNVERIFIED;
	pthread_mutex_lock(&x->dbmu);
	if (x->db)
		sqlite3_close(x->db);
	x->db = NULL;
	pthread_mutex_unlock(&x->dbmu);
	say(x, "bundle %s changed on disk: every member is verified again before it is served",
	    x->path);
}

int reg_bidx_check(reg_bidx *x, uint32_t id, void (*wake)(void *arg), void *arg)
{
	if (id >= x->nm)
		return REG_BIDX_BAD;
	pthread_mutex_lock(&x->mu);
	notice_change(x);
	int st = x->m[id].state;
	int rc = REG_BIDX_PENDING;
	if (st == ST_OK)
		rc = REG_BIDX_READY;
	else if (st == ST_BAD)
		rc = REG_BIDX_BAD;
	else if (wake && (x->stopping || !x->nthreads))
		rc = REG_BIDX_UNAVAILABLE;
	else if (wake) {
		waiter *w = malloc(sizeof(*w));
		if (!w || ((st == ST_UNVERIFIED || st == ST_IDLE) && enqueue(x, id, 1) < 0)) {
			free(w);
			rc = REG_BIDX_UNAVAILABLE;
		} else {
			w->id = id;
			w->wake = wake;
			w->arg = arg;
			w->next = x->waiters;
			x->waiters = w;
		}
	}
	pthread_mutex_unlock(&x->mu);
	return rc;
}

/* ---- idle-time hashers ------------------------------------------------- */

/* Hash member id (IDLE) a block at a time, dropping it as soon as another
 * thread took it over or the idle hashers are told to stop: 0 settled
 * (matched or not), 1 dropped, < 0 a read error (given back). */
static int idle_hash(reg_bidx *x, uint32_t id, char *buf, reg_hasher *h)
{
	const member *m = &x->m[id];
	reg_hasher_reset(h);
	cm_error e;
	for (uint64_t off = 0;;) {
		pthread_mutex_lock(&x->mu);
		int mine = x->m[id].state == ST_IDLE && !x->stopping && !x->idle_stop;
		if (!mine && x->m[id].state == ST_IDLE)
			x->m[id].state = ST_UNVERIFIED;
		else if (mine && off == m->size)
			x->m[id].state = ST_BUSY; /* done: nobody takes it over now */
		if (!mine)
			pthread_cond_broadcast(&x->vcv);
		pthread_mutex_unlock(&x->mu);
		if (!mine)
			return 1;
		if (off == m->size) {
			reg_digest d;
			reg_hasher_final(h, &d);
			__atomic_add_fetch(&x->bytes_hashed, m->size, __ATOMIC_RELAXED);
			settle(x, id, strcmp(REG_DIGEST_HEX(&d), m->hex) == 0);
			return 0;
		}
		size_t want = m->size - off < IDLE_CHUNK ? (size_t)(m->size - off) : IDLE_CHUNK;
		if (raw_read(x, m, off, buf, want, &e) < 0) {
			pthread_mutex_lock(&x->mu);
			if (x->m[id].state == ST_IDLE)
				x->m[id].state = ST_UNVERIFIED;
			pthread_cond_broadcast(&x->vcv);
			pthread_mutex_unlock(&x->mu);
			return -1;
		}
		reg_hasher_update(h, buf, want);
		off += want;
	}
}

/* An idle-time hasher. At SCHED_IDLE (CPU) and the idle I/O class it runs
 * only when nothing else wants a CPU (push: while the registry fsyncs an
 * upload, between requests). Nobody waits for it: a thread that needs a
 * member it holds takes it over. */
static void *idle_worker(void *arg)
{
	reg_bidx *x = arg;
	struct sched_param sp = {0};
	(void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	(void)syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0 /* this thread */,
		      3 << 13 /* IOPRIO_CLASS_IDLE */);
	reg_hasher *h = NULL;
	char *buf = malloc(IDLE_CHUNK);
	cm_error e;
	if (buf && reg_hasher_new(&h, &e) == 0) {
		pthread_mutex_lock(&x->mu);
		while (!x->stopping && !x->idle_stop && x->idle_next < x->idle_n) {
			uint32_t id = x->idle_ids[x->idle_next++];
			if (x->m[id].state != ST_UNVERIFIED)
				continue;
			x->m[id].state = ST_IDLE;
			pthread_mutex_unlock(&x->mu);
			int rc = idle_hash(x, id, buf, h);
			pthread_mutex_lock(&x->mu);
			if (rc < 0)
				break; /* a read error leaves the member to the others */
			if (rc == 0)
				x->idle_done++;
		}
		pthread_mutex_unlock(&x->mu);
	}
	reg_hasher_free(h);
	free(buf);
	return NULL;
}

int reg_bidx_idle_start(reg_bidx *x, const uint32_t *ids, size_t n, unsigned threads, cm_error *err)
{
	if (!n || !threads)
		return 0;
	x->idle_ids = malloc(n * sizeof(uint32_t));
	if (!x->idle_ids)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	memcpy(x->idle_ids, ids, n * sizeof(uint32_t));
	x->idle_n = n;
	x->idle_next = 0;
	x->idle_stop = 0;
	unsigned most = sizeof(x->idle_th) / sizeof(x->idle_th[0]);
	for (unsigned i = 0; i < threads && i < most; i++)
		if (pthread_create(&x->idle_th[x->idle_threads], NULL, idle_worker, x) == 0)
			x->idle_threads++;
	return 0;
}

uint64_t reg_bidx_idle_stop(reg_bidx *x)
{
	pthread_mutex_lock(&x->mu);
	x->idle_stop = 1;
	pthread_mutex_unlock(&x->mu);
	for (unsigned i = 0; i < x->idle_threads; i++)
		pthread_join(x->idle_th[i], NULL);
	x->idle_threads = 0;
	free(x->idle_ids);
	x->idle_ids = NULL;
	x->idle_n = 0;
	return x->idle_done;
}

void reg_bidx_stop(reg_bidx *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	int was = x->stopping;
	__atomic_store_n(&x->stopping, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&x->cv);
	pthread_cond_broadcast(&x->vcv);
	pthread_mutex_unlock(&x->mu);
	if (was)
		return;
	reg_bidx_idle_stop(x);
	for (unsigned i = 0; i < x->nthreads; i++)
		pthread_join(x->threads[i], NULL);
	x->nthreads = 0;
	pthread_mutex_lock(&x->mu);
	waiter *w = x->waiters;
	x->waiters = NULL;
	while (x->q_head) {
		job *j = x->q_head;
		x->q_head = j->next;
		if (x->m[j->id].state == ST_QUEUED)
			x->m[j->id].state = ST_UNVERIFIED;
		free(j);
	}
	x->q_tail = NULL;
	pthread_mutex_unlock(&x->mu);
	wake_all(w);
}

/* ---- lifecycle -------------------------------------------------------- */

void reg_bidx_free(reg_bidx *x)
{
	if (!x)
		return;
	reg_bidx_stop(x);
	for (size_t i = 0; i < x->nm; i++) {
		free(x->m[i].path);
		free(x->m[i].mt_owned);
		free(x->m[i].kids);
	}
	free(x->m);
	free(x->pub);
	for (size_t i = 0; i < x->nr; i++) {
		repo *r = &x->r[i];
		free(r->name);
		for (size_t j = 0; j < r->ntags; j++)
			free(r->tags[j].name);
		free(r->tags);
		free(r->tag_names);
		free(r->objs);
	}
	free(x->r);
	free(x->repo_names);
	free(x->threads);
	if (x->db)
		sqlite3_close(x->db);
	reg_bundle_vol_free(x->vol);
	cm_buf_free(&x->key);
	pthread_mutex_destroy(&x->mu);
	pthread_mutex_destroy(&x->dbmu);
	pthread_cond_destroy(&x->cv);
	pthread_cond_destroy(&x->vcv);
	free(x);
}

int reg_bidx_serve_fd(const reg_bidx *x)
{
	return x->vol->p[0].fd;
}

size_t reg_bidx_parts(const reg_bidx *x)
{
	return x->vol->n;
}

size_t reg_bidx_serve_segs(const reg_bidx *x, uint64_t off, uint64_t len, reg_bidx_seg *out,
			   size_t max)
{
	return reg_bundle_vol_segs(x->vol, off, len, out, max);
}

int reg_bidx_serve_read(const reg_bidx *x, uint64_t off, void *buf, size_t n, cm_error *err)
{
	return reg_bundle_vol_read(x->vol, buf, n, off, err);
}

void reg_bidx_serve_unmap(reg_bidx_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].base)
			munmap(m->v[i].base, m->v[i].maplen);
	m->n = 0;
}

int reg_bidx_serve_map(reg_bidx_map *out, const reg_bidx *x, uint64_t off, uint64_t len,
		       cm_error *err)
{
	memset(out, 0, sizeof(*out));
	reg_bundle_seg seg[REG_BIDX_MAP_MAX];
	size_t n = reg_bundle_vol_segs(x->vol, off, len, seg, REG_BIDX_MAP_MAX);
	if (n == 0 || n > REG_BIDX_MAP_MAX)
		return cm_error_set(err, CM_EINVAL, "%s: [%llu, +%llu) is %s", x->path,
				    (unsigned long long)off, (unsigned long long)len,
				    n ? "in too many parts to map" : "outside the bundle");
	long pg = sysconf(_SC_PAGESIZE);
	uint64_t page = pg > 0 ? (uint64_t)pg : 4096;
	for (size_t i = 0; i < n; i++) {
		uint64_t start = seg[i].off - seg[i].off % page;
		uint64_t ml = seg[i].off - start + seg[i].len;
		if (ml > SIZE_MAX || start > (uint64_t)INT64_MAX) {
			reg_bidx_serve_unmap(out);
			return cm_error_set(err, CM_EINVAL, "%s: a piece too large to map",
					    x->path);
		}
		void *b = mmap(NULL, (size_t)ml, PROT_READ, MAP_SHARED, seg[i].fd, (off_t)start);
		if (b == MAP_FAILED) {
			int e = errno;
			reg_bidx_serve_unmap(out);
			return cm_error_set(err, CM_EIO, "%s: mmap: %s", x->path, strerror(e));
		}
		out->v[i].base = b;
		out->v[i].maplen = (size_t)ml;
		out->v[i].p = (const char *)b + (seg[i].off - start);
		out->v[i].len = (size_t)seg[i].len;
		out->n = i + 1;
	}
	return 0;
}

static int open_inner(reg_bidx *x, reg_bidx_info *info, const reg_bidx_opts *o, cm_error *err)
{
	if (!o->check_sig && !o->insecure_skip_signature)
		return cm_error_set(err, CM_EUSAGE,
				    "a public key is required (--pubkey KEY.pub); "
				    "--insecure-skip-signature checks digests only");
	snprintf(x->path, sizeof(x->path), "%s", o->bundle);
	/* One descriptor per file for everything: what is verified is what is
	 * read. A volume set is its parts, each opened once. */
	int rc = reg_bundle_vol_open(&x->vol, o->bundle, err);
	if (rc < 0)
		return rc;
	info->file_size = x->vol->size;
	info->parts = x->vol->n;
	reg_bundle_stats st;
	char sums[REG_DIGEST_HEXLEN + 1];

	/* 1. the member table: a saved index (keyed by the signed SHA256SUMS),
	 * or a scan */
	char ipath[4096];
	int have_path = 0;
	if (o->use_index) {
		if ((rc = run_scan(x, o, 0, 1, &st, err)) < 0)
			return rc;
		memcpy(sums, REG_DIGEST_HEX(&st.sums), sizeof(sums));
		cm_error perr;
		/* a set in parts is one index, however it was named */
		const char *name = x->vol->prefix ? x->vol->prefix : o->bundle;
		have_path = index_path(ipath, sizeof(ipath), o, name, sums, &perr) == 0 &&
			    index_key(&x->key, x->vol, sums, &perr) == 0;
		if (!have_path)
			say(x, "the index will not be saved: %s", perr.msg);
	}
	if (have_path && !o->bundle_json && db_load(x, ipath, x->key.data)) {
		info->index_reused = 1;
		qsort(x->m, x->nm, sizeof(member), member_cmp);
	} else {
		rc = run_scan(x, o, o->mode == REG_BIDX_FULL, 0, &st, err);
		x->bytes_hashed += st.bytes_hashed;
		if (rc == CM_EVERIFY && x->vol->n > 1)
			reg_bundle_vol_explain(x->vol, 1, err);
		if (rc < 0)
			return rc;
		if (o->use_index && memcmp(sums, REG_DIGEST_HEX(&st.sums), sizeof(sums)) != 0)
			return cm_error_set(
			    err, CM_EVERIFY,
			    "bundle %s changed during start-up (SHA256SUMS differs)", o->bundle);
		memcpy(sums, REG_DIGEST_HEX(&st.sums), sizeof(sums));
		qsort(x->m, x->nm, sizeof(member), member_cmp);
	}
	memcpy(info->sums_sha256, sums, sizeof(sums));
	for (size_t i = 0; i < x->nm; i++)
		if (x->m[i].off > x->vol->size || x->m[i].size > x->vol->size - x->m[i].off)
			return cm_error_set(err, CM_EVERIFY, "member %s lies outside the file",
					    x->m[i].path);
	if (!reg_bundle_vol_same(x->vol))
		return cm_error_set(err, CM_EVERIFY, "bundle %s was modified during start-up",
				    o->bundle);

	/* 2. full mode: anything a lazy run left unhashed is hashed now */
	if (o->mode == REG_BIDX_FULL) {
		char *buf = malloc(HASH_CHUNK);
		reg_hasher *h = NULL;
		rc = 0;
		if (!buf || (rc = reg_hasher_new(&h, err)) < 0) {
			free(buf);
			return rc < 0 ? rc : cm_error_set(err, CM_ENOMEM, "out of memory");
		}
		for (size_t i = 0; i < x->nm && rc >= 0; i++) {
			if (x->m[i].state == ST_OK)
				continue;
			rc = hash_member(x, (uint32_t)i, buf, h, err);
			if (rc == 0) {
				rc = bad_member(x, &x->m[i], err);
			} else if (rc == 1) {
				x->m[i].state = ST_OK;
				x->m[i].dirty = 1;
			}
		}
		free(buf);
		reg_hasher_free(h);
		if (rc < 0)
			return cm_error_wrap(err, "bundle %s", o->bundle);
	}

	/* 3. repositories, tags and what each may serve */
	if (o->repos && (rc = build_repos(x, err)) < 0)
		return cm_error_wrap(err, "bundle %s", o->bundle);

	/* 4. save the index, or record what this start-up hashed */
	cm_error perr;
	if (have_path && !info->index_reused &&
	    db_save(x, ipath, x->key.data, o->bundle, &perr) < 0) {
		say(x, "the index could not be saved: %s", perr.msg);
		have_path = 0;
	}
	if (have_path) {
		if (sqlite3_open_v2(ipath, &x->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW,
				    NULL) != SQLITE_OK) {
			say(x, "the index %s cannot be updated: %s", ipath, sqlite3_errmsg(x->db));
			sqlite3_close(x->db);
			x->db = NULL;
		} else {
			sqlite3_busy_timeout(x->db, 5000);
			if (info->index_reused) {
				db_exec(x->db, "BEGIN;", NULL);
				for (size_t i = 0; i < x->nm; i++)
					if (x->m[i].dirty)
						db_mark(x, x->m[i].path);
				db_exec(x->db, "COMMIT;", NULL);
			}
			snprintf(info->index_path, sizeof(info->index_path), "%s", ipath);
		}
	}
	return 0;
}

int reg_bidx_open(reg_bidx **out, reg_bidx_info *info, const reg_bidx_opts *o, cm_error *err)
{
	reg_bidx_info dummy;
	if (!info)
		info = &dummy;
	memset(info, 0, sizeof(*info));
	*out = NULL;
	reg_bidx *x = calloc(1, sizeof(*x));
	if (!x)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	x->mode = o->mode;
	x->notify = o->notify;
	x->notify_ctx = o->notify_ctx;
	pthread_mutex_init(&x->mu, NULL);
	pthread_mutex_init(&x->dbmu, NULL);
	pthread_cond_init(&x->cv, NULL);
	pthread_cond_init(&x->vcv, NULL);
	int rc = open_inner(x, info, o, err);
	if (rc < 0) {
		reg_bidx_free(x);
		return rc;
	}
	x->pub = calloc(x->nm ? x->nm : 1, sizeof(reg_bidx_member));
	if (!x->pub) {
		reg_bidx_free(x);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < x->nm; i++)
		x->pub[i] = (reg_bidx_member){x->m[i].path, x->m[i].hex, x->m[i].off, x->m[i].size};
	if (o->workers && (rc = reg_bidx_workers(x, o->workers, err)) < 0) {
		reg_bidx_free(x);
		return rc;
	}
	info->members = x->nm;
	for (size_t i = 0; i < x->nm; i++)
		if (strncmp(x->m[i].path, "blobs/", 6) == 0) {
			info->blobs++;
			info->verified_blobs += x->m[i].state == ST_OK;
		}
	info->repos = x->nr;
	for (size_t i = 0; i < x->nr; i++)
		info->tags += x->r[i].ntags;
	info->bytes_hashed = x->bytes_hashed;
	*out = x;
	return 0;
}

/* ---- lookups ---------------------------------------------------------- */

static const repo *find_repo(const reg_bidx *x, const char *name)
{
	return find(name, x->r, x->nr, sizeof(repo), name_key_cmp);
}

static int repo_has(const repo *r, uint32_t id)
{
	return find(&id, r->objs, r->nobjs, sizeof(uint32_t), u32_cmp) != NULL;
}

static void fill(const reg_bidx *x, uint32_t id, reg_bidx_obj *out)
{
	const member *m = &x->m[id];
	out->id = id;
	out->offset = m->off;
	out->size = m->size;
	reg_digest_from_hex(&out->digest, m->hex, NULL);
	out->media_type = m->walked ? m->mt : NULL;
}

int reg_bidx_has_repo(const reg_bidx *x, const char *name)
{
	return find_repo(x, name) != NULL;
}

int reg_bidx_manifest(const reg_bidx *x, const char *name, const char *ref, reg_bidx_obj *out)
{
	if (strncmp(ref, "sha256:", 7) == 0) { /* an object of the repository's, and a manifest */
		reg_digest d;
		return reg_digest_parse(&d, ref, NULL) == 0 && reg_bidx_blob(x, name, &d, out) &&
		       x->m[out->id].walked;
	}
	const repo *r = find_repo(x, name);
	if (!r)
		return 0;
	const tag *t = find(ref, r->tags, r->ntags, sizeof(tag), tag_key_cmp);
	if (t)
		fill(x, t->id, out);
	return t != NULL;
}

int reg_bidx_blob(const reg_bidx *x, const char *name, const reg_digest *d, reg_bidx_obj *out)
{
	const repo *r = find_repo(x, name);
	if (!r)
		return 0;
	uint32_t id = reg_bidx_find_blob(x, d);
	if (id == NO_MEMBER || !repo_has(r, id))
		return 0;
	fill(x, id, out);
	return 1;
}

size_t reg_bidx_tags(const reg_bidx *x, const char *name, const char *const **out)
{
	const repo *r = find_repo(x, name);
	*out = r ? (const char *const *)r->tag_names : NULL;
	return r ? r->ntags : 0;
}

size_t reg_bidx_repos(const reg_bidx *x, const char *const **out)
{
	*out = (const char *const *)x->repo_names;
	return x->nr;
}

/* ---- members and verified reads -------------------------------------- */

size_t reg_bidx_count(const reg_bidx *x)
{
	return x->nm;
}

const reg_bidx_member *reg_bidx_members(const reg_bidx *x)
{
	return x->pub;
}

void reg_bidx_member_at(const reg_bidx *x, uint32_t id, reg_bidx_member *out)
{
	*out = x->pub[id];
}

static void set_state(reg_bidx *x, uint32_t id, int ok)
{
	pthread_mutex_lock(&x->mu);
	notice_change(x);
	pthread_mutex_unlock(&x->mu);
	settle(x, id, ok);
}

int reg_bidx_read(cm_buf *out, reg_bidx *x, uint32_t id, size_t cap, cm_error *err)
{
	if (id >= x->nm)
		return cm_error_set(err, CM_ENOTFOUND, "no such member");
	cm_buf b = CM_BUF_INIT;
	int rc = read_member(x, id, &b, cap, err);
	if (rc < 0)
		return rc;
	set_state(x, id, rc == 1);
	if (rc == 0) {
		cm_buf_free(&b);
		return bad_member(x, &x->m[id], err);
	}
	cm_buf_free(out);
	*out = b;
	out->limit = out->cap;
	return 0;
}

int reg_bidx_is_verified(reg_bidx *x, uint32_t id)
{
	pthread_mutex_lock(&x->mu);
	notice_change(x);
	int ok = id < x->nm && x->m[id].state == ST_OK;
	pthread_mutex_unlock(&x->mu);
	return ok;
}

int reg_bidx_cursor_open(reg_bidx_cursor *c, reg_bidx *x, uint32_t id, int flags, cm_error *err)
{
	memset(c, 0, sizeof(*c));
	if (id >= x->nm)
		return cm_error_set(err, CM_ENOTFOUND, "no such member");
	c->x = x;
	c->id = id;
	c->size = x->m[id].size;
	if ((flags & REG_BIDX_TRUST_VERIFIED) && reg_bidx_is_verified(x, id))
		return 0;
	return reg_hasher_new(&c->h, err);
}

void reg_bidx_cursor_close(reg_bidx_cursor *c)
{
	reg_hasher_free(c->h);
	c->h = NULL;
}

/* pread of the bundle at a member's offset: the one raw read, private. */
static int raw_read(reg_bidx *x, const member *m, uint64_t at, void *buf, size_t n, cm_error *err)
{
	int rc = reg_bundle_vol_read(x->vol, buf, n, m->off + at, err);
	if (rc < 0)
		return cm_error_wrap(err, "reading %s from bundle %s", m->path, x->path);
	return 0;
}

/* The hashing cursor reached the end: compare the whole, once, and settle
 * the member. */
static int cursor_check(reg_bidx_cursor *c, cm_error *err)
{
	if (!c->h || c->checked)
		return 0;
	c->checked = 1;
	const member *m = &c->x->m[c->id];
	reg_digest d;
	reg_hasher_final(c->h, &d);
	int ok = strcmp(REG_DIGEST_HEX(&d), m->hex) == 0;
	set_state(c->x, c->id, ok);
	return ok ? 0 : bad_member(c->x, m, err);
}

int reg_bidx_cursor_read(reg_bidx_cursor *c, void *buf, size_t n, size_t *got, cm_error *err)
{
	*got = 0;
	if (c->pos >= c->size)
		return cursor_check(c, err); /* an empty member is checked here */
	if (n > c->size - c->pos)
		n = (size_t)(c->size - c->pos);
	int rc = raw_read(c->x, &c->x->m[c->id], c->pos, buf, n, err);
	if (rc < 0)
		return rc;
	if (c->h) {
		reg_hasher_update(c->h, buf, n);
		/* the last bytes go out only when the whole matched */
		if (c->pos + n == c->size && (rc = cursor_check(c, err)) < 0)
			return rc;
	}
	c->pos += n;
	*got = n;
	return 0;
}

int reg_bidx_cursor_seek(reg_bidx_cursor *c, uint64_t off, cm_error *err)
{
	if (off > c->size)
		return cm_error_set(err, CM_EINVAL, "seek past the end of %s", c->x->m[c->id].path);
	if (!c->h) {
		c->pos = off;
		return 0;
	}
	/* hash [0, off) again: what was sent before may have changed since */
	reg_hasher_reset(c->h);
	c->pos = 0;
	c->checked = 0;
	char *buf = malloc(HASH_CHUNK);
	if (!buf)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	const member *m = &c->x->m[c->id];
	int rc = reg_bundle_vol_hash(c->h, c->x->vol, m->off, off, buf, HASH_CHUNK, NULL, err);
	free(buf);
	if (rc < 0)
		return cm_error_wrap(err, "reading %s from bundle %s", m->path, c->x->path);
	c->pos = off;
	if (off == c->size) /* seeking to the end completes the member */
		rc = cursor_check(c, err);
	return rc;
}

int reg_bidx_copy(int fd, reg_bidx *x, uint32_t id, cm_error *err)
{
	reg_bidx_cursor c;
	int rc = reg_bidx_cursor_open(&c, x, id, 0, err);
	char *buf = rc == 0 ? malloc(HASH_CHUNK) : NULL;
	if (rc == 0 && !buf)
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	for (;;) {
		size_t got = 0;
		if (rc < 0 || (rc = reg_bidx_cursor_read(&c, buf, HASH_CHUNK, &got, err)) < 0 ||
		    got == 0)
			break;
		rc = cm_write_all(fd, buf, got, err);
	}
	free(buf);
	reg_bidx_cursor_close(&c);
	return rc;
}

int reg_bidx_verify(reg_bidx *x, uint32_t id, cm_error *err)
{
	if (id >= x->nm)
		return cm_error_set(err, CM_ENOTFOUND, "no such member");
	pthread_mutex_lock(&x->mu);
	notice_change(x);
	while (x->m[id].state == ST_BUSY && !x->stopping)
		pthread_cond_wait(&x->vcv, &x->mu);
	int st = x->m[id].state;
	if (st == ST_UNVERIFIED || st == ST_QUEUED || st == ST_IDLE)
		x->m[id].state = ST_BUSY; /* ours to hash (an idle hasher's taken over) */
	pthread_mutex_unlock(&x->mu);
	if (st == ST_OK)
		return 0;
	if (st == ST_BAD)
		return bad_member(x, &x->m[id], err);
	if (st == ST_BUSY)
		return cm_error_set(err, CM_EFAIL, "stopped");
	return hash_held_now(x, id, err);
}
