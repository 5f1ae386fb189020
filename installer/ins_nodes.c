#include "ins_nodes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ins_toml.h"

static const ins_driver drivers[] = {
    {INS_T_KIND, "kind", NULL, 1, "kind", INS_MODE_LOAD, 1, "kind-%s", NULL, INS_RT_CONTAINERD,
     INS_RUN_DOCKER, 0, INS_FIND_KIND, 1, 1, INS_FILES_CONTAINERD, NULL},
    {INS_T_MINIKUBE, "minikube", NULL, 1, "minikube", INS_MODE_LOAD, 1, "%s", NULL, INS_RT_UNKNOWN,
     INS_RUN_MINIKUBE, 1, INS_FIND_API, 1, 1, INS_FILES_CONTAINERD, "host.minikube.internal"},
    {INS_T_OKD, "okd", "openshift", 0, "", INS_MODE_MIRROR, 1, NULL, "oc", INS_RT_CRIO, INS_RUN_SSH,
     1, INS_FIND_API, 0, 0, INS_FILES_OKD, NULL},
    {INS_T_CONTAINERD, "containerd", NULL, 1, "", INS_MODE_LOAD, 0, NULL, NULL, INS_RT_CONTAINERD,
     INS_RUN_LOCAL, 0, INS_FIND_LOCAL, 0, 0, INS_FILES_CONTAINERD, "127.0.0.1"},
    {INS_T_CRIO, "crio", "cri-o", 0, "", INS_MODE_MIRROR, 0, NULL, NULL, INS_RT_CRIO, INS_RUN_LOCAL,
     0, INS_FIND_LOCAL, 0, 0, INS_FILES_REGISTRIES, "127.0.0.1"},
    {INS_T_DOCKER, "docker", NULL, 0, "", INS_MODE_LOAD, 0, NULL, NULL, INS_RT_DOCKER,
     INS_RUN_LOCAL, 0, INS_FIND_LOCAL, 0, 1, INS_FILES_CONTAINERD, "127.0.0.1"},
};
#define N_DRIVERS (sizeof(drivers) / sizeof(drivers[0]))

const ins_driver *ins_driver_of(ins_target_kind t)
{
	for (size_t i = 0; i < N_DRIVERS; i++)
		if (drivers[i].kind == t)
			return &drivers[i];
	return NULL;
}

const ins_driver *ins_driver_find(const char *spec, const char **arg)
{
	const char *colon = strchr(spec, ':');
	size_t l = colon ? (size_t)(colon - spec) : strlen(spec);
	*arg = colon ? colon + 1 : NULL;
	for (size_t i = 0; i < N_DRIVERS; i++) {
		const char *names[] = {drivers[i].name, drivers[i].alias};
		for (size_t k = 0; k < 2; k++)
			if (names[k] && strlen(names[k]) == l && strncmp(names[k], spec, l) == 0)
				return &drivers[i];
	}
	return NULL;
}

ins_runtime ins_runtime_parse(const char *s)
{
	static const struct {
		const char *prefix;
		ins_runtime rt;
	} tab[] = {{"containerd", INS_RT_CONTAINERD},
		   {"docker", INS_RT_DOCKER},
		   {"cri-o", INS_RT_CRIO},
		   {"crio", INS_RT_CRIO},
		   {"podman", INS_RT_CRIO}};
	for (size_t i = 0; s && i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strncmp(s, tab[i].prefix, strlen(tab[i].prefix)) == 0)
			return tab[i].rt;
	return INS_RT_UNKNOWN;
}

const char *ins_runtime_name(ins_runtime rt)
{
	return rt == INS_RT_CONTAINERD ? "containerd"
	       : rt == INS_RT_DOCKER   ? "docker"
	       : rt == INS_RT_CRIO     ? "cri-o"
				       : "unknown";
}

void ins_listen_host(char *out, size_t n, const char *listen)
{
	if (listen[0] == '[') {
		const char *e = strchr(listen, ']');
		size_t l = e ? (size_t)(e - listen - 1) : 0;
		snprintf(out, n, "%.*s", (int)l, listen + 1);
	} else {
		const char *c = strrchr(listen, ':');
		size_t l = c ? (size_t)(c - listen) : strlen(listen);
		snprintf(out, n, "%.*s", (int)l, listen);
	}
	if (strcmp(out, "0.0.0.0") == 0 || strcmp(out, "::") == 0)
		out[0] = '\0';
}

static int add_node(ins_node **v, size_t *n, const ins_node *tmpl, const char *name, cm_error *err)
{
	ins_node nd = *tmpl;
	if (name) {
		if (strlen(name) >= sizeof(nd.name))
			return cm_error_set(err, CM_EINVAL, "node name too long: %.64s...", name);
		snprintf(nd.name, sizeof(nd.name), "%s", name);
		if (nd.runner.kind != INS_RUN_LOCAL)
			snprintf(nd.runner.node, sizeof(nd.runner.node), "%s", name);
	}
	ins_node *nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	nv[*n] = nd;
	*v = nv;
	(*n)++;
	return 0;
}

/* Names separated by commas, blanks or newlines. */
static int nodes_from_list(ins_node **v, size_t *n, const ins_node *tmpl, const char *list,
			   cm_error *err)
{
	int rc = 0;
	for (const char *p = list; rc == 0 && *p;) {
		size_t l = strcspn(p, ", \n\r\t");
		char name[256];
		if (l >= sizeof(name))
			return cm_error_set(err, CM_EINVAL, "node name too long: %.64s...", p);
		if (l) {
			memcpy(name, p, l);
			name[l] = '\0';
			rc = add_node(v, n, tmpl, name, err);
		}
		p += l;
		p += strspn(p, ", \n\r\t");
	}
	return rc;
}

/* `kubectl get nodes -o json`: every node's name and the runtime its
 * kubelet reports (nodeInfo.containerRuntimeVersion). */
static int api_nodes(ins_node **v, size_t *n, const ins_node *tmpl, int forced,
		     const ins_driver *drv, const ins_ctx *c, const ins_kube *k, cm_error *err)
{
	const char *rest[] = {"get", "nodes", "-o", "json", NULL};
	cm_buf q = CM_BUF_INIT;
	int rc = ins_kube_query(c, k, rest, &q, 0, err);
	json_error_t je;
	json_t *j = rc == 0 ? json_loadb(q.data ? q.data : "", q.len, 0, &je) : NULL;
	cm_buf_free(&q);
	if (rc < 0)
		return rc;
	json_t *items = json_object_get(j, "items");
	if (!json_is_array(items)) {
		json_decref(j);
		return cm_error_set(err, CM_EINVAL, "kubectl get nodes -o json: no list of nodes");
	}
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it)
	{
		const char *name =
		    json_string_value(json_object_get(json_object_get(it, "metadata"), "name"));
		const char *rt = json_string_value(
		    json_object_get(json_object_get(json_object_get(it, "status"), "nodeInfo"),
				    "containerRuntimeVersion"));
		if (!name || !*name)
			continue;
		ins_node nd = *tmpl;
		if (!forced && rt)
			nd.runtime = ins_runtime_parse(rt);
		if (nd.runtime == INS_RT_UNKNOWN)
			nd.runtime = drv->runtime ? drv->runtime : INS_RT_DOCKER;
		if ((rc = add_node(v, n, &nd, name, err)) < 0)
			break;
	}
	json_decref(j);
	if (rc == 0 && *n == 0)
		rc = cm_error_set(err, CM_ENOTFOUND, "the cluster lists no nodes");
	return rc;
}

/* kind: `kind get nodes`, else the containers labelled with the cluster,
 * else the API server (the node names are the containers'). */
static int kind_nodes(ins_node **v, size_t *n, const ins_node *tmpl, const char *cl,
		      const ins_ctx *c, const ins_kube *k, cm_error *err)
{
	cm_buf q = CM_BUF_INIT;
	const char *kq[] = {"kind", "get", "nodes", "--name", cl, NULL};
	char lbl[600];
	if ((size_t)snprintf(lbl, sizeof(lbl), "label=io.x-k8s.kind.cluster=%s", cl) >= sizeof(lbl))
		return cm_error_set(err, CM_EUSAGE, "kind cluster name too long");
	const char *dq[] = {"docker", "ps", "--filter", lbl, "--format", "{{.Names}}", NULL};
	cm_error e1 = {0}, e2 = {0};
	char fnd[4096];
	int rc = ins_which("kind", fnd, sizeof(fnd))
		     ? ins_ctx_query(c, &q, NULL, kq, &e1)
		     : cm_error_set(&e1, CM_ENOTFOUND, "kind: command not found in PATH");
	if (rc < 0 || q.len == 0)
		rc = ins_ctx_query(c, &q, NULL, dq, &e2);
	if (rc == 0 && q.len == 0)
		rc = cm_error_set(&e2, CM_ENOTFOUND, "no container has label %s", lbl + 6);
	if (rc == 0)
		rc = nodes_from_list(v, n, tmpl, q.data, err);
	cm_buf_free(&q);
	if (rc == 0 || *n)
		return rc;
	cm_error e3 = {0};
	if (api_nodes(v, n, tmpl, 1, ins_driver_of(INS_T_KIND), c, k, &e3) == 0)
		return 0;
	char nm[300];
	snprintf(nm, sizeof(nm), "%.200s-control-plane", cl);
	if (ins_ctx_assume(c, CM_EFAIL,
			   "cannot list the nodes of kind cluster %s (%s); assuming %s", cl, e2.msg,
			   nm) == 0)
		return nodes_from_list(v, n, tmpl, nm, err);
	return cm_error_set(err, CM_EFAIL,
			    "cannot list the nodes of kind cluster %s: %s; %s (give --nodes)", cl,
			    e1.msg, e2.msg);
}

int ins_nodes_find(ins_node **out, size_t *n, const ins_ctx *c, const ins_nodes_opts *o,
		   cm_error *err)
{
	const ins_driver *drv = o->drv;
	const char *arg = o->arg[0] ? o->arg : drv->def_arg;
	ins_node t;
	memset(&t, 0, sizeof(t));
	*out = NULL;
	*n = 0;
	t.runtime = drv->runtime;
	t.runner.kind = drv->runner;
	t.runner.sudo = drv->sudo;
	if (drv->kind == INS_T_CONTAINERD)
		snprintf(t.sock, sizeof(t.sock), "%s", arg);
	if (drv->runner == INS_RUN_MINIKUBE)
		snprintf(t.runner.profile, sizeof(t.runner.profile), "%s", arg);
	if (drv->find == INS_FIND_LOCAL)
		snprintf(t.name, sizeof(t.name), "local");
	ins_runtime forced = ins_runtime_parse(o->runtime);
	if (forced != INS_RT_UNKNOWN)
		t.runtime = forced;
	if (o->node_runner) {
		static const char *const kinds[] = {"local", "docker", "minikube", "ssh"};
		size_t i;
		for (i = 0; i < 4 && strcmp(o->node_runner, kinds[i]) != 0; i++)
			;
		if (i == 4)
			return cm_error_set(err, CM_EUSAGE,
					    "--node-runner must be local, docker, minikube or ssh");
		t.runner.kind = (ins_runner_kind)i;
		t.runner.sudo = t.runner.kind == INS_RUN_SSH || t.runner.kind == INS_RUN_MINIKUBE;
	}
	if (o->node_sudo >= 0)
		t.runner.sudo = o->node_sudo;
	if (o->ssh_port)
		snprintf(t.runner.port, sizeof(t.runner.port), "%s", o->ssh_port);

	if (o->nodes)
		return nodes_from_list(out, n, &t, o->nodes, err);
	if (t.runner.kind == INS_RUN_LOCAL)
		return add_node(out, n, &t, NULL, err);
	if (t.runner.kind == INS_RUN_SSH)
		return cm_error_set(err, CM_EUSAGE,
				    "the ssh node runner needs --nodes HOST[,HOST...]");
	if (drv->find == INS_FIND_KIND)
		return kind_nodes(out, n, &t, arg, c, o->kube, err);
	if (drv->find != INS_FIND_API)
		return 0;
	cm_error e1 = {0};
	int rc = api_nodes(out, n, &t, forced != INS_RT_UNKNOWN, drv, c, o->kube, &e1);
	if (rc < 0 && drv->runner == INS_RUN_MINIKUBE &&
	    ins_ctx_assume(c, rc,
			   "cannot list the nodes of minikube profile %s (%s); assuming one node, "
			   "runtime %s",
			   t.runner.profile, e1.msg,
			   ins_runtime_name(t.runtime ? t.runtime : INS_RT_DOCKER)) == 0) {
		t.runtime = t.runtime ? t.runtime : INS_RT_DOCKER;
		snprintf(t.name, sizeof(t.name), "%s", t.runner.profile);
		return add_node(out, n, &t, NULL, err);
	}
	if (rc < 0)
		return cm_error_set(err, e1.code,
				    "cannot list the cluster's nodes: %s (give --nodes)", e1.msg);
	return 0;
}

int ins_ctr_argv(ins_argv *a, const ins_node *nd, const char *const *rest, cm_error *err)
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

static int have_add(ins_have_list *h, const char *ref, const char *id, cm_error *err)
{
	if (strlen(ref) >= sizeof(h->v->ref) || strlen(id) >= sizeof(h->v->id) - 7)
		return 0; /* not one of ours */
	ins_have *v = realloc(h->v, (h->n + 1) * sizeof(*v));
	if (!v)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	h->v = v;
	snprintf(v[h->n].ref, sizeof(v[h->n].ref), "%s", ref);
	/* ids are compared as "sha256:<hex>" */
	snprintf(v[h->n].id, sizeof(v[h->n].id), "%s%s",
		 strncmp(id, "sha256:", 7) != 0 && strlen(id) == 64 ? "sha256:" : "", id);
	h->n++;
	return 0;
}

int ins_have_has(const ins_have_list *h, const char *ref, const char *id)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->v[i].id, id) == 0 && (!ref || strcmp(h->v[i].ref, ref) == 0))
			return 1;
	return 0;
}

/* One query; containerd: want are the images its filters named. */
static int images_query(ins_have_list *h, const ins_ctx *c, const ins_node *nd,
			const char *const *argv, const ins_have *want, size_t n_want, cm_error *err)
{
	cm_buf q = CM_BUF_INIT;
	int rc = ins_ctx_query(c, &q, &nd->runner, argv, err);
	char *p = q.data, *line;
	while (rc == 0 && (line = ins_next_line(&p))) {
		char *sp = strchr(line, ' ');
		if (nd->runtime != INS_RT_CONTAINERD && sp) {
			*sp = '\0';
			rc = have_add(h, line, sp + 1, err);
		}
		for (size_t i = 0; rc == 0 && nd->runtime == INS_RT_CONTAINERD && i < n_want; i++)
			if (strcmp(want[i].ref, line) == 0)
				rc = have_add(h, line, want[i].id, err);
	}
	cm_buf_free(&q);
	return rc;
}

/* Filters per `ctr images ls`: a remote runner hands the command to a
 * shell as one argument, which Linux caps at 128 KiB. */
#define FILTERS_MAX 64

int ins_node_images(ins_have_list *h, const ins_ctx *c, const ins_node *nd, const ins_have *want,
		    size_t n_want, cm_error *err)
{
	h->v = NULL;
	h->n = 0;
	int rc = 0;
	if (nd->runtime != INS_RT_CONTAINERD) {
		/* the template is ours: "REPOSITORY:TAG ID" per line */
		const char *ls[] = {nd->runtime == INS_RT_DOCKER ? "docker" : "podman",
				    "images",
				    "--no-trunc",
				    "--format",
				    "{{.Repository}}:{{.Tag}} {{.ID}}",
				    NULL};
		rc = images_query(h, c, nd, ls, NULL, 0, err);
	}
	/* containerd: the names among want that the node holds at their
	 * digest; one filter per image (filters are OR-ed), names only */
	for (size_t at = 0; nd->runtime == INS_RT_CONTAINERD && rc == 0 && at < n_want;
	     at += FILTERS_MAX) {
		size_t k = n_want - at < FILTERS_MAX ? n_want - at : FILTERS_MAX;
		const char *ls[] = {"images", "ls", "-q", NULL};
		ins_argv a = {NULL, 0, 0};
		rc = ins_ctr_argv(&a, nd, ls, err);
		for (size_t i = at; rc == 0 && i < at + k; i++)
			rc = ins_argv_addf(&a, err, "name==\"%s\",target.digest==%s", want[i].ref,
					   want[i].id);
		if (rc == 0)
			rc = images_query(h, c, nd, (const char *const *)a.v, want + at, k, err);
		ins_argv_free(&a);
	}
	if (rc < 0) {
		free(h->v);
		h->v = NULL;
		h->n = 0;
	}
	return rc;
}

int ins_node_snapshotter(char *out, size_t n, const ins_ctx *c, const ins_node *nd,
			 const char *config, cm_error *err)
{
	const char *plain[] = {"containerd", "config", "dump", NULL};
	const char *withcfg[] = {"containerd", "--config", config, "config", "dump", NULL};
	cm_buf q = CM_BUF_INIT;
	int rc = ins_ctx_query(c, &q, &nd->runner, config ? withcfg : plain, err);
	ins_toml t = {NULL, 0};
	if (rc == 0 && (rc = ins_toml_parse(&t, q.data ? q.data : "", q.len, err)) < 0)
		cm_error_wrap(err, "containerd config dump");
	cm_buf_free(&q);
	if (rc < 0)
		return rc;
	/* the CRI plugin's snapshotter: config version 2, then 3 */
	static const char *const v2[] = {"plugins", "io.containerd.grpc.v1.cri", "containerd",
					 "snapshotter", NULL};
	static const char *const v3[] = {"plugins", "io.containerd.cri.v1.images", "snapshotter",
					 NULL};
	const ins_toml_entry *e = ins_toml_get(&t, v2);
	if (!e || e->type != INS_TOML_STRING || !e->s[0])
		e = ins_toml_get(&t, v3);
	int found = e && e->type == INS_TOML_STRING && e->s[0] && strlen(e->s) < n;
	if (found)
		snprintf(out, n, "%s", e->s);
	ins_toml_free(&t);
	return found;
}
