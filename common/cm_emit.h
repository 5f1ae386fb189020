/* Every JSON and YAML document ferry writes is built as a jansson
 * tree and serialised by a library: JSON by jansson, YAML by libyaml's
 * emitter. Nothing is pasted together with printf, so a value holding a
 * quote, a backslash, a newline, ": " or "#" stays one value. */
#ifndef CM_EMIT_H
#define CM_EMIT_H

#include <jansson.h>
#include <stddef.h>

#include "cm_buf.h"
#include "cm_error.h"

/* The compact JSON text of v (keys in insertion order, or sorted with
 * sort_keys), at most cap bytes. The buffer is allocated once at cap + 1
 * and never grown, so a secret leaves no copy behind in freed memory:
 * free it with cm_free_wiped. CM_EINVAL when longer than cap. */
int cm_json_text(char **out, const json_t *v, size_t cap, int sort_keys, cm_error *err);

/* Wipes (OPENSSL_cleanse) every string and key in v, then drops the
 * reference: for trees that held a secret. NULL is a no-op. */
void cm_json_decref_wiped(json_t *v);

/* Wipes the NUL-terminated p, then frees it. NULL is a no-op. */
void cm_free_wiped(char *p);

/* Appends doc as one YAML document in block style to out (libyaml's
 * emitter; UTF-8 written as it is). Strings a YAML reader would take for
 * another type ("true", "1", "null", "", ".inf") are double-quoted,
 * strings with a line break are literal block scalars when libyaml
 * allows; everything else is plain when libyaml allows. */
int cm_yaml_append(cm_buf *out, const json_t *doc, cm_error *err);

#endif
