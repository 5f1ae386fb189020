#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bld_build.h"
#include "cmd.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: ferry-build build SPEC.yaml -o BUNDLE.tar --key KEY.key [--cache DIR] [--quiet]\n"
		   "  SOURCE_DATE_EPOCH sets the creation time (reproducible bundles)\n");
}

/* SOURCE_DATE_EPOCH, else now. */
static int creation_time(time_t *out)
{
	const char *s = getenv("SOURCE_DATE_EPOCH");
	if (!s || !*s) {
		*out = time(NULL);
		return 0;
	}
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < 0)
		return -1;
	*out = (time_t)v;
	return 0;
}

int cmd_build(int argc, char **argv)
{
	bld_build_opts o = { NULL, NULL, NULL, NULL, 0, stderr };
	static const struct option opts[] = { { "output", required_argument, NULL, 'o' },
					      { "key", required_argument, NULL, 'k' },
					      { "cache", required_argument, NULL, 'c' },
					      { "quiet", no_argument, NULL, 'q' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:k:c:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			o.out_path = optarg;
			break;
		case 'k':
			o.key_path = optarg;
			break;
		case 'c':
			o.cache_dir = optarg;
			break;
		case 'q':
			o.log = NULL;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (optind + 1 != argc || !o.out_path || !o.key_path) {
		usage(stderr);
		return 64;
	}
	o.spec_path = argv[optind];
	if (creation_time(&o.created) < 0) {
		fprintf(stderr, "ferry-build build: SOURCE_DATE_EPOCH is not a number of seconds\n");
		return 64;
	}
	cm_error err = { 0, "" };
	bld_build_result r = { 0, 0, 0, 0, "" };
	int rc = bld_build(&r, &o, &err);
	if (rc < 0) {
		fprintf(stderr, "ferry-build build: %s\n", err.msg);
		return cm_exit_code(rc);
	}
	printf("wrote %s: %zu images, %zu files, %llu bytes, signed by %s\n", o.out_path, r.images,
	       r.files, r.bytes, r.signer);
	return 0;
}
