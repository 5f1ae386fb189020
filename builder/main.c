/* ferry-build: make a signed bundle on a connected host. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const struct verb {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} verbs[] = {
    {"build", cmd_build, "build SPEC.yaml -o BUNDLE.tar --key KEY  make a signed bundle"},
    {"keygen", cmd_keygen, "keygen [-o PREFIX]                     make an Ed25519 signing key"},
    {"images", cmd_images, "images [--json] PATH|SPEC...            list the images manifests use"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ferry-build COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %s\n", verbs[i].help);
	fprintf(f, "\nferry-build --version prints the version.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 64;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("ferry-build %s\n", FERRY_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(argv[1], verbs[i].name) == 0)
			return verbs[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "ferry-build: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 64;
}
