#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_file.h"
#include "cmd.h"
#include "ins_install.h"
#include "ins_mirror.h"

static const char usage_text[] =
    "usage: ferry-install push BUNDLE --pubkey KEY.pub --to HOST[:PORT][/PREFIX] [options]\n"
    "\n"
    "Copy every image of a verified bundle into an existing registry (OKD internal\n"
    "or mirror registry, Quay, Harbor, distribution) as [PREFIX/]<upstream-host>/<path>,\n"
    "straight from the bundle: blobs already there are skipped (HEAD), shared ones are\n"
    "mounted across repositories, children are pushed before their index. Every member\n"
    "is hashed once, while it is pushed; a manifest is put only after everything it\n"
    "references matched its digest (a mismatch: exit 2). Signatures, attestations\n"
    "and SBOMs go after their image: by tag, or by digest where the registry has\n"
    "the OCI 1.1 referrers API (docs/supply-chain.md).\n"
    "\n"
    "  --base OLD.tar            a delta's base (repeatable, at most 64; verified in full,\n"
    "                            signed by the same key): the blobs the delta leaves out\n"
    "                            that the target lacks come from its bases; one found\n"
    "                            nowhere is named and nothing is pushed (exit 2)\n"
    "  --plain-http              talk HTTP, not HTTPS\n"
    "  --ca FILE                 trust this CA for the registry\n"
    "  --realm-credentials HOST  send the registry's credentials to its token realm on\n"
    "                            HOST, another host than the registry (repeatable, at\n"
    "                            most 8); without it such a realm gets no credentials\n"
    "  --jobs N                  blobs pushed in parallel, across images (default 4)\n"
    "  --no-idle-hash            no idle-time hashing: each upload hashes its own blob\n"
    "                            (by default one thread per CPU, at idle priority,\n"
    "                            hashes the blobs that go last while CPUs would idle)\n"
    "  --format F -o DIR         then write mirror configuration for it\n"
    "                            (containerd | registries.conf | okd, as mirror-config)\n"
    "  --insecure-skip-signature check digests only\n"
    "  --quiet                   print only warnings and the summary\n"
    "credentials: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json, ~/.docker/config.json\n";

static void say(void *ud, int level, const char *msg)
{
	int quiet = *(int *)ud;
	if (level == INS_SAY_WARN)
		fprintf(stderr, "ferry-install push: warning: %s\n", msg);
	else if (!quiet && level != INS_SAY_CMD)
		printf("%s\n", msg);
	fflush(stdout);
}

int cmd_push(int argc, char **argv)
{
	ins_install_opts o;
	memset(&o, 0, sizeof(o));
	o.jobs = 4;
	o.mode = INS_MODE_PUSH;
	o.target = INS_T_CONTAINERD;
	const char *format = NULL, *outdir = NULL;
	int quiet = 0;
	const char *realm_creds[8];
	const char *bases[64];
	const cmd_opt opts[] = {
	    CMD_S("pubkey", 'p', &o.pubkey),
	    CMD_S("to", 't', &o.push_to),
	    CMD_L("base", bases, &o.n_bases, 64, "--base: at most 64"),
	    CMD_F("plain-http", 0, &o.push_insecure, 1),
	    CMD_F("no-idle-hash", 0, &o.push_no_idle_hash, 1),
	    CMD_S("ca", 'c', &o.ca),
	    CMD_REALM("realm-credentials", realm_creds, &o.n_realm_creds),
	    CMD_I("jobs", 'j', &o.jobs, 1, 64, "--jobs is 1..64"),
	    CMD_S("format", 'f', &format),
	    CMD_S("output", 'o', &outdir),
	    CMD_F("insecure-skip-signature", 0, &o.insecure_skip_signature, 1),
	    CMD_F("quiet", 'q', &quiet, 1),
	    CMD_END,
	};
	int c = cmd_opts_parse("push", argc, argv, opts, usage_text, 1, 1);
	if (c >= 0)
		return c;
	o.bases = bases;
	o.realm_creds = realm_creds;
	if (!o.push_to || (!o.pubkey && !o.insecure_skip_signature) || (!format) != (!outdir)) {
		fputs(usage_text, stderr);
		return 64;
	}
	cm_error terr = {0};
	if (ins_push_check_target(o.push_to, &terr) < 0)
		return cmd_usage_error("push", "--to: %s", terr.msg);
	ins_mirror_format mf = INS_MF_CONTAINERD;
	if (format && ins_mirror_format_parse(&mf, format) < 0)
		return cmd_usage_error("push", "--format is containerd, registries.conf or okd");
	signal(SIGPIPE, SIG_IGN);
	o.bundle = argv[optind];
	cm_error err = {0};
	if (o.insecure_skip_signature)
		fprintf(stderr,
			"ferry-install push: WARNING: signature NOT checked "
			"(--insecure-skip-signature): anyone could have made this bundle\n");
	ins_ctx pc = {0, say, &quiet};
	ins_bundle b;
	/* signature, SHA256SUMS, metadata and the member index now; every
	 * other member is hashed while it is pushed (ins_push_bundle) */
	ins_bundle_opts bo = {o.pubkey, o.insecure_skip_signature, 1, 0};
	double t0 = ins_now();
	int rc = ins_bundle_open(&b, o.bundle, &bo, &err);
	ins_push_stats st;
	memset(&st, 0, sizeof(st));
	if (rc < 0)
		cm_error_wrap(&err, "verify");
	if (rc == 0 && (rc = ins_push_bundle(&st, &pc, &b, &o, &err)) < 0)
		cm_error_wrap(&err, "push to %s", o.push_to);
	if (rc == 0 && format) {
		cm_buf ca = CM_BUF_INIT;
		ins_mfiles files;
		memset(&files, 0, sizeof(files));
		if (o.ca)
			rc = cm_file_read(&ca, o.ca, (size_t)1 << 20, &err);
		ins_mirror_opts mo = {o.push_to, ca.data, o.push_insecure, b.name, NULL};
		if (rc == 0)
			rc = ins_mirror_render(&files, b.images, b.n_images, mf, &mo, &err);
		if (rc == 0)
			rc = ins_mirror_write(&files, outdir, &err);
		for (size_t i = 0; rc == 0 && i < files.n; i++)
			printf("wrote %s/%s\n", outdir, files.v[i].path);
		ins_mfiles_free(&files);
		cm_buf_free(&ca);
	}
	double secs = ins_now() - t0;
	if (rc == 0)
		printf("pushed %llu images to %s in %.2fs: %llu blobs uploaded (%llu bytes), %llu "
		       "already there, %llu mounted, %llu manifests put; %llu referrers pushed, "
		       "%llu already there%s%s\n",
		       (unsigned long long)st.images, o.push_to, secs,
		       (unsigned long long)st.blobs_uploaded, (unsigned long long)st.bytes_uploaded,
		       (unsigned long long)st.blobs_skipped, (unsigned long long)st.blobs_mounted,
		       (unsigned long long)st.manifests_put,
		       (unsigned long long)st.referrers_pushed,
		       (unsigned long long)st.referrers_present,
		       st.referrers_api ? " (referrers API)" : "",
		       o.insecure_skip_signature
			   ? " (signature NOT checked: --insecure-skip-signature)"
			   : "");
	ins_bundle_close(&b);
	return rc < 0 ? cmd_fail("push", rc, &err, o.bundle,
				 "no manifest or tag that references unverified content was pushed")
		      : 0;
}
