/* The context every install step runs in (a leaf: it knows no step).
 *
 * It holds where messages go and the executor. A step asks it to run a
 * command: ins_ctx_run says the command and runs it, or, under --dry-run,
 * only says it; ins_ctx_query runs read-only queries in both cases. So no
 * step decides about --dry-run for a command itself. */
#ifndef INS_CTX_H
#define INS_CTX_H

#include <stdint.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "ins_runner.h"

/* Message levels for say. */
enum {
	INS_SAY_STEP = 0, /* a step begins */
	INS_SAY_INFO,	  /* progress */
	INS_SAY_CMD,	  /* a command run (or, in dry-run, that would run) */
	INS_SAY_WARN,
	INS_SAY_PLAN, /* the detail of a command (shown with --dry-run) */
};

typedef struct ins_ctx {
	int dry_run;
	void (*say)(void *ud, int level, const char *msg);
	void *say_ud;
} ins_ctx;

/* What one step did. */
typedef struct ins_step_report {
	int ran;	/* 0: not applicable / skipped by flag */
	char note[256]; /* why not, or a summary */
	uint64_t done, skipped, failed;
	uint64_t bytes;
	double secs;
} ins_step_report;

void ins_ctx_say(const ins_ctx *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Say argv as one command line (INS_SAY_CMD) followed by suffix. */
void ins_ctx_say_cmd(const ins_ctx *c, const char *const *argv, const char *suffix);

/* A command that changes something, on runner r (NULL: here): said with
 * suffix ("" when the caller said it already), then run, except under
 * --dry-run. io may be NULL (no stdin, output discarded). */
int ins_ctx_run(const ins_ctx *c, const ins_runner *r, const char *const *cmd, ins_proc_io *io,
		const char *suffix, cm_error *err);

/* A command ferry starts itself (detached): said with suffix; 1 when it is
 * to be started, 0 under --dry-run. */
int ins_ctx_will(const ins_ctx *c, const char *const *argv, const char *suffix);

/* A read-only query on runner r (NULL: here): said, and run under
 * --dry-run too; stdout lands in out (capped at 8 MiB). */
int ins_ctx_query(const ins_ctx *c, cm_buf *out, const ins_runner *r, const char *const *cmd,
		  cm_error *err);

/* A read-only query failed (rc < 0): under --dry-run, say the warning
 * "dry-run: " fmt and return 0 (the caller goes on with an assumption);
 * otherwise return rc. */
int ins_ctx_assume(const ins_ctx *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A change ferry makes itself (a file written): said (INS_SAY_INFO) as
 * fmt, or under --dry-run as "would " fmt. 1 when it is to be made. */
int ins_ctx_change(const ins_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether this run changes anything (0 under --dry-run), for a step's
 * work that is no command: placing blobs, pushing, checking what an
 * import did. NULL acts. */
int ins_ctx_acts(const ins_ctx *c);
/* The wording of what a step did: done, or would under --dry-run. */
const char *ins_ctx_word(const ins_ctx *c, const char *done, const char *would);

double ins_now(void);	     /* CLOCK_MONOTONIC, seconds */
void ins_sleep(double secs); /* restarted on EINTR */

#endif
