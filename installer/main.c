/* ferry-install: verify, serve and install a bundle in the isolated lab.
 * Links verify-only signing code. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const struct verb {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} verbs[] = {
    {"verify", cmd_verify, "verify BUNDLE --pubkey KEY.pub      check signature and every digest"},
    {"inspect", cmd_inspect,
     "inspect BUNDLE [--pubkey KEY.pub] [--json]  list what a bundle holds"},
    {"serve", cmd_serve,
     "serve BUNDLE --pubkey KEY.pub [--listen ADDR:PORT] [--tls-self-signed DIR]  OCI registry "
     "from the bundle"},
    {"install", cmd_install,
     "install BUNDLE --pubkey KEY.pub --target TARGET [--mode load|mirror|push] [--dry-run]"},
    {"mirror-config", cmd_mirror_config,
     "mirror-config BUNDLE --registry HOST:PORT [--ca CA] --format containerd|registries.conf|okd "
     "-o DIR"},
    {"push", cmd_push,
     "push BUNDLE --pubkey KEY.pub --to HOST[:PORT][/PREFIX]  copy every image into a registry"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ferry-install COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %s\n", verbs[i].help);
	fprintf(f, "\nexit codes: 0 ok, 1 error, 2 verification failed, 64 usage\n");
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
		printf("ferry-install %s\n", FERRY_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(argv[1], verbs[i].name) == 0)
			return verbs[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "ferry-install: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 64;
}
