/* Bundle rules and the scanner's member index (registry/reg_bundle.c),
 * against a bundle written by builder/bld_bundle.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bld_bundle.h"
#include "cm_buf.h"
#include "cm_error.h"
#include "cm_file.h"
#include "reg_bundle.h"
#include "reg_digest.h"
#include "reg_manifest.h"
#include "reg_store.h"
#include "reg_bidx.h"
#include "reg_tar.h"
#include "sig.h"
#include "tu.h"

#define HEX_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static char g_dir[] = "/tmp/ferry-bundle-test.XXXXXX";

/* --- names --- */

static void test_check_name(void)
{
	static const char *ok[] = {
	    "blobs/sha256/" HEX_ABC,
	    "manifests/01-a.yaml",
	    "models/bert/1.0/model.safetensors",
	    "index.json",
	    "SHA256SUMS",
	    "blobs/",
	    "a",
	    "a.b/c_d/e-f/g+h@i:j=k,l",
	    "..a",
	    "a..",
	    ".hidden",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cm_error err = {0};
		TU_CHECK_MSG(reg_bundle_check_name(ok[i], &err) == 0, "refused '%s': %s", ok[i],
			     err.msg);
	}
	/* exactly REG_BUNDLE_NAME_MAX bytes is fine, one more is not */
	char longname[REG_BUNDLE_NAME_MAX + 2];
	memset(longname, 'a', sizeof(longname));
	longname[REG_BUNDLE_NAME_MAX] = '\0';
	cm_error e0 = {0};
	TU_CHECK(reg_bundle_check_name(longname, &e0) == 0);
	longname[REG_BUNDLE_NAME_MAX] = 'a';
	longname[REG_BUNDLE_NAME_MAX + 1] = '\0';
	TU_CHECK(reg_bundle_check_name(longname, &e0) == CM_EVERIFY);

	char huge[2001];
	memset(huge, 'x', 2000);
	huge[2000] = '\0';
	const char *bad[] = {
	    "/etc/passwd",
	    "/",
	    "../evil",
	    "..",
	    ".",
	    "a/../b",
	    "a/..",
	    "a//b",
	    "//a",
	    "./x",
	    "a/./b",
	    "",
	    "manifests/a\nb",
	    "a\\b",
	    "..\\evil",
	    "a b",
	    "a\tb",
	    "a\rb",
	    "caf\xc3\xa9",
	    "a*b",
	    "a?b",
	    "$(x)",
	    "a;b",
	    "a\"b",
	    "a'b",
	    "a%2fb",
	    huge,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cm_error err = {0};
		int rc = reg_bundle_check_name(bad[i], &err);
		TU_CHECK_MSG(rc == CM_EVERIFY && err.code == CM_EVERIFY && err.msg[0],
			     "accepted or wrong code for bad name #%zu ('%.40s'): %d", i, bad[i],
			     rc);
	}
}

static void test_rank(void)
{
	static const struct {
		const char *p;
		int rank;
	} t[] = {
	    {"SHA256SUMS", 0},
	    {"SHA256SUMS.sig", 1},
	    {"bundle.json", 2},
	    {"oci-layout", 3},
	    {"index.json", 4},
	    {"blobs/sha256/" HEX_ABC, 5},
	    {"blobs", 5},
	    {"blobs/", 5},
	    {"manifests/01-a.yaml", 6},
	    {"manifests", 6},
	    {"models/m/1/w.bin", 7},
	    {"models", 7},
	    {"", -1},
	    {"README", -1},
	    {"blobsx/a", -1},
	    {"manifest/a", -1},
	    {"sha256sums", -1},
	    {"SHA256SUMS.sig.bak", -1},
	    {"index.json.orig", -1},
	    {"x/index.json", -1},
	    {"../blobs/x", -1},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int r = reg_bundle_rank(t[i].p);
		TU_CHECK_MSG(r == t[i].rank, "rank('%s') = %d, want %d", t[i].p, r, t[i].rank);
	}
}

static void test_sums_line(void)
{
	cm_error err = {0};
	cm_buf b = CM_BUF_INIT;
	TU_CHECK(reg_bundle_sums_line(&b, "blobs/sha256/" HEX_ABC, HEX_ABC, &err) == 0);
	TU_CHECK(reg_bundle_sums_line(&b, "index.json", HEX_ABC, &err) == 0);
	TU_CHECK(b.data != NULL);
	if (b.data)
		TU_CHECK_STR(b.data, "SHA256 (blobs/sha256/" HEX_ABC ") = " HEX_ABC "\n"
				     "SHA256 (index.json) = " HEX_ABC "\n");
	cm_buf_free(&b);
}

/* --- a real bundle --- */

typedef struct fixture {
	char key[600], pub[600], other_pub[600];
	char bundle[600];
	reg_digest blobs[5]; /* manifest, config, 3 layers */
	size_t n_blobs;
	size_t n_members; /* listed in SHA256SUMS */
	reg_image img;	  /* the bundle's one image */
	bld_file files[3];
} fixture;

static fixture F;

static int write_file(const char *path, const void *p, size_t n)
{
	cm_error err = {0};
	int rc = cm_file_write_atomic(path, p, n, 0644, &err);
	if (rc < 0)
		printf("#   %s\n", err.msg);
	return rc;
}

static int make_fixture(void)
{
	cm_error err = {0};
	char prefix[512], fpr[SIG_FPR_LEN + 1];
	snprintf(prefix, sizeof(prefix), "%s/key", g_dir);
	if (sig_keygen(fpr, prefix, &err) < 0)
		return -1;
	snprintf(F.key, sizeof(F.key), "%s.key", prefix);
	snprintf(F.pub, sizeof(F.pub), "%s.pub", prefix);
	snprintf(prefix, sizeof(prefix), "%s/other", g_dir);
	if (sig_keygen(fpr, prefix, &err) < 0)
		return -1;
	snprintf(F.other_pub, sizeof(F.other_pub), "%s.pub", prefix);

	char root[600];
	snprintf(root, sizeof(root), "%s/store", g_dir);
	reg_store *st = NULL;
	if (reg_store_open(&st, root, &err) < 0)
		return -1;
	/* three layers: small, 5 MiB (crosses the scanner's 4 MiB read block),
	 * and empty */
	size_t big = (5u << 20) + 123;
	char *layer = malloc(big);
	if (!layer) {
		reg_store_free(st);
		return -1;
	}
	for (size_t i = 0; i < big; i++)
		layer[i] = (char)(i * 31 + (i >> 9));
	const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\"}";
	int rc = reg_store_put(&F.blobs[1], st, cfg, strlen(cfg), &err);
	if (rc == 0)
		rc = reg_store_put(&F.blobs[2], st, "small layer", 11, &err);
	if (rc == 0)
		rc = reg_store_put(&F.blobs[3], st, layer, big, &err);
	if (rc == 0)
		rc = reg_store_put(&F.blobs[4], st, "", 0, &err);
	free(layer);
	char man[2048];
	snprintf(man, sizeof(man),
		 "{\"schemaVersion\":2,\"mediaType\":\"" REG_MT_OCI_MANIFEST "\",\"config\":{"
		 "\"mediaType\":\"" REG_MT_OCI_CONFIG "\",\"digest\":\"%s\",\"size\":%zu},"
		 "\"layers\":[{\"mediaType\":\"" REG_MT_OCI_LAYER_GZIP "\",\"digest\":\"%s\","
		 "\"size\":11},{\"mediaType\":\"" REG_MT_OCI_LAYER_GZIP "\",\"digest\":\"%s\","
		 "\"size\":%zu},{\"mediaType\":\"" REG_MT_OCI_LAYER_GZIP "\",\"digest\":\"%s\","
		 "\"size\":0}]}",
		 F.blobs[1].s, strlen(cfg), F.blobs[2].s, F.blobs[3].s, big, F.blobs[4].s);
	if (rc == 0)
		rc = reg_store_put(&F.blobs[0], st, man, strlen(man), &err);
	F.n_blobs = 5;
	if (rc < 0) {
		printf("#   %s\n", err.msg);
		reg_store_free(st);
		return -1;
	}
	reg_image img;
	memset(&img, 0, sizeof(img));
	snprintf(img.ref, sizeof(img.ref), "docker.io/library/app:1");
	snprintf(img.root.media_type, sizeof(img.root.media_type), "%s", REG_MT_OCI_MANIFEST);
	img.root.digest = F.blobs[0];
	img.root.size = strlen(man);

	/* files: one with a name long enough to need a pax header, one empty */
	bld_file files[3];
	memset(files, 0, sizeof(files));
	snprintf(files[0].member, sizeof(files[0].member), "manifests/01-a.yaml");
	snprintf(files[0].src, sizeof(files[0].src), "%s/a.yaml", g_dir);
	char longname[300];
	memset(longname, 'n', 200);
	longname[200] = '\0';
	snprintf(files[1].member, sizeof(files[1].member), "manifests/02-%s.yaml", longname);
	snprintf(files[1].src, sizeof(files[1].src), "%s/long.yaml", g_dir);
	snprintf(files[2].member, sizeof(files[2].member), "models/m/1/empty.bin");
	snprintf(files[2].src, sizeof(files[2].src), "%s/empty.bin", g_dir);
	const char *ya = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";
	if (write_file(files[0].src, ya, strlen(ya)) < 0 ||
	    write_file(files[1].src, "kind: Namespace\n", 16) < 0 ||
	    write_file(files[2].src, "", 0) < 0 || bld_files_hash(files, 3, &err) < 0) {
		reg_store_free(st);
		return -1;
	}
	sig_seckey *k = NULL;
	if (sig_seckey_load(&k, F.key, &err) < 0) {
		reg_store_free(st);
		return -1;
	}
	snprintf(F.bundle, sizeof(F.bundle), "%s/b.tar", g_dir);
	bld_bundle_in in = {
	    st,	  &img, 1,    files, 3,	  "{\"formatVersion\":1,\"name\":\"t\"}\n", k, 1700000000,
	    NULL, NULL, NULL, 0,     NULL};
	bld_bundle_out out;
	rc = bld_bundle_write(&out, F.bundle, &in, &err);
	if (rc < 0)
		printf("#   %s\n", err.msg);
	/* bundle.json, oci-layout, index.json, 5 blobs, 3 files */
	F.n_members = 3 + 5 + 3;
	F.img = img;
	memcpy(F.files, files, sizeof(files));
	if (rc == 0 && (out.members != F.n_members + 2 || out.blobs != 5)) {
		printf("#   members %llu blobs %llu\n", (unsigned long long)out.members,
		       (unsigned long long)out.blobs);
		rc = -1;
	}
	sig_seckey_free(k);
	reg_store_free(st);
	return rc;
}

typedef struct seen {
	char path[1100];
	uint64_t off, size;
	char hex[65];
	int verified;
} seen;

typedef struct scan_ctx {
	sig_pubkey *key;
	seen v[64];
	size_t n;
	int sig_calls;
} scan_ctx;

static int check_sig(void *ctx, const void *sums, size_t n, const void *sig, size_t sig_n,
		     cm_error *err)
{
	scan_ctx *c = ctx;
	c->sig_calls++;
	return sig_verify(c->key, sums, n, sig, sig_n, err);
}

static int on_member(void *ctx, const reg_bundle_member *m, cm_error *err)
{
	scan_ctx *c = ctx;
	if (c->n == sizeof(c->v) / sizeof(c->v[0]))
		return cm_error_set(err, CM_EFAIL, "too many members");
	seen *s = &c->v[c->n++];
	snprintf(s->path, sizeof(s->path), "%s", m->path);
	snprintf(s->hex, sizeof(s->hex), "%s", m->hex);
	s->off = m->data_offset;
	s->size = m->size;
	s->verified = m->verified;
	return 0;
}

/* pread(size) at data_offset must hash to the listed hex, for every member. */
static void check_offsets(const scan_ctx *c)
{
	int fd = open(F.bundle, O_RDONLY);
	TU_CHECK(fd >= 0);
	if (fd < 0)
		return;
	struct stat st;
	fstat(fd, &st);
	for (size_t i = 0; i < c->n; i++) {
		const seen *s = &c->v[i];
		TU_CHECK(s->off % 512 == 0);
		TU_CHECK(s->off + s->size <= (uint64_t)st.st_size);
		char *buf = malloc(s->size ? s->size : 1);
		if (!buf)
			continue;
		ssize_t got = pread(fd, buf, s->size, (off_t)s->off);
		reg_digest d;
		cm_error err = {0};
		reg_digest_buf(&d, buf, s->size, &err);
		TU_CHECK_MSG(got == (ssize_t)s->size && strcmp(REG_DIGEST_HEX(&d), s->hex) == 0,
			     "member %s at %llu (%llu bytes): hashes to %s, listed %s", s->path,
			     (unsigned long long)s->off, (unsigned long long)s->size,
			     REG_DIGEST_HEX(&d), s->hex);
		free(buf);
	}
	close(fd);
}

static int scan(scan_ctx *c, reg_bundle_stats *stats, int hash_data, const char *pub, cm_buf *bj,
		cm_error *err)
{
	memset(c, 0, sizeof(*c));
	if (pub && sig_pubkey_load(&c->key, pub, err) < 0)
		return -100;
	reg_bundle_opts o;
	memset(&o, 0, sizeof(o));
	o.check_sig = pub ? check_sig : NULL;
	o.ctx = c;
	o.hash_data = hash_data;
	o.on_member = on_member;
	o.bundle_json = bj;
	int fd = open(F.bundle, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "opening %s", F.bundle);
	int rc = reg_bundle_scan(stats, fd, F.bundle, &o, err);
	close(fd);
	sig_pubkey_free(c->key);
	c->key = NULL;
	return rc;
}

static void test_scan_offsets_full(void)
{
	scan_ctx c;
	reg_bundle_stats stats;
	cm_error err = {0};
	cm_buf bj = CM_BUF_INIT;
	int rc = scan(&c, &stats, 1, F.pub, &bj, &err);
	TU_CHECK(rc == 0);
	if (rc < 0)
		printf("#   %s\n", err.msg);
	TU_CHECK(c.sig_calls == 1);
	TU_CHECK(c.n == F.n_members);
	TU_CHECK(stats.members == F.n_members);
	struct stat st;
	TU_CHECK(stat(F.bundle, &st) == 0 && stats.file_size == (uint64_t)st.st_size);
	TU_CHECK(stats.bytes_hashed > (5u << 20));
	TU_CHECK(bj.data && strcmp(bj.data, "{\"formatVersion\":1,\"name\":\"t\"}\n") == 0);
	cm_buf_free(&bj);
	/* the fixed order, then blobs, manifests, models */
	if (c.n == F.n_members) {
		TU_CHECK_STR(c.v[0].path, "bundle.json");
		TU_CHECK_STR(c.v[1].path, "oci-layout");
		TU_CHECK_STR(c.v[2].path, "index.json");
		for (size_t i = 3; i < 8; i++)
			TU_CHECK(strncmp(c.v[i].path, "blobs/sha256/", 13) == 0);
		TU_CHECK(strncmp(c.v[8].path, "manifests/01-", 13) == 0);
		TU_CHECK(strncmp(c.v[9].path, "manifests/02-nnnn", 17) == 0);
		TU_CHECK(strlen(c.v[9].path) > 200);
		TU_CHECK_STR(c.v[10].path, "models/m/1/empty.bin");
		TU_CHECK(c.v[10].size == 0);
	}
	int big = 0;
	for (size_t i = 0; i < c.n; i++) {
		TU_CHECK(c.v[i].verified == 1);
		big |= c.v[i].size > (5u << 20);
		if (i)
			TU_CHECK(c.v[i].off > c.v[i - 1].off);
	}
	TU_CHECK(big);
	/* every blob of the image is there */
	for (size_t b = 0; b < F.n_blobs; b++) {
		int found = 0;
		for (size_t i = 0; i < c.n; i++)
			found |= strcmp(c.v[i].path +
					    13 * (strncmp(c.v[i].path, "blobs/sha256/", 13) == 0),
					REG_DIGEST_HEX(&F.blobs[b])) == 0;
		TU_CHECK(found);
	}
	check_offsets(&c);
}

static void test_scan_offsets_index_only(void)
{
	scan_ctx c;
	reg_bundle_stats stats;
	cm_error err = {0};
	int rc = scan(&c, &stats, 0, F.pub, NULL, &err);
	TU_CHECK(rc == 0);
	if (rc < 0)
		printf("#   %s\n", err.msg);
	TU_CHECK(c.n == F.n_members);
	/* only the small metadata members are hashed in an index pass */
	TU_CHECK(stats.bytes_hashed < 4096);
	for (size_t i = 0; i < c.n; i++)
		TU_CHECK(c.v[i].verified == (reg_bundle_rank(c.v[i].path) <= 4));
	check_offsets(&c);
	/* same offsets as the full pass */
	scan_ctx full;
	TU_CHECK(scan(&full, &stats, 1, NULL, NULL, &err) == 0);
	TU_CHECK(full.n == c.n);
	for (size_t i = 0; i < c.n && i < full.n; i++) {
		TU_CHECK_STR(full.v[i].path, c.v[i].path);
		TU_CHECK(full.v[i].off == c.v[i].off);
		TU_CHECK(full.v[i].size == c.v[i].size);
	}
}

static void test_scan_refusals(void)
{
	scan_ctx c;
	reg_bundle_stats stats;
	/* another key */
	cm_error e1 = {0};
	TU_CHECK(scan(&c, &stats, 1, F.other_pub, NULL, &e1) == CM_EVERIFY);
	TU_CHECK(strstr(e1.msg, "SHA256SUMS.sig") != NULL);
	TU_CHECK(c.n == 0);

	/* flip one byte of the big layer: the full pass names it, the index
	 * pass does not look */
	scan_ctx idx;
	cm_error err = {0};
	TU_CHECK(scan(&idx, &stats, 0, NULL, NULL, &err) == 0);
	const seen *big = NULL;
	for (size_t i = 0; i < idx.n; i++)
		if (idx.v[i].size > (5u << 20))
			big = &idx.v[i];
	TU_CHECK(big != NULL);
	if (!big)
		return;
	int fd = open(F.bundle, O_RDWR);
	TU_CHECK(fd >= 0);
	unsigned char ch = 0;
	off_t at = (off_t)(big->off + big->size - 1);
	TU_CHECK(pread(fd, &ch, 1, at) == 1);
	ch ^= 0x01;
	TU_CHECK(pwrite(fd, &ch, 1, at) == 1);
	cm_error e2 = {0};
	TU_CHECK(scan(&c, &stats, 1, F.pub, NULL, &e2) == CM_EVERIFY);
	TU_CHECK(strstr(e2.msg, big->path) != NULL);
	cm_error e3 = {0};
	TU_CHECK(scan(&c, &stats, 0, F.pub, NULL, &e3) == 0);
	ch ^= 0x01;
	TU_CHECK(pwrite(fd, &ch, 1, at) == 1);
	close(fd);
	cm_error e4 = {0};
	TU_CHECK(scan(&c, &stats, 1, F.pub, NULL, &e4) == 0);

	/* a truncated copy */
	char trunc[700];
	snprintf(trunc, sizeof(trunc), "%s/trunc.tar", g_dir);
	cm_buf all = CM_BUF_INIT;
	all.limit = 64u << 20;
	TU_CHECK(cm_file_read(&all, F.bundle, 64u << 20, &err) == 0);
	TU_CHECK(all.len > (5u << 20));
	if (all.len > (5u << 20)) {
		TU_CHECK(write_file(trunc, all.data, (size_t)(big->off + 1000)) == 0);
		char saved[600];
		snprintf(saved, sizeof(saved), "%s", F.bundle);
		TU_CHECK(snprintf(F.bundle, sizeof(F.bundle), "%s", trunc) < (int)sizeof(F.bundle));
		cm_error e5 = {0};
		TU_CHECK(scan(&c, &stats, 1, F.pub, NULL, &e5) == CM_EVERIFY);
		TU_CHECK(strstr(e5.msg, big->path) != NULL);
		cm_error e6 = {0};
		TU_CHECK(scan(&c, &stats, 0, F.pub, NULL, &e6) == CM_EVERIFY);

		/* data after the end-of-archive marker is refused, zeros are padding */
		cm_buf more = CM_BUF_INIT;
		more.limit = 64u << 20;
		TU_CHECK(cm_buf_append(&more, all.data, all.len, &err) == 0);
		TU_CHECK(cm_buf_append(&more, "\0\0\0\0junk", 8, &err) == 0);
		TU_CHECK(write_file(trunc, more.data, more.len) == 0);
		cm_error e7 = {0};
		TU_CHECK(scan(&c, &stats, 0, F.pub, NULL, &e7) == CM_EVERIFY);
		TU_CHECK(strstr(e7.msg, "after the end of the archive") != NULL);
		more.len -= 4;
		TU_CHECK(write_file(trunc, more.data, more.len) == 0);
		cm_error e8 = {0};
		TU_CHECK(scan(&c, &stats, 1, F.pub, NULL, &e8) == 0);
		/* the end-of-archive marker cut short */
		TU_CHECK(write_file(trunc, all.data, all.len - 512) == 0);
		cm_error e9 = {0};
		TU_CHECK(scan(&c, &stats, 1, F.pub, NULL, &e9) == CM_EVERIFY);
		TU_CHECK(strstr(e9.msg, "end-of-archive") != NULL);
		cm_buf_free(&more);

		/* a compressed bundle is named as such */
		unsigned char gz[600] = {0x1f, 0x8b, 0x08};
		TU_CHECK(write_file(trunc, gz, sizeof(gz)) == 0);
		cm_error e10 = {0};
		TU_CHECK(scan(&c, &stats, 1, F.pub, NULL, &e10) == CM_EVERIFY);
		TU_CHECK(strstr(e10.msg, "gzip-compressed") != NULL);
		snprintf(F.bundle, sizeof(F.bundle), "%s", saved);
	}
	cm_buf_free(&all);
}

/* Files in dir whose name starts with prefix (temp files are
 * "<name>.tmp.XXXXXX"). */
static int count_prefix(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

static void test_write_failures(void)
{
	/* an output folder that does not exist: error, nothing created */
	cm_error err = {0};
	char root[600];
	snprintf(root, sizeof(root), "%s/store", g_dir);
	reg_store *st = NULL;
	TU_CHECK(reg_store_open(&st, root, &err) == 0);
	sig_seckey *k = NULL;
	TU_CHECK(sig_seckey_load(&k, F.key, &err) == 0);
	if (!st || !k) {
		reg_store_free(st);
		sig_seckey_free(k);
		return;
	}
	char out[700];
	snprintf(out, sizeof(out), "%s/missing/b.tar", g_dir);
	bld_bundle_in in = {st, NULL, 0, NULL, 0, "{}", k, 0, NULL, NULL, NULL, 0, NULL};
	cm_error e1 = {0};
	TU_CHECK(bld_bundle_write(NULL, out, &in, &e1) < 0);
	TU_CHECK(strstr(e1.msg, out) != NULL);
	struct stat sb;
	TU_CHECK(stat(out, &sb) < 0);

	/* a file that changed after it was hashed: refused, no bundle, no temp */
	bld_file f;
	memset(&f, 0, sizeof(f));
	snprintf(f.member, sizeof(f.member), "manifests/01-x.yaml");
	snprintf(f.src, sizeof(f.src), "%s/x.yaml", g_dir);
	TU_CHECK(write_file(f.src, "a: 1\n", 5) == 0);
	TU_CHECK(bld_files_hash(&f, 1, &err) == 0);
	TU_CHECK(write_file(f.src, "a: 2\n", 5) == 0);
	snprintf(out, sizeof(out), "%s/changed.tar", g_dir);
	bld_bundle_in in2 = {st, NULL, 0, &f, 1, "{}", k, 0, NULL, NULL, NULL, 0, NULL};
	cm_error e2 = {0};
	TU_CHECK(bld_bundle_write(NULL, out, &in2, &e2) == CM_EVERIFY);
	TU_CHECK(strstr(e2.msg, f.src) != NULL);
	TU_CHECK(stat(out, &sb) < 0);
	TU_CHECK(count_prefix(g_dir, "changed.tar") == 0);

	/* a member name outside manifests/ and models/ is refused */
	snprintf(f.member, sizeof(f.member), "index.json");
	TU_CHECK(write_file(f.src, "a: 1\n", 5) == 0);
	TU_CHECK(bld_files_hash(&f, 1, &err) == 0);
	cm_error e3 = {0};
	TU_CHECK(bld_bundle_write(NULL, out, &in2, &e3) < 0);
	snprintf(f.member, sizeof(f.member), "manifests/../../x");
	cm_error e4 = {0};
	TU_CHECK(bld_bundle_write(NULL, out, &in2, &e4) < 0);
	TU_CHECK(stat(out, &sb) < 0);
	TU_CHECK(count_prefix(g_dir, "changed.tar") == 0);
	TU_CHECK(count_prefix(g_dir, "b.tar.tmp.") == 0);
	sig_seckey_free(k);
	reg_store_free(st);
}

static int is_big_layer(void *ud, const reg_digest *d)
{
	(void)ud;
	return reg_digest_equal(d, &F.blobs[3]);
}

static int same_file(const char *a, const char *b)
{
	cm_buf x = CM_BUF_INIT, y = CM_BUF_INIT;
	cm_error err = {0};
	int same = cm_file_read(&x, a, 64u << 20, &err) == 0 &&
		   cm_file_read(&y, b, 64u << 20, &err) == 0 && x.len == y.len &&
		   memcmp(x.data, y.data, x.len) == 0;
	cm_buf_free(&x);
	cm_buf_free(&y);
	return same;
}

/* A store holding the fixture's blobs but the big layer. */
static reg_store *store_without_big(const char *stem)
{
	cm_error err = {0};
	char r1[600], r2[600];
	snprintf(r1, sizeof(r1), "%s/store", g_dir);
	snprintf(r2, sizeof(r2), "%s/%s", g_dir, stem);
	reg_store *a = NULL, *b = NULL;
	if (reg_store_open(&a, r1, &err) < 0 || reg_store_open(&b, r2, &err) < 0) {
		reg_store_free(a);
		reg_store_free(b);
		return NULL;
	}
	for (size_t i = 0; i < F.n_blobs; i++) {
		if (i == 3)
			continue;
		cm_buf x = CM_BUF_INIT;
		if (reg_store_read(&x, a, &F.blobs[i], 64u << 20, &err) < 0 ||
		    reg_store_put(NULL, b, x.data, x.len, &err) < 0) {
			cm_buf_free(&x);
			reg_store_free(a);
			reg_store_free(b);
			return NULL;
		}
		cm_buf_free(&x);
	}
	reg_store_free(a);
	return b;
}

/* A bundle laid out with a hole for a blob still to be downloaded: filled
 * through a tee by the store writer, or from the store afterwards, it is
 * byte-identical to the bundle written in one go; never filled, there is
 * no bundle and no temp file. */
static void test_pending_holes(void)
{
	cm_error err = {0};
	sig_seckey *k = NULL;
	TU_CHECK(sig_seckey_load(&k, F.key, &err) == 0);
	char r1[600];
	snprintf(r1, sizeof(r1), "%s/store", g_dir);
	reg_store *full = NULL;
	TU_CHECK(reg_store_open(&full, r1, &err) == 0);
	cm_buf big = CM_BUF_INIT;
	TU_CHECK(full && reg_store_read(&big, full, &F.blobs[3], 64u << 20, &err) == 0);
	reg_store_free(full);
	const char *bj = "{\"formatVersion\":1,\"name\":\"t\"}\n";
	struct stat sb;
	for (int mode = 0; k && big.data && mode < 3; mode++) {
		char stem[32], out[700];
		snprintf(stem, sizeof(stem), "holes%d", mode);
		snprintf(out, sizeof(out), "%s/%s.tar", g_dir, stem);
		reg_store *st = store_without_big(stem);
		TU_CHECK(st != NULL);
		if (!st)
			break;
		bld_bundle_in in = {st,	  &F.img,	1,    F.files, 3,   bj, k, 1700000000,
				    NULL, is_big_layer, NULL, 0,       NULL};
		bld_bundle_out o;
		TU_CHECK(bld_bundle_write(&o, out, &in, &err) == 0);
		TU_CHECK(o.pending != NULL);
		TU_CHECK(stat(out, &sb) < 0); /* not in place before it is complete */
		TU_CHECK(bld_bundle_pending_tee(o.pending, &F.blobs[1]) == NULL);
		reg_tee *t = bld_bundle_pending_tee(o.pending, &F.blobs[3]);
		TU_CHECK(t != NULL);
		if (mode == 0 && t) {
			/* the download: streamed into the store and the hole */
			reg_blob_writer *w = NULL;
			TU_CHECK(reg_blob_writer_new(&w, st, &F.blobs[3], &err) == 0);
			reg_blob_writer_set_tee(w, t);
			for (size_t off = 0; w && off < big.len; off += 16384) {
				size_t n = big.len - off < 16384 ? big.len - off : 16384;
				TU_CHECK(reg_blob_writer_write(w, big.data + off, n, &err) == 0);
			}
			TU_CHECK(reg_blob_writer_commit(NULL, NULL, w, &err) == 0);
			TU_CHECK(t->done == 1);
		} else if (mode == 1) {
			/* in the store by other means: finish copies it */
			TU_CHECK(reg_store_put(NULL, st, big.data, big.len, &err) == 0);
		}
		int rc = bld_bundle_pending_finish(o.pending, &err);
		if (mode < 2) {
			TU_CHECK(rc == 0);
			TU_CHECK(same_file(out, F.bundle));
		} else {
			TU_CHECK(rc < 0);
			TU_CHECK(strstr(err.msg, "was not downloaded") != NULL);
			TU_CHECK(stat(out, &sb) < 0);
			TU_CHECK(count_prefix(g_dir, "holes2.tar") == 0);
		}
		reg_store_free(st);
	}
	/* given up before the downloads: nothing is left */
	reg_store *st = store_without_big("holes3");
	char out[700];
	snprintf(out, sizeof(out), "%s/holes3.tar", g_dir);
	bld_bundle_in in = {st,	  &F.img,	1,    F.files, 3,   bj, k, 1700000000,
			    NULL, is_big_layer, NULL, 0,       NULL};
	bld_bundle_out o;
	TU_CHECK(st && bld_bundle_write(&o, out, &in, &err) == 0 && o.pending);
	bld_bundle_pending_abort(o.pending);
	TU_CHECK(count_prefix(g_dir, "holes3.tar") == 0);
	reg_store_free(st);
	cm_buf_free(&big);
	sig_seckey_free(k);
}

/* --- the strict tar rules (reg_tar.h) --- */

static void ustar(unsigned char b[512], const char *name, char type, unsigned long long size)
{
	memset(b, 0, 512);
	snprintf((char *)b, 100, "%s", name);
	memcpy(b + 100, "0000644", 8);
	memcpy(b + 108, "0000000", 8);
	memcpy(b + 116, "0000000", 8);
	snprintf((char *)b + 124, 12, "%011llo", size);
	memcpy(b + 136, "14524770400", 12);
	b[156] = (unsigned char)type;
	memcpy(b + 257,
	       "ustar\0"
	       "00",
	       8);
	unsigned sum = 0;
	memset(b + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += b[i];
	snprintf((char *)b + 148, 8, "%06o", sum);
}

static void test_tar_rules(void)
{
	unsigned char b[512];
	reg_tar_hdr h;
	cm_error err = {0};
	ustar(b, "manifests/01-a.yaml", '0', 642);
	TU_CHECK(reg_tar_parse_header(&h, b, &err) == 0);
	TU_CHECK_STR(h.name, "manifests/01-a.yaml");
	TU_CHECK(h.size == 642 && h.type == '0');
	b[0] ^= 1; /* checksum no longer matches */
	TU_CHECK(reg_tar_parse_header(&h, b, &err) == CM_EVERIFY);
	TU_CHECK(strstr(err.msg, "checksum") != NULL);
	static const struct {
		char t;
		const char *why;
	} refused[] = {{'1', "hard link"}, {'2', "symbolic link"}, {'3', "device"},
		       {'5', "folder"},	   {'6', "FIFO"},	   {'g', "global"},
		       {'L', "long-name"}, {'S', "sparse"},	   {'7', "tar type"}};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		ustar(b, "x/y", refused[i].t, 0);
		TU_CHECK(reg_tar_parse_header(&h, b, &err) == CM_EVERIFY);
		if (!strstr(err.msg, refused[i].why) || !strstr(err.msg, "x/y")) {
			printf("#   type %c: %s\n", refused[i].t, err.msg);
			tu_case_failed = 1;
		}
	}
	/* old GNU magic */
	ustar(b, "a", '0', 1);
	memcpy(b + 257, "ustar  \0", 8);
	TU_CHECK(reg_tar_parse_header(&h, b, &err) == CM_EVERIFY);

	reg_tar_pax px;
	static const char *bad_pax[] = {
	    "30 SCHILY.realsize=916\n",
	    "26 GNU.sparse.realsize=9\n",
	    "20 GNU.sparse.map=\n",
	    "18 mtime=1.000000\n",
	    "12 size=12\n12 size=12\n",
	    "9 size=\n",
	    "11 size=012\n",
	    "10 size=-1\n",
	    "5 x=\n",
	    "13 path=a\n", /* length says 13, record is 11 */
	    "",
	    "11 path=a\n11 path=a\n",
	    "25 LIBARCHIVE.xattr.a=b\n",
	    "9 size=1",
	};
	for (size_t i = 0; i < sizeof(bad_pax) / sizeof(bad_pax[0]); i++)
		if (reg_tar_parse_pax(&px, bad_pax[i], strlen(bad_pax[i]), &err) != CM_EVERIFY) {
			printf("#   pax accepted: '%s'\n", bad_pax[i]);
			tu_case_failed = 1;
		}
	const char *ok = "19 size=9663676416\n";
	TU_CHECK(reg_tar_parse_pax(&px, ok, strlen(ok), &err) == 0);
	TU_CHECK(px.has_size && px.size == 9663676416ULL && !px.path[0]);
	/* a pax size must agree with the header; a short pax path renames */
	ustar(b, "m/1/w", '0', 1);
	TU_CHECK(reg_tar_parse_header(&h, b, &err) == 0);
	TU_CHECK(reg_tar_apply_pax(&h, &px, &err) == CM_EVERIFY);
	const char *shortpath = "14 path=m/1/v\n";
	TU_CHECK(reg_tar_parse_pax(&px, shortpath, strlen(shortpath), &err) == 0);
	TU_CHECK(reg_tar_apply_pax(&h, &px, &err) == CM_EVERIFY);
	TU_CHECK(strstr(err.msg, "renames") != NULL);
}

/* --- the reader hands out only verified bytes (reg_bidx.h) --- */

static int copy_file(const char *from, const char *to)
{
	cm_buf b = CM_BUF_INIT;
	cm_error err = {0};
	b.limit = (size_t)64 << 20;
	int rc = cm_file_read(&b, from, b.limit, &err);
	if (rc == 0)
		rc = write_file(to, b.data, b.len);
	cm_buf_free(&b);
	return rc;
}

/* The same bundle written in parts of 1 MiB (the 5 MiB layer spans six):
 * the parts joined are the single file; the reader opens the set by its
 * prefix and by its first part, hands out every member as the single file
 * does, maps the layer to several segments, and notices a part changed in
 * place (naming the parts of the member that no longer matches). */
static void test_volume_reader(void)
{
	char root[700], prefix[700], name[720];
	snprintf(root, sizeof(root), "%s/store", g_dir);
	snprintf(prefix, sizeof(prefix), "%s/vol.tar", g_dir);
	reg_store *st = NULL;
	sig_seckey *k = NULL;
	cm_error err = {0};
	TU_CHECK(reg_store_open(&st, root, &err) == 0 && sig_seckey_load(&k, F.key, &err) == 0);
	bld_bundle_in in = {
	    st,	 &F.img,     1,	   F.files, 3,	  "{\"formatVersion\":1,\"name\":\"t\"}\n",
	    k,	 1700000000, NULL, NULL,    NULL, (uint64_t)1 << 20,
	    NULL};
	bld_bundle_out out;
	TU_CHECK_MSG(bld_bundle_write(&out, prefix, &in, &err) == 0, "%s", err.msg);
	sig_seckey_free(k);
	reg_store_free(st);
	TU_CHECK(out.parts == 6 && !out.pending);
	/* joined, the parts are the single file */
	cm_buf one = CM_BUF_INIT, all = CM_BUF_INIT;
	TU_CHECK(cm_file_read(&one, F.bundle, (size_t)64 << 20, &err) == 0);
	for (size_t i = 0; i < out.parts; i++) {
		cm_buf part = CM_BUF_INIT;
		TU_CHECK(snprintf(name, sizeof(name), "%s.%03zu", prefix, i) < (int)sizeof(name));
		TU_CHECK(cm_file_read(&part, name, (size_t)64 << 20, &err) == 0);
		TU_CHECK(part.len <= ((size_t)1 << 20) &&
			 (i + 1 == out.parts || part.len == ((size_t)1 << 20)));
		cm_buf_append(&all, part.data, part.len, &err);
		cm_buf_free(&part);
	}
	TU_CHECK(one.len == all.len && one.len == out.size &&
		 memcmp(one.data, all.data, one.len) == 0);
	cm_buf_free(&all);
	snprintf(name, sizeof(name), "%s.parts", prefix);
	cm_buf side = CM_BUF_INIT;
	TU_CHECK(cm_file_read(&side, name, 1 << 20, &err) == 0 && side.data &&
		 strstr(side.data, "# vol.tar.005: ") &&
		 strstr(side.data, "SHA256 (vol.tar.000) = "));
	cm_buf_free(&side);

	snprintf(name, sizeof(name), "%s.000", prefix);
	const char *names[2] = {prefix, name};
	for (int t = 0; t < 2; t++) {
		reg_bidx_opts o;
		memset(&o, 0, sizeof(o));
		o.bundle = names[t];
		o.mode = REG_BIDX_FULL;
		o.insecure_skip_signature = 1;
		reg_bidx *x = NULL;
		reg_bidx_info info;
		TU_CHECK_MSG(reg_bidx_open(&x, &info, &o, &err) == 0, "%s", err.msg);
		if (!x)
			continue;
		TU_CHECK(reg_bidx_parts(x) == 6 && info.parts == 6 && info.file_size == one.len);
		TU_CHECK(reg_bidx_count(x) == F.n_members);
		for (uint32_t id = 0; id < reg_bidx_count(x); id++) {
			reg_bidx_member m;
			reg_bidx_member_at(x, id, &m);
			cm_buf got = CM_BUF_INIT;
			TU_CHECK(reg_bidx_read(&got, x, id, (size_t)16 << 20, &err) == 0);
			TU_CHECK_MSG(
			    got.len == m.size && m.off + m.size <= one.len &&
				(m.size == 0 || memcmp(got.data, one.data + m.off, m.size) == 0),
			    "member %s differs", m.path);
			cm_buf_free(&got);
		}
		uint32_t big = reg_bidx_find_blob(x, &F.blobs[3]);
		reg_bidx_member bm;
		reg_bidx_member_at(x, big, &bm);
		reg_bidx_seg seg[8];
		size_t ns = reg_bidx_serve_segs(x, bm.off, bm.size, seg, 8);
		TU_CHECK(ns >= 5 && ns <= 7);
		uint64_t sum = 0;
		for (size_t i = 0; i < ns && i < 8; i++)
			sum += seg[i].len;
		TU_CHECK(sum == bm.size && seg[0].off == bm.off);
		char buf[64];
		TU_CHECK(reg_bidx_serve_read(x, bm.off + (1u << 20) - 32, buf, 64, &err) == 0 &&
			 memcmp(buf, one.data + bm.off + (1u << 20) - 32, 64) == 0);
		/* the same range as memory (an iovec response): one piece per
		 * part, the bytes of the single file; and a small unaligned
		 * range across one boundary is two pieces */
		reg_bidx_map mp;
		TU_CHECK_MSG(reg_bidx_serve_map(&mp, x, bm.off, bm.size, &err) == 0, "%s", err.msg);
		TU_CHECK(mp.n == ns);
		uint64_t at = bm.off;
		for (size_t i = 0; i < mp.n; i++) {
			TU_CHECK(mp.v[i].len == seg[i].len &&
				 memcmp(mp.v[i].p, one.data + at, mp.v[i].len) == 0);
			at += mp.v[i].len;
		}
		TU_CHECK(at == bm.off + bm.size);
		reg_bidx_serve_unmap(&mp);
		TU_CHECK(mp.n == 0);
		uint64_t edge = ((bm.off >> 20) + 1) << 20; /* the first boundary inside */
		TU_CHECK(reg_bidx_serve_map(&mp, x, edge - 77, 200, &err) == 0 && mp.n == 2 &&
			 mp.v[0].len == 77 && mp.v[1].len == 123 &&
			 memcmp(mp.v[0].p, one.data + edge - 77, 77) == 0 &&
			 memcmp(mp.v[1].p, one.data + edge, 123) == 0);
		reg_bidx_serve_unmap(&mp);
		TU_CHECK(reg_bidx_serve_map(&mp, x, one.len + 10, 5, &err) < 0 && mp.n == 0);
		reg_bidx_serve_unmap(&mp);
		if (t == 1) {
			/* part 003 changed in place: the layer is hashed again and
			 * refused, its parts named */
			TU_CHECK(reg_bidx_is_verified(x, big) == 1);
			char p3[720];
			snprintf(p3, sizeof(p3), "%s.003", prefix);
			int fd = open(p3, O_WRONLY);
			TU_CHECK(fd >= 0 && pwrite(fd, "\xff\xfe", 2, 1000) == 2);
			close(fd);
			TU_CHECK(reg_bidx_is_verified(x, big) == 0);
			TU_CHECK(reg_bidx_verify(x, big, &err) == CM_EVERIFY);
			TU_CHECK_MSG(strstr(err.msg, "vol.tar.003") &&
					 strstr(err.msg, "vol.tar.001"),
				     "%s", err.msg);
		}
		reg_bidx_free(x);
	}
	cm_buf_free(&one);
}

static void test_reader_toctou(void)
{
	char path[700], other[700];
	snprintf(path, sizeof(path), "%s/toctou.tar", g_dir);
	snprintf(other, sizeof(other), "%s/other.tar", g_dir);
	TU_CHECK(copy_file(F.bundle, path) == 0);
	reg_bidx_opts o;
	memset(&o, 0, sizeof(o));
	o.bundle = path;
	o.mode = REG_BIDX_FULL;
	o.insecure_skip_signature = 1;
	reg_bidx *x = NULL;
	cm_error err = {0};
	TU_CHECK(reg_bidx_open(&x, NULL, &o, &err) == 0);
	if (!x) {
		printf("#   %s\n", err.msg);
		return;
	}
	uint32_t id = reg_bidx_find(x, "manifests/01-a.yaml");
	uint32_t big = reg_bidx_find_blob(x, &F.blobs[3]);
	TU_CHECK(id != REG_BIDX_NONE && big != REG_BIDX_NONE);
	reg_bidx_member m;
	reg_bidx_member_at(x, id, &m);
	cm_buf got = CM_BUF_INIT;
	TU_CHECK(reg_bidx_read(&got, x, id, 4096, &err) == 0);
	TU_CHECK(got.len == m.size && strstr(got.data, "ConfigMap") != NULL);

	/* another file renamed over the path: the reader keeps its own */
	TU_CHECK(copy_file(F.bundle, other) == 0);
	int fd = open(other, O_WRONLY);
	TU_CHECK(fd >= 0 && pwrite(fd, "X", 1, (off_t)m.off) == 1);
	close(fd);
	TU_CHECK(rename(other, path) == 0);
	TU_CHECK(reg_bidx_read(&got, x, id, 4096, &err) == 0);
	TU_CHECK(got.data && got.data[0] == 'a');
	reg_bidx_free(x);

	/* the file changed in place after it was verified: nothing of the
	 * changed member comes out, the rest is hashed again and comes out */
	TU_CHECK(copy_file(F.bundle, path) == 0);
	x = NULL;
	TU_CHECK(reg_bidx_open(&x, NULL, &o, &err) == 0);
	if (!x)
		return;
	TU_CHECK(reg_bidx_is_verified(x, id) == 1);
	struct timespec keep[2];
	struct stat sb;
	TU_CHECK(stat(path, &sb) == 0);
	keep[0] = sb.st_atim;
	keep[1] = sb.st_mtim;
	fd = open(path, O_WRONLY);
	TU_CHECK(fd >= 0 && pwrite(fd, "b", 1, (off_t)m.off) == 1);
	close(fd);
	TU_CHECK(utimensat(AT_FDCWD, path, keep, 0) == 0); /* the mtime restored */
	TU_CHECK(reg_bidx_is_verified(x, id) == 0);
	TU_CHECK(reg_bidx_read(&got, x, id, 4096, &err) == CM_EVERIFY);
	TU_CHECK(strstr(err.msg, "manifests/01-a.yaml") != NULL);
	int tfd = open(other, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	TU_CHECK(tfd >= 0 && reg_bidx_copy(tfd, x, id, &err) == CM_EVERIFY);
	close(tfd);
	reg_bidx_cursor c;
	TU_CHECK(reg_bidx_cursor_open(&c, x, id, REG_BIDX_TRUST_VERIFIED, &err) == 0);
	char buf[8];
	size_t n = 0, total = 0;
	int rc;
	while ((rc = reg_bidx_cursor_read(&c, buf, sizeof(buf), &n, &err)) == 0 && n)
		total += n;
	reg_bidx_cursor_close(&c);
	TU_CHECK(rc == CM_EVERIFY && total < m.size); /* the last bytes never came out */
	TU_CHECK(reg_bidx_verify(x, big, &err) == 0); /* unchanged: hashed again, fine */
	TU_CHECK(reg_bidx_is_verified(x, big) == 1);
	cm_buf_free(&got);
	reg_bidx_free(x);
	reg_bidx_free(NULL);
}

int main(void)
{
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	TU_RUN(test_check_name);
	TU_RUN(test_rank);
	TU_RUN(test_sums_line);
	if (make_fixture() < 0) {
		printf("not ok - make_fixture\n");
		cm_rmtree(g_dir);
		return 1;
	}
	TU_RUN(test_scan_offsets_full);
	TU_RUN(test_scan_offsets_index_only);
	TU_RUN(test_scan_refusals);
	TU_RUN(test_write_failures);
	TU_RUN(test_pending_holes);
	TU_RUN(test_tar_rules);
	TU_RUN(test_reader_toctou);
	TU_RUN(test_volume_reader);
	cm_rmtree(g_dir);
	TU_EXIT();
}
