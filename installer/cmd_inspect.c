#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ins_install_bundle.h"
#include "ins_verify.h"
#include "reg_bundle.h"
#include "ins_tools.h"

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* What bundle.json's referrers (docs/supply-chain.md) hold for the image
 * of digest d: {type, digest, size, tag} each (a fallback index counts
 * as the artifacts it lists). */
static json_t *image_referrers(json_t *b, const char *d)
{
	static const char *const names[][2] = {
	    {"sig", "signature"}, {"att", "attestation"}, {"sbom", "sbom"}};
	json_t *out = json_array(), *e;
	size_t i;
	json_array_foreach(json_object_get(b, "referrers"), i, e)
	{
		if (strcmp(str(e, "subject"), d) != 0)
			continue;
		const char *tag = strrchr(str(e, "ref"), ':');
		tag = tag ? tag + 1 : "";
		json_t *arts = json_object_get(e, "artifacts");
		if (strcmp(str(e, "kind"), "index") == 0) {
			size_t k;
			json_t *a;
			json_array_foreach(arts, k, a) json_array_append_new(
			    out, json_pack("{s:s,s:s,s:O,s:s}", "type",
					   str(a, "artifactType")[0] ? str(a, "artifactType")
								     : "unknown",
					   "digest", str(a, "digest"), "size",
					   json_object_get(a, "size"), "tag", tag));
			continue;
		}
		const char *type = str(e, "kind");
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			if (strcmp(type, names[k][0]) == 0)
				type = names[k][1];
		json_array_append_new(out, json_pack("{s:s,s:s,s:O,s:s}", "type", type, "digest",
						     str(e, "digest"), "size",
						     json_object_get(e, "size"), "tag", tag));
	}
	return out;
}

static void print_text(json_t *b, const ins_bundle *r, int sig_checked, int head)
{
	char h[32];
	printf("bundle   %s %s\n", str(b, "name"), str(b, "version"));
	printf("created  %s by %s\n", str(b, "created"), str(b, "builder"));
	printf("signer   %s (%s)\n", str(b, "signer"),
	       sig_checked ? "signature verified"
			   : "signature NOT checked (--insecure-skip-signature): anyone could have "
			     "made this bundle");
	cmd_human(h, sizeof(h), (double)r->file_size);
	if (head)
		printf("read     the head only (SHA256SUMS, its signature, bundle.json) of a file "
		       "of %s: nothing after it was checked\n",
		       h);
	else
		printf("size     %s (%llu bytes)\n", h, (unsigned long long)r->file_size);
	json_t *imgs = json_object_get(b, "images"), *e;
	size_t i;
	printf("\nimages (%zu):\n", json_array_size(imgs));
	json_array_foreach(imgs, i, e)
	{
		cmd_human(h, sizeof(h), (double)json_integer_value(json_object_get(e, "size")));
		json_t *pl = json_object_get(e, "platforms");
		char plats[256] = "";
		size_t j;
		json_t *p;
		json_array_foreach(pl, j, p)
		{
			size_t l = strlen(plats);
			snprintf(plats + l, sizeof(plats) - l, "%s%s", l ? "," : "",
				 json_string_value(p));
		}
		printf("  %s\n    %s  %s%s%s\n", str(e, "ref"), str(e, "digest"), h,
		       plats[0] ? "  " : "", plats);
		/* the build's signature policy passed it (docs/supply-chain.md) */
		if (json_string_value(json_object_get(e, "verified")))
			printf("    signature policy passed at build time (%s)\n",
			       str(e, "verified"));
		json_t *rf = image_referrers(b, str(e, "digest")), *x;
		json_array_foreach(rf, j, x)
		{
			cmd_human(h, sizeof(h),
				  (double)json_integer_value(json_object_get(x, "size")));
			printf("    referrer %s  %s  %s  (tag %s)\n", str(x, "type"),
			       str(x, "digest"), h, str(x, "tag"));
		}
		json_decref(rf);
	}
	json_t *ms = json_object_get(b, "manifests");
	printf("\nmanifests (%zu):\n", json_array_size(ms));
	json_array_foreach(ms, i, e)
	{
		cmd_human(h, sizeof(h), (double)json_integer_value(json_object_get(e, "size")));
		printf("  %s  %s\n", str(e, "path"), h);
	}
	json_t *mo = json_object_get(b, "models");
	printf("\nmodels (%zu files):\n", json_array_size(mo));
	json_array_foreach(mo, i, e)
	{
		cmd_human(h, sizeof(h), (double)json_integer_value(json_object_get(e, "size")));
		printf("  %s:%s  %s  %s\n", str(e, "name"), str(e, "version"), str(e, "path"), h);
	}
}

/* --head: SHA256SUMS, its signature and bundle.json only, from the start
 * of the file or the first part of a set (the other parts need not be
 * there). */
static int open_head(ins_bundle *r, const char *bundle, const ins_bundle_opts *o, cm_error *err)
{
	memset(r, 0, sizeof(*r));
	sig_pubkey *key = NULL;
	int rc = ins_verify_key(&key, r->fingerprint, o->pubkey, o->insecure_skip_signature, err);
	if (rc < 0)
		return rc;
	r->insecure = key == NULL;
	reg_bundle_opts bo = {.check_sig = key ? ins_verify_check_sig : NULL, .ctx = key};
	cm_buf j = CM_BUF_INIT;
	uint64_t size = 0;
	rc = reg_bundle_read_head(&j, &size, bundle, &bo, err);
	sig_pubkey_free(key);
	if (rc == 0) {
		r->file_size = size;
		r->bundle_json_len = j.len;
		r->bundle_json = cm_buf_detach(&j);
	}
	cm_buf_free(&j);
	return rc;
}

int cmd_inspect(int argc, char **argv)
{
	ins_bundle_opts o;
	memset(&o, 0, sizeof(o));
	o.metadata_only = 1;
	int as_json = 0, head = 0;
	const cmd_opt opts[] = {
	    CMD_S("pubkey", 'p', &o.pubkey),
	    CMD_F("insecure-skip-signature", 0, &o.insecure_skip_signature, 1),
	    CMD_F("json", 'j', &as_json, 1),
	    CMD_F("head", 0, &head, 1),
	    CMD_END,
	};
	static const char usage[] =
	    "usage: ferry-install inspect BUNDLE --pubkey KEY.pub [--json]\n"
	    "       ferry-install inspect BUNDLE --insecure-skip-signature [--json]\n"
	    "  BUNDLE: a file, or a volume set by its first part (B.tar.000) or prefix\n"
	    "  --head  read only SHA256SUMS, its signature and bundle.json (the first part\n"
	    "          of a set suffices); nothing after them is checked\n";
	int c = cmd_opts_parse("inspect", argc, argv, opts, usage, 1, 1);
	if (c >= 0)
		return c;
	const char *bundle = argv[optind];
	cm_error err = {0};
	if (o.insecure_skip_signature)
		fprintf(stderr, "ferry-install inspect: WARNING: signature NOT checked "
				"(--insecure-skip-signature)\n");
	ins_bundle r;
	int rc = head ? open_head(&r, bundle, &o, &err) : ins_bundle_open(&r, bundle, &o, &err);
	/* the installer it carries: its version from its verified bytes */
	const ins_member *tm = rc == 0 ? ins_tools_installer(&r) : NULL;
	char tv[CM_VERSION_MAX] = "";
	if (tm)
		rc = ins_tools_version(tv, &r, tm, &err);
	if (rc < 0) {
		ins_bundle_close(&r);
		return cmd_fail("inspect", rc, &err, NULL, NULL);
	}
	json_error_t je;
	json_t *b = json_loadb(r.bundle_json, r.bundle_json_len, 0, &je);
	int sig_checked = !r.insecure;
	if (as_json) {
		if (head)
			json_object_set_new(b, "headOnly", json_true());
		else
			json_object_set_new(b, "bundleSize", json_integer((json_int_t)r.file_size));
		json_object_set_new(b, "signatureVerified", json_boolean(sig_checked));
		if (!sig_checked)
			json_object_set_new(b, "insecureSkipSignature", json_true());
		json_object_del(b, "spec");
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(b, "images"), i, e)
		    json_object_set_new(e, "referrers", image_referrers(b, str(e, "digest")));
		if (tm)
			json_object_set_new(b, "installer",
					    json_pack("{s:s,s:s,s:I}", "path", tm->path, "version",
						      tv[0] ? tv : "unknown", "size",
						      (json_int_t)tm->size));
		cmd_print_json(b);
	} else {
		print_text(b, &r, sig_checked, head);
		if (tm) {
			char h[32];
			cmd_human(h, sizeof(h), (double)tm->size);
			printf("\ninstaller:\n  %s  ferry-install %s  %s\n", tm->path,
			       tv[0] ? tv : "(version unknown)", h);
		}
	}
	json_decref(b);
	ins_bundle_close(&r);
	return 0;
}
