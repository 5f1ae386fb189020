/* Error reporting shared by every ferry library.
 *
 * Functions return 0 on success or a negative CM_E* code, and fill the
 * cm_error passed as their last argument. Callers add context with
 * cm_error_wrap(). Only main() and cmd_*.c print or exit. */
#ifndef CM_ERROR_H
#define CM_ERROR_H

#include <stddef.h>

enum {
	CM_OK = 0,
	CM_EFAIL = -1,	   /* generic failure (exit 1) */
	CM_EVERIFY = -2,   /* a digest, signature or bundle rule failed (exit 2) */
	CM_ENOTFOUND = -3, /* the thing asked for does not exist */
	CM_EINVAL = -4,	   /* malformed input: spec, reference, JSON, request */
	CM_EIO = -5,	   /* a system call failed */
	CM_ENOMEM = -6,
	CM_ECANCELED = -7, /* stopped because something else failed (exit 1) */
	CM_EUSAGE = -64,   /* bad command line (exit 64) */
};

#define CM_ERROR_MAX 2048

/* The cause travels with the message, so that no caller reads msg to
 * decide anything: the errno of a failed system call, and the digest of the
 * blob or member concerned. (Fields after msg: `cm_error e = {0}` stays
 * a valid initialiser.) */
typedef struct cm_error {
	int code;
	char msg[CM_ERROR_MAX];
	int sys_errno;	 /* set by cm_error_sys; 0 otherwise */
	char digest[80]; /* "sha256:<hex>" when one blob is the cause, else "" */
} cm_error;

/* Set err (may be NULL) and return code. */
int cm_error_set(cm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like cm_error_set, appending ": strerror(errnum)". */
int cm_error_sys(cm_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix the existing message with context ("pulling x: <old>"); returns
 * err->code. */
int cm_error_wrap(cm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cm_error_clear(cm_error *err);
/* Record the digest of the blob or member that caused err (kept by wrap). */
void cm_error_set_digest(cm_error *err, const char *digest);

/* Map an error code to a process exit code: 0, 1, 2 or 64. */
int cm_exit_code(int code);

#endif
