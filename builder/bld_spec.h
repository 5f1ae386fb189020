/* The bundle spec (docs/spec.md), parsed with libyaml. Every error names
 * file:line:column. */
#ifndef BLD_SPEC_H
#define BLD_SPEC_H

#include <stddef.h>
#include <yaml.h>

#include "cm_buf.h"
#include "cm_error.h"

#define BLD_SPEC_MAX ((size_t)4 << 20)

/* verify: {sigstore: {key, identity}}: the build refuses an image without a
 * signature by that key (docs/supply-chain.md, "Policy at build time").
 * Global and per image; an image's own wins. */
typedef struct bld_verify_spec {
	char key[1024];	    /* PEM public key, as written (relative to the spec); "" = none */
	char identity[512]; /* glob on critical.identity.docker-reference; "" = any */
	int line;	    /* of the verify: key */
} bld_verify_spec;

typedef struct bld_image_spec {
	char ref[512];		/* as written */
	char from[4096];	/* source transport string, "" = its registry */
	char **platforms;	/* per-image override, NULL-terminated, or NULL */
	int referrers;		/* BLD_REFERRERS_*; BLD_REFERRERS_DEFAULT: the spec's */
	bld_verify_spec verify; /* key "": the spec's */
	int line;
} bld_image_spec;

/* referrers: what is carried of what is attached to an image (signatures,
 * attestations, SBOMs; docs/supply-chain.md) */
enum {
	BLD_REFERRERS_DEFAULT = 0, /* per image: the spec's global setting */
	BLD_REFERRERS_ALL,	   /* .sig, .att, .sbom tags, the fallback index, the API */
	BLD_REFERRERS_SIGNATURES,  /* the .sig tag only */
	BLD_REFERRERS_NONE
};

typedef struct bld_manifest_spec {
	char path[4096];      /* file or folder of YAML */
	char kustomize[4096]; /* kustomization folder */
	int line;
} bld_manifest_spec;

/* The modelcar image of a model is BLD_MODEL_HOST/<name>-modelcar:<version>
 * unless models[].image names it: a host under .local (RFC 6762) is never
 * a public registry, so no runtime pulls it from the internet by mistake. */
#define BLD_MODEL_HOST "models.ferry.local"

typedef struct bld_model_spec {
	char name[128];
	char version[64];
	char path[4096];
	char url[4096];
	char sha256[72];      /* 64 hex, or "" */
	char image[512];      /* models[].image as written, or "" */
	char image_repo[300]; /* the modelcar's repository (normalised host/path) */
	char image_tag[129];  /* and tag: image's, else version */
	int line;
} bld_model_spec;

/* registries: an upstream prefix served from another endpoint. */
typedef struct bld_registry_spec {
	char prefix[256];   /* "docker.io", "gcr.io/ml-pipeline" */
	char endpoint[512]; /* "host[:port][/path]", optionally with http(s)://;
			     * absent: the prefix itself */
	int insecure;	    /* plain HTTP */
	char ca[4096];	    /* PEM file, as written (relative to the spec) */
	char cert[4096];
	char key[4096];
	/* realm-credentials: token realm hosts ("host" or "host:port") on
	 * another host that may receive this registry's credentials */
	char realm_creds[8][256];
	size_t n_realm_creds;
	int line;
} bld_registry_spec;

typedef struct bld_spec {
	char file[4096]; /* the spec's path */
	char dir[4096];	 /* its folder: relative paths resolve here */
	char name[128];
	char version[64];
	char **platforms;	/* NULL-terminated; default {"linux/amd64"} */
	int referrers;		/* BLD_REFERRERS_*; default ALL */
	bld_verify_spec verify; /* key "": no policy */
	bld_image_spec *images;
	size_t n_images;
	int images_auto; /* `images: auto`, or an `auto` entry in the list */
	bld_manifest_spec *manifests;
	size_t n_manifests;
	bld_model_spec *models;
	size_t n_models;
	bld_registry_spec *registries;
	size_t n_registries;
	cm_buf text; /* the spec as given */
} bld_spec;

int bld_spec_load(bld_spec *out, const char *path, cm_error *err);
/* The first YAML document of text into out (free it with
 * yaml_document_delete); CM_EINVAL "name:line:col: YAML error: ..." when
 * text is not YAML. */
int bld_yaml_load(yaml_document_t *out, const char *name, const cm_buf *text, cm_error *err);
/* The value of key in map (the first pair whose key is that scalar), or
 * NULL when there is none or map is not a mapping (or NULL). */
yaml_node_t *bld_yaml_get(yaml_document_t *d, yaml_node_t *map, const char *key);
/* NULL is a no-op. */
void bld_spec_free(bld_spec *s);

/* The signature policy of image i (its own, else the spec's), or NULL. */
const bld_verify_spec *bld_spec_verify(const bld_spec *s, size_t i);

/* "<image_repo>:<image_tag>": the full reference of m's modelcar image.
 * CM_EINVAL when out is too small. */
int bld_model_image_ref(char *out, size_t n, const bld_model_spec *m, cm_error *err);

/* p (a path from the spec) as it is when absolute or empty, else under the
 * spec's folder. CM_EINVAL when out (size n) is too small. */
int bld_spec_path(char *out, size_t n, const bld_spec *s, const char *p);

#endif
