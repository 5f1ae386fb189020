#include "reg_catalog.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS blobs(digest TEXT PRIMARY KEY, size INTEGER NOT NULL,"
    " media_type TEXT);"
    "CREATE TABLE IF NOT EXISTS manifests(digest TEXT PRIMARY KEY, media_type TEXT NOT NULL,"
    " size INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS repositories(name TEXT PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS tags(repo TEXT NOT NULL, tag TEXT NOT NULL,"
    " digest TEXT NOT NULL, updated INTEGER, PRIMARY KEY(repo, tag));"
    "CREATE TABLE IF NOT EXISTS image_blobs(manifest TEXT NOT NULL, blob TEXT NOT NULL,"
    " PRIMARY KEY(manifest, blob));"
    "CREATE TABLE IF NOT EXISTS bundles(path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER,"
    " size INTEGER, mtime_ns INTEGER, sums TEXT, created INTEGER);"
    "CREATE TABLE IF NOT EXISTS packs(name TEXT PRIMARY KEY, size INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS pack_blobs(digest TEXT NOT NULL, name TEXT NOT NULL,"
    " off INTEGER NOT NULL, size INTEGER NOT NULL, PRIMARY KEY(digest, name));";

int reg_catalog_open(void **out, const char *root, cm_error *err)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/catalog.db", root);
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		cm_error_set(err, CM_EIO, "opening catalog %s: %s", path,
			     db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return CM_EIO;
	}
	sqlite3_busy_timeout(db, 30000);
	char *msg = NULL;
	/* Switching a fresh database to WAL takes an exclusive lock and may
	 * answer SQLITE_BUSY without calling the busy handler when another
	 * build opens the same cache at the same moment: retry for a while. */
	int r;
	for (int tries = 0; (r = sqlite3_exec(db, schema, NULL, NULL, &msg)) != SQLITE_OK &&
			    (r == SQLITE_BUSY || r == SQLITE_LOCKED) && tries < 600;
	     tries++) {
		sqlite3_free(msg);
		msg = NULL;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (r != SQLITE_OK) {
		cm_error_set(err, CM_EIO, "initialising catalog %s: %s", path, msg ? msg : "?");
		sqlite3_free(msg);
		sqlite3_close(db);
		return CM_EIO;
	}
	*out = db;
	return 0;
}

void reg_catalog_close(void *db)
{
	if (db)
		sqlite3_close(db);
}

/* Run one statement binding text/int64 arguments described by fmt ('t'
 * text, 'i' int64). */
static int run(void *vdb, const char *sql, const char *fmt, cm_error *err, ...)
{
	sqlite3 *db = vdb;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return cm_error_set(err, CM_EIO, "catalog: %s", sqlite3_errmsg(db));
	va_list ap;
	va_start(ap, err);
	for (int i = 0; fmt[i]; i++) {
		if (fmt[i] == 't')
			sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1,
					  SQLITE_TRANSIENT);
		else
			sqlite3_bind_int64(st, i + 1, (sqlite3_int64)va_arg(ap, uint64_t));
	}
	va_end(ap);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return cm_error_set(err, CM_EIO, "catalog: %s", sqlite3_errmsg(db));
	return 0;
}

/* Prepare a query and bind its text arguments (b may be NULL); NULL when
 * the catalog cannot. */
static sqlite3_stmt *query(void *vdb, const char *sql, const char *a, const char *b)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(vdb, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
	if (b)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
	return st;
}

int reg_catalog_add_blob(void *db, const char *digest, uint64_t size, const char *media_type,
			 cm_error *err)
{
	return run(db,
		   "INSERT INTO blobs(digest,size,media_type) VALUES(?,?,?) ON CONFLICT(digest)"
		   " DO UPDATE SET media_type=coalesce(excluded.media_type, media_type)",
		   "tit", err, digest, size, media_type);
}

int reg_catalog_add_manifest(void *db, const char *digest, const char *media_type, uint64_t size,
			     cm_error *err)
{
	return run(db, "INSERT OR IGNORE INTO manifests(digest,media_type,size) VALUES(?,?,?)",
		   "tti", err, digest, media_type, size);
}

int reg_catalog_tag(void *db, const char *repo, const char *tag, const char *digest, cm_error *err)
{
	int rc = run(db, "INSERT OR IGNORE INTO repositories(name) VALUES(?)", "t", err, repo);
	if (rc == 0)
		rc = run(db,
			 "INSERT OR REPLACE INTO tags(repo,tag,digest,updated)"
			 " VALUES(?,?,?,strftime('%s','now'))",
			 "ttt", err, repo, tag, digest);
	return rc;
}

int reg_catalog_link(void *db, const char *manifest, const char *blob, cm_error *err)
{
	return run(db, "INSERT OR IGNORE INTO image_blobs(manifest,blob) VALUES(?,?)", "tt", err,
		   manifest, blob);
}

int reg_catalog_lookup_tag(char *out, size_t n, void *db, const char *repo, const char *tag)
{
	sqlite3_stmt *st = query(db, "SELECT digest FROM tags WHERE repo=? AND tag=?", repo, tag);
	int found = 0;
	if (!st)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
		found = 1;
	}
	sqlite3_finalize(st);
	return found;
}

int reg_catalog_bundle_get(reg_catalog_bundle *out, void *db, const char *path)
{
	sqlite3_stmt *st =
	    query(db, "SELECT dev, ino, size, mtime_ns, sums, created FROM bundles WHERE path=?",
		  path, NULL);
	int found = 0;
	if (!st)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		out->dev = (uint64_t)sqlite3_column_int64(st, 0);
		out->ino = (uint64_t)sqlite3_column_int64(st, 1);
		out->size = (uint64_t)sqlite3_column_int64(st, 2);
		out->mtime_ns = (uint64_t)sqlite3_column_int64(st, 3);
		const unsigned char *t = sqlite3_column_text(st, 4);
		snprintf(out->sums, sizeof(out->sums), "%s", t ? (const char *)t : "");
		out->created = sqlite3_column_int64(st, 5);
		found = strlen(out->sums) == 64;
	}
	sqlite3_finalize(st);
	return found;
}

int reg_catalog_bundle_put(void *db, const char *path, const reg_catalog_bundle *b, cm_error *err)
{
	return run(db,
		   "INSERT OR REPLACE INTO bundles(path,dev,ino,size,mtime_ns,sums,created)"
		   " VALUES(?,?,?,?,?,?,?)",
		   "tiiiiti", err, path, b->dev, b->ino, b->size, b->mtime_ns, b->sums,
		   (uint64_t)b->created);
}

int reg_catalog_pack_put(void *db, const char *name, uint64_t size, uint64_t mtime_ns,
			 const reg_catalog_pack_blob *v, size_t n, cm_error *err)
{
	int rc = run(db, "BEGIN IMMEDIATE", "", err);
	if (rc < 0)
		return rc;
	rc = run(db, "DELETE FROM pack_blobs WHERE name=?", "t", err, name);
	if (rc == 0)
		rc = run(db, "INSERT OR REPLACE INTO packs(name,size,mtime_ns) VALUES(?,?,?)",
			 "tii", err, name, size, mtime_ns);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = run(db,
			 "INSERT OR REPLACE INTO pack_blobs(digest,name,off,size) VALUES(?,?,?,?)",
			 "ttii", err, v[i].digest, name, v[i].off, v[i].size);
	if (rc == 0)
		return run(db, "COMMIT", "", err);
	cm_error e;
	run(db, "ROLLBACK", "", &e);
	return rc;
}

/* Rows of (name, off, size, pack size, pack mtime) into out, up to max. */
static int pack_locs(reg_catalog_pack_loc *out, size_t max, sqlite3_stmt *st)
{
	size_t n = 0;
	if (!st)
		return 0;
	while (n < max && sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		reg_catalog_pack_loc *l = &out[n];
		if (!t || snprintf(l->name, sizeof(l->name), "%s", (const char *)t) >=
			      (int)sizeof(l->name))
			continue;
		l->off = (uint64_t)sqlite3_column_int64(st, 1);
		l->size = (uint64_t)sqlite3_column_int64(st, 2);
		l->pack_size = (uint64_t)sqlite3_column_int64(st, 3);
		l->pack_mtime_ns = (uint64_t)sqlite3_column_int64(st, 4);
		n++;
	}
	sqlite3_finalize(st);
	return (int)n;
}

int reg_catalog_pack_find(reg_catalog_pack_loc *out, size_t max, void *db, const char *digest)
{
	return pack_locs(out, max,
			 query(db,
			       "SELECT b.name, b.off, b.size, p.size, p.mtime_ns FROM pack_blobs b"
			       " JOIN packs p ON p.name = b.name WHERE b.digest=?",
			       digest, NULL));
}

int reg_catalog_pack_list(reg_catalog_pack_loc *out, size_t max, void *db)
{
	return pack_locs(out, max,
			 query(db, "SELECT name, 0, 0, size, mtime_ns FROM packs", NULL, NULL));
}

int reg_catalog_pack_drop(void *db, const char *name, cm_error *err)
{
	int rc = run(db, "DELETE FROM pack_blobs WHERE name=?", "t", err, name);
	if (rc == 0)
		rc = run(db, "DELETE FROM packs WHERE name=?", "t", err, name);
	return rc;
}

int reg_catalog_pack_covered(char *out, size_t n, void *db, const char *keep)
{
	sqlite3_stmt *st =
	    query(db,
		  "SELECT p.name FROM packs p WHERE p.name != ?1 AND NOT EXISTS ("
		  " SELECT 1 FROM pack_blobs b WHERE b.name = p.name AND NOT EXISTS ("
		  "  SELECT 1 FROM pack_blobs c WHERE c.digest = b.digest"
		  "  AND c.name != p.name)) LIMIT 1",
		  keep, NULL);
	int found = 0;
	if (!st)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		found = t && snprintf(out, n, "%s", (const char *)t) < (int)n;
	}
	sqlite3_finalize(st);
	return found;
}
