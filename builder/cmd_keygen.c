#include <getopt.h>
#include <stdio.h>

#include "cm_error.h"
#include "cmd.h"
#include "sig.h"

int cmd_keygen(int argc, char **argv)
{
	const char *prefix = "ferry";
	static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			prefix = optarg;
			break;
		case 'h':
			printf("usage: ferry-build keygen [-o PREFIX]\n"
			       "writes PREFIX.key (secret, 0600) and PREFIX.pub; default PREFIX is "
			       "ferry\n");
			return 0;
		default:
			return 64;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "ferry-build keygen: unexpected argument '%s'\n", argv[optind]);
		return 64;
	}
	cm_error err = {0};
	char fpr[SIG_FPR_LEN + 1];
	int rc = sig_keygen(fpr, prefix, &err);
	if (rc < 0) {
		fprintf(stderr, "ferry-build keygen: %s\n", err.msg);
		return cm_exit_code(rc);
	}
	printf("wrote %s.key (secret, mode 0600) and %s.pub\nfingerprint %s\n", prefix, prefix,
	       fpr);
	return 0;
}
