#include <string.h>
#include <stdio.h>
#include <time.h>

#include "cmd.h"
#include "ins_install_bundle.h"
#include "ins_receipt.h"
#include "ins_verify.h"
#include "reg_bundle.h"

static void part_report(void *ctx, const char *part, uint64_t size, const char *problem)
{
	int quiet = *(int *)ctx;
	if (problem)
		fprintf(stderr, "ferry-install verify: %s: %s\n", part, problem);
	else if (!quiet)
		printf("%s: %llu bytes, sha256 ok\n", part, (unsigned long long)size);
}

/* --parts-only: the sidecar's sizes and sha256 sums, nothing else. */
static int parts_only(const char *bundle, int quiet)
{
	cm_error err = {0};
	int rc = reg_bundle_parts_check(bundle, part_report, &quiet, &err);
	if (rc < 0) {
		fprintf(stderr, "ferry-install verify: %s\n", err.msg);
		if (rc == CM_EVERIFY)
			fprintf(stderr, "ferry-install verify: PARTS CHECK FAILED: %s\n", bundle);
		return cm_exit_code(rc);
	}
	if (!quiet)
		printf("parts of %s match their sidecar (unsigned: this checks the copy, not "
		       "the content; run verify without --parts-only for that)\n",
		       bundle);
	return 0;
}

#define MAX_BASES 64

/* A delta (docs/bundle-format.md "Deltas"): checked on its own (every blob
 * its images need is carried or listed as omitted with the right size),
 * then against the bases given with --base (ins_delta_set_open opens and
 * verifies them). 0, or an exit code. */
static int verify_delta(ins_bundle *b, const ins_bundle_opts *o, const char *const *bases,
			size_t n_bases, int quiet)
{
	cm_error err = {0};
	ins_delta_set ds;
	reg_receipt missing, *om = &ds.omitted;
	memset(&missing, 0, sizeof(missing));
	int rc = ins_delta_set_open(&ds, b->x, b->bundle_json, b->bundle_json_len, bases, n_bases,
				    o->pubkey, o->insecure_skip_signature, &err);
	if (rc == 0 && !ds.is_delta && n_bases)
		fprintf(stderr, "ferry-install verify: %s is a full bundle; --base is not needed\n",
			b->path);
	uint64_t bytes = 0;
	for (size_t i = 0; i < om->n_blobs; i++)
		bytes += om->blobs[i].size;
	if (rc == 0 && ds.is_delta && !quiet) {
		printf("delta: %zu blobs (%llu bytes) left out, to come from a base", om->n_blobs,
		       (unsigned long long)bytes);
		for (size_t i = 0; i < om->n_bundles; i++)
			printf("%s %s %s (SHA256SUMS sha256 %.16s...)", i ? "," : ":",
			       om->bundles[i].name, om->bundles[i].version, om->bundles[i].sums);
		printf("\n");
	}
	if (rc == 0 && ds.is_delta && n_bases)
		rc = ins_delta_check_bases(&missing, om, ds.bases, bases, n_bases, &err);
	ins_rbundle self; /* a view: b owns the reader and the bytes */
	memset(&self, 0, sizeof(self));
	self.x = b->x;
	self.bundle_json.data = b->bundle_json;
	self.bundle_json.len = b->bundle_json_len;
	for (size_t i = 0; rc == 0 && i < missing.n_blobs; i++) {
		char users[1024];
		ins_delta_users(users, sizeof(users), &self, &missing.blobs[i].digest);
		fprintf(stderr, "ferry-install verify: missing: %s (%llu bytes), needed by %s\n",
			missing.blobs[i].digest.s, (unsigned long long)missing.blobs[i].size,
			users[0] ? users : "(no image)");
	}
	if (rc == 0 && missing.n_blobs)
		rc = cm_error_set(&err, CM_EVERIFY, "%zu omitted blobs are in none of the bases",
				  missing.n_blobs);
	if (rc == 0 && ds.is_delta && n_bases && !quiet)
		printf("bases hold every omitted blob (%zu bases verified)\n", n_bases);
	reg_receipt_free(&missing);
	ins_delta_set_free(&ds);
	return rc < 0 ? cmd_fail("verify", rc, &err, b->path, NULL) : 0;
}

int cmd_verify(int argc, char **argv)
{
	const char *bases[MAX_BASES];
	size_t n_bases = 0;
	ins_bundle_opts o;
	memset(&o, 0, sizeof(o));
	int quiet = 0, only_parts = 0, jobs = 0;
	const cmd_opt opts[] = {
	    CMD_S("pubkey", 'p', &o.pubkey),
	    CMD_F("insecure-skip-signature", 0, &o.insecure_skip_signature, 1),
	    CMD_I("jobs", 'j', &jobs, 1, 64, "--jobs takes 1 to 64"),
	    CMD_F("quiet", 'q', &quiet, 1),
	    CMD_F("parts-only", 0, &only_parts, 1),
	    CMD_L("base", bases, &n_bases, MAX_BASES, "at most 64 --base"),
	    CMD_END,
	};
	static const char usage[] =
	    "usage: ferry-install verify BUNDLE --pubkey KEY.pub [--jobs N] [--quiet]\n"
	    "       ferry-install verify BUNDLE --insecure-skip-signature (digests only)\n"
	    "       ferry-install verify --parts-only BUNDLE (a volume set against its sidecar\n"
	    "                                    BUNDLE.parts: sizes and sha256, unsigned)\n"
	    "  BUNDLE: a file, or a volume set named by its first part (B.tar.000) or prefix\n"
	    "  --base OLD.tar (repeatable): a delta's bases; checks they hold every omitted blob\n";
	int c = cmd_opts_parse("verify", argc, argv, opts, usage, 1, 1);
	if (c >= 0)
		return c;
	o.threads = (unsigned)jobs;
	const char *bundle = argv[optind];
	if (only_parts)
		return parts_only(bundle, quiet);
	cm_error err = {0};
	ins_bundle b;
	if (o.insecure_skip_signature)
		fprintf(stderr,
			"ferry-install verify: WARNING: signature NOT checked "
			"(--insecure-skip-signature): anyone could have made this bundle\n");
	int rc = ins_bundle_open(&b, bundle, &o, &err);
	if (rc < 0) {
		ins_bundle_close(&b);
		return cmd_fail("verify", rc, &err, bundle, NULL);
	}
	double secs = b.verify_secs;
	if (!quiet) {
		if (b.insecure)
			printf("WARNING: signature NOT checked (--insecure-skip-signature)\n");
		else
			printf("signature ok: %s\n", b.fingerprint);
		printf("verified %s: %zu members, %llu bytes hashed in %.2fs (%.0f MB/s)\n", bundle,
		       b.n_m, (unsigned long long)b.bytes_hashed, secs,
		       secs > 0 ? (double)b.bytes_hashed / 1e6 / secs : 0.0);
	}
	rc = verify_delta(&b, &o, bases, n_bases, quiet);
	ins_bundle_close(&b);
	return rc;
}
