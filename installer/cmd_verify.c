#include <getopt.h>
#include <stdio.h>
#include <time.h>

#include "cmd.h"
#include "ins_verify.h"

int cmd_verify(int argc, char **argv)
{
	ins_verify_opts o = {NULL, 0, 1, NULL, NULL, NULL};
	int quiet = 0;
	static const struct option opts[] = {
	    {"pubkey", required_argument, NULL, 'p'},
	    {"insecure-skip-signature", no_argument, NULL, 'S'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o.pubkey_path = optarg;
			break;
		case 'S':
			o.insecure_skip_signature = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			printf("usage: ferry-install verify BUNDLE --pubkey KEY.pub "
			       "[--insecure-skip-signature]\n");
			return 0;
		default:
			return 64;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: ferry-install verify BUNDLE --pubkey KEY.pub\n");
		return 64;
	}
	const char *bundle = argv[optind];
	cm_error err = {0, ""};
	ins_verify_result r;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = ins_verify_bundle(&r, bundle, &o, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc < 0) {
		fprintf(stderr, "ferry-install verify: %s\n", err.msg);
		if (rc == CM_EVERIFY)
			fprintf(stderr, "ferry-install verify: VERIFICATION FAILED: %s\n", bundle);
		return cm_exit_code(rc);
	}
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (!quiet) {
		if (o.insecure_skip_signature)
			printf("WARNING: signature NOT checked (--insecure-skip-signature)\n");
		else
			printf("signature ok: %s\n", r.fingerprint);
		printf("verified %s: %llu members, %llu bytes hashed in %.2fs (%.0f MB/s)\n",
		       bundle, (unsigned long long)r.stats.members,
		       (unsigned long long)r.stats.bytes_hashed, secs,
		       secs > 0 ? (double)r.stats.bytes_hashed / 1e6 / secs : 0.0);
	}
	return 0;
}
