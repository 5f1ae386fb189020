/* ferry-install subcommands: one cmd_<verb>.c each; cmd_opts.c holds what
 * they share. */
#ifndef INS_CMD_H
#define INS_CMD_H

#include <getopt.h>
#include <jansson.h>
#include <stddef.h>

#include "cm_error.h"

int cmd_verify(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_mirror_config(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_receipt(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_check_signature(int argc, char **argv);

/* One option of a verb: what its value fills. */
typedef enum {
	CMD_STR,   /* const char *out */
	CMD_FLAG,  /* int out = min (no value) */
	CMD_INT,   /* int out, min..max */
	CMD_LLONG, /* long long out, min..max */
	CMD_SECS,  /* double out, seconds >= 0 */
	CMD_ONEOF, /* int out = min + the index of the value in choices "a|b|c" */
	CMD_LIST,  /* const char *out[max], repeatable; *n counts; choices: characters a
		    * value may not hold (nor be empty) */
} cmd_kind;

typedef struct cmd_opt {
	const char *name; /* the long option; NULL ends the table */
	char shortc;	  /* its one-letter form, or 0 */
	cmd_kind kind;
	void *out;
	long min, max;
	size_t *n;
	const char *choices;
	const char *bad; /* said when the value does not fit (a format for the value) */
} cmd_opt;

/* Table rows: a string, a flag (*p = v), an int (a long long) in lo..hi,
 * seconds, one of "a|b"
 * (*p = first + its index), a list (at most max, *n counts); bad is said
 * when the value does not fit. */
#define CMD_S(name, c, p)                                                                          \
	{                                                                                          \
		name, c, CMD_STR, p, 0, 0, NULL, NULL, NULL                                        \
	}
#define CMD_F(name, c, p, v)                                                                       \
	{                                                                                          \
		name, c, CMD_FLAG, p, v, 0, NULL, NULL, NULL                                       \
	}
#define CMD_I(name, c, p, lo, hi, bad)                                                             \
	{                                                                                          \
		name, c, CMD_INT, p, lo, hi, NULL, NULL, bad                                       \
	}
#define CMD_LL(name, p, lo, hi, bad)                                                               \
	{                                                                                          \
		name, 0, CMD_LLONG, p, lo, hi, NULL, NULL, bad                                     \
	}
#define CMD_D(name, p, bad)                                                                        \
	{                                                                                          \
		name, 0, CMD_SECS, p, 0, 0, NULL, NULL, bad                                        \
	}
#define CMD_E(name, p, first, choices, bad)                                                        \
	{                                                                                          \
		name, 0, CMD_ONEOF, p, first, 0, NULL, choices, bad                                \
	}
#define CMD_L(name, p, n, max, bad)                                                                \
	{                                                                                          \
		name, 0, CMD_LIST, p, 0, max, n, NULL, bad                                         \
	}
/* --realm-credentials HOST[:PORT] (push, install, receipt) */
#define CMD_REALM(name, p, n)                                                                      \
	{                                                                                          \
		name, 0, CMD_LIST, p, 0, 8, n, "/ @?#",                                            \
		    "--realm-credentials takes a host or host:port, at most 8 times"               \
	}
#define CMD_END                                                                                    \
	{                                                                                          \
		NULL, 0, CMD_STR, NULL, 0, 0, NULL, NULL, NULL                                     \
	}

/* getopt_long over opts, plus --help/-h (usage on stdout), then min..max
 * operands (max -1: any number). -1: go on, optind at the first operand;
 * else the exit code: 0 after --help, 64 for an unknown option or a wrong
 * number of operands (usage on stderr) or a bad value (its bad message). */
int cmd_opts_parse(const char *verb, int argc, char **argv, const cmd_opt *opts, const char *usage,
		   int min, int max);

/* Say "ferry-install VERB: " fmt on stderr (bad usage); 64. */
int cmd_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Say "ferry-install VERB: <err>" and, for a verification failure with
 * bundle given, "... VERIFICATION FAILED: BUNDLE" and " (why)" when given;
 * the exit code of rc. */
int cmd_fail(const char *verb, int rc, const cm_error *err, const char *bundle, const char *why);

void cmd_print_json(json_t *j); /* indented, on stdout */

void cmd_human(char *out, size_t n, double bytes); /* "1.5 MiB" */

#endif
