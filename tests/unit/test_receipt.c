/* Receipts (registry/reg_receipt.c, docs/bundle-format.md "Receipts"): the
 * parser against hostile input (wrong types, bad digests, caps, duplicate
 * keys, one digest with two sizes), the round trip through the writer, and
 * the sorted lookup the delta build uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_error.h"
#include "cm_file.h"
#include "reg_receipt.h"
#include "tu.h"

#define H1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define HX "5555555555555555555555555555555555555555555555555555555555555555"

static int parse(reg_receipt *r, const char *s, cm_error *err)
{
	return reg_receipt_parse(r, s, strlen(s), "r.json", err);
}

static void test_parse_ok(void)
{
	reg_receipt r;
	cm_error err = {0};
	const char *s =
	    "{\"receiptVersion\":1,\"bundles\":[{\"name\":\"kf\",\"version\":\"1\","
	    "\"sumsSha256\":\"" HX "\"}],\"images\":[{\"ref\":\"docker.io/library/a:1\","
	    "\"digest\":\"" H1 "\"}],\"blobs\":[{\"digest\":\"" H2 "\",\"size\":7},"
	    "{\"digest\":\"" H1 "\",\"size\":5},{\"digest\":\"" H2 "\",\"size\":7}]}";
	TU_CHECK(parse(&r, s, &err) == 0);
	TU_CHECK(r.n_bundles == 1 && r.n_images == 1);
	TU_CHECK_MSG(r.n_blobs == 2, "duplicates kept once: %zu", r.n_blobs);
	TU_CHECK_STR(r.blobs[0].digest.s, H1); /* sorted */
	reg_digest d;
	TU_CHECK(reg_digest_parse(&d, H2, &err) == 0);
	const reg_receipt_blob *b = reg_receipt_blob_find(&r, &d);
	TU_CHECK(b && b->size == 7);
	TU_CHECK(reg_digest_parse(&d, "sha256:" HX, &err) == 0);
	TU_CHECK(reg_receipt_blob_find(&r, &d) == NULL);
	TU_CHECK_STR(r.bundles[0].sums, HX);
	/* only receiptVersion: an empty receipt */
	reg_receipt_free(&r);
	TU_CHECK(parse(&r, "{\"receiptVersion\":1}", &err) == 0 && r.n_blobs == 0);
	reg_receipt_free(&r);
	reg_receipt_free(NULL);
}

static void test_parse_hostile(void)
{
	static const struct {
		const char *json, *want;
	} bad[] = {
	    {"", "not JSON"},
	    {"[]", "not a JSON object"},
	    {"{}", "receiptVersion"},
	    {"{\"receiptVersion\":2}", "receiptVersion"},
	    {"{\"receiptVersion\":\"1\"}", "receiptVersion"},
	    {"{\"receiptVersion\":1,\"receiptVersion\":1}", "not JSON"},
	    {"{\"receiptVersion\":1,\"blobs\":{}}", "\"blobs\" is not an array"},
	    {"{\"receiptVersion\":1,\"blobs\":[1]}", "blobs[0]: not an object"},
	    {"{\"receiptVersion\":1,\"blobs\":[{\"digest\":\"" H1 "\"}]}", "blobs[0]: \"size\""},
	    {"{\"receiptVersion\":1,\"blobs\":[{\"digest\":\"" H1 "\",\"size\":-1}]}", "size"},
	    {"{\"receiptVersion\":1,\"blobs\":[{\"digest\":\"" H1 "\",\"size\":\"5\"}]}", "size"},
	    {"{\"receiptVersion\":1,\"blobs\":[{\"digest\":\"" H1 "\",\"size\":1.5}]}", "size"},
	    {"{\"receiptVersion\":1,\"blobs\":[{\"digest\":7,\"size\":1}]}", "not a string"},
	    {"{\"receiptVersion\":1,\"blobs\":[{\"digest\":\"md5:00\",\"size\":1}]}", "blobs[0]"},
	    {"{\"receiptVersion\":1,\"blobs\":[{\"digest\":\"sha256:../../etc\",\"size\":1}]}",
	     "blobs[0]"},
	    {"{\"receiptVersion\":1,\"blobs\":[{\"digest\":\"" H1 "\",\"size\":1},{\"digest\":\"" H1
	     "\",\"size\":2}]}",
	     "two sizes"},
	    {"{\"receiptVersion\":1,\"images\":[{\"digest\":\"" H1 "\"}]}", "images[0]: \"ref\""},
	    {"{\"receiptVersion\":1,\"images\":[{\"ref\":\"a\\u0000b\",\"digest\":\"" H1 "\"}]}",
	     "NUL"},
	    {"{\"receiptVersion\":1,\"bundles\":[{\"name\":\"x\"}]}", "sumsSha256"},
	    {"{\"receiptVersion\":1,\"bundles\":[{\"sumsSha256\":\"abc\"}]}", "64 hex"},
	    {"{\"receiptVersion\":1,\"bundles\":[{\"sumsSha256\":\"" HX "\",\"name\":[]}]}",
	     "not a string"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reg_receipt r;
		cm_error err = {0};
		int rc = parse(&r, bad[i].json, &err);
		TU_CHECK_MSG(rc == CM_EINVAL, "case %zu: rc %d", i, rc);
		TU_CHECK_MSG(strstr(err.msg, bad[i].want) != NULL, "case %zu: '%s' lacks '%s'", i,
			     err.msg, bad[i].want);
		TU_CHECK_MSG(strstr(err.msg, "r.json") != NULL, "case %zu: '%s' names no input", i,
			     err.msg);
		TU_CHECK(r.blobs == NULL && r.n_blobs == 0); /* nothing left behind */
	}
	/* a long ref: capped, named */
	char *big = malloc(2000);
	TU_CHECK(big != NULL);
	if (big) {
		char ref[700];
		memset(ref, 'a', sizeof(ref) - 1);
		ref[sizeof(ref) - 1] = '\0';
		snprintf(big, 2000,
			 "{\"receiptVersion\":1,\"images\":[{\"ref\":\"%s\",\"digest\":\"" H1
			 "\"}]}",
			 ref);
		reg_receipt r;
		cm_error err = {0};
		TU_CHECK(parse(&r, big, &err) == CM_EINVAL);
		TU_CHECK(strstr(err.msg, "images[0]") != NULL);
		free(big);
	}
	/* over the size cap: refused before parsing */
	reg_receipt r;
	cm_error err = {0};
	TU_CHECK(reg_receipt_parse(&r, "{}", REG_RECEIPT_MAX_BYTES + 1, "r.json", &err) ==
		 CM_EINVAL);
	TU_CHECK(strstr(err.msg, "larger than") != NULL);
}

static void test_caps(void)
{
	/* more bundles than REG_RECEIPT_MAX_BUNDLES: refused by count */
	size_t n = REG_RECEIPT_MAX_BUNDLES + 1;
	size_t cap = 64 + n * 4;
	char *s = malloc(cap);
	TU_CHECK(s != NULL);
	if (!s)
		return;
	size_t len = (size_t)snprintf(s, cap, "{\"receiptVersion\":1,\"bundles\":[");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s{}", i ? "," : "");
	len += (size_t)snprintf(s + len, cap - len, "]}");
	reg_receipt r;
	cm_error err = {0};
	TU_CHECK(reg_receipt_parse(&r, s, len, "r.json", &err) == CM_EINVAL);
	TU_CHECK_MSG(strstr(err.msg, "more than") != NULL, "%s", err.msg);
	free(s);
}

static void test_round_trip(void)
{
	char dir[] = "/tmp/ferry-receipt-test.XXXXXX", path[256];
	TU_CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/lab.receipt.json", dir);
	reg_receipt r, back;
	memset(&r, 0, sizeof(r));
	cm_error err = {0};
	reg_digest d1, d2;
	reg_receipt_bundle b;
	memset(&b, 0, sizeof(b));
	snprintf(b.name, sizeof(b.name), "kubeflow \"quoted\"");
	snprintf(b.version, sizeof(b.version), "1.9");
	snprintf(b.sums, sizeof(b.sums), "%s", HX);
	TU_CHECK(reg_digest_parse(&d1, H1, &err) == 0 && reg_digest_parse(&d2, H2, &err) == 0);
	TU_CHECK(reg_receipt_add_bundle(&r, &b, &err) == 0);
	TU_CHECK(reg_receipt_add_bundle(&r, &b, &err) == 0 && r.n_bundles == 1);
	TU_CHECK(reg_receipt_add_image(&r, "docker.io/library/a:1", &d1, &err) == 0);
	TU_CHECK(reg_receipt_add_blob(&r, &d2, 1ull << 40, &err) == 0);
	TU_CHECK(reg_receipt_add_blob(&r, &d1, 3, &err) == 0);
	TU_CHECK(reg_receipt_sort(&r, &err) == 0);
	TU_CHECK(reg_receipt_save(&r, path, &err) == 0);
	TU_CHECK(reg_receipt_load(&back, path, &err) == 0);
	TU_CHECK(back.n_blobs == 2 && back.n_images == 1 && back.n_bundles == 1);
	TU_CHECK_STR(back.bundles[0].name, "kubeflow \"quoted\"");
	TU_CHECK(back.n_blobs == 2 && back.blobs[1].size == (1ull << 40));
	TU_CHECK_STR(back.images[0].ref, "docker.io/library/a:1");
	reg_receipt_free(&back);
	reg_receipt_free(&r);
	/* a missing file: an error naming it */
	char missing[300];
	snprintf(missing, sizeof(missing), "%s/none.json", dir);
	TU_CHECK(reg_receipt_load(&back, missing, &err) < 0);
	TU_CHECK(strstr(err.msg, "none.json") != NULL);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	TU_RUN(test_parse_ok);
	TU_RUN(test_parse_hostile);
	TU_RUN(test_caps);
	TU_RUN(test_round_trip);
	TU_EXIT();
}
