#include "cm_buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(cm_buf *b, size_t need, cm_error *err)
{
	size_t limit = b->limit ? b->limit : CM_BUF_DEFAULT_LIMIT;
	if (need > limit)
		return cm_error_set(err, CM_EINVAL, "data exceeds the %zu-byte limit", limit);
	if (need + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	b->data = p;
	b->cap = cap;
	return 0;
}

int cm_buf_append(cm_buf *b, const void *p, size_t n, cm_error *err)
{
	int rc = reserve(b, b->len + n, err);
	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int cm_buf_appendf(cm_buf *b, cm_error *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return cm_error_set(err, CM_EINVAL, "format error");
	int rc = reserve(b, b->len + (size_t)n, err);
	if (rc < 0)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *cm_buf_detach(cm_buf *b)
{
	char *p = b->data;
	if (!p) {
		p = malloc(1);
		if (p)
			p[0] = '\0';
	}
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void cm_buf_free(cm_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void *cm_grow(void *v, size_t n, size_t *cap, size_t size, cm_error *err)
{
	if (n < *cap)
		return v;
	size_t nc = *cap ? *cap * 2 : 16;
	void *nv = nc <= SIZE_MAX / size ? realloc(v, nc * size) : NULL;
	if (!nv) {
		cm_error_set(err, CM_ENOMEM, "out of memory");
		return NULL;
	}
	*cap = nc;
	return nv;
}

int cm_grow_at(void **pv, size_t n, size_t *cap, size_t size, cm_error *err)
{
	void *nv = cm_grow(*pv, n, cap, size, err);
	if (!nv)
		return CM_ENOMEM;
	*pv = nv;
	return 0;
}
