#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bld_build.h"
#include "bld_bundle.h"
#include "bld_progress.h"
#include "cm_parse.h"
#include "cmd.h"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: ferry-build build SPEC.yaml -o BUNDLE.tar --key KEY.key [options]\n"
	    "  --cache DIR         blob cache (default $XDG_CACHE_HOME/ferry)\n"
	    "  --jobs N            parallel blob downloads across all images (default 8)\n"
	    "  --retry-budget SEC  back-off one request may spend on 429/5xx (default 60)\n"
	    "  --lock              write SPEC.lock.yaml pinning every tag to its digest\n"
	    "  --locked            refuse to build when a tag moved since SPEC.lock.yaml\n"
	    "  --quiet             print nothing but errors\n"
	    "  --json              one JSON event per line on stdout\n"
	    "  --auto-images       add the images the manifests use (as 'images: auto')\n"
	    "  --include-suggested ...and those found only inside strings (args, env, ConfigMaps)\n"
	    "  --no-pin            bundle manifests as written, not pinned to digests\n"
	    "  --allow-unpinned    accept url: models without sha256 (the digest is recorded)\n"
	    "  --no-model-files    no raw model copies under models/<name>/<version>/\n"
	    "  --volume-size SIZE  write BUNDLE.tar.000, .001, ... of SIZE bytes each (K, M,\n"
	    "                      G, T: powers of 1024; fat32: 4 GiB - 1) and BUNDLE.tar.parts\n"
	    "  --with-installer PATH  carry this (portable) ferry-install as\n"
	    "                      tools/ferry-install-linux-amd64 (default: $FERRY_INSTALLER,\n"
	    "                      else the one `make portable` built); --without-installer\n"
	    "  --base RECEIPT.json a delta: leave out the blobs the lab holds (a receipt from\n"
	    "                      `ferry-install receipt`; docs/bundle-format.md \"Deltas\")\n"
	    "  --base OLD.tar --base-pubkey KEY.pub  the same from a bundle the lab has\n"
	    "  SOURCE_DATE_EPOCH sets the creation time (reproducible bundles)\n");
}

/* SOURCE_DATE_EPOCH (then created_fixed is set), else now. */
static int creation_time(bld_build_opts *o)
{
	const char *s = getenv("SOURCE_DATE_EPOCH");
	o->created_fixed = s && *s;
	o->created = time(NULL);
	if (!o->created_fixed)
		return 0;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	o->created = (time_t)v;
	return errno || *end || v < 0 ? -1 : 0;
}

int cmd_build(int argc, char **argv)
{
	bld_build_opts o = {.log = stderr};
	int quiet = 0, json = 0, no_installer = 0;
	char installer[4096];
	/* a flag sets its int through getopt_long, which then returns 0;
	 * manifests and models: docs/manifests-and-models.md */
	const struct option opts[] = {{"output", required_argument, NULL, 'o'},
				      {"key", required_argument, NULL, 'k'},
				      {"cache", required_argument, NULL, 'c'},
				      {"quiet", no_argument, NULL, 'q'},
				      {"jobs", required_argument, NULL, 'j'},
				      {"retry-budget", required_argument, NULL, 'R'},
				      {"lock", no_argument, &o.lock, 1},
				      {"locked", no_argument, &o.locked, 1},
				      {"json", no_argument, &json, 1},
				      {"auto-images", no_argument, &o.auto_images, 1},
				      {"include-suggested", no_argument, &o.include_suggested, 1},
				      {"no-pin", no_argument, &o.no_pin, 1},
				      {"allow-unpinned", no_argument, &o.allow_unpinned, 1},
				      {"no-model-files", no_argument, &o.no_model_files, 1},
				      {"volume-size", required_argument, NULL, 1006},
				      {"with-installer", required_argument, NULL, 1007},
				      {"without-installer", no_argument, &no_installer, 1},
				      {"base", required_argument, NULL, 1009},
				      {"base-pubkey", required_argument, NULL, 1010},
				      {"help", no_argument, NULL, 'h'},
				      {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:k:c:qj:h", opts, NULL)) != -1) {
		switch (c) {
		case 0:
			break;
		case 'o':
			o.out_path = optarg;
			break;
		case 'k':
			o.key_path = optarg;
			break;
		case 'c':
			o.cache_dir = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'j': {
			long v;
			if (cm_parse_long(&v, optarg, 1, 64) < 0) {
				fprintf(stderr, "ferry-build build: --jobs wants 1..64\n");
				return 64;
			}
			o.jobs = (int)v;
			break;
		}
		case 'R': {
			char *end;
			double v = strtod(optarg, &end);
			if (*end || v < 0 || v > 86400) {
				fprintf(
				    stderr,
				    "ferry-build build: --retry-budget wants seconds (0..86400)\n");
				return 64;
			}
			o.retry_budget = v > 0 ? v : 1e-9;
			break;
		}
		case 1006: {
			cm_error verr = {0};
			if (bld_volume_size_parse(&o.volume_size, optarg, &verr) < 0) {
				fprintf(stderr, "ferry-build build: --volume-size: %s\n", verr.msg);
				return 64;
			}
			break;
		}
		case 1007: /* docs/portable.md */
			o.installer_path = optarg;
			break;
		case 1009:
			o.base_path = optarg;
			break;
		case 1010:
			o.base_pubkey = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (optind + 1 != argc || !o.out_path || !o.key_path) {
		usage(stderr);
		return 64;
	}
	o.spec_path = argv[optind];
	if (no_installer)
		o.installer_path = NULL;
	else if (!o.installer_path)
		o.installer_path = bld_default_installer(installer, sizeof(installer));
	if (o.base_pubkey && !o.base_path) {
		fprintf(stderr, "ferry-build build: --base-pubkey goes with --base OLD.tar\n");
		return 64;
	}
	if (o.lock && o.locked) {
		fprintf(stderr, "ferry-build build: --lock and --locked exclude each other\n");
		return 64;
	}
	if (json) {
		o.log = NULL;
		o.progress = BLD_PROGRESS_JSON;
		o.progress_out = stdout;
	} else if (quiet) {
		o.log = NULL;
		o.progress = BLD_PROGRESS_NONE;
	} else {
		o.progress = isatty(fileno(stderr)) ? BLD_PROGRESS_TTY : BLD_PROGRESS_PLAIN;
		o.progress_out = stderr;
	}
	if (creation_time(&o) < 0) {
		fprintf(stderr,
			"ferry-build build: SOURCE_DATE_EPOCH is not a number of seconds\n");
		return 64;
	}
	cm_error err = {0};
	bld_build_result r = {0, 0, 0, 0, "", 0, 0, 0};
	int rc = bld_build(&r, &o, &err);
	if (rc < 0) {
		if (json) {
			/* the message is for people; code is the exit status */
			json_t *ev = json_pack("{s:s,s:s,s:i}", "event", "error", "message",
					       err.msg, "code", cm_exit_code(rc));
			char *t = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
			if (t)
				printf("%s\n", t);
			free(t);
			json_decref(ev);
		}
		fprintf(stderr, "ferry-build build: %s\n", err.msg);
		return cm_exit_code(rc);
	}
	if (json) {
		/* jansson escapes the path: a quote or a newline in it stays inside */
		json_t *ev = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:s,s:I}", "event", "wrote",
				       "bundle", o.out_path, "images", (json_int_t)r.images,
				       "files", (json_int_t)r.files, "bytes", (json_int_t)r.bytes,
				       "fetched", (json_int_t)r.fetched, "signer", r.signer,
				       "parts", (json_int_t)r.parts);
		if (ev && o.base_path) {
			json_object_set_new(ev, "omitted", json_integer((json_int_t)r.omitted));
			json_object_set_new(ev, "omitted_bytes",
					    json_integer((json_int_t)r.omitted_bytes));
		}
		char *t = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
		json_decref(ev);
		if (!t) {
			fprintf(stderr,
				"ferry-build build: wrote %s, but its path is not UTF-8 and cannot "
				"be written as JSON\n",
				o.out_path);
			return 1;
		}
		printf("%s\n", t);
		free(t);
	} else if (!quiet && r.parts)
		printf("wrote %s.000 to %s.%03zu (%zu parts, sidecar %s.parts): %zu images, %zu "
		       "files, %llu bytes, signed by %s\n",
		       o.out_path, o.out_path, r.parts - 1, r.parts, o.out_path, r.images, r.files,
		       r.bytes, r.signer);
	else if (!quiet)
		printf("wrote %s: %zu images, %zu files, %llu bytes, signed by %s\n", o.out_path,
		       r.images, r.files, r.bytes, r.signer);
	if (!quiet && !json && o.base_path)
		printf("delta against %s: %zu blobs (%llu bytes) left out, the base holds them\n",
		       o.base_path, r.omitted, r.omitted_bytes);
	return 0;
}
