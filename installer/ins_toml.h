/* A small TOML reader for one purpose: `containerd config dump`.
 *
 * Debian 12 packages no C TOML library, and containerd has no other
 * machine-readable form of its effective configuration, so ferry reads the
 * dump with this reader (docs/install.md, "CLI output ferry reads").
 *
 * It reads TOML 1.0 as containerd writes it: tables `[a."b.c".d]` and
 * arrays of tables `[[a.b]]`, bare, "basic" and 'literal' keys, dotted
 * keys, basic strings (with \b \t \n \f \r \" \\ \uXXXX \UXXXXXXXX) and
 * literal strings, integers, booleans, arrays (nested too) and inline
 * tables, and comments. What it does not read it refuses with the line and
 * what it found: multi-line strings, and values that are not one of those
 * (dates, floats and other number forms are kept as INS_TOML_OTHER).
 *
 * The result is a flat list: every value with the full path of its key
 * (table segments, then key segments). The n-th table of an array of
 * tables `[[a]]` is the path segment "[n]" (a = [a, "[0]", ...]). Inline
 * tables give their keys the same way. A key defined twice is refused.
 * Caps: 4 MiB of text, 16384 values, 1024 bytes per key segment, 64
 * segments per path, 8 MiB of key paths over all values, 256 distinct
 * arrays of tables, nesting 32 deep. */
#ifndef INS_TOML_H
#define INS_TOML_H

#include <stddef.h>

#include "cm_error.h"

#define INS_TOML_TEXT_MAX ((size_t)4 << 20)

typedef enum {
	INS_TOML_STRING = 1,
	INS_TOML_INT,
	INS_TOML_BOOL,
	INS_TOML_ARRAY, /* an array whose items are all strings (or empty) */
	INS_TOML_OTHER, /* a float, a date, or an array of other values */
} ins_toml_type;

typedef struct ins_toml_entry {
	char **seg; /* the key's path */
	size_t n_seg;
	ins_toml_type type;
	char *s;      /* INS_TOML_STRING */
	long long i;  /* INS_TOML_INT, INS_TOML_BOOL (0 or 1) */
	char **items; /* INS_TOML_ARRAY */
	size_t n_items;
} ins_toml_entry;

typedef struct ins_toml {
	ins_toml_entry *v;
	size_t n;
} ins_toml;

/* Parse text (len bytes, need not be NUL-terminated). CM_EINVAL naming the
 * line on a syntax error or a cap. *out is empty on error. */
int ins_toml_parse(ins_toml *out, const char *text, size_t len, cm_error *err);

/* The value at path (NULL-terminated segments), or NULL. */
const ins_toml_entry *ins_toml_get(const ins_toml *t, const char *const *path);

void ins_toml_free(ins_toml *t);

#endif
