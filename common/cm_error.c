#include "cm_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A message that did not fit ends in "..." so that nobody takes the cut
 * text for the whole story. */
static void mark_cut(char *msg, size_t n)
{
	memcpy(msg + n - 4, "...", 4);
}

static int vset(cm_error *err, int code, const char *fmt, va_list ap)
{
	if (err) {
		err->code = code;
		int len = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		if (len < 0 || (size_t)len >= sizeof(err->msg))
			mark_cut(err->msg, sizeof(err->msg));
		err->sys_errno = 0;
		err->digest[0] = '\0';
	}
	return code;
}

int cm_error_set(cm_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int cm_error_sys(cm_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(err, CM_EIO, fmt, ap);
	va_end(ap);
	if (err) {
		size_t n = strlen(err->msg);
		int len = snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(errnum));
		if (len < 0 || (size_t)len >= sizeof(err->msg) - n)
			mark_cut(err->msg, sizeof(err->msg));
		err->sys_errno = errnum;
	}
	return CM_EIO;
}

int cm_error_wrap(cm_error *err, const char *fmt, ...)
{
	char prefix[CM_ERROR_MAX], old[CM_ERROR_MAX];
	va_list ap;
	if (!err)
		return CM_EFAIL;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	int len = snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	if (len < 0 || (size_t)len >= sizeof(err->msg))
		mark_cut(err->msg, sizeof(err->msg));
	if (err->code == 0)
		err->code = CM_EFAIL;
	return err->code;
}

void cm_error_clear(cm_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
		err->sys_errno = 0;
		err->digest[0] = '\0';
	}
}

void cm_error_set_digest(cm_error *err, const char *digest)
{
	if (err)
		snprintf(err->digest, sizeof(err->digest), "%s", digest ? digest : "");
}

int cm_exit_code(int code)
{
	switch (code) {
	case 0:
		return 0;
	case CM_EVERIFY:
		return 2;
	case CM_EUSAGE:
		return 64;
	default:
		return 1;
	}
}
