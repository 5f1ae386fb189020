/* Node and cluster configuration that sends pulls of the bundle's images
 * to a mirror registry, keeping every reference unchanged (nodes.md).
 *
 * The mirror serves each image under <upstream-host>/<path> (what
 * `ferry-install serve` and `ferry-install push --to HOST` do), so:
 *
 * containerd  <dir>/<upstream-host>/hosts.toml (+ ferry-ca.crt): the mirror
 *             is both the host and the `server`, at
 *             https://MIRROR/v2/<upstream-host> with override_path, so
 *             nothing falls back to the internet (strict air gap).
 * registries  registries.conf.d/ferry.conf: one [[registry]] per image
 *             repository with a [[registry.mirror]] at
 *             MIRROR/<upstream-host>/<path>; certs.d/MIRROR/ca.crt.
 * okd         ImageDigestMirrorSet (NeverContactSource) for every
 *             repository, ImageTagMirrorSet only for repositories pulled by
 *             tag, the CA ConfigMap in openshift-config (key host..port) and
 *             the image.config.openshift.io/cluster additionalTrustedCA
 *             patch. */
#ifndef INS_MIRROR_H
#define INS_MIRROR_H

#include <stddef.h>

#include "cm_error.h"
#include "ins_install_bundle.h"

typedef enum {
	INS_MF_CONTAINERD = 1,
	INS_MF_REGISTRIES,
	INS_MF_OKD,
} ins_mirror_format;

/* containerd | registries.conf (or crio) | okd (or openshift); -1 for
 * anything else. */
int ins_mirror_format_parse(ins_mirror_format *out, const char *s);

typedef struct ins_mirror_opts {
	const char *registry; /* HOST:PORT[/PREFIX] of the mirror */
	const char *ca_pem;   /* its CA certificate (PEM text), or NULL */
	int plain_http;	      /* the mirror speaks plain HTTP */
	const char *name;     /* bundle name, for object names */
	const char
	    *ca_configmap; /* OKD: the ConfigMap to put the CA in (NULL: ferry-registry-ca) */
} ins_mirror_opts;

typedef struct ins_mfile {
	char path[1024]; /* relative to the output folder */
	char *text;	 /* owned */
	int mode;	 /* file mode */
} ins_mfile;

typedef struct ins_mfiles {
	ins_mfile *v;
	size_t n;
	size_t tag_repos;		  /* okd: repositories in the ImageTagMirrorSet */
	char configmap[128], ca_key[608]; /* okd: where the CA went */
} ins_mfiles;

int ins_mirror_render(ins_mfiles *out, const ins_image *imgs, size_t n, ins_mirror_format f,
		      const ins_mirror_opts *o, cm_error *err);
/* Write every file under dir (atomically, creating folders). */
int ins_mirror_write(const ins_mfiles *f, const char *dir, cm_error *err);
const ins_mfile *ins_mirror_find(const ins_mfiles *f, const char *path);
void ins_mfiles_free(ins_mfiles *f);

/* "ferry-" + a DNS-1123 label from the bundle name. */
void ins_mirror_object_name(char *out, size_t n, const char *bundle_name);

#endif
