/* ferry-build images PATH|SPEC...: list the images manifests reference. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bld_discover.h"
#include "bld_manifests.h"
#include "bld_spec.h"
#include "cmd.h"

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: ferry-build images [--json] [--certain] [--explain REF] PATH|SPEC...\n"
	       "  PATH is a YAML file, a folder of them, or a kustomization folder (rendered with\n"
	       "  kustomize or kubectl); SPEC is a ferry spec, whose manifests: entries are read.\n"
	       "  Prints each image reference once, sorted. References found only inside strings\n"
	       "  (args, command, env values, ConfigMap data) end in '  # suggested'.\n"
	       "  --certain  print only references from image fields\n"
	       "  --json     print where each reference was found, and by which rule\n"
	       "  --explain REF  say where REF was found and by which rule, or why a value\n"
	       "             equal to it was ignored; exit 1 when nothing matches it\n");
}

static int add_arg(bld_manifests *m, const char *arg, cm_error *err)
{
	struct stat st;
	if (stat(arg, &st) == 0 && S_ISREG(st.st_mode) && bld_yaml_is_spec(arg)) {
		bld_spec s;
		int rc = bld_spec_load(&s, arg, err);
		if (rc == 0)
			rc = bld_manifests_from_spec(m, &s, err);
		bld_spec_free(&s);
		return rc;
	}
	return bld_manifests_add_path(m, arg, 1, err);
}

static json_t *occ_json(const bld_manifests *m, const bld_occ *o)
{
	json_t *j =
	    json_pack("{s:s,s:I,s:s,s:s,s:s,s:I,s:I,s:s,s:b,s:s}", "file", m->set.src[o->src].name,
		      "document", (json_int_t)o->doc, "kind", o->kind, "name", o->name, "path",
		      o->path, "line", (json_int_t)o->line, "column", (json_int_t)o->col, "value",
		      o->value, "suggested", o->suggested, "rule", o->rule);
	if (j && o->problem[0])
		json_object_set_new(j, "problem", json_string(o->problem));
	return j;
}

/* s (at most len bytes) for a terminal: control characters become '?'. */
static const char *clean(char *out, size_t n, const char *s, size_t len)
{
	size_t j = 0;
	for (size_t i = 0; i < len && s[i] && j + 1 < n; i++)
		out[j++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	out[j] = '\0';
	return out;
}

/* One line about an occurrence: where, and by which rule. */
static void say_occ(const bld_manifests *m, const bld_occ *o)
{
	char k[64], nm[256], p[512], v[REG_REF_MAX + 8], why[256];
	printf("  %s, document %zu, %s %s, %s (line %zu, column %zu)\n", m->set.src[o->src].name,
	       o->doc, o->kind[0] ? clean(k, sizeof(k), o->kind, sizeof(o->kind)) : "?",
	       o->name[0] ? clean(nm, sizeof(nm), o->name, sizeof(o->name)) : "(no name)",
	       clean(p, sizeof(p), o->path, sizeof(o->path)), o->line, o->col);
	clean(v, sizeof(v), o->value, sizeof(o->value));
	clean(why, sizeof(why), o->problem, sizeof(o->problem));
	if (o->ref[0])
		printf("    rule: %s; value \"%s%s\"\n", o->rule, o->prefix, v);
	else if (o->ignored)
		printf("    ignored by rule %s: value \"%s%s\": %s\n", o->rule, o->prefix, v, why);
	else
		printf("    rule: %s; value \"%s%s\" is left out (a warning): %s\n", o->rule,
		       o->prefix, v, why);
}

/* Where ref's text appears in the sources, when no rule took it. */
static size_t say_text(const bld_manifests *m, const char *ref)
{
	size_t hits = 0, rl = strlen(ref);
	for (size_t i = 0; i < m->set.n_src && rl; i++) {
		const cm_buf *t = &m->set.src[i].text;
		size_t line = 1, col = 1;
		for (size_t k = 0; k < t->len && hits < 20; k++) {
			if (t->len - k >= rl && memcmp(t->data + k, ref, rl) == 0) {
				if (hits++ == 0)
					printf(
					    "its text appears where no discovery rule looks (only "
					    "fully qualified references are taken from strings, "
					    "and only image, *Image, storageUri and container "
					    "fields are image fields):\n");
				size_t ls = k - (col - 1), le = k;
				while (le < t->len && t->data[le] != '\n' && le - ls < 160)
					le++;
				while (ls < k && (t->data[ls] == ' ' || t->data[ls] == '\t'))
					ls++;
				char text[200];
				printf("  %s:%zu:%zu: %s\n", m->set.src[i].name, line, col,
				       clean(text, sizeof(text), t->data + ls, le - ls));
			}
			if (t->data[k] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
	}
	return hits;
}

static int same_scalar(const bld_occ *a, const bld_occ *b)
{
	return a->src == b->src && a->start == b->start;
}

/* --explain REF: 0 when some occurrence matches it (found or ignored),
 * 1 when none does. */
static int explain(const bld_manifests *m, const char *ref)
{
	char norm[REG_REF_MAX + 88] = "";
	reg_ref r;
	cm_error e = {0};
	if (reg_ref_parse(&r, ref, &e) == 0)
		reg_ref_string(norm, sizeof(norm), &r);
	const char *heads[] = {"found (certain)", "found (suggested: inside a string)",
			       "ignored (not taken as an image)",
			       "invalid (an image field that holds no reference)"};
	size_t total = 0;
	printf("%s%s%s%s\n", ref, norm[0] && strcmp(norm, ref) ? " (" : "",
	       norm[0] && strcmp(norm, ref) ? norm : "", norm[0] && strcmp(norm, ref) ? ")" : "");
	for (int h = 0; h < 4; h++) {
		size_t n = 0;
		for (size_t i = 0; i < m->set.n_occ; i++) {
			const bld_occ *o = &m->set.occ[i];
			int match = (norm[0] && o->ref[0] && strcmp(o->ref, norm) == 0) ||
				    strcmp(o->value, ref) == 0;
			int group = o->ref[0] ? (o->suggested ? 1 : 0) : (o->ignored ? 2 : 3);
			if (!match || group != h)
				continue;
			/* a string naming it again: counted, not repeated (the
			 * occurrences of one scalar are added one after another) */
			size_t again = 0, seen = 0;
			for (size_t j = i; j-- > 0 && same_scalar(&m->set.occ[j], o);)
				seen += strcmp(m->set.occ[j].value, o->value) == 0;
			if (seen)
				continue;
			for (size_t j = i + 1; j < m->set.n_occ && same_scalar(&m->set.occ[j], o);
			     j++)
				again += strcmp(m->set.occ[j].value, o->value) == 0;
			if (n++ == 0)
				printf("%s:\n", heads[h]);
			say_occ(m, o);
			if (again)
				printf("    (%zu times in this value)\n", again + 1);
		}
		total += n;
	}
	if (total)
		return 0;
	printf("not seen: no discovery rule found it in %zu file%s\n", m->set.n_src,
	       m->set.n_src == 1 ? "" : "s");
	if (!norm[0])
		printf("it is not an image reference: %s\n", e.msg);
	say_text(m, ref);
	return 1;
}

int cmd_images(int argc, char **argv)
{
	int as_json = 0, certain = 0;
	const char *explain_ref = NULL;
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"certain", no_argument, NULL, 'c'},
					     {"explain", required_argument, NULL, 'e'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "jce:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			as_json = 1;
			break;
		case 'c':
			certain = 1;
			break;
		case 'e':
			explain_ref = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 64;
	}
	bld_manifests m = {0};
	cm_error err = {0};
	int rc = 0;
	for (int i = optind; rc == 0 && i < argc; i++)
		rc = add_arg(&m, argv[i], &err);
	bld_found_list fl = {NULL, 0, NULL};
	if (rc == 0)
		rc = bld_yset_found(&fl, &m.set, &err);
	if (rc < 0) {
		fprintf(stderr, "ferry-build images: %s\n", err.msg);
		bld_manifests_free(&m);
		return cm_exit_code(rc);
	}
	if (explain_ref) {
		rc = explain(&m, explain_ref);
		bld_found_list_free(&fl);
		bld_manifests_free(&m);
		return rc;
	}
	size_t n_invalid = 0;
	for (size_t i = 0; i < m.set.n_occ; i++) {
		const bld_occ *o = &m.set.occ[i];
		if (o->ref[0] || o->ignored)
			continue;
		n_invalid++;
		if (!as_json)
			fprintf(stderr,
				"warning: %s:%zu:%zu: document %zu (%s %s) %s: '%s' is not an "
				"image reference: %s\n",
				m.set.src[o->src].name, o->line, o->col, o->doc, o->kind, o->name,
				o->path, o->value, o->problem);
	}
	if (as_json) {
		json_t *imgs = json_array(), *inv = json_array(), *ign = json_array(),
		       *srcs = json_array();
		for (size_t i = 0; i < fl.n; i++) {
			const bld_found *f = &fl.v[i];
			if (certain && f->suggested)
				continue;
			json_t *found = json_array();
			for (size_t k = 0; k < f->n; k++)
				json_array_append_new(
				    found, occ_json(&m, &m.set.occ[fl.order[f->first + k]]));
			json_array_append_new(imgs,
					      json_pack("{s:s,s:b,s:o}", "ref", f->ref, "suggested",
							f->suggested, "found", found));
		}
		for (size_t i = 0; i < m.set.n_occ; i++)
			if (!m.set.occ[i].ref[0])
				json_array_append_new(m.set.occ[i].ignored ? ign : inv,
						      occ_json(&m, &m.set.occ[i]));
		for (size_t i = 0; i < m.set.n_src; i++)
			json_array_append_new(
			    srcs, json_pack("{s:s,s:I,s:o}", "file", m.set.src[i].name, "documents",
					    (json_int_t)m.set.src[i].n_docs, "kinds",
					    bld_ysrc_kinds_json(&m.set.src[i])));
		json_t *root = json_pack("{s:o,s:o,s:o,s:o}", "images", imgs, "invalid", inv,
					 "ignored", ign, "sources", srcs);
		json_dumpf(root, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(root);
	} else {
		for (size_t i = 0; i < fl.n; i++) {
			if (fl.v[i].suggested && certain)
				continue;
			printf("%s%s\n", fl.v[i].ref, fl.v[i].suggested ? "  # suggested" : "");
		}
	}
	bld_found_list_free(&fl);
	bld_manifests_free(&m);
	return 0;
}
