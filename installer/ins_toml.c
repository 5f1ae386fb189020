#include "ins_toml.h"

#include "cm_buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VALUES 16384
#define MAX_SEG 1024
#define MAX_PATH 64
#define MAX_DEPTH 32
#define MAX_ARRAYS 256		     /* distinct [[name]] tables */
#define MAX_STORED ((size_t)8 << 20) /* bytes of key paths kept, all values */

typedef struct parser {
	const char *p, *end;
	int line;
	ins_toml *t;
	size_t cap;
	char *path[MAX_PATH]; /* the current table, then the key being defined */
	size_t n_path;
	int discard;   /* > 0: values are read, not kept */
	size_t stored; /* bytes of key paths kept */
	cm_error *err;
} parser;

static int fail(parser *ps, const char *what)
{
	return cm_error_set(ps->err, CM_EINVAL, "TOML line %d: %s", ps->line, what);
}

static void skip_ws(parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
		ps->p++;
}

/* Blanks, comments and newlines (between statements and array items). */
/* 1, past it, when the next character is c. */
static int eat(parser *ps, char c)
{
	if (ps->p >= ps->end || *ps->p != c)
		return 0;
	ps->p++;
	return 1;
}

static int skip_all(parser *ps)
{
	for (;;) {
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == '#') {
			while (ps->p < ps->end && *ps->p != '\n') {
				unsigned char c = (unsigned char)*ps->p++;
				if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
					return fail(ps, "a control character in a comment");
			}
		}
		if (ps->p < ps->end && *ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n')
			ps->p++;
		if (ps->p < ps->end && *ps->p == '\n') {
			ps->p++;
			ps->line++;
			continue;
		}
		return 0;
	}
}

/* The end of a statement: blanks, a comment, then a newline or the end. */
static int end_of_line(parser *ps)
{
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p != '#' && *ps->p != '\n' && *ps->p != '\r')
		return fail(ps, "text after a value (one key = value per line)");
	return skip_all(ps);
}

static int put_utf8(char *out, size_t *o, unsigned long cp)
{
	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	if (cp < 0x80) {
		out[(*o)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*o)++] = (char)(0xC0 | (cp >> 6));
		out[(*o)++] = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		out[(*o)++] = (char)(0xE0 | (cp >> 12));
		out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[(*o)++] = (char)(0x80 | (cp & 0x3F));
	} else {
		out[(*o)++] = (char)(0xF0 | (cp >> 18));
		out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
		out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[(*o)++] = (char)(0x80 | (cp & 0x3F));
	}
	return 0;
}

/* A "basic" or 'literal' string at ps->p (on its quote), one line. */
static int string(char **out, parser *ps, size_t cap)
{
	char q = *ps->p;
	if (ps->end - ps->p >= 3 && ps->p[1] == q && ps->p[2] == q)
		return fail(ps, "multi-line strings are not read");
	ps->p++;
	const char *s = ps->p;
	while (ps->p < ps->end && *ps->p != q && *ps->p != '\n')
		ps->p += *ps->p == '\\' && q == '"' && ps->p + 1 < ps->end ? 2 : 1;
	if (ps->p >= ps->end || *ps->p != q)
		return fail(ps, "a string without its closing quote");
	size_t n = (size_t)(ps->p - s);
	ps->p++;
	if (n > cap)
		return fail(ps, "a string longer than the cap");
	char *r = malloc(n + 1);
	if (!r)
		return cm_error_set(ps->err, CM_ENOMEM, "out of memory");
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			free(r);
			return fail(ps, "a control character in a string");
		}
		if (c != '\\' || q == '\'') {
			r[o++] = (char)c;
			continue;
		}
		char e = s[++i];
		const char *map = "b\bt\tn\nf\fr\r\"\"\\\\";
		const char *m = strchr(map, e);
		if (e && m && (m - map) % 2 == 0) {
			r[o++] = m[1];
			continue;
		}
		int digits = e == 'u' ? 4 : e == 'U' ? 8 : 0;
		unsigned long cp = 0;
		if (!digits || n - i - 1 < (size_t)digits) {
			free(r);
			return fail(ps, "an unknown escape in a string");
		}
		for (int k = 0; k < digits; k++) {
			char h = s[++i];
			int v = h >= '0' && h <= '9'   ? h - '0'
				: h >= 'a' && h <= 'f' ? h - 'a' + 10
				: h >= 'A' && h <= 'F' ? h - 'A' + 10
						       : -1;
			if (v < 0) {
				free(r);
				return fail(ps, "a bad \\u escape in a string");
			}
			cp = cp * 16 + (unsigned long)v;
		}
		/* \uXXXX takes 6 bytes and yields at most 3; \U 10 and 4 */
		if (put_utf8(r, &o, cp) < 0) {
			free(r);
			return fail(ps, "an escape that is no Unicode scalar value");
		}
	}
	r[o] = '\0';
	*out = r;
	return 0;
}

static int bare_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static int push_seg(parser *ps, char *s)
{
	if (ps->n_path == MAX_PATH) {
		free(s);
		return fail(ps, "a key path with too many segments");
	}
	ps->path[ps->n_path++] = s;
	return 0;
}

static void pop_to(parser *ps, size_t n)
{
	while (ps->n_path > n)
		free(ps->path[--ps->n_path]);
}

/* key = seg ( . seg )*, pushed onto the path. */
static int key(parser *ps)
{
	for (;;) {
		skip_ws(ps);
		char *s = NULL;
		int rc;
		if (ps->p < ps->end && (*ps->p == '"' || *ps->p == '\'')) {
			if ((rc = string(&s, ps, MAX_SEG)) < 0)
				return rc;
		} else {
			const char *b = ps->p;
			while (ps->p < ps->end && bare_char(*ps->p))
				ps->p++;
			size_t n = (size_t)(ps->p - b);
			if (n == 0)
				return fail(ps, "a key expected");
			if (n > MAX_SEG)
				return fail(ps, "a key longer than the cap");
			if (!(s = strndup(b, n)))
				return cm_error_set(ps->err, CM_ENOMEM, "out of memory");
		}
		if ((rc = push_seg(ps, s)) < 0)
			return rc;
		skip_ws(ps);
		if (eat(ps, '.'))
			continue;
		return 0;
	}
}

static int add_entry(parser *ps, ins_toml_entry *e)
{
	ins_toml *t = ps->t;
	if (ps->discard)
		return 1;
	if (t->n == MAX_VALUES)
		return fail(ps, "more values than the cap");
	ins_toml_entry *nv = cm_grow(t->v, t->n, &ps->cap, sizeof(*nv), ps->err);
	if (!nv)
		return CM_ENOMEM;
	t->v = nv;
	for (size_t i = 0; i < ps->n_path; i++)
		ps->stored += strlen(ps->path[i]) + 1;
	if (ps->stored > MAX_STORED)
		return fail(ps, "keys longer than the cap, all values together");
	e->seg = calloc(ps->n_path ? ps->n_path : 1, sizeof(char *));
	if (!e->seg)
		return cm_error_set(ps->err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < ps->n_path; i++)
		if (!(e->seg[e->n_seg++] = strdup(ps->path[i])))
			return cm_error_set(ps->err, CM_ENOMEM, "out of memory");
	t->v[t->n++] = *e;
	return 0;
}

static void entry_free(ins_toml_entry *e)
{
	for (size_t i = 0; i < e->n_seg; i++)
		free(e->seg[i]);
	free(e->seg);
	free(e->s);
	for (size_t i = 0; i < e->n_items; i++)
		free(e->items[i]);
	free(e->items);
}

static int value(parser *ps, int depth);

/* A scalar or an array, into e (an array of strings keeps its items). */
static int scalar_or_array(parser *ps, ins_toml_entry *e, int depth)
{
	int rc;
	if (ps->p >= ps->end)
		return fail(ps, "a value expected");
	char c = *ps->p;
	if (c == '"' || c == '\'') {
		e->type = INS_TOML_STRING;
		return string(&e->s, ps, INS_TOML_TEXT_MAX);
	}
	if (c == '[') {
		if (depth >= MAX_DEPTH)
			return fail(ps, "arrays nested too deeply");
		ps->p++;
		e->type = INS_TOML_ARRAY;
		size_t cap = 0;
		for (;;) {
			if ((rc = skip_all(ps)) < 0)
				return rc;
			if (eat(ps, ']'))
				return 0;
			ins_toml_entry it;
			memset(&it, 0, sizeof(it));
			if (ps->p < ps->end && *ps->p == '{') {
				/* an inline table in an array: read, not kept */
				ps->discard++;
				rc = value(ps, depth + 1);
				ps->discard--;
				it.type = INS_TOML_OTHER;
			} else {
				rc = scalar_or_array(ps, &it, depth + 1);
			}
			if (rc == 0 && it.type == INS_TOML_STRING && e->type == INS_TOML_ARRAY) {
				char **nv =
				    cm_grow(e->items, e->n_items, &cap, sizeof(*nv), ps->err);
				if (!nv)
					rc = CM_ENOMEM;
				else {
					e->items = nv;
					e->items[e->n_items++] = it.s;
					it.s = NULL;
				}
			} else if (rc == 0) {
				e->type = INS_TOML_OTHER;
			}
			entry_free(&it);
			if (rc < 0)
				return rc;
			if ((rc = skip_all(ps)) < 0)
				return rc;
			if (eat(ps, ','))
				continue;
			if (eat(ps, ']'))
				return 0;
			return fail(ps, "',' or ']' expected in an array");
		}
	}
	/* true, false, a number, a date: one token */
	const char *b = ps->p;
	while (ps->p < ps->end && (bare_char(*ps->p) || strchr("+.:", *ps->p)))
		ps->p++;
	size_t n = (size_t)(ps->p - b);
	if (n == 0)
		return fail(ps, "a value expected");
	if (n == 4 && strncmp(b, "true", 4) == 0) {
		e->type = INS_TOML_BOOL;
		e->i = 1;
		return 0;
	}
	if (n == 5 && strncmp(b, "false", 5) == 0) {
		e->type = INS_TOML_BOOL;
		return 0;
	}
	if (!((*b >= '0' && *b <= '9') || *b == '+' || *b == '-' ||
	      (n >= 3 && (strncmp(b, "inf", 3) == 0 || strncmp(b, "nan", 3) == 0))))
		return fail(ps, "an unknown value (a string needs quotes)");
	char num[64];
	size_t k = 0;
	for (size_t i = 0; i < n && k < sizeof(num) - 1; i++)
		if (b[i] != '_')
			num[k++] = b[i];
	num[k] = '\0';
	char *endp;
	errno = 0;
	long long v = strtoll(num, &endp, 10);
	if (k < sizeof(num) - 1 && *endp == '\0' && errno == 0 && k > 0) {
		e->type = INS_TOML_INT;
		e->i = v;
	} else {
		e->type = INS_TOML_OTHER;
	}
	return 0;
}

/* A value for the key on the path: inline tables add their keys. */
static int value(parser *ps, int depth)
{
	int rc;
	if (ps->p < ps->end && *ps->p == '{') {
		if (depth >= MAX_DEPTH)
			return fail(ps, "inline tables nested too deeply");
		ps->p++;
		skip_ws(ps);
		if (eat(ps, '}'))
			return 0;
		for (;;) {
			size_t base = ps->n_path;
			if ((rc = key(ps)) < 0)
				return rc;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != '=')
				return fail(ps, "'=' expected after a key");
			ps->p++;
			skip_ws(ps);
			rc = value(ps, depth + 1);
			pop_to(ps, base);
			if (rc < 0)
				return rc;
			skip_ws(ps);
			if (eat(ps, ','))
				continue;
			if (eat(ps, '}'))
				return 0;
			return fail(ps, "',' or '}' expected in an inline table");
		}
	}
	ins_toml_entry e;
	memset(&e, 0, sizeof(e));
	rc = scalar_or_array(ps, &e, depth);
	if (rc == 0 && (rc = add_entry(ps, &e)) == 0)
		return 0;
	entry_free(&e);
	return rc < 0 ? rc : 0;
}

static int cmp_path(const char *const *a, size_t na, const char *const *b, size_t nb)
{
	for (size_t i = 0; i < na && i < nb; i++) {
		int c = strcmp(a[i], b[i]);
		if (c)
			return c;
	}
	return na < nb ? -1 : na > nb;
}

static int cmp_entry(const void *a, const void *b)
{
	const ins_toml_entry *x = a, *y = b;
	return cmp_path((const char *const *)x->seg, x->n_seg, (const char *const *)y->seg,
			y->n_seg);
}

/* The count of [[name]] headers seen so far, to number their tables. */
typedef struct aot {
	char **seg;
	size_t n_seg, count;
} aot;

int ins_toml_parse(ins_toml *out, const char *text, size_t len, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (len > INS_TOML_TEXT_MAX)
		return cm_error_set(err, CM_EINVAL, "TOML: more than %zu bytes", INS_TOML_TEXT_MAX);
	if (memchr(text, '\0', len))
		return cm_error_set(err, CM_EINVAL, "TOML: a NUL byte in the text");
	parser ps;
	memset(&ps, 0, sizeof(ps));
	ps.p = text;
	ps.end = text + len;
	ps.line = 1;
	ps.t = out;
	ps.err = err;
	aot *arr = NULL;
	size_t n_arr = 0;
	int rc = skip_all(&ps);
	while (rc == 0 && ps.p < ps.end) {
		if (*ps.p == '[') {
			int dbl = ps.p + 1 < ps.end && ps.p[1] == '[';
			ps.p += dbl ? 2 : 1;
			pop_to(&ps, 0);
			if ((rc = key(&ps)) < 0)
				break;
			if (ps.end - ps.p < (dbl ? 2 : 1) || ps.p[0] != ']' ||
			    (dbl && ps.p[1] != ']')) {
				rc = fail(&ps, dbl ? "']]' expected" : "']' expected");
				break;
			}
			ps.p += dbl ? 2 : 1;
			if (dbl) { /* number this table: [a.b] -> a.b.[n] */
				size_t i;
				for (i = 0; i < n_arr; i++)
					if (cmp_path((const char *const *)arr[i].seg, arr[i].n_seg,
						     (const char *const *)ps.path, ps.n_path) == 0)
						break;
				if (i == MAX_ARRAYS) {
					rc = fail(&ps, "more arrays of tables than the cap");
					break;
				}
				if (i == n_arr) {
					aot *na = realloc(arr, (n_arr + 1) * sizeof(*na));
					if (!na) {
						rc = cm_error_set(err, CM_ENOMEM, "out of memory");
						break;
					}
					arr = na;
					memset(&arr[i], 0, sizeof(arr[i]));
					n_arr++;
					arr[i].seg = calloc(ps.n_path, sizeof(char *));
					for (size_t k = 0; arr[i].seg && k < ps.n_path; k++)
						if ((arr[i].seg[arr[i].n_seg] = strdup(ps.path[k])))
							arr[i].n_seg++;
					if (arr[i].n_seg != ps.n_path) {
						rc = cm_error_set(err, CM_ENOMEM, "out of memory");
						break;
					}
				}
				char idx[32];
				snprintf(idx, sizeof(idx), "[%zu]", arr[i].count++);
				char *s = strdup(idx);
				if (!s) {
					rc = cm_error_set(err, CM_ENOMEM, "out of memory");
					break;
				}
				if ((rc = push_seg(&ps, s)) < 0)
					break;
			}
			rc = end_of_line(&ps);
			continue;
		}
		size_t base = ps.n_path;
		if ((rc = key(&ps)) < 0)
			break;
		if (ps.p >= ps.end || *ps.p != '=') {
			rc = fail(&ps, "'=' expected after a key");
			break;
		}
		ps.p++;
		skip_ws(&ps);
		rc = value(&ps, 0);
		pop_to(&ps, base);
		if (rc == 0)
			rc = end_of_line(&ps);
	}
	pop_to(&ps, 0);
	for (size_t i = 0; i < n_arr; i++) {
		for (size_t k = 0; k < arr[i].n_seg; k++)
			free(arr[i].seg[k]);
		free(arr[i].seg);
	}
	free(arr);
	if (rc == 0 && out->n) {
		qsort(out->v, out->n, sizeof(*out->v), cmp_entry);
		for (size_t i = 1; i < out->n && rc == 0; i++)
			if (cmp_entry(&out->v[i - 1], &out->v[i]) == 0) {
				cm_buf k = CM_BUF_INIT;
				k.limit = 512;
				for (size_t s = 0; s < out->v[i].n_seg; s++)
					cm_buf_appendf(&k, NULL, "%s%s", s ? "." : "",
						       out->v[i].seg[s]);
				rc = cm_error_set(err, CM_EINVAL,
						  "TOML: the key %s is defined twice",
						  k.data ? k.data : "?");
				cm_buf_free(&k);
			}
	}
	if (rc < 0)
		ins_toml_free(out);
	return rc;
}

const ins_toml_entry *ins_toml_get(const ins_toml *t, const char *const *path)
{
	size_t n = 0;
	while (path[n])
		n++;
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_path((const char *const *)t->v[mid].seg, t->v[mid].n_seg, path, n);
		if (c == 0)
			return &t->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void ins_toml_free(ins_toml *t)
{
	for (size_t i = 0; i < t->n; i++)
		entry_free(&t->v[i]);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}
