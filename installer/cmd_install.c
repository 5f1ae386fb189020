#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_parse.h"
#include "cmd.h"
#include "ins_install.h"

static const char usage_text[] =
    "usage: ferry-install install BUNDLE --pubkey KEY.pub --target TARGET [options]\n"
    "\n"
    "TARGET: kind[:CLUSTER] | minikube[:PROFILE] | okd | containerd[:SOCKET] | crio | docker\n"
    "\n"
    "  --mode load|mirror|push   load (default for kind, minikube, docker, containerd),\n"
    "                            mirror (default for okd, crio), push (--to)\n"
    "  --dry-run                 print every action and command; change nothing\n"
    "  (--insecure-skip-signature is refused: install applies only signed bundles)\n"
    "nodes:\n"
    "  --nodes N1,N2             skip node discovery\n"
    "  --node-runner R           local | docker | minikube | ssh\n"
    "  --ssh-port P, --sudo, --no-sudo\n"
    "  --runtime RT              containerd | docker | crio (override detection)\n"
    "  --snapshotter S           containerd snapshotter (default: from config dump)\n"
    "  --containerd-config FILE  the local containerd's config, for config dump\n"
    "  --platform OS/ARCH        the platform docker and podman load (default: host)\n"
    "  --archive-out FILE|-      write the load archive (OCI + docker-archive) instead\n"
    "  --unpack eager|lazy       containerd: unpack now (default) or leave it to the\n"
    "                            first container (CRI unpacks on demand)\n"
    "  --ingest-min BYTES        containerd: blobs this big or bigger go straight to the\n"
    "                            content store, --jobs streams (default 4194304)\n"
    "  --ingest auto|stream      containerd: on a local node whose content store ferry\n"
    "                            can write, place those blobs there and let ctr only\n"
    "                            record them (auto, the default), or stream them all\n"
    "manifests:\n"
    "  --apply, --no-apply       (default: apply on kind, minikube and okd)\n"
    "  --kubectl PROG --kubeconfig FILE --context CTX\n"
    "  --namespace NS            for objects that leave their namespace open\n"
    "  --retries N (8) --backoff SECS (1) --wait-timeout SECS (120)\n"
    "mirror and push:\n"
    "  --registry HOST:PORT --ca CA.crt   use a running registry (else one is started)\n"
    "  --listen ADDR:PORT (0.0.0.0:5000) --serve-dir DIR (/var/lib/ferry/ferry-NAME)\n"
    "                            where the started registry listens and keeps its state\n"
    "  --advertise HOST          the address nodes reach it at (default: per target)\n"
    "  --hosts-dir DIR           containerd certs.d (default /etc/containerd/certs.d)\n"
    "  --registries-dir DIR      registries.conf.d (default /etc/containers/registries.conf.d)\n"
    "  --to HOST[:PORT][/PREFIX] push target; --plain-http; --jobs N; --no-idle-hash\n"
    "  --realm-credentials HOST  send the push target's credentials to its token realm\n"
    "                            on HOST (another host; repeatable, at most 8)\n"
    "models:\n"
    "  --models-dir PATH         place model files as PATH/<name>/<version>/...\n";

/* ADDR:PORT, [V6]:PORT or :PORT, with a decimal port 0..65535. */
static int listen_ok(const char *s)
{
	const char *c = strrchr(s, ':');
	long port;
	if (!c || (s[0] == '[' && c > s && c[-1] != ']'))
		return 0;
	return cm_parse_long(&port, c + 1, 0, 65535) == 0;
}

typedef struct say_ctx {
	FILE *f;
	int quiet;
	int dry_run;
} say_ctx;

static void say(void *ud, int level, const char *msg)
{
	say_ctx *s = ud;
	switch (level) {
	case INS_SAY_STEP:
		fprintf(s->f, "==> %s\n", msg);
		break;
	case INS_SAY_CMD:
		if (s->dry_run)
			fprintf(s->f, "DRY-RUN: %s\n", msg);
		else if (!s->quiet)
			fprintf(s->f, "  + %s\n", msg);
		break;
	case INS_SAY_PLAN:
		if (s->dry_run && !s->quiet)
			fprintf(s->f, "  %s\n", msg);
		break;
	case INS_SAY_WARN:
		fprintf(stderr, "ferry-install install: warning: %s\n", msg);
		break;
	default:
		if (!s->quiet)
			fprintf(s->f, "  %s\n", msg);
	}
	fflush(s->f);
}

static void human(char *out, size_t n, double b)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;
	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(out, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void line(FILE *f, const char *what, const ins_step_report *s, const char *done_word,
		 const char *skip_word)
{
	char h[32];
	if (!s->ran) {
		fprintf(f, "  %-10s -    %s\n", what, s->note);
		return;
	}
	human(h, sizeof(h), (double)s->bytes);
	fprintf(f, "  %-10s %s %llu, skipped %llu %s, %s, %.2fs%s%s\n", what, done_word,
		(unsigned long long)s->done, (unsigned long long)s->skipped, skip_word, h, s->secs,
		s->note[0] ? "  " : "", s->note);
}

static int parse_double(double *out, const char *s)
{
	char *e;
	*out = strtod(s, &e);
	return *e == '\0' && *out >= 0;
}

/* A flag with two values: *out = 0 for off, 1 for on; -1 (said) for
 * anything else. */
static int either(int *out, const char *arg, const char *flag, const char *off, const char *on)
{
	if (strcmp(arg, off) && strcmp(arg, on)) {
		fprintf(stderr, "ferry-install install: %s is %s or %s\n", flag, off, on);
		return -1;
	}
	*out = strcmp(arg, on) == 0;
	return 0;
}

int cmd_install(int argc, char **argv)
{
	ins_install_opts o;
	memset(&o, 0, sizeof(o));
	o.apply = -1;
	o.node_sudo = -1;
	o.retries = 8;
	o.backoff = 1.0;
	o.wait_timeout = 120;
	o.jobs = 0; /* auto: one content stream per CPU (at most 4), 4 push threads */
	o.ingest_min = -1;
	int quiet = 0;
	const char *target = NULL;
	const char *realm_creds[8];
	cm_error err = {0};
	enum {
		O_SKIP = 256,
		O_NODES,
		O_RUNNER,
		O_SSHPORT,
		O_SUDO,
		O_NOSUDO,
		O_RUNTIME,
		O_SNAP,
		O_CCFG,
		O_PLATFORM,
		O_ARCHIVE,
		O_UNPACK,
		O_INGEST_MIN,
		O_INGEST,
		O_APPLY,
		O_NOAPPLY,
		O_KUBECTL,
		O_KUBECONFIG,
		O_CONTEXT,
		O_RETRIES,
		O_BACKOFF,
		O_WAIT,
		O_REGISTRY,
		O_CA,
		O_LISTEN,
		O_SERVEDIR,
		O_HOSTSDIR,
		O_REGDIR,
		O_TO,
		O_PLAIN,
		O_NOIDLE,
		O_REALMCREDS,
		O_JOBS,
		O_MODELS,
		O_MODE,
		O_DRY,
		O_ADVERTISE,
	};
	static const struct option opts[] = {
	    {"pubkey", required_argument, NULL, 'p'},
	    {"target", required_argument, NULL, 't'},
	    {"mode", required_argument, NULL, O_MODE},
	    {"dry-run", no_argument, NULL, O_DRY},
	    {"insecure-skip-signature", no_argument, NULL, O_SKIP},
	    {"nodes", required_argument, NULL, O_NODES},
	    {"node-runner", required_argument, NULL, O_RUNNER},
	    {"ssh-port", required_argument, NULL, O_SSHPORT},
	    {"sudo", no_argument, NULL, O_SUDO},
	    {"no-sudo", no_argument, NULL, O_NOSUDO},
	    {"runtime", required_argument, NULL, O_RUNTIME},
	    {"snapshotter", required_argument, NULL, O_SNAP},
	    {"containerd-config", required_argument, NULL, O_CCFG},
	    {"platform", required_argument, NULL, O_PLATFORM},
	    {"archive-out", required_argument, NULL, O_ARCHIVE},
	    {"unpack", required_argument, NULL, O_UNPACK},
	    {"ingest-min", required_argument, NULL, O_INGEST_MIN},
	    {"ingest", required_argument, NULL, O_INGEST},
	    {"apply", no_argument, NULL, O_APPLY},
	    {"no-apply", no_argument, NULL, O_NOAPPLY},
	    {"kubectl", required_argument, NULL, O_KUBECTL},
	    {"kubeconfig", required_argument, NULL, O_KUBECONFIG},
	    {"context", required_argument, NULL, O_CONTEXT},
	    {"namespace", required_argument, NULL, 'n'},
	    {"retries", required_argument, NULL, O_RETRIES},
	    {"backoff", required_argument, NULL, O_BACKOFF},
	    {"wait-timeout", required_argument, NULL, O_WAIT},
	    {"registry", required_argument, NULL, O_REGISTRY},
	    {"ca", required_argument, NULL, O_CA},
	    {"listen", required_argument, NULL, O_LISTEN},
	    {"serve-dir", required_argument, NULL, O_SERVEDIR},
	    {"advertise", required_argument, NULL, O_ADVERTISE},
	    {"hosts-dir", required_argument, NULL, O_HOSTSDIR},
	    {"registries-dir", required_argument, NULL, O_REGDIR},
	    {"to", required_argument, NULL, O_TO},
	    {"plain-http", no_argument, NULL, O_PLAIN},
	    {"no-idle-hash", no_argument, NULL, O_NOIDLE},
	    {"realm-credentials", required_argument, NULL, O_REALMCREDS},
	    {"jobs", required_argument, NULL, O_JOBS},
	    {"models-dir", required_argument, NULL, O_MODELS},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	long v;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:t:n:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o.pubkey = optarg;
			break;
		case 't':
			target = optarg;
			break;
		case O_MODE:
			if (strcmp(optarg, "load") == 0)
				o.mode = INS_MODE_LOAD;
			else if (strcmp(optarg, "mirror") == 0)
				o.mode = INS_MODE_MIRROR;
			else if (strcmp(optarg, "push") == 0)
				o.mode = INS_MODE_PUSH;
			else {
				fprintf(stderr,
					"ferry-install install: --mode is load, mirror or push\n");
				return 64;
			}
			break;
		case O_DRY:
			o.dry_run = 1;
			break;
		case O_SKIP:
			o.insecure_skip_signature = 1;
			break;
		case O_NODES:
			o.nodes = optarg;
			break;
		case O_RUNNER:
			o.node_runner = optarg;
			break;
		case O_SSHPORT:
			o.ssh_port = optarg;
			break;
		case O_SUDO:
			o.node_sudo = 1;
			break;
		case O_NOSUDO:
			o.node_sudo = 0;
			break;
		case O_RUNTIME:
			if (strcmp(optarg, "containerd") && strcmp(optarg, "docker") &&
			    strcmp(optarg, "crio") && strcmp(optarg, "cri-o")) {
				fprintf(stderr, "ferry-install install: --runtime is containerd, "
						"docker or crio\n");
				return 64;
			}
			o.runtime = optarg;
			break;
		case O_SNAP:
			o.snapshotter = optarg;
			break;
		case O_CCFG:
			o.containerd_config = optarg;
			break;
		case O_PLATFORM:
			o.platform = optarg;
			break;
		case O_ARCHIVE:
			o.archive_out = optarg;
			break;
		case O_UNPACK:
			if (either(&o.unpack_lazy, optarg, "--unpack", "eager", "lazy") < 0)
				return 64;
			break;
		case O_INGEST_MIN:
			if (cm_parse_long(&v, optarg, 0, LONG_MAX) < 0) {
				fprintf(stderr,
					"ferry-install install: --ingest-min is a byte count\n");
				return 64;
			}
			o.ingest_min = v;
			break;
		case O_INGEST:
			if (either(&o.ingest_stream, optarg, "--ingest", "auto", "stream") < 0)
				return 64;
			break;
		case O_APPLY:
			o.apply = 1;
			break;
		case O_NOAPPLY:
			o.apply = 0;
			break;
		case O_KUBECTL:
			o.kubectl = optarg;
			break;
		case O_KUBECONFIG:
			o.kubeconfig = optarg;
			break;
		case O_CONTEXT:
			o.context = optarg;
			break;
		case 'n':
			o.namespace_ = optarg;
			break;
		case O_RETRIES:
			if (cm_parse_long(&v, optarg, 0, 100) < 0) {
				fprintf(stderr, "ferry-install install: --retries is 0..100\n");
				return 64;
			}
			o.retries = (int)v;
			break;
		case O_BACKOFF:
		case O_WAIT:
			if (!parse_double(c == O_BACKOFF ? &o.backoff : &o.wait_timeout, optarg)) {
				fprintf(stderr,
					"ferry-install install: bad number of seconds '%s'\n",
					optarg);
				return 64;
			}
			break;
		case O_REGISTRY:
			o.registry = optarg;
			break;
		case O_CA:
			o.ca = optarg;
			break;
		case O_LISTEN:
			o.serve_listen = optarg;
			if (!listen_ok(optarg)) {
				fprintf(stderr,
					"ferry-install install: --listen wants ADDR:PORT "
					"(a port from 0 to 65535), not '%s'\n",
					optarg);
				return 64;
			}
			break;
		case O_SERVEDIR:
			o.serve_dir = optarg;
			break;
		case O_ADVERTISE:
			o.advertise = optarg;
			break;
		case O_HOSTSDIR:
			o.hosts_dir = optarg;
			break;
		case O_REGDIR:
			o.registries_d = optarg;
			break;
		case O_TO:
			o.push_to = optarg;
			if (!o.mode)
				o.mode = INS_MODE_PUSH;
			break;
		case O_PLAIN:
			o.push_insecure = 1;
			break;
		case O_NOIDLE:
			o.push_no_idle_hash = 1;
			break;
		case O_REALMCREDS:
			if (o.n_realm_creds == sizeof(realm_creds) / sizeof(realm_creds[0]) ||
			    !optarg[0] || strcspn(optarg, "/ @?#") != strlen(optarg)) {
				fprintf(stderr,
					"ferry-install install: --realm-credentials takes a "
					"host or host:port, at most 8 times\n");
				return 64;
			}
			realm_creds[o.n_realm_creds++] = optarg;
			o.realm_creds = realm_creds;
			break;
		case O_JOBS:
			if (cm_parse_long(&v, optarg, 1, 64) < 0) {
				fprintf(stderr, "ferry-install install: --jobs is 1..64\n");
				return 64;
			}
			o.jobs = (int)v;
			break;
		case O_MODELS:
			o.models_dir = optarg;
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
	if (optind + 1 != argc || !target) {
		fputs(usage_text, stderr);
		return 64;
	}
	o.bundle = argv[optind];
	if (ins_target_parse(&o, target, &err) < 0) {
		fprintf(stderr, "ferry-install install: %s\n", err.msg);
		return 64;
	}
	if (o.mode == INS_MODE_PUSH && !o.push_to) {
		fprintf(stderr,
			"ferry-install install: --mode push needs --to HOST[:PORT][/PREFIX]\n");
		return 64;
	}
	if (o.push_to && ins_push_check_target(o.push_to, &err) < 0) {
		fprintf(stderr, "ferry-install install: --to: %s\n", err.msg);
		return 64;
	}
	/* the mirror address goes into hosts.toml and registries.conf */
	if (o.registry && ins_push_check_target(o.registry, &err) < 0) {
		fprintf(stderr, "ferry-install install: --registry: %s\n", err.msg);
		return 64;
	}
	if (o.insecure_skip_signature) {
		fprintf(stderr, "ferry-install install: --insecure-skip-signature is refused: "
				"install changes a cluster and applies only signed bundles "
				"(give --pubkey KEY.pub)\n");
		return 64;
	}
	if (!o.pubkey) {
		fprintf(stderr, "ferry-install install: --pubkey KEY.pub is required\n");
		return 64;
	}
	/* a node that goes away must not kill us with SIGPIPE: we report it */
	signal(SIGPIPE, SIG_IGN);
	say_ctx sc = {stdout, quiet, o.dry_run};
	if (o.archive_out && strcmp(o.archive_out, "-") == 0)
		sc.f = stderr; /* stdout carries the archive */
	o.say = say;
	o.say_ud = &sc;
	if (o.dry_run)
		fprintf(sc.f, "DRY-RUN: nothing will be changed\n");
	ins_install_report r;
	int rc = ins_install_run(&r, &o, &err);
	FILE *f = sc.f;
	fprintf(f, "==> step 5/5: report%s (%.2fs in all)\n", o.dry_run ? " (dry-run)" : "",
		r.total_secs);
	char h[32];
	human(h, sizeof(h), (double)r.verify.bytes);
	if (r.verify.ran)
		fprintf(f, "  %-10s %s, %llu members, %s hashed, %.2fs\n", "verify",
			rc == 0 || r.verify.done ? r.verify.note : "FAILED",
			(unsigned long long)r.verify.done, h, r.verify.secs);
	if (r.verify.done) {
		char nodes[64] = "";
		if (r.nodes)
			snprintf(nodes, sizeof(nodes), " on %llu node%s",
				 (unsigned long long)r.nodes, r.nodes == 1 ? "" : "s");
		char what[80];
		snprintf(what, sizeof(what), "as present%s", nodes);
		line(f, "images", &r.images, o.dry_run ? "would load" : "done", what);
		line(f, "manifests", &r.manifests, o.dry_run ? "would apply" : "applied",
		     "as unchanged");
		line(f, "models", &r.models, o.dry_run ? "would place" : "placed", "as present");
	}
	fflush(f);
	if (rc < 0) {
		fprintf(stderr, "ferry-install install: %s\n", err.msg);
		if (rc == CM_EVERIFY && o.mode == INS_MODE_PUSH)
			fprintf(stderr,
				"ferry-install install: VERIFICATION FAILED: %s (no manifest or "
				"tag that references unverified content was pushed)\n",
				o.bundle);
		else if (rc == CM_EVERIFY && !r.images.done && !r.manifests.done && !r.models.done)
			fprintf(stderr,
				"ferry-install install: VERIFICATION FAILED: %s (nothing was "
				"touched)\n",
				o.bundle);
		else if (rc == CM_EVERIFY)
			fprintf(stderr,
				"ferry-install install: VERIFICATION FAILED: %s (the bundle "
				"changed after it was verified; what is reported done above "
				"was done with verified bytes, nothing after it)\n",
				o.bundle);
		return cm_exit_code(rc);
	}
	return 0;
}
