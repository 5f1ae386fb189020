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
#include <time.h>
#include <unistd.h>

#include "cm_file.h"
#include "cm_emit.h"
#include "ins_install.h"
#include "ins_mirror.h"

extern char **environ;

static void sleep_ms(long ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

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

/* HOST part of ADDR:PORT (brackets kept off IPv6). */
static void listen_host(char *out, size_t n, const char *listen)
{
	snprintf(out, n, "%s", listen);
	char *c = strrchr(out, ':');
	if (c)
		*c = '\0';
	if (out[0] == '[') {
		memmove(out, out + 1, strlen(out));
		char *e = strchr(out, ']');
		if (e)
			*e = '\0';
	}
}

/* The host nodes reach us at, when listening on every address. */
static int advertise_host(char *out, size_t n, const ins_install_opts *o, cm_error *err)
{
	char h[256];
	listen_host(h, sizeof(h), o->serve_listen ? o->serve_listen : "0.0.0.0:5000");
	if (o->advertise) {
		snprintf(out, n, "%s", o->advertise);
		return 0;
	}
	if (h[0] && strcmp(h, "0.0.0.0") != 0 && strcmp(h, "::") != 0) {
		snprintf(out, n, "%s", h);
		return 0;
	}
	switch (o->target) {
	case INS_T_KIND: {
		/* the gateway of the kind docker network */
		const char *q[] = {"docker",   "network",
				   "inspect",  "kind",
				   "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
				   NULL};
		cm_buf out_b = CM_BUF_INIT;
		ins_proc_io io;
		memset(&io, 0, sizeof(io));
		io.out = &out_b;
		ins_say_cmd(o, q, " (read-only query)");
		int rc = ins_proc_run(q, &io, err);
		char gw[64] = "";
		char *save = NULL;
		for (char *t = rc == 0 && out_b.data ? strtok_r(out_b.data, " \n", &save) : NULL; t;
		     t = strtok_r(NULL, " \n", &save))
			if (!strchr(t, ':')) {
				snprintf(gw, sizeof(gw), "%s", t);
				break;
			}
		cm_buf_free(&out_b);
		if (!gw[0])
			return rc < 0
				   ? cm_error_wrap(
					 err, "finding the kind network gateway (give --advertise)")
				   : cm_error_set(
					 err, CM_EFAIL,
					 "the kind network has no IPv4 gateway (give --advertise)");
		snprintf(out, n, "%s", gw);
		return 0;
	}
	case INS_T_MINIKUBE:
		snprintf(out, n, "host.minikube.internal");
		return 0;
	case INS_T_OKD:
		if (gethostname(h, sizeof(h)) == 0 && h[0]) {
			snprintf(out, n, "%s", h);
			return 0;
		}
		return cm_error_set(err, CM_EUSAGE,
				    "give --advertise HOST (an address the cluster reaches)");
	default:
		snprintf(out, n, "127.0.0.1");
		return 0;
	}
}

static int pid_alive(long pid)
{
	return pid > 0 && kill((pid_t)pid, 0) == 0;
}

/* Start `ferry-install serve` detached, or reuse the one already running
 * from the same folder for the same bundle. */
static int start_serve(mirror *m, const ins_bundle *b, const ins_install_opts *o, cm_error *err)
{
	char path[PATH_MAX + 64], self[PATH_MAX];
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
	/* already running? */
	snprintf(path, sizeof(path), "%s/serve.pid", m->dir);
	if (read_small(&t, path, NULL) == 0 && t.data) {
		long pid = strtol(t.data, NULL, 10);
		char bpath[PATH_MAX + 64];
		cm_buf tb = CM_BUF_INIT, tr = CM_BUF_INIT;
		snprintf(bpath, sizeof(bpath), "%s/serve.bundle", m->dir);
		int same =
		    read_small(&tb, bpath, NULL) == 0 && tb.data && strcmp(tb.data, b->path) == 0;
		snprintf(bpath, sizeof(bpath), "%s/ready", m->dir);
		int ready = read_small(&tr, bpath, NULL) == 0 && tr.data;
		if (pid_alive(pid) && same && ready) {
			char *u = strstr(tr.data, "://");
			char port[16] = "";
			char *c = u ? strrchr(u + 3, ':') : NULL;
			if (c)
				snprintf(port, sizeof(port), "%.*s", (int)strcspn(c + 1, "/\n"),
					 c + 1);
			snprintf(m->addr, sizeof(m->addr), "%s:%s", adv, port);
			m->reused = 1;
			m->pid = pid;
			ins_say(o, INS_SAY_INFO,
				"the registry is already running (pid %ld, %s): reused", pid,
				m->addr);
		}
		cm_buf_free(&tb);
		cm_buf_free(&tr);
	}
	cm_buf_free(&t);
	snprintf(m->ca_path, sizeof(m->ca_path), "%s/tls/ca.crt", m->dir);
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
	listen_host(lhost, sizeof(lhost), listen);
	const char *head[] = {
	    self, "serve",	   b->path, "--listen",	    listen, "--tls-self-signed",
	    tls,  "--hostname",	   adv,	    "--ready-file", ready,  "--access-log",
	    alog, "--verify=lazy", NULL};
	rc = ins_argv_addv(&a, head, err);
	if (rc == 0 && strcmp(lhost, adv) != 0 && strcmp(lhost, "0.0.0.0") != 0 && lhost[0]) {
		rc = ins_argv_add(&a, "--hostname", err);
		if (rc == 0)
			rc = ins_argv_add(&a, lhost, err);
	}
	if (rc == 0 && o->pubkey) {
		rc = ins_argv_add(&a, "--pubkey", err);
		if (rc == 0)
			rc = ins_argv_add(&a, o->pubkey, err);
	} else if (rc == 0) {
		rc = ins_argv_add(&a, "--insecure-skip-signature", err);
	}
	if (rc < 0)
		goto out;
	ins_say_cmd(o, (const char *const *)a.v, " (detached; log in serve.log)");
	if (o->dry_run) {
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
		sleep_ms(100);
	}
	if (rc == 0) {
		char *u = strstr(r.data, "://");
		char *c = u ? strrchr(u + 3, ':') : NULL;
		char port[16] = "";
		if (c)
			snprintf(port, sizeof(port), "%.*s", (int)strcspn(c + 1, "/\n"), c + 1);
		snprintf(m->addr, sizeof(m->addr), "%s:%s", adv, port);
		char pidtxt[32], bp[PATH_MAX + 32];
		int pl = snprintf(pidtxt, sizeof(pidtxt), "%ld\n", (long)pid);
		snprintf(bp, sizeof(bp), "%s/serve.pid", m->dir);
		rc = cm_file_write_atomic(bp, pidtxt, (size_t)pl, 0644, err);
		snprintf(bp, sizeof(bp), "%s/serve.bundle", m->dir);
		if (rc == 0)
			rc = cm_file_write_atomic(bp, b->path, strlen(b->path), 0644, err);
		if (rc == 0)
			rc = read_small(&m->ca, m->ca_path, err);
		ins_say(o, INS_SAY_INFO,
			"registry running: https://%s (pid %ld; stop it with kill %ld)", m->addr,
			(long)pid, (long)pid);
	}
	cm_buf_free(&r);
out:
	ins_argv_free(&a);
	return rc;
}

/* Write files into dir on a node (or locally): skip the unchanged ones. */
static int put_files(ins_step_report *rep, const ins_mfiles *f, const char *dir, const ins_node *nd,
		     const ins_install_opts *o, cm_error *err)
{
	int rc = 0;
	for (size_t i = 0; i < f->n && rc == 0; i++) {
		char path[PATH_MAX + 1100], parent[PATH_MAX + 1100];
		snprintf(path, sizeof(path), "%s/%s", dir, f->v[i].path);
		snprintf(parent, sizeof(parent), "%s", path);
		*strrchr(parent, '/') = '\0';
		const char *text = f->v[i].text;
		if (!nd || nd->runner.kind == INS_RUN_LOCAL) {
			cm_buf cur = CM_BUF_INIT;
			if (cm_file_read(&cur, path, (size_t)4 << 20, NULL) == 0 && cur.data &&
			    strcmp(cur.data, text) == 0) {
				rep->skipped++;
				cm_buf_free(&cur);
				continue;
			}
			cm_buf_free(&cur);
			ins_say(o, INS_SAY_INFO, "%s %s", o->dry_run ? "would write" : "write",
				path);
			if (!o->dry_run) {
				rc = cm_mkdirs(parent, err);
				if (rc == 0)
					rc = cm_file_write_atomic(path, text, strlen(text),
								  (mode_t)f->v[i].mode, err);
			}
			rep->done++;
			continue;
		}
		/* a remote node: compare with cat, write with mkdir -p + tee */
		const char *cat[] = {"cat", path, NULL};
		const char *mk[] = {"mkdir", "-p", parent, NULL};
		const char *tee[] = {"tee", path, NULL};
		ins_argv w = {NULL, 0, 0};
		cm_buf cur = CM_BUF_INIT;
		ins_proc_io io;
		memset(&io, 0, sizeof(io));
		io.out = &cur;
		rc = ins_runner_wrap(&w, &nd->runner, cat, err);
		int same = rc == 0 && !o->dry_run &&
			   ins_proc_run((const char *const *)w.v, &io, NULL) == 0 && cur.data &&
			   strcmp(cur.data, text) == 0;
		ins_argv_free(&w);
		cm_buf_free(&cur);
		if (same) {
			rep->skipped++;
			continue;
		}
		for (int step = 0; step < 2 && rc == 0; step++) {
			rc = ins_runner_wrap(&w, &nd->runner, step ? tee : mk, err);
			if (rc == 0)
				ins_say_cmd(o, (const char *const *)w.v,
					    step ? " < (file content)" : NULL);
			if (rc == 0 && !o->dry_run) {
				memset(&io, 0, sizeof(io));
				io.in = text;
				io.in_len = strlen(text);
				rc = ins_proc_run((const char *const *)w.v, &io, err);
			}
			ins_argv_free(&w);
		}
		if (rc < 0) {
			char d[600];
			ins_runner_desc(d, sizeof(d), &nd->runner);
			cm_error_wrap(err, "%s: writing %s", d, path);
		}
		rep->done++;
	}
	return rc;
}

/* OKD: apply the mirror sets and the CA with oc, and point image.config at it. */
static int okd_apply(ins_step_report *rep, const ins_mfiles *f, int patch_image_config,
		     const ins_install_opts *o, cm_error *err)
{
	int rc = 0;
	static const char *const order[] = {"registry-ca-configmap.yaml",
					    "imagedigestmirrorset.yaml", "imagetagmirrorset.yaml"};
	for (size_t i = 0; i < 3 && rc == 0; i++) {
		const ins_mfile *mf = ins_mirror_find(f, order[i]);
		if (!mf)
			continue;
		if (i == 2)
			ins_say(
			    o, INS_SAY_WARN,
			    "applying an ImageTagMirrorSet drains and reboots every node (%zu "
			    "repositories are referenced by tag; pin images by digest to avoid it)",
			    f->tag_repos);
		ins_argv a = {NULL, 0, 0};
		const char *rest[] = {"apply",
				      "--server-side",
				      "--force-conflicts",
				      "--field-manager=ferry",
				      "-f",
				      "-",
				      NULL};
		rc = ins_kubectl_argv(&a, o, err);
		if (rc == 0)
			rc = ins_argv_addv(&a, rest, err);
		char sfx[96];
		snprintf(sfx, sizeof(sfx), " < %s", order[i]);
		if (rc == 0)
			ins_say_cmd(o, (const char *const *)a.v, sfx);
		if (rc == 0 && !o->dry_run) {
			ins_proc_io io;
			memset(&io, 0, sizeof(io));
			io.in = mf->text;
			io.in_len = strlen(mf->text);
			rc = ins_proc_run((const char *const *)a.v, &io, err);
			if (rc < 0)
				cm_error_wrap(err, "applying %s", order[i]);
		}
		ins_argv_free(&a);
		rep->done++;
	}
	if (rc < 0 || !f->configmap[0] || !patch_image_config)
		return rc;
	/* image.config: point additionalTrustedCA at our ConfigMap unless it
	 * already names it */
	ins_argv a = {NULL, 0, 0};
	rc = ins_kubectl_argv(&a, o, err);
	json_t *pj =
	    json_pack("{s:{s:{s:s}}}", "spec", "additionalTrustedCA", "name", f->configmap);
	char *patch = NULL;
	if (rc == 0)
		rc = pj ? cm_json_text(&patch, pj, 1024, 0, err)
			: cm_error_set(err, CM_EINVAL, "the CA ConfigMap's name is not UTF-8");
	json_decref(pj);
	const char *rest[] = {
	    "patch", "image.config.openshift.io/cluster", "--type=merge", "-p", patch, NULL};
	if (rc == 0)
		rc = ins_argv_addv(&a, rest, err);
	if (rc == 0)
		ins_say_cmd(o, (const char *const *)a.v, NULL);
	if (rc == 0 && !o->dry_run) {
		ins_proc_io io;
		memset(&io, 0, sizeof(io));
		rc = ins_proc_run((const char *const *)a.v, &io, err);
		if (rc < 0)
			cm_error_wrap(err, "trusting the mirror's CA (image.config)");
	}
	ins_argv_free(&a);
	free(patch);
	rep->done++;
	return rc;
}

/* The ConfigMap image.config already trusts, if any: ours goes there too. */
static void okd_current_ca_configmap(char *out, size_t n, const ins_install_opts *o)
{
	out[0] = '\0';
	ins_argv a = {NULL, 0, 0};
	const char *rest[] = {"get", "image.config.openshift.io/cluster", "-o",
			      "jsonpath={.spec.additionalTrustedCA.name}", NULL};
	if (ins_kubectl_argv(&a, o, NULL) < 0 || ins_argv_addv(&a, rest, NULL) < 0) {
		ins_argv_free(&a);
		return;
	}
	ins_say(o, INS_SAY_INFO, "query: which ConfigMap image.config trusts");
	cm_buf q = CM_BUF_INIT;
	ins_proc_io io;
	memset(&io, 0, sizeof(io));
	io.out = &q;
	if (ins_proc_run((const char *const *)a.v, &io, NULL) == 0 && q.data) {
		size_t l = strcspn(q.data, " \n'\"");
		if (l && l < n)
			snprintf(out, n, "%.*s", (int)l, q.data);
	}
	cm_buf_free(&q);
	ins_argv_free(&a);
}

int ins_install_mirror(ins_step_report *rep, const ins_bundle *b, const ins_node *nodes,
		       size_t n_nodes, const ins_install_opts *o, cm_error *err)
{
	mirror m;
	memset(&m, 0, sizeof(m));
	int rc = 0;
	if (o->registry) {
		snprintf(m.addr, sizeof(m.addr), "%s", o->registry);
		m.plain_http = o->push_insecure;
		if (o->ca) {
			snprintf(m.ca_path, sizeof(m.ca_path), "%s", o->ca);
			rc = read_small(&m.ca, o->ca, err);
		} else if (!m.plain_http) {
			ins_say(o, INS_SAY_WARN,
				"no --ca for %s: nodes must already trust its certificate", m.addr);
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
	rc = ins_install_mirror_config(&files, b, nodes, n_nodes, m.addr, m.ca.data, m.plain_http,
				       o, err);
	if (rc == 0) {
		/* images count as done when anything changed, else as present */
		if (files.done == 0 && !m.started)
			rep->skipped = b->n_images;
		else
			rep->done = b->n_images;
		snprintf(rep->note, sizeof(rep->note),
			 "served by %s%s; %llu config files written, %llu unchanged%s", m.addr,
			 m.started  ? " (started)"
			 : m.reused ? " (already running)"
				    : "",
			 (unsigned long long)files.done, (unsigned long long)files.skipped,
			 o->dry_run ? " (dry-run)" : "");
	}
out:
	cm_buf_free(&m.ca);
	return rc;
}

int ins_install_mirror_config(ins_step_report *rep, const ins_bundle *b, const ins_node *nodes,
			      size_t n_nodes, const char *addr, const char *ca_pem, int plain_http,
			      const ins_install_opts *o, cm_error *err)
{
	ins_mfiles f;
	ins_mirror_opts mo = {addr, ca_pem, plain_http, b->name, NULL};
	int rc = 0;
	char cm[128] = "";
	switch (o->target) {
	case INS_T_OKD:
		okd_current_ca_configmap(cm, sizeof(cm), o);
		if (cm[0]) {
			mo.ca_configmap = cm;
			ins_say(o, INS_SAY_INFO,
				"image.config already trusts ConfigMap %s: the mirror's CA is "
				"added to it",
				cm);
		}
		rc = ins_mirror_render(&f, b->images, b->n_images, INS_MF_OKD, &mo, err);
		if (rc == 0)
			rc = okd_apply(rep, &f, cm[0] == '\0', o, err);
		break;
	case INS_T_CRIO: {
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
					char tail[1024];
					snprintf(tail, sizeof(tail), "%s", f.v[i].path + 18);
					const char *leaf = strrchr(o->registries_d, '/');
					snprintf(f.v[i].path, sizeof(f.v[i].path), "%s/%s",
						 leaf ? leaf + 1 : o->registries_d, tail);
				}
		}
		if (rc == 0)
			rc = put_files(rep, &f, base, NULL, o, err);
		if (rc == 0)
			ins_say(o, INS_SAY_INFO,
				"CRI-O reads registries.conf.d when it pulls; reload it if it "
				"cached the old "
				"configuration (systemctl reload crio)");
		break;
	}
	default: {
		/* containerd nodes: hosts.toml per upstream host; CRI-O nodes (minikube
		 * --container-runtime=cri-o): the registries.conf drop-in */
		rc = ins_mirror_render(&f, b->images, b->n_images, INS_MF_CONTAINERD, &mo, err);
		ins_mfiles g;
		memset(&g, 0, sizeof(g));
		const char *dir = o->hosts_dir ? o->hosts_dir : "/etc/containerd/certs.d";
		if (rc == 0 && n_nodes == 0)
			rc = put_files(rep, &f, dir, NULL, o, err);
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
					rc = put_files(rep, &g, "/etc/containers", nd, o, err);
			} else {
				rc = put_files(rep, &f, dir, nd, o, err);
			}
		}
		ins_mfiles_free(&g);
	}
	}
	ins_mfiles_free(&f);
	return rc;
}
