#include "ins_install.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cm_file.h"
#include "ins_apply.h"
#include "ins_tools.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void ins_say(const ins_install_opts *o, int level, const char *fmt, ...)
{
	if (!o->say)
		return;
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o->say(o->say_ud, level, msg);
}

void ins_say_cmd(const ins_install_opts *o, const char *const *argv, const char *suffix)
{
	if (!o->say)
		return;
	cm_buf b = CM_BUF_INIT;
	b.limit = (size_t)1 << 20;
	ins_shell_join(&b, argv, NULL);
	if (suffix)
		cm_buf_append(&b, suffix, strlen(suffix), NULL);
	o->say(o->say_ud, INS_SAY_CMD, b.data ? b.data : "");
	cm_buf_free(&b);
}

const char *ins_target_name(ins_target_kind t)
{
	switch (t) {
	case INS_T_KIND:
		return "kind";
	case INS_T_MINIKUBE:
		return "minikube";
	case INS_T_OKD:
		return "okd";
	case INS_T_CONTAINERD:
		return "containerd";
	case INS_T_CRIO:
		return "crio";
	case INS_T_DOCKER:
		return "docker";
	}
	return "?";
}

int ins_target_parse(ins_install_opts *o, const char *s, cm_error *err)
{
	static const struct {
		const char *name;
		ins_target_kind t;
		int arg;
	} tab[] = {
	    {"kind", INS_T_KIND, 1},
	    {"minikube", INS_T_MINIKUBE, 1},
	    {"okd", INS_T_OKD, 0},
	    {"openshift", INS_T_OKD, 0},
	    {"containerd", INS_T_CONTAINERD, 1},
	    {"crio", INS_T_CRIO, 0},
	    {"cri-o", INS_T_CRIO, 0},
	    {"docker", INS_T_DOCKER, 0},
	};
	const char *colon = strchr(s, ':');
	size_t l = colon ? (size_t)(colon - s) : strlen(s);
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (strlen(tab[i].name) != l || strncmp(tab[i].name, s, l) != 0)
			continue;
		if (colon && !tab[i].arg)
			return cm_error_set(err, CM_EUSAGE, "target %s takes no ':' argument",
					    tab[i].name);
		if (colon && strlen(colon + 1) >= sizeof(o->target_arg))
			return cm_error_set(err, CM_EUSAGE, "target argument too long");
		o->target = tab[i].t;
		snprintf(o->target_arg, sizeof(o->target_arg), "%s", colon ? colon + 1 : "");
		return 0;
	}
	return cm_error_set(err, CM_EUSAGE,
			    "unknown target '%s' (kind[:CLUSTER], minikube[:PROFILE], okd, "
			    "containerd[:SOCKET], crio, docker)",
			    s);
}

static ins_mode default_mode(ins_target_kind t)
{
	return t == INS_T_OKD || t == INS_T_CRIO ? INS_MODE_MIRROR : INS_MODE_LOAD;
}

static const char *mode_name(ins_mode m)
{
	return m == INS_MODE_LOAD ? "load" : m == INS_MODE_MIRROR ? "mirror" : "push";
}

/* Apply by default on cluster targets; node targets need --apply. */
static int want_apply(const ins_install_opts *o, const ins_bundle *b, char *why, size_t n)
{
	if (b->n_manifests == 0) {
		snprintf(why, n, "the bundle holds no manifests");
		return 0;
	}
	if (o->apply == 0) {
		snprintf(why, n, "skipped (--no-apply)");
		return 0;
	}
	if (o->apply == 1)
		return 1;
	if (o->target == INS_T_KIND || o->target == INS_T_MINIKUBE || o->target == INS_T_OKD)
		return 1;
	snprintf(why, n, "not applied: %s is a node target (pass --apply to apply with kubectl)",
		 ins_target_name(o->target));
	return 0;
}

/* A bundle that carries a newer ferry-install than this one: say so (the
 * newer one may know what this bundle needs). Its version is read from its
 * verified bytes; it is never run. */
static void warn_older(const ins_install_opts *o, const ins_bundle *b)
{
	const ins_member *m = ins_tools_installer(b);
	char v[CM_VERSION_MAX];
	cm_error e = {0};
	if (!m)
		return;
	if (ins_tools_version(v, b, m, &e) < 0)
		ins_say(o, INS_SAY_WARN, "cannot read the version of %s: %s", m->path, e.msg);
	else if (v[0] && cm_version_cmp(cm_version(), v) < 0)
		ins_say(o, INS_SAY_WARN,
			"this ferry-install is %s, older than the %s the bundle carries (%s): "
			"extract it (docs/portable.md) and run that one",
			cm_version(), v, m->path);
}

int ins_install_run(ins_install_report *rep, const ins_install_opts *o, cm_error *err)
{
	double t0 = now();
	memset(rep, 0, sizeof(*rep));
	ins_bundle b;
	ins_node *nodes = NULL;
	size_t n_nodes = 0;
	int rc;
	ins_mode mode = o->mode ? o->mode : default_mode(o->target);

	/* 1. verify: nothing is touched before this succeeds */
	ins_say(o, INS_SAY_STEP, "step 1/5: verify %s", o->bundle);
	/* push mode checks the content while it pushes (ins_push_bundle): here
	 * the signature, SHA256SUMS, the metadata and the member index */
	int lazy = mode == INS_MODE_PUSH && !o->archive_out;
	ins_bundle_opts bo = {o->pubkey, o->insecure_skip_signature, lazy, 0};
	rc = ins_bundle_open(&b, o->bundle, &bo, err);
	rep->verify.ran = 1;
	rep->verify.secs = b.verify_secs;
	if (rc < 0) {
		ins_bundle_close(&b);
		cm_error_wrap(err, "step 1/5 verify");
		rep->total_secs = now() - t0;
		return rc;
	}
	rep->verify.done = b.n_m;
	rep->verify.bytes = b.bytes_hashed;
	snprintf(rep->verify.note, sizeof(rep->verify.note), "%s %s, %s%s", b.name, b.version,
		 b.fingerprint[0] ? "signature ok" : "signature NOT checked",
		 lazy ? ", content hashed while pushed" : "");
	ins_say(o, INS_SAY_INFO,
		"verified %s %s%s: %zu images, %zu manifests, %zu model files (%s)", b.name,
		b.version, lazy ? " (signature and index; content while pushing)" : "", b.n_images,
		b.n_manifests, b.n_models,
		b.fingerprint[0] ? b.fingerprint : "signature NOT checked");
	warn_older(o, &b);

	/* preflight, so that a missing tool stops us before any change */
	char why[256] = "";
	int apply = want_apply(o, &b, why, sizeof(why));
	if (apply) {
		ins_argv k = {NULL, 0, 0};
		char found[4096];
		rc = ins_kubectl_argv(&k, o, err);
		if (rc == 0 && !ins_which(k.v[0], found, sizeof(found)))
			rc = cm_error_set(
			    err, CM_ENOTFOUND,
			    "step 3/5 apply manifests: %s not found in PATH (install it, "
			    "pass --kubectl PATH, or --no-apply)",
			    k.v[0]);
		ins_argv_free(&k);
		if (rc < 0)
			goto out;
	}

	/* 2. images */
	double t2 = now();
	ins_say(o, INS_SAY_STEP, "step 2/5: deliver %zu images (%s mode, target %s%s%s)",
		b.n_images, o->archive_out ? "archive" : mode_name(mode),
		ins_target_name(o->target), o->target_arg[0] ? ":" : "", o->target_arg);
	rep->images.ran = 1;
	if (o->archive_out) {
		ins_runtime rt = o->target == INS_T_DOCKER ? INS_RT_DOCKER
				 : o->target == INS_T_CRIO ? INS_RT_CRIO
							   : INS_RT_CONTAINERD;
		rc = ins_install_archive_out(&rep->images, &b, rt, o, err);
	} else if (b.n_images == 0) {
		snprintf(rep->images.note, sizeof(rep->images.note), "the bundle holds no images");
		if (lazy) { /* nothing to push: check the content the usual way */
			ins_bundle_close(&b);
			bo.metadata_only = 0;
			if ((rc = ins_bundle_open(&b, o->bundle, &bo, err)) < 0) {
				cm_error_wrap(err, "step 1/5 verify");
				goto out;
			}
			rep->verify.secs += b.verify_secs;
			rep->verify.bytes = b.bytes_hashed;
			snprintf(rep->verify.note, sizeof(rep->verify.note), "%s %s, %s", b.name,
				 b.version,
				 b.fingerprint[0] ? "signature ok" : "signature NOT checked");
		}
	} else if (mode == INS_MODE_LOAD) {
		rc = ins_install_nodes(&nodes, &n_nodes, o, err);
		if (rc < 0)
			cm_error_wrap(err, "finding the nodes");
		if (rc == 0) {
			rep->nodes = n_nodes;
			rc = ins_install_load(&rep->images, &b, nodes, n_nodes, o, err);
		}
	} else if (mode == INS_MODE_MIRROR) {
		if (o->target != INS_T_OKD && o->target != INS_T_CONTAINERD &&
		    o->target != INS_T_CRIO) {
			rc = ins_install_nodes(&nodes, &n_nodes, o, err);
			if (rc < 0)
				cm_error_wrap(err, "finding the nodes");
		}
		rep->nodes = n_nodes;
		if (rc == 0)
			rc = ins_install_mirror(&rep->images, &b, nodes, n_nodes, o, err);
	} else {
		ins_push_stats ps;
		rc = ins_push_bundle(&ps, &b, o, err);
		if (rc == 0) { /* every member was hashed, the metadata when opened */
			rep->verify.bytes = 0;
			for (size_t i = 0; i < b.n_m; i++)
				rep->verify.bytes += b.m[i].size;
		}
		/* an image counts as present when nothing of it had to be sent */
		if (ps.blobs_uploaded + ps.blobs_mounted + ps.manifests_put == 0)
			rep->images.skipped = ps.images;
		else
			rep->images.done = ps.images;
		rep->images.bytes = ps.bytes_uploaded;
		/* then point the nodes at that registry */
		ins_step_report files;
		memset(&files, 0, sizeof(files));
		cm_buf ca = CM_BUF_INIT;
		if (rc == 0 && o->ca)
			rc = cm_file_read(&ca, o->ca, (size_t)1 << 20, err);
		if (rc == 0 && (o->target == INS_T_KIND || o->target == INS_T_MINIKUBE)) {
			rc = ins_install_nodes(&nodes, &n_nodes, o, err);
			rep->nodes = n_nodes;
		}
		if (rc == 0)
			rc = ins_install_mirror_config(&files, &b, nodes, n_nodes, o->push_to,
						       ca.data, o->push_insecure, o, err);
		cm_buf_free(&ca);
		snprintf(rep->images.note, sizeof(rep->images.note),
			 "pushed to %s: %llu blobs uploaded, %llu already there, %llu mounted, "
			 "%llu manifests put; %llu config files written, %llu unchanged",
			 o->push_to, (unsigned long long)ps.blobs_uploaded,
			 (unsigned long long)ps.blobs_skipped, (unsigned long long)ps.blobs_mounted,
			 (unsigned long long)ps.manifests_put, (unsigned long long)files.done,
			 (unsigned long long)files.skipped);
	}
	rep->images.secs = now() - t2;
	if (rc < 0) {
		cm_error_wrap(err, "step 2/5 deliver images");
		goto out;
	}

	/* 3. manifests (with pull secrets for a registry that needs credentials) */
	double t3 = now();
	ins_say(o, INS_SAY_STEP, "step 3/5: apply %zu manifest files", b.n_manifests);
	ins_install_opts oo = *o;
	char *auth = NULL, host[300] = "";
	if (mode == INS_MODE_PUSH && o->push_to && (apply || o->target == INS_T_OKD)) {
		const char *to = o->push_to;
		if (strncmp(to, "https://", 8) == 0)
			to += 8;
		else if (strncmp(to, "http://", 7) == 0)
			to += 7;
		snprintf(host, sizeof(host), "%.*s", (int)strcspn(to, "/"), to);
		cm_error pe = {0};
		int found = ins_pull_auth(&auth, host, &pe);
		if (found < 0)
			ins_say(o, INS_SAY_WARN, "no pull secret for %s: %s", host, pe.msg);
		if (found == 1) {
			if (o->target == INS_T_OKD)
				rc = ins_okd_pull_secret(host, auth, o, err);
			oo.pull_host = host;
			oo.pull_auth = auth;
		}
		if (rc < 0) {
			ins_pull_auth_free(auth);
			cm_error_wrap(err, "step 3/5 apply manifests");
			goto out;
		}
	}
	if (apply) {
		rep->manifests.ran = 1;
		rc = ins_apply_manifests(&rep->manifests, &b, &oo, err);
		ins_pull_auth_free(auth);
		auth = NULL;
		if (rc < 0) {
			cm_error_wrap(err, "step 3/5 apply manifests");
			goto out;
		}
	} else {
		ins_pull_auth_free(auth);
		snprintf(rep->manifests.note, sizeof(rep->manifests.note), "%s", why);
		ins_say(o, INS_SAY_INFO, "%s", why);
	}
	rep->manifests.secs = now() - t3;

	/* 4. models */
	double t4 = now();
	ins_say(o, INS_SAY_STEP, "step 4/5: place %zu model files", b.n_models);
	if (o->models_dir && b.n_models) {
		rep->models.ran = 1;
		rc = ins_install_models(&rep->models, &b, o, err);
		if (rc < 0) {
			cm_error_wrap(err, "step 4/5 place models");
			goto out;
		}
	} else {
		snprintf(rep->models.note, sizeof(rep->models.note), "%s",
			 b.n_models == 0 ? "the bundle holds no model files"
					 : "not placed (give --models-dir PATH)");
		ins_say(o, INS_SAY_INFO, "%s", rep->models.note);
	}
	rep->models.secs = now() - t4;
out:
	free(nodes);
	ins_bundle_close(&b);
	rep->total_secs = now() - t0;
	return rc;
}
