/* ferry-install receipt: what the lab holds, as a receipt file
 * (docs/bundle-format.md "Receipts") for `ferry-build build --base`. */
#include <getopt.h>
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
	static const struct option opts[] = {
	    {"output", required_argument, NULL, 'o'},
	    {"bundle", no_argument, NULL, 'b'},
	    {"pubkey", required_argument, NULL, 'p'},
	    {"insecure-skip-signature", no_argument, NULL, 'S'},
	    {"containerd", required_argument, NULL, 'C'},
	    {"namespace", required_argument, NULL, 'N'},
	    {"registry", required_argument, NULL, 'r'},
	    {"plain-http", no_argument, NULL, 'P'},
	    {"ca", required_argument, NULL, 'c'},
	    {"realm-credentials", required_argument, NULL, 'R'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const char usage[] =
	    "usage: ferry-install receipt -o RECEIPT.json --pubkey KEY.pub --bundle B...\n"
	    "       (--insecure-skip-signature instead of --pubkey: digests only)\n"
	    "       ferry-install receipt -o RECEIPT.json --containerd SOCK [--namespace NS]\n"
	    "       (a node's images and content store, through ctr; NS default k8s.io)\n"
	    "       ferry-install receipt -o RECEIPT.json --registry HOST[:PORT][/PREFIX]\n"
	    "                             [--plain-http] [--ca FILE] [--realm-credentials HOST]\n"
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
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'b':
			nb = 1;
			break;
		case 'p':
			pubkey = optarg;
			break;
		case 'S':
			insecure = 1;
			break;
		case 'C':
			sock = optarg;
			break;
		case 'N':
			ns = optarg;
			break;
		case 'r':
			reg = optarg;
			break;
		case 'P':
			plain = 1;
			break;
		case 'c':
			ca = optarg;
			break;
		case 'R': /* as push: a host or host:port */
			if (n_realm == sizeof(realm_creds) / sizeof(realm_creds[0]) || !optarg[0] ||
			    strcspn(optarg, "/ @?#") != strlen(optarg)) {
				fprintf(stderr,
					"ferry-install receipt: --realm-credentials takes a "
					"host or host:port, at most 8 times\n");
				return 64;
			}
			realm_creds[n_realm++] = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 64;
		}
	}
	if (!out || (!nb && !sock && !reg) || (nb && optind >= argc) || (!nb && optind != argc) ||
	    ((plain || ca || n_realm) && !reg)) {
		fputs(usage, stderr);
		return 64;
	}
	cm_error err = {0};
	sig_pubkey *key = NULL;
	char fpr[SIG_FPR_LEN + 1];
	int rc = nb ? ins_verify_key(&key, fpr, pubkey, insecure, &err) : 0;
	if (rc < 0) {
		fprintf(stderr, "ferry-install receipt: %s\n", err.msg);
		return cm_exit_code(rc);
	}
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
	if (rc < 0) {
		fprintf(stderr, "ferry-install receipt: %s\n", err.msg);
	} else
		printf("wrote %s: %zu bundles, %zu images, %zu blobs\n", out, r.n_bundles,
		       r.n_images, r.n_blobs);
	reg_receipt_free(&r);
	sig_pubkey_free(key);
	return rc < 0 ? cm_exit_code(rc) : 0;
}
