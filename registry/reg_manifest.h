/* OCI / Docker schema2 manifests and indexes: parsing (never
 * re-serialising: a manifest's digest is the hash of its exact bytes). */
#ifndef REG_MANIFEST_H
#define REG_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "cm_error.h"
#include "reg_digest.h"

#define REG_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define REG_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define REG_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define REG_MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define REG_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define REG_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define REG_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define REG_MT_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar"
#define REG_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define REG_MT_DOCKER_SCHEMA1 "application/vnd.docker.distribution.manifest.v1+json"
#define REG_MT_DOCKER_SCHEMA1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"

#define REG_MANIFEST_MAX ((size_t)4 << 20) /* the distribution spec's 4 MiB cap */
#define REG_MANIFEST_MAX_ITEMS 10000

typedef struct reg_desc {
	char media_type[256];
	reg_digest digest;
	uint64_t size;
	char platform[96]; /* "os/arch[/variant]" for index children, else "" */
	char title[256];   /* org.opencontainers.image.title annotation, or "" */
} reg_desc;

typedef struct reg_manifest {
	int is_index;
	char media_type[256];
	reg_desc config; /* manifests only */
	reg_desc *items; /* layers (manifest) or children (index); owned */
	size_t n_items;
} reg_manifest;

int reg_media_type_is_index(const char *mt);
int reg_media_type_is_manifest(const char *mt);

/* Parse manifest bytes. media_type is the transport's Content-Type or NULL;
 * the document's own mediaType wins when present. Schema 1 is refused with a
 * clear message. */
int reg_manifest_parse(reg_manifest *out, const void *data, size_t len, const char *media_type,
		       cm_error *err);
/* Frees items; NULL is a no-op. */
void reg_manifest_free(reg_manifest *m);

/* Does platform "os/arch[/variant]" match the wanted list? want is a
 * NULL-terminated array; "all" matches everything; NULL or empty matches
 * everything. "linux/arm64" matches "linux/arm64/v8". */
int reg_platform_match(const char *platform, const char *const *want);

#endif
