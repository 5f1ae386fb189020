#include "cm_verb.h"

#include <stdio.h>
#include <string.h>

#include "cm_version.h"

static void usage(FILE *f, const char *prog, const cm_verb *verbs, size_t n, const char *footer)
{
	fprintf(f, "usage: %s COMMAND [ARGS]\n\ncommands:\n", prog);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "  %s\n", verbs[i].help);
	fprintf(f, "\n%s --version prints the version; COMMAND --help shows its options.\n", prog);
	if (footer)
		fprintf(f, "%s\n", footer);
}

int cm_verb_main(const char *prog, const cm_verb *verbs, size_t n, const char *footer, int argc,
		 char **argv)
{
	if (argc < 2) {
		usage(stderr, prog, verbs, n, footer);
		return 64;
	}
	const char *v = argv[1];
	if (strcmp(v, "--help") == 0 || strcmp(v, "-h") == 0 || strcmp(v, "help") == 0) {
		usage(stdout, prog, verbs, n, footer);
		return 0;
	}
	if (strcmp(v, "--version") == 0) {
		printf("%s %s\n", prog, cm_version()); /* the marker: cm_version.h */
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(v, verbs[i].name) == 0)
			return verbs[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown command '%s'\n", prog, v);
	usage(stderr, prog, verbs, n, footer);
	return 64;
}
