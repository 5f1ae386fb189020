/* Rendering registry-client progress: live lines on a TTY, plain log lines
 * off a TTY, one JSON event per line (--json), or nothing (--quiet). */
#ifndef BLD_PROGRESS_H
#define BLD_PROGRESS_H

#include <jansson.h>
#include <stdio.h>

#include "reg_client.h"

enum { BLD_PROGRESS_NONE = 0, BLD_PROGRESS_PLAIN, BLD_PROGRESS_TTY, BLD_PROGRESS_JSON };

typedef struct bld_progress {
	int mode;
	FILE *out;
	int drawn; /* live lines on screen (TTY) */
} bld_progress;

/* reg_progress_fn: ud is a bld_progress. */
void bld_progress_event(void *ud, const reg_event *ev);
/* A message line for people (clears the live block first on a TTY). JSON
 * mode prints no sentences: it prints nothing here; what a JSON reader needs
 * has its own event with fields (below, docs/json-events.md). */
void bld_progress_msg(bld_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One JSON event line, taking o's reference; NULL (json_pack refused a
 * string that is not UTF-8) prints nothing. */
void bld_progress_json(bld_progress *p, json_t *o);
/* An image's tag or digest resolved: {"event":"resolve","ref","digest","blobs"}. */
void bld_progress_resolve(bld_progress *p, const char *ref, const char *digest, size_t blobs);
/* The lock file written: {"event":"lock","path"}. */
void bld_progress_lock(bld_progress *p, const char *path);
/* Remove the live block (TTY) before the final output. */
void bld_progress_end(bld_progress *p);

/* "12.3 MiB" */
void bld_human_bytes(char *out, size_t n, double b);

#endif
