/* Unit tests for cm_emit: JSON through jansson and YAML through libyaml's
 * emitter. Hostile values (quotes, backslashes, line breaks, ": ", "#",
 * words a YAML reader takes for booleans or numbers, non-ASCII) are
 * written and read back with a real parser (jansson's, libyaml's), and
 * must come back as the same values. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "cm_buf.h"
#include "cm_emit.h"
#include "ins_mirror.h"
#include "tu.h"

static const char *const hostile[] = {
    "plain",
    "a \"quoted\" word",
    "back\\slash\\",
    "two\nlines\n",
    "no final break\nhere",
    "key: value",
    "# not a comment",
    "value #comment",
    "- a list?",
    "[flow, {seq: 1}]",
    "&anchor *alias !tag",
    "'single' and \"double\"",
    "  leading and trailing spaces  ",
    "tab\there",
    "control \x01\x1f bytes",
    "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\xa2",
    "",
    "true",
    "False",
    "yes",
    "off",
    "null",
    "~",
    "1",
    "-1.5e3",
    "0x1F",
    ".inf",
    "12:30",
    "<<",
    "---",
    "...",
    "%YAML 1.2",
    "@at `tick",
    "trailing break and blank\n\n",
    "\nleading break",
};
#define NHOSTILE (sizeof(hostile) / sizeof(hostile[0]))

/* A YAML reader's view: plain scalars that look like null, a boolean or a
 * number (YAML 1.1 or 1.2) come back as those, so a string the emitter
 * wrote plain by mistake fails to compare equal. */
static json_t *plain_scalar(const char *s)
{
	static const char *const t[] = {"true", "yes", "on", "y", NULL};
	static const char *const f[] = {"false", "no", "off", "n", NULL};
	if (!*s || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0)
		return json_null();
	for (int i = 0; t[i]; i++)
		if (strcasecmp(s, t[i]) == 0)
			return json_true();
	for (int i = 0; f[i]; i++)
		if (strcasecmp(s, f[i]) == 0)
			return json_false();
	char *end;
	long long v = strtoll(s, &end, 0);
	if (*end == '\0')
		return json_integer(v);
	double d = strtod(s, &end);
	if (*end == '\0' || strcasecmp(s, ".inf") == 0 || strcasecmp(s, ".nan") == 0)
		return json_real(d);
	return json_string(s);
}

static json_t *load_node(yaml_parser_t *p, yaml_event_t *ev);

static json_t *load_next(yaml_parser_t *p)
{
	yaml_event_t ev;
	if (!yaml_parser_parse(p, &ev))
		return NULL;
	json_t *v = load_node(p, &ev);
	yaml_event_delete(&ev);
	return v;
}

static json_t *load_node(yaml_parser_t *p, yaml_event_t *ev)
{
	if (ev->type == YAML_SCALAR_EVENT) {
		const char *s = (const char *)ev->data.scalar.value;
		if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
			return plain_scalar(s);
		return json_stringn(s, ev->data.scalar.length);
	}
	if (ev->type == YAML_SEQUENCE_START_EVENT) {
		json_t *a = json_array();
		for (;;) {
			yaml_event_t e;
			if (!yaml_parser_parse(p, &e))
				break;
			if (e.type == YAML_SEQUENCE_END_EVENT) {
				yaml_event_delete(&e);
				return a;
			}
			json_array_append_new(a, load_node(p, &e));
			yaml_event_delete(&e);
		}
		json_decref(a);
		return NULL;
	}
	if (ev->type == YAML_MAPPING_START_EVENT) {
		json_t *o = json_object();
		for (;;) {
			yaml_event_t e;
			if (!yaml_parser_parse(p, &e))
				break;
			if (e.type == YAML_MAPPING_END_EVENT) {
				yaml_event_delete(&e);
				return o;
			}
			json_t *k = load_node(p, &e);
			yaml_event_delete(&e);
			json_t *v = load_next(p);
			if (!json_is_string(k) || !v) { /* a key that read as another type */
				json_decref(k);
				json_decref(v);
				break;
			}
			json_object_set_new(o, json_string_value(k), v);
			json_decref(k);
		}
		json_decref(o);
		return NULL;
	}
	return NULL;
}

/* The one document in text (comments allowed), or NULL. */
static json_t *yaml_load(const char *text)
{
	yaml_parser_t p;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
	json_t *root = NULL;
	yaml_event_t ev;
	int docs = 0, ok = 1;
	while (ok && yaml_parser_parse(&p, &ev)) {
		yaml_event_type_t t = ev.type;
		if (t == YAML_DOCUMENT_START_EVENT) {
			docs++;
			json_decref(root);
			root = load_next(&p);
			ok = root != NULL;
		}
		yaml_event_delete(&ev);
		if (t == YAML_STREAM_END_EVENT)
			break;
	}
	if (p.error != YAML_NO_ERROR || docs != 1) {
		json_decref(root);
		root = NULL;
	}
	yaml_parser_delete(&p);
	return root;
}

static json_t *hostile_tree(void)
{
	json_t *o = json_object(), *a = json_array();
	for (size_t i = 0; i < NHOSTILE; i++) {
		json_array_append_new(a, json_string(hostile[i]));
		json_object_set_new(o, hostile[i], json_string(hostile[NHOSTILE - 1 - i]));
	}
	json_object_set_new(o, "list", a);
	json_object_set_new(o, "nested", json_pack("{s:{s:[s,s]}}", "a: b", "#c", "x\ny", "\"z\""));
	json_object_set_new(o, "empty map", json_object());
	json_object_set_new(o, "empty list", json_array());
	json_object_set_new(o, "n", json_integer(-42));
	json_object_set_new(o, "t", json_true());
	json_object_set_new(o, "f", json_false());
	json_object_set_new(o, "z", json_null());
	return o;
}

static void test_json_round_trip(void)
{
	cm_error err = {0};
	json_t *o = hostile_tree();
	TU_CHECK(o != NULL);
	char *t = NULL;
	TU_CHECK(cm_json_text(&t, o, 1 << 16, 0, &err) == 0);
	TU_CHECK(t && !strchr(t, '\n')); /* compact: one line, as events need */
	json_t *back = t ? json_loads(t, 0, NULL) : NULL;
	TU_CHECK_MSG(back && json_equal(o, back), "did not round-trip: %s", t ? t : "(null)");
	json_decref(back);
	cm_free_wiped(t);
	/* sorted keys are byte-stable whatever the insertion order */
	json_t *a = json_pack("{s:s,s:s}", "b", "2", "a", "1");
	TU_CHECK(cm_json_text(&t, a, 64, 1, &err) == 0);
	TU_CHECK_STR(t, "{\"a\":\"1\",\"b\":\"2\"}");
	cm_free_wiped(t);
	TU_CHECK(cm_json_text(&t, a, 64, 0, &err) == 0);
	TU_CHECK_STR(t, "{\"b\":\"2\",\"a\":\"1\"}");
	cm_free_wiped(t);
	/* longer than the cap: refused, nothing returned */
	t = (char *)"x";
	TU_CHECK(cm_json_text(&t, o, 100, 0, &err) == CM_EINVAL);
	TU_CHECK(t == NULL);
	TU_CHECK(strstr(err.msg, "longer than 100 bytes") != NULL);
	/* exactly at the cap fits */
	TU_CHECK(cm_json_text(&t, a, 17, 1, &err) == 0 && t && strlen(t) == 17);
	cm_free_wiped(t);
	TU_CHECK(cm_json_text(&t, a, 16, 1, &err) == CM_EINVAL);
	json_decref(a);
	/* a secret tree is wiped and released; not UTF-8 never gets in */
	cm_json_decref_wiped(o);
	cm_json_decref_wiped(NULL);
	cm_free_wiped(NULL);
	TU_CHECK(json_pack("{s:s}", "k", "bad \xff utf-8") == NULL);
}

static void test_yaml_round_trip(void)
{
	cm_error err = {0};
	json_t *o = hostile_tree();
	cm_buf b = CM_BUF_INIT;
	TU_CHECK(cm_yaml_append(&b, o, &err) == 0);
	json_t *back = b.data ? yaml_load(b.data) : NULL;
	TU_CHECK_MSG(back && json_equal(o, back), "did not round-trip:\n%s",
		     b.data ? b.data : "(null)");
	json_decref(back);
	cm_buf_free(&b);
	/* each hostile value alone as the document */
	for (size_t i = 0; i < NHOSTILE; i++) {
		json_t *s = json_pack("{s:s}", "v", hostile[i]);
		TU_CHECK(cm_yaml_append(&b, s, &err) == 0);
		json_t *r = b.data ? yaml_load(b.data) : NULL;
		TU_CHECK_MSG(r && json_equal(s, r), "'%s' did not round-trip:\n%s", hostile[i],
			     b.data ? b.data : "(null)");
		json_decref(r);
		json_decref(s);
		cm_buf_free(&b);
	}
	json_decref(o);
}

/* Readable and byte-stable: block style, plain where safe, quotes only
 * where a reader would misread, a PEM as a literal block. */
static void test_yaml_text(void)
{
	cm_error err = {0};
	cm_buf b = CM_BUF_INIT;
	json_t *o = json_pack("{s:s,s:{s:s},s:[s,s],s:s,s:s}", "apiVersion", "v1", "metadata",
			      "name", "x", "items", "reg.lab:5000/a/b", "true", "pem",
			      "-----BEGIN X-----\nAA\n-----END X-----\n", "note", "a: b #c");
	TU_CHECK(cm_yaml_append(&b, o, &err) == 0);
	TU_CHECK_STR(b.data, "apiVersion: v1\n"
			     "metadata:\n"
			     "  name: x\n"
			     "items:\n"
			     "- reg.lab:5000/a/b\n"
			     "- \"true\"\n"
			     "pem: |\n"
			     "  -----BEGIN X-----\n"
			     "  AA\n"
			     "  -----END X-----\n"
			     "note: 'a: b #c'\n");
	/* appending keeps what is there (a comment header) */
	cm_buf_free(&b);
	TU_CHECK(cm_buf_append(&b, "# head\n", 7, &err) == 0);
	TU_CHECK(cm_yaml_append(&b, o, &err) == 0);
	TU_CHECK(b.data && strncmp(b.data, "# head\napiVersion: v1\n", 22) == 0);
	json_t *back = b.data ? yaml_load(b.data) : NULL;
	TU_CHECK(back && json_equal(o, back));
	json_decref(back);
	cm_buf_free(&b);
	json_decref(o);
	/* the buffer's cap holds */
	b.limit = 10;
	o = json_pack("{s:s}", "key", "a value longer than ten bytes");
	TU_CHECK(cm_yaml_append(&b, o, &err) < 0);
	TU_CHECK(strstr(err.msg, "YAML") != NULL);
	cm_buf_free(&b);
	json_decref(o);
}

/* The OKD objects ins_mirror writes, from hostile options: every value
 * reads back as given. */
static void test_okd_hostile(void)
{
	cm_error err = {0};
	ins_image im[1];
	memset(im, 0, sizeof(im));
	TU_CHECK(reg_ref_parse(&im[0].r, "docker.io/library/mysql:8", &err) == 0);
	reg_ref_string(im[0].ref, sizeof(im[0].ref), &im[0].r);
	reg_ref_repo(im[0].repo, sizeof(im[0].repo), &im[0].r);
	const char *pem = "-----BEGIN CERTIFICATE-----\nA\"B\\C: #D\n\n  indented\n"
			  "-----END CERTIFICATE-----\n";
	ins_mirror_opts mo = {"https://reg.lab:5000/x: \"y\" #z", pem, 0, "Demo", "cm: \"#q\"\n"};
	ins_mfiles f;
	TU_CHECK(ins_mirror_render(&f, im, 1, INS_MF_OKD, &mo, &err) == 0);
	const char *base = "reg.lab:5000/x: \"y\" #z";
	const ins_mfile *h = ins_mirror_find(&f, "imagedigestmirrorset.yaml");
	json_t *d = h ? yaml_load(h->text) : NULL;
	TU_CHECK_MSG(d != NULL, "not YAML: %s", h ? h->text : "(none)");
	json_t *m =
	    json_array_get(json_object_get(json_object_get(d, "spec"), "imageDigestMirrors"), 0);
	char want[256];
	TU_CHECK(snprintf(want, sizeof(want), "%s/%s", base, im[0].repo) < (int)sizeof(want));
	TU_CHECK_STR(json_string_value(json_array_get(json_object_get(m, "mirrors"), 0)), want);
	TU_CHECK_STR(json_string_value(json_object_get(m, "source")), im[0].repo);
	TU_CHECK_STR(json_string_value(json_object_get(d, "kind")), "ImageDigestMirrorSet");
	TU_CHECK_STR(json_string_value(json_object_get(json_object_get(d, "metadata"), "name")),
		     "ferry-demo");
	json_decref(d);
	h = ins_mirror_find(&f, "imagetagmirrorset.yaml");
	d = h ? yaml_load(h->text) : NULL;
	TU_CHECK(d && json_array_size(
			  json_object_get(json_object_get(d, "spec"), "imageTagMirrors")) == 1);
	json_decref(d);
	h = ins_mirror_find(&f, "registry-ca-configmap.yaml");
	d = h ? yaml_load(h->text) : NULL;
	TU_CHECK_MSG(d != NULL, "not YAML: %s", h ? h->text : "(none)");
	TU_CHECK_STR(json_string_value(json_object_get(json_object_get(d, "metadata"), "name")),
		     mo.ca_configmap);
	TU_CHECK_STR(json_string_value(json_object_get(json_object_get(d, "data"), f.ca_key)), pem);
	json_decref(d);
	h = ins_mirror_find(&f, "image-config-patch.yaml");
	d = h ? yaml_load(h->text) : NULL;
	TU_CHECK(h && strncmp(h->text, "# oc patch", 10) == 0);
	TU_CHECK_STR(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(d, "spec"), "additionalTrustedCA"), "name")),
	    mo.ca_configmap);
	json_decref(d);
	ins_mfiles_free(&f);
}

int main(void)
{
	TU_RUN(test_json_round_trip);
	TU_RUN(test_yaml_round_trip);
	TU_RUN(test_yaml_text);
	TU_RUN(test_okd_hostile);
	TU_EXIT();
}
