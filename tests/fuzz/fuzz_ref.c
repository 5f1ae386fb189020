/* libFuzzer target: image references (registry/reg_ref.c).
 * fuzz-max-len: 1024
 *
 * Input: the reference (bytes after a NUL are cut off, as a C string is).
 *
 * Invariants (abort when broken):
 *   - parse either fails with CM_EINVAL and a message, or succeeds with
 *     every field NUL-terminated inside its array;
 *   - a parsed reference is printable: reg_ref_string and reg_ref_repo fit
 *     a buffer of REG_REF_MAX + 1 bytes;
 *   - the round trip is exact: parse(string(parse(x))) == parse(x), and
 *     string() of that is the same string again;
 *   - the parts are valid on their own: reg_ref_valid_path(path), a tag
 *     passes reg_ref_valid_tag, a digest is "sha256:" + 64 lowercase hex;
 *   - a reference has a tag or a digest (normalisation adds "latest"). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reg_ref.h"

static void same(const reg_ref *a, const reg_ref *b)
{
	if (strcmp(a->host, b->host) || strcmp(a->path, b->path) || strcmp(a->tag, b->tag) ||
	    strcmp(a->digest, b->digest))
		abort();
}

static void terminated(const reg_ref *r)
{
	if (strnlen(r->host, sizeof(r->host)) == sizeof(r->host) ||
	    strnlen(r->path, sizeof(r->path)) == sizeof(r->path) ||
	    strnlen(r->tag, sizeof(r->tag)) == sizeof(r->tag) ||
	    strnlen(r->digest, sizeof(r->digest)) == sizeof(r->digest))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1);
	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';

	reg_ref r, r2;
	cm_error err;
	err.msg[0] = '\0';
	int rc = reg_ref_parse(&r, in, &err);
	if (rc != 0) {
		if (rc != CM_EINVAL || !err.msg[0] ||
		    strnlen(err.msg, sizeof(err.msg)) == sizeof(err.msg))
			abort();
		free(in);
		return 0;
	}
	terminated(&r);
	if (!r.host[0] || !r.path[0] || (!r.tag[0] && !r.digest[0]))
		abort();
	if (!reg_ref_valid_path(r.path))
		abort();
	if (r.tag[0] && !reg_ref_valid_tag(r.tag))
		abort();
	if (r.digest[0]) {
		if (strlen(r.digest) != 71 || strncmp(r.digest, "sha256:", 7) != 0)
			abort();
		for (const char *p = r.digest + 7; *p; p++)
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
				abort();
	}

	char s1[REG_REF_MAX + 1], s2[REG_REF_MAX + 1], repo[REG_REF_MAX + 1];
	if (reg_ref_string(s1, sizeof(s1), &r) != 0 || reg_ref_repo(repo, sizeof(repo), &r) != 0)
		abort();
	if (strncmp(s1, repo, strlen(repo)) != 0)
		abort();
	if (reg_ref_parse(&r2, s1, &err) != 0)
		abort(); /* err.msg says why */
	same(&r, &r2);
	if (reg_ref_string(s2, sizeof(s2), &r2) != 0 || strcmp(s1, s2) != 0)
		abort();
	free(in);
	return 0;
}
