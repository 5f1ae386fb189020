/* Targets, their nodes and what a node holds (a leaf: no step).
 *
 * A table of target drivers says, for kind, minikube, okd, containerd,
 * crio and docker, what the orchestrator and the steps would otherwise ask
 * with if/else chains: the default mode, whether manifests are applied,
 * the nodes' runtime and transport, the kubectl context, the address nodes
 * reach a local registry at. Node discovery and the containerd queries
 * (ctr, `containerd config dump`) live here too. */
#ifndef INS_NODES_H
#define INS_NODES_H

#include <stddef.h>

#include "cm_error.h"
#include "ins_ctx.h"
#include "ins_kubectl.h"
#include "ins_runner.h"
#include "reg_ref.h"

typedef enum {
	INS_T_KIND = 1,
	INS_T_MINIKUBE,
	INS_T_OKD,
	INS_T_CONTAINERD,
	INS_T_CRIO,
	INS_T_DOCKER,
} ins_target_kind;

typedef enum {
	INS_MODE_DEFAULT = 0,
	INS_MODE_LOAD,
	INS_MODE_MIRROR,
	INS_MODE_PUSH,
} ins_mode;

typedef enum {
	INS_RT_UNKNOWN = 0,
	INS_RT_CONTAINERD,
	INS_RT_DOCKER,
	INS_RT_CRIO,
} ins_runtime;

/* How the registry's address reaches the nodes (mirror and push mode). */
typedef enum {
	INS_FILES_CONTAINERD = 0, /* certs.d on every node found (by its runtime), else here */
	INS_FILES_REGISTRIES,	  /* registries.conf.d on this host (CRI-O) */
	INS_FILES_OKD,		  /* mirror sets and the CA applied with oc */
} ins_files_kind;

/* How a target's nodes are found. */
typedef enum {
	INS_FIND_LOCAL = 0, /* this host is the node */
	INS_FIND_KIND,	    /* kind get nodes, docker ps by label, else the API */
	INS_FIND_API,	    /* kubectl get nodes */
} ins_find_kind;

typedef struct ins_driver {
	ins_target_kind kind;
	const char *name, *alias;
	int takes_arg;	     /* kind:CLUSTER, minikube:PROFILE, containerd:SOCKET */
	const char *def_arg; /* the argument when none is given */
	ins_mode mode;	     /* the default delivery */
	int applies;	     /* a cluster: manifests are applied by default */
	const char *context; /* kubectl --context: printf format of the argument */
	const char *kubectl; /* preferred program ("oc" when in PATH) or NULL */
	ins_runtime runtime; /* of its nodes (UNKNOWN: ask the cluster) */
	ins_runner_kind runner;
	int sudo;
	ins_find_kind find;
	int discover;	       /* find nodes in push mode (and in mirror mode) */
	int mirror_discover;   /* find nodes in mirror mode */
	ins_files_kind files;  /* how nodes learn the registry's address */
	const char *advertise; /* the host nodes reach us at; NULL: ask */
} ins_driver;

/* The driver of a target; NULL for none. */
const ins_driver *ins_driver_of(ins_target_kind t);
/* "kind", "minikube:p", "openshift", ...: NULL when unknown; *arg points
 * after the colon (NULL when none). */
const ins_driver *ins_driver_find(const char *spec, const char **arg);

/* The host of a listen address ADDR:PORT or [ADDR]:PORT; "" for a
 * wildcard (0.0.0.0, ::). */
void ins_listen_host(char *out, size_t n, const char *listen);

ins_runtime ins_runtime_parse(const char *s);
const char *ins_runtime_name(ins_runtime rt);

/* A node images are delivered to. */
typedef struct ins_node {
	ins_runner runner;
	ins_runtime runtime;
	char name[256];
	char sock[512];	      /* containerd socket ("" for the default) */
	char snapshotter[64]; /* containerd */
} ins_node;

typedef struct ins_nodes_opts {
	const ins_driver *drv;
	const char *arg;	 /* the target's argument ("" for none) */
	const ins_kube *kube;	 /* to ask the cluster */
	const char *nodes;	 /* comma-separated names (skips discovery) */
	const char *node_runner; /* local|docker|minikube|ssh */
	const char *ssh_port;
	int node_sudo;	     /* -1 default, 0, 1 */
	const char *runtime; /* containerd|docker|crio: override */
} ins_nodes_opts;

/* The nodes of the target, with their transport and runtime. */
int ins_nodes_find(ins_node **out, size_t *n, const ins_ctx *c, const ins_nodes_opts *o,
		   cm_error *err);

/* ctr [--address=SOCK] --namespace=k8s.io REST... */
int ins_ctr_argv(ins_argv *a, const ins_node *nd, const char *const *rest, cm_error *err);

/* What a node holds: ids per ref. For containerd, the images among want
 * (refs with their digests) that it holds by that name at that digest
 * (`ctr images ls -q` with name and target.digest filters); for docker and
 * podman every ref with its image ID. */
typedef struct ins_have {
	char ref[REG_REF_MAX];
	char id[80]; /* "sha256:<hex>" */
} ins_have;
typedef struct ins_have_list {
	ins_have *v;
	size_t n;
} ins_have_list;
int ins_node_images(ins_have_list *h, const ins_ctx *c, const ins_node *nd, const ins_have *want,
		    size_t n_want, cm_error *err);
int ins_have_has(const ins_have_list *h, const char *ref, const char *id);

/* The CRI snapshotter containerd's effective configuration names
 * (`containerd [--config FILE] config dump`, read with ins_toml): 1 found
 * (out filled), 0 not named there, <0 the dump failed or is not TOML. */
int ins_node_snapshotter(char *out, size_t n, const ins_ctx *c, const ins_node *nd,
			 const char *config, cm_error *err);

#endif
