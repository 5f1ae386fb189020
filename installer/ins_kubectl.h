/* kubectl (or oc): its argv, a change, a query, an object as JSON, and the
 * retry decision (a leaf: no step).
 *
 * Decisions come from exit statuses and structured output, not from
 * kubectl's stderr prose: an object is read with `get --ignore-not-found
 * -o json` (absent: exit 0 and no output), existence is asked the same
 * way. `kubectl apply` has no structured error output; the one thing read
 * of its stderr is the API Status reason kubectl prints as
 * "Error from server (REASON)" (docs/install.md, "CLI output ferry
 * reads"). */
#ifndef INS_KUBECTL_H
#define INS_KUBECTL_H

#include <jansson.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "ins_ctx.h"

typedef struct ins_kube {
	char prog[256];		/* kubectl or oc */
	const char *kubeconfig; /* NULL: kubectl's default */
	char context[512];	/* "" for the current context */
	int retries;		/* for transient failures */
	double backoff;		/* first back-off, seconds (doubles, at most 30) */
} ins_kube;

/* A change (apply, patch): said with suffix, skipped under --dry-run; in:
 * stdin text (NULL: none); errb (may be NULL): stderr. CM_ENOTFOUND when
 * the program is missing. */
int ins_kube_run(const ins_ctx *c, const ins_kube *k, const char *const *rest, const char *in,
		 size_t in_len, const char *suffix, cm_buf *errb, cm_error *err);

/* A read: run under --dry-run too; stdout into out. quiet: not said. */
int ins_kube_query(const ins_ctx *c, const ins_kube *k, const char *const *rest, cm_buf *out,
		   int quiet, cm_error *err);

/* `get TYPE NAME [-n NS] --ignore-not-found -o json`: 1 and *out when the
 * object exists, 0 when it does not (exit 0, no output), <0 on failure.
 * out_cap caps the answer; wipe: the answer holds a secret (its buffer is
 * allocated at the cap and wiped). */
int ins_kube_get(json_t **out, const ins_ctx *c, const ins_kube *k, const char *type,
		 const char *name, const char *ns, size_t out_cap, int wipe, cm_error *err);

/* Is a failed apply worth another try? 0 when the API server refused the
 * object (an API Status reason such as BadRequest, Invalid, Forbidden,
 * NotFound, AlreadyExists); 1 for a reason that passes (Conflict,
 * TooManyRequests, ServiceUnavailable, Timeout, ServerTimeout,
 * InternalError: a webhook not ready) and for a failure before any answer
 * (no API Status: discovery lag "no matches for kind", a refused
 * connection). */
int ins_kube_transient(const char *stderr_text);

/* Sleep *wait seconds, then double it (at most 30). */
void ins_kube_backoff(double *wait);

#endif
