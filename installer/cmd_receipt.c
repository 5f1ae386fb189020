/* ferry-install receipt: what the lab holds, as a receipt file
 * (docs/bundle-format.md "Receipts") for `ferry-build build --base`. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "ins_receipt.h"
#include "ins_verify.h"

int cmd_receipt(int argc, char **argv)
{
	const char *out = NULL, *pubkey = NULL, *sock = NULL, *ns = NULL, *reg = NULL, *ca = NULL;
	const char *realm_creds[8];
	size_t n_realm = 0;
	int insecure = 0, nb = 0, plain = 0;
	const cmd_opt opts[] = {
	    CMD_S("output", 'o', &out),
	    CMD_F("bundle", 0, &nb, 1),
	    CMD_S("pubkey", 'p', &pubkey),
	    CMD_F("insecure-skip-signature", 0, &insecure, 1),
	    CMD_S("containerd", 0, &sock),
	    CMD_S("namespace", 0, &ns),
	    CMD_S("registry", 0, &reg),
	    CMD_F("plain-http", 0, &plain, 1),
	    CMD_S("ca", 0, &ca),
	    CMD_REALM("realm-credentials", realm_creds, &n_realm),
	    CMD_END,
	};
	static const char usage[] =
	    "usage: ferry-install receipt -o RECEIPT.json --pubkey KEY.pub --bundle B...\n"
	    "       (--insecure-skip-signature instead of --pubkey: digests only)\n"
	    "       ferry-install receipt -o RECEIPT.json --containerd SOCK [--namespace NS]\n"
	    "       (a node's images and content store, through ctr; NS default k8s.io)\n"
	    "       ferry-install receipt -o RECEIPT.json --registry HOST[:PORT][/PREFIX]\n"
	    "                             [--plain-http] [--ca FILE]\n"
	    "       (a registry's catalog, tags and manifests under PREFIX, as push lays\n"
	    "       them out; credentials as push finds them)\n"
	    "  --plain-http              talk HTTP, not HTTPS, to --registry\n"
	    "  --ca FILE                 PEM bundle that verifies --registry's certificate\n"
	    "  --realm-credentials HOST  send --registry's credentials to its token realm on\n"
	    "                            HOST, another host than the registry (repeatable, at\n"
	    "                            most 8); without it such a realm gets no credentials\n"
	    "credentials: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json, ~/.docker/config.json\n"
	    "  lists the bundles' identities, images and blobs (docs/bundle-format.md "
	    "\"Receipts\")\n";
	int c = cmd_opts_parse("receipt", argc, argv, opts, usage, 0, -1);
	if (c >= 0)
		return c;
	if (!out || (!nb && !sock && !reg) || (nb && optind >= argc) || (!nb && optind != argc) ||
	    ((plain || ca || n_realm) && !reg)) {
		fputs(usage, stderr);
		return 64;
	}
	cm_error err = {0};
	sig_pubkey *key = NULL;
	char fpr[SIG_FPR_LEN + 1];
	int rc = nb ? ins_verify_key(&key, fpr, pubkey, insecure, &err) : 0;
	if (rc < 0)
		return cmd_fail("receipt", rc, &err, NULL, NULL);
	if (nb && insecure)
		fprintf(stderr, "ferry-install receipt: WARNING: signature NOT checked "
				"(--insecure-skip-signature)\n");
	reg_receipt r;
	memset(&r, 0, sizeof(r));
	if (sock)
		rc = ins_receipt_add_containerd(&r, sock, ns, &err);
	if (rc == 0 && reg) {
		ins_receipt_registry_opts ro = {.to = reg,
						.plain = plain,
						.ca = ca,
						.realm_creds = realm_creds,
						.n_realm_creds = n_realm};
		rc = ins_receipt_add_registry(&r, &ro, &err);
	}
	for (int i = optind; rc == 0 && nb && i < argc; i++) {
		ins_rbundle b;
		if ((rc = ins_rbundle_open(&b, argv[i], key, 0, &err)) < 0)
			break;
		rc = ins_receipt_add_bundle(&r, &b, &err);
		ins_rbundle_close(&b);
		if (rc < 0)
			cm_error_wrap(&err, "%s", argv[i]);
	}
	if (rc == 0)
		rc = reg_receipt_save(&r, out, &err);
	if (rc == 0)
		printf("wrote %s: %zu bundles, %zu images, %zu blobs\n", out, r.n_bundles,
		       r.n_images, r.n_blobs);
	reg_receipt_free(&r);
	sig_pubkey_free(key);
	return rc < 0 ? cmd_fail("receipt", rc, &err, NULL, NULL) : 0;
}
