/* libFuzzer target: manifest and index JSON (reg_manifest_parse).
 * fuzz-max-len: 16384
 *
 * Input: the document's bytes. Each input is parsed once per transport
 * media type (none, the OCI and Docker manifest and index types, the CNCF
 * model type, both schema 1 types and an unknown one), since the
 * Content-Type steers the parser.
 *
 * Invariants (abort when broken):
 *   - failure is a negative CM_E* code with a message, and leaves no items;
 *   - success gives n_items <= REG_MANIFEST_MAX_ITEMS, items non-NULL,
 *     is_index exactly when the media type is an index type, a manifest
 *     media type otherwise, a parsed config for a manifest;
 *   - every descriptor's strings are NUL-terminated in their arrays, and its
 *     digest is canonical (reg_digest_parse accepts it unchanged);
 *   - schema 1 is never accepted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reg_manifest.h"

static const char *const types[] = {
    NULL,
    REG_MT_OCI_MANIFEST,
    REG_MT_OCI_INDEX,
    REG_MT_DOCKER_MANIFEST,
    REG_MT_DOCKER_LIST,
    "application/vnd.cncf.model.manifest.v1+json",
    REG_MT_DOCKER_SCHEMA1,
    REG_MT_DOCKER_SCHEMA1_SIGNED,
    "text/plain",
};

static void check_desc(const reg_desc *d)
{
	if (strnlen(d->media_type, sizeof(d->media_type)) == sizeof(d->media_type) ||
	    strnlen(d->platform, sizeof(d->platform)) == sizeof(d->platform) ||
	    strnlen(d->title, sizeof(d->title)) == sizeof(d->title) ||
	    strnlen(d->digest.s, sizeof(d->digest.s)) == sizeof(d->digest.s))
		abort();
	reg_digest again;
	cm_error err;
	if (reg_digest_parse(&again, d->digest.s, &err) != 0 || strcmp(again.s, d->digest.s) != 0)
		abort();
	if (d->size > (uint64_t)INT64_MAX)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		reg_manifest m;
		cm_error err;
		err.msg[0] = '\0';
		int rc = reg_manifest_parse(&m, data, size, types[t], &err);
		if (rc != 0) {
			if (rc > 0 || !err.msg[0] || m.items || m.n_items)
				abort();
			continue;
		}
		if (t == 6 || t == 7)
			abort(); /* schema 1 by Content-Type */
		if (strnlen(m.media_type, sizeof(m.media_type)) == sizeof(m.media_type))
			abort();
		if (m.is_index != reg_media_type_is_index(m.media_type))
			abort();
		if (!m.is_index && !reg_media_type_is_manifest(m.media_type))
			abort();
		if (!m.items || m.n_items > REG_MANIFEST_MAX_ITEMS)
			abort();
		if (!m.is_index)
			check_desc(&m.config);
		for (size_t i = 0; i < m.n_items; i++)
			check_desc(&m.items[i]);
		reg_manifest_free(&m);
		if (m.items || m.n_items)
			abort();
	}
	return 0;
}
