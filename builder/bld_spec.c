#include "bld_spec.h"

#include <libgen.h>
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
} ctx;

static int at(ctx *c, yaml_node_t *n, const char *fmt, const char *a, const char *b)
{
	char what[1024];
	snprintf(what, sizeof(what), fmt, a ? a : "", b ? b : "");
	return cm_error_set(c->err, CM_EINVAL, "%s:%zu:%zu: %s", c->file,
			    n ? n->start_mark.line + 1 : 0, n ? n->start_mark.column + 1 : 0, what);
}

static const char *node_kind(yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

static int want_type(ctx *c, yaml_node_t *n, yaml_node_type_t t, const char *key)
{
	static const char *names[] = {"", "a scalar", "a list", "a mapping"};
	if (n->type == t)
		return 0;
	char msg[256];
	snprintf(msg, sizeof(msg), "'%%s' must be %s, not %s", names[t], node_kind(n));
	return at(c, n, msg, key, NULL);
}

static int get_str(ctx *c, yaml_node_t *n, const char *key, char *out, size_t cap)
{
	int rc = want_type(c, n, YAML_SCALAR_NODE, key);
	if (rc < 0)
		return rc;
	size_t l = n->data.scalar.length;
	if (l >= cap)
		return at(c, n, "'%s' is too long", key, NULL);
	if (memchr(n->data.scalar.value, '\0', l))
		return at(c, n, "'%s' holds a NUL byte", key, NULL);
	memcpy(out, n->data.scalar.value, l);
	out[l] = '\0';
	return 0;
}

/* referrers: all | signatures | none */
static int get_referrers(ctx *c, yaml_node_t *n, int *out)
{
	char v[16];
	int rc = get_str(c, n, "referrers", v, sizeof(v));
	if (rc < 0)
		return rc;
	if (strcmp(v, "all") == 0)
		*out = BLD_REFERRERS_ALL;
	else if (strcmp(v, "signatures") == 0)
		*out = BLD_REFERRERS_SIGNATURES;
	else if (strcmp(v, "none") == 0)
		*out = BLD_REFERRERS_NONE;
	else
		return at(c, n, "'referrers' must be all, signatures or none, not '%s'", v, NULL);
	return 0;
}

static int get_str_list(ctx *c, yaml_node_t *n, const char *key, char ***out)
{
	int rc = want_type(c, n, YAML_SEQUENCE_NODE, key);
	if (rc < 0)
		return rc;
	size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt > 64)
		return at(c, n, "'%s' lists too many entries", key, NULL);
	char **v = calloc(cnt + 1, sizeof(char *));
	if (!v)
		return cm_error_set(c->err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *it = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
		char buf[128];
		if ((rc = get_str(c, it, key, buf, sizeof(buf))) < 0 || !(v[i] = strdup(buf))) {
			for (size_t j = 0; j < i; j++)
				free(v[j]);
			free(v);
			return rc < 0 ? rc : cm_error_set(c->err, CM_ENOMEM, "out of memory");
		}
	}
	*out = v;
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

/* verify:
 *   sigstore:
 *     key: keys/vendor-cosign.pub   # required: keyless is out of scope
 *     identity: "docker.io/kserve/<glob>" */
static int parse_verify(ctx *c, yaml_node_t *k0, yaml_node_t *n, bld_verify_spec *out)
{
	int rc = want_type(c, n, YAML_MAPPING_NODE, "verify");
	if (rc < 0)
		return rc;
	out->line = (int)k0->start_mark.line + 1;
	yaml_node_t *k, *v, *sig = NULL;
	const char *key;
	FOREACH_PAIR(c, n, it, k, v, key)
	{
		if ((rc = dup_key(c, n, it, k, key)) < 0)
			return rc;
		if (strcmp(key, "sigstore") != 0)
			return at(c, k, "unknown key '%s' in verify (known: sigstore)", key, NULL);
		sig = v;
	}
	if (!sig)
		return at(c, n, "'verify' needs 'sigstore'", NULL, NULL);
	if ((rc = want_type(c, sig, YAML_MAPPING_NODE, "sigstore")) < 0)
		return rc;
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
	FOREACH_PAIR(c, sig, it2, k, v, key)
	{
		if ((rc = dup_key(c, sig, it2, k, key)) < 0)
			return rc;
		int kl = 0;
		for (size_t i = 0; keyless[i]; i++)
			kl |= strcmp(key, keyless[i]) == 0;
		if (strcmp(key, "key") == 0)
			rc = get_str(c, v, "verify.sigstore.key", out->key, sizeof(out->key));
		else if (strcmp(key, "identity") == 0)
			rc = get_str(c, v, "verify.sigstore.identity", out->identity,
				     sizeof(out->identity));
		else if (kl)
			rc = at(c, k,
				"'%s': keyless verification (Fulcio certificates, Rekor) needs the "
				"internet and is not supported; give the signer's public key as "
				"'key' (docs/supply-chain.md)",
				key, NULL);
		else
			rc = at(c, k, "unknown key '%s' in verify.sigstore (known: key, identity)",
				key, NULL);
		if (rc < 0)
			return rc;
	}
	if (!out->key[0])
		return at(c, sig,
			  "verify.sigstore needs 'key' (a cosign public key file; keyless "
			  "verification is not supported)",
			  NULL, NULL);
	return 0;
}

static size_t seq_len(yaml_node_t *n)
{
	return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *seq_at(ctx *c, yaml_node_t *n, size_t i)
{
	return yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
}

static int parse_images(ctx *c, yaml_node_t *n, bld_spec *s)
{
	int rc = want_type(c, n, YAML_SEQUENCE_NODE, "images");
	if (rc < 0)
		return rc;
	size_t cnt = seq_len(n);
	if (cnt > 100000)
		return at(c, n, "too many images", NULL, NULL);
	s->images = calloc(cnt ? cnt : 1, sizeof(*s->images));
	if (!s->images)
		return cm_error_set(c->err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *it = seq_at(c, n, i);
		bld_image_spec *im = &s->images[s->n_images++];
		im->line = (int)it->start_mark.line + 1;
		if (it->type == YAML_SCALAR_NODE) {
			if ((rc = get_str(c, it, "images[]", im->ref, sizeof(im->ref))) < 0)
				return rc;
			if (!im->ref[0]) /* "- " or "- ''": no reference at all */
				return at(c, it, "an image reference is empty", NULL, NULL);
			if (strcmp(im->ref, "auto") == 0) { /* plus the images the manifests use */
				s->images_auto = 1;
				memset(im, 0, sizeof(*im));
				s->n_images--;
			}
			continue;
		}
		if (it->type != YAML_MAPPING_NODE)
			return at(c, it, "an image must be a reference or a mapping", NULL, NULL);
		yaml_node_t *k, *v;
		const char *key;
		FOREACH_PAIR(c, it, pit, k, v, key)
		{
			if ((rc = dup_key(c, it, pit, k, key)) < 0)
				return rc;
			if (strcmp(key, "ref") == 0)
				rc = get_str(c, v, key, im->ref, sizeof(im->ref));
			else if (strcmp(key, "from") == 0)
				rc = get_str(c, v, key, im->from, sizeof(im->from));
			else if (strcmp(key, "platforms") == 0)
				rc = get_str_list(c, v, key, &im->platforms);
			else if (strcmp(key, "referrers") == 0)
				rc = get_referrers(c, v, &im->referrers);
			else if (strcmp(key, "verify") == 0)
				rc = parse_verify(c, k, v, &im->verify);
			else
				rc =
				    at(c, k,
				       "unknown key '%s' in an image (known: ref, from, platforms, "
				       "referrers, verify)",
				       key, NULL);
			if (rc < 0)
				return rc;
		}
		if (!im->ref[0])
			return at(c, it, "image is missing required field 'ref'", NULL, NULL);
	}
	return 0;
}

static int parse_manifests(ctx *c, yaml_node_t *n, bld_spec *s)
{
	int rc = want_type(c, n, YAML_SEQUENCE_NODE, "manifests");
	if (rc < 0)
		return rc;
	size_t cnt = seq_len(n);
	s->manifests = calloc(cnt ? cnt : 1, sizeof(*s->manifests));
	if (!s->manifests)
		return cm_error_set(c->err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *it = seq_at(c, n, i);
		bld_manifest_spec *m = &s->manifests[s->n_manifests++];
		m->line = (int)it->start_mark.line + 1;
		if ((rc = want_type(c, it, YAML_MAPPING_NODE, "manifests[]")) < 0)
			return rc;
		yaml_node_t *k, *v;
		const char *key;
		FOREACH_PAIR(c, it, pit, k, v, key)
		{
			if ((rc = dup_key(c, it, pit, k, key)) < 0)
				return rc;
			if (strcmp(key, "path") == 0)
				rc = get_str(c, v, key, m->path, sizeof(m->path));
			else if (strcmp(key, "kustomize") == 0)
				rc = get_str(c, v, key, m->kustomize, sizeof(m->kustomize));
			else
				rc = at(c, k,
					"unknown key '%s' in a manifests entry (known: path, "
					"kustomize)",
					key, NULL);
			if (rc < 0)
				return rc;
		}
		if (!m->path[0] == !m->kustomize[0])
			return at(c, it,
				  "a manifests entry needs exactly one of 'path' or 'kustomize'",
				  NULL, NULL);
	}
	return 0;
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
			return at(c, it, "model name '%s' is too long for an image name", m->name,
				  NULL);
		snprintf(m->image_tag, sizeof(m->image_tag), "%s", m->version);
		return 0;
	}
	reg_ref r;
	cm_error e = {0};
	if (reg_ref_parse(&r, m->image, &e) < 0) {
		char why[600];
		snprintf(why, sizeof(why), "%.590s", e.msg);
		return at(c, it, "'image' is not an image reference: %s", why, NULL);
	}
	if (r.digest[0])
		return at(c, it,
			  "'image' %s names a digest: give a repository and tag (ferry builds "
			  "this image, so its digest is not known yet)",
			  m->image, NULL);
	if (reg_ref_repo(m->image_repo, sizeof(m->image_repo), &r) < 0)
		return at(c, it, "'image' %s is too long", m->image, NULL);
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

static int parse_models(ctx *c, yaml_node_t *n, bld_spec *s)
{
	int rc = want_type(c, n, YAML_SEQUENCE_NODE, "models");
	if (rc < 0)
		return rc;
	size_t cnt = seq_len(n);
	s->models = calloc(cnt ? cnt : 1, sizeof(*s->models));
	if (!s->models)
		return cm_error_set(c->err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *it = seq_at(c, n, i);
		bld_model_spec *m = &s->models[s->n_models++];
		m->line = (int)it->start_mark.line + 1;
		if ((rc = want_type(c, it, YAML_MAPPING_NODE, "models[]")) < 0)
			return rc;
		yaml_node_t *k, *v;
		const char *key;
		FOREACH_PAIR(c, it, pit, k, v, key)
		{
			if ((rc = dup_key(c, it, pit, k, key)) < 0)
				return rc;
			if (strcmp(key, "name") == 0)
				rc = get_str(c, v, key, m->name, sizeof(m->name));
			else if (strcmp(key, "version") == 0)
				rc = get_str(c, v, key, m->version, sizeof(m->version));
			else if (strcmp(key, "path") == 0)
				rc = get_str(c, v, key, m->path, sizeof(m->path));
			else if (strcmp(key, "url") == 0)
				rc = get_str(c, v, key, m->url, sizeof(m->url));
			else if (strcmp(key, "sha256") == 0)
				rc = get_str(c, v, key, m->sha256, sizeof(m->sha256));
			else if (strcmp(key, "image") == 0)
				rc = get_str(c, v, key, m->image, sizeof(m->image));
			else
				rc = at(
				    c, k,
				    "unknown key '%s' in a model (known: name, version, path, url, "
				    "sha256, image)",
				    key, NULL);
			if (rc < 0)
				return rc;
		}
		if (!m->name[0] || !m->version[0])
			return at(c, it, "a model needs 'name' and 'version'", NULL, NULL);
		if (!safe_component(m->name) || !safe_component(m->version))
			return at(c, it,
				  "model name and version may hold only letters, digits, '.', '_' "
				  "and '-'",
				  NULL, NULL);
		if (!m->path[0] == !m->url[0])
			return at(c, it, "a model needs exactly one of 'path' or 'url'", NULL,
				  NULL);
		reg_url mu;
		/* the spec is kept in bundle.json: a password in it would cross the gap */
		if (m->url[0] && reg_url_parse(&mu, m->url, 0, NULL) == 0 && mu.has_user)
			return at(
			    c, it,
			    "model %s: the url holds a user:password, which would be copied "
			    "into the bundle (bundle.json keeps the spec); put it in ~/.netrc "
			    "or $NETRC for the host instead",
			    m->name, NULL);
		if ((rc = model_image(c, it, m)) < 0)
			return rc;
		for (size_t j = 0; j + 1 < s->n_models; j++)
			if ((m->image[0] || s->models[j].image[0]) &&
			    strcmp(s->models[j].image_repo, m->image_repo) == 0 &&
			    strcmp(s->models[j].image_tag, m->image_tag) == 0) {
				char line[32];
				snprintf(line, sizeof(line), "%d", s->models[j].line);
				return at(
				    c, it,
				    "this model's image is the same as the one of the model at "
				    "line %s (%s): give each model its own 'image'",
				    line, m->image[0] ? m->image : s->models[j].image);
			}
	}
	return 0;
}

static int get_bool(ctx *c, yaml_node_t *n, const char *key, int *out)
{
	char b[16];
	int rc = get_str(c, n, key, b, sizeof(b));
	if (rc < 0)
		return at(c, n, "'%s' must be true or false", key, NULL);
	if (!strcmp(b, "true") || !strcmp(b, "yes") || !strcmp(b, "on"))
		*out = 1;
	else if (!strcmp(b, "false") || !strcmp(b, "no") || !strcmp(b, "off"))
		*out = 0;
	else
		return at(c, n, "'%s' must be true or false, not '%s'", key, b);
	return 0;
}

/* registries:
 *   docker.io:              # upstream prefix
 *     endpoint: 127.0.0.1:5000
 *     insecure: true        # plain HTTP
 *     ca: certs/ca.pem      # or cert:/key: for a client certificate
 *     realm-credentials: [auth.example.com]   # token realms on another host
 *                           # that may receive the credentials */
static int get_realm_creds(ctx *c, yaml_node_t *n, const char *key, bld_registry_spec *r)
{
	int rc = want_type(c, n, YAML_SEQUENCE_NODE, key);
	if (rc < 0)
		return rc;
	size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (cnt > sizeof(r->realm_creds) / sizeof(r->realm_creds[0]))
		return at(c, n, "'%s' lists more than 8 hosts", key, NULL);
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_t *it = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
		char *h = r->realm_creds[r->n_realm_creds];
		if ((rc = get_str(c, it, key, h, sizeof(r->realm_creds[0]))) < 0)
			return rc;
		if (!h[0] || h[strcspn(h, "/ @?#\t")] != '\0' || strstr(h, "://"))
			return at(c, it, "'%s': '%s' is not a host or host:port", key, h);
		r->n_realm_creds++;
	}
	return 0;
}

static int parse_registries(ctx *c, yaml_node_t *n, bld_spec *s)
{
	int rc = want_type(c, n, YAML_MAPPING_NODE, "registries");
	if (rc < 0)
		return rc;
	size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	if (cnt > 1000)
		return at(c, n, "too many registries", NULL, NULL);
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
			return at(c, k, "registry prefix '%s' is not a host[/path]", r->prefix,
				  NULL);
		for (size_t j = 0; j + 1 < s->n_registries; j++)
			if (strcmp(s->registries[j].prefix, r->prefix) == 0)
				return at(c, k, "registry prefix '%s' is given twice", r->prefix,
					  NULL);
		if ((rc = want_type(c, v, YAML_MAPPING_NODE, r->prefix)) < 0)
			return rc;
		yaml_node_t *k2, *v2;
		const char *key2;
		FOREACH_PAIR(c, v, it2, k2, v2, key2)
		{
			if (strcmp(key2, "endpoint") == 0)
				rc = get_str(c, v2, key2, r->endpoint, sizeof(r->endpoint));
			else if (strcmp(key2, "insecure") == 0)
				rc = get_bool(c, v2, key2, &r->insecure);
			else if (strcmp(key2, "ca") == 0)
				rc = get_str(c, v2, key2, r->ca, sizeof(r->ca));
			else if (strcmp(key2, "cert") == 0)
				rc = get_str(c, v2, key2, r->cert, sizeof(r->cert));
			else if (strcmp(key2, "key") == 0)
				rc = get_str(c, v2, key2, r->key, sizeof(r->key));
			else if (strcmp(key2, "realm-credentials") == 0)
				rc = get_realm_creds(c, v2, key2, r);
			else
				rc = at(c, k2,
					"unknown key '%s' in a registry (known: endpoint, "
					"insecure, ca, cert, key, realm-credentials)",
					key2, NULL);
			if (rc < 0)
				return rc;
		}
		if (!r->endpoint[0]) /* the registry itself: ca, realm-credentials... */
			snprintf(r->endpoint, sizeof(r->endpoint), "%s", r->prefix);
		if (!r->cert[0] != !r->key[0])
			return at(c, v, "registry '%s': 'cert' and 'key' go together", r->prefix,
				  NULL);
	}
	return 0;
}

static int parse_root(ctx *c, yaml_node_t *root, bld_spec *s)
{
	int rc;
	if (!root)
		return cm_error_set(c->err, CM_EINVAL, "%s: the spec is empty", c->file);
	if ((rc = want_type(c, root, YAML_MAPPING_NODE, "the spec")) < 0)
		return rc;
	char api[64] = "", kind[64] = "";
	yaml_node_t *k, *v, *meta = NULL, *mname = NULL;
	const char *key;
	FOREACH_PAIR(c, root, it1, k, v, key)
	{
		if ((rc = dup_key(c, root, it1, k, key)) < 0)
			return rc;
		if (strcmp(key, "apiVersion") == 0) {
			if ((rc = get_str(c, v, key, api, sizeof(api))) == 0 &&
			    strcmp(api, "ferry/v1"))
				rc = at(c, v, "unsupported apiVersion '%s' (want ferry/v1)", api,
					NULL);
		} else if (strcmp(key, "kind") == 0) {
			if ((rc = get_str(c, v, key, kind, sizeof(kind))) == 0 &&
			    strcmp(kind, "Bundle"))
				rc = at(c, v, "unsupported kind '%s' (want Bundle)", kind, NULL);
		} else if (strcmp(key, "metadata") == 0) {
			if ((rc = want_type(c, v, YAML_MAPPING_NODE, key)) < 0)
				return rc;
			yaml_node_t *k2, *v2;
			const char *key2;
			meta = k;
			FOREACH_PAIR(c, v, it2, k2, v2, key2)
			{
				if ((rc = dup_key(c, v, it2, k2, key2)) < 0)
					return rc;
				if (strcmp(key2, "name") == 0) {
					mname = v2;
					rc = get_str(c, v2, key2, s->name, sizeof(s->name));
				} else if (strcmp(key2, "version") == 0) {
					rc = get_str(c, v2, key2, s->version, sizeof(s->version));
				} else {
					rc = at(
					    c, k2,
					    "unknown key '%s' in metadata (known: name, version)",
					    key2, NULL);
				}
				if (rc < 0)
					return rc;
			}
		} else if (strcmp(key, "platforms") == 0) {
			rc = get_str_list(c, v, key, &s->platforms);
		} else if (strcmp(key, "referrers") == 0) {
			rc = get_referrers(c, v, &s->referrers);
		} else if (strcmp(key, "verify") == 0) {
			rc = parse_verify(c, k, v, &s->verify);
		} else if (strcmp(key, "images") == 0) {
			if (v->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)v->data.scalar.value, "auto") == 0)
				s->images_auto = 1; /* the images the manifests use */
			else
				rc = parse_images(c, v, s);
		} else if (strcmp(key, "manifests") == 0) {
			rc = parse_manifests(c, v, s);
		} else if (strcmp(key, "models") == 0) {
			rc = parse_models(c, v, s);
		} else if (strcmp(key, "registries") == 0) {
			rc = parse_registries(c, v, s);
		} else {
			rc = at(c, k,
				"unknown key '%s' (known: apiVersion, kind, metadata, platforms, "
				"referrers, verify, images, "
				"manifests, models, registries)",
				key, NULL);
		}
		if (rc < 0)
			return rc;
	}
	if (!api[0])
		return at(c, root, "missing required field 'apiVersion' (ferry/v1)", NULL, NULL);
	if (!kind[0])
		return at(c, root, "missing required field 'kind' (Bundle)", NULL, NULL);
	if (!s->name[0])
		return at(c, meta ? meta : root, "missing required field 'metadata.name'", NULL,
			  NULL);
	if (!safe_component(s->name))
		return at(c, mname,
			  "metadata.name '%s' may hold only letters, digits, '.', '_', '-'",
			  s->name, NULL);
	if (!s->referrers)
		s->referrers = BLD_REFERRERS_ALL;
	if (!s->platforms) {
		s->platforms = calloc(2, sizeof(char *));
		if (!s->platforms || !(s->platforms[0] = strdup("linux/amd64")))
			return cm_error_set(c->err, CM_ENOMEM, "out of memory");
	}
	return 0;
}

int bld_spec_load(bld_spec *out, const char *path, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->file, sizeof(out->file), "%s", path);
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s", path);
	snprintf(out->dir, sizeof(out->dir), "%s", dirname(tmp));
	int rc = cm_file_read(&out->text, path, BLD_SPEC_MAX, err);
	if (rc < 0) {
		bld_spec_free(out);
		return rc;
	}
	yaml_parser_t parser;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&parser))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)out->text.data, out->text.len);
	if (!yaml_parser_load(&parser, &doc)) {
		rc = cm_error_set(err, CM_EINVAL, "%s:%zu:%zu: YAML error: %s%s%s", path,
				  parser.problem_mark.line + 1, parser.problem_mark.column + 1,
				  parser.problem ? parser.problem : "syntax error",
				  parser.context ? " " : "", parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		bld_spec_free(out);
		return rc;
	}
	ctx c = {&doc, path, err};
	rc = parse_root(&c, yaml_document_get_root_node(&doc), out);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
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
