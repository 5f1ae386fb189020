/* libFuzzer target: the cosign signature parsers (signing/sig_cosign.c),
 * which read what an upstream registry (a .sig manifest and its
 * simple-signing payloads, at build time under verify.sigstore) or a lab
 * client (containers/image's signature-N files, for check-signature) hands
 * over. fuzz-max-len: 16384
 *
 * Input: one selector byte, then the text: 0 a simple-signing payload, 1 a
 * .sig manifest, 2 a signature-N file.
 *
 * Invariants (abort when broken):
 *   - each answer is 0, or CM_EVERIFY / CM_EINVAL / CM_ENOMEM with a
 *     message, and freeing the results is safe;
 *   - a parsed payload's digest is "sha256:" and 64 lower-case hex digits;
 *   - a parsed manifest lists layers each with a digest, and a layer
 *     without a signature says why;
 *   - a parsed signature file gives a payload no larger than the cap and a
 *     signature annotation. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cm_buf.h"
#include "sig.h"

static void check_rc(int rc, const cm_error *e)
{
	if (rc < 0 && ((rc != CM_EVERIFY && rc != CM_EINVAL && rc != CM_ENOMEM) || !e->msg[0]))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	cm_error e = {0};
	int rc;
	switch (data[0] % 3) {
	case 0: {
		sig_cosign_claims c;
		rc = sig_cosign_payload_parse(&c, p, n, &e);
		check_rc(rc, &e);
		if (rc == 0) {
			if (strncmp(c.digest, "sha256:", 7) != 0 || strlen(c.digest) != 71 ||
			    strspn(c.digest + 7, "0123456789abcdef") != 64)
				abort();
		}
		break;
	}
	case 1: {
		sig_cosign_layer *v = NULL;
		size_t cnt = 0;
		rc = sig_cosign_manifest_layers(&v, &cnt, p, n, &e);
		check_rc(rc, &e);
		if (rc < 0 && (v || cnt))
			abort();
		for (size_t i = 0; rc == 0 && i < cnt; i++)
			if (!v[i].digest[0] || (!v[i].sig_b64 && !v[i].why[0]))
				abort();
		sig_cosign_layers_free(v, cnt);
		break;
	}
	default: {
		cm_buf pl = {0};
		char *sig = NULL;
		rc = sig_cosign_blob_parse(&pl, &sig, p, n, &e);
		check_rc(rc, &e);
		if (rc == 0 && (!sig || pl.len > SIG_COSIGN_PAYLOAD_MAX))
			abort();
		free(sig);
		cm_buf_free(&pl);
		break;
	}
	}
	return 0;
}
