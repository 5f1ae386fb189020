#include "bld_discover.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "bld_spec.h"
#include "cm_file.h"

#define OCC_MAX 1000000 /* occurrences in one set */

/* ---- caps, checked with the event API before any document is loaded ---- */

static int yaml_error(const char *name, const yaml_parser_t *p, cm_error *err)
{
	const yaml_mark_t *m = &p->problem_mark;
	if (p->error == YAML_MEMORY_ERROR)
		return cm_error_set(err, CM_ENOMEM, "%s: out of memory while parsing YAML", name);
	if (p->error == YAML_READER_ERROR)
		return cm_error_set(err, CM_EINVAL, "%s: byte %zu: not YAML text: %s", name,
				    p->problem_offset, p->problem ? p->problem : "reader error");
	char ctx[200] = "";
	if (p->context && p->context_mark.line != m->line)
		snprintf(ctx, sizeof(ctx), " (that began at line %zu, column %zu)",
			 p->context_mark.line + 1, p->context_mark.column + 1);
	return cm_error_set(err, CM_EINVAL, "%s:%zu:%zu: YAML syntax error: %s%s%s%s", name,
			    m->line + 1, m->column + 1, p->problem ? p->problem : "invalid YAML",
			    p->context ? " " : "", p->context ? p->context : "", ctx);
}

static int check_caps(const char *name, const cm_buf *text, cm_error *err)
{
	yaml_parser_t p;
	yaml_event_t ev;
	size_t docs = 0, nodes = 0, depth = 0;
	int rc = 0;
	if (!yaml_parser_initialize(&p))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)text->data, text->len);
	for (int done = 0; !done && rc == 0;) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = yaml_error(name, &p, err);
			break;
		}
		const yaml_mark_t *m = &ev.start_mark;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			nodes = 0;
			if (++docs > BLD_YAML_DOCS_MAX)
				rc = cm_error_set(err, CM_EINVAL,
						  "%s:%zu:%zu: more than %d documents in one file",
						  name, m->line + 1, m->column + 1,
						  BLD_YAML_DOCS_MAX);
			break;
		case YAML_SCALAR_EVENT:
			if (ev.data.scalar.length > BLD_YAML_VALUE_MAX)
				rc = cm_error_set(
				    err, CM_EINVAL,
				    "%s:%zu:%zu: document %zu: a value of %zu bytes is over the "
				    "%zu MiB cap for one value (no Kubernetes object holds one "
				    "this large)",
				    name, m->line + 1, m->column + 1, docs, ev.data.scalar.length,
				    BLD_YAML_VALUE_MAX >> 20);
			nodes++;
			break;
		case YAML_ALIAS_EVENT:
			nodes++;
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			nodes++;
			if (++depth > BLD_YAML_DEPTH_MAX)
				rc = cm_error_set(
				    err, CM_EINVAL,
				    "%s:%zu:%zu: document %zu nests deeper than %d levels", name,
				    m->line + 1, m->column + 1, docs, BLD_YAML_DEPTH_MAX);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		default:
			break;
		}
		if (rc == 0 && nodes > BLD_YAML_DOC_NODES_MAX)
			rc = cm_error_set(err, CM_EINVAL,
					  "%s:%zu:%zu: document %zu has more than %d nodes", name,
					  m->line + 1, m->column + 1, docs, BLD_YAML_DOC_NODES_MAX);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return rc;
}

/* ---- the walk ---- */

typedef struct walk {
	bld_yset *set;
	yaml_document_t *doc;
	const char *name; /* source name, for messages */
	size_t src, docno;
	char kind[64];
	char oname[256];
	char path[512];
	size_t plen;
	size_t budget; /* node visits left: aliases can make a small document huge */
	cm_error *err;
} walk;

static yaml_node_t *node(walk *w, yaml_node_item_t id)
{
	return yaml_document_get_node(w->doc, id);
}

static int is_scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE;
}

static const char *sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static int scalar_is(const yaml_node_t *n, const char *s)
{
	return is_scalar(n) && n->data.scalar.length == strlen(s) &&
	       memcmp(sval(n), s, n->data.scalar.length) == 0;
}

static yaml_node_t *map_get(walk *w, yaml_node_t *map, const char *key)
{
	return bld_yaml_get(w->doc, map, key);
}

static void copy_scalar(char *out, size_t n, const yaml_node_t *v)
{
	out[0] = '\0';
	if (!is_scalar(v))
		return;
	size_t l = v->data.scalar.length < n - 1 ? v->data.scalar.length : n - 1;
	memcpy(out, sval(v), l);
	out[l] = '\0';
}

/* Path helpers: push returns the old length to restore. */
static size_t path_grown(walk *w, size_t old, int n)
{
	if (n > 0)
		w->plen = old + (size_t)n < sizeof(w->path) ? old + (size_t)n : sizeof(w->path) - 1;
	return old;
}

static size_t path_key(walk *w, const char *key, size_t klen)
{
	size_t old = w->plen;
	int simple = klen > 0;
	for (size_t i = 0; i < klen; i++) {
		char c = key[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			simple = 0;
	}
	int n = simple ? snprintf(w->path + old, sizeof(w->path) - old, "%s%.*s", old ? "." : "",
				  (int)klen, key)
		       : snprintf(w->path + old, sizeof(w->path) - old, "[\"%.*s\"]",
				  (int)(klen > 200 ? 200 : klen), key);
	return path_grown(w, old, n);
}

static size_t path_idx(walk *w, size_t i)
{
	size_t old = w->plen;
	return path_grown(w, old, snprintf(w->path + old, sizeof(w->path) - old, "[%zu]", i));
}

static void path_pop(walk *w, size_t old)
{
	w->plen = old;
	w->path[old] = '\0';
}

static int spend(walk *w)
{
	if (w->budget == 0)
		return cm_error_set(
		    w->err, CM_EINVAL,
		    "%s: document %zu: too many nodes to walk (aliases expand it beyond %d)",
		    w->name, w->docno, 4 * BLD_YAML_DOC_NODES_MAX);
	w->budget--;
	return 0;
}

static bld_occ *new_occ(walk *w, const yaml_node_t *v, int suggested, const char *rule)
{
	bld_yset *s = w->set;
	if (s->n_occ >= OCC_MAX) {
		cm_error_set(w->err, CM_EINVAL, "%s: more than %d image references", w->name,
			     OCC_MAX);
		return NULL;
	}
	bld_occ *nv = cm_grow(s->occ, s->n_occ, &s->cap_occ, sizeof(*nv), w->err);
	if (!nv)
		return NULL;
	s->occ = nv;
	bld_occ *o = &s->occ[s->n_occ++];
	memset(o, 0, sizeof(*o));
	o->suggested = suggested;
	o->src = w->src;
	o->doc = w->docno;
	snprintf(o->kind, sizeof(o->kind), "%s", w->kind);
	snprintf(o->name, sizeof(o->name), "%s", w->oname);
	snprintf(o->path, sizeof(o->path), "%s", w->path);
	snprintf(o->rule, sizeof(o->rule), "%s", rule);
	o->line = v->start_mark.line + 1;
	o->col = v->start_mark.column + 1;
	o->start = v->start_mark.index;
	o->end = v->end_mark.index;
	o->style = (int)v->data.scalar.style;
	return o;
}

/* Is a plain scalar a YAML null, boolean or number (YAML 1.1, as
 * Kubernetes reads it), not a string? The kind, or NULL. */
static const char *yaml_nonstring(const char *s, size_t n)
{
	static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
	static const char *const bools[] = {"y",    "Y",     "yes",   "Yes",   "YES",  "n",
					    "N",    "no",    "No",    "NO",    "true", "True",
					    "TRUE", "false", "False", "FALSE", "on",   "On",
					    "ON",   "off",   "Off",   "OFF",   NULL};
	if (n == 0)
		return "a YAML null";
	for (size_t i = 0; nulls[i]; i++)
		if (strcmp(s, nulls[i]) == 0)
			return "a YAML null";
	for (size_t i = 0; bools[i]; i++)
		if (strcmp(s, bools[i]) == 0)
			return "a YAML boolean";
	char *end;
	errno = 0;
	(void)strtod(s, &end);
	if (end != s && *end == '\0')
		return "a YAML number";
	(void)strtoll(s, &end, 0);
	if (end != s && *end == '\0')
		return "a YAML number";
	const char *t = s + (*s == '-' || *s == '+');
	if (strcasecmp(t, ".inf") == 0 || strcasecmp(s, ".nan") == 0)
		return "a YAML number";
	return NULL;
}

const char *bld_discover_not_ref(const char *v, size_t len, int plain)
{
	static const char *const words[] = {"none",    "auto",	"default", "disabled",
					    "enabled", "unset", NULL};
	if (len == 0)
		return "empty";
	if (len > REG_REF_MAX)
		return "longer than any image reference";
	if (memchr(v, '\0', len))
		return "holds a NUL byte";
	if (plain) {
		const char *k = yaml_nonstring(v, len);
		if (k)
			return k;
	}
	if (strstr(v, "{{") || strstr(v, "${") || strstr(v, "$(") || strstr(v, "<%"))
		return "a template, filled in later";
	for (size_t i = 0; words[i]; i++)
		if (strcasecmp(v, words[i]) == 0)
			return "a keyword";
	return NULL;
}

/* An occurrence for the scalar v: its value from skip on (the skipped
 * text is the prefix, "oci://" of a storageUri) and the reference, or the
 * problem. A generic field (generic != 0: a string field named image or
 * *Image in any object) marks values that are not references as ignored,
 * kept with the reason; an image field of a container keeps them as
 * invalid (a warning: that field always holds an image). */
static int take(walk *w, yaml_node_t *v, const char *rule, size_t skip, int generic)
{
	bld_occ *o = new_occ(w, v, 0, rule);
	if (!o)
		return w->err->code;
	const char *s = sval(v) + skip;
	size_t l = v->data.scalar.length - skip;
	snprintf(o->prefix, sizeof(o->prefix), "%.*s", (int)skip, sval(v));
	o->ignored = generic;
	if (l > REG_REF_MAX || memchr(s, '\0', l)) {
		snprintf(o->value, sizeof(o->value), "%.*s...", 40, s);
		snprintf(o->problem, sizeof(o->problem), "not an image reference (%zu bytes)", l);
		return 0;
	}
	memcpy(o->value, s, l);
	o->value[l] = '\0';
	int plain = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && skip == 0;
	const char *why = bld_discover_not_ref(o->value, l, plain);
	reg_ref r;
	cm_error e;
	if (why) {
		snprintf(o->problem, sizeof(o->problem), "%s, not an image reference", why);
	} else if (reg_ref_parse(&r, o->value, &e) < 0) {
		snprintf(o->problem, sizeof(o->problem), "%.250s", e.msg);
	} else {
		reg_ref_string(o->ref, sizeof(o->ref), &r);
		o->ignored = 0;
	}
	return 0;
}

/* The image of a container: certain. */
static int image_field(walk *w, yaml_node_t *v, const char *rule)
{
	if (v && !is_scalar(v))
		return cm_error_set(w->err, CM_EINVAL,
				    "%s:%zu:%zu: document %zu (%s %s): %s must be a string",
				    w->name, v->start_mark.line + 1, v->start_mark.column + 1,
				    w->docno, w->kind, w->oname, w->path);
	return v ? take(w, v, rule, 0, 0) : 0;
}

static int tok_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '/' || c == '@' || c == '-';
}

int bld_discover_qualified(const char *t)
{
	const char *slash = strchr(t, '/');
	if (!slash || strstr(t, "//"))
		return 0;
	size_t hl = (size_t)(slash - t);
	int has_digest = strstr(t, "@sha256:") != NULL;
	int has_host = memchr(t, '.', hl) || memchr(t, ':', hl) ||
		       (hl == 9 && strncmp(t, "localhost", 9) == 0);
	if (!has_host && !has_digest)
		return 0;
	reg_ref r;
	cm_error e;
	if (reg_ref_parse(&r, t, &e) < 0)
		return 0;
	if (!has_digest) {
		/* "kubeflow.org/v1" and "app.kubernetes.io/name" look like names:
		 * ask for an explicit tag or a path of two components */
		const char *last = strrchr(t, '/');
		if (!strchr(last, ':') && !strchr(slash + 1, '/'))
			return 0;
	}
	return 1;
}

/* Is the token at s+a the value of a key named like "image" or
 * "defaultJobImage", as in JSON ("image" : "x") or YAML (image: x)? */
static int image_key_before(const char *s, size_t a)
{
	size_t i = a;
	if (i > 0 && (s[i - 1] == '"' || s[i - 1] == '\''))
		i--;
	while (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
		i--;
	if (i == 0 || (s[i - 1] != ':' && s[i - 1] != '='))
		return 0;
	i--;
	while (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
		i--;
	if (i > 0 && (s[i - 1] == '"' || s[i - 1] == '\''))
		i--;
	if (i < 5)
		return 0;
	return strncasecmp(s + i - 5, "image", 5) == 0;
}

/* A name with a tag or digest ("kserve/agent:v0.16.0"). */
static int tagged(const char *t)
{
	const char *last = strrchr(t, '/');
	return strchr(last ? last : t, ':') != NULL || strstr(t, "@sha256:") != NULL;
}

int bld_discover_token(const char *s, size_t n, size_t *i, size_t *a, size_t *b)
{
	while (*i < n && !tok_char((unsigned char)s[*i]))
		(*i)++;
	if (*i >= n)
		return 0;
	for (*a = *i; *i < n && tok_char((unsigned char)s[*i]);)
		(*i)++;
	*b = *i;
	while (*a < *b && strchr(".:/@-_", s[*a]))
		(*a)++;
	while (*b > *a && strchr(".:/@-", s[*b - 1]))
		(*b)--;
	return 1;
}

/* Fully qualified references inside a string, and tagged names given as
 * the value of an image key inside a string (JSON in a ConfigMap):
 * suggested. */
static int scan_string(walk *w, yaml_node_t *v)
{
	if (!is_scalar(v))
		return 0;
	const char *s = sval(v);
	size_t i = 0, a, b;
	while (bld_discover_token(s, v->data.scalar.length, &i, &a, &b)) {
		if (b - a < 3 || b - a > REG_REF_MAX)
			continue;
		char tok[REG_REF_MAX + 1];
		memcpy(tok, s + a, b - a);
		tok[b - a] = '\0';
		if (!bld_discover_qualified(tok) && !(image_key_before(s, a) && tagged(tok)))
			continue;
		reg_ref r;
		cm_error e;
		if (reg_ref_parse(&r, tok, &e) < 0)
			continue;
		bld_occ *o = new_occ(w, v, 1, "string scan (suggested)");
		if (!o)
			return w->err->code;
		memcpy(o->value, tok, b - a + 1);
		reg_ref_string(o->ref, sizeof(o->ref), &r);
	}
	return 0;
}

static int scan_string_list(walk *w, yaml_node_t *seq)
{
	if (!seq || seq->type != YAML_SEQUENCE_NODE)
		return 0;
	size_t i = 0;
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++, i++) {
		size_t old = path_idx(w, i);
		int rc = spend(w);
		if (rc == 0)
			rc = scan_string(w, node(w, *it));
		path_pop(w, old);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* One container: image (certain); args, command, env[].value (strings). */
static int container(walk *w, yaml_node_t *c, const char *rule)
{
	if (!c || c->type != YAML_MAPPING_NODE)
		return 0;
	int rc = 0;
	size_t old;
	yaml_node_t *v;
	if ((v = map_get(w, c, "image"))) {
		old = path_key(w, "image", 5);
		rc = image_field(w, v, rule);
		path_pop(w, old);
	}
	for (const char *const *k = (const char *const[]){"command", "args", NULL}; rc == 0 && *k;
	     k++)
		if ((v = map_get(w, c, *k))) {
			old = path_key(w, *k, strlen(*k));
			rc = scan_string_list(w, v);
			path_pop(w, old);
		}
	if (rc == 0 && (v = map_get(w, c, "env")) && v->type == YAML_SEQUENCE_NODE) {
		size_t o1 = path_key(w, "env", 3), i = 0;
		for (yaml_node_item_t *it = v->data.sequence.items.start;
		     rc == 0 && it < v->data.sequence.items.top; it++, i++) {
			yaml_node_t *val = map_get(w, node(w, *it), "value");
			if (!val)
				continue;
			size_t o2 = path_idx(w, i);
			path_key(w, "value", 5);
			rc = scan_string(w, val);
			path_pop(w, o2); /* and value */
		}
		path_pop(w, o1);
	}
	return rc;
}

static int is_one_of(const char *s, const char *const *v)
{
	for (size_t i = 0; v[i]; i++)
		if (strcmp(s, v[i]) == 0)
			return 1;
	return 0;
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
	size_t l = strlen(suffix);
	return n >= l && memcmp(s + n - l, suffix, l) == 0;
}

static const char *const argo_kinds[] = {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate",
					 "CronWorkflow", NULL};
static const char *const list_keys[] = {"containers", "initContainers", "ephemeralContainers",
					NULL};
/* keys a container() call has looked at */
static const char *const container_keys[] = {"image", "command", "args", "env", NULL};

static int walk_node(walk *w, yaml_node_t *n, int depth, int in_spec);
static int walk_map(walk *w, yaml_node_t *n, int depth, int in_spec, int skip_container, int top);

/* A list of containers: each item through container(), then the rest of
 * each item like any object. */
static int container_list(walk *w, yaml_node_t *seq, int depth, const char *rule);

/* The pairs of a mapping: generic fields, container lists, and deeper
 * nodes. skip_container: the keys container() took are left alone. */
static int walk_map(walk *w, yaml_node_t *n, int depth, int in_spec, int skip_container, int top)
{
	int rc = 0;
	int argo = is_one_of(w->kind, argo_kinds);
	char known[96];
	snprintf(known, sizeof(known), "known CRD %.50s", w->kind);
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
	     rc == 0 && p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node(w, p->key), *v = node(w, p->value);
		if (!is_scalar(k) || !v)
			continue;
		const char *key = sval(k);
		size_t kl = k->data.scalar.length;
		if (skip_container && is_one_of(key, container_keys))
			continue;
		if (top && (strcmp(key, "status") == 0 || strcmp(key, "kind") == 0 ||
			    strcmp(key, "apiVersion") == 0))
			continue;
		int child = top ? strcmp(key, "spec") == 0 : in_spec;
		/* a label value cannot hold a host or a tag ('/' and ':' are not
		 * allowed there): `image: nginx` in labels is a name, not a pull */
		if (v->type == YAML_MAPPING_NODE &&
		    (strcmp(key, "labels") == 0 || strcmp(key, "matchLabels") == 0))
			continue;
		size_t old = path_key(w, key, kl);
		if (v->type == YAML_SEQUENCE_NODE &&
		    (is_one_of(key, list_keys) || ends_with(key, kl, "Containers"))) {
			rc = container_list(w, v, depth + 1, "containers list");
		} else if (argo && v->type == YAML_SEQUENCE_NODE && strcmp(key, "sidecars") == 0) {
			rc = container_list(w, v, depth + 1, known);
		} else if (argo && v->type == YAML_MAPPING_NODE &&
			   (strcmp(key, "container") == 0 || strcmp(key, "script") == 0)) {
			if ((rc = container(w, v, known)) == 0)
				rc = walk_map(w, v, depth + 1, child, 1, 0);
		} else if (v->type == YAML_MAPPING_NODE && strcmp(key, "container") == 0 &&
			   is_scalar(map_get(w, v, "image"))) {
			/* one container (spec.container of a ClusterStorageContainer):
			 * its image is a field image, its args and env strings */
			if ((rc = container(w, v, "field image")) == 0)
				rc = walk_map(w, v, depth + 1, child, 1, 0);
		} else if (v->type == YAML_SCALAR_NODE) {
			if (strcmp(key, "image") == 0)
				rc = take(w, v, "field image", 0, 1);
			else if (ends_with(key, kl, "Image"))
				rc = take(w, v, "field *Image", 0, 1);
			else if (strcmp(key, "storageUri") == 0 && v->data.scalar.length > 6 &&
				 strncmp(sval(v), "oci://", 6) == 0)
				rc = take(w, v, "storageUri oci://", 6, 0); /* KServe modelcars */
		} else {
			rc = walk_node(w, v, depth + 1, child);
		}
		path_pop(w, old);
	}
	return rc;
}

static int container_list(walk *w, yaml_node_t *seq, int depth, const char *rule)
{
	int rc = 0;
	size_t i = 0;
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     rc == 0 && it < seq->data.sequence.items.top; it++, i++) {
		size_t o2 = path_idx(w, i);
		yaml_node_t *c = node(w, *it);
		if ((rc = spend(w)) == 0)
			rc = container(w, c, rule);
		if (rc == 0 && c && c->type == YAML_MAPPING_NODE && depth <= BLD_YAML_DEPTH_MAX)
			rc = walk_map(w, c, depth + 1, 0, 1, 0);
		else if (rc == 0 && c && c->type == YAML_SEQUENCE_NODE)
			rc = walk_node(w, c, depth + 1, 0);
		path_pop(w, o2);
	}
	return rc;
}

/* Walk any node of an object. in_spec: under the object's spec, where an
 * InferenceService keeps its inline containers. */
static int walk_node(walk *w, yaml_node_t *n, int depth, int in_spec)
{
	int rc = spend(w);
	if (rc < 0 || !n || depth > BLD_YAML_DEPTH_MAX)
		return rc;
	if (n->type == YAML_SEQUENCE_NODE) {
		size_t i = 0;
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     rc == 0 && it < n->data.sequence.items.top; it++, i++) {
			size_t old = path_idx(w, i);
			rc = walk_node(w, node(w, *it), depth + 1, in_spec);
			path_pop(w, old);
		}
		return rc;
	}
	if (n->type != YAML_MAPPING_NODE)
		return 0;
	/* KServe: the predictor, transformer and explainer and their
	 * framework specs (sklearn, model, ...) are containers inline */
	if (in_spec > 1 && strcmp(w->kind, "InferenceService") == 0 &&
	    is_scalar(map_get(w, n, "image"))) {
		if ((rc = container(w, n, "known CRD InferenceService")) < 0)
			return rc;
		return walk_map(w, n, depth, in_spec + 1, 1, 0);
	}
	return walk_map(w, n, depth, in_spec ? in_spec + 1 : 0, 0, 0);
}

static int count_kind(bld_ysrc *src, const char *kind, cm_error *err)
{
	size_t i = 0;
	while (i < src->n_kinds && strcmp(src->kinds[i].kind, kind) < 0)
		i++;
	if (i < src->n_kinds && strcmp(src->kinds[i].kind, kind) == 0) {
		src->kinds[i].n++;
		return 0;
	}
	bld_kind_count *nv = realloc(src->kinds, (src->n_kinds + 1) * sizeof(*nv));
	if (!nv)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	src->kinds = nv;
	memmove(&nv[i + 1], &nv[i], (src->n_kinds - i) * sizeof(*nv));
	snprintf(nv[i].kind, sizeof(nv[i].kind), "%s", kind);
	nv[i].n = 1;
	src->n_kinds++;
	return 0;
}

static int is_empty_doc(const yaml_node_t *root)
{
	if (!is_scalar(root) || root->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	return root->data.scalar.length == 0 || scalar_is(root, "null") || scalar_is(root, "~");
}

static int scan_object(walk *w, yaml_node_t *obj, int depth)
{
	if (!obj || obj->type != YAML_MAPPING_NODE)
		return cm_error_set(
		    w->err, CM_EINVAL,
		    "%s:%zu:%zu: document %zu%s%s is not a Kubernetes object (a mapping with "
		    "apiVersion and kind)",
		    w->name, obj ? obj->start_mark.line + 1 : 0,
		    obj ? obj->start_mark.column + 1 : 0, w->docno, w->plen ? " at " : "", w->path);
	yaml_node_t *k = map_get(w, obj, "kind");
	if (!k || !is_scalar(k) || k->data.scalar.length == 0)
		return cm_error_set(w->err, CM_EINVAL,
				    "%s:%zu:%zu: document %zu%s%s has no 'kind'%s", w->name,
				    obj->start_mark.line + 1, obj->start_mark.column + 1, w->docno,
				    w->plen ? " at " : "", w->path,
				    k ? " (it must be a non-empty string)"
				      : " (every manifest needs apiVersion and kind)");
	if (k->data.scalar.length >= sizeof(w->kind))
		return cm_error_set(w->err, CM_EINVAL, "%s:%zu:%zu: document %zu: kind is too long",
				    w->name, k->start_mark.line + 1, k->start_mark.column + 1,
				    w->docno);
	copy_scalar(w->kind, sizeof(w->kind), k);
	yaml_node_t *md = map_get(w, obj, "metadata"), *nm = map_get(w, md, "name");
	copy_scalar(w->oname, sizeof(w->oname), nm ? nm : map_get(w, md, "generateName"));
	size_t kl = strlen(w->kind);
	yaml_node_t *items = map_get(w, obj, "items");
	if (kl >= 4 && strcmp(w->kind + kl - 4, "List") == 0 && items &&
	    items->type == YAML_SEQUENCE_NODE && depth == 0) {
		size_t i = 0;
		int rc = 0;
		for (yaml_node_item_t *it = items->data.sequence.items.start;
		     rc == 0 && it < items->data.sequence.items.top; it++, i++) {
			size_t o1 = path_key(w, "items", 5);
			path_idx(w, i);
			rc = scan_object(w, node(w, *it), depth + 1);
			path_pop(w, o1); /* and the index */
		}
		return rc;
	}
	int rc = count_kind(&w->set->src[w->src], w->kind, w->err);
	if (rc < 0)
		return rc;
	if (strcmp(w->kind, "CustomResourceDefinition") == 0)
		return 0; /* schemas, not workloads */
	if (strcmp(w->kind, "ConfigMap") == 0) {
		yaml_node_t *data = map_get(w, obj, "data");
		if (data && data->type == YAML_MAPPING_NODE) {
			size_t o1 = path_key(w, "data", 4);
			for (yaml_node_pair_t *p = data->data.mapping.pairs.start;
			     rc == 0 && p < data->data.mapping.pairs.top; p++) {
				yaml_node_t *dk = node(w, p->key);
				if (!is_scalar(dk))
					continue;
				size_t o2 = path_key(w, sval(dk), dk->data.scalar.length);
				rc = scan_string(w, node(w, p->value));
				path_pop(w, o2);
			}
			path_pop(w, o1);
		}
		return rc;
	}
	if (strcmp(w->kind, "Secret") == 0)
		return 0; /* opaque data */
	/* every top-level field but status (what was observed, not wanted) */
	return walk_map(w, obj, depth + 1, 0, 0, 1);
}

static bld_ysrc *new_src(bld_yset *s, const char *name, cm_buf *text, cm_error *err)
{
	bld_ysrc *nv = cm_grow(s->src, s->n_src, &s->cap_src, sizeof(*nv), err);
	if (!nv) {
		cm_buf_free(text);
		return NULL;
	}
	s->src = nv;
	bld_ysrc *src = &s->src[s->n_src++];
	memset(src, 0, sizeof(*src));
	snprintf(src->name, sizeof(src->name), "%s", name);
	src->text = *text;
	memset(text, 0, sizeof(*text));
	return src;
}

int bld_yset_add_text(bld_yset *s, const char *name, cm_buf *text, cm_error *err)
{
	bld_ysrc *src = new_src(s, name, text, err);
	if (!src)
		return CM_ENOMEM;
	if (!src->text.data) {
		src->text.data = calloc(1, 1);
		if (!src->text.data)
			return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	if (memchr(src->text.data, '\0', src->text.len))
		return cm_error_set(
		    err, CM_EINVAL, "%s: byte %zu: not YAML text (a NUL byte)", name,
		    (size_t)((char *)memchr(src->text.data, '\0', src->text.len) - src->text.data));
	int rc = check_caps(name, &src->text, err);
	if (rc < 0)
		return rc;
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)src->text.data, src->text.len);
	walk w = {.set = s, .name = src->name, .src = (size_t)(src - s->src), .err = err};
	for (;;) {
		yaml_document_t d;
		if (!yaml_parser_load(&p, &d)) {
			rc = yaml_error(name, &p, err);
			break;
		}
		yaml_node_t *root = yaml_document_get_root_node(&d);
		if (!root) {
			yaml_document_delete(&d);
			break;
		}
		w.docno++;
		if (!is_empty_doc(root)) {
			w.doc = &d;
			w.budget = 4 * (size_t)BLD_YAML_DOC_NODES_MAX;
			w.plen = 0;
			w.path[0] = '\0';
			w.kind[0] = w.oname[0] = '\0';
			s->src[w.src].n_docs++;
			rc = scan_object(&w, root, 0);
		}
		yaml_document_delete(&d);
		if (rc < 0)
			break;
	}
	yaml_parser_delete(&p);
	return rc;
}

int bld_yset_add_file(bld_yset *s, const char *path, cm_error *err)
{
	cm_buf b = CM_BUF_INIT;
	int rc = cm_file_read(&b, path, BLD_YAML_FILE_MAX, err);
	if (rc < 0) {
		cm_buf_free(&b);
		return cm_error_wrap(err, "reading manifest %s", path);
	}
	return bld_yset_add_text(s, path, &b, err);
}

void bld_yset_free(bld_yset *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_src; i++) {
		cm_buf_free(&s->src[i].text);
		free(s->src[i].kinds);
	}
	free(s->src);
	free(s->occ);
	memset(s, 0, sizeof(*s));
}

static int cmp_occ(const void *a, const void *b, void *arg)
{
	const bld_yset *s = arg;
	const bld_occ *x = &s->occ[*(const size_t *)a], *y = &s->occ[*(const size_t *)b];
	int c = strcmp(x->ref, y->ref);
	if (c)
		return c;
	if (x->src != y->src)
		return x->src < y->src ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return strcmp(x->value, y->value);
}

int bld_yset_found(bld_found_list *out, const bld_yset *s, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	size_t n = 0;
	out->order = malloc((s->n_occ ? s->n_occ : 1) * sizeof(size_t));
	out->v = malloc((s->n_occ ? s->n_occ : 1) * sizeof(bld_found));
	if (!out->order || !out->v) {
		bld_found_list_free(out);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < s->n_occ; i++)
		if (s->occ[i].ref[0])
			out->order[n++] = i;
	qsort_r(out->order, n, sizeof(size_t), cmp_occ, (void *)s);
	for (size_t i = 0; i < n; i++) {
		const bld_occ *o = &s->occ[out->order[i]];
		if (out->n == 0 || strcmp(out->v[out->n - 1].ref, o->ref) != 0) {
			bld_found *f = &out->v[out->n++];
			f->ref = o->ref;
			f->suggested = 1;
			f->first = i;
			f->n = 0;
		}
		bld_found *f = &out->v[out->n - 1];
		f->n++;
		if (!o->suggested)
			f->suggested = 0;
	}
	return 0;
}

json_t *bld_ysrc_kinds_json(const bld_ysrc *src)
{
	json_t *k = json_object();
	for (size_t j = 0; k && j < src->n_kinds; j++)
		json_object_set_new(k, src->kinds[j].kind,
				    json_integer((json_int_t)src->kinds[j].n));
	return k;
}

void bld_found_list_free(bld_found_list *l)
{
	if (!l)
		return;
	free(l->v);
	free(l->order);
	memset(l, 0, sizeof(*l));
}

int bld_yaml_is_spec(const char *path)
{
	cm_buf b = CM_BUF_INIT;
	cm_error e;
	yaml_document_t d;
	int is = 0;
	if (cm_file_read(&b, path, BLD_SPEC_MAX, &e) == 0 && bld_yaml_load(&d, path, &b, &e) == 0) {
		yaml_node_t *root = yaml_document_get_root_node(&d);
		is = root && scalar_is(bld_yaml_get(&d, root, "apiVersion"), "ferry/v1") &&
		     scalar_is(bld_yaml_get(&d, root, "kind"), "Bundle");
		yaml_document_delete(&d);
	}
	cm_buf_free(&b);
	return is;
}
