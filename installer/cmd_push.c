#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cm_file.h"
#include "cm_parse.h"
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
	static const struct option opts[] = {
	    {"pubkey", required_argument, NULL, 'p'},
	    {"to", required_argument, NULL, 't'},
	    {"base", required_argument, NULL, 'B'},
	    {"plain-http", no_argument, NULL, 'P'},
	    {"no-idle-hash", no_argument, NULL, 'I'},
	    {"ca", required_argument, NULL, 'c'},
	    {"realm-credentials", required_argument, NULL, 'R'},
	    {"jobs", required_argument, NULL, 'j'},
	    {"format", required_argument, NULL, 'f'},
	    {"output", required_argument, NULL, 'o'},
	    {"insecure-skip-signature", no_argument, NULL, 'S'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	long v;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:t:c:j:f:o:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o.pubkey = optarg;
			break;
		case 't':
			o.push_to = optarg;
			break;
		case 'B':
			if (o.n_bases == sizeof(bases) / sizeof(bases[0])) {
				fprintf(stderr, "ferry-install push: --base: at most 64\n");
				return 64;
			}
			bases[o.n_bases++] = optarg;
			o.bases = bases;
			break;
		case 'P':
			o.push_insecure = 1;
			break;
		case 'I':
			o.push_no_idle_hash = 1;
			break;
		case 'c':
			o.ca = optarg;
			break;
		case 'R':
			if (o.n_realm_creds == sizeof(realm_creds) / sizeof(realm_creds[0]) ||
			    !optarg[0] || strcspn(optarg, "/ @?#") != strlen(optarg)) {
				fprintf(stderr, "ferry-install push: --realm-credentials takes a "
						"host or host:port, at most 8 times\n");
				return 64;
			}
			realm_creds[o.n_realm_creds++] = optarg;
			o.realm_creds = realm_creds;
			break;
		case 'j':
			if (cm_parse_long(&v, optarg, 1, 64) < 0) {
				fprintf(stderr, "ferry-install push: --jobs is 1..64\n");
				return 64;
			}
			o.jobs = (int)v;
			break;
		case 'f':
			format = optarg;
			break;
		case 'o':
			outdir = optarg;
			break;
		case 'S':
			o.insecure_skip_signature = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 64;
		}
	}
	if (optind + 1 != argc || !o.push_to || (!o.pubkey && !o.insecure_skip_signature) ||
	    (!format) != (!outdir)) {
		fputs(usage_text, stderr);
		return 64;
	}
	cm_error terr = {0};
	if (ins_push_check_target(o.push_to, &terr) < 0) {
		fprintf(stderr, "ferry-install push: --to: %s\n", terr.msg);
		return 64;
	}
	ins_mirror_format mf = INS_MF_CONTAINERD;
	if (format) {
		if (strcmp(format, "containerd") == 0)
			mf = INS_MF_CONTAINERD;
		else if (strcmp(format, "registries.conf") == 0)
			mf = INS_MF_REGISTRIES;
		else if (strcmp(format, "okd") == 0)
			mf = INS_MF_OKD;
		else {
			fprintf(
			    stderr,
			    "ferry-install push: --format is containerd, registries.conf or okd\n");
			return 64;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	o.bundle = argv[optind];
	o.say = say;
	o.say_ud = &quiet;
	cm_error err = {0};
	if (o.insecure_skip_signature)
		fprintf(stderr,
			"ferry-install push: WARNING: signature NOT checked "
			"(--insecure-skip-signature): anyone could have made this bundle\n");
	ins_bundle b;
	/* signature, SHA256SUMS, metadata and the member index now; every
	 * other member is hashed while it is pushed (ins_push_bundle) */
	ins_bundle_opts bo = {o.pubkey, o.insecure_skip_signature, 1, 0};
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = ins_bundle_open(&b, o.bundle, &bo, &err);
	ins_push_stats st;
	memset(&st, 0, sizeof(st));
	if (rc < 0)
		cm_error_wrap(&err, "verify");
	if (rc == 0 && (rc = ins_push_bundle(&st, &b, &o, &err)) < 0)
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
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
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
	if (rc < 0) {
		fprintf(stderr, "ferry-install push: %s\n", err.msg);
		if (rc == CM_EVERIFY)
			fprintf(stderr,
				"ferry-install push: VERIFICATION FAILED: %s (no manifest or tag "
				"that references unverified content was pushed)\n",
				o.bundle);
	}
	return cm_exit_code(rc);
}
