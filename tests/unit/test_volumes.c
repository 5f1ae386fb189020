/* Volume sets: the --volume-size parser (builder/bld_bundle.c), the
 * mapping of logical offsets to parts, the set's structural checks and the
 * sidecar parser (registry/reg_bundle.c). The reader over a real bundle in
 * parts is in test_bundle.c (test_volume_reader). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bld_bundle.h"
#include "cm_error.h"
#include "cm_file.h"
#include "reg_bundle.h"
#include "tu.h"

static char g_dir[] = "/tmp/ferry-volumes-test.XXXXXX";

static void test_size_parse(void)
{
	static const struct {
		const char *s;
		uint64_t want;
	} ok[] = {
	    {"3M", 3ull << 20},
	    {"3m", 3ull << 20},
	    {"1024K", 1ull << 20},
	    {"1G", 1ull << 30},
	    {"2T", 2ull << 40},
	    {"1048576", 1ull << 20},
	    {"1048577", (1ull << 20) + 1},
	    {"fat32", (4ull << 30) - 1},
	    {"FAT32", 4294967295ull},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 0;
		cm_error err = {0};
		TU_CHECK_MSG(bld_volume_size_parse(&v, ok[i].s, &err) == 0 && v == ok[i].want,
			     "'%s' gave %llu (%s), want %llu", ok[i].s, (unsigned long long)v,
			     err.msg, (unsigned long long)ok[i].want);
	}
	static const char *bad[] = {
	    "",		"M",	 "3X",	 "3MB",	      "3 M",
	    "-3M",	"0",	 "512K", "1048575",   "1.5G",
	    "0x10M",	"fat16", "3M ",	 "16777216T", "99999999999999999999",
	    "8388608T",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 7;
		cm_error err = {0};
		TU_CHECK_MSG(bld_volume_size_parse(&v, bad[i], &err) == CM_EUSAGE && v == 0,
			     "'%s' was accepted as %llu", bad[i], (unsigned long long)v);
	}
}

static void put(const char *name, const char *data)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", g_dir, name);
	cm_error err = {0};
	TU_CHECK(cm_file_write_atomic(p, data, strlen(data), 0644, &err) == 0);
}

static void drop(const char *name)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", g_dir, name);
	unlink(p);
}

static void test_offset_mapping(void)
{
	put("s.000", "abcde");
	put("s.001", "fghij");
	put("s.002", "kl");
	char prefix[256], first[256], second[256];
	snprintf(prefix, sizeof(prefix), "%s/s", g_dir);
	snprintf(first, sizeof(first), "%s/s.000", g_dir);
	snprintf(second, sizeof(second), "%s/s.001", g_dir);
	const char *names[] = {prefix, first};
	for (int k = 0; k < 2; k++) {
		reg_bundle_vol *v = NULL;
		cm_error err = {0};
		TU_CHECK_MSG(reg_bundle_vol_open(&v, names[k], &err) == 0, "%s", err.msg);
		if (!v)
			continue;
		TU_CHECK(v->n == 3 && v->size == 12);
		TU_CHECK(v->p[0].start == 0 && v->p[1].start == 5 && v->p[2].start == 10);
		static const struct {
			uint64_t off;
			size_t part;
		} at[] = {{0, 0}, {4, 0}, {5, 1}, {9, 1}, {10, 2}, {11, 2}};
		for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
			TU_CHECK_MSG(reg_bundle_vol_part_at(v, at[i].off) == at[i].part,
				     "byte %llu in part %zu", (unsigned long long)at[i].off,
				     reg_bundle_vol_part_at(v, at[i].off));
		char buf[16] = {0};
		TU_CHECK(reg_bundle_vol_read(v, buf, 7, 3, &err) == 0);
		TU_CHECK_STR(buf, "defghij");
		memset(buf, 0, sizeof(buf));
		TU_CHECK(reg_bundle_vol_read(v, buf, 12, 0, &err) == 0);
		TU_CHECK_STR(buf, "abcdefghijkl");
		TU_CHECK(reg_bundle_vol_read(v, buf, 3, 10, &err) == CM_EVERIFY);
		reg_bundle_seg seg[4];
		TU_CHECK(reg_bundle_vol_segs(v, 3, 7, seg, 4) == 2);
		TU_CHECK(seg[0].fd == v->p[0].fd && seg[0].off == 3 && seg[0].len == 2);
		TU_CHECK(seg[1].fd == v->p[1].fd && seg[1].off == 0 && seg[1].len == 5);
		TU_CHECK(reg_bundle_vol_segs(v, 5, 5, seg, 4) == 1);
		TU_CHECK(seg[0].fd == v->p[1].fd && seg[0].off == 0 && seg[0].len == 5);
		TU_CHECK(reg_bundle_vol_segs(v, 0, 12, seg, 4) == 3);
		TU_CHECK(seg[2].fd == v->p[2].fd && seg[2].off == 0 && seg[2].len == 2);
		TU_CHECK(reg_bundle_vol_segs(v, 0, 12, seg, 1) == 3); /* counts past max */
		TU_CHECK(reg_bundle_vol_segs(v, 10, 3, seg, 4) == 0); /* outside */
		TU_CHECK(reg_bundle_vol_segs(v, 13, 0, seg, 4) == 0);
		char where[256];
		reg_bundle_vol_where(v, 3, 7, where, sizeof(where));
		TU_CHECK(strstr(where, "s.000, ") && strstr(where, "s.001") &&
			 !strstr(where, "s.002"));
		reg_bundle_vol_where(v, 11, 0, where, sizeof(where));
		TU_CHECK(strstr(where, "s.002") && !strchr(where, ','));
		TU_CHECK(reg_bundle_vol_same(v) == 1);
		int fd = open(second, O_WRONLY | O_APPEND);
		TU_CHECK(fd >= 0 && write(fd, "!", 1) == 1);
		close(fd);
		TU_CHECK(reg_bundle_vol_same(v) == 0); /* a change in any part is seen */
		reg_bundle_vol_restat(v);
		TU_CHECK(reg_bundle_vol_same(v) == 1);
		TU_CHECK(v->size == 12); /* the set stays as opened */
		put("s.001", "fghij");
		reg_bundle_vol_free(v);
	}
	reg_bundle_vol_free(NULL);
	/* a later part named directly is a usage error */
	reg_bundle_vol *v = NULL;
	cm_error err = {0};
	TU_CHECK(reg_bundle_vol_open(&v, second, &err) == CM_EUSAGE && !v);
	TU_CHECK(strstr(err.msg, "s.000") != NULL);
}

static void expect_bad(const char *want)
{
	char prefix[256];
	snprintf(prefix, sizeof(prefix), "%s/s", g_dir);
	reg_bundle_vol *v = NULL;
	cm_error err = {0};
	TU_CHECK_MSG(reg_bundle_vol_open(&v, prefix, &err) == CM_EVERIFY && !v &&
			 strstr(err.msg, want),
		     "want '%s', got '%s'", want, err.msg);
	reg_bundle_vol_free(v);
}

static void test_set_checks(void)
{
	put("s.000", "abcde");
	put("s.001", "fgh");
	put("s.002", "kl");
	expect_bad("s.001: 2 bytes short");
	put("s.001", "fghijX");
	expect_bad("s.001: 1 bytes more");
	put("s.001", "fghij");
	put("s.002", "klmnopq");
	expect_bad("s.002: 2 bytes more");
	put("s.002", "kl");
	drop("s.001");
	expect_bad("s.001: missing");
	put("s.001", "fghij");
	put("s.005", "x");
	expect_bad("s.003: missing");
	drop("s.005");
	put("s.000", "");
	expect_bad("s.000: empty");
	put("s.000", "abcde");
	/* a single file of the name wins over parts */
	put("s", "one file");
	char prefix[256];
	snprintf(prefix, sizeof(prefix), "%s/s", g_dir);
	reg_bundle_vol *v = NULL;
	cm_error err = {0};
	TU_CHECK(reg_bundle_vol_open(&v, prefix, &err) == 0 && v && v->n == 1 && v->size == 8);
	reg_bundle_vol_free(v);
	drop("s");
}

static void test_sidecar_parse(void)
{
	const char *good = "# ferry volume set b.tar: 2 parts of at most 5 bytes, 7 bytes in all\n"
			   "# b.tar.000: 5 bytes\n"
			   "SHA256 (b.tar.000) = "
			   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"
			   "# b.tar.001: 2 bytes\n"
			   "SHA256 (b.tar.001) = "
			   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n";
	reg_bundle_sidecar_part *p = NULL;
	size_t n = 0;
	cm_error err = {0};
	TU_CHECK_MSG(reg_bundle_sidecar_parse(&p, &n, good, strlen(good), &err) == 0, "%s",
		     err.msg);
	TU_CHECK(n == 2);
	if (p && n == 2) {
		TU_CHECK_STR(p[0].name, "b.tar.000");
		TU_CHECK(p[0].has_size && p[0].size == 5 && p[1].size == 2);
		TU_CHECK(strncmp(p[1].hex, "e3b0c442", 8) == 0);
	}
	free(p);
	static const char *bad[] = {
	    "SHA256 (b.tar.000) = "
	    "zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
	    "SHA256 (../b.tar.000) = "
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
	    "b.tar.000 5\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = NULL;
		TU_CHECK_MSG(reg_bundle_sidecar_parse(&p, &n, bad[i], strlen(bad[i]), &err) ==
				 CM_EVERIFY,
			     "accepted: %s", bad[i]);
		free(p);
	}
}

int main(void)
{
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	TU_RUN(test_size_parse);
	TU_RUN(test_offset_mapping);
	TU_RUN(test_set_checks);
	TU_RUN(test_sidecar_parse);
	cm_rmtree(g_dir);
	TU_EXIT();
}
