/* libFuzzer target: the bundle spec parser (builder/bld_spec.c).
 * fuzz-max-len: 16384
 *
 * Input: the spec's YAML. bld_spec_load reads a path, so the input goes
 * into a memfd and the parser opens /proc/self/fd/N: the real entry point,
 * file reading included.
 *
 * Invariants (abort when broken):
 *   - failure is CM_EINVAL / CM_EIO / CM_ENOMEM with a message naming the
 *     file, and leaves the spec zeroed (nothing to free, nothing leaked);
 *   - success holds exactly the bytes given (text), apiVersion/kind were
 *     checked, metadata.name is non-empty and a safe path component, a
 *     platform list exists, every image has a ref, every manifests entry
 *     exactly one of path/kustomize, every model a name, a version and
 *     exactly one of path/url, every registry a prefix and an endpoint and
 *     cert with key; every string is NUL-terminated inside its array. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bld_spec.h"

static int spec_fd = -1;
static char spec_path[64];

#define TERMINATED(a) (strnlen((a), sizeof(a)) < sizeof(a))

static int safe(const char *s)
{
	if (!*s || !strcmp(s, ".") || !strcmp(s, ".."))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._-", *s)))
			return 0;
	return 1;
}

static void check(const bld_spec *s, const uint8_t *data, size_t size)
{
	if (s->text.len != size || (size && memcmp(s->text.data, data, size) != 0))
		abort();
	if (!TERMINATED(s->name) || !TERMINATED(s->version) || !safe(s->name))
		abort();
	if (!s->platforms || !s->platforms[0])
		abort();
	for (size_t i = 0; i < s->n_images; i++) {
		const bld_image_spec *im = &s->images[i];
		if (!TERMINATED(im->ref) || !TERMINATED(im->from) || !im->ref[0] || im->line < 1)
			abort();
		for (char **p = im->platforms; p && *p; p++)
			if (strlen(*p) >= 128)
				abort();
	}
	for (size_t i = 0; i < s->n_manifests; i++) {
		const bld_manifest_spec *m = &s->manifests[i];
		if (!TERMINATED(m->path) || !TERMINATED(m->kustomize) ||
		    !m->path[0] == !m->kustomize[0])
			abort();
	}
	for (size_t i = 0; i < s->n_models; i++) {
		const bld_model_spec *m = &s->models[i];
		if (!TERMINATED(m->name) || !TERMINATED(m->version) || !TERMINATED(m->path) ||
		    !TERMINATED(m->url) || !TERMINATED(m->sha256))
			abort();
		if (!safe(m->name) || !safe(m->version) || !m->path[0] == !m->url[0])
			abort();
	}
	for (size_t i = 0; i < s->n_registries; i++) {
		const bld_registry_spec *r = &s->registries[i];
		if (!TERMINATED(r->prefix) || !TERMINATED(r->endpoint) || !TERMINATED(r->ca) ||
		    !TERMINATED(r->cert) || !TERMINATED(r->key))
			abort();
		if (!r->prefix[0] || !r->endpoint[0] || !r->cert[0] != !r->key[0])
			abort();
		for (size_t j = 0; j < i; j++)
			if (strcmp(s->registries[j].prefix, r->prefix) == 0)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (spec_fd < 0) {
		spec_fd = memfd_create("fuzz-spec", MFD_CLOEXEC);
		if (spec_fd < 0)
			abort();
		snprintf(spec_path, sizeof(spec_path), "/proc/self/fd/%d", spec_fd);
	}
	if (ftruncate(spec_fd, 0) != 0 || pwrite(spec_fd, data, size, 0) != (ssize_t)size)
		abort();

	bld_spec s;
	cm_error err;
	err.msg[0] = '\0';
	int rc = bld_spec_load(&s, spec_path, &err);
	if (rc != 0) {
		if ((rc != CM_EINVAL && rc != CM_EIO && rc != CM_ENOMEM) || !err.msg[0])
			abort();
		if (!strstr(err.msg, spec_path))
			abort(); /* every error names the file */
		if (s.images || s.manifests || s.models || s.registries || s.platforms ||
		    s.text.data)
			abort();
		return 0;
	}
	check(&s, data, size);
	bld_spec_free(&s);
	return 0;
}
