#include "ins_ctx.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define QUERY_MAX ((size_t)8 << 20)

/* Say prefix + fmt (a longer message is cut: it is only shown). */
static void vsay(void (*say)(void *, int, const char *), void *ud, int level, const char *prefix,
		 const char *fmt, va_list ap)
{
	char msg[4096];
	size_t l = strlen(prefix) < sizeof(msg) ? strlen(prefix) : 0;
	memcpy(msg, prefix, l);
	vsnprintf(msg + l, sizeof(msg) - l, fmt, ap);
	if (say)
		say(ud, level, msg);
}

#define SAY(say, ud, level, prefix)                                                                \
	do {                                                                                       \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		vsay(say, ud, level, prefix, fmt, ap);                                             \
		va_end(ap);                                                                        \
	} while (0)

void ins_ctx_say(const ins_ctx *c, int level, const char *fmt, ...)
{
	SAY(c->say, c->say_ud, level, "");
}

int ins_ctx_assume(const ins_ctx *c, int rc, const char *fmt, ...)
{
	if (rc >= 0 || !c->dry_run)
		return rc;
	SAY(c->say, c->say_ud, INS_SAY_WARN, "dry-run: ");
	return 0;
}

int ins_ctx_acts(const ins_ctx *c)
{
	return !c || !c->dry_run;
}

const char *ins_ctx_word(const ins_ctx *c, const char *done, const char *would)
{
	return ins_ctx_acts(c) ? done : would;
}

int ins_ctx_change(const ins_ctx *c, const char *fmt, ...)
{
	SAY(c->say, c->say_ud, INS_SAY_INFO, c->dry_run ? "would " : "");
	return !c->dry_run;
}

void ins_ctx_say_cmd(const ins_ctx *c, const char *const *argv, const char *suffix)
{
	if (!c->say)
		return;
	cm_buf b = CM_BUF_INIT;
	b.limit = (size_t)1 << 20;
	ins_shell_join(&b, argv, NULL);
	if (suffix)
		cm_buf_append(&b, suffix, strlen(suffix), NULL);
	c->say(c->say_ud, INS_SAY_CMD, b.data ? b.data : "");
	cm_buf_free(&b);
}

int ins_ctx_will(const ins_ctx *c, const char *const *argv, const char *suffix)
{
	ins_ctx_say_cmd(c, argv, suffix);
	return !c->dry_run;
}

/* cmd on runner r (NULL: here): a query is said and always run; any
 * other command is said with suffix ("": the caller said it) and run
 * except under --dry-run. */
static int exec(const ins_ctx *c, const ins_runner *r, const char *const *cmd, ins_proc_io *io,
		const char *suffix, int query, cm_error *err)
{
	ins_argv w = {NULL, 0, 0};
	const char *const *argv = cmd;
	int rc = r ? ins_runner_wrap(&w, r, cmd, err) : 0;
	if (r)
		argv = (const char *const *)w.v;
	if (rc == 0 && query)
		ins_ctx_say_cmd(c, argv, c->dry_run ? " (read-only query)" : NULL);
	if (rc == 0 &&
	    (query || (suffix && !*suffix ? !c->dry_run : ins_ctx_will(c, argv, suffix))))
		rc = ins_proc_run(argv, io, err);
	ins_argv_free(&w);
	return rc;
}

int ins_ctx_run(const ins_ctx *c, const ins_runner *r, const char *const *cmd, ins_proc_io *io,
		const char *suffix, cm_error *err)
{
	ins_proc_io none = {0};
	return exec(c, r, cmd, io ? io : &none, suffix, 0, err);
}

int ins_ctx_query(const ins_ctx *c, cm_buf *out, const ins_runner *r, const char *const *cmd,
		  cm_error *err)
{
	ins_proc_io io = {.out = out};
	out->len = 0;
	out->limit = QUERY_MAX;
	return exec(c, r, cmd, &io, NULL, 1, err);
}

double ins_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void ins_sleep(double s)
{
	struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}
