#include <jansson.h>
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
	/* by level: INS_SAY_STEP, INFO, CMD, WARN, PLAN */
	static const char *const ev[] = {"step", "info", "command", "warning", "plan"};
	static const char *const key[] = {"title", "message", "command", "message", "detail"};
	if (level < 0 || level > INS_SAY_PLAN)
		level = INS_SAY_INFO;
	if (level == INS_SAY_INFO && s->quiet)
		return;
	json_t *j = json_pack("{s:s,s:o}", "event", ev[level], key[level], jstr(msg));
	if (level == INS_SAY_CMD)
		json_object_set_new(j, "run", json_boolean(!s->dry_run));
	emit(s->f, j);
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

static void line(FILE *f, const char *what, const ins_step_report *s, const char *done_word,
		 const char *skip_word)
{
	char h[32];
	if (!s->ran) {
		fprintf(f, "  %-10s -    %s\n", what, s->note);
		return;
	}
	cmd_human(h, sizeof(h), (double)s->bytes);
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
	int quiet = 0, json = 0, mode = INS_MODE_DEFAULT;
	const char *target = NULL;
	const char *realm_creds[8];
	const char *bases[64];
	cm_error err = {0};
	const cmd_opt opts[] = {
	    CMD_S("pubkey", 'p', &o.pubkey),
	    CMD_S("nodes", 0, &o.nodes),
	    CMD_S("node-runner", 0, &o.node_runner),
	    CMD_S("ssh-port", 0, &o.ssh_port),
	    CMD_S("snapshotter", 0, &o.snapshotter),
	    CMD_S("containerd-config", 0, &o.containerd_config),
	    CMD_S("platform", 0, &o.platform),
	    CMD_S("archive-out", 0, &o.archive_out),
	    CMD_S("kubectl", 0, &o.kubectl),
	    CMD_S("kubeconfig", 0, &o.kubeconfig),
	    CMD_S("context", 0, &o.context),
	    CMD_S("namespace", 'n', &o.namespace_),
	    CMD_S("registry", 0, &o.registry),
	    CMD_S("ca", 0, &o.ca),
	    CMD_S("serve-dir", 0, &o.serve_dir),
	    CMD_S("advertise", 0, &o.advertise),
	    CMD_S("hosts-dir", 0, &o.hosts_dir),
	    CMD_S("registries-dir", 0, &o.registries_d),
	    CMD_S("models-dir", 0, &o.models_dir),
	    CMD_F("dry-run", 0, &o.dry_run, 1),
	    CMD_F("insecure-skip-signature", 0, &o.insecure_skip_signature, 1),
	    CMD_F("sudo", 0, &o.node_sudo, 1),
	    CMD_F("no-sudo", 0, &o.node_sudo, 0),
	    CMD_F("apply", 0, &o.apply, 1),
	    CMD_F("no-apply", 0, &o.apply, 0),
	    CMD_F("plain-http", 0, &o.push_insecure, 1),
	    CMD_F("no-idle-hash", 0, &o.push_no_idle_hash, 1),
	    CMD_S("target", 't', &target),
	    CMD_E("mode", &mode, INS_MODE_LOAD, "load|mirror|push",
		  "--mode is load, mirror or push"),
	    CMD_S("runtime", 0, &o.runtime),
	    CMD_E("unpack", &o.unpack_lazy, 0, "eager|lazy", "--unpack is eager or lazy"),
	    CMD_LL("ingest-min", &o.ingest_min, 0, LONG_MAX, "--ingest-min is a byte count"),
	    CMD_E("ingest", &o.ingest_stream, 0, "auto|stream", "--ingest is auto or stream"),
	    CMD_I("retries", 0, &o.retries, 0, 100, "--retries is 0..100"),
	    CMD_D("backoff", &o.backoff, "bad number of seconds '%s'"),
	    CMD_D("wait-timeout", &o.wait_timeout, "bad number of seconds '%s'"),
	    CMD_S("listen", 0, &o.serve_listen),
	    CMD_S("to", 0, &o.push_to),
	    CMD_REALM("realm-credentials", realm_creds, &o.n_realm_creds),
	    CMD_I("jobs", 0, &o.jobs, 1, 64, "--jobs is 1..64"),
	    CMD_L("base", bases, &o.n_bases, 64, "at most 64 --base"),
	    CMD_F("quiet", 'q', &quiet, 1),
	    CMD_F("json", 0, &json, 1),
	    CMD_END,
	};
	int c = cmd_opts_parse("install", argc, argv, opts, usage_text, 1, 1);
	if (c >= 0)
		return c;
	o.mode = (ins_mode)(o.push_to && !mode ? INS_MODE_PUSH : mode);
	o.bases = bases;
	o.realm_creds = realm_creds;
	if (o.runtime && strcmp(o.runtime, "containerd") && strcmp(o.runtime, "docker") &&
	    strcmp(o.runtime, "crio") && strcmp(o.runtime, "cri-o"))
		return cmd_usage_error("install", "--runtime is containerd, docker or crio");
	if (o.serve_listen && !listen_ok(o.serve_listen))
		return cmd_usage_error(
		    "install", "--listen wants ADDR:PORT (a port from 0 to 65535), not '%s'",
		    o.serve_listen);
	if (!target) {
		fputs(usage_text, stderr);
		return 64;
	}
	o.bundle = argv[optind];
	if (ins_target_parse(&o, target, &err) < 0)
		return cmd_usage_error("install", "%s", err.msg);
	if (o.mode == INS_MODE_PUSH && !o.push_to)
		return cmd_usage_error("install", "--mode push needs --to HOST[:PORT][/PREFIX]");
	if (o.push_to && ins_push_check_target(o.push_to, &err) < 0)
		return cmd_usage_error("install", "--to: %s", err.msg);
	/* the mirror address goes into hosts.toml and registries.conf */
	if (o.registry && ins_push_check_target(o.registry, &err) < 0)
		return cmd_usage_error("install", "--registry: %s", err.msg);
	if (o.insecure_skip_signature)
		return cmd_usage_error("install",
				       "--insecure-skip-signature is refused: "
				       "install changes a cluster and applies only signed bundles "
				       "(give --pubkey KEY.pub)");
	if (!o.pubkey)
		return cmd_usage_error("install", "--pubkey KEY.pub is required");
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
			return cmd_fail("install", rc, &err, NULL, NULL);
		}
		emit(f, json_pack("{s:s,s:b,s:I,s:f}", "event", "done", "dry_run", o.dry_run,
				  "nodes", (json_int_t)r.nodes, "seconds", r.total_secs));
		return 0;
	}
	fprintf(f, "==> step 5/5: report%s (%.2fs in all)\n", o.dry_run ? " (dry-run)" : "",
		r.total_secs);
	char h[32];
	cmd_human(h, sizeof(h), (double)r.verify.bytes);
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
	if (rc == 0)
		return 0;
	return cmd_fail(
	    "install", rc, &err, o.bundle,
	    o.mode == INS_MODE_PUSH ? "no manifest or tag that references unverified content was "
				      "pushed"
	    : !r.images.done && !r.manifests.done && !r.models.done
		? "nothing was touched"
		: "the bundle changed after it was verified; what is reported done above was "
		  "done with verified bytes, nothing after it");
}
