/* ferry-install diff A B: what is in this update? (docs/bundle-format.md
 * "Diff") */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ins_diff.h"
#include "ins_verify.h"

static void print_files(json_t *d, const char *title)
{
	static const char *const kinds[] = {"added", "removed", "changed"};
	static const char marks[] = {'+', '-', '~'};
	printf("%s: %zu added, %zu removed, %zu changed\n", title,
	       json_array_size(json_object_get(d, "added")),
	       json_array_size(json_object_get(d, "removed")),
	       json_array_size(json_object_get(d, "changed")));
	for (size_t k = 0; k < 3; k++) {
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(d, kinds[k]), i, v)
		{
			const char *name = json_string_value(json_object_get(v, "ref"));
			const char *path = json_string_value(json_object_get(v, "path"));
			const char *dg = json_string_value(json_object_get(v, "digest"));
			const char *to = json_string_value(json_object_get(v, "to"));
			printf("  %c %s", marks[k], name ? name : path ? path : "?");
			if (to)
				printf(" %s -> %s", json_string_value(json_object_get(v, "from")),
				       to);
			else if (dg)
				printf(" %s", dg);
			printf(" (%lld bytes)\n",
			       (long long)json_integer_value(json_object_get(v, "size")));
		}
	}
}

int cmd_diff(int argc, char **argv)
{
	const char *pubkey = NULL;
	int insecure = 0, as_json = 0;
	const cmd_opt opts[] = {
	    CMD_S("pubkey", 'p', &pubkey),
	    CMD_F("insecure-skip-signature", 0, &insecure, 1),
	    CMD_F("json", 0, &as_json, 1),
	    CMD_END,
	};
	static const char usage[] =
	    "usage: ferry-install diff A B --pubkey KEY.pub [--json]\n"
	    "       (--insecure-skip-signature instead of --pubkey: digests only)\n"
	    "  A, B: bundles (a file or a volume set) or receipts (ferry-install receipt);\n"
	    "  lists the images, manifests and models B adds, removes or changes against A,\n"
	    "  and the blobs (count, bytes) B has that A lacks\n";
	int c = cmd_opts_parse("diff", argc, argv, opts, usage, 2, 2);
	if (c >= 0)
		return c;
	cm_error err = {0};
	sig_pubkey *key = NULL;
	char fpr[SIG_FPR_LEN + 1];
	int rc = ins_verify_key(&key, fpr, pubkey, insecure, &err);
	json_t *d = NULL;
	if (rc == 0) {
		if (insecure)
			fprintf(stderr, "ferry-install diff: WARNING: signature NOT checked "
					"(--insecure-skip-signature)\n");
		rc = ins_diff(&d, argv[optind], argv[optind + 1], key, &err);
	}
	sig_pubkey_free(key);
	if (rc < 0)
		return cmd_fail("diff", rc, &err, NULL, NULL);
	if (as_json) {
		cmd_print_json(d);
	} else {
		printf("%s -> %s\n", argv[optind], argv[optind + 1]);
		print_files(json_object_get(d, "images"), "images");
		print_files(json_object_get(d, "manifests"), "manifests");
		print_files(json_object_get(d, "models"), "models");
		json_t *bl = json_object_get(d, "blobs");
		printf("blobs: %lld new (%lld bytes), %lld gone (%lld bytes)\n",
		       (long long)json_integer_value(json_object_get(bl, "added")),
		       (long long)json_integer_value(json_object_get(bl, "addedBytes")),
		       (long long)json_integer_value(json_object_get(bl, "removed")),
		       (long long)json_integer_value(json_object_get(bl, "removedBytes")));
	}
	json_decref(d);
	return 0;
}
