#include <getopt.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include "cm_parse.h"
#include "cmd.h"
#include "ins_install_bundle.h"
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

int cmd_verify(int argc, char **argv)
{
	ins_bundle_opts o;
	memset(&o, 0, sizeof(o));
	int quiet = 0, only_parts = 0;
	static const struct option opts[] = {
	    {"pubkey", required_argument, NULL, 'p'},
	    {"insecure-skip-signature", no_argument, NULL, 'S'},
	    {"jobs", required_argument, NULL, 'j'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"parts-only", no_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const char usage[] =
	    "usage: ferry-install verify BUNDLE --pubkey KEY.pub [--jobs N] [--quiet]\n"
	    "       ferry-install verify BUNDLE --insecure-skip-signature (digests only)\n"
	    "       ferry-install verify --parts-only BUNDLE (a volume set against its sidecar\n"
	    "                                    BUNDLE.parts: sizes and sha256, unsigned)\n"
	    "  BUNDLE: a file, or a volume set named by its first part (B.tar.000) or prefix\n";
	int c;
	long v;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:j:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o.pubkey = optarg;
			break;
		case 'S':
			o.insecure_skip_signature = 1;
			break;
		case 'j':
			if (cm_parse_long(&v, optarg, 1, 64) < 0) {
				fprintf(stderr, "ferry-install verify: --jobs takes 1 to 64\n");
				return 64;
			}
			o.threads = (unsigned)v;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'P':
			only_parts = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 64;
		}
	}
	if (optind + 1 != argc) {
		fputs(usage, stderr);
		return 64;
	}
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
		fprintf(stderr, "ferry-install verify: %s\n", err.msg);
		if (rc == CM_EVERIFY)
			fprintf(stderr, "ferry-install verify: VERIFICATION FAILED: %s\n", bundle);
		return cm_exit_code(rc);
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
	ins_bundle_close(&b);
	return 0;
}
