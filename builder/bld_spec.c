#include "bld_spec.h"

#include <libgen.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cm_file.h"
#include "reg_ref.h"
#include "reg_url.h"

typedef struct ctx {
	yaml_document_t *doc;
	const char *file;
	cm_error *err;
	yaml_node_t *mname; /* metadata.name's value: its errors point there */
	yaml_node_t *key;   /* the key whose value a field's get() parses */
} ctx;

static int at(ctx *c, yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int at(ctx *c, yaml_node_t *n, const char *fmt, ...)
{
	char what[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return cm_error_set(c->err, CM_EINVAL, "%s:%zu:%zu: %s", c->file,
			    n ? n->start_mark.line + 1 : 0, n ? n->start_mark.column + 1 : 0, what);
}

static int want_type(ctx *c, yaml_node_t *n, yaml_node_type_t t, const char *key)
{
	static const char *names[] = {"nothing", "a scalar", "a list", "a mapping"};
	if (n->type == t)
		return 0;
	return at(c, n, "'%s' must be %s, not %s", key, names[t],
		  names[n->type <= YAML_MAPPING_NODE ? n->type : 0]);
}

static size_t seq_len(yaml_node_t *n)
{
	return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *seq_at(ctx *c, yaml_node_t *n, size_t i)
{
	return yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
}

static int get_str(ctx *c, yaml_node_t *n, const char *key, char *out, size_t cap)
{
	int rc = want_type(c, n, YAML_SCALAR_NODE, key);
	if (rc < 0)
		return rc;
	size_t l = n->data.scalar.length;
	if (l >= cap)
		return at(c, n, "'%s' is too long", key);
	if (memchr(n->data.scalar.value, '\0', l))
		return at(c, n, "'%s' holds a NUL byte", key);
	memcpy(out, n->data.scalar.value, l);
	out[l] = '\0';
	return 0;
}

/* One key of a mapping: get() parses the value v into dst, which is the
 * parsed struct plus off; cap is dst's size for strings, want the one value
 * allowed for get_fixed. */
typedef struct field field;
struct field {
	const char *key;
	int (*get)(ctx *c, yaml_node_t *v, const field *f, void *dst);
	size_t off, cap;
	const char *want;
};
#define STR(T, key, m)                                                                             \
	{                                                                                          \
		key, get_field_str, offsetof(T, m), sizeof(((T *)0)->m), NULL                      \
	}
#define FN(T, key, fn, m)                                                                          \
	{                                                                                          \
		key, fn, offsetof(T, m), 0, NULL                                                   \
	}
#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static int get_field_str(ctx *c, yaml_node_t *v, const field *f, void *dst)
{
	return get_str(c, v, f->key, dst, f->cap);
}

/* apiVersion, kind: one value only */
static int get_fixed(ctx *c, yaml_node_t *v, const field *f, void *dst)
{
	char s[64];
	(void)dst;
	int rc = get_str(c, v, f->key, s, sizeof(s));
	if (rc == 0 && strcmp(s, f->want) != 0)
		return at(c, v, "unsupported %s '%s' (want %s)", f->key, s, f->want);
	return rc;
}

/* referrers: all | signatures | none */
static int get_referrers(ctx *c, yaml_node_t *v, const field *f, void *dst)
{
	static const char *names[] = {"all", "signatures", "none"};
	char s[16];
	int rc = get_str(c, v, f->key, s, sizeof(s));
	if (rc < 0)
		return rc;
	for (int i = 0; i < 3; i++)
		if (strcmp(s, names[i]) == 0) {
			*(int *)dst = BLD_REFERRERS_ALL + i;
			return 0;
		}
	return at(c, v, "'referrers' must be all, signatures or none, not '%s'", s);
}

static int get_bool(ctx *c, yaml_node_t *v, const field *f, void *dst)
{
	char b[16];
	if (get_str(c, v, f->key, b, sizeof(b)) < 0)
		return at(c, v, "'%s' must be true or false", f->key);
	if (!strcmp(b, "true") || !strcmp(b, "yes") || !strcmp(b, "on"))
		*(int *)dst = 1;
	else if (!strcmp(b, "false") || !strcmp(b, "no") || !strcmp(b, "off"))
		*(int *)dst = 0;
	else
		return at(c, v, "'%s' must be true or false, not '%s'", f->key, b);
	return 0;
}

static void free_list(char **v)
{
	if (!v)
		return;
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

static int get_str_list(ctx *c, yaml_node_t *n, const field *f, void *dst)
{
	int rc = want_type(c, n, YAML_SEQUENCE_NODE, f->key);
	if (rc < 0)
		return rc;
	size_t cnt = seq_len(n);
	if (cnt > 64)
		return at(c, n, "'%s' lists too many entries", f->key);
	char **v = calloc(cnt + 1, sizeof(char *));
	if (!v)
		return cm_error_set(c->err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < cnt; i++) {
		char buf[128];
		if ((rc = get_str(c, seq_at(c, n, i), f->key, buf, sizeof(buf))) < 0 ||
		    !(v[i] = strdup(buf))) {
			free_list(v);
			return rc < 0 ? rc : cm_error_set(c->err, CM_ENOMEM, "out of memory");
		}
	}
	*(char ***)dst = v;
	return 0;
}

/* realm-credentials: token realms on another host that may receive the
 * credentials */
static int get_realm_creds(ctx *c, yaml_node_t *n, const field *f, void *dst)
{
	bld_registry_spec *r = dst;
	int rc = want_type(c, n, YAML_SEQUENCE_NODE, f->key);
	if (rc < 0)
		return rc;
	size_t cnt = seq_len(n);
	if (cnt > sizeof(r->realm_creds) / sizeof(r->realm_creds[0]))
		return at(c, n, "'%s' lists more than 8 hosts", f->key);
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *it = seq_at(c, n, i);
		char *h = r->realm_creds[r->n_realm_creds];
		if ((rc = get_str(c, it, f->key, h, sizeof(r->realm_creds[0]))) < 0)
			return rc;
		if (!h[0] || h[strcspn(h, "/ @?#\t")] != '\0' || strstr(h, "://"))
			return at(c, it, "'%s': '%s' is not a host or host:port", f->key, h);
		r->n_realm_creds++;
	}
	return 0;
}

/* Iterate a mapping's pairs; it names the iterator so loops can nest. */
#define FOREACH_PAIR(c, map, it, K, V, KEY)                                                        \
	for (yaml_node_pair_t *it = (map)->data.mapping.pairs.start;                               \
	     it < (map)->data.mapping.pairs.top &&                                                 \
	     ((K) = yaml_document_get_node((c)->doc, it->key),                                     \
	     (V) = yaml_document_get_node((c)->doc, it->value),                                    \
	     (KEY) = (K)->type == YAML_SCALAR_NODE ? (const char *)(K)->data.scalar.value : "",    \
	     1);                                                                                   \
	     it++)

/* A key given twice in one mapping: libyaml accepts it and one of the two
 * would silently win; refuse it, naming the repeat. */
static int dup_key(ctx *c, yaml_node_t *map, yaml_node_pair_t *it, yaml_node_t *k, const char *key)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < it; p++) {
		yaml_node_t *pk = yaml_document_get_node(c->doc, p->key);
		if (pk && pk->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)pk->data.scalar.value, key) == 0)
			return cm_error_set(
			    c->err, CM_EINVAL,
			    "%s:%zu:%zu: key '%.200s' is given twice (first on line %zu)", c->file,
			    k->start_mark.line + 1, k->start_mark.column + 1, key,
			    pk->start_mark.line + 1);
	}
	return 0;
}

/* Parse the mapping map (refused when not one, named key in the message;
 * NULL: the caller checked) into base by the table f (nf keys): a key not
 * in it, or given twice, is refused ("in" names the mapping in the
 * message). got (nf entries, or NULL) receives the key node of each key
 * given. */
static int parse_map(ctx *c, yaml_node_t *map, const char *what, const char *in, const field *f,
		     size_t nf, void *base, yaml_node_t **got)
{
	yaml_node_t *k, *v;
	const char *key;
	int rc = what ? want_type(c, map, YAML_MAPPING_NODE, what) : 0;
	if (rc < 0)
		return rc;
	FOREACH_PAIR(c, map, it, k, v, key)
	{
		if ((rc = dup_key(c, map, it, k, key)) < 0)
			return rc;
		size_t i = 0;
		while (i < nf && strcmp(f[i].key, key) != 0)
			i++;
		if (i == nf) {
			char known[256]; /* the tables' keys are short */
			size_t l = 0;
			for (size_t j = 0; j < nf && l < sizeof(known); j++)
				l += (size_t)snprintf(known + l, sizeof(known) - l, "%s%s",
						      j ? ", " : "", f[j].key);
			return at(c, k, "unknown key '%s'%s%s (known: %s)", key,
				  in[0] ? " in " : "", in, known);
		}
		if (got)
			got[i] = k;
		c->key = k;
		if ((rc = f[i].get(c, v, &f[i], (char *)base + f[i].off)) < 0)
			return rc;
	}
	return 0;
}

/* A list of up to max entries of size bytes each: *out (at least one
 * entry, zeroed) and its length. */
static int alloc_list(ctx *c, yaml_node_t *n, const char *key, size_t max, size_t size, void *out,
		      size_t *cnt)
{
	int rc = want_type(c, n, YAML_SEQUENCE_NODE, key);
	if (rc < 0)
		return rc;
	if ((*cnt = seq_len(n)) > max)
		return at(c, n, "too many %s", key);
	if (!(*(void **)out = calloc(*cnt ? *cnt : 1, size)))
		return cm_error_set(c->err, CM_ENOMEM, "out of memory");
	return 0;
}

/* verify:
 *   sigstore:
 *     key: keys/vendor-cosign.pub   # required: keyless is out of scope
 *     identity: "docker.io/kserve/<glob>" */
static const field sigstore_fields[] = {
    STR(bld_verify_spec, "key", key),
    STR(bld_verify_spec, "identity", identity),
};

static int get_sigstore(ctx *c, yaml_node_t *v, const field *f, void *dst)
{
	static const char *const keyless[] = {"keyless",
					      "fulcio",
					      "rekor",
					      "issuer",
					      "subject",
					      "certificate-identity",
					      "certificate-oidc-issuer",
					      "ctlog",
					      "tlog",
					      NULL};
	bld_verify_spec *out = dst;
	int rc = want_type(c, v, YAML_MAPPING_NODE, f->key);
	if (rc < 0)
		return rc;
	yaml_node_t *k, *val;
	const char *key;
	FOREACH_PAIR(c, v, it, k, val, key)
	{
		(void)val;
		for (size_t i = 0; keyless[i]; i++)
			if (strcmp(key, keyless[i]) == 0)
				return at(
				    c, k,
				    "'%s': keyless verification (Fulcio certificates, Rekor) "
				    "needs the internet and is not supported; give the signer's "
				    "public key as 'key' (docs/supply-chain.md)",
				    key);
	}
	rc = parse_map(c, v, NULL, "verify.sigstore", sigstore_fields, NFIELDS(sigstore_fields),
		       out, NULL);
	if (rc == 0 && !out->key[0])
		rc = at(c, v,
			"verify.sigstore needs 'key' (a cosign public key file; keyless "
			"verification is not supported)");
	return rc;
}

static const field verify_fields[] = {
    {"sigstore", get_sigstore, 0, 0, NULL},
};

static int get_verify(ctx *c, yaml_node_t *v, const field *f, void *dst)
{
	bld_verify_spec *out = dst;
	out->line = (int)c->key->start_mark.line + 1;
	yaml_node_t *got[NFIELDS(verify_fields)] = {0};
	int rc = parse_map(c, v, f->key, "verify", verify_fields, NFIELDS(verify_fields), out, got);
	if (rc == 0 && !got[0])
		rc = at(c, v, "'verify' needs 'sigstore'");
	return rc;
}

static const field image_fields[] = {
    STR(bld_image_spec, "ref", ref),
    STR(bld_image_spec, "from", from),
    FN(bld_image_spec, "platforms", get_str_list, platforms),
    FN(bld_image_spec, "referrers", get_referrers, referrers),
    FN(bld_image_spec, "verify", get_verify, verify),
};

static int parse_images(ctx *c, yaml_node_t *n, const field *f, void *dst)
{
	bld_spec *s = dst;
	size_t cnt;
	if (n->type == YAML_SCALAR_NODE &&
	    strcmp((const char *)n->data.scalar.value, "auto") == 0) {
		s->images_auto = 1; /* the images the manifests use */
		return 0;
	}
	int rc = alloc_list(c, n, f->key, 100000, sizeof(*s->images), &s->images, &cnt);
	for (size_t i = 0; rc == 0 && i < cnt; i++) {
		yaml_node_t *it = seq_at(c, n, i);
		bld_image_spec *im = &s->images[s->n_images++];
		im->line = (int)it->start_mark.line + 1;
		if (it->type == YAML_SCALAR_NODE) {
			if ((rc = get_str(c, it, "images[]", im->ref, sizeof(im->ref))) < 0)
				return rc;
			if (!im->ref[0]) /* "- " or "- ''": no reference at all */
				return at(c, it, "an image reference is empty");
			if (strcmp(im->ref, "auto") == 0) { /* plus the images the manifests use */
				s->images_auto = 1;
				memset(im, 0, sizeof(*im));
				s->n_images--;
			}
			continue;
		}
		if (it->type != YAML_MAPPING_NODE)
			return at(c, it, "an image must be a reference or a mapping");
		if ((rc = parse_map(c, it, NULL, "an image", image_fields, NFIELDS(image_fields),
				    im, NULL)) < 0)
			return rc;
		if (!im->ref[0])
			return at(c, it, "image is missing required field 'ref'");
	}
	return rc;
}

static const field manifest_fields[] = {
    STR(bld_manifest_spec, "path", path),
    STR(bld_manifest_spec, "kustomize", kustomize),
};

static int parse_manifests(ctx *c, yaml_node_t *n, const field *f, void *dst)
{
	bld_spec *s = dst;
	size_t cnt;
	int rc = alloc_list(c, n, f->key, 100000, sizeof(*s->manifests), &s->manifests, &cnt);
	for (size_t i = 0; rc == 0 && i < cnt; i++) {
		yaml_node_t *it = seq_at(c, n, i);
		bld_manifest_spec *m = &s->manifests[s->n_manifests++];
		m->line = (int)it->start_mark.line + 1;
		if ((rc = parse_map(c, it, "manifests[]", "a manifests entry", manifest_fields,
				    NFIELDS(manifest_fields), m, NULL)) < 0)
			return rc;
		if (!m->path[0] == !m->kustomize[0])
			return at(c, it,
				  "a manifests entry needs exactly one of 'path' or 'kustomize'");
	}
	return rc;
}

static int safe_component(const char *s)
{
	if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._-", *s)))
			return 0;
	return 1;
}

/* The modelcar's repository and tag: models[].image (a tag, never a
 * digest: ferry builds this image), else BLD_MODEL_HOST/<name>-modelcar
 * with the version as the tag. */
static int model_image(ctx *c, yaml_node_t *it, bld_model_spec *m)
{
	if (!m->image[0]) {
		int l = snprintf(m->image_repo, sizeof(m->image_repo), "%s/%s-modelcar",
				 BLD_MODEL_HOST, m->name);
		if (l < 0 || (size_t)l >= sizeof(m->image_repo))
			return at(c, it, "model name '%s' is too long for an image name", m->name);
		snprintf(m->image_tag, sizeof(m->image_tag), "%s", m->version);
		return 0;
	}
	reg_ref r;
	cm_error e = {0};
	if (reg_ref_parse(&r, m->image, &e) < 0)
		return at(c, it, "'image' is not an image reference: %.590s", e.msg);
	if (r.digest[0])
		return at(c, it,
			  "'image' %s names a digest: give a repository and tag (ferry builds "
			  "this image, so its digest is not known yet)",
			  m->image);
	if (reg_ref_repo(m->image_repo, sizeof(m->image_repo), &r) < 0)
		return at(c, it, "'image' %s is too long", m->image);
	const char *slash = strrchr(m->image, '/');
	int tagged = strchr(slash ? slash : m->image, ':') != NULL;
	snprintf(m->image_tag, sizeof(m->image_tag), "%s", tagged ? r.tag : m->version);
	return 0;
}

int bld_model_image_ref(char *out, size_t n, const bld_model_spec *m, cm_error *err)
{
	int l = snprintf(out, n, "%s:%s", m->image_repo, m->image_tag);
	if (l < 0 || (size_t)l >= n)
		return cm_error_set(err, CM_EINVAL, "model %s: image reference too long", m->name);
	return 0;
}

static const field model_fields[] = {
    STR(bld_model_spec, "name", name),	   STR(bld_model_spec, "version", version),
    STR(bld_model_spec, "path", path),	   STR(bld_model_spec, "url", url),
    STR(bld_model_spec, "sha256", sha256), STR(bld_model_spec, "image", image),
};

static int parse_models(ctx *c, yaml_node_t *n, const field *f, void *dst)
{
	bld_spec *s = dst;
	size_t cnt;
	int rc = alloc_list(c, n, f->key, 100000, sizeof(*s->models), &s->models, &cnt);
	for (size_t i = 0; rc == 0 && i < cnt; i++) {
		yaml_node_t *it = seq_at(c, n, i);
		bld_model_spec *m = &s->models[s->n_models++];
		m->line = (int)it->start_mark.line + 1;
		if ((rc = parse_map(c, it, "models[]", "a model", model_fields,
				    NFIELDS(model_fields), m, NULL)) < 0)
			return rc;
		if (!m->name[0] || !m->version[0])
			return at(c, it, "a model needs 'name' and 'version'");
		if (!safe_component(m->name) || !safe_component(m->version))
			return at(c, it,
				  "model name and version may hold only letters, digits, '.', '_' "
				  "and '-'");
		if (!m->path[0] == !m->url[0])
			return at(c, it, "a model needs exactly one of 'path' or 'url'");
		reg_url mu;
		/* the spec is kept in bundle.json: a password in it would cross the gap */
		if (m->url[0] && reg_url_parse(&mu, m->url, 0, NULL) == 0 && mu.has_user)
			return at(
			    c, it,
			    "model %s: the url holds a user:password, which would be copied "
			    "into the bundle (bundle.json keeps the spec); put it in ~/.netrc "
			    "or $NETRC for the host instead",
			    m->name);
		if ((rc = model_image(c, it, m)) < 0)
			return rc;
		for (size_t j = 0; j + 1 < s->n_models; j++)
			if ((m->image[0] || s->models[j].image[0]) &&
			    strcmp(s->models[j].image_repo, m->image_repo) == 0 &&
			    strcmp(s->models[j].image_tag, m->image_tag) == 0)
				return at(c, it,
					  "this model's image is the same as the one of the model "
					  "at line %d (%s): give each model its own 'image'",
					  s->models[j].line,
					  m->image[0] ? m->image : s->models[j].image);
	}
	return rc;
}

/* registries:
 *   docker.io:              # upstream prefix
 *     endpoint: 127.0.0.1:5000
 *     insecure: true        # plain HTTP
 *     ca: certs/ca.pem      # or cert:/key: for a client certificate
 *     realm-credentials: [auth.example.com]   # token realms on another host
 *                           # that may receive the credentials */
static const field registry_fields[] = {
    STR(bld_registry_spec, "endpoint", endpoint),
    FN(bld_registry_spec, "insecure", get_bool, insecure),
    STR(bld_registry_spec, "ca", ca),
    STR(bld_registry_spec, "cert", cert),
    STR(bld_registry_spec, "key", key),
    {"realm-credentials", get_realm_creds, 0, 0, NULL},
};

static int parse_registries(ctx *c, yaml_node_t *n, const field *f, void *dst)
{
	bld_spec *s = dst;
	int rc = want_type(c, n, YAML_MAPPING_NODE, f->key);
	if (rc < 0)
		return rc;
	size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	if (cnt > 1000)
		return at(c, n, "too many registries");
	s->registries = calloc(cnt ? cnt : 1, sizeof(*s->registries));
	if (!s->registries)
		return cm_error_set(c->err, CM_ENOMEM, "out of memory");
	yaml_node_t *k, *v;
	const char *key;
	FOREACH_PAIR(c, n, it, k, v, key)
	{
		bld_registry_spec *r = &s->registries[s->n_registries++];
		(void)key;
		r->line = (int)k->start_mark.line + 1;
		if ((rc = get_str(c, k, "registries key", r->prefix, sizeof(r->prefix))) < 0)
			return rc;
		if (!r->prefix[0] || strchr(r->prefix, ' ') || strchr(r->prefix, ':') == r->prefix)
			return at(c, k, "registry prefix '%s' is not a host[/path]", r->prefix);
		for (size_t j = 0; j + 1 < s->n_registries; j++)
			if (strcmp(s->registries[j].prefix, r->prefix) == 0)
				return at(c, k, "registry prefix '%s' is given twice", r->prefix);
		if ((rc = parse_map(c, v, r->prefix, "a registry", registry_fields,
				    NFIELDS(registry_fields), r, NULL)) < 0)
			return rc;
		if (!r->endpoint[0]) /* the registry itself: ca, realm-credentials... */
			snprintf(r->endpoint, sizeof(r->endpoint), "%s", r->prefix);
		if (!r->cert[0] != !r->key[0])
			return at(c, v, "registry '%s': 'cert' and 'key' go together", r->prefix);
	}
	return 0;
}

/* metadata.name: its errors point at the value */
static int get_name(ctx *c, yaml_node_t *v, const field *f, void *dst)
{
	c->mname = v;
	return get_field_str(c, v, f, dst);
}

static const field meta_fields[] = {
    {"name", get_name, offsetof(bld_spec, name), sizeof(((bld_spec *)0)->name), NULL},
    STR(bld_spec, "version", version),
};

static int parse_metadata(ctx *c, yaml_node_t *v, const field *f, void *dst)
{
	return parse_map(c, v, f->key, "metadata", meta_fields, NFIELDS(meta_fields), dst, NULL);
}

static const field root_fields[] = {
    {"apiVersion", get_fixed, 0, 0, "ferry/v1"},
    {"kind", get_fixed, 0, 0, "Bundle"},
    {"metadata", parse_metadata, 0, 0, NULL},
    FN(bld_spec, "platforms", get_str_list, platforms),
    FN(bld_spec, "referrers", get_referrers, referrers),
    FN(bld_spec, "verify", get_verify, verify),
    {"images", parse_images, 0, 0, NULL},
    {"manifests", parse_manifests, 0, 0, NULL},
    {"models", parse_models, 0, 0, NULL},
    {"registries", parse_registries, 0, 0, NULL},
};

static int parse_root(ctx *c, yaml_node_t *root, bld_spec *s)
{
	yaml_node_t *got[NFIELDS(root_fields)] = {0}; /* apiVersion, kind, metadata */
	int rc;
	if (!root)
		return cm_error_set(c->err, CM_EINVAL, "%s: the spec is empty", c->file);
	if ((rc = parse_map(c, root, "the spec", "", root_fields, NFIELDS(root_fields), s, got)) <
	    0)
		return rc;
	if (!got[0])
		return at(c, root, "missing required field 'apiVersion' (ferry/v1)");
	if (!got[1])
		return at(c, root, "missing required field 'kind' (Bundle)");
	if (!s->name[0])
		return at(c, got[2] ? got[2] : root, "missing required field 'metadata.name'");
	if (!safe_component(s->name))
		return at(c, c->mname,
			  "metadata.name '%s' may hold only letters, digits, '.', '_', '-'",
			  s->name);
	if (!s->referrers)
		s->referrers = BLD_REFERRERS_ALL;
	if (!s->platforms) {
		s->platforms = calloc(2, sizeof(char *));
		if (!s->platforms || !(s->platforms[0] = strdup("linux/amd64")))
			return cm_error_set(c->err, CM_ENOMEM, "out of memory");
	}
	return 0;
}

int bld_yaml_load(yaml_document_t *out, const char *name, const cm_buf *text, cm_error *err)
{
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)text->data, text->len);
	int rc = 0;
	if (!yaml_parser_load(&p, out))
		rc = cm_error_set(err, CM_EINVAL, "%s:%zu:%zu: YAML error: %s%s%s", name,
				  p.problem_mark.line + 1, p.problem_mark.column + 1,
				  p.problem ? p.problem : "syntax error", p.context ? " " : "",
				  p.context ? p.context : "");
	yaml_parser_delete(&p);
	return rc;
}

yaml_node_t *bld_yaml_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	for (yaml_node_pair_t *p =
		 map && map->type == YAML_MAPPING_NODE ? map->data.mapping.pairs.start : NULL;
	     p && p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);
		if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(key) &&
		    memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0)
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

int bld_spec_load(bld_spec *out, const char *path, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->file, sizeof(out->file), "%s", path);
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s", path);
	snprintf(out->dir, sizeof(out->dir), "%s", dirname(tmp));
	yaml_document_t doc;
	int rc = cm_file_read(&out->text, path, BLD_SPEC_MAX, err);
	if (rc == 0 && (rc = bld_yaml_load(&doc, path, &out->text, err)) == 0) {
		ctx c = {&doc, path, err, NULL, NULL};
		rc = parse_root(&c, yaml_document_get_root_node(&doc), out);
		yaml_document_delete(&doc);
	}
	if (rc < 0)
		bld_spec_free(out);
	return rc;
}

const bld_verify_spec *bld_spec_verify(const bld_spec *s, size_t i)
{
	if (i < s->n_images && s->images[i].verify.key[0])
		return &s->images[i].verify;
	return s->verify.key[0] ? &s->verify : NULL;
}

int bld_spec_path(char *out, size_t n, const bld_spec *s, const char *p)
{
	int len =
	    !p[0] || p[0] == '/' ? snprintf(out, n, "%s", p) : snprintf(out, n, "%s/%s", s->dir, p);
	return len < 0 || (size_t)len >= n ? CM_EINVAL : 0;
}

void bld_spec_free(bld_spec *s)
{
	if (!s)
		return;
	free_list(s->platforms);
	for (size_t i = 0; i < s->n_images; i++)
		free_list(s->images[i].platforms);
	free(s->images);
	free(s->manifests);
	free(s->models);
	free(s->registries);
	cm_buf_free(&s->text);
	memset(s, 0, sizeof(*s));
}
