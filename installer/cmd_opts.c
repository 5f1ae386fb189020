/* What the verbs share: their options as a table, and how they report a
 * failure (cmd.h). */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_parse.h"
#include "cmd.h"

#define MAX_OPTS 64

/* One value of opt o, or 64 (said) when it is bad. */
static int take(const char *verb, const cmd_opt *o, const char *arg)
{
	long v;
	char *end;
	int bad = 0;
	switch (o->kind) {
	case CMD_STR:
		*(const char **)o->out = arg;
		break;
	case CMD_FLAG:
		*(int *)o->out = (int)o->min;
		break;
	case CMD_INT:
		if (!(bad = cm_parse_long(&v, arg, o->min, o->max) < 0))
			*(int *)o->out = (int)v;
		break;
	case CMD_LLONG:
		if (!(bad = cm_parse_long(&v, arg, o->min, o->max) < 0))
			*(long long *)o->out = v;
		break;
	case CMD_SECS:
		*(double *)o->out = strtod(arg, &end);
		bad = *end != '\0' || *(double *)o->out < 0;
		break;
	case CMD_ONEOF: { /* *out = min + the index of arg in "a|b|c" */
		size_t l = strlen(arg);
		const char *c = o->choices;
		bad = 1;
		for (int i = 0; bad && c; i++) {
			if (strncmp(c, arg, l) == 0 && (c[l] == '|' || c[l] == '\0')) {
				*(int *)o->out = (int)o->min + i;
				bad = 0;
			}
			if ((c = strchr(c, '|')))
				c++;
		}
		break;
	}
	case CMD_LIST:
		if (!(bad = *o->n == (size_t)o->max ||
			    (o->choices && (!*arg || arg[strcspn(arg, o->choices)]))))
			((const char **)o->out)[(*o->n)++] = arg;
		break;
	}
	if (!bad)
		return 0;
	fprintf(stderr, "ferry-install %s: ", verb);
	fprintf(stderr, o->bad, arg);
	fputc('\n', stderr);
	return 64;
}

int cmd_opts_parse(const char *verb, int argc, char **argv, const cmd_opt *opts, const char *usage,
		   int min, int max)
{
	struct option lo[MAX_OPTS + 2];
	char shorts[2 * MAX_OPTS + 2];
	size_t n = 0, s = 0;
	for (; opts[n].name && n < MAX_OPTS; n++) {
		int arg = opts[n].kind != CMD_FLAG;
		lo[n] = (struct option){opts[n].name, arg ? required_argument : no_argument, NULL,
					256 + (int)n};
		if (opts[n].shortc) {
			shorts[s++] = opts[n].shortc;
			if (arg)
				shorts[s++] = ':';
		}
	}
	lo[n] = (struct option){"help", no_argument, NULL, 'h'};
	memset(&lo[n + 1], 0, sizeof(lo[n + 1]));
	shorts[s++] = 'h';
	shorts[s] = '\0';
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		const cmd_opt *o = c >= 256 ? &opts[c - 256] : NULL;
		for (size_t i = 0; !o && c != '?' && c != ':' && i < n; i++)
			if (opts[i].shortc == c)
				o = &opts[i];
		if (!o) {
			fputs(usage, stderr);
			return 64;
		}
		if (take(verb, o, optarg) != 0)
			return 64;
	}
	if (argc - optind < min || (max >= 0 && argc - optind > max)) {
		fputs(usage, stderr);
		return 64;
	}
	return -1;
}

int cmd_usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "ferry-install %s: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 64;
}

int cmd_fail(const char *verb, int rc, const cm_error *err, const char *bundle, const char *why)
{
	fprintf(stderr, "ferry-install %s: %s\n", verb, err->msg);
	if (rc == CM_EVERIFY && bundle)
		fprintf(stderr, "ferry-install %s: VERIFICATION FAILED: %s%s%s%s\n", verb, bundle,
			why ? " (" : "", why ? why : "", why ? ")" : "");
	return cm_exit_code(rc);
}

void cmd_print_json(json_t *j)
{
	char *t = json_dumps(j, JSON_INDENT(2));
	if (t)
		printf("%s\n", t);
	free(t);
}

void cmd_human(char *out, size_t n, double b)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;
	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(out, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}
