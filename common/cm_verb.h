/* The verb table both programs dispatch through (crun style): main.c
 * lists its verbs, one cmd_<verb>.c each, and calls cm_verb_main. */
#ifndef CM_VERB_H
#define CM_VERB_H

#include <stddef.h>

typedef struct cm_verb {
	const char *name;
	int (*fn)(int argc, char **argv); /* argv[0] is the verb */
	const char *help;		  /* one usage line */
} cm_verb;

/* Handles --help, --version and unknown verbs (exit 64); otherwise runs
 * the verb and returns its exit code. footer may be NULL. Called only from
 * main(), so it may print. */
int cm_verb_main(const char *prog, const cm_verb *verbs, size_t n, const char *footer, int argc,
		 char **argv);

#endif
