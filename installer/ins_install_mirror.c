/* Mirror mode: run (or use) a registry serving the bundle, then point the
 * nodes (or the cluster) at it with ins_mirror's files. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cm_file.h"
#include "cm_emit.h"
#include "cm_parse.h"
#include "ins_install.h"
#include "ins_mirror.h"

extern char **environ;

/* The registry nodes will use: its address, CA and whether we started it. */
typedef struct mirror {
	char addr[600]; /* HOST:PORT as nodes reach it */
	char ca_path[PATH_MAX];
	cm_buf ca; /* PEM */
	int plain_http;
	int started, reused;
	char dir[PATH_MAX];
	long pid;
} mirror;

static int read_small(cm_buf *b, const char *path, cm_error *err)
{
	b->len = 0;
	return cm_file_read(b, path, (size_t)1 << 20, err);
}

/* The host nodes reach us at, when listening on every address. */
static int advertise_host(char *out, size_t n, const ins_mirror_step_opts *o, cm_error *err)
{
	char h[256];
	ins_listen_host(h, sizeof(h), o->serve_listen ? o->serve_listen : "0.0.0.0:5000");
	const char *pick = o->advertise ? o->advertise : h[0] ? h : o->drv->advertise;
	if (!pick && o->drv->find != INS_FIND_KIND) { /* a cluster: this host's name */
		if (gethostname(h, sizeof(h)) != 0 || !h[0])
			return cm_error_set(
			    err, CM_EUSAGE,
			    "give --advertise HOST (an address the cluster reaches)");
		pick = h;
	}
	if (pick) {
		snprintf(out, n, "%s", pick);
		return 0;
	}
	/* kind: the gateway of the kind docker network */
	const char *q[] = {"docker", "network",	 "inspect",
			   "kind",   "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
			   NULL};
	cm_buf out_b = CM_BUF_INIT;
	int rc = ins_ctx_query(o->ctx, &out_b, NULL, q, err);
	char gw[64] = "";
	for (const char *t = rc == 0 && out_b.data ? out_b.data : ""; *t;) {
		size_t l = strcspn(t, " \n");
		if (l && l < sizeof(gw) && !memchr(t, ':', l)) { /* IPv4 */
			memcpy(gw, t, l);
			gw[l] = '\0';
			break;
		}
		t += l;
		t += strspn(t, " \n");
	}
	cm_buf_free(&out_b);
	if (!gw[0])
		return rc < 0 ? cm_error_wrap(err,
					      "finding the kind network gateway (give --advertise)")
			      : cm_error_set(
				    err, CM_EFAIL,
				    "the kind network has no IPv4 gateway (give --advertise)");
	snprintf(out, n, "%s", gw);
	return 0;
}

/* HOST:PORT nodes reach the registry at: adv and the port of the URL our
 * serve writes into its ready file ("SCHEME://HOST:PORT\n"). */
static int ready_addr(mirror *m, const char *adv, const char *ready, cm_error *err)
{
	const char *c = strrchr(ready, ':');
	size_t l = c ? strcspn(c + 1, "\n") : 0;
	char p[8];
	long port = 0;
	if (l && l < sizeof(p)) {
		memcpy(p, c + 1, l);
		p[l] = '\0';
	}
	if (!l || l >= sizeof(p) || cm_parse_long(&port, p, 1, 65535) < 0)
		return cm_error_set(err, CM_EFAIL, "the registry's ready file names no port");
	snprintf(m->addr, sizeof(m->addr), "%.580s:%ld", adv, port);
	return 0;
}

/* m->dir/name (at most 1 MiB). */
static int read_in(cm_buf *b, const mirror *m, const char *name)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", m->dir, name);
	return read_small(b, p, NULL);
}

static int pid_alive(long pid)
{
	return pid > 0 && kill((pid_t)pid, 0) == 0;
}

/* Start `ferry-install serve` detached, or reuse the one already running
 * from the same folder for the same bundle. */
static int start_serve(mirror *m, const ins_bundle *b, const ins_mirror_step_opts *o, cm_error *err)
{
	char self[PATH_MAX];
	cm_buf t = CM_BUF_INIT;
	int rc;
	if (o->serve_dir)
		snprintf(m->dir, sizeof(m->dir), "%s", o->serve_dir);
	else {
		char obj[96];
		ins_mirror_object_name(obj, sizeof(obj), b->name);
		snprintf(m->dir, sizeof(m->dir), "/var/lib/ferry/%s", obj);
	}
	char adv[300];
	if ((rc = advertise_host(adv, sizeof(adv), o, err)) < 0)
		return rc;
	/* already running? (its pid, bundle and ready file) */
	cm_buf tb = CM_BUF_INIT, tr = CM_BUF_INIT;
	if (read_in(&t, m, "serve.pid") == 0 && t.data && read_in(&tb, m, "serve.bundle") == 0 &&
	    tb.data && strcmp(tb.data, b->path) == 0 && read_in(&tr, m, "ready") == 0 && tr.data &&
	    pid_alive(m->pid = strtol(t.data, NULL, 10)) &&
	    ready_addr(m, adv, tr.data, NULL) == 0) {
		m->reused = 1;
		ins_ctx_say(o->ctx, INS_SAY_INFO,
			    "the registry is already running (pid %ld, %s): reused", m->pid,
			    m->addr);
	}
	cm_buf_free(&t);
	cm_buf_free(&tb);
	cm_buf_free(&tr);
	if ((size_t)snprintf(m->ca_path, sizeof(m->ca_path), "%s/tls/ca.crt", m->dir) >=
	    sizeof(m->ca_path))
		return cm_error_set(err, CM_EUSAGE, "--serve-dir is too long: %.100s...", m->dir);
	if (m->reused)
		return read_small(&m->ca, m->ca_path, err);

	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0)
		return cm_error_sys(err, errno, "finding ferry-install itself");
	self[sl] = '\0';
	ins_argv a = {NULL, 0, 0};
	const char *listen = o->serve_listen ? o->serve_listen : "0.0.0.0:5000";
	char tls[PATH_MAX + 8], ready[PATH_MAX + 8], alog[PATH_MAX + 16], lhost[256];
	snprintf(tls, sizeof(tls), "%s/tls", m->dir);
	snprintf(ready, sizeof(ready), "%s/ready", m->dir);
	snprintf(alog, sizeof(alog), "%s/access.log", m->dir);
	ins_listen_host(lhost, sizeof(lhost), listen);
	const char *head[] = {
	    self, "serve",	   b->path, "--listen",	    listen, "--tls-self-signed",
	    tls,  "--hostname",	   adv,	    "--ready-file", ready,  "--access-log",
	    alog, "--verify=lazy", NULL};
	const char *hn[] = {"--hostname", lhost, NULL}, *pk[] = {"--pubkey", o->pubkey, NULL};
	const char *nosig[] = {"--insecure-skip-signature", NULL};
	rc = ins_argv_addv(&a, head, err);
	if (rc == 0 && lhost[0] && strcmp(lhost, adv) != 0)
		rc = ins_argv_addv(&a, hn, err);
	if (rc == 0)
		rc = ins_argv_addv(&a, o->pubkey ? pk : nosig, err);
	if (rc < 0)
		goto out;
	if (!ins_ctx_will(o->ctx, (const char *const *)a.v, " (detached; log in serve.log)")) {
		/* --listen was checked to be HOST:PORT (cmd_install.c) */
		const char *lc = strrchr(listen, ':');
		snprintf(m->addr, sizeof(m->addr), "%s:%s", adv, lc ? lc + 1 : "5000");
		goto out;
	}
	if ((rc = cm_mkdirs(m->dir, err)) < 0)
		goto out;
	unlink(ready);
	char logp[PATH_MAX + 16];
	snprintf(logp, sizeof(logp), "%s/serve.log", m->dir);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	sigset_t def, none;
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGHUP);
	sigemptyset(&none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF |
					  POSIX_SPAWN_SETSIGMASK);
	pid_t pid;
	int sr = posix_spawn(&pid, self, &fa, &at, a.v, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (sr != 0) {
		rc = cm_error_sys(err, sr, "starting the registry");
		goto out;
	}
	m->pid = pid;
	m->started = 1;
	/* wait for it to answer */
	cm_buf r = CM_BUF_INIT;
	int st;
	for (int i = 0;; i++) {
		if (read_small(&r, ready, NULL) == 0 && r.data && r.len)
			break;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			cm_buf lg = CM_BUF_INIT;
			read_small(&lg, logp, NULL);
			char *last = lg.data ? lg.data : (char *)"";
			size_t l = strlen(last);
			while (l && last[l - 1] == '\n')
				last[--l] = '\0';
			char *nl = strrchr(last, '\n');
			rc = cm_error_set(err, CM_EFAIL, "the registry exited (%s)",
					  nl ? nl + 1 : last);
			cm_buf_free(&lg);
			break;
		}
		if (i > 6000) { /* 10 minutes */
			kill(pid, SIGTERM);
			rc = cm_error_set(err, CM_EFAIL,
					  "the registry did not become ready (see %s)", logp);
			break;
		}
		ins_sleep(0.1);
	}
	if (rc == 0) {
		char pidtxt[32], bp[PATH_MAX + 32];
		int pl = snprintf(pidtxt, sizeof(pidtxt), "%ld\n", (long)pid);
		snprintf(bp, sizeof(bp), "%s/serve.pid", m->dir);
		rc = ready_addr(m, adv, r.data, err);
		if (rc == 0)
			rc = cm_file_write_atomic(bp, pidtxt, (size_t)pl, 0644, err);
		snprintf(bp, sizeof(bp), "%s/serve.bundle", m->dir);
		if (rc == 0)
			rc = cm_file_write_atomic(bp, b->path, strlen(b->path), 0644, err);
		if (rc == 0)
			rc = read_small(&m->ca, m->ca_path, err);
		ins_ctx_say(o->ctx, INS_SAY_INFO,
			    "registry running: https://%s (pid %ld; stop it with kill %ld)",
			    m->addr, (long)pid, (long)pid);
	}
	cm_buf_free(&r);
out:
	ins_argv_free(&a);
	return rc;
}

/* Write files into dir on a node (or locally): skip the unchanged ones. */
static int put_files(ins_step_report *rep, const ins_mfiles *f, const char *dir, const ins_node *nd,
		     const ins_ctx *c, cm_error *err)
{
	int rc = 0;
	for (size_t i = 0; i < f->n && rc == 0; i++) {
		char path[PATH_MAX + 1100], parent[PATH_MAX + 1100];
		int l = snprintf(path, sizeof(path), "%s/%s", dir, f->v[i].path);
		if (l < 0 || (size_t)l >= sizeof(path))
			return cm_error_set(err, CM_EINVAL, "path too long under %.200s", dir);
		memcpy(parent, path, (size_t)l + 1);
		*strrchr(parent, '/') = '\0';
		const char *text = f->v[i].text;
		cm_buf cur = CM_BUF_INIT;
		ins_proc_io io = {.out = &cur};
		const char *cat[] = {"cat", path, NULL};
		int local = !nd || nd->runner.kind == INS_RUN_LOCAL;
		int same = (local ? cm_file_read(&cur, path, (size_t)4 << 20, NULL)
				  : ins_runner_run(&nd->runner, cat, &io, NULL)) == 0 &&
			   cur.data && strcmp(cur.data, text) == 0;
		cm_buf_free(&cur);
		if (same) {
			rep->skipped++;
			continue;
		}
		rep->done++;
		if (local) {
			if (ins_ctx_change(c, "write %s", path) &&
			    (rc = cm_mkdirs(parent, err)) == 0)
				rc = cm_file_write_atomic(path, text, strlen(text),
							  (mode_t)f->v[i].mode, err);
			continue;
		}
		/* a remote node: mkdir -p, then tee */
		const char *mk[] = {"mkdir", "-p", parent, NULL};
		const char *tee[] = {"tee", path, NULL};
		rc = ins_ctx_run(c, &nd->runner, mk, NULL, NULL, err);
		ins_proc_io in = {.in = text, .in_len = strlen(text)};
		if (rc == 0)
			rc = ins_ctx_run(c, &nd->runner, tee, &in, " < (file content)", err);
		if (rc < 0) {
			char d[600];
			ins_runner_desc(d, sizeof(d), &nd->runner);
			cm_error_wrap(err, "%s: writing %s", d, path);
		}
	}
	return rc;
}

/* OKD: apply the mirror sets and the CA with oc, and point image.config at it. */
static int okd_apply(ins_step_report *rep, const ins_mfiles *f, int patch_image_config,
		     const ins_mirror_step_opts *o, cm_error *err)
{
	int rc = 0;
	static const char *const order[] = {"registry-ca-configmap.yaml",
					    "imagedigestmirrorset.yaml", "imagetagmirrorset.yaml"};
	static const char *const apply[] = {
	    "apply", "--server-side", "--force-conflicts", "--field-manager=ferry", "-f", "-",
	    NULL};
	for (size_t i = 0; i < 3 && rc == 0; i++) {
		const ins_mfile *mf = ins_mirror_find(f, order[i]);
		if (!mf)
			continue;
		if (i == 2)
			ins_ctx_say(
			    o->ctx, INS_SAY_WARN,
			    "applying an ImageTagMirrorSet drains and reboots every node (%zu "
			    "repositories are referenced by tag; pin images by digest to avoid it)",
			    f->tag_repos);
		char sfx[96];
		snprintf(sfx, sizeof(sfx), " < %s", order[i]);
		rc = ins_kube_run(o->ctx, o->kube, apply, mf->text, strlen(mf->text), sfx, NULL,
				  err);
		if (rc < 0)
			cm_error_wrap(err, "applying %s", order[i]);
		rep->done++;
	}
	if (rc < 0 || !f->configmap[0] || !patch_image_config)
		return rc;
	/* image.config: point additionalTrustedCA at our ConfigMap unless it
	 * already names it */
	json_t *pj =
	    json_pack("{s:{s:{s:s}}}", "spec", "additionalTrustedCA", "name", f->configmap);
	char *patch = NULL;
	rc = pj ? cm_json_text(&patch, pj, 1024, 0, err)
		: cm_error_set(err, CM_EINVAL, "the CA ConfigMap's name is not UTF-8");
	json_decref(pj);
	const char *rest[] = {
	    "patch", "image.config.openshift.io/cluster", "--type=merge", "-p", patch, NULL};
	if (rc == 0 && (rc = ins_kube_run(o->ctx, o->kube, rest, NULL, 0, NULL, NULL, err)) < 0)
		cm_error_wrap(err, "trusting the mirror's CA (image.config)");
	free(patch);
	rep->done++;
	return rc;
}

/* The ConfigMap image.config already trusts, if any: ours goes there too. */
static void okd_current_ca_configmap(char *out, size_t n, const ins_mirror_step_opts *o)
{
	out[0] = '\0';
	ins_ctx_say(o->ctx, INS_SAY_INFO, "query: which ConfigMap image.config trusts");
	json_t *j = NULL;
	if (ins_kube_get(&j, o->ctx, o->kube, "image.config.openshift.io", "cluster", NULL,
			 (size_t)1 << 20, 0, NULL) == 1) {
		const char *name = json_string_value(json_object_get(
		    json_object_get(json_object_get(j, "spec"), "additionalTrustedCA"), "name"));
		if (name && *name && strlen(name) < n)
			snprintf(out, n, "%s", name);
	}
	json_decref(j);
}

int ins_install_mirror(ins_step_report *rep, const ins_bundle *b, const ins_node *nodes,
		       size_t n_nodes, const ins_mirror_step_opts *o, cm_error *err)
{
	mirror m;
	memset(&m, 0, sizeof(m));
	int rc = 0;
	if (o->registry) {
		snprintf(m.addr, sizeof(m.addr), "%s", o->registry);
		m.plain_http = o->plain_http;
		if (o->ca) {
			snprintf(m.ca_path, sizeof(m.ca_path), "%s", o->ca);
			rc = read_small(&m.ca, o->ca, err);
		} else if (!m.plain_http) {
			ins_ctx_say(o->ctx, INS_SAY_WARN,
				    "no --ca for %s: nodes must already trust its certificate",
				    m.addr);
		}
	} else {
		rc = start_serve(&m, b, o, err);
		if (rc < 0)
			cm_error_wrap(err, "starting the registry");
	}
	if (rc < 0)
		goto out;
	ins_step_report files;
	memset(&files, 0, sizeof(files));
	ins_mirror_step_opts mo = *o;
	mo.plain_http = m.plain_http;
	rc = ins_install_mirror_config(&files, b, nodes, n_nodes, m.addr, m.ca.data, &mo, err);
	if (rc == 0) {
		/* images count as done when anything changed, else as present */
		if (files.done == 0 && !m.started)
			rep->skipped = b->n_images;
		else
			rep->done = b->n_images;
		snprintf(rep->note, sizeof(rep->note),
			 "served by %.100s%s; %llu config files written, %llu unchanged", m.addr,
			 m.started  ? " (started)"
			 : m.reused ? " (already running)"
				    : "",
			 (unsigned long long)files.done, (unsigned long long)files.skipped);
	}
out:
	cm_buf_free(&m.ca);
	return rc;
}

int ins_install_mirror_config(ins_step_report *rep, const ins_bundle *b, const ins_node *nodes,
			      size_t n_nodes, const char *addr, const char *ca_pem,
			      const ins_mirror_step_opts *o, cm_error *err)
{
	ins_mfiles f;
	ins_mirror_opts mo = {addr, ca_pem, o->plain_http, b->name, NULL};
	int rc = 0;
	char cm[128] = "";
	switch (o->drv->files) {
	case INS_FILES_OKD:
		okd_current_ca_configmap(cm, sizeof(cm), o);
		if (cm[0]) {
			mo.ca_configmap = cm;
			ins_ctx_say(o->ctx, INS_SAY_INFO,
				    "image.config already trusts ConfigMap %s: the mirror's CA is "
				    "added to it",
				    cm);
		}
		rc = ins_mirror_render(&f, b->images, b->n_images, INS_MF_OKD, &mo, err);
		if (rc == 0)
			rc = okd_apply(rep, &f, cm[0] == '\0', o, err);
		break;
	case INS_FILES_REGISTRIES: {
		rc = ins_mirror_render(&f, b->images, b->n_images, INS_MF_REGISTRIES, &mo, err);
		/* registries.conf.d/ferry.conf and certs.d/... under /etc/containers,
		 * or next to --registries-dir */
		char base[PATH_MAX] = "/etc/containers";
		if (o->registries_d) {
			snprintf(base, sizeof(base), "%s", o->registries_d);
			char *s = strrchr(base, '/');
			if (s && s != base)
				*s = '\0';
			else
				snprintf(base, sizeof(base), ".");
		}
		if (rc == 0 && o->registries_d) {
			/* honour the exact folder given for the drop-in */
			for (size_t i = 0; i < f.n; i++)
				if (strncmp(f.v[i].path, "registries.conf.d/", 18) == 0) {
					char tail[sizeof(f.v[i].path)];
					snprintf(tail, sizeof(tail), "%s", f.v[i].path + 18);
					const char *leaf = strrchr(o->registries_d, '/');
					if ((size_t)snprintf(f.v[i].path, sizeof(f.v[i].path),
							     "%s/%s",
							     leaf ? leaf + 1 : o->registries_d,
							     tail) >= sizeof(f.v[i].path))
						rc = cm_error_set(err, CM_EUSAGE,
								  "--registries-dir is too long");
				}
		}
		if (rc == 0)
			rc = put_files(rep, &f, base, NULL, o->ctx, err);
		if (rc == 0)
			ins_ctx_say(o->ctx, INS_SAY_INFO,
				    "CRI-O reads registries.conf.d when it pulls; reload it if it "
				    "cached the old configuration (systemctl reload crio)");
		break;
	}
	case INS_FILES_CONTAINERD: {
		/* containerd nodes: hosts.toml per upstream host; CRI-O nodes (minikube
		 * --container-runtime=cri-o): the registries.conf drop-in */
		rc = ins_mirror_render(&f, b->images, b->n_images, INS_MF_CONTAINERD, &mo, err);
		ins_mfiles g;
		memset(&g, 0, sizeof(g));
		const char *dir = o->hosts_dir ? o->hosts_dir : "/etc/containerd/certs.d";
		if (rc == 0 && n_nodes == 0)
			rc = put_files(rep, &f, dir, NULL, o->ctx, err);
		for (size_t i = 0; i < n_nodes && rc == 0; i++) {
			const ins_node *nd = &nodes[i];
			if (nd->runtime == INS_RT_DOCKER) {
				rc = cm_error_set(
				    err, CM_EUSAGE,
				    "node %s runs docker, which has no per-registry mirror "
				    "configuration for every host: use --mode load",
				    nd->name);
			} else if (nd->runtime == INS_RT_CRIO) {
				if (!g.n)
					rc = ins_mirror_render(&g, b->images, b->n_images,
							       INS_MF_REGISTRIES, &mo, err);
				if (rc == 0)
					rc = put_files(rep, &g, "/etc/containers", nd, o->ctx, err);
			} else {
				rc = put_files(rep, &f, dir, nd, o->ctx, err);
			}
		}
		ins_mfiles_free(&g);
	}
	}
	ins_mfiles_free(&f);
	return rc;
}
