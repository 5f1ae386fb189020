#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
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
    "  --quiet                   print only steps, warnings, dry-run commands, the report\n"
    "  --json                    one JSON event per line (docs/json-events.md)\n"
    "  --base OLD.tar            a delta's base (repeatable; load and push mode): blobs\n"
    "                            the delta leaves out come from the node (load) or the\n"
    "                            registry (push), else from the bases\n"
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
	int json;
} say_ctx;

/* --json: one event per line (docs/json-events.md), built with jansson;
 * o is consumed (NULL: out of memory, nothing is printed). */
static void emit(FILE *f, json_t *o)
{
	char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (t) {
		fprintf(f, "%s\n", t);
		fflush(f);
	}
	free(t);
}

/* A JSON string of s; bytes of s that are not UTF-8 (a hostile path in a
 * message) become '?', so the event still says everything else. */
static json_t *jstr(const char *s)
{
	json_t *j = json_string(s ? s : "");
	if (j || !s)
		return j;
	char *c = strdup(s);
	if (!c)
		return NULL;
	for (char *p = c; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(c);
	free(c);
	return j;
}

/* The installer's messages keyed on their level (ins_ctx.h): a step
 * begins, a command runs (or would), a warning, progress, a plan's detail. */
static void say_json(say_ctx *s, int level, const char *msg)
{
	switch (level) {
	case INS_SAY_STEP:
		emit(s->f, json_pack("{s:s,s:o}", "event", "step", "title", jstr(msg)));
		break;
	case INS_SAY_CMD:
		emit(s->f, json_pack("{s:s,s:o,s:b}", "event", "command", "command", jstr(msg),
				     "run", !s->dry_run));
		break;
	case INS_SAY_WARN:
		emit(s->f, json_pack("{s:s,s:o}", "event", "warning", "message", jstr(msg)));
		break;
	case INS_SAY_PLAN:
		emit(s->f, json_pack("{s:s,s:o}", "event", "plan", "detail", jstr(msg)));
		break;
	default:
		if (!s->quiet)
			emit(s->f, json_pack("{s:s,s:o}", "event", "info", "message", jstr(msg)));
	}
}

static void say(void *ud, int level, const char *msg)
{
	say_ctx *s = ud;
	if (s->json) {
		say_json(s, level, msg);
		return;
	}
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

/* The report of one step, as {"event":"report",...}. */
static void report_json(FILE *f, const char *step, const ins_step_report *s)
{
	emit(f, json_pack("{s:s,s:s,s:b,s:I,s:I,s:I,s:I,s:f,s:o}", "event", "report", "step", step,
			  "ran", s->ran, "done", (json_int_t)s->done, "skipped",
			  (json_int_t)s->skipped, "failed", (json_int_t)s->failed, "bytes",
			  (json_int_t)s->bytes, "seconds", s->secs, "note", jstr(s->note)));
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

/* Options that only store a value: a string (STR) or a fixed number
 * (SET); the others (ARG, NOARG) are parsed in cmd_install. */
enum { ARG = 0, NOARG, STR, SET };
typedef struct opt_def {
	const char *name;
	int kind;
	size_t off; /* in ins_install_opts */
	int val;
} opt_def;
#define S(n, f)                                                                                    \
	{                                                                                          \
		n, STR, offsetof(ins_install_opts, f), 0                                           \
	}
#define F(n, f, v)                                                                                 \
	{                                                                                          \
		n, SET, offsetof(ins_install_opts, f), v                                           \
	}
static const opt_def defs[] = {
    S("pubkey", pubkey),
    S("nodes", nodes),
    S("node-runner", node_runner),
    S("ssh-port", ssh_port),
    S("snapshotter", snapshotter),
    S("containerd-config", containerd_config),
    S("platform", platform),
    S("archive-out", archive_out),
    S("kubectl", kubectl),
    S("kubeconfig", kubeconfig),
    S("context", context),
    S("namespace", namespace_),
    S("registry", registry),
    S("ca", ca),
    S("serve-dir", serve_dir),
    S("advertise", advertise),
    S("hosts-dir", hosts_dir),
    S("registries-dir", registries_d),
    S("models-dir", models_dir),
    F("dry-run", dry_run, 1),
    F("insecure-skip-signature", insecure_skip_signature, 1),
    F("sudo", node_sudo, 1),
    F("no-sudo", node_sudo, 0),
    F("apply", apply, 1),
    F("no-apply", apply, 0),
    F("plain-http", push_insecure, 1),
    F("no-idle-hash", push_no_idle_hash, 1),
    {"target", ARG, 0, 0},
    {"mode", ARG, 0, 0},
    {"runtime", ARG, 0, 0},
    {"unpack", ARG, 0, 0},
    {"ingest-min", ARG, 0, 0},
    {"ingest", ARG, 0, 0},
    {"retries", ARG, 0, 0},
    {"backoff", ARG, 0, 0},
    {"wait-timeout", ARG, 0, 0},
    {"listen", ARG, 0, 0},
    {"to", ARG, 0, 0},
    {"realm-credentials", ARG, 0, 0},
    {"jobs", ARG, 0, 0},
    {"base", ARG, 0, 0},
    {"quiet", NOARG, 0, 0},
    {"json", NOARG, 0, 0},
    {"help", NOARG, 0, 0},
};
#define N_DEFS (sizeof(defs) / sizeof(defs[0]))

/* Bad usage: say why (64). */
static int usage_err(const char *msg, const char *arg)
{
	fprintf(stderr, "ferry-install install: %s%s%s\n", msg, arg ? arg : "", arg ? "'" : "");
	return 64;
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
	int quiet = 0, json = 0;
	const char *target = NULL;
	const char *realm_creds[8];
	const char *bases[64];
	cm_error err = {0};
	struct option opts[N_DEFS + 1];
	for (size_t i = 0; i < N_DEFS; i++) {
		int has = defs[i].kind == ARG || defs[i].kind == STR;
		opts[i] = (struct option){defs[i].name, has ? required_argument : no_argument, NULL,
					  256 + (int)i};
	}
	memset(&opts[N_DEFS], 0, sizeof(opts[N_DEFS]));
	static const char shorts[] = "p:t:n:qh", *const short_names[] = {"pubkey", "target",
									 "namespace", "quiet",
									 "help"};
	int c;
	long v;
	optind = 1;
	while ((c = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		const char *sp = c < 256 && c != '?' && c != ':' ? strchr("ptnqh", c) : NULL;
		const char *name = c >= 256 ? defs[c - 256].name
				   : sp	    ? short_names[sp - "ptnqh"]
					    : "";
		const opt_def *d = NULL;
		for (size_t i = 0; i < N_DEFS && !d; i++)
			if (strcmp(defs[i].name, name) == 0)
				d = &defs[i];
		if (!d) {
			fputs(usage_text, stderr);
			return 64;
		}
		if (d->kind == STR) {
			*(const char **)((char *)&o + d->off) = optarg;
		} else if (d->kind == SET) {
			*(int *)((char *)&o + d->off) = d->val;
		} else if (strcmp(name, "target") == 0) {
			target = optarg;
		} else if (strcmp(name, "mode") == 0) {
			static const char *const modes[] = {"load", "mirror", "push"};
			size_t i;
			for (i = 0; i < 3 && strcmp(optarg, modes[i]) != 0; i++)
				;
			if (i == 3)
				return usage_err("--mode is load, mirror or push", NULL);
			o.mode = (ins_mode)(INS_MODE_LOAD + (int)i);
		} else if (strcmp(name, "runtime") == 0) {
			if (strcmp(optarg, "containerd") && strcmp(optarg, "docker") &&
			    strcmp(optarg, "crio") && strcmp(optarg, "cri-o"))
				return usage_err("--runtime is containerd, docker or crio", NULL);
			o.runtime = optarg;
		} else if (strcmp(name, "unpack") == 0) {
			if (either(&o.unpack_lazy, optarg, "--unpack", "eager", "lazy") < 0)
				return 64;
		} else if (strcmp(name, "ingest-min") == 0) {
			if (cm_parse_long(&v, optarg, 0, LONG_MAX) < 0)
				return usage_err("--ingest-min is a byte count", NULL);
			o.ingest_min = v;
		} else if (strcmp(name, "ingest") == 0) {
			if (either(&o.ingest_stream, optarg, "--ingest", "auto", "stream") < 0)
				return 64;
		} else if (strcmp(name, "retries") == 0) {
			if (cm_parse_long(&v, optarg, 0, 100) < 0)
				return usage_err("--retries is 0..100", NULL);
			o.retries = (int)v;
		} else if (strcmp(name, "backoff") == 0 || strcmp(name, "wait-timeout") == 0) {
			if (!parse_double(name[0] == 'b' ? &o.backoff : &o.wait_timeout, optarg))
				return usage_err("bad number of seconds '", optarg);
		} else if (strcmp(name, "listen") == 0) {
			o.serve_listen = optarg;
			if (!listen_ok(optarg))
				return usage_err(
				    "--listen wants ADDR:PORT (a port from 0 to 65535), "
				    "not '",
				    optarg);
		} else if (strcmp(name, "to") == 0) {
			o.push_to = optarg;
			if (!o.mode)
				o.mode = INS_MODE_PUSH;
		} else if (strcmp(name, "realm-credentials") == 0) {
			if (o.n_realm_creds == sizeof(realm_creds) / sizeof(realm_creds[0]) ||
			    !optarg[0] || strcspn(optarg, "/ @?#") != strlen(optarg))
				return usage_err(
				    "--realm-credentials takes a host or host:port, at "
				    "most 8 times",
				    NULL);
			realm_creds[o.n_realm_creds++] = optarg;
			o.realm_creds = realm_creds;
		} else if (strcmp(name, "jobs") == 0) {
			if (cm_parse_long(&v, optarg, 1, 64) < 0)
				return usage_err("--jobs is 1..64", NULL);
			o.jobs = (int)v;
		} else if (strcmp(name, "base") == 0) {
			if (o.n_bases == sizeof(bases) / sizeof(bases[0]))
				return usage_err("at most 64 --base", NULL);
			bases[o.n_bases++] = optarg;
			o.bases = bases;
		} else if (strcmp(name, "quiet") == 0) {
			quiet = 1;
		} else if (strcmp(name, "json") == 0) {
			json = 1;
		} else {
			fputs(usage_text, stdout);
			return 0;
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
	say_ctx sc = {stdout, quiet, o.dry_run, json};
	if (o.archive_out && strcmp(o.archive_out, "-") == 0)
		sc.f = stderr; /* stdout carries the archive */
	o.say = say;
	o.say_ud = &sc;
	if (json) {
		static const char *const mode_names[] = {"default", "load", "mirror", "push"};
		int m = (int)o.mode;
		emit(sc.f,
		     json_pack("{s:s,s:o,s:o,s:s,s:b}", "event", "start", "bundle", jstr(o.bundle),
			       "target", jstr(target), "mode",
			       m >= 0 && m < 4 ? mode_names[m] : "default", "dry_run", o.dry_run));
	} else if (o.dry_run)
		fprintf(sc.f, "DRY-RUN: nothing will be changed\n");
	ins_install_report r;
	int rc = ins_install_run(&r, &o, &err);
	FILE *f = sc.f;
	if (json) {
		if (r.verify.ran)
			report_json(f, "verify", &r.verify);
		if (r.verify.done) {
			report_json(f, "images", &r.images);
			report_json(f, "manifests", &r.manifests);
			report_json(f, "models", &r.models);
		}
		if (rc < 0) {
			emit(f, json_pack("{s:s,s:o,s:i}", "event", "error", "message",
					  jstr(err.msg), "code", cm_exit_code(rc)));
			fprintf(stderr, "ferry-install install: %s\n", err.msg);
			return cm_exit_code(rc);
		}
		emit(f, json_pack("{s:s,s:b,s:I,s:f}", "event", "done", "dry_run", o.dry_run,
				  "nodes", (json_int_t)r.nodes, "seconds", r.total_secs));
		return 0;
	}
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
