/* ferry-install check-signature: check the cosign signatures a real client
 * fetched (docs/supply-chain.md, "Checking signatures in the lab"). DIR is a
 * skopeo `dir:` copy made with use-sigstore-attachments: manifest.json and
 * the signature-N files containers/image writes. A signature passes when it
 * verifies with the key, signs the manifest's digest (or --digest: the
 * index a multi-platform image was signed as) and its identity matches
 * --identity. Exit 0 when one passes, 2 when none does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cm_file.h"
#include "cmd.h"
#include "reg_digest.h"
#include "sig.h"

#define SIGFILE_MAX ((size_t)256 << 10)
#define SIGFILES_MAX 256

/* A file of the dir: copy (untrusted): a regular file, not a link, FIFO or
 * device (a FIFO would block the read forever). */
static int read_member(cm_buf *out, const char *path, size_t limit, cm_error *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return cm_error_sys(err, errno, "opening %s", path);
	if (!S_ISREG(st.st_mode))
		return cm_error_set(err, CM_EVERIFY, "%s is not a regular file", path);
	return cm_file_read(out, path, limit, err);
}

int cmd_check_signature(int argc, char **argv)
{
	const char *keyp = NULL, *pattern = NULL, *want = NULL;
	const cmd_opt opts[] = {
	    CMD_S("key", 0, &keyp),
	    CMD_S("identity", 0, &pattern),
	    CMD_S("digest", 0, &want),
	    CMD_END,
	};
	static const char usage[] =
	    "usage: ferry-install check-signature --key COSIGN.pub [--identity PATTERN] "
	    "[--digest DIGEST] DIR\n"
	    "  DIR: a skopeo dir: copy (manifest.json, signature-N) made with\n"
	    "  use-sigstore-attachments: true; --key: the cosign public key (ECDSA P-256 or\n"
	    "  Ed25519); --identity: a glob the signed docker-reference must match;\n"
	    "  --digest: the digest the image was signed as (default: manifest.json's)\n";
	int c = cmd_opts_parse("check-signature", argc, argv, opts, usage, 1, 1);
	if (c >= 0)
		return c;
	if (!keyp) {
		fputs(usage, stderr);
		return 64;
	}
	const char *dir = argv[optind];
	cm_error err = {0};
	sig_cosign_key *k = NULL;
	reg_digest d;
	char path[4200];
	int rc = 0;
	if (want && (rc = reg_digest_parse(&d, want, &err)) < 0) {
		fprintf(stderr, "ferry-install check-signature: --digest: %s\n", err.msg);
		return 64;
	}
	if ((rc = sig_cosign_key_load(&k, keyp, &err)) < 0) {
		fprintf(stderr, "ferry-install check-signature: %s\n", err.msg);
		return cm_exit_code(rc);
	}
	if (!want) {
		cm_buf m = CM_BUF_INIT;
		snprintf(path, sizeof(path), "%s/manifest.json", dir);
		if ((rc = read_member(&m, path, SIG_COSIGN_MANIFEST_MAX, &err)) == 0)
			rc = reg_digest_buf(&d, m.data, m.len, &err);
		cm_buf_free(&m);
		if (rc < 0) {
			fprintf(stderr, "ferry-install check-signature: %s\n", err.msg);
			sig_cosign_key_free(k);
			return cm_exit_code(rc);
		}
	}
	printf("image %s, %s key %s\n", d.s, sig_cosign_key_type(k), sig_cosign_key_fingerprint(k));
	int n = 0, passed = 0;
	for (int i = 1; i <= SIGFILES_MAX; i++) {
		snprintf(path, sizeof(path), "%s/signature-%d", dir, i);
		cm_buf b = CM_BUF_INIT, payload = CM_BUF_INIT;
		char *sig = NULL;
		sig_cosign_claims cl;
		rc = read_member(&b, path, SIGFILE_MAX, &err);
		if (rc < 0 && err.sys_errno == ENOENT) {
			cm_buf_free(&b);
			break;
		}
		n++;
		if (rc == 0)
			rc = sig_cosign_blob_parse(&payload, &sig, b.data, b.len, &err);
		if (rc == 0)
			rc = sig_cosign_check(&cl, k, payload.data, payload.len, sig, d.s, pattern,
					      &err);
		if (rc == 0) {
			passed++;
			printf("signature-%d: passed (identity %s)\n", i, cl.identity);
		} else {
			printf("signature-%d: refused: %s\n", i, err.msg);
		}
		free(sig);
		cm_buf_free(&payload);
		cm_buf_free(&b);
		if (rc == CM_ENOMEM)
			break;
	}
	sig_cosign_key_free(k);
	if (!n)
		printf("no signature-N files in %s (was the copy made with "
		       "use-sigstore-attachments: true?)\n",
		       dir);
	printf("%s: %d of %d signatures passed\n", passed ? "ok" : "refused", passed, n);
	return passed ? 0 : 2;
}
