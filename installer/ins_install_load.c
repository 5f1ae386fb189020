/* Nodes of a target, and load mode: stream the images into each node's
 * runtime, skipping images the node already holds (by digest). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

#include "ins_archive.h"
#include "cm_emit.h"
#include "ins_install.h"
#include "ins_place.h"
#include "reg_copy.h"
#include "reg_digest.h"

#define QUERY_MAX ((size_t)8 << 20)

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int add_node(ins_node **v, size_t *n, const ins_node *nd, cm_error *err)
{
	ins_node *nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	nv[*n] = *nd;
	*v = nv;
	(*n)++;
	return 0;
}

static ins_runtime parse_runtime(const char *s)
{
	if (!s)
		return INS_RT_UNKNOWN;
	if (strncmp(s, "containerd", 10) == 0)
		return INS_RT_CONTAINERD;
	if (strncmp(s, "docker", 6) == 0)
		return INS_RT_DOCKER;
	if (strncmp(s, "cri-o", 5) == 0 || strncmp(s, "crio", 4) == 0 ||
	    strncmp(s, "podman", 6) == 0)
		return INS_RT_CRIO;
	return INS_RT_UNKNOWN;
}

static const char *runtime_name(ins_runtime rt)
{
	switch (rt) {
	case INS_RT_CONTAINERD:
		return "containerd";
	case INS_RT_DOCKER:
		return "docker";
	case INS_RT_CRIO:
		return "cri-o";
	default:
		return "unknown";
	}
}

/* Run a read-only query; its stdout lands in out. */
static int query(cm_buf *out, const char *const *argv, const ins_install_opts *o, cm_error *err)
{
	ins_say_cmd(o, argv, o->dry_run ? " (read-only query)" : NULL);
	ins_proc_io io;
	memset(&io, 0, sizeof(io));
	out->len = 0;
	out->limit = QUERY_MAX;
	io.out = out;
	return ins_proc_run(argv, &io, err);
}

static int nodes_from_list(ins_node **v, size_t *n, const ins_node *tmpl, const char *list,
			   cm_error *err)
{
	char buf[8192];
	snprintf(buf, sizeof(buf), "%s", list);
	char *save = NULL;
	for (char *t = strtok_r(buf, ", \n", &save); t; t = strtok_r(NULL, ", \n", &save)) {
		ins_node nd = *tmpl;
		snprintf(nd.name, sizeof(nd.name), "%s", t);
		if (nd.runner.kind != INS_RUN_LOCAL)
			snprintf(nd.runner.node, sizeof(nd.runner.node), "%s", t);
		int rc = add_node(v, n, &nd, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int ins_kubectl_argv(ins_argv *a, const ins_install_opts *o, cm_error *err)
{
	const char *k = o->kubectl;
	char found[4096];
	if (!k)
		k = o->target == INS_T_OKD && ins_which("oc", found, sizeof(found)) ? "oc"
										    : "kubectl";
	int rc = ins_argv_add(a, k, err);
	if (rc == 0 && o->kubeconfig)
		rc = ins_argv_addf(a, err, "--kubeconfig=%s", o->kubeconfig);
	const char *ctx = o->context;
	char def[600];
	if (!ctx && o->target == INS_T_KIND) {
		snprintf(def, sizeof(def), "kind-%s", o->target_arg[0] ? o->target_arg : "kind");
		ctx = def;
	} else if (!ctx && o->target == INS_T_MINIKUBE) {
		snprintf(def, sizeof(def), "%s", o->target_arg[0] ? o->target_arg : "minikube");
		ctx = def;
	}
	if (rc == 0 && ctx)
		rc = ins_argv_addf(a, err, "--context=%s", ctx);
	return rc;
}

/* kubectl get nodes: "name runtime" per line. */
static int kube_nodes(cm_buf *out, const ins_install_opts *o, cm_error *err)
{
	ins_argv a = {NULL, 0, 0};
	int rc = ins_kubectl_argv(&a, o, err);
	const char *rest[] = {"get", "nodes", "-o",
			      "jsonpath={range .items[*]}{.metadata.name} "
			      "{.status.nodeInfo.containerRuntimeVersion}{\"\\n\"}{end}",
			      NULL};
	if (rc == 0)
		rc = ins_argv_addv(&a, rest, err);
	if (rc == 0)
		rc = query(out, (const char *const *)a.v, o, err);
	ins_argv_free(&a);
	return rc;
}

int ins_install_nodes(ins_node **out, size_t *n, const ins_install_opts *o, cm_error *err)
{
	ins_node t;
	memset(&t, 0, sizeof(t));
	*out = NULL;
	*n = 0;
	cm_buf q = CM_BUF_INIT;
	int rc = 0;
	const char *arg = o->target_arg;
	ins_runtime forced = parse_runtime(o->runtime);
	switch (o->target) {
	case INS_T_CONTAINERD:
	case INS_T_CRIO:
	case INS_T_DOCKER:
		t.runtime = o->target == INS_T_CONTAINERD ? INS_RT_CONTAINERD
			    : o->target == INS_T_CRIO	  ? INS_RT_CRIO
							  : INS_RT_DOCKER;
		if (o->target == INS_T_CONTAINERD)
			snprintf(t.sock, sizeof(t.sock), "%s", arg);
		t.runner.kind = INS_RUN_LOCAL;
		snprintf(t.name, sizeof(t.name), "local");
		break;
	case INS_T_KIND:
		t.runtime = INS_RT_CONTAINERD;
		t.runner.kind = INS_RUN_DOCKER;
		break;
	case INS_T_MINIKUBE:
		t.runtime = INS_RT_UNKNOWN;
		t.runner.kind = INS_RUN_MINIKUBE;
		t.runner.sudo = 1;
		snprintf(t.runner.profile, sizeof(t.runner.profile), "%s",
			 arg[0] ? arg : "minikube");
		break;
	case INS_T_OKD:
		t.runtime = INS_RT_CRIO;
		t.runner.kind = INS_RUN_SSH;
		t.runner.sudo = 1;
		break;
	}
	if (forced != INS_RT_UNKNOWN)
		t.runtime = forced;
	if (o->node_runner) {
		const char *r = o->node_runner;
		if (strcmp(r, "local") == 0)
			t.runner.kind = INS_RUN_LOCAL;
		else if (strcmp(r, "docker") == 0)
			t.runner.kind = INS_RUN_DOCKER;
		else if (strcmp(r, "minikube") == 0)
			t.runner.kind = INS_RUN_MINIKUBE;
		else if (strcmp(r, "ssh") == 0)
			t.runner.kind = INS_RUN_SSH;
		else
			return cm_error_set(err, CM_EUSAGE,
					    "--node-runner must be local, docker, minikube or ssh");
		t.runner.sudo = t.runner.kind == INS_RUN_SSH || t.runner.kind == INS_RUN_MINIKUBE;
	}
	if (o->node_sudo >= 0)
		t.runner.sudo = o->node_sudo;
	if (o->ssh_port)
		snprintf(t.runner.port, sizeof(t.runner.port), "%s", o->ssh_port);

	if (o->nodes) {
		rc = nodes_from_list(out, n, &t, o->nodes, err);
		goto done;
	}
	if (t.runner.kind == INS_RUN_LOCAL) {
		rc = add_node(out, n, &t, err);
		goto done;
	}
	if (t.runner.kind == INS_RUN_SSH) {
		rc = cm_error_set(err, CM_EUSAGE,
				  "the ssh node runner needs --nodes HOST[,HOST...]");
		goto done;
	}
	if (o->target == INS_T_KIND) {
		const char *cl = arg[0] ? arg : "kind";
		const char *kq[] = {"kind", "get", "nodes", "--name", cl, NULL};
		char lbl[600];
		snprintf(lbl, sizeof(lbl), "label=io.x-k8s.kind.cluster=%s", cl);
		const char *dq[] = {"docker",	"ps",	      "--filter", lbl,
				    "--format", "{{.Names}}", NULL};
		cm_error e1 = {0}, e2 = {0};
		char fnd[4096];
		if (ins_which("kind", fnd, sizeof(fnd)))
			rc = query(&q, kq, o, &e1);
		else
			rc = cm_error_set(&e1, CM_ENOTFOUND, "kind: command not found in PATH");
		if (rc < 0 || q.len == 0)
			rc = query(&q, dq, o, &e2);
		if (rc == 0 && q.len == 0)
			rc = cm_error_set(&e2, CM_ENOTFOUND, "no container has label %s", lbl + 6);
		if (rc < 0) {
			/* the API server knows the node names too (they are the containers') */
			cm_error e3 = {0};
			if (kube_nodes(&q, o, &e3) == 0 && q.len) {
				char *p = q.data, *line;
				cm_buf names = CM_BUF_INIT;
				while ((line = ins_next_line(&p))) {
					char *sp = strchr(line, ' ');
					if (sp)
						*sp = '\0';
					if (*line)
						cm_buf_appendf(&names, NULL, "%s,", line);
				}
				if (names.len) {
					rc = nodes_from_list(out, n, &t, names.data, err);
					cm_buf_free(&names);
					goto done;
				}
				cm_buf_free(&names);
			}
		}
		if (rc < 0 && o->dry_run) {
			ins_say(o, INS_SAY_WARN,
				"dry-run: cannot list the nodes of kind cluster %s (%s); assuming "
				"%s-control-plane",
				cl, e2.msg, cl);
			char nm[300];
			snprintf(nm, sizeof(nm), "%s-control-plane", cl);
			rc = nodes_from_list(out, n, &t, nm, err);
			goto done;
		}
		if (rc < 0) {
			rc = cm_error_set(
			    err, CM_EFAIL,
			    "cannot list the nodes of kind cluster %s: %s; %s (give --nodes)", cl,
			    e1.msg, e2.msg);
			goto done;
		}
		rc = nodes_from_list(out, n, &t, q.data, err);
		goto done;
	}
	if (o->target == INS_T_MINIKUBE || o->target == INS_T_OKD) {
		cm_error e1 = {0};
		rc = kube_nodes(&q, o, &e1);
		if (rc < 0 && o->target == INS_T_MINIKUBE && o->dry_run) {
			ins_say(o, INS_SAY_WARN,
				"dry-run: cannot list the nodes of minikube profile %s (%s); "
				"assuming one node, runtime %s",
				t.runner.profile, e1.msg,
				runtime_name(t.runtime ? t.runtime : INS_RT_DOCKER));
			if (!t.runtime)
				t.runtime = INS_RT_DOCKER;
			snprintf(t.name, sizeof(t.name), "%s", t.runner.profile);
			rc = add_node(out, n, &t, err);
			goto done;
		}
		if (rc < 0) {
			rc = cm_error_set(err, e1.code,
					  "cannot list the cluster's nodes: %s (give --nodes)",
					  e1.msg);
			goto done;
		}
		char *p = q.data, *line;
		while ((line = ins_next_line(&p))) {
			if (!*line)
				continue;
			ins_node nd = t;
			char *sp = strchr(line, ' ');
			if (sp)
				*sp = '\0';
			snprintf(nd.name, sizeof(nd.name), "%s", line);
			snprintf(nd.runner.node, sizeof(nd.runner.node), "%s", line);
			if (forced == INS_RT_UNKNOWN && sp)
				nd.runtime = parse_runtime(sp + 1);
			if (nd.runtime == INS_RT_UNKNOWN)
				nd.runtime = o->target == INS_T_OKD ? INS_RT_CRIO : INS_RT_DOCKER;
			if ((rc = add_node(out, n, &nd, err)) < 0)
				goto done;
		}
		if (*n == 0)
			rc = cm_error_set(err, CM_ENOTFOUND, "the cluster lists no nodes");
	}
done:
	cm_buf_free(&q);
	return rc;
}

/* ---- containerd ---- */

/* ctr [-a SOCK] --namespace=k8s.io REST... */
static int ctr_cmd(ins_argv *a, const ins_node *nd, const char *const *rest, cm_error *err)
{
	int rc = ins_argv_add(a, "ctr", err);
	if (rc == 0 && nd->sock[0])
		rc = ins_argv_addf(a, err, "--address=%s", nd->sock);
	if (rc == 0)
		rc = ins_argv_add(a, "--namespace=k8s.io", err);
	if (rc == 0)
		rc = ins_argv_addv(a, rest, err);
	return rc;
}

/* Run cmd on the node, capturing stdout. */
static int node_query(cm_buf *out, const ins_node *nd, const char *const *cmd,
		      const ins_install_opts *o, cm_error *err)
{
	ins_argv w = {NULL, 0, 0};
	int rc = ins_runner_wrap(&w, &nd->runner, cmd, err);
	if (rc == 0)
		rc = query(out, (const char *const *)w.v, o, err);
	ins_argv_free(&w);
	return rc;
}

/* The CRI snapshotter from `containerd config dump` (v2 and v3 keys). */
static int parse_snapshotter(char *out, size_t n, char *text)
{
	char *p = text, *line;
	int in_sec = 0;
	while ((line = ins_next_line(&p))) {
		if (line[0] == '[') {
			in_sec =
			    strcmp(line, "[plugins.\"io.containerd.grpc.v1.cri\".containerd]") ==
				0 ||
			    strcmp(line, "[plugins.\"io.containerd.cri.v1.images\"]") == 0;
			continue;
		}
		if (!in_sec || strncmp(line, "snapshotter", 11) != 0)
			continue;
		char *q1 = strchr(line, '"'), *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
		if (q1 && q2 && q2 > q1 + 1) {
			snprintf(out, n, "%.*s", (int)(q2 - q1 - 1), q1 + 1);
			return 1;
		}
	}
	return 0;
}

/* What `ctr plugins ls -d` says of a node, asked at most once per load:
 * the snapshotter fallback and placing both read it. */
typedef struct node_plugins {
	ins_plugins p;
	int asked, rc;
	cm_error err;
} node_plugins;

static int plugins_of(node_plugins *np, const ins_node *nd, const ins_install_opts *o,
		      cm_error *err)
{
	if (!np->asked) {
		np->asked = 1;
		const char *ls[] = {"plugins", "ls", "-d", NULL};
		ins_argv a = {NULL, 0, 0};
		cm_buf q = CM_BUF_INIT;
		char none[1] = "";
		np->rc = ctr_cmd(&a, nd, ls, &np->err);
		if (np->rc == 0)
			np->rc = node_query(&q, nd, (const char *const *)a.v, o, &np->err);
		ins_argv_free(&a);
		if (np->rc == 0)
			ins_plugins_parse(&np->p, q.data ? q.data : none);
		cm_buf_free(&q);
	}
	if (np->rc < 0)
		cm_error_set(err, np->err.code, "%s", np->err.msg);
	return np->rc;
}

static int detect_snapshotter(ins_node *nd, node_plugins *np, const ins_install_opts *o,
			      cm_error *err)
{
	if (o->snapshotter) {
		snprintf(nd->snapshotter, sizeof(nd->snapshotter), "%s", o->snapshotter);
		return 0;
	}
	int rc = -1;
	/* a local daemon on a non-default socket: only its own config file says */
	if (nd->runner.kind != INS_RUN_LOCAL || !nd->sock[0] || o->containerd_config) {
		cm_buf q = CM_BUF_INIT;
		cm_error e = {0};
		const char *plain[] = {"containerd", "config", "dump", NULL};
		const char *withcfg[] = {"containerd", "--config", o->containerd_config,
					 "config",     "dump",	   NULL};
		rc = node_query(&q, nd, o->containerd_config ? withcfg : plain, o, &e);
		int found =
		    rc == 0 && parse_snapshotter(nd->snapshotter, sizeof(nd->snapshotter), q.data);
		cm_buf_free(&q);
		if (found)
			return 0;
	}
	/* else the first healthy one of overlayfs, native */
	rc = plugins_of(np, nd, o, err);
	const char *pick = rc < 0		? NULL
			   : np->p.overlayfs_ok ? "overlayfs"
			   : np->p.native_ok	? "native"
						: NULL;
	if (pick) {
		snprintf(nd->snapshotter, sizeof(nd->snapshotter), "%s", pick);
		ins_say(o, INS_SAY_INFO, "%s: snapshotter %s (from the daemon's plugins)", nd->name,
			pick);
	}
	if (!nd->snapshotter[0]) {
		if (!o->dry_run)
			return rc < 0 ? rc
				      : cm_error_set(err, CM_EFAIL,
						     "no usable snapshotter (give --snapshotter)");
		snprintf(nd->snapshotter, sizeof(nd->snapshotter), "overlayfs");
		ins_say(o, INS_SAY_WARN,
			"dry-run: cannot ask %s for its snapshotter; assuming overlayfs", nd->name);
	}
	return 0;
}

typedef struct have_entry {
	char ref[REG_REF_MAX];
	char id[80];
} have_entry;

typedef struct have_list {
	have_entry *v;
	size_t n;
} have_list;

static int have_add(have_list *h, const char *ref, const char *id, cm_error *err)
{
	have_entry *v = realloc(h->v, (h->n + 1) * sizeof(*v));
	if (!v)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	h->v = v;
	snprintf(v[h->n].ref, sizeof(v[h->n].ref), "%s", ref);
	/* ids are compared as "sha256:<hex>" */
	if (strncmp(id, "sha256:", 7) != 0 && strlen(id) == 64)
		snprintf(v[h->n].id, sizeof(v[h->n].id), "sha256:%s", id);
	else
		snprintf(v[h->n].id, sizeof(v[h->n].id), "%s", id);
	h->n++;
	return 0;
}

static int have_has(const have_list *h, const char *ref, const char *id)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->v[i].id, id) == 0 && (!ref || strcmp(h->v[i].ref, ref) == 0))
			return 1;
	return 0;
}

/* Docker Hub names as docker and podman print them. */
static int same_name(const char *listed, const char *ref)
{
	if (strcmp(listed, ref) == 0)
		return 1;
	if (strncmp(ref, "docker.io/", 10) == 0) {
		const char *r = ref + 10;
		if (strcmp(listed, r) == 0)
			return 1;
		if (strncmp(r, "library/", 8) == 0 && strcmp(listed, r + 8) == 0)
			return 1;
	}
	return 0;
}

/* What the node holds: "ref id" pairs. */
static int list_images(have_list *h, const ins_node *nd, const ins_install_opts *o, cm_error *err)
{
	cm_buf q = CM_BUF_INIT;
	ins_argv a = {NULL, 0, 0};
	int rc;
	if (nd->runtime == INS_RT_CONTAINERD) {
		const char *ls[] = {"images", "ls", NULL};
		rc = ctr_cmd(&a, nd, ls, err);
	} else {
		const char *ls[] = {nd->runtime == INS_RT_DOCKER ? "docker" : "podman",
				    "images",
				    "--no-trunc",
				    "--format",
				    "{{.Repository}}:{{.Tag}} {{.ID}}",
				    NULL};
		rc = ins_argv_addv(&a, ls, err);
	}
	if (rc == 0)
		rc = node_query(&q, nd, (const char *const *)a.v, o, err);
	ins_argv_free(&a);
	if (rc < 0) {
		cm_buf_free(&q);
		return rc;
	}
	char *p = q.data, *line;
	int first = 1;
	while ((line = ins_next_line(&p)) && rc == 0) {
		char ref[REG_REF_MAX], c2[256], c3[256];
		if (nd->runtime == INS_RT_CONTAINERD) {
			/* REF TYPE DIGEST SIZE PLATFORMS LABELS */
			if (first) {
				first = 0;
				if (strncmp(line, "REF", 3) == 0)
					continue;
			}
			if (sscanf(line, "%511s %255s %255s", ref, c2, c3) == 3 &&
			    strncmp(c3, "sha256:", 7) == 0)
				rc = have_add(h, ref, c3, err);
		} else if (sscanf(line, "%511s %255s", ref, c2) == 2) {
			rc = have_add(h, ref, c2, err);
		}
	}
	cm_buf_free(&q);
	return rc;
}

/* ---- containerd: content first, then one import ----
 *
 * `ctr images import` is slow at moving bytes (the client hashes every blob
 * and writes it through one gRPC stream) and cannot skip content the store
 * holds already. So on containerd the large blobs (--ingest-min) go first,
 * each streamed from the bundle into `ctr content ingest --expected-digest`,
 * in --jobs concurrent streams; containerd checks every digest again on
 * commit. The import that follows carries index.json, the manifests, the
 * configs and the small blobs, creates the images and unpacks them.
 *
 * Content that no image references yet is fair game for containerd's
 * garbage collector (any lease removal, e.g. another client's import, can
 * trigger it). A pin guards it meanwhile: a small blob of our own labelled
 * containerd.io/gc.root with a containerd.io/gc.ref.content.* label for
 * every blob the import needs. It is removed once the images hold them. */

#define INGEST_MIN_DEFAULT ((uint64_t)4 << 20)

typedef struct digest_set {
	char **v; /* "sha256:<hex>", sorted */
	size_t n;
} digest_set;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void digest_set_free(digest_set *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i]);
	free(d->v);
	d->v = NULL;
	d->n = 0;
}

static int digest_set_has(const digest_set *d, const char *hex)
{
	char key[80];
	snprintf(key, sizeof(key), "sha256:%s", hex);
	const char *k = key;
	return d->n && bsearch(&k, d->v, d->n, sizeof(*d->v), cmp_str) != NULL;
}

/* `ctr content ls -q`: the digests the node's namespace holds. */
static int list_content(digest_set *d, const ins_node *nd, const ins_install_opts *o, cm_error *err)
{
	cm_buf q = CM_BUF_INIT;
	ins_argv a = {NULL, 0, 0};
	const char *ls[] = {"content", "ls", "-q", NULL};
	int rc = ctr_cmd(&a, nd, ls, err);
	if (rc == 0)
		rc = node_query(&q, nd, (const char *const *)a.v, o, err);
	ins_argv_free(&a);
	char *p = q.data, *line;
	size_t cap = 0;
	while (rc == 0 && (line = ins_next_line(&p))) {
		if (strncmp(line, "sha256:", 7) != 0)
			continue;
		if (d->n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			char **nv = realloc(d->v, nc * sizeof(*nv));
			if (!nv) {
				rc = cm_error_set(err, CM_ENOMEM, "out of memory");
				break;
			}
			d->v = nv;
			cap = nc;
		}
		if (!(d->v[d->n] = strdup(line))) {
			rc = cm_error_set(err, CM_ENOMEM, "out of memory");
			break;
		}
		d->n++;
	}
	cm_buf_free(&q);
	if (rc == 0 && d->n)
		qsort(d->v, d->n, sizeof(*d->v), cmp_str);
	return rc;
}

/* What the import may leave out: held by the node, or streamed before. */
typedef struct held_ctx {
	const digest_set *present;
	const ins_member **sent; /* sorted by pointer */
	size_t n_sent;
} held_ctx;

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (const ins_member *const *)a,
		  y = (uintptr_t) * (const ins_member *const *)b;
	return x < y ? -1 : x > y;
}

static int held_skip(void *ctx, const ins_member *m)
{
	const held_ctx *h = ctx;
	if (h->present && digest_set_has(h->present, m->hex))
		return 1;
	return h->n_sent && bsearch(&m, h->sent, h->n_sent, sizeof(*h->sent), cmp_ptr) != NULL;
}

/* Run `ctr ... REST` on the node; stdin from io (may be NULL). */
static int node_ctr(const ins_node *nd, const char *const *rest, ins_proc_io *io,
		    const char *say_suffix, const ins_install_opts *o, cm_error *err)
{
	ins_argv cmd = {NULL, 0, 0}, w = {NULL, 0, 0};
	ins_proc_io none;
	memset(&none, 0, sizeof(none));
	cm_buf out = CM_BUF_INIT;
	if (!io)
		io = &none;
	io->out = &out;
	int rc = ctr_cmd(&cmd, nd, rest, err);
	if (rc == 0)
		rc = ins_runner_wrap(&w, &nd->runner, (const char *const *)cmd.v, err);
	if (rc == 0 && !(say_suffix && !*say_suffix)) /* "": said by the caller */
		ins_say_cmd(o, (const char *const *)w.v, say_suffix);
	if (rc == 0 && !o->dry_run)
		rc = ins_proc_run((const char *const *)w.v, io, err);
	io->out = NULL;
	cm_buf_free(&out);
	ins_argv_free(&cmd);
	ins_argv_free(&w);
	return rc;
}

/* `ctr content ingest` of sha256:hex under the ingest ref (NULL:
 * "ferry-<hex>"), stdin from io. */
static int ingest_cmd(const ins_node *nd, const char *hex, uint64_t size, const char *ref,
		      ins_proc_io *io, const char *say, const ins_install_opts *o, cm_error *err)
{
	char sz[32], dg[80], r[96];
	snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
	snprintf(dg, sizeof(dg), "sha256:%s", hex);
	snprintf(r, sizeof(r), "ferry-%s", hex);
	const char *rest[] = {"content",	   "ingest", "--expected-size", sz,
			      "--expected-digest", dg,	     ref ? ref : r,	NULL};
	return node_ctr(nd, rest, io, say, o, err);
}

/* The node's content store for the copy pipeline (ins_place.h): ingests
 * run through the node's runner and are said like every command. */
typedef struct node_ingest {
	ins_ingest base;
	const ins_node *nd;
	const ins_install_opts *o;
} node_ingest;

static int node_ingest_run(void *ctx, const char *hex, uint64_t size, const char *ref,
			   ins_proc_io *io, const char *say, cm_error *err)
{
	const node_ingest *ni = ctx;
	return ingest_cmd(ni->nd, hex, size, ref, io, say, ni->o, err);
}

static void node_ingest_note(void *ctx, const char *msg)
{
	const node_ingest *ni = ctx;
	ins_say(ni->o, INS_SAY_INFO, "%s: %s", ni->nd->name, msg);
}

static void node_ingest_init(node_ingest *ni, const ins_node *nd, const ins_install_opts *o)
{
	ni->base.run = node_ingest_run;
	ni->base.note = node_ingest_note;
	ni->base.ctx = ni;
	ni->base.dry_run = o->dry_run;
	ni->nd = nd;
	ni->o = o;
}

static size_t ingest_jobs(const ins_install_opts *o, size_t n)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t j = o->jobs > 0 ? (size_t)o->jobs : cpus > 4 ? 4 : cpus > 1 ? (size_t)cpus : 1;
	if (j > REG_COPY_JOBS_MAX)
		j = REG_COPY_JOBS_MAX;
	return j > n ? n : j;
}

static int by_member_size_desc(const void *a, const void *b)
{
	const ins_member *x = *(const ins_member *const *)a, *y = *(const ins_member *const *)b;
	return x->size > y->size ? -1 : x->size < y->size;
}

/* Into the content store through the copy pipeline (bundle -> node), the
 * largest first, --jobs at a time; *placed counts the blobs placed rather
 * than streamed. */
static int ingest_all(size_t *placed, const ins_place *pl, const ins_bundle *b, const ins_node *nd,
		      const ins_member **v, size_t n, const ins_install_opts *o, cm_error *err)
{
	qsort(v, n, sizeof(*v), by_member_size_desc);
	reg_desc *dv = calloc(n ? n : 1, sizeof(*dv));
	if (!dv)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = reg_digest_from_hex(&dv[i].digest, v[i]->hex, err);
		dv[i].size = v[i]->size;
	}
	node_ingest ni;
	node_ingest_init(&ni, nd, o);
	reg_source *src = NULL;
	reg_dest *dst = NULL;
	/* a placed blob is hashed again as it is copied (ins_place.h); a
	 * streamed one is checked by the daemon (--expected-digest) */
	if (rc == 0)
		rc = reg_source_bundle_open(&src, b->x, NULL,
					    pl->root[0] ? 0 : REG_BIDX_TRUST_VERIFIED, err);
	if (rc == 0)
		rc = ins_ctr_dest_open(&dst, pl, &ni.base, (unsigned)ingest_jobs(o, n), err);
	if (rc == 0)
		rc = reg_copy_blobs(NULL, dst, src, dv, n, err);
	*placed = dst ? ins_ctr_dest_placed(dst) : 0;
	reg_dest_free(dst);
	reg_source_free(src);
	free(dv);
	return rc;
}

/* The pin: a blob of our own, a GC root referencing every digest in v. */
static int pin_create(char *pin, size_t pin_n, ins_place *pl, const ins_bundle *b,
		      const ins_node *nd, const ins_member *const *v, size_t n,
		      const ins_install_opts *o, cm_error *err)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char bv[600];
	snprintf(bv, sizeof(bv), "%s %s", b->name, b->version);
	json_t *pj = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "ferry-install", "gc pin while loading",
			       "bundle", bv, "node", nd->name, "pid", (json_int_t)getpid(), "time",
			       (json_int_t)ts.tv_sec, "nsec", (json_int_t)ts.tv_nsec);
	char *body = NULL;
	int rc = pj ? cm_json_text(&body, pj, 4096, 0, err)
		    : cm_error_set(err, CM_EINVAL, "the bundle's name or the node's is not UTF-8");
	json_decref(pj);
	reg_digest d;
	if (rc == 0)
		rc = reg_digest_buf(&d, body, strlen(body), err);
	if (rc < 0) {
		free(body);
		return cm_error_wrap(err, "pinning the content against garbage collection");
	}
	snprintf(pin, pin_n, "%s", d.s);
	char ref[96], root[64], who[600];
	snprintf(ref, sizeof(ref), "ferry-pin-%.16s", REG_DIGEST_HEX(&d));
	snprintf(root, sizeof(root), "containerd.io/gc.root=%lld", (long long)ts.tv_sec);
	snprintf(who, sizeof(who), "ferry.install/pin=%s %s", b->name, b->version);
	ins_argv lab = {NULL, 0, 0};
	const char *head[] = {"content", "label", pin, root, who, NULL};
	rc = ins_argv_addv(&lab, head, err);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = ins_argv_addf(&lab, err, "containerd.io/gc.ref.content.ferry.%zu=sha256:%s", i,
				   v[i]->hex);
	/* the collector may take the pin between ingest and label: try again */
	for (int attempt = 0; rc == 0; attempt++) {
		ins_proc_io io;
		memset(&io, 0, sizeof(io));
		io.in = body;
		io.in_len = strlen(body);
		cm_error e = {0};
		/* the pin is the first blob placed: if the daemon does not take
		 * it, it would take none, so placing stops for this node */
		int took = 0;
		node_ingest ni;
		node_ingest_init(&ni, nd, o);
		if (pl->root[0] && (took = ins_place_ingest(pl, &ni.base, NULL, REG_DIGEST_HEX(&d),
							    ref, body, strlen(body), err)) == 0)
			ins_place_close(pl);
		rc = took < 0 ? took
		     : took   ? 0
			      : ingest_cmd(nd, REG_DIGEST_HEX(&d), strlen(body), ref, &io,
					   " < (gc pin)", o, err);
		if (rc == 0) {
			/* say it short: the refs are one label per blob */
			char more[64];
			snprintf(more, sizeof(more),
				 " containerd.io/gc.ref.content.ferry.0..%zu=...", n ? n - 1 : 0);
			ins_argv w = {NULL, 0, 0};
			ins_argv c = {NULL, 0, 0};
			if (ctr_cmd(&c, nd, head, &e) == 0 &&
			    ins_runner_wrap(&w, &nd->runner, (const char *const *)c.v, &e) == 0)
				ins_say_cmd(o, (const char *const *)w.v, more);
			ins_argv_free(&c);
			ins_argv_free(&w);
			rc = node_ctr(nd, (const char *const *)lab.v, NULL, "", o, &e);
			if (rc < 0 && attempt < 2) {
				rc = 0;
				continue;
			}
			if (rc < 0)
				cm_error_set(err, e.code, "%s", e.msg);
		}
		break;
	}
	ins_argv_free(&lab);
	free(body);
	if (rc < 0)
		cm_error_wrap(err, "pinning the content against garbage collection");
	return rc;
}

static void pin_remove(const char *pin, const ins_node *nd, const ins_install_opts *o)
{
	const char *rm[] = {"content", "rm", pin, NULL};
	cm_error e = {0};
	if (node_ctr(nd, rm, NULL, NULL, o, &e) < 0)
		ins_say(o, INS_SAY_WARN,
			"%s: cannot remove the gc pin %s (%s); remove it with `ctr -n k8s.io "
			"content rm %s`",
			nd->name, pin, e.msg, pin);
}

/* Placing blobs in the node's content store: only where ferry runs on the
 * node itself, asked of the daemon (`ctr plugins ls -d`). Off (pl->root
 * empty) whenever anything is missing; the blobs are then streamed. In
 * dry-run the store is only named. */
static void place_setup(ins_place *pl, node_plugins *np, const ins_node *nd,
			const ins_install_opts *o)
{
	memset(pl, 0, sizeof(*pl));
	if (o->ingest_stream || nd->runner.kind != INS_RUN_LOCAL)
		return;
	cm_error e = {0};
	char why[256] = "";
	int rc = plugins_of(np, nd, o, &e);
	if (rc == 0 && !ins_place_usable(why, sizeof(why), &np->p))
		rc = cm_error_set(&e, CM_EFAIL, "%s", why);
	if (rc == 0 && o->dry_run)
		snprintf(pl->root, sizeof(pl->root), "%s", np->p.content_root);
	else if (rc == 0)
		rc = ins_place_open(pl, np->p.content_root, &e);
	if (rc < 0)
		ins_say(o, INS_SAY_INFO,
			"%s: blobs are streamed through ctr (cannot place them: %s)", nd->name,
			e.msg);
}

/* Place or stream the large blobs of imgs the node lacks into its content
 * store, pinned (pin[0] set when a pin was made); fills h for the import. */
static int content_first(held_ctx *h, digest_set *present, char *pin, size_t pin_n, ins_place *pl,
			 const ins_bundle *b, const ins_node *nd, const ins_image **imgs, size_t n,
			 const ins_install_opts *o, cm_error *err)
{
	uint64_t min = o->ingest_min >= 0 ? (uint64_t)o->ingest_min : INGEST_MIN_DEFAULT;
	const ins_member **all = NULL;
	size_t n_all = 0;
	int rc = ins_archive_blobs(&all, &n_all, b, (const ins_image *const *)imgs, n, err);
	if (rc < 0)
		return rc;
	size_t n_big = 0;
	for (size_t i = 0; i < n_all; i++)
		n_big += all[i]->size >= min;
	if (n_big == 0) {
		free(all);
		return 0; /* everything rides in the import */
	}
	/* pin first: what is listed as present is safe from then on */
	if ((rc = pin_create(pin, pin_n, pl, b, nd, all, n_all, o, err)) < 0) {
		pin[0] = '\0';
		free(all);
		return rc;
	}
	cm_error le = {0};
	if (list_content(present, nd, o, &le) < 0) {
		ins_say(o, INS_SAY_WARN, "%s: cannot list its content (%s); sending every blob",
			nd->name, le.msg);
		digest_set_free(present);
	}
	size_t k = 0;
	uint64_t bytes = 0;
	for (size_t i = 0; i < n_all; i++)
		if (all[i]->size >= min && !digest_set_has(present, all[i]->hex)) {
			all[k++] = all[i];
			bytes += all[i]->size;
		}
	ins_say(o, INS_SAY_INFO,
		"%s: %zu blobs (%.1f MiB) into the content store in %zu streams, %zu held already",
		nd->name, k, (double)bytes / 1048576.0, ingest_jobs(o, k), n_big - k);
	size_t placed = 0;
	rc = ingest_all(&placed, pl, b, nd, all, k, o, err);
	if (rc < 0) {
		free(all);
		return rc;
	}
	if (pl->root[0])
		ins_say(o, INS_SAY_INFO,
			"%s: %zu of them %s in %s and recorded by ctr, %zu streamed", nd->name,
			placed, o->dry_run ? "to be placed" : "placed", pl->root, k - placed);
	qsort(all, k, sizeof(*all), cmp_ptr);
	h->sent = all;
	h->n_sent = k;
	h->present = present;
	return 0;
}

typedef struct feed_ctx {
	const ins_bundle *b;
	const ins_image *const *imgs;
	size_t n;
	ins_archive_opts ao;
	ins_archive_stats st;
} feed_ctx;

static int feed_archive(void *ctx, int fd, cm_error *err)
{
	feed_ctx *f = ctx;
	ins_pipe_big(fd);
	return ins_archive_write(&f->st, f->b, f->imgs, f->n, fd, &f->ao, err);
}

/* Is this image present on the node already? */
static int image_present(const have_list *h, const ins_node *nd, const ins_bundle *b,
			 const ins_image *im, const ins_install_opts *o)
{
	if (nd->runtime == INS_RT_CONTAINERD)
		return have_has(h, im->ref, im->root.digest.s);
	/* docker and podman list the image ID: the config digest (the manifest or
	 * index digest under docker's containerd store) */
	reg_digest cfg;
	cm_error e = {0};
	if (ins_archive_config_of(&cfg, b, im, o->platform, &e) < 0)
		return 0;
	for (size_t i = 0; i < h->n; i++) {
		if (strcmp(h->v[i].id, cfg.s) != 0 && strcmp(h->v[i].id, im->root.digest.s) != 0)
			continue;
		if (!im->r.tag[0])
			return 1; /* digest-only: the content is what matters */
		char want[REG_REF_MAX];
		if (snprintf(want, sizeof(want), "%s:%s", im->repo, im->r.tag) <
			(int)sizeof(want) &&
		    same_name(h->v[i].ref, want))
			return 1;
	}
	return 0;
}

/* One import (or load) of imgs into the node. */
static int import_batch(ins_step_report *rep, const ins_bundle *b, const ins_node *nd,
			const ins_image **imgs, size_t n, int no_unpack, held_ctx *held,
			const ins_install_opts *o, cm_error *err)
{
	char desc[600];
	ins_runner_desc(desc, sizeof(desc), &nd->runner);
	ins_argv cmd = {NULL, 0, 0}, w = {NULL, 0, 0};
	int rc;
	if (nd->runtime == INS_RT_CONTAINERD) {
		char snap[128];
		snprintf(snap, sizeof(snap), "--snapshotter=%s", nd->snapshotter);
		const char *imp[] = {"images",
				     "import",
				     "--all-platforms",
				     "--digests",
				     snap,
				     no_unpack ? "--no-unpack" : "-",
				     no_unpack ? "-" : NULL,
				     NULL};
		rc = ctr_cmd(&cmd, nd, imp, err);
	} else {
		const char *ld[] = {nd->runtime == INS_RT_DOCKER ? "docker" : "podman", "load",
				    NULL};
		rc = ins_argv_addv(&cmd, ld, err);
	}
	if (rc == 0)
		rc = ins_runner_wrap(&w, &nd->runner, (const char *const *)cmd.v, err);
	char suffix[160];
	snprintf(suffix, sizeof(suffix), " < (archive of %zu %s%s streamed from the bundle%s)", n,
		 no_unpack && !o->unpack_lazy ? "model artifact" : "image", n == 1 ? "" : "s",
		 held && (held->n_sent || (held->present && held->present->n))
		     ? ", less the blobs the content store holds"
		     : "");
	if (rc == 0)
		ins_say_cmd(o, (const char *const *)w.v, suffix);
	if (rc == 0 && !o->dry_run) {
		feed_ctx f;
		memset(&f, 0, sizeof(f));
		f.b = b;
		f.imgs = imgs;
		f.n = n;
		f.ao.oci = 1;
		f.ao.docker = nd->runtime != INS_RT_CONTAINERD || !no_unpack;
		f.ao.platform = o->platform;
		if (held && nd->runtime == INS_RT_CONTAINERD) {
			f.ao.skip = held_skip;
			f.ao.skip_ctx = held;
		}
		ins_proc_io io;
		memset(&io, 0, sizeof(io));
		cm_buf out = CM_BUF_INIT;
		io.out = &out;
		io.feed = feed_archive;
		io.feed_ctx = &f;
		rc = ins_proc_run((const char *const *)w.v, &io, err);
		cm_buf_free(&out);
		if (rc < 0)
			cm_error_wrap(err, "%s: importing %zu images", desc, n);
		rep->bytes += f.st.bytes;
	}
	ins_argv_free(&cmd);
	ins_argv_free(&w);
	return rc;
}

static int load_node(ins_step_report *rep, const ins_bundle *b, ins_node *nd,
		     const ins_install_opts *o, cm_error *err)
{
	char desc[600];
	ins_runner_desc(desc, sizeof(desc), &nd->runner);
	int rc = 0;
	node_plugins np;
	memset(&np, 0, sizeof(np));
	if (nd->runtime == INS_RT_CONTAINERD && (rc = detect_snapshotter(nd, &np, o, err)) < 0)
		return cm_error_wrap(err, "%s: snapshotter", desc);
	have_list h = {NULL, 0};
	cm_error le = {0};
	if ((rc = list_images(&h, nd, o, &le)) < 0) {
		if (!o->dry_run) {
			cm_error_set(err, le.code, "%s", le.msg);
			return cm_error_wrap(err, "%s: listing images", desc);
		}
		ins_say(o, INS_SAY_WARN,
			"dry-run: cannot list the images on %s (%s); assuming none", desc, le.msg);
		rc = 0;
	}
	/* container images get unpacked; model artifacts (no image config)
	 * cannot be: containerd stores them with --no-unpack, docker and
	 * podman cannot hold them at all */
	const ins_image **todo = calloc(b->n_images ? b->n_images : 1, sizeof(*todo));
	const ins_image **arts = calloc(b->n_images ? b->n_images : 1, sizeof(*arts));
	if (!todo || !arts) {
		free(todo);
		free(arts);
		free(h.v);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	size_t n = 0, na = 0, unloadable = 0;
	for (size_t i = 0; i < b->n_images; i++) {
		const ins_image *im = &b->images[i];
		reg_digest cfg;
		cm_error e = {0};
		int art = ins_archive_config_of(&cfg, b, im, o->platform, &e) == CM_ENOTFOUND;
		if (art && nd->runtime != INS_RT_CONTAINERD) {
			unloadable++;
			ins_say(
			    o, INS_SAY_INFO,
			    "%s: %s is a model artifact, not an image: %s cannot hold it (mirror "
			    "or push mode serve it; --models-dir places its files)",
			    nd->name, im->ref, runtime_name(nd->runtime));
		} else if (image_present(&h, nd, b, im, o)) {
			rep->skipped++;
			ins_say(o, INS_SAY_INFO, "%s: %s present (%s), skipped", nd->name, im->ref,
				im->root.digest.s);
		} else if (art) {
			arts[na++] = im;
		} else {
			todo[n++] = im;
		}
	}
	free(h.v);
	h.v = NULL;
	h.n = 0;
	if (unloadable)
		snprintf(rep->note, sizeof(rep->note), "%zu model artifact%s not loadable into %s",
			 unloadable, unloadable == 1 ? "" : "s", runtime_name(nd->runtime));
	if (n + na == 0) {
		ins_say(o, INS_SAY_INFO, "%s: all %zu images present, nothing to import", nd->name,
			b->n_images - unloadable);
		free(todo);
		free(arts);
		return 0;
	}
	/* containerd: the large blobs first, in parallel, then the import */
	held_ctx held = {NULL, NULL, 0};
	digest_set present = {NULL, 0};
	char pin[80] = "";
	ins_place pl;
	memset(&pl, 0, sizeof(pl));
	if (nd->runtime == INS_RT_CONTAINERD) {
		const ins_image **both = calloc(n + na, sizeof(*both));
		if (!both)
			rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		for (size_t i = 0; rc == 0 && i < n + na; i++)
			both[i] = i < n ? todo[i] : arts[i - n];
		if (rc == 0)
			place_setup(&pl, &np, nd, o);
		if (rc == 0)
			rc = content_first(&held, &present, pin, sizeof(pin), &pl, b, nd, both,
					   n + na, o, err);
		free(both);
		if (rc < 0)
			cm_error_wrap(err, "%s", desc);
	}
	if (rc == 0 && n)
		rc = import_batch(rep, b, nd, todo, n, o->unpack_lazy, &held, o, err);
	if (rc == 0 && na)
		rc = import_batch(rep, b, nd, arts, na, 1, &held, o, err);
	/* the images hold their content now (or the load failed: let it go) */
	if (pin[0])
		pin_remove(pin, nd, o);
	ins_place_close(&pl);
	for (size_t i = 0; i < held.n_sent; i++)
		rep->bytes += held.sent[i]->size;
	free(held.sent);
	digest_set_free(&present);
	/* check the runtime now holds every image it was given */
	if (rc == 0 && !o->dry_run) {
		if ((rc = list_images(&h, nd, o, err)) < 0)
			cm_error_wrap(err, "%s: listing images after the import", desc);
		for (size_t i = 0; rc == 0 && i < n + na; i++) {
			const ins_image *im = i < n ? todo[i] : arts[i - n];
			if (!image_present(&h, nd, b, im, o))
				rc = cm_error_set(err, CM_EFAIL,
						  "%s: %s (%s) is missing after the import", desc,
						  im->ref, im->root.digest.s);
		}
		free(h.v);
	}
	if (rc == 0) {
		rep->done += n + na;
		ins_say(o, INS_SAY_INFO, "%s: %s %zu image%s", nd->name,
			o->dry_run ? "would import" : "imported", n + na, n + na == 1 ? "" : "s");
	}
	free(todo);
	free(arts);
	return rc;
}

typedef struct node_job {
	const ins_bundle *b;
	const ins_install_opts *o;
	ins_node nd;
	ins_step_report rep;
	cm_error err;
	int rc, started;
} node_job;

static void *node_main(void *arg)
{
	node_job *j = arg;
	j->rc = load_node(&j->rep, j->b, &j->nd, j->o, &j->err);
	return NULL;
}

int ins_install_load(ins_step_report *rep, const ins_bundle *b, const ins_node *nodes,
		     size_t n_nodes, const ins_install_opts *o, cm_error *err)
{
	double t0 = now();
	int rc = 0;
	/* every node at once (each with its own streams), or one by one in dry-run */
	node_job *jv = calloc(n_nodes ? n_nodes : 1, sizeof(*jv));
	pthread_t *th = calloc(n_nodes ? n_nodes : 1, sizeof(*th));
	if (!jv || !th) {
		free(jv);
		free(th);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n_nodes; i++) {
		jv[i].b = b;
		jv[i].o = o;
		jv[i].nd = nodes[i];
		if (jv[i].nd.runtime == INS_RT_UNKNOWN)
			jv[i].nd.runtime = INS_RT_CONTAINERD;
		ins_say(o, INS_SAY_INFO, "node %s: runtime %s", jv[i].nd.name,
			runtime_name(jv[i].nd.runtime));
		if (o->dry_run || n_nodes == 1 ||
		    pthread_create(&th[i], NULL, node_main, &jv[i]) != 0)
			node_main(&jv[i]);
		else
			jv[i].started = 1;
	}
	for (size_t i = 0; i < n_nodes; i++) {
		if (jv[i].started)
			pthread_join(th[i], NULL);
		if (rc == 0 && jv[i].rc < 0) {
			rc = jv[i].rc;
			cm_error_set(err, rc, "%s", jv[i].err.msg);
		}
		rep->done += jv[i].rep.done;
		rep->skipped += jv[i].rep.skipped;
		rep->bytes += jv[i].rep.bytes;
		if (jv[i].rep.note[0])
			snprintf(rep->note, sizeof(rep->note), "%s", jv[i].rep.note);
	}
	free(jv);
	free(th);
	rep->secs = now() - t0;
	return rc;
}

int ins_install_archive_out(ins_step_report *rep, const ins_bundle *b, ins_runtime rt,
			    const ins_install_opts *o, cm_error *err)
{
	double t0 = now();
	const ins_image **all = calloc(b->n_images ? b->n_images : 1, sizeof(*all));
	if (!all)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < b->n_images; i++)
		all[i] = &b->images[i];
	ins_archive_opts ao = {1, 1, o->platform, NULL, NULL};
	(void)rt; /* every runtime takes the dual format */
	int fd = 1, rc = 0;
	if (strcmp(o->archive_out, "-") != 0) {
		fd = open(o->archive_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			free(all);
			return cm_error_sys(err, errno, "creating %s", o->archive_out);
		}
	}
	ins_archive_stats st;
	rc = ins_archive_write(&st, b, all, b->n_images, fd, &ao, err);
	if (fd != 1 && close(fd) < 0 && rc == 0)
		rc = cm_error_sys(err, errno, "closing %s", o->archive_out);
	free(all);
	if (rc < 0)
		return cm_error_wrap(err, "writing the archive to %s", o->archive_out);
	rep->done = st.images;
	rep->bytes = st.bytes;
	rep->secs = now() - t0;
	snprintf(rep->note, sizeof(rep->note), "archive of %llu images written to %s",
		 (unsigned long long)st.images, o->archive_out);
	return 0;
}
