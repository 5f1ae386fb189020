/* The blob store, its catalog, and the copy pipeline from a hand-written
 * OCI layout (registry/reg_store.c, reg_catalog.c, reg_copy.c,
 * reg_source_oci.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cm_buf.h"
#include "cm_dio.h"
#include "cm_error.h"
#include "cm_file.h"
#include "reg_copy.h"
#include "reg_digest.h"
#include "reg_manifest.h"
#include "reg_source.h"
#include "reg_store.h"
#include "tu.h"

#define HEX_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static char g_dir[] = "/tmp/ferry-store-test.XXXXXX";
static int g_seq;

static void fresh(char *out, size_t n, const char *stem)
{
	snprintf(out, n, "%s/%s%d", g_dir, stem, ++g_seq);
}

/* Number of entries in a folder (not counting . and ..), or -1. */
static int count_dir(const char *root, const char *sub)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", root, sub);
	DIR *d = opendir(p);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static reg_store *open_store(const char *stem)
{
	char root[4096];
	cm_error err = {0};
	reg_store *s = NULL;
	fresh(root, sizeof(root), stem);
	if (reg_store_open(&s, root, &err) < 0) {
		printf("#   reg_store_open %s: %s\n", root, err.msg);
		return NULL;
	}
	return s;
}

/* SELECT count(*) FROM table [WHERE where] in root/catalog.db, or -1. */
static long long count_rows(const char *root, const char *table, const char *where)
{
	char p[4096], sql[512];
	snprintf(p, sizeof(p), "%s/catalog.db", root);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s%s%s", table, where ? " WHERE " : "",
		 where ? where : "");
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long n = -1;
	if (sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		printf("#   sql %s: %s\n", sql, sqlite3_errmsg(db));
		goto out;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void test_put_has_read(void)
{
	cm_error err = {0};
	reg_store *s = open_store("put");
	TU_CHECK(s != NULL);
	if (!s)
		return;
	const char *root = reg_store_root(s);
	reg_digest d, abc;
	uint64_t size = 0;
	TU_CHECK(reg_digest_from_hex(&abc, HEX_ABC, &err) == 0);
	TU_CHECK(reg_store_has(s, &abc, &size) == 0);
	TU_CHECK(reg_store_put(&d, s, "abc", 3, &err) == 0);
	TU_CHECK_STR(d.s, "sha256:" HEX_ABC);
	TU_CHECK(reg_store_has(s, &d, &size) == 1);
	TU_CHECK(size == 3);
	char p[4096];
	TU_CHECK(reg_store_blob_path(p, sizeof(p), s, &d) == 0);
	char want[4096];
	snprintf(want, sizeof(want), "%s/blobs/sha256/" HEX_ABC, root);
	TU_CHECK_STR(p, want);
	/* putting it again is a no-op */
	TU_CHECK(reg_store_put(&d, s, "abc", 3, &err) == 0);
	TU_CHECK(count_dir(root, "blobs/sha256") == 1);
	TU_CHECK(count_dir(root, "tmp") == 0);
	cm_buf b = CM_BUF_INIT;
	TU_CHECK(reg_store_read(&b, s, &d, 1024, &err) == 0);
	TU_CHECK(b.len == 3 && memcmp(b.data, "abc", 3) == 0);
	cm_buf_free(&b);
	/* the read limit is enforced */
	cm_buf b2 = CM_BUF_INIT;
	cm_error e2 = {0};
	TU_CHECK(reg_store_read(&b2, s, &d, 2, &e2) < 0);
	cm_buf_free(&b2);
	/* a blob that is not there */
	reg_digest none;
	cm_buf b3 = CM_BUF_INIT;
	cm_error e3 = {0};
	TU_CHECK(reg_digest_buf(&none, "nothing", 7, &err) == 0);
	TU_CHECK(reg_store_has(s, &none, NULL) == 0);
	TU_CHECK(reg_store_read(&b3, s, &none, 1024, &e3) < 0);
	cm_buf_free(&b3);
	/* an empty blob is a valid blob */
	TU_CHECK(reg_store_put(&d, s, "", 0, &err) == 0);
	TU_CHECK(reg_store_has(s, &d, &size) == 1 && size == 0);
	/* a corrupted blob on disk is refused on read */
	TU_CHECK(reg_digest_from_hex(&d, HEX_ABC, &err) == 0);
	TU_CHECK(reg_store_blob_path(p, sizeof(p), s, &d) == 0);
	chmod(p, 0644);
	TU_CHECK(cm_file_write_atomic(p, "abd", 3, 0644, &err) == 0);
	cm_buf b4 = CM_BUF_INIT;
	cm_error e4 = {0};
	TU_CHECK(reg_store_read(&b4, s, &d, 1024, &e4) == CM_EVERIFY);
	TU_CHECK(strstr(e4.msg, HEX_ABC) != NULL);
	cm_buf_free(&b4);
	/* the store reopens, with its catalog */
	char r2[4096];
	snprintf(r2, sizeof(r2), "%s", root);
	reg_store_free(s);
	reg_store *s2 = NULL;
	TU_CHECK(reg_store_open(&s2, r2, &err) == 0);
	TU_CHECK(s2 && reg_store_db(s2) != NULL);
	reg_store_free(s2);
	reg_store_free(NULL);
}

static void test_writer_stream(void)
{
	cm_error err = {0};
	reg_store *s = open_store("stream");
	TU_CHECK(s != NULL);
	if (!s)
		return;
	reg_digest want, got;
	TU_CHECK(reg_digest_from_hex(&want, HEX_ABC, &err) == 0);
	reg_blob_writer *w = NULL;
	TU_CHECK(reg_blob_writer_new(&w, s, &want, &err) == 0);
	if (w) {
		TU_CHECK(reg_blob_writer_write(w, "a", 1, &err) == 0);
		TU_CHECK(reg_blob_writer_write(w, "", 0, &err) == 0);
		TU_CHECK(reg_blob_writer_write(w, "bc", 2, &err) == 0);
		TU_CHECK(reg_blob_writer_size(w) == 3);
		/* while in flight the bytes live in tmp/ only */
		TU_CHECK(count_dir(reg_store_root(s), "tmp") == 1);
		TU_CHECK(count_dir(reg_store_root(s), "blobs/sha256") == 0);
		uint64_t size = 0;
		TU_CHECK(reg_blob_writer_commit(&got, &size, w, &err) == 0);
		TU_CHECK_STR(got.s, want.s);
		TU_CHECK(size == 3);
	}
	TU_CHECK(count_dir(reg_store_root(s), "tmp") == 0);
	TU_CHECK(count_dir(reg_store_root(s), "blobs/sha256") == 1);
	/* a blob is not writable once stored */
	char p[4096];
	struct stat st;
	reg_store_blob_path(p, sizeof(p), s, &want);
	TU_CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0644);
	/* no expected digest: the writer names the blob */
	TU_CHECK(reg_blob_writer_new(&w, s, NULL, &err) == 0);
	if (w) {
		TU_CHECK(reg_blob_writer_write(w, "hello", 5, &err) == 0);
		TU_CHECK(reg_blob_writer_commit(&got, NULL, w, &err) == 0);
		reg_digest h;
		reg_digest_buf(&h, "hello", 5, &err);
		TU_CHECK_STR(got.s, h.s);
		TU_CHECK(reg_store_has(s, &h, NULL) == 1);
	}
	/* abort leaves nothing */
	TU_CHECK(reg_blob_writer_new(&w, s, NULL, &err) == 0);
	if (w) {
		TU_CHECK(reg_blob_writer_write(w, "dropped", 7, &err) == 0);
		reg_blob_writer_abort(w);
	}
	reg_blob_writer_abort(NULL);
	TU_CHECK(count_dir(reg_store_root(s), "tmp") == 0);
	TU_CHECK(count_dir(reg_store_root(s), "blobs/sha256") == 2);
	reg_store_free(s);
}

static void test_writer_wrong_digest(void)
{
	cm_error err = {0};
	reg_store *s = open_store("wrong");
	TU_CHECK(s != NULL);
	if (!s)
		return;
	reg_digest want;
	TU_CHECK(reg_digest_from_hex(&want, HEX_ABC, &err) == 0);
	reg_blob_writer *w = NULL;
	TU_CHECK(reg_blob_writer_new(&w, s, &want, &err) == 0);
	if (w) {
		TU_CHECK(reg_blob_writer_write(w, "abd", 3, &err) == 0);
		cm_error e2 = {0};
		reg_digest got;
		memset(&got, 0, sizeof(got));
		int rc = reg_blob_writer_commit(&got, NULL, w, &e2);
		TU_CHECK(rc == CM_EVERIFY);
		TU_CHECK(e2.code == CM_EVERIFY);
		TU_CHECK(strstr(e2.msg, HEX_ABC) != NULL);
		TU_CHECK(got.s[0] == '\0');
	}
	/* nothing left behind, under the expected name or any other */
	TU_CHECK(count_dir(reg_store_root(s), "blobs/sha256") == 0);
	TU_CHECK(count_dir(reg_store_root(s), "tmp") == 0);
	TU_CHECK(reg_store_has(s, &want, NULL) == 0);
	/* an empty write against a non-empty digest fails the same way */
	TU_CHECK(reg_blob_writer_new(&w, s, &want, &err) == 0);
	if (w) {
		cm_error e3 = {0};
		TU_CHECK(reg_blob_writer_commit(NULL, NULL, w, &e3) == CM_EVERIFY);
	}
	TU_CHECK(count_dir(reg_store_root(s), "blobs/sha256") == 0);
	TU_CHECK(count_dir(reg_store_root(s), "tmp") == 0);
	reg_store_free(s);
}

#define CONC_WRITERS 4
#define CONC_SIZE ((size_t)3 << 20)

static void fill(unsigned char *p, size_t n)
{
	unsigned x = 7;
	for (size_t i = 0; i < n; i++) {
		x = x * 1664525u + 1013904223u;
		p[i] = (unsigned char)(x >> 24);
	}
}

/* Child: wait on the barrier, then write the blob in chunks. */
static int conc_child(const char *root, int barrier_fd, const unsigned char *data,
		      const reg_digest *want)
{
	cm_error err = {0};
	reg_store *s = NULL;
	if (reg_store_open(&s, root, &err) < 0)
		return 10;
	char c;
	if (read(barrier_fd, &c, 1) != 0) /* EOF when the parent closes the pipe */
		return 11;
	reg_blob_writer *w = NULL;
	if (reg_blob_writer_new(&w, s, want, &err) < 0)
		return 12;
	for (size_t off = 0; off < CONC_SIZE; off += 65536) {
		size_t k = CONC_SIZE - off < 65536 ? CONC_SIZE - off : 65536;
		if (reg_blob_writer_write(w, data + off, k, &err) < 0) {
			reg_blob_writer_abort(w);
			return 13;
		}
		if ((off / 65536) % 8 == 0)
			usleep(100);
	}
	reg_digest got;
	if (reg_blob_writer_commit(&got, NULL, w, &err) < 0) {
		fprintf(stderr, "child commit: %s\n", err.msg);
		return 14;
	}
	reg_store_free(s);
	return reg_digest_equal(&got, want) ? 0 : 15;
}

static void test_concurrent_writers(void)
{
	cm_error err = {0};
	reg_store *s = open_store("conc");
	TU_CHECK(s != NULL);
	if (!s)
		return;
	char root[4096];
	snprintf(root, sizeof(root), "%s", reg_store_root(s));
	unsigned char *data = malloc(CONC_SIZE);
	TU_CHECK(data != NULL);
	if (!data) {
		reg_store_free(s);
		return;
	}
	fill(data, CONC_SIZE);
	reg_digest want;
	TU_CHECK(reg_digest_buf(&want, data, CONC_SIZE, &err) == 0);
	int pfd[2];
	TU_CHECK(pipe(pfd) == 0);
	fflush(stdout);
	pid_t pids[CONC_WRITERS];
	for (int i = 0; i < CONC_WRITERS; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			close(pfd[1]);
			_exit(conc_child(root, pfd[0], data, &want));
		}
		TU_CHECK(pids[i] > 0);
	}
	close(pfd[0]);
	usleep(20000);
	close(pfd[1]); /* release every child at once */
	for (int i = 0; i < CONC_WRITERS; i++) {
		int status = 0;
		if (pids[i] <= 0)
			continue;
		TU_CHECK(waitpid(pids[i], &status, 0) == pids[i]);
		TU_CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			     "writer %d: status 0x%x", i, status);
	}
	uint64_t size = 0;
	TU_CHECK(reg_store_has(s, &want, &size) == 1);
	TU_CHECK(size == CONC_SIZE);
	cm_buf b = CM_BUF_INIT;
	TU_CHECK(reg_store_read(&b, s, &want, CONC_SIZE, &err) == 0);
	TU_CHECK(b.len == CONC_SIZE && memcmp(b.data, data, CONC_SIZE) == 0);
	cm_buf_free(&b);
	TU_CHECK(count_dir(root, "blobs/sha256") == 1);
	TU_CHECK(count_dir(root, "tmp") == 0);
	free(data);
	reg_store_free(s);
}

/* --- a hand-written OCI layout --- */

/* Write a blob into layout/blobs/sha256 and return its digest. */
static int lay_blob(reg_digest *out, const char *layout, const void *p, size_t n)
{
	cm_error err = {0};
	char path[4096];
	if (reg_digest_buf(out, p, n, &err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/blobs/sha256", layout);
	if (cm_mkdirs(path, &err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", layout, REG_DIGEST_HEX(out));
	return cm_file_write_atomic(path, p, n, 0644, &err);
}

/* An image manifest with one config and n_layers layers; out_size gets the
 * manifest size. tag differentiates content. */
static int lay_image(reg_digest *out, size_t *out_size, const char *layout, const char *tag,
		     int n_layers, reg_digest *layers)
{
	char cfg[256], layer[256];
	reg_digest dc;
	snprintf(cfg, sizeof(cfg),
		 "{\"architecture\":\"%s\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\"}}",
		 tag);
	if (lay_blob(&dc, layout, cfg, strlen(cfg)) < 0)
		return -1;
	cm_buf m = CM_BUF_INIT;
	cm_error err = {0};
	cm_buf_appendf(&m, &err,
		       "{\"schemaVersion\":2,\"mediaType\":\"" REG_MT_OCI_MANIFEST "\","
		       "\"config\":{\"mediaType\":\"" REG_MT_OCI_CONFIG "\",\"digest\":\"%s\","
		       "\"size\":%zu},\"layers\":[",
		       dc.s, strlen(cfg));
	for (int i = 0; i < n_layers; i++) {
		snprintf(layer, sizeof(layer), "layer %d of %s, not really a tar.gz", i, tag);
		reg_digest dl;
		if (lay_blob(&dl, layout, layer, strlen(layer)) < 0) {
			cm_buf_free(&m);
			return -1;
		}
		if (layers)
			layers[i] = dl;
		cm_buf_appendf(&m, &err,
			       "%s{\"mediaType\":\"" REG_MT_OCI_LAYER_GZIP "\",\"digest\":\"%s\","
			       "\"size\":%zu}",
			       i ? "," : "", dl.s, strlen(layer));
	}
	cm_buf_appendf(&m, &err, "]}");
	int rc = lay_blob(out, layout, m.data, m.len);
	*out_size = m.len;
	cm_buf_free(&m);
	return rc;
}

/* layout/index.json and oci-layout pointing at one descriptor tagged tag. */
static int lay_index(const char *layout, const char *mt, const reg_digest *d, size_t size,
		     const char *tag)
{
	cm_error err = {0};
	char p[4096], txt[1024];
	snprintf(p, sizeof(p), "%s/oci-layout", layout);
	const char *ol = "{\"imageLayoutVersion\":\"1.0.0\"}";
	if (cm_file_write_atomic(p, ol, strlen(ol), 0644, &err) < 0)
		return -1;
	snprintf(txt, sizeof(txt),
		 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
		 "\"size\":%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":\"%s\"}}]}",
		 mt, d->s, size, tag);
	snprintf(p, sizeof(p), "%s/index.json", layout);
	return cm_file_write_atomic(p, txt, strlen(txt), 0644, &err);
}

static void test_copy_catalog(void)
{
	cm_error err = {0};
	char layout[4096];
	fresh(layout, sizeof(layout), "layout");
	reg_digest man, layers[2];
	size_t msize = 0;
	TU_CHECK(lay_image(&man, &msize, layout, "amd64", 2, layers) == 0);
	TU_CHECK(lay_index(layout, REG_MT_OCI_MANIFEST, &man, msize, "v1") == 0);
	reg_store *s = open_store("copy");
	TU_CHECK(s != NULL);
	if (!s)
		return;
	reg_source *src = NULL;
	TU_CHECK(reg_source_oci_open(&src, layout, "v1", &err) == 0);
	if (!src) {
		printf("#   %s\n", err.msg);
		reg_store_free(s);
		return;
	}
	reg_image img;
	int rc = reg_copy_image(&img, s, src, "docker.io/library/foo:v1", NULL, &err);
	TU_CHECK(rc == 0);
	if (rc < 0)
		printf("#   %s\n", err.msg);
	TU_CHECK_STR(img.ref, "docker.io/library/foo:v1");
	TU_CHECK_STR(img.root.digest.s, man.s);
	TU_CHECK_STR(img.root.media_type, REG_MT_OCI_MANIFEST);
	TU_CHECK(img.root.size == msize);
	TU_CHECK(img.platforms[0] == '\0' && img.note[0] == '\0');
	TU_CHECK(img.fetched > 0);
	const char *root = reg_store_root(s);
	/* manifest + config + 2 layers in the store */
	TU_CHECK(count_dir(root, "blobs/sha256") == 4);
	TU_CHECK(count_dir(root, "tmp") == 0);
	TU_CHECK(reg_store_has(s, &man, NULL) == 1);
	TU_CHECK(reg_store_has(s, &layers[0], NULL) == 1);
	TU_CHECK(reg_store_has(s, &layers[1], NULL) == 1);
	TU_CHECK(count_rows(root, "manifests", NULL) == 1);
	TU_CHECK(count_rows(root, "blobs", NULL) == 3);
	TU_CHECK(count_rows(root, "image_blobs", NULL) == 3);
	TU_CHECK(count_rows(root, "repositories", "name='docker.io/library/foo'") == 1);
	char where[256];
	snprintf(where, sizeof(where), "repo='docker.io/library/foo' AND tag='v1' AND digest='%s'",
		 man.s);
	TU_CHECK(count_rows(root, "tags", where) == 1);
	snprintf(where, sizeof(where), "manifest='%s' AND blob='%s'", man.s, layers[1].s);
	TU_CHECK(count_rows(root, "image_blobs", where) == 1);
	snprintf(where, sizeof(where), "digest='%s' AND media_type='" REG_MT_OCI_LAYER_GZIP "'",
		 layers[0].s);
	TU_CHECK(count_rows(root, "blobs", where) == 1);
	/* a second copy fetches nothing and adds no rows */
	reg_image again;
	TU_CHECK(reg_copy_image(&again, s, src, "docker.io/library/foo:v1", NULL, &err) == 0);
	TU_CHECK(again.fetched == 0);
	TU_CHECK(again.total_size == img.total_size);
	TU_CHECK(count_rows(root, "blobs", NULL) == 3);
	TU_CHECK(count_rows(root, "tags", NULL) == 1);
	reg_source_free(src);

	/* a layer whose bytes do not match its digest is refused */
	char bad[4096];
	TU_CHECK(snprintf(bad, sizeof(bad), "%s/blobs/sha256/%s", layout,
			  REG_DIGEST_HEX(&layers[1])) < (int)sizeof(bad));
	TU_CHECK(cm_file_write_atomic(bad, "tampered", 8, 0644, &err) == 0);
	reg_store *s2 = open_store("copybad");
	TU_CHECK(reg_source_oci_open(&src, layout, "v1", &err) == 0);
	if (s2 && src) {
		cm_error e2 = {0};
		TU_CHECK(reg_copy_image(&again, s2, src, "docker.io/library/foo:v1", NULL, &e2) ==
			 CM_EVERIFY);
		TU_CHECK(strstr(e2.msg, REG_DIGEST_HEX(&layers[1])) != NULL);
		TU_CHECK(reg_store_has(s2, &layers[1], NULL) == 0);
		TU_CHECK(count_dir(reg_store_root(s2), "tmp") == 0);
	}
	reg_source_free(src);
	reg_store_free(s2);

	/* a root manifest whose bytes do not match index.json is refused */
	char lay2[4096];
	fresh(lay2, sizeof(lay2), "layout");
	TU_CHECK(lay_image(&man, &msize, lay2, "amd64", 1, NULL) == 0);
	TU_CHECK(lay_index(lay2, REG_MT_OCI_MANIFEST, &man, msize, "v1") == 0);
	TU_CHECK(snprintf(bad, sizeof(bad), "%s/blobs/sha256/%s", lay2, REG_DIGEST_HEX(&man)) <
		 (int)sizeof(bad));
	cm_buf mb = CM_BUF_INIT;
	TU_CHECK(cm_file_read(&mb, bad, 1 << 20, &err) == 0);
	if (mb.data) {
		mb.data[mb.len - 1] = ' '; /* the closing brace */
		TU_CHECK(cm_file_write_atomic(bad, mb.data, mb.len, 0644, &err) == 0);
	}
	cm_buf_free(&mb);
	s2 = open_store("copybadroot");
	TU_CHECK(reg_source_oci_open(&src, lay2, "v1", &err) == 0);
	if (s2 && src) {
		cm_error e3 = {0};
		TU_CHECK(reg_copy_image(&again, s2, src, "docker.io/library/foo:v1", NULL, &e3) ==
			 CM_EVERIFY);
		TU_CHECK(strstr(e3.msg, man.s) != NULL);
	}
	reg_source_free(src);
	reg_store_free(s2);
	reg_store_free(s);
}

/* An index with linux/amd64, linux/arm64 and an unknown/unknown
 * attestation manifest. */
typedef struct multi {
	char layout[4096];
	reg_digest index, amd64, arm64, att;
	size_t index_size;
	reg_digest amd64_layer, arm64_layer, att_layer;
} multi;

static int make_multi(multi *m)
{
	size_t sa, sb, sc;
	fresh(m->layout, sizeof(m->layout), "multi");
	if (lay_image(&m->amd64, &sa, m->layout, "amd64", 1, &m->amd64_layer) < 0 ||
	    lay_image(&m->arm64, &sb, m->layout, "arm64", 1, &m->arm64_layer) < 0 ||
	    lay_image(&m->att, &sc, m->layout, "attestation", 1, &m->att_layer) < 0)
		return -1;
	char idx[4096];
	snprintf(idx, sizeof(idx),
		 "{\"schemaVersion\":2,\"mediaType\":\"" REG_MT_OCI_INDEX "\",\"manifests\":["
		 "{\"mediaType\":\"" REG_MT_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
		 "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
		 "{\"mediaType\":\"" REG_MT_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
		 "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}},"
		 "{\"mediaType\":\"" REG_MT_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
		 "\"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"},"
		 "\"annotations\":{\"vnd.docker.reference.type\":\"attestation-manifest\"}}]}",
		 m->amd64.s, sa, m->arm64.s, sb, m->att.s, sc);
	m->index_size = strlen(idx);
	if (lay_blob(&m->index, m->layout, idx, m->index_size) < 0)
		return -1;
	return lay_index(m->layout, REG_MT_OCI_INDEX, &m->index, m->index_size, "multi");
}

static int copy_multi(reg_image *img, reg_store **out_s, const multi *m, const char *stem,
		      const char *const *plats, cm_error *err)
{
	*out_s = open_store(stem);
	if (!*out_s)
		return -1;
	reg_source *src = NULL;
	int rc = reg_source_oci_open(&src, m->layout, "multi", err);
	if (rc == 0)
		rc = reg_copy_image(img, *out_s, src, "registry.example/team/app:2", plats, err);
	reg_source_free(src);
	if (rc < 0)
		printf("#   %s\n", err->msg);
	return rc;
}

static void test_platform_one(void)
{
	multi m;
	TU_CHECK(make_multi(&m) == 0);
	static const char *const plats[] = {"linux/amd64", NULL};
	reg_image img;
	reg_store *s = NULL;
	cm_error err = {0};
	TU_CHECK(copy_multi(&img, &s, &m, "one", plats, &err) == 0);
	if (!s)
		return;
	/* the image becomes the amd64 manifest itself */
	TU_CHECK_STR(img.root.digest.s, m.amd64.s);
	TU_CHECK_STR(img.root.media_type, REG_MT_OCI_MANIFEST);
	TU_CHECK(img.platforms[0] == '\0');
	TU_CHECK(img.note[0] == '\0');
	TU_CHECK(reg_store_has(s, &m.amd64_layer, NULL) == 1);
	TU_CHECK(reg_store_has(s, &m.arm64, NULL) == 0);
	TU_CHECK(reg_store_has(s, &m.arm64_layer, NULL) == 0);
	TU_CHECK(reg_store_has(s, &m.att, NULL) == 0);
	TU_CHECK(reg_store_has(s, &m.att_layer, NULL) == 0);
	char where[256];
	snprintf(where, sizeof(where),
		 "repo='registry.example/team/app' AND tag='2' AND digest='%s'", m.amd64.s);
	TU_CHECK(count_rows(reg_store_root(s), "tags", where) == 1);
	/* a platform that is not there */
	static const char *const none[] = {"linux/s390x", NULL};
	reg_store *s2 = NULL;
	reg_image i2;
	cm_error e2 = {0};
	TU_CHECK(copy_multi(&i2, &s2, &m, "none", none, &e2) == CM_ENOTFOUND);
	TU_CHECK(strstr(e2.msg, "platform") != NULL);
	reg_store_free(s2);
	/* "linux/arm64" matches linux/arm64/v8 */
	static const char *const arm[] = {"linux/arm64", NULL};
	TU_CHECK(copy_multi(&i2, &s2, &m, "arm", arm, &e2) == 0);
	TU_CHECK_STR(i2.root.digest.s, m.arm64.s);
	reg_store_free(s2);
	reg_store_free(s);
}

static void test_platform_all(void)
{
	multi m;
	TU_CHECK(make_multi(&m) == 0);
	static const char *const plats[] = {"all", NULL};
	reg_image img;
	reg_store *s = NULL;
	cm_error err = {0};
	TU_CHECK(copy_multi(&img, &s, &m, "all", plats, &err) == 0);
	if (!s)
		return;
	/* the index is kept byte-exact: same digest, same size */
	TU_CHECK_STR(img.root.digest.s, m.index.s);
	TU_CHECK_STR(img.root.media_type, REG_MT_OCI_INDEX);
	TU_CHECK(img.root.size == m.index_size);
	TU_CHECK(img.note[0] == '\0');
	TU_CHECK(strstr(img.platforms, "linux/amd64") != NULL);
	TU_CHECK(strstr(img.platforms, "linux/arm64") != NULL);
	TU_CHECK(reg_store_has(s, &m.index, NULL) == 1);
	TU_CHECK(reg_store_has(s, &m.amd64_layer, NULL) == 1);
	TU_CHECK(reg_store_has(s, &m.arm64_layer, NULL) == 1);
	TU_CHECK(reg_store_has(s, &m.att_layer, NULL) == 1);
	/* index + 3 manifests */
	TU_CHECK(count_rows(reg_store_root(s), "manifests", NULL) == 4);
	char where[256];
	snprintf(where, sizeof(where), "manifest='%s'", m.index.s);
	TU_CHECK(count_rows(reg_store_root(s), "image_blobs", where) == 3);
	reg_store_free(s);
}

static void test_platform_narrowed(void)
{
	multi m;
	TU_CHECK(make_multi(&m) == 0);
	static const char *const plats[] = {"linux/amd64", "linux/arm64", NULL};
	reg_image img;
	reg_store *s = NULL;
	cm_error err = {0};
	TU_CHECK(copy_multi(&img, &s, &m, "narrow", plats, &err) == 0);
	if (!s)
		return;
	TU_CHECK(!reg_digest_equal(&img.root.digest, &m.index));
	TU_CHECK_STR(img.root.media_type, REG_MT_OCI_INDEX);
	TU_CHECK(img.note[0] != '\0');
	TU_CHECK(strstr(img.note, "narrowed") != NULL);
	TU_CHECK_STR(img.platforms, "linux/amd64,linux/arm64/v8");
	TU_CHECK(reg_store_has(s, &m.att, NULL) == 0);
	TU_CHECK(reg_store_has(s, &m.att_layer, NULL) == 0);
	/* the new index is in the store and lists exactly the two children */
	uint64_t size = 0;
	TU_CHECK(reg_store_has(s, &img.root.digest, &size) == 1);
	TU_CHECK(size == img.root.size);
	cm_buf b = CM_BUF_INIT;
	TU_CHECK(reg_store_read(&b, s, &img.root.digest, REG_MANIFEST_MAX, &err) == 0);
	reg_manifest idx;
	memset(&idx, 0, sizeof(idx));
	TU_CHECK(b.data && reg_manifest_parse(&idx, b.data, b.len, NULL, &err) == 0);
	TU_CHECK(idx.is_index);
	TU_CHECK(idx.n_items == 2);
	if (idx.n_items == 2) {
		TU_CHECK_STR(idx.items[0].digest.s, m.amd64.s);
		TU_CHECK_STR(idx.items[0].platform, "linux/amd64");
		TU_CHECK_STR(idx.items[1].digest.s, m.arm64.s);
		TU_CHECK_STR(idx.items[1].platform, "linux/arm64/v8");
	}
	reg_manifest_free(&idx);
	/* the original index's digest is recorded in the new one */
	TU_CHECK(b.data && strstr(b.data, m.index.s) != NULL);
	cm_buf_free(&b);
	char where[256];
	snprintf(where, sizeof(where), "digest='%s' AND media_type='" REG_MT_OCI_INDEX "'",
		 img.root.digest.s);
	TU_CHECK(count_rows(reg_store_root(s), "manifests", where) == 1);
	snprintf(where, sizeof(where), "repo='registry.example/team/app' AND digest='%s'",
		 img.root.digest.s);
	TU_CHECK(count_rows(reg_store_root(s), "tags", where) == 1);
	/* narrowing is deterministic */
	reg_image i2;
	reg_store *s2 = NULL;
	TU_CHECK(copy_multi(&i2, &s2, &m, "narrow", plats, &err) == 0);
	TU_CHECK_STR(i2.root.digest.s, img.root.digest.s);
	reg_store_free(s2);
	reg_store_free(s);
}

/* Read n bytes at off of path into out (malloc'd); -1 on a short file. */
static int read_at(char **out, const char *path, uint64_t off, size_t n)
{
	int fd = open(path, O_RDONLY);
	char *b = malloc(n ? n : 1);
	if (fd < 0 || !b || pread(fd, b, n, (off_t)off) != (ssize_t)n) {
		if (fd >= 0)
			close(fd);
		free(b);
		return -1;
	}
	close(fd);
	*out = b;
	return 0;
}

static void pattern(char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)((i * 2654435761u) >> 13 ^ seed);
}

/* cm_dwriter: odd-sized pieces, a skipped region that stays zero (the
 * bytes given during the skip are dropped), an unaligned end. */
static void test_dio_writer(void)
{
	char path[4096];
	fresh(path, sizeof(path), "dio");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	TU_CHECK(fd >= 0);
	if (fd < 0)
		return;
	cm_error err = {0};
	size_t a = (3u << 20) + 512, hole = 5u << 20, b = (1u << 20) + 77;
	char *d1 = malloc(a), *d2 = malloc(b), *junk = malloc(hole);
	pattern(d1, a, 1);
	pattern(d2, b, 2);
	memset(junk, 'J', hole);
	cm_dwriter *w = NULL;
	TU_CHECK(cm_dwriter_new(&w, fd, 0, 1u << 20, &err) == 0);
	for (size_t o = 0; o < a; o += 100003)
		TU_CHECK(cm_dwriter_write(w, d1 + o, a - o < 100003 ? a - o : 100003, &err) == 0);
	TU_CHECK(cm_dwriter_offset(w) == a);
	TU_CHECK(cm_dwriter_skip(w, hole, &err) == 0);
	TU_CHECK(cm_dwriter_write(w, junk, hole, &err) == 0); /* dropped */
	TU_CHECK(cm_dwriter_write(w, d2, b, &err) == 0);
	TU_CHECK(cm_dwriter_flush(w, &err) == 0);
	TU_CHECK(cm_dwriter_offset(w) == a + hole + b);
	cm_dwriter_free(w);
	TU_CHECK((fcntl(fd, F_GETFL) & O_DIRECT) == 0); /* left as plain */
	close(fd);
	struct stat sb;
	TU_CHECK(stat(path, &sb) == 0 && (uint64_t)sb.st_size == a + hole + b);
	char *got = NULL;
	TU_CHECK(read_at(&got, path, 0, a) == 0 && got && memcmp(got, d1, a) == 0);
	free(got);
	got = NULL;
	TU_CHECK(read_at(&got, path, a, hole) == 0 && got);
	for (size_t i = 0; got && i < hole; i++)
		if (got[i]) {
			TU_CHECK(got[i] == 0);
			break;
		}
	free(got);
	got = NULL;
	TU_CHECK(read_at(&got, path, a + hole, b) == 0 && got && memcmp(got, d2, b) == 0);
	free(got);
	free(d1);
	free(d2);
	free(junk);
}

/* A tee: a blob streamed into the store lands at its offset of another
 * file too; refused for a resumed writer and a misaligned offset; not
 * done when the digest is wrong. */
static void test_tee(void)
{
	cm_error err = {0};
	reg_store *s = open_store("tee");
	char path[4096];
	fresh(path, sizeof(path), "teefile");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	int fdd = open(path, O_WRONLY | O_DIRECT);
	size_t align = fdd >= 0 ? cm_dio_align(fdd) : 0;
	TU_CHECK(s && fd >= 0);
	if (!s || fd < 0) {
		reg_store_free(s);
		return;
	}
	if (!align && fdd >= 0) {
		close(fdd);
		fdd = -1;
	}
	size_t n = (3u << 20) + 777;
	char *data = malloc(n);
	pattern(data, n, 7);
	reg_digest d;
	TU_CHECK(reg_digest_buf(&d, data, n, &err) == 0);
	reg_tee t;
	memset(&t, 0, sizeof(t));
	t.fd_direct = fdd;
	t.fd_plain = fd;
	t.align = align;
	t.off = 8192;
	t.size = n;
	reg_blob_writer *w = NULL;
	TU_CHECK(reg_blob_writer_new(&w, s, &d, &err) == 0);
	reg_blob_writer_set_tee(w, &t);
	for (size_t o = 0; w && o < n; o += 65549)
		TU_CHECK(reg_blob_writer_write(w, data + o, n - o < 65549 ? n - o : 65549, &err) ==
			 0);
	TU_CHECK(reg_blob_writer_commit(NULL, NULL, w, &err) == 0);
	TU_CHECK(t.done == 1 && t.failed == 0);
	TU_CHECK(reg_tee_finish(&t, &err) == 0);
	char *got = NULL;
	TU_CHECK(read_at(&got, path, t.off, n) == 0 && got && memcmp(got, data, n) == 0);
	free(got);

	/* wrong digest: the writer fails, the tee is not done */
	reg_tee t2 = t;
	t2.off = 8192 + 4096 * 1024;
	reg_digest wrong;
	TU_CHECK(reg_digest_buf(&wrong, "x", 1, &err) == 0);
	TU_CHECK(reg_blob_writer_new(&w, s, &wrong, &err) == 0);
	reg_blob_writer_set_tee(w, &t2);
	TU_CHECK(reg_blob_writer_write(w, data, n, &err) == 0);
	TU_CHECK(reg_blob_writer_commit(NULL, NULL, w, &err) == CM_EVERIFY);
	TU_CHECK(t2.done == 0);

	/* a resumed download (bytes already on disk) takes no tee */
	pattern(data, n, 9);
	TU_CHECK(reg_digest_buf(&d, data, n, &err) == 0);
	TU_CHECK(reg_blob_writer_resume(&w, s, &d, NULL, &err) == 0);
	TU_CHECK(reg_blob_writer_write(w, data, 1000, &err) == 0);
	reg_blob_writer_keep(w);
	TU_CHECK(reg_blob_writer_resume(&w, s, &d, NULL, &err) == 0);
	TU_CHECK(reg_blob_writer_size(w) == 1000);
	reg_tee t3 = t;
	t3.done = 0;
	reg_blob_writer_set_tee(w, &t3);
	TU_CHECK(reg_blob_writer_write(w, data + 1000, n - 1000, &err) == 0);
	TU_CHECK(reg_blob_writer_commit(NULL, NULL, w, &err) == 0);
	TU_CHECK(t3.done == 0);

	/* a direct tee at an offset its alignment does not allow is refused */
	if (fdd >= 0) {
		pattern(data, n, 11);
		TU_CHECK(reg_digest_buf(&d, data, n, &err) == 0);
		reg_tee t4 = t;
		t4.off = 100;
		t4.done = 0;
		TU_CHECK(reg_blob_writer_new(&w, s, &d, &err) == 0);
		reg_blob_writer_set_tee(w, &t4);
		TU_CHECK(reg_blob_writer_write(w, data, n, &err) == 0);
		TU_CHECK(reg_blob_writer_commit(NULL, NULL, w, &err) == 0);
		TU_CHECK(t4.done == 0);
	}
	free(data);
	if (fdd >= 0)
		close(fdd);
	close(fd);
	reg_store_free(s);
}

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* A bundle-like file of size bytes with a tee for [off, off + n). */
static int pack_file(reg_tee *t, const char *path, uint64_t off, uint64_t n, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -1;
	memset(t, 0, sizeof(*t));
	t->fd_direct = -1;
	t->fd_plain = fd;
	t->off = off;
	t->size = n;
	t->path = path;
	return 0;
}

/* Packed tees: a large blob goes into the tee's file only, its .partial
 * counting the bytes and its .where naming the file. A writer killed
 * midway (a child that _exits) is resumed by the next run into another
 * file from the bytes it left; the finished file becomes a pack the store
 * reads the blob from, even once the bundle's name is gone, until the
 * pack changes. A failed run keeps what its tee held as plain data; a
 * pack that would hold little is copied out into blob files. */
static void test_pack(void)
{
	cm_error err = {0};
	reg_store *s = open_store("pack");
	TU_CHECK(s != NULL);
	if (!s)
		return;
	const char *root = reg_store_root(s);
	char b1[4096], b2[4096], b3[4096], part[4200], where[4200];
	fresh(b1, sizeof(b1), "bundle");
	fresh(b2, sizeof(b2), "bundle");
	fresh(b3, sizeof(b3), "bundle");
	size_t n = (5u << 20) + 333, mib = 1u << 20;
	char *data = malloc(n), *got = NULL;
	pattern(data, n, 21);
	reg_digest d;
	TU_CHECK(reg_digest_buf(&d, data, n, &err) == 0);
	snprintf(part, sizeof(part), "%s/tmp/%s.partial", root, REG_DIGEST_HEX(&d));
	snprintf(where, sizeof(where), "%s/tmp/%s.where", root, REG_DIGEST_HEX(&d));
	reg_tee t1, t2;
	TU_CHECK(pack_file(&t1, b1, mib, n, mib + n + 4096) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		reg_blob_writer *w;
		if (reg_blob_writer_resume(&w, s, &d, &t1, &err) < 0 || !t1.packed ||
		    reg_blob_writer_write(w, data, 3 * mib, &err) < 0)
			_exit(1);
		for (int i = 0; i < 500 && file_size(part) != (long long)(2 * mib); i++)
			usleep(10000);
		_exit(0); /* killed: no commit, no keep */
	}
	int status = -1;
	waitpid(pid, &status, 0);
	TU_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	TU_CHECK(file_size(part) == (long long)(2 * mib));
	TU_CHECK(access(where, F_OK) == 0);
	TU_CHECK(!reg_store_has(s, &d, NULL));

	/* the next run: another file, the bytes taken from the first */
	TU_CHECK(pack_file(&t2, b2, 2 * mib, n, 2 * mib + n + 4096) == 0);
	reg_blob_writer *w = NULL;
	TU_CHECK(reg_blob_writer_resume(&w, s, &d, &t2, &err) == 0);
	TU_CHECK(w && reg_blob_writer_size(w) == 2 * mib && t2.packed);
	TU_CHECK(reg_blob_writer_write(w, data + 2 * mib, n - 2 * mib, &err) == 0);
	TU_CHECK(reg_blob_writer_commit(NULL, NULL, w, &err) == 0);
	TU_CHECK(t2.done && t2.packed && reg_tee_finish(&t2, &err) == 0);
	TU_CHECK(read_at(&got, b2, t2.off, n) == 0 && got && memcmp(got, data, n) == 0);
	free(got);
	TU_CHECK(!reg_store_has(s, &d, NULL) && !reg_store_has_file(s, &d, NULL));
	unlink(b1);
	reg_catalog_pack_blob pb = {d.s, t2.off, n};
	TU_CHECK(reg_store_pack_add(s, b2, &pb, 1, &err) == 0);
	TU_CHECK(count_dir(root, "packs") == 1 && count_dir(root, "tmp") == 0);
	unlink(b2); /* the pack is a link of its own */
	uint64_t sz = 0;
	TU_CHECK(reg_store_has(s, &d, &sz) && sz == n && !reg_store_has_file(s, &d, NULL));
	cm_buf b = CM_BUF_INIT;
	b.limit = n + 1;
	TU_CHECK(reg_store_read(&b, s, &d, n, &err) == 0 && b.len == n &&
		 memcmp(b.data, data, n) == 0);
	cm_buf_free(&b);
	/* changed in place (its mtime moves): forgotten */
	struct timespec ts[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
	TU_CHECK(futimens(t2.fd_plain, ts) == 0);
	TU_CHECK(!reg_store_has(s, &d, NULL) && count_dir(root, "packs") == 0);
	close(t1.fd_plain);
	close(t2.fd_plain);

	/* a failed run keeps the bytes its tee holds, as plain data */
	pattern(data, n, 23);
	TU_CHECK(reg_digest_buf(&d, data, n, &err) == 0);
	snprintf(part, sizeof(part), "%s/tmp/%s.partial", root, REG_DIGEST_HEX(&d));
	snprintf(where, sizeof(where), "%s/tmp/%s.where", root, REG_DIGEST_HEX(&d));
	TU_CHECK(pack_file(&t1, b3, mib, n, mib + n) == 0);
	TU_CHECK(reg_blob_writer_resume(&w, s, &d, &t1, &err) == 0 && t1.packed);
	TU_CHECK(reg_blob_writer_write(w, data, 3 * mib, &err) == 0);
	reg_blob_writer_keep(w);
	TU_CHECK(access(where, F_OK) < 0 && file_size(part) == (long long)(2 * mib));
	TU_CHECK(read_at(&got, part, 0, 2 * mib) == 0 && got && memcmp(got, data, 2 * mib) == 0);
	free(got);
	TU_CHECK(reg_blob_writer_resume(&w, s, &d, NULL, &err) == 0);
	TU_CHECK(reg_blob_writer_size(w) == 2 * mib);
	TU_CHECK(reg_blob_writer_write(w, data + 2 * mib, n - 2 * mib, &err) == 0);
	TU_CHECK(reg_blob_writer_commit(NULL, NULL, w, &err) == 0);
	TU_CHECK(reg_store_has_file(s, &d, NULL));
	close(t1.fd_plain);

	/* a bundle the packed blobs fill less than half of: copied out */
	pattern(data, n, 25);
	TU_CHECK(reg_digest_buf(&d, data, n, &err) == 0);
	TU_CHECK(pack_file(&t1, b3, mib, n, mib + 3 * n) == 0);
	TU_CHECK(reg_blob_writer_resume(&w, s, &d, &t1, &err) == 0 && t1.packed);
	TU_CHECK(reg_blob_writer_write(w, data, n, &err) == 0);
	TU_CHECK(reg_blob_writer_commit(NULL, NULL, w, &err) == 0 && t1.done);
	TU_CHECK(reg_tee_finish(&t1, &err) == 0);
	pb.digest = d.s;
	pb.off = t1.off;
	pb.size = n;
	TU_CHECK(reg_store_pack_add(s, b3, &pb, 1, &err) == 0);
	TU_CHECK(reg_store_has_file(s, &d, NULL) && count_dir(root, "packs") == 0);
	TU_CHECK(count_dir(root, "tmp") == 0);
	close(t1.fd_plain);

	/* a file on another filesystem (tmpfs) cannot become a pack */
	int fd = open(b3, O_RDONLY);
	TU_CHECK(fd >= 0 && reg_store_can_pack(s, fd) == 1);
	if (fd >= 0)
		close(fd);
	char shm[] = "/dev/shm/ferry-pack-test.XXXXXX";
	struct stat a, bs;
	fd = mkstemp(shm);
	if (fd >= 0 && fstat(fd, &a) == 0 && stat(root, &bs) == 0 && a.st_dev != bs.st_dev)
		TU_CHECK(reg_store_can_pack(s, fd) == 0);
	if (fd >= 0) {
		close(fd);
		unlink(shm);
	}
	free(data);
	reg_store_free(s);
}

/* A pack whose every blob other packs also hold is dropped, but only
 * packs still as recorded count: a changed pack is forgotten first, so
 * a blob it shared does not vanish with the pack that really holds it. */
static int pack_of(const char *path, const char *a, const char *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int ok = fd >= 0 && write(fd, a, n) == (ssize_t)n && write(fd, b, n) == (ssize_t)n;
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

static void test_pack_covered(void)
{
	cm_error err = {0};
	reg_store *s = open_store("covered");
	TU_CHECK(s != NULL);
	if (!s)
		return;
	const char *root = reg_store_root(s);
	size_t n = 4096;
	char x[4096], y[4096], z[4096], w[4096], pa[4096], pb[4096], pc[4096];
	pattern(x, n, 31);
	pattern(y, n, 32);
	pattern(z, n, 33);
	pattern(w, n, 34);
	reg_digest dx, dy, dz, dw;
	TU_CHECK(reg_digest_buf(&dx, x, n, &err) == 0 && reg_digest_buf(&dy, y, n, &err) == 0 &&
		 reg_digest_buf(&dz, z, n, &err) == 0 && reg_digest_buf(&dw, w, n, &err) == 0);
	fresh(pa, sizeof(pa), "bundle");
	fresh(pb, sizeof(pb), "bundle");
	fresh(pc, sizeof(pc), "bundle");
	/* A holds x and z, B holds x and y: neither covers the other */
	TU_CHECK(pack_of(pa, x, z, n) == 0 && pack_of(pb, x, y, n) == 0 &&
		 pack_of(pc, z, w, n) == 0);
	reg_catalog_pack_blob va[2] = {{dx.s, 0, n}, {dz.s, n, n}};
	reg_catalog_pack_blob vb[2] = {{dx.s, 0, n}, {dy.s, n, n}};
	reg_catalog_pack_blob vc[2] = {{dz.s, 0, n}, {dw.s, n, n}};
	TU_CHECK(reg_store_pack_add(s, pa, va, 2, &err) == 0);
	TU_CHECK(reg_store_pack_add(s, pb, vb, 2, &err) == 0);
	TU_CHECK(count_dir(root, "packs") == 2);
	/* B changes; C then holds z: A's x is now only A's own */
	struct timespec ts[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
	TU_CHECK(utimensat(AT_FDCWD, pb, ts, 0) == 0);
	TU_CHECK(reg_store_pack_add(s, pc, vc, 2, &err) == 0);
	TU_CHECK(count_dir(root, "packs") == 2); /* A and C; B forgotten */
	uint64_t sz = 0;
	TU_CHECK(reg_store_has(s, &dx, &sz) && sz == n);
	TU_CHECK(reg_store_has(s, &dw, NULL) && !reg_store_has(s, &dy, NULL));
	/* a pack that does cover A makes A go */
	char pd[4096];
	fresh(pd, sizeof(pd), "bundle");
	TU_CHECK(pack_of(pd, x, y, n) == 0);
	TU_CHECK(reg_store_pack_add(s, pd, vb, 2, &err) == 0);
	TU_CHECK(count_dir(root, "packs") == 2); /* C and D */
	TU_CHECK(reg_store_has(s, &dx, NULL) && reg_store_has(s, &dz, NULL));
	unlink(pa);
	unlink(pb);
	unlink(pc);
	unlink(pd);
	reg_store_free(s);
}

int main(void)
{
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	TU_RUN(test_put_has_read);
	TU_RUN(test_writer_stream);
	TU_RUN(test_writer_wrong_digest);
	TU_RUN(test_concurrent_writers);
	TU_RUN(test_copy_catalog);
	TU_RUN(test_platform_one);
	TU_RUN(test_platform_all);
	TU_RUN(test_platform_narrowed);
	TU_RUN(test_dio_writer);
	TU_RUN(test_tee);
	TU_RUN(test_pack);
	TU_RUN(test_pack_covered);
	cm_rmtree(g_dir);
	TU_EXIT();
}
