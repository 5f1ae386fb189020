/* A growable byte buffer with a hard cap, for anything that holds
 * untrusted data. */
#ifndef CM_BUF_H
#define CM_BUF_H

#include <stddef.h>

#include "cm_error.h"

typedef struct cm_buf {
	char *data; /* owned; always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;   /* allocated bytes */
	size_t limit; /* hard limit on len; 0 means CM_BUF_DEFAULT_LIMIT */
} cm_buf;

#define CM_BUF_DEFAULT_LIMIT ((size_t)16 << 20)
#define CM_BUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0, 0                                                                      \
	}

/* Append n bytes; fails with CM_EINVAL when the limit would be exceeded. */
int cm_buf_append(cm_buf *b, const void *p, size_t n, cm_error *err);
int cm_buf_appendf(cm_buf *b, cm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Take ownership of the data; the buffer is reset. */
char *cm_buf_detach(cm_buf *b);
void cm_buf_free(cm_buf *b);

/* Room for element n of the array v, whose capacity is *cap elements of
 * size bytes (doubled, from 16, when n reaches it): returns v, or where
 * realloc moved it; NULL with CM_ENOMEM in err (v still valid) when memory
 * ran out. */
void *cm_grow(void *v, size_t n, size_t *cap, size_t size, cm_error *err);
/* cm_grow on the array *pv in place: 0, or CM_ENOMEM (*pv still valid).
 * CM_GROW(&arr, n, &cap, err) takes the element size from the array. */
int cm_grow_at(void **pv, size_t n, size_t *cap, size_t size, cm_error *err);
#define CM_GROW(pv, n, cap, err) cm_grow_at((void **)(pv), (n), (cap), sizeof(**(pv)), (err))

#endif
