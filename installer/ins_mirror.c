#include "ins_mirror.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_file.h"
#include "cm_emit.h"

static int add_file(ins_mfiles *f, const char *path, cm_buf *text, int mode, cm_error *err)
{
	ins_mfile *v = realloc(f->v, (f->n + 1) * sizeof(*v));
	if (!v)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	f->v = v;
	snprintf(v[f->n].path, sizeof(v[f->n].path), "%s", path);
	if (!text->data)
		cm_buf_append(text, "", 0, NULL);
	v[f->n].text = cm_buf_detach(text);
	v[f->n].mode = mode;
	f->n++;
	return 0;
}

const ins_mfile *ins_mirror_find(const ins_mfiles *f, const char *path)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->v[i].path, path) == 0)
			return &f->v[i];
	return NULL;
}

void ins_mfiles_free(ins_mfiles *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].text);
	free(f->v);
	memset(f, 0, sizeof(*f));
}

int ins_mirror_format_parse(ins_mirror_format *out, const char *s)
{
	static const char *const names[] = {"containerd", "registries.conf", "okd", "crio",
					    "openshift"};
	static const ins_mirror_format f[] = {INS_MF_CONTAINERD, INS_MF_REGISTRIES, INS_MF_OKD,
					      INS_MF_REGISTRIES, INS_MF_OKD};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0) {
			*out = f[i];
			return 0;
		}
	return -1;
}

void ins_mirror_object_name(char *out, size_t n, const char *bundle_name)
{
	size_t k = (size_t)snprintf(out, n, "ferry-");
	int dash = 1;
	for (const char *p = bundle_name; *p && k + 1 < n && k < 63; p++) {
		char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			out[k++] = c;
			dash = 0;
		} else if (!dash) {
			out[k++] = '-';
			dash = 1;
		}
	}
	while (k > 6 && out[k - 1] == '-')
		k--;
	if (k == 6 && k + 6 < n) {
		memcpy(out + k, "bundle", 6);
		k += 6;
	}
	out[k] = '\0';
}

/* Unique values of imgs' hosts or repos, sorted. */
typedef struct strset {
	const char **v;
	size_t n;
} strset;

static int set_add(strset *s, const char *x, cm_error *err)
{
	size_t i = 0;
	int c = 1;
	while (i < s->n && (c = strcmp(s->v[i], x)) < 0)
		i++;
	if (c == 0)
		return 0;
	const char **v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	memmove(v + i + 1, v + i, (s->n++ - i) * sizeof(*v));
	v[i] = x;
	s->v = v;
	return 0;
}

/* HOST:PORT of base (HOST:PORT[/PREFIX]). */
static void host_of(char *out, size_t n, const char *base)
{
	snprintf(out, n, "%.*s", (int)strcspn(base, "/"), base);
}

/* A copy of the CA's PEM text as the file path. */
static int add_pem(ins_mfiles *out, const char *path, const char *pem, cm_error *err)
{
	cm_buf c = CM_BUF_INIT;
	int rc = cm_buf_append(&c, pem, strlen(pem), err);
	if (rc == 0)
		rc = add_file(out, path, &c, 0644, err);
	cm_buf_free(&c);
	return rc;
}

/* Strip a scheme and trailing slashes from the registry given. */
static void reg_base(char *out, size_t n, const char *r)
{
	if (strncmp(r, "https://", 8) == 0)
		r += 8;
	else if (strncmp(r, "http://", 7) == 0)
		r += 7;
	snprintf(out, n, "%s", r);
	size_t l = strlen(out);
	while (l && out[l - 1] == '/')
		out[--l] = '\0';
}

static int render_containerd(ins_mfiles *out, const ins_image *imgs, size_t n,
			     const ins_mirror_opts *o, cm_error *err)
{
	strset hosts = {NULL, 0};
	int rc = 0;
	char base[600];
	reg_base(base, sizeof(base), o->registry);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = set_add(&hosts, imgs[i].r.host, err);
	const char *scheme = o->plain_http ? "http" : "https";
	/* HOST:PORT[/PREFIX] -> https://HOST:PORT/v2/[PREFIX/]<upstream-host> */
	char hostport[600], prefix[600] = "";
	host_of(hostport, sizeof(hostport), base);
	if (strchr(base, '/'))
		snprintf(prefix, sizeof(prefix), "%s/", strchr(base, '/') + 1);
	for (size_t i = 0; i < hosts.n && rc == 0; i++) {
		const char *h = hosts.v[i];
		cm_buf b = CM_BUF_INIT;
		char path[1024], ca[64] = "";
		if (o->ca_pem && !o->plain_http)
			snprintf(ca, sizeof(ca), "ca = \"ferry-ca.crt\"\n");
		/* the mirror is the server too: a strict air gap, no fallback */
		rc = cm_buf_appendf(
		    &b, err,
		    "# Written by ferry-install for bundle %s: pulls of %s images go to the\n"
		    "# ferry mirror at %s only (it is also the server, so nothing falls back\n"
		    "# to the internet). Relative paths are relative to this folder.\n"
		    "server = \"%s://%s/v2/%s%s\"\n"
		    "override_path = true\n"
		    "capabilities = [\"pull\", \"resolve\"]\n"
		    "%s"
		    "\n"
		    "[host.\"%s://%s/v2/%s%s\"]\n"
		    "  capabilities = [\"pull\", \"resolve\"]\n"
		    "  override_path = true\n"
		    "%s%s",
		    o->name ? o->name : "", h, base, scheme, hostport, prefix, h, ca, scheme,
		    hostport, prefix, h, ca[0] ? "  " : "", ca);
		snprintf(path, sizeof(path), "%s/hosts.toml", h);
		if (rc == 0)
			rc = add_file(out, path, &b, 0644, err);
		cm_buf_free(&b);
		snprintf(path, sizeof(path), "%s/ferry-ca.crt", h);
		if (rc == 0 && ca[0])
			rc = add_pem(out, path, o->ca_pem, err);
	}
	free(hosts.v);
	return rc;
}

static int render_registries(ins_mfiles *out, const ins_image *imgs, size_t n,
			     const ins_mirror_opts *o, cm_error *err)
{
	strset repos = {NULL, 0};
	int rc = 0;
	char base[600];
	reg_base(base, sizeof(base), o->registry);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = set_add(&repos, imgs[i].repo, err);
	cm_buf b = CM_BUF_INIT;
	if (rc == 0)
		rc = cm_buf_appendf(
		    &b, err,
		    "# Written by ferry-install for bundle %s: pulls of its images go to\n"
		    "# the ferry mirror at %s. Install as\n"
		    "# /etc/containers/registries.conf.d/ferry.conf (CRI-O, podman).\n",
		    o->name ? o->name : "", base);
	for (size_t i = 0; i < repos.n && rc == 0; i++)
		rc = cm_buf_appendf(&b, err,
				    "\n[[registry]]\n"
				    "prefix = \"%s\"\n"
				    "location = \"%s\"\n"
				    "\n"
				    "[[registry.mirror]]\n"
				    "location = \"%s/%s\"\n"
				    "insecure = %s\n"
				    "pull-from-mirror = \"all\"\n",
				    repos.v[i], repos.v[i], base, repos.v[i],
				    o->plain_http ? "true" : "false");
	if (rc == 0)
		rc = add_file(out, "registries.conf.d/ferry.conf", &b, 0644, err);
	cm_buf_free(&b);
	if (rc == 0 && o->ca_pem && !o->plain_http) {
		/* /etc/containers/certs.d/HOST:PORT/ca.crt */
		char host[600], path[1024];
		host_of(host, sizeof(host), base);
		snprintf(path, sizeof(path), "certs.d/%s/ca.crt", host);
		rc = add_pem(out, path, o->ca_pem, err);
	}
	free(repos.v);
	return rc;
}

/* One OKD object: a fixed comment, then obj in YAML through libyaml's
 * emitter (obj is dropped). A NULL obj is a json_pack that failed. */
static int add_yaml(ins_mfiles *out, const char *path, const char *comment, json_t *obj,
		    cm_error *err)
{
	if (!obj)
		return cm_error_set(err, CM_EINVAL, "%s: a value is not UTF-8", path);
	cm_buf b = CM_BUF_INIT;
	int rc = cm_buf_append(&b, comment, strlen(comment), err);
	if (rc == 0)
		rc = cm_yaml_append(&b, obj, err);
	json_decref(obj);
	if (rc == 0)
		rc = add_file(out, path, &b, 0644, err);
	else
		cm_error_wrap(err, "%s", path);
	cm_buf_free(&b);
	return rc;
}

/* An ImageDigestMirrorSet or ImageTagMirrorSet: every repository goes to
 * the mirror only. */
static json_t *mirror_set(const char *kind, const char *list, const char *name, const strset *repos,
			  const char *base)
{
	json_t *l = json_array();
	for (size_t i = 0; l && i < repos->n; i++) {
		char m[1200];
		snprintf(m, sizeof(m), "%s/%s", base, repos->v[i]);
		if (json_array_append_new(l, json_pack("{s:s,s:[s],s:s}", "source", repos->v[i],
						       "mirrors", m, "mirrorSourcePolicy",
						       "NeverContactSource")) < 0) {
			json_decref(l);
			return NULL;
		}
	}
	return json_pack("{s:s,s:s,s:{s:s},s:{s:o}}", "apiVersion", "config.openshift.io/v1",
			 "kind", kind, "metadata", "name", name, "spec", list, l);
}

static int render_okd(ins_mfiles *out, const ins_image *imgs, size_t n, const ins_mirror_opts *o,
		      cm_error *err)
{
	strset all = {NULL, 0}, tagged = {NULL, 0};
	int rc = 0;
	char base[600], obj[80];
	reg_base(base, sizeof(base), o->registry);
	ins_mirror_object_name(obj, sizeof(obj), o->name ? o->name : "bundle");
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = set_add(&all, imgs[i].repo, err);
		if (rc == 0 && imgs[i].r.tag[0])
			rc = set_add(&tagged, imgs[i].repo, err);
	}
	if (rc == 0)
		rc = add_yaml(
		    out, "imagedigestmirrorset.yaml",
		    "# Pulls by digest of the bundle's images go to the ferry mirror, never\n"
		    "# to the source. Creating an ImageDigestMirrorSet does not drain nodes.\n",
		    mirror_set("ImageDigestMirrorSet", "imageDigestMirrors", obj, &all, base), err);
	out->tag_repos = tagged.n;
	if (rc == 0 && tagged.n)
		rc = add_yaml(
		    out, "imagetagmirrorset.yaml",
		    "# WARNING: creating or changing an ImageTagMirrorSet drains and reboots\n"
		    "# every node. Only the repositories the bundle references by tag are here;\n"
		    "# pin images by digest to need none.\n",
		    mirror_set("ImageTagMirrorSet", "imageTagMirrors", obj, &tagged, base), err);
	if (rc == 0 && o->ca_pem && !o->plain_http) {
		/* the key is the host with ".." before the port */
		char key[sizeof(base) + 2];
		host_of(key, sizeof(key), base);
		char *colon = strrchr(key, ':');
		if (colon) {
			char port[16];
			snprintf(port, sizeof(port), "%s", colon + 1);
			snprintf(colon, sizeof(key) - (size_t)(colon - key), "..%s", port);
		}
		const char *cm = o->ca_configmap ? o->ca_configmap : "ferry-registry-ca";
		snprintf(out->configmap, sizeof(out->configmap), "%s", cm);
		snprintf(out->ca_key, sizeof(out->ca_key), "%s", key);
		rc = add_yaml(out, "registry-ca-configmap.yaml",
			      "# The CA of the ferry mirror, trusted by the cluster through\n"
			      "# image.config.openshift.io/cluster spec.additionalTrustedCA.\n",
			      json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s}}", "apiVersion", "v1", "kind",
					"ConfigMap", "metadata", "name", cm, "namespace",
					"openshift-config", "data", key, o->ca_pem),
			      err);
		if (rc == 0)
			rc = add_yaml(
			    out, "image-config-patch.yaml",
			    "# oc patch image.config.openshift.io/cluster --type=merge "
			    "--patch-file=image-config-patch.yaml\n",
			    json_pack("{s:{s:{s:s}}}", "spec", "additionalTrustedCA", "name", cm),
			    err);
	}
	free(all.v);
	free(tagged.v);
	return rc;
}

int ins_mirror_render(ins_mfiles *out, const ins_image *imgs, size_t n, ins_mirror_format f,
		      const ins_mirror_opts *o, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!o->registry || !o->registry[0])
		return cm_error_set(err, CM_EUSAGE, "no mirror registry (HOST:PORT) given");
	int rc;
	switch (f) {
	case INS_MF_CONTAINERD:
		rc = render_containerd(out, imgs, n, o, err);
		break;
	case INS_MF_REGISTRIES:
		rc = render_registries(out, imgs, n, o, err);
		break;
	case INS_MF_OKD:
		rc = render_okd(out, imgs, n, o, err);
		break;
	default:
		rc = cm_error_set(err, CM_EUSAGE, "unknown mirror format");
	}
	if (rc < 0)
		ins_mfiles_free(out);
	return rc;
}

int ins_mirror_write(const ins_mfiles *f, const char *dir, cm_error *err)
{
	for (size_t i = 0; i < f->n; i++) {
		char path[4096], parent[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, f->v[i].path);
		snprintf(parent, sizeof(parent), "%s", path);
		char *slash = strrchr(parent, '/');
		if (slash)
			*slash = '\0';
		int rc = cm_mkdirs(parent, err);
		if (rc == 0)
			rc = cm_file_write_atomic(path, f->v[i].text, strlen(f->v[i].text),
						  (mode_t)f->v[i].mode, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}
