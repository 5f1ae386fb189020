/* JSON through jansson, YAML through libyaml's emitter (cm_emit.h). */
#include "cm_emit.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

void cm_free_wiped(char *p)
{
	if (p) {
		OPENSSL_cleanse(p, strlen(p));
		free(p);
	}
}

typedef struct {
	char *p;
	size_t len, cap;
} fixed_out;

static int to_fixed(const char *s, size_t n, void *data)
{
	fixed_out *f = data;
	if (n > f->cap - f->len)
		return -1;
	memcpy(f->p + f->len, s, n);
	f->len += n;
	f->p[f->len] = '\0';
	return 0;
}

int cm_json_text(char **out, const json_t *v, size_t cap, int sort_keys, cm_error *err)
{
	*out = NULL;
	fixed_out f = {malloc(cap + 1), 0, cap};
	if (!f.p)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	f.p[0] = '\0';
	size_t flags = JSON_COMPACT | (sort_keys ? JSON_SORT_KEYS : 0);
	if (json_dump_callback(v, to_fixed, &f, flags) != 0) {
		OPENSSL_cleanse(f.p, cap + 1);
		free(f.p);
		return cm_error_set(err, CM_EINVAL,
				    "a JSON document would be longer than %zu bytes", cap);
	}
	*out = f.p;
	return 0;
}

static void wipe(json_t *v)
{
	if (json_is_string(v)) {
		/* jansson owns the bytes; they are about to be freed */
		OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			wipe(json_array_get(v, i));
	} else if (json_is_object(v)) {
		/* the iterator walks the pairs' list, never looks a key up */
		for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
			wipe(json_object_iter_value(it));
			OPENSSL_cleanse((char *)json_object_iter_key(it),
					json_object_iter_key_len(it));
		}
	}
}

void cm_json_decref_wiped(json_t *v)
{
	if (v && v->refcount == 1)
		wipe(v);
	json_decref(v);
}

/* YAML */

static int to_buf(void *data, unsigned char *s, size_t n)
{
	cm_buf *b = data;
	cm_error e = {0};
	return cm_buf_append(b, s, n, &e) == 0;
}

/* Would a YAML 1.1 or 1.2 reader resolve s, written plain, to something
 * other than a string? Errs towards yes: quoting too much is harmless. */
static int looks_typed(const char *s)
{
	static const char *const words[] = {"null", "~", "true", "false", "yes", "no", "on",
					    "off",  "y", "n",	 "<<",	  "=",	 NULL};
	if (!*s)
		return 1;
	for (size_t i = 0; words[i]; i++)
		if (strcasecmp(s, words[i]) == 0)
			return 1;
	const char *p = s + (*s == '+' || *s == '-');
	return (*p >= '0' && *p <= '9') || *p == '.';
}

static int scalar(yaml_emitter_t *em, const char *s, size_t n, yaml_scalar_style_t style)
{
	yaml_event_t ev;
	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)n, 1, 1, style))
		return 0;
	return yaml_emitter_emit(em, &ev);
}

static int emit_str(yaml_emitter_t *em, const char *s, size_t n)
{
	yaml_scalar_style_t st = YAML_ANY_SCALAR_STYLE;
	if (memchr(s, '\n', n))
		st = YAML_LITERAL_SCALAR_STYLE; /* libyaml quotes it if it must */
	else if (strlen(s) != n || looks_typed(s))
		st = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	return scalar(em, s, n, st);
}

static int emit_node(yaml_emitter_t *em, const json_t *v, int depth)
{
	yaml_event_t ev;
	char num[64];
	if (depth > 64)
		return 0;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *x;
		if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
							 YAML_BLOCK_MAPPING_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return 0;
		json_object_foreach((json_t *)v, k, x)
		{
			if (!emit_str(em, k, strlen(k)) || !emit_node(em, x, depth + 1))
				return 0;
		}
		return yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
	}
	case JSON_ARRAY:
		if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
							  YAML_BLOCK_SEQUENCE_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return 0;
		for (size_t i = 0; i < json_array_size(v); i++)
			if (!emit_node(em, json_array_get(v, i), depth + 1))
				return 0;
		return yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
	case JSON_STRING:
		return emit_str(em, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return scalar(em, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
	case JSON_REAL:
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		return scalar(em, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
	case JSON_TRUE:
		return scalar(em, "true", 4, YAML_PLAIN_SCALAR_STYLE);
	case JSON_FALSE:
		return scalar(em, "false", 5, YAML_PLAIN_SCALAR_STYLE);
	case JSON_NULL:
		return scalar(em, "null", 4, YAML_PLAIN_SCALAR_STYLE);
	}
	return 0;
}

int cm_yaml_append(cm_buf *out, const json_t *doc, cm_error *err)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	if (!yaml_emitter_initialize(&em))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	yaml_emitter_set_output(&em, to_buf, out);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1); /* no folding of long values */
	int ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
		 yaml_emitter_emit(&em, &ev) &&
		 yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
		 yaml_emitter_emit(&em, &ev) && emit_node(&em, doc, 0) &&
		 yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&em, &ev) &&
		 yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&em, &ev) &&
		 yaml_emitter_flush(&em);
	int rc = 0;
	if (!ok)
		rc = cm_error_set(err, CM_EINVAL, "cannot write a YAML document: %s",
				  em.problem ? em.problem
					     : "a value is not UTF-8, too deep or too long");
	yaml_emitter_delete(&em);
	return rc;
}
