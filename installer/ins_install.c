/* The orchestrator: the only file that calls the install steps. */
#include "ins_install.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_emit.h"
#include "cm_file.h"
#include "ins_apply.h"
#include "ins_receipt.h"
#include "ins_verify.h"
#include "ins_tools.h"

int ins_target_parse(ins_install_opts *o, const char *s, cm_error *err)
{
	const char *arg;
	const ins_driver *d = ins_driver_find(s, &arg);
	if (!d)
		return cm_error_set(err, CM_EUSAGE,
				    "unknown target '%s' (kind[:CLUSTER], minikube[:PROFILE], okd, "
				    "containerd[:SOCKET], crio, docker)",
				    s);
	if (arg && !d->takes_arg)
		return cm_error_set(err, CM_EUSAGE, "target %s takes no ':' argument", d->name);
	if (arg && strlen(arg) >= sizeof(o->target_arg))
		return cm_error_set(err, CM_EUSAGE, "target argument too long");
	o->target = d->kind;
	snprintf(o->target_arg, sizeof(o->target_arg), "%s", arg ? arg : "");
	return 0;
}

static const char *mode_name(ins_mode m)
{
	return m == INS_MODE_LOAD ? "load" : m == INS_MODE_MIRROR ? "mirror" : "push";
}

/* kubectl, or the driver's program (oc) when it is in PATH; its context. */
static int kube_setup(ins_kube *k, const ins_install_opts *o, const ins_driver *d, cm_error *err)
{
	char found[4096];
	memset(k, 0, sizeof(*k));
	const char *prog = o->kubectl						       ? o->kubectl
			   : d->kubectl && ins_which(d->kubectl, found, sizeof(found)) ? d->kubectl
										       : "kubectl";
	const char *arg = o->target_arg[0] ? o->target_arg : d->def_arg;
	int l1 = snprintf(k->prog, sizeof(k->prog), "%s", prog);
	int l2 = o->context   ? snprintf(k->context, sizeof(k->context), "%s", o->context)
		 : d->context ? snprintf(k->context, sizeof(k->context), d->context, arg)
			      : 0;
	if (l1 < 0 || (size_t)l1 >= sizeof(k->prog) || l2 < 0 || (size_t)l2 >= sizeof(k->context))
		return cm_error_set(err, CM_EUSAGE, "--kubectl or the kubectl context is too long");
	k->kubeconfig = o->kubeconfig;
	k->retries = o->retries;
	k->backoff = o->backoff;
	return 0;
}

/* Apply by default on cluster targets; node targets need --apply. */
static int want_apply(const ins_install_opts *o, const ins_driver *d, const ins_bundle *b,
		      char *why, size_t n)
{
	if (b->n_manifests == 0) {
		snprintf(why, n, "the bundle holds no manifests");
		return 0;
	}
	if (o->apply == 0) {
		snprintf(why, n, "skipped (--no-apply)");
		return 0;
	}
	if (o->apply == 1 || d->applies)
		return 1;
	snprintf(why, n, "not applied: %s is a node target (pass --apply to apply with kubectl)",
		 d->name);
	return 0;
}

/* Pull secrets in every namespace the manifests use (ins_apply calls back
 * once they exist). */
typedef struct pull_secret {
	const ins_ctx *c;
	const ins_kube *k;
	const char *host, *auth;
} pull_secret;

static int ns_secrets(void *ud, const char *const *ns, size_t n, cm_error *err)
{
	const pull_secret *p = ud;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = ins_ns_pull_secret(p->c, p->k, ns[i], p->host, p->auth, err);
	return rc;
}

/* Step 2, push mode: push, then point the nodes at the registry. */
static int push_step(ins_install_report *rep, ins_bundle *b, const ins_install_opts *o,
		     const ins_mirror_step_opts *mo, const ins_nodes_opts *no, const ins_ctx *c,
		     ins_node **nodes, size_t *n_nodes, cm_error *err)
{
	ins_push_stats ps;
	memset(&ps, 0, sizeof(ps));
	int rc = ins_push_bundle(&ps, c, b, o, err);
	if (rc == 0) { /* every member was hashed, the metadata when opened */
		rep->verify.bytes = 0;
		for (size_t i = 0; i < b->n_m; i++)
			rep->verify.bytes += b->m[i].size;
	}
	/* an image counts as present when nothing of it had to be sent */
	if (ps.blobs_uploaded + ps.blobs_mounted + ps.manifests_put == 0)
		rep->images.skipped = ps.images;
	else
		rep->images.done = ps.images;
	rep->images.bytes = ps.bytes_uploaded;
	ins_step_report files;
	memset(&files, 0, sizeof(files));
	cm_buf ca = CM_BUF_INIT;
	if (rc == 0 && o->ca)
		rc = cm_file_read(&ca, o->ca, (size_t)1 << 20, err);
	if (rc == 0 && mo->drv->discover) {
		rc = ins_nodes_find(nodes, n_nodes, c, no, err);
		rep->nodes = *n_nodes;
	}
	if (rc == 0)
		rc = ins_install_mirror_config(&files, b, *nodes, *n_nodes, o->push_to, ca.data, mo,
					       err);
	cm_buf_free(&ca);
	snprintf(rep->images.note, sizeof(rep->images.note),
		 "pushed to %.100s: %llu blobs uploaded, %llu already there, %llu mounted, "
		 "%llu manifests put, %llu referrers pushed, %llu already there; %llu config "
		 "files written, %llu unchanged",
		 o->push_to, (unsigned long long)ps.blobs_uploaded,
		 (unsigned long long)ps.blobs_skipped, (unsigned long long)ps.blobs_mounted,
		 (unsigned long long)ps.manifests_put, (unsigned long long)ps.referrers_pushed,
		 (unsigned long long)ps.referrers_present, (unsigned long long)files.done,
		 (unsigned long long)files.skipped);
	return rc;
}

/* A bundle that carries a newer ferry-install than this one: say so (the
 * newer one may know what this bundle needs). Its version is read from its
 * verified bytes; it is never run. */
static void warn_older(const ins_ctx *c, const ins_bundle *b)
{
	const ins_member *m = ins_tools_installer(b);
	char v[CM_VERSION_MAX];
	cm_error e = {0};
	if (!m)
		return;
	if (ins_tools_version(v, b, m, &e) < 0)
		ins_ctx_say(c, INS_SAY_WARN, "cannot read the version of %s: %s", m->path, e.msg);
	else if (v[0] && cm_version_cmp(cm_version(), v) < 0)
		ins_ctx_say(c, INS_SAY_WARN,
			    "this ferry-install is %s, older than the %s the bundle carries (%s): "
			    "extract it (docs/portable.md) and run that one",
			    cm_version(), v, m->path);
}

/* A delta: its record checked, its bases opened and verified; the load
 * step then takes the blobs it leaves out from the nodes or the bases. */
static int delta_setup(ins_delta_set *ds, ins_load_opts *lo, const ins_bundle *b,
		       const ins_install_opts *o, ins_mode mode, const ins_ctx *c, cm_error *err)
{
	if (mode == INS_MODE_PUSH && !o->archive_out)
		return 0; /* the push step opens the delta and its bases (push --base) */
	int rc = ins_delta_set_open(ds, b->x, b->bundle_json, b->bundle_json_len, o->bases,
				    o->n_bases, o->pubkey, o->insecure_skip_signature, err);
	if (rc < 0)
		return rc;
	if (!ds->is_delta) {
		if (o->n_bases)
			ins_ctx_say(c, INS_SAY_WARN, "%s is a full bundle; --base is not needed",
				    o->bundle);
		return 0;
	}
	ins_ctx_say(c, INS_SAY_INFO,
		    "a delta: %zu blobs left out, taken from the nodes or the %zu bases given",
		    ds->omitted.n_blobs, ds->n);
	if (mode != INS_MODE_LOAD || o->archive_out)
		return cm_error_set(err, CM_EUSAGE,
				    "a delta installs in load mode only (onto containerd nodes) "
				    "or push mode (for a mirror: serve NEW.tar OLD.tar...)");
	lo->delta = 1;
	lo->bases = ds->x;
	lo->n_bases = ds->n;
	return 0;
}

int ins_install_run(ins_install_report *rep, const ins_install_opts *o, cm_error *err)
{
	double t0 = ins_now();
	memset(rep, 0, sizeof(*rep));
	const ins_driver *drv = ins_driver_of(o->target);
	if (!drv)
		return cm_error_set(err, CM_EUSAGE, "no target");
	ins_ctx ctx = {o->dry_run, o->say, o->say_ud};
	const ins_ctx *c = &ctx;
	ins_kube kube;
	int rc = kube_setup(&kube, o, drv, err);
	if (rc < 0)
		return rc;
	ins_bundle b;
	ins_delta_set ds;
	memset(&ds, 0, sizeof(ds));
	ins_node *nodes = NULL;
	size_t n_nodes = 0;
	ins_mode mode = o->mode ? o->mode : drv->mode;
	ins_nodes_opts no = {drv,	  o->target_arg, &kube,	    o->nodes, o->node_runner,
			     o->ssh_port, o->node_sudo,	 o->runtime};
	ins_load_opts lo = {c,
			    o->snapshotter,
			    o->containerd_config,
			    o->platform,
			    o->unpack_lazy,
			    o->ingest_min,
			    o->ingest_stream,
			    o->jobs,
			    0,
			    NULL,
			    0};
	ins_mirror_step_opts mo = {c,
				   drv,
				   &kube,
				   o->registry,
				   o->ca,
				   o->push_insecure,
				   o->hosts_dir,
				   o->registries_d,
				   o->serve_listen,
				   o->serve_dir,
				   o->advertise,
				   o->pubkey};

	/* 1. verify: nothing is touched before this succeeds */
	ins_ctx_say(c, INS_SAY_STEP, "step 1/5: verify %s", o->bundle);
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
		rep->total_secs = ins_now() - t0;
		return rc;
	}
	rep->verify.done = b.n_m;
	rep->verify.bytes = b.bytes_hashed;
	snprintf(rep->verify.note, sizeof(rep->verify.note), "%.100s %.60s, %s%s", b.name,
		 b.version, b.fingerprint[0] ? "signature ok" : "signature NOT checked",
		 lazy ? ", content hashed while pushed" : "");
	ins_ctx_say(c, INS_SAY_INFO,
		    "verified %s %s%s: %zu images, %zu manifests, %zu model files (%s)", b.name,
		    b.version, lazy ? " (signature and index; content while pushing)" : "",
		    b.n_images, b.n_manifests, b.n_models,
		    b.fingerprint[0] ? b.fingerprint : "signature NOT checked");
	warn_older(c, &b);
	if ((rc = delta_setup(&ds, &lo, &b, o, mode, c, err)) < 0) {
		cm_error_wrap(err, "step 1/5 verify");
		goto out;
	}

	/* preflight, so that a missing tool stops us before any change */
	char why[256] = "", found[4096];
	int apply = want_apply(o, drv, &b, why, sizeof(why));
	if (apply && !ins_which(kube.prog, found, sizeof(found))) {
		rc = cm_error_set(err, CM_ENOTFOUND,
				  "step 3/5 apply manifests: %s not found in PATH (install it, "
				  "pass --kubectl PATH, or --no-apply)",
				  kube.prog);
		goto out;
	}

	/* 2. images */
	double t2 = ins_now();
	ins_ctx_say(c, INS_SAY_STEP, "step 2/5: deliver %zu images (%s mode, target %s%s%s)",
		    b.n_images, o->archive_out ? "archive" : mode_name(mode), drv->name,
		    o->target_arg[0] ? ":" : "", o->target_arg);
	rep->images.ran = 1;
	if (o->archive_out) {
		rc = ins_install_archive_out(&rep->images, &b, o->archive_out, &lo, err);
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
			snprintf(rep->verify.note, sizeof(rep->verify.note), "%.100s %.60s, %s",
				 b.name, b.version,
				 b.fingerprint[0] ? "signature ok" : "signature NOT checked");
		}
	} else if (mode == INS_MODE_PUSH) {
		rc = push_step(rep, &b, o, &mo, &no, c, &nodes, &n_nodes, err);
	} else {
		if (mode == INS_MODE_LOAD || drv->mirror_discover) {
			if ((rc = ins_nodes_find(&nodes, &n_nodes, c, &no, err)) < 0)
				cm_error_wrap(err, "finding the nodes");
			rep->nodes = n_nodes;
		}
		if (rc == 0 && mode == INS_MODE_LOAD)
			rc = ins_install_load(&rep->images, &b, nodes, n_nodes, &lo, err);
		else if (rc == 0)
			rc = ins_install_mirror(&rep->images, &b, nodes, n_nodes, &mo, err);
	}
	rep->images.secs = ins_now() - t2;
	if (rc < 0) {
		cm_error_wrap(err, "step 2/5 deliver images");
		goto out;
	}

	/* 3. manifests (with pull secrets for a registry that needs credentials) */
	double t3 = ins_now();
	ins_ctx_say(c, INS_SAY_STEP, "step 3/5: apply %zu manifest files", b.n_manifests);
	ins_apply_opts ao = {c, &kube, o->namespace_, o->wait_timeout, NULL, NULL};
	pull_secret ps = {c, &kube, NULL, NULL};
	char *auth = NULL, host[300] = "";
	if (mode == INS_MODE_PUSH && o->push_to && (apply || drv->files == INS_FILES_OKD)) {
		const char *to = o->push_to;
		if (strncmp(to, "https://", 8) == 0)
			to += 8;
		else if (strncmp(to, "http://", 7) == 0)
			to += 7;
		size_t hl = strcspn(to, "/");
		if (hl >= sizeof(host)) {
			rc = cm_error_set(err, CM_EUSAGE, "--to: the host is too long");
			goto out;
		}
		memcpy(host, to, hl);
		host[hl] = '\0';
		cm_error pe = {0};
		int have = ins_pull_auth(&auth, host, &pe);
		if (have < 0)
			ins_ctx_say(c, INS_SAY_WARN, "no pull secret for %s: %s", host, pe.msg);
		if (have == 1 && drv->files == INS_FILES_OKD) {
			rc = ins_okd_pull_secret(c, &kube, host, auth, err);
		} else if (have == 1) {
			ps.host = host;
			ps.auth = auth;
			ao.namespaces_ready = ns_secrets;
			ao.ud = &ps;
		}
		if (rc < 0) {
			cm_free_wiped(auth);
			cm_error_wrap(err, "step 3/5 apply manifests");
			goto out;
		}
	}
	if (apply) {
		rep->manifests.ran = 1;
		rc = ins_apply_manifests(&rep->manifests, &b, &ao, err);
	} else {
		snprintf(rep->manifests.note, sizeof(rep->manifests.note), "%s", why);
		ins_ctx_say(c, INS_SAY_INFO, "%s", why);
	}
	cm_free_wiped(auth);
	if (rc < 0) {
		cm_error_wrap(err, "step 3/5 apply manifests");
		goto out;
	}
	rep->manifests.secs = ins_now() - t3;

	/* 4. models */
	double t4 = ins_now();
	ins_ctx_say(c, INS_SAY_STEP, "step 4/5: place %zu model files", b.n_models);
	ins_say_storage_uris(c, &b);
	if (o->models_dir && b.n_models) {
		rep->models.ran = 1;
		rc = ins_install_models(&rep->models, c, &b, o->models_dir, err);
		if (rc < 0) {
			cm_error_wrap(err, "step 4/5 place models");
			goto out;
		}
	} else {
		snprintf(rep->models.note, sizeof(rep->models.note), "%s",
			 b.n_models == 0 ? "the bundle holds no model files"
					 : "not placed (give --models-dir PATH)");
		ins_ctx_say(c, INS_SAY_INFO, "%s", rep->models.note);
	}
	rep->models.secs = ins_now() - t4;
out:
	free(nodes);
	ins_delta_set_free(&ds);
	ins_bundle_close(&b);
	rep->total_secs = ins_now() - t0;
	return rc;
}
