/* The copy pipeline (registry/reg_reader.c, reg_dest.c, reg_copy.c) with a
 * hostile source: a blob that ends short, one with extra bytes, one with
 * other bytes under its digest. Each is refused with CM_EVERIFY naming the
 * blob and what was wrong, and each destination is left clean: the store
 * commits nothing, the containerd content store keeps no file and its
 * ingest never gets the whole blob, the archive stream is cut without an
 * end marker. A good source goes through every destination (the control).
 * The bundle source (registry/reg_source_bundle.c) copies an image out of
 * a bundle, and refuses a tampered member through the reader's cursor. */
#include <arpa/inet.h>
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_buf.h"
#include "cm_file.h"
#include "ins_archive.h"
#include "ins_place.h"
#include "reg_bidx.h"
#include "reg_catalog.h"
#include "reg_copy.h"
#include "reg_dest_registry.h"
#include "reg_source.h"
#include "tu.h"

#define BLOB_N ((size_t)100 * 1024 + 17) /* more than the archive's 10 KiB blocks */

enum { GOOD, SHORT, EXTRA, WRONG };
static const char *const kind_name[] = {"good", "short", "extra", "wrong"};

static char g_dir[] = "/tmp/ferry-copy-test.XXXXXX";
static unsigned char *g_blob; /* the layer the manifest names */
static reg_desc g_layer, g_config;
static const char g_config_bytes[] = "{\"architecture\":\"amd64\",\"os\":\"linux\"}";
static cm_buf g_manifest = CM_BUF_INIT;

/* ---- a hostile source: the layer's stream is cut, padded or altered ---- */

typedef struct mem_stream {
	const unsigned char *p;
	size_t n, pos;
	unsigned char *own; /* altered copy */
} mem_stream;

/* at most 7000 bytes a read: destinations must cope with short reads */
static int mem_read(void *ctx, void *buf, size_t n, size_t *got, cm_error *err)
{
	(void)err;
	mem_stream *s = ctx;
	size_t k = s->n - s->pos;
	if (k > n)
		k = n;
	if (k > 7000)
		k = 7000;
	memcpy(buf, s->p + s->pos, k);
	s->pos += k;
	*got = k;
	return 0;
}

static int mem_rewind(void *ctx, cm_error *err)
{
	(void)err;
	((mem_stream *)ctx)->pos = 0;
	return 0;
}

static void mem_close(void *ctx)
{
	mem_stream *s = ctx;
	free(s->own);
	free(s);
}

static const reg_stream_ops mem_ops = {mem_read, mem_rewind, mem_close};

typedef struct hostile {
	reg_source base;
	int kind;
} hostile;

static int h_get_manifest(reg_source *s, const char *digest, cm_buf *out, char *mt, size_t mt_n,
			  cm_error *err)
{
	(void)s;
	if (digest)
		return cm_error_set(err, CM_ENOTFOUND, "no manifest %s", digest);
	snprintf(mt, mt_n, "%s", REG_MT_OCI_MANIFEST);
	return cm_buf_append(out, g_manifest.data, g_manifest.len, err);
}

static int h_open_blob(reg_source *s, const reg_desc *d, reg_reader **out, cm_error *err)
{
	int kind = ((hostile *)s)->kind;
	mem_stream *m = calloc(1, sizeof(*m));
	if (!m)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	if (reg_digest_equal(&d->digest, &g_config.digest)) {
		m->p = (const unsigned char *)g_config_bytes;
		m->n = strlen(g_config_bytes);
	} else {
		m->own = malloc(BLOB_N + 5);
		if (!m->own) {
			free(m);
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		}
		memcpy(m->own, g_blob, BLOB_N);
		memset(m->own + BLOB_N, 'x', 5);
		m->p = m->own;
		m->n = kind == SHORT ? BLOB_N - 3 : kind == EXTRA ? BLOB_N + 5 : BLOB_N;
		if (kind == WRONG)
			m->own[BLOB_N / 2] ^= 1;
	}
	return reg_reader_new(out, d, &mem_ops, m, 0, err);
}

static void h_free(reg_source *s)
{
	free(s);
}

static const struct reg_source_ops hostile_ops = {"hostile", h_get_manifest, h_open_blob, h_free};

static reg_source *hostile_open(int kind)
{
	hostile *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->base.ops = &hostile_ops;
	h->kind = kind;
	snprintf(h->base.where, sizeof(h->base.where), "hostile:%s", kind_name[kind]);
	return &h->base;
}

/* The message names the blob and says what was wrong. */
static void check_refusal(int rc, const cm_error *err, int kind)
{
	static const char *const why[] = {"", "ended after", "more than", "hash to"};
	TU_CHECK_MSG(rc == CM_EVERIFY, "%s: rc %d (%s)", kind_name[kind], rc, err->msg);
	TU_CHECK_MSG(strstr(err->msg, g_layer.digest.s) != NULL, "%s: %s", kind_name[kind],
		     err->msg);
	TU_CHECK_MSG(strstr(err->msg, why[kind]) != NULL, "%s: %s", kind_name[kind], err->msg);
	TU_CHECK_STR(err->digest, g_layer.digest.s);
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* ---- the reader alone ---- */

static void test_reader(void)
{
	for (int kind = GOOD; kind <= WRONG; kind++) {
		reg_source *src = hostile_open(kind);
		reg_reader *r = NULL;
		cm_error err = {0};
		TU_CHECK(src && src->ops->open_blob(src, &g_layer, &r, &err) == 0);
		if (!r) {
			reg_source_free(src);
			continue;
		}
		unsigned char *buf = malloc(BLOB_N + 16);
		size_t total = 0, got = 0;
		int rc;
		while ((rc = reg_reader_read(r, buf + total, 4096, &got, &err)) == 0 && got)
			total += got;
		if (kind == GOOD) {
			TU_CHECK_MSG(rc == 0, "good: %s", err.msg);
			TU_CHECK(total == BLOB_N && memcmp(buf, g_blob, BLOB_N) == 0);
			/* after a rewind the blob comes again, checked again */
			TU_CHECK(reg_reader_rewind(r, &err) == 0);
			total = 0;
			while ((rc = reg_reader_read(r, buf + total, 65536, &got, &err)) == 0 &&
			       got)
				total += got;
			TU_CHECK(rc == 0 && total == BLOB_N);
		} else {
			check_refusal(rc, &err, kind);
			/* the last bytes were never handed out */
			TU_CHECK_MSG(total < BLOB_N, "%s: %zu bytes handed out", kind_name[kind],
				     total);
		}
		free(buf);
		reg_reader_free(r);
		reg_source_free(src);
	}
}

/* ---- the store ---- */

static void test_store_dest(void)
{
	for (int kind = GOOD; kind <= WRONG; kind++) {
		char root[512];
		snprintf(root, sizeof(root), "%s/store-%s", g_dir, kind_name[kind]);
		reg_store *st = NULL;
		cm_error err = {0};
		TU_CHECK(reg_store_open(&st, root, &err) == 0);
		reg_source *src = hostile_open(kind);
		if (!st || !src) {
			reg_store_free(st);
			reg_source_free(src);
			continue;
		}
		reg_image img;
		int rc = reg_copy_image(&img, st, src, "docker.io/library/hostile:1", NULL, &err);
		uint64_t have = 0;
		char tagged[128] = "";
		int tag = reg_catalog_lookup_tag(tagged, sizeof(tagged), reg_store_db(st),
						 "docker.io/library/hostile", "1");
		char tmp[600];
		snprintf(tmp, sizeof(tmp), "%s/tmp", root);
		if (kind == GOOD) {
			TU_CHECK_MSG(rc == 0, "good: %s", err.msg);
			TU_CHECK(reg_store_has(st, &g_layer.digest, &have) && have == BLOB_N);
			TU_CHECK(img.fetched == BLOB_N + g_config.size);
			TU_CHECK(tag == 1);
		} else {
			check_refusal(rc, &err, kind);
			TU_CHECK(strstr(err.msg, "hostile:") != NULL); /* names the source */
			TU_CHECK(!reg_store_has(st, &g_layer.digest, &have));
			TU_CHECK(tag == 0); /* the image was not named */
		}
		TU_CHECK_MSG(count_dir(tmp) <= 0, "%s: %d files left in %s", kind_name[kind],
			     count_dir(tmp), tmp);
		reg_source_free(src);
		reg_store_free(st);
	}
}

/* ---- the containerd content store ---- */

typedef struct fake_ctr {
	pthread_mutex_t mu; /* the destination runs two ingests at once */
	int runs, empty_runs;
	size_t streamed; /* bytes a streaming ingest of the layer received */
	int take_placed; /* does the "daemon" take a placed blob? */
	char dir[512];
} fake_ctr;

/* A stand-in for `ctr content ingest`: a placed blob is taken when
 * take_placed; a streamed one is read into a file, and the feeder's error
 * wins, as with ins_proc_run. */
static int fake_run(void *ctx, const char *hex, uint64_t size, const char *ref, ins_proc_io *io,
		    const char *say, cm_error *err)
{
	(void)size;
	(void)ref;
	(void)say;
	fake_ctr *f = ctx;
	pthread_mutex_lock(&f->mu);
	f->runs++;
	f->empty_runs += io->in_path != NULL;
	pthread_mutex_unlock(&f->mu);
	if (io->in_path)
		return f->take_placed ? 0 : cm_error_set(err, CM_EFAIL, "size mismatch");
	char path[600];
	snprintf(path, sizeof(path), "%s/streamed-%.64s", f->dir, hex);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return cm_error_sys(err, 5, "open %s", path);
	int rc = io->feed(io->feed_ctx, fd, err);
	struct stat st;
	if (strcmp(hex, REG_DIGEST_HEX(&g_layer.digest)) == 0)
		f->streamed = fstat(fd, &st) == 0 ? (size_t)st.st_size : 0;
	close(fd);
	unlink(path);
	return rc;
}

static void ctr_case(int kind, int placing, int take_placed)
{
	char root[512];
	snprintf(root, sizeof(root), "%s/content-%s-%d%d", g_dir, kind_name[kind], placing,
		 take_placed);
	cm_error err = {0};
	TU_CHECK(cm_mkdirs(root, &err) == 0);
	ins_place pl;
	memset(&pl, 0, sizeof(pl));
	if (placing)
		TU_CHECK(ins_place_open(&pl, root, &err) == 0);
	fake_ctr f;
	memset(&f, 0, sizeof(f));
	pthread_mutex_init(&f.mu, NULL);
	f.take_placed = take_placed;
	snprintf(f.dir, sizeof(f.dir), "%s", g_dir);
	ins_ingest ing = {fake_run, NULL, &f, 0};
	reg_dest *dst = NULL;
	reg_source *src = hostile_open(kind);
	TU_CHECK(ins_ctr_dest_open(&dst, &pl, &ing, 2, &err) == 0);
	if (!dst || !src) {
		reg_dest_free(dst);
		reg_source_free(src);
		ins_place_close(&pl);
		pthread_mutex_destroy(&f.mu);
		return;
	}
	reg_desc v[2] = {g_layer, g_config};
	reg_copy_stats cs = {0, 0};
	int rc = reg_copy_blobs(&cs, dst, src, v, 2, &err);
	char blobs[600], final[700];
	snprintf(blobs, sizeof(blobs), "%s/blobs/sha256", root);
	TU_CHECK(snprintf(final, sizeof(final), "%s/%s", blobs, REG_DIGEST_HEX(&g_layer.digest)) <
		 (int)sizeof(final));
	struct stat st;
	int placed_file = stat(final, &st) == 0;
	if (kind == GOOD) {
		TU_CHECK_MSG(rc == 0, "good: %s", err.msg);
		TU_CHECK(cs.blobs == 2 && cs.bytes == BLOB_N + g_config.size);
		TU_CHECK(ins_ctr_dest_placed(dst) == (placing && take_placed ? 2u : 0u));
		TU_CHECK(placed_file == (placing && take_placed));
		if (!placing || !take_placed) /* streamed: the ingest got every byte */
			TU_CHECK(f.streamed == BLOB_N);
	} else {
		check_refusal(rc, &err, kind);
		TU_CHECK(!placed_file);
		TU_CHECK_MSG(count_dir(blobs) <= (placing ? 1 : 0), "%s: %d files in %s",
			     kind_name[kind], count_dir(blobs), blobs); /* the config, if any */
		if (placing) /* refused while placing: ctr was never asked about it */
			TU_CHECK(f.empty_runs <= 1);
		TU_CHECK_MSG(f.streamed < BLOB_N, "%s: the ingest got %zu bytes", kind_name[kind],
			     f.streamed);
	}
	if (placing) {
		TU_CHECK_MSG(count_dir(pl.tmp) == 1, "%s: temp files left in %s", kind_name[kind],
			     pl.tmp); /* only the empty file */
	}
	reg_dest_free(dst);
	reg_source_free(src);
	ins_place_close(&pl);
	pthread_mutex_destroy(&f.mu);
}

static void test_content_store_dest(void)
{
	for (int kind = GOOD; kind <= WRONG; kind++) {
		ctr_case(kind, 1, 1); /* placed and recorded */
		ctr_case(kind, 0, 0); /* streamed through ctr */
	}
	/* the daemon does not take what was placed: removed, then streamed */
	ctr_case(GOOD, 1, 0);
}

/* ---- the archive stream ---- */

/* Read the archive back: 1 when it ends cleanly and holds the layer whole. */
static int archive_whole(const char *path)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	int ok = 0, saw = 0;
	if (archive_read_open_filename(a, path, 10240) == ARCHIVE_OK) {
		struct archive_entry *e;
		int r;
		char want[96];
		TU_CHECK(snprintf(want, sizeof(want), "blobs/sha256/%s",
				  REG_DIGEST_HEX(&g_layer.digest)) < (int)sizeof(want));
		while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
			char buf[8192];
			la_ssize_t k;
			size_t total = 0;
			while ((k = archive_read_data(a, buf, sizeof(buf))) > 0)
				total += (size_t)k;
			if (k < 0)
				break;
			if (strcmp(archive_entry_pathname(e), want) == 0)
				saw = total == BLOB_N;
		}
		ok = r == ARCHIVE_EOF && saw;
	}
	archive_read_free(a);
	return ok;
}

static void test_archive_dest(void)
{
	for (int kind = GOOD; kind <= WRONG; kind++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/archive-%s.tar", g_dir, kind_name[kind]);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		TU_CHECK(fd >= 0);
		cm_error err = {0};
		reg_dest *dst = NULL;
		reg_source *src = hostile_open(kind);
		TU_CHECK(ins_archive_dest_open(&dst, fd, "{}", "[]", &err) == 0);
		reg_desc v[2] = {g_config, g_layer};
		int rc = dst && src ? reg_copy_blobs(NULL, dst, src, v, 2, &err) : -1;
		if (rc == 0)
			rc = reg_dest_finish(dst, &err);
		reg_dest_free(dst);
		reg_source_free(src);
		close(fd);
		if (kind == GOOD) {
			TU_CHECK_MSG(rc == 0, "good: %s", err.msg);
			TU_CHECK(archive_whole(path) == 1);
		} else {
			check_refusal(rc, &err, kind);
			TU_CHECK_MSG(archive_whole(path) == 0, "%s: the archive reads as whole",
				     kind_name[kind]);
		}
	}
}

/* ---- a registry: a small fake on 127.0.0.1 that commits a blob only when
 * a PUT's body arrived whole and hashes to its ?digest= ---- */

#define FAKE_MAX 16
static struct {
	pthread_mutex_t mu;
	char blobs[FAKE_MAX][600]; /* "repo digest" committed */
	size_t n_blobs;
	char manifests[FAKE_MAX][700]; /* "repo ref" put */
	char manifest_digest[FAKE_MAX][80];
	size_t n_manifests;
	unsigned layer_puts_whole; /* PUT bodies of the layer's size that arrived */
	unsigned mounts;
} g_fake = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0, {{0}}, {{0}}, 0, 0, 0};

static int fake_has(char (*v)[600], size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], key) == 0)
			return 1;
	return 0;
}

typedef struct fake_req {
	cm_buf body;
} fake_req;

static enum MHD_Result fake_answer(struct MHD_Connection *c, unsigned status, const char *loc,
				   const char *digest)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (loc)
		MHD_add_response_header(r, "Location", loc);
	if (digest)
		MHD_add_response_header(r, "Docker-Content-Digest", digest);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result fake_handler(void *cls, struct MHD_Connection *c, const char *url,
				    const char *method, const char *version, const char *data,
				    size_t *data_size, void **state)
{
	(void)cls;
	(void)version;
	fake_req *q = *state;
	cm_error err = {0};
	if (!q) {
		*state = q = calloc(1, sizeof(*q));
		return q ? MHD_YES : MHD_NO;
	}
	if (*data_size) {
		if (cm_buf_append(&q->body, data, *data_size, &err) < 0)
			return MHD_NO;
		*data_size = 0;
		return MHD_YES;
	}
	char repo[300] = "", key[700];
	const char *p = strncmp(url, "/v2/", 4) == 0 ? url + 4 : "";
	const char *b = strstr(p, "/blobs/"), *m = strstr(p, "/manifests/");
	const char *cut = b ? b : m;
	if (cut && (size_t)(cut - p) < sizeof(repo))
		snprintf(repo, sizeof(repo), "%.*s", (int)(cut - p), p);
	pthread_mutex_lock(&g_fake.mu);
	enum MHD_Result ret;
	if (strcmp(url, "/v2/") == 0) {
		ret = fake_answer(c, 200, NULL, NULL); /* the engine's ping */
	} else if (strcmp(method, "HEAD") == 0 && b) {
		snprintf(key, sizeof(key), "%s %s", repo, b + 7);
		ret = fake_answer(c, fake_has(g_fake.blobs, g_fake.n_blobs, key) ? 200 : 404, NULL,
				  NULL);
	} else if (strcmp(method, "POST") == 0 && b && strcmp(b, "/blobs/uploads/") == 0) {
		const char *mount = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "mount");
		const char *from = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from");
		char k2[700];
		snprintf(k2, sizeof(k2), "%s %s", from ? from : "", mount ? mount : "");
		if (mount && from && fake_has(g_fake.blobs, g_fake.n_blobs, k2) &&
		    g_fake.n_blobs < FAKE_MAX) {
			snprintf(g_fake.blobs[g_fake.n_blobs++], 600, "%s %s", repo, mount);
			g_fake.mounts++;
			ret = fake_answer(c, 201, NULL, mount);
		} else {
			char loc[400];
			snprintf(loc, sizeof(loc), "/upload/%s", repo);
			ret = fake_answer(c, 202, loc, NULL);
		}
	} else if (strcmp(method, "PUT") == 0 && strncmp(url, "/upload/", 8) == 0) {
		const char *want = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "digest");
		reg_digest d;
		int ok =
		    want &&
		    reg_digest_buf(&d, q->body.data ? q->body.data : "", q->body.len, &err) == 0 &&
		    strcmp(d.s, want) == 0;
		if (q->body.len == BLOB_N)
			g_fake.layer_puts_whole++;
		if (ok && g_fake.n_blobs < FAKE_MAX)
			snprintf(g_fake.blobs[g_fake.n_blobs++], 600, "%s %s", url + 8, want);
		ret = fake_answer(c, ok ? 201 : 400, NULL, ok ? want : NULL);
	} else if (m && (strcmp(method, "HEAD") == 0 || strcmp(method, "PUT") == 0)) {
		snprintf(key, sizeof(key), "%s %s", repo, m + 11);
		int have = -1;
		for (size_t i = 0; i < g_fake.n_manifests; i++)
			if (strcmp(g_fake.manifests[i], key) == 0)
				have = (int)i;
		if (strcmp(method, "HEAD") == 0) {
			ret = fake_answer(c, have >= 0 ? 200 : 404, NULL,
					  have >= 0 ? g_fake.manifest_digest[have] : NULL);
		} else {
			reg_digest d;
			reg_digest_buf(&d, q->body.data ? q->body.data : "", q->body.len, &err);
			if (have < 0 && g_fake.n_manifests < FAKE_MAX) {
				snprintf(g_fake.manifest_digest[g_fake.n_manifests], 80, "%s", d.s);
				snprintf(g_fake.manifests[g_fake.n_manifests++], 700, "%s", key);
			}
			ret = fake_answer(c, 201, NULL, d.s);
		}
	} else {
		ret = fake_answer(c, 404, NULL, NULL);
	}
	pthread_mutex_unlock(&g_fake.mu);
	return ret;
}

static void fake_done(void *cls, struct MHD_Connection *c, void **state,
		      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	fake_req *q = *state;
	if (q) {
		cm_buf_free(&q->body);
		free(q);
	}
	*state = NULL;
}

static int mount_from_a(void *ud, const reg_desc *d, char *repo, size_t n)
{
	(void)ud;
	(void)d;
	snprintf(repo, n, "a");
	return 1;
}

static void test_registry_dest(void)
{
	struct MHD_Daemon *md = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
	    fake_handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, fake_done, NULL, MHD_OPTION_SOCK_ADDR,
	    (const struct sockaddr *)&(struct sockaddr_in){.sin_family = AF_INET,
							   .sin_addr.s_addr = htonl(0x7f000001)},
	    MHD_OPTION_END);
	TU_CHECK(md != NULL);
	if (!md)
		return;
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(md, MHD_DAEMON_INFO_BIND_PORT);
	reg_endpoint ep;
	memset(&ep, 0, sizeof(ep));
	char base[64];
	snprintf(base, sizeof(base), "http://127.0.0.1:%u", (unsigned)di->port);
	snprintf(ep.prefix, sizeof(ep.prefix), "127.0.0.1:%u", (unsigned)di->port);
	snprintf(ep.endpoint, sizeof(ep.endpoint), "%s", base);
	ep.insecure = 1;
	reg_client_opts co = {.jobs = 2, .retry_budget = 1, .endpoints = &ep, .n_endpoints = 1};
	reg_client *cl = NULL;
	cm_error err = {0};
	TU_CHECK(reg_client_new(&cl, &co, &err) == 0);
	char layer_key[600];
	for (int kind = WRONG; kind >= GOOD && cl; kind--) {
		/* each kind into its own repository; the good one last, into "a" */
		char repo[32];
		snprintf(repo, sizeof(repo), "%s", kind == GOOD ? "a" : kind_name[kind]);
		reg_dest_registry_opts o = {
		    .client = cl, .ep = &ep, .base = base, .repo = repo, .jobs = 2};
		reg_dest *dst = NULL;
		reg_source *src = hostile_open(kind);
		TU_CHECK(reg_dest_registry_open(&dst, &o, &err) == 0 && src);
		if (!dst || !src) {
			reg_dest_free(dst);
			reg_source_free(src);
			continue;
		}
		reg_image img;
		cm_error_clear(&err);
		char ref[64];
		snprintf(ref, sizeof(ref), "127.0.0.1/%s:v1", repo);
		int rc = reg_copy_image_to(&img, dst, src, ref, NULL, &err);
		reg_dest_registry_stats st;
		reg_dest_registry_stats_get(&st, dst);
		snprintf(layer_key, sizeof(layer_key), "%s %s", repo, g_layer.digest.s);
		pthread_mutex_lock(&g_fake.mu);
		int have_layer = fake_has(g_fake.blobs, g_fake.n_blobs, layer_key);
		size_t n_man = g_fake.n_manifests;
		pthread_mutex_unlock(&g_fake.mu);
		if (kind == GOOD) {
			TU_CHECK_MSG(rc == 0, "good: %s", err.msg);
			TU_CHECK(have_layer);
			TU_CHECK(st.blobs_uploaded == 2 && st.manifests_put == 1);
			TU_CHECK(st.bytes_uploaded == BLOB_N + g_config.size);
			TU_CHECK(n_man == 1);
		} else {
			check_refusal(rc, &err, kind);
			TU_CHECK_MSG(!have_layer, "%s: the registry committed the layer",
				     kind_name[kind]);
			TU_CHECK(st.blobs_uploaded == 1 && st.manifests_put == 0 && n_man == 0);
		}
		reg_dest_free(dst);
		reg_source_free(src);
	}
	/* no whole body of a bad layer ever reached the registry: only the good one */
	TU_CHECK_MSG(g_fake.layer_puts_whole == 1, "%u whole layer bodies",
		     g_fake.layer_puts_whole);
	/* the second time: found by HEAD in "a", mounted into "b" from "a" */
	for (int pass = 0; pass < 2 && cl; pass++) {
		const char *repo = pass == 0 ? "a" : "b";
		reg_dest_registry_opts o = {.client = cl,
					    .ep = &ep,
					    .base = base,
					    .repo = repo,
					    .jobs = 1,
					    .mount_from = mount_from_a};
		reg_dest *dst = NULL;
		reg_source *src = hostile_open(GOOD);
		TU_CHECK(reg_dest_registry_open(&dst, &o, &err) == 0 && src);
		reg_image img;
		char ref[64];
		snprintf(ref, sizeof(ref), "127.0.0.1/%s:v1", repo);
		TU_CHECK(dst && src && reg_copy_image_to(&img, dst, src, ref, NULL, &err) == 0);
		reg_dest_registry_stats st = {0};
		if (dst)
			reg_dest_registry_stats_get(&st, dst);
		TU_CHECK(st.blobs_uploaded == 0);
		if (pass == 0)
			TU_CHECK(st.blobs_skipped == 2 && st.manifests_put == 0);
		else
			TU_CHECK(st.blobs_mounted == 2 && st.manifests_put == 1);
		reg_dest_free(dst);
		reg_source_free(src);
	}
	TU_CHECK(g_fake.mounts == 2);
	reg_client_free(cl);
	MHD_stop_daemon(md);
}

/* ---- the bundle source ---- */

/* A bundle holding the manifest, the config and the layer, whose
 * SHA256SUMS lists the good bytes; with tamper the layer member holds
 * other bytes of the same length. */
static int write_bundle(const char *path, int tamper)
{
	char names[3][96], sums[1024] = "";
	const void *data[3] = {g_manifest.data, g_config_bytes, g_blob};
	size_t lens[3] = {g_manifest.len, strlen(g_config_bytes), BLOB_N};
	cm_error e = {0};
	int order[3] = {0, 1, 2}; /* SHA256SUMS lists paths in order */
	for (int i = 0; i < 3; i++) {
		reg_digest d;
		reg_digest_buf(&d, data[i], lens[i], &e);
		snprintf(names[i], sizeof(names[i]), "blobs/sha256/%.64s", REG_DIGEST_HEX(&d));
	}
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			if (strcmp(names[order[j]], names[order[i]]) < 0) {
				int t = order[i];
				order[i] = order[j];
				order[j] = t;
			}
	for (int i = 0; i < 3; i++) {
		size_t l = strlen(sums);
		snprintf(sums + l, sizeof(sums) - l, "SHA256 (%s) = %.64s\n", names[order[i]],
			 names[order[i]] + 13);
	}
	reg_digest dj; /* bundle.json sorts after blobs/ */
	reg_digest_buf(&dj, "{}", 2, &e);
	size_t l = strlen(sums);
	snprintf(sums + l, sizeof(sums) - l, "SHA256 (bundle.json) = %.64s\n", REG_DIGEST_HEX(&dj));
	unsigned char *bad = malloc(BLOB_N);
	if (!bad)
		return -1;
	memcpy(bad, g_blob, BLOB_N);
	bad[7] ^= 0x20;
	if (tamper)
		data[2] = bad;
	const char *mnames[6] = {"SHA256SUMS",	  "SHA256SUMS.sig", "bundle.json",
				 names[order[0]], names[order[1]],  names[order[2]]};
	const void *mdata[6] = {sums,		"unsigned",	"{}",
				data[order[0]], data[order[1]], data[order[2]]};
	size_t mlens[6] = {strlen(sums), 8, 2, lens[order[0]], lens[order[1]], lens[order[2]]};
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_none(a);
	int rc = archive_write_open_filename(a, path) == ARCHIVE_OK ? 0 : -1;
	for (int i = 0; rc == 0 && i < 6; i++) {
		struct archive_entry *en = archive_entry_new();
		archive_entry_set_pathname(en, mnames[i]);
		archive_entry_set_size(en, (la_int64_t)mlens[i]);
		archive_entry_set_filetype(en, AE_IFREG);
		archive_entry_set_perm(en, 0644);
		if (archive_write_header(a, en) != ARCHIVE_OK ||
		    archive_write_data(a, mdata[i], mlens[i]) != (la_ssize_t)mlens[i])
			rc = -1;
		archive_entry_free(en);
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		rc = -1;
	archive_write_free(a);
	free(bad);
	return rc;
}

/* bundle -> store: the image arrives whole from a good bundle; from a
 * tampered one (opened lazily, so only the copy hashes the layer) it is
 * refused and the store keeps no layer; a manifest that gives the layer
 * another size than the member's is refused before a byte is read. */
static void test_bundle_source(void)
{
	for (int tamper = 0; tamper <= 2; tamper++) {
		char path[512], root[512];
		snprintf(path, sizeof(path), "%s/bundle-%d.tar", g_dir, tamper);
		snprintf(root, sizeof(root), "%s/from-bundle-%d", g_dir, tamper);
		TU_CHECK(write_bundle(path, tamper == 1) == 0);
		reg_bidx_opts o;
		memset(&o, 0, sizeof(o));
		o.bundle = path;
		o.mode = REG_BIDX_LAZY;
		o.insecure_skip_signature = 1;
		reg_bidx *x = NULL;
		reg_store *st = NULL;
		reg_source *src = NULL;
		cm_error err = {0};
		TU_CHECK_MSG(reg_bidx_open(&x, NULL, &o, &err) == 0, "%s", err.msg);
		TU_CHECK(reg_store_open(&st, root, &err) == 0);
		reg_desc root_d = {0};
		reg_digest_buf(&root_d.digest, g_manifest.data, g_manifest.len, &err);
		root_d.size = g_manifest.len;
		snprintf(root_d.media_type, sizeof(root_d.media_type), "%s", REG_MT_OCI_MANIFEST);
		if (!x || !st || reg_source_bundle_open(&src, x, &root_d, 0, &err) < 0) {
			TU_CHECK(0);
			reg_store_free(st);
			reg_bidx_free(x);
			continue;
		}
		uint64_t have = 0;
		if (tamper == 2) { /* the member is not the size a manifest gives */
			reg_desc d = g_layer;
			d.size++;
			reg_reader *r = NULL;
			TU_CHECK(src->ops->open_blob(src, &d, &r, &err) == CM_EVERIFY);
			TU_CHECK(strstr(err.msg, "is not the") != NULL && r == NULL);
		}
		if (tamper == 1) { /* the cursor withholds the last bytes */
			reg_reader *r = NULL;
			unsigned char *buf = malloc(BLOB_N);
			size_t total = 0, got = 0;
			int rrc = -1;
			TU_CHECK(buf && src->ops->open_blob(src, &g_layer, &r, &err) == 0);
			while (r && buf &&
			       (rrc = reg_reader_read(r, buf + total, 8192, &got, &err)) == 0 &&
			       got)
				total += got;
			TU_CHECK(rrc == CM_EVERIFY && total < BLOB_N);
			reg_reader_free(r);
			free(buf);
		}
		reg_image img;
		int rc =
		    reg_copy_image(&img, st, src, "docker.io/library/from-bundle:1", NULL, &err);
		if (tamper == 1) {
			TU_CHECK_MSG(rc == CM_EVERIFY, "rc %d: %s", rc, err.msg);
			TU_CHECK(strstr(err.msg, g_layer.digest.s) != NULL);
			TU_CHECK(!reg_store_has(st, &g_layer.digest, &have));
		} else {
			TU_CHECK_MSG(rc == 0, "%s", err.msg);
			TU_CHECK(reg_store_has(st, &g_layer.digest, &have) && have == BLOB_N);
			TU_CHECK(reg_digest_equal(&img.root.digest, &root_d.digest));
		}
		reg_source_free(src);
		reg_store_free(st);
		reg_bidx_free(x);
	}
}

static int setup(void)
{
	cm_error err = {0};
	if (!mkdtemp(g_dir) || !(g_blob = malloc(BLOB_N)))
		return -1;
	for (size_t i = 0; i < BLOB_N; i++)
		g_blob[i] = (unsigned char)(i * 7 + i / 251);
	if (reg_digest_buf(&g_layer.digest, g_blob, BLOB_N, &err) < 0 ||
	    reg_digest_buf(&g_config.digest, g_config_bytes, strlen(g_config_bytes), &err) < 0)
		return -1;
	g_layer.size = BLOB_N;
	g_config.size = strlen(g_config_bytes);
	snprintf(g_layer.media_type, sizeof(g_layer.media_type), "%s",
		 "application/vnd.oci.image.layer.v1.tar");
	snprintf(g_config.media_type, sizeof(g_config.media_type), "%s", REG_MT_OCI_CONFIG);
	char m[1024];
	snprintf(m, sizeof(m),
		 "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
		 "\"digest\":\"%s\",\"size\":%llu},\"layers\":[{\"mediaType\":\"%s\",\"digest\":"
		 "\"%s\",\"size\":%llu}]}",
		 REG_MT_OCI_MANIFEST, REG_MT_OCI_CONFIG, g_config.digest.s,
		 (unsigned long long)g_config.size, g_layer.media_type, g_layer.digest.s,
		 (unsigned long long)g_layer.size);
	return cm_buf_append(&g_manifest, m, strlen(m), &err);
}

int main(void)
{
	if (setup() < 0) {
		printf("not ok - setup\n");
		return 1;
	}
	TU_RUN(test_reader);
	TU_RUN(test_store_dest);
	TU_RUN(test_content_store_dest);
	TU_RUN(test_archive_dest);
	TU_RUN(test_registry_dest);
	TU_RUN(test_bundle_source);
	cm_rmtree(g_dir);
	cm_buf_free(&g_manifest);
	free(g_blob);
	TU_EXIT();
}
