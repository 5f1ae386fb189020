/* cmd_opts: the installer verbs' option tables (installer/cmd.h). Every
 * kind of row fills what it names; a value out of range, a full list, an
 * unknown choice or option and a wrong operand count are usage errors
 * (64); --help is 0; the parse goes on (-1) otherwise. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "../../installer/cmd.h" /* builder/ has a cmd.h too */
#include "tu.h"

static const char usage[] = "# usage: test [options] A [B]\n";

typedef struct vals {
	const char *s;
	int flag, num, pick;
	long long big;
	double secs;
	const char *list[2];
	size_t n;
} vals;

/* Parse the NULL-terminated args (after a verb name) into v. */
static int parse(vals *v, const char *const *args)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = (char *)"verb";
	for (; *args && argc < 31; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	memset(v, 0, sizeof(*v));
	v->num = 7;
	const cmd_opt opts[] = {
	    CMD_S("str", 's', &v->s),
	    CMD_F("flag", 'f', &v->flag, 1),
	    CMD_F("no-flag", 0, &v->flag, 0),
	    CMD_I("num", 'n', &v->num, 1, 64, "--num is 1..64, not '%s'"),
	    CMD_LL("big", &v->big, 0, LONG_MAX, "--big is a byte count"),
	    CMD_D("secs", &v->secs, "bad number of seconds '%s'"),
	    CMD_E("pick", &v->pick, 10, "eager|lazy|never", "--pick is eager, lazy or never"),
	    CMD_L("item", v->list, &v->n, 2, "at most 2 --item"),
	    CMD_END,
	};
	return cmd_opts_parse("test", argc, argv, opts, usage, 1, 2);
}

static void test_fills(void)
{
	vals v;
	const char *a[] = {"-s",	   "x",	     "--flag", "--num",	 "64",	 "--big",
			   "123456789012", "--secs", "2.5",    "--pick", "lazy", "--item",
			   "i1",	   "--item", "i2",     "opA",	 "opB",	 NULL};
	TU_CHECK(parse(&v, a) == -1);
	TU_CHECK_STR(v.s, "x");
	TU_CHECK(v.flag == 1);
	TU_CHECK(v.num == 64);
	TU_CHECK(v.big == 123456789012LL);
	TU_CHECK(v.secs == 2.5);
	TU_CHECK(v.pick == 11);
	TU_CHECK(v.n == 2);
	TU_CHECK_STR(v.list[0], "i1");
	TU_CHECK_STR(v.list[1], "i2");
	const char *b[] = {"--flag", "--no-flag", "-n",	   "3",	  "--pick",
			   "never",  "--pick",	  "eager", "opA", NULL};
	TU_CHECK(parse(&v, b) == -1);
	TU_CHECK(v.flag == 0);
	TU_CHECK(v.num == 3);
	TU_CHECK(v.pick == 10); /* the last one given */
	const char *c[] = {"opA", NULL};
	TU_CHECK(parse(&v, c) == -1);
	TU_CHECK(v.num == 7 && v.s == NULL && v.n == 0); /* defaults kept */
}

static void test_refused(void)
{
	vals v;
	const char *bad[][5] = {
	    {"--num", "0", "opA", NULL},
	    {"--num", "65", "opA", NULL},
	    {"--num", "3x", "opA", NULL},
	    {"--big", "-1", "opA", NULL},
	    {"--secs", "-1", "opA", NULL},
	    {"--secs", "1s", "opA", NULL},
	    {"--pick", "lazier", "opA", NULL},
	    {"--pick", "laz", "opA", NULL},
	    {"--pick", "", "opA", NULL},
	    {"--unknown", "opA", NULL},
	    {"-z", "opA", NULL},
	    {"--str", NULL},
	    {NULL},
	    {"a", "b", "c", NULL},
	    {"--item", "1", "--item", "2", NULL},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TU_CHECK_MSG(parse(&v, bad[i]) == 64, "case %zu", i);
	/* a third --item: the list holds two */
	const char *full[] = {"--item", "1", "--item", "2", "--item", "3", "opA", NULL};
	TU_CHECK(parse(&v, full) == 64);
	TU_CHECK(v.n == 2);
}

static void test_help(void)
{
	vals v;
	const char *h[] = {"--help", NULL};
	TU_CHECK(parse(&v, h) == 0);
	const char *h2[] = {"-h", "--num", "0", NULL}; /* help first: no value is checked */
	TU_CHECK(parse(&v, h2) == 0);
}

int main(void)
{
	TU_RUN(test_fills);
	TU_RUN(test_refused);
	TU_RUN(test_help);
	TU_EXIT();
}
