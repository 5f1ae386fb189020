/* Models for a bundle (docs/manifests-and-models.md).
 *
 * Each spec model (url: or path:) is brought into the store, its files as
 * raw blobs, and described twice:
 *   1. models.ferry.local/<name>:<version>: an OCI artifact with the CNCF ModelPack
 *      media types (artifactType application/vnd.cncf.model.manifest.v1+json,
 *      config application/vnd.cncf.model.config.v1+json), one raw layer per
 *      file annotated with org.opencontainers.image.title and
 *      org.cncf.model.filepath;
 *   2. models.ferry.local/<name>-modelcar:<version> (or models[].image): a
 *      linux/amd64 image for KServe's
 *      modelcar: a busybox layer (bin/busybox from busybox-static with sh,
 *      ln, sleep, ls, cat, echo, true linked to it; the same blob in every
 *      modelcar) and a layer holding models/<files>.
 * Every timestamp is BLD_MODEL_EPOCH, so digests depend on content only.
 *
 * Downloads are requests on the registry client's engine (reg_request):
 * redirects followed by hand (http and https only; Hugging Face resolve/
 * URLs answer with one to their CDN), the body hashed while it streams into
 * <cache>/downloads/<sha256(url)>.part, a cut connection resumed with Range
 * (in the same run, and by the next run), 408/429/5xx and transport errors
 * retried within the engine's budget (Retry-After honoured, at most
 * BLD_DOWNLOAD_TRIES tries without progress), and the file moved into the
 * store once its sha256 is checked. $HF_TOKEN (or $HUGGING_FACE_HUB_TOKEN)
 * goes as a Bearer token to huggingface.co (or $HF_ENDPOINT's host) only:
 * a redirect to another host never carries it. */
#ifndef BLD_MODELS_H
#define BLD_MODELS_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "bld_build.h"
#include "bld_bundle.h"
#include "bld_spec.h"
#include "cm_error.h"
#include "reg_copy.h"
#include "reg_digest.h"
#include "reg_store.h"

#define BLD_MT_MODEL_ARTIFACT "application/vnd.cncf.model.manifest.v1+json"
#define BLD_MT_MODEL_CONFIG "application/vnd.cncf.model.config.v1+json"
#define BLD_MT_OCI_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define BLD_MODEL_CREATED "1970-01-01T00:00:00Z"
#define BLD_MODEL_EPOCH 0
#define BLD_BUSYBOX_DEFAULT "/bin/busybox"
#define BLD_DOWNLOAD_TRIES 5

typedef struct bld_model_file {
	char path[1024]; /* relative path inside the model: "model.onnx" */
	reg_digest digest;
	uint64_t size;
	char media_type[96]; /* application/vnd.cncf.model.<kind>.v1.raw */
} bld_model_file;

typedef struct bld_model {
	char name[128];
	char version[64];
	char source[4096]; /* the url, or the path as resolved */
	int pinned;	   /* the spec gave sha256 */
	bld_model_file *files;
	size_t n_files;
	uint64_t size;	    /* sum of file sizes */
	reg_image artifact; /* models.ferry.local/<name>:<version> */
	reg_image modelcar; /* models.ferry.local/<name>-modelcar:<version>, or models[].image */
} bld_model;

typedef struct bld_models {
	bld_model *v;
	size_t n;
	uint64_t fetched; /* bytes downloaded */
} bld_models;

/* o: allow_unpinned (a url: without sha256 is accepted, its digest
 * recorded) and log; the busybox is $FERRY_BUSYBOX, else /bin/busybox. */
int bld_models_build(bld_models *out, const bld_spec *s, reg_store *st, const char *cache,
		     const bld_build_opts *o, cm_error *err);
void bld_models_free(bld_models *m);

/* Raw copies: models/<name>/<version>/<path> members read from the store
 * (caller frees *out). */
int bld_models_files(const bld_models *m, reg_store *st, bld_file **out, size_t *n_out,
		     cm_error *err);

/* bundle.json "modelArtifacts": name, version, source, pinned, size,
 * artifact {ref, digest}, modelcar {ref, digest}, files [{path, sha256,
 * size, mediaType}]. */
json_t *bld_models_json(const bld_models *m);

#endif
