/* `ferry-install install`: replay a verified bundle onto a target.
 *
 *   1. verify the bundle (nothing is touched before this succeeds)
 *   2. deliver the images (load, mirror or push)
 *   3. apply the manifests
 *   4. place the models
 *   5. report what was done, what was skipped as present, and the time
 *
 * The library never prints: messages go through opts->say, which the
 * command front end renders. --dry-run runs read-only queries only and
 * reports every command it would run (ins_ctx.h).
 *
 * ins_install_opts are the command line's options; the orchestrator
 * (ins_install.c) hands each step the context and the options struct of
 * that step, and no step calls another step or the orchestrator
 * (tests/e2e/installer_layers.sh checks it with nm). */
#ifndef INS_INSTALL_H
#define INS_INSTALL_H

#include <stddef.h>
#include <stdint.h>

#include "cm_error.h"
#include "ins_install_bundle.h"
#include "ins_ctx.h"
#include "ins_kubectl.h"
#include "ins_nodes.h"
#include "ins_runner.h"
#include "reg_client.h"

typedef struct ins_install_opts {
	const char *bundle;
	const char *pubkey;
	int insecure_skip_signature;
	/* --base OLD.tar...: a delta's bases (docs/install.md "Deltas") */
	const char *const *bases;
	size_t n_bases;

	ins_target_kind target;
	char target_arg[512]; /* cluster, profile or socket; "" for the default */
	ins_mode mode;
	int dry_run;

	/* nodes and runtimes */
	const char *nodes;	 /* comma-separated node names (skips discovery) */
	const char *node_runner; /* local|docker|minikube|ssh: override the transport */
	const char *ssh_port;
	int node_sudo;		       /* -1 default (minikube, ssh: yes), 0 no, 1 yes */
	const char *runtime;	       /* containerd|docker|crio: override detection */
	const char *snapshotter;       /* override the containerd snapshotter */
	const char *containerd_config; /* local containerd's config file, for config dump */
	const char *platform;	       /* for single-platform loads (docker, podman) */
	const char *archive_out;       /* write the load archive here ("-": stdout) instead */
	int unpack_lazy;	       /* containerd: import with --no-unpack (--unpack lazy) */
	long long ingest_min;	       /* containerd: blobs of at least this many bytes go to
					  the content store in parallel streams; -1 default */
	int ingest_stream;	       /* containerd: stream every blob through ctr, never
					  place it in a local store (--ingest stream) */

	/* manifests */
	int apply;	     /* -1 default, 0 skip, 1 apply */
	const char *kubectl; /* kubectl or oc program */
	const char *kubeconfig;
	const char *context;
	const char *namespace_; /* --namespace: where manifests leave it open */
	int retries;		/* apply retries for transient errors */
	double backoff;		/* first back-off, seconds (doubles each time) */
	double wait_timeout;	/* seconds, for CRDs to become Established */

	/* mirror and push */
	const char *registry;  /* HOST:PORT of a running registry (mirror mode) */
	const char *ca;	       /* its CA certificate */
	const char *hosts_dir; /* containerd certs.d (default /etc/containerd/certs.d) */
	const char
	    *registries_d; /* registries.conf.d (default /etc/containers/registries.conf.d) */
	const char *serve_listen; /* where to run the registry (mirror mode without --registry) */
	const char *serve_dir;	  /* state folder of the started registry (CA, pid, log) */
	const char *advertise;	  /* the host nodes reach the started registry at */
	const char *push_to;	  /* HOST[:PORT][/PREFIX] */
	int push_insecure;	  /* plain HTTP to push_to */
	int push_no_idle_hash;	  /* no idle-time hashers: uploads hash their own blobs */
	/* --realm-credentials: token realm hosts ("host" or "host:port") on
	 * another host than push_to that may receive its credentials */
	const char *const *realm_creds;
	size_t n_realm_creds;
	int jobs;

	/* models */
	const char *models_dir;

	void (*say)(void *ud, int level, const char *msg);
	void *say_ud;
} ins_install_opts;

typedef struct ins_install_report {
	ins_step_report verify, images, manifests, models;
	uint64_t nodes;
	double total_secs;
} ins_install_report;

/* Parse "kind[:C]", "minikube[:P]", "okd", "containerd[:SOCK]", "crio",
 * "docker" (ins_nodes.c holds the table of targets). */
int ins_target_parse(ins_install_opts *o, const char *s, cm_error *err);

/* The orchestrator: the only caller of the steps below. */
int ins_install_run(ins_install_report *rep, const ins_install_opts *o, cm_error *err);

/* ---- the steps: each takes the context and its own options ---- */

/* Step 2, load mode (ins_install_load.c): the images into every node. */
typedef struct ins_load_opts {
	const ins_ctx *ctx;
	const char *snapshotter;       /* override the containerd snapshotter */
	const char *containerd_config; /* local containerd's config file, for config dump */
	const char *platform;	       /* for single-platform loads (docker, podman) */
	int unpack_lazy;	       /* containerd: import with --no-unpack */
	long long ingest_min;	       /* containerd: blobs of at least this many bytes go to
					  the content store in parallel streams; -1 default */
	int ingest_stream;	       /* containerd: stream every blob through ctr */
	int jobs;
	/* A delta (docs/install.md "Deltas"): a blob it leaves out comes from
	 * the node's content store when there, else from the first of these
	 * readers (bases opened and verified by the orchestrator) that holds
	 * it; found nowhere, the step fails (CM_EVERIFY) before any change. */
	int delta;
	reg_bidx *const *bases;
	size_t n_bases;
} ins_load_opts;
int ins_install_load(ins_step_report *rep, const ins_bundle *b, const ins_node *nodes,
		     size_t n_nodes, const ins_load_opts *o, cm_error *err);
/* Write the archive every runtime takes to path ("-": stdout). */
int ins_install_archive_out(ins_step_report *rep, const ins_bundle *b, const char *path,
			    const ins_load_opts *o, cm_error *err);

/* Step 2, mirror mode, and the files of push mode (ins_install_mirror.c). */
typedef struct ins_mirror_step_opts {
	const ins_ctx *ctx;
	const ins_driver *drv;
	const ins_kube *kube;
	const char *registry;	  /* HOST:PORT of a running registry, or NULL: start one */
	const char *ca;		  /* its CA certificate */
	int plain_http;		  /* the registry speaks plain HTTP */
	const char *hosts_dir;	  /* containerd certs.d */
	const char *registries_d; /* registries.conf.d */
	const char *serve_listen; /* where to run the registry */
	const char *serve_dir;	  /* state folder of the started registry */
	const char *advertise;	  /* the host nodes reach the started registry at */
	const char *pubkey;	  /* for the started registry */
} ins_mirror_step_opts;
int ins_install_mirror(ins_step_report *rep, const ins_bundle *b, const ins_node *nodes,
		       size_t n_nodes, const ins_mirror_step_opts *o, cm_error *err);
/* Point the target's nodes (or cluster) at the registry addr. */
int ins_install_mirror_config(ins_step_report *rep, const ins_bundle *b, const ins_node *nodes,
			      size_t n_nodes, const char *addr, const char *ca_pem,
			      const ins_mirror_step_opts *o, cm_error *err);

/* Step 3 (ins_apply.c, ins_apply.h): the manifests. */

/* Pull secrets (ins_install_secrets.c). ins_pull_auth: the base64
 * user:secret the local credentials hold for host (1), none (0); free it
 * with cm_free_wiped. */
int ins_pull_auth(char **out_auth, const char *host, cm_error *err);
int ins_okd_pull_secret(const ins_ctx *c, const ins_kube *k, const char *host, const char *auth,
			cm_error *err);
int ins_ns_pull_secret(const ins_ctx *c, const ins_kube *k, const char *ns, const char *host,
		       const char *auth, cm_error *err);

/* Say the KServe storageUri (oci://<modelcar ref>) of each model
 * (ins_install_models.c). */
void ins_say_storage_uris(const ins_ctx *c, const ins_bundle *b);
/* Step 4 (ins_install_models.c): model files under dir. */
int ins_install_models(ins_step_report *rep, const ins_ctx *c, const ins_bundle *b, const char *dir,
		       cm_error *err);

/* Step 2, push mode (ins_push.c; also `ferry-install push`): the context
 * c, and the install options for its own (--to, --base, --jobs ...). */
typedef struct ins_push_stats {
	uint64_t images, manifests_put, blobs_uploaded, blobs_skipped, blobs_mounted;
	uint64_t bytes_uploaded;
	/* referrers (docs/supply-chain.md "Push"): put (a manifest PUT), or
	 * found there already (every HEAD matched); api: by the referrers API */
	uint64_t referrers_pushed, referrers_present;
	int referrers_api;
} ins_push_stats;
/* --to HOST[:PORT][/PREFIX] (an http:// or https:// scheme allowed; plain:
 * HTTP anyway) split, and the engine's endpoint for it: TLS verified with
 * ca (NULL: the system's), realm_creds the token-realm hosts allowed its
 * credentials (--realm-credentials). CM_EUSAGE naming what is wrong.
 * ins_push_check_target only checks. */
typedef struct ins_push_target {
	char host[300];	  /* host[:port] */
	char prefix[300]; /* "" or "prefix/" */
	char base[640];	  /* scheme://host[:port] */
	reg_endpoint ep;
} ins_push_target;
int ins_push_target_parse(ins_push_target *out, const char *to, int plain, const char *ca,
			  const char *const *realm_creds, size_t n_realm_creds, cm_error *err);
int ins_push_check_target(const char *to, cm_error *err);
int ins_push_bundle(ins_push_stats *st, const ins_ctx *c, const ins_bundle *b,
		    const ins_install_opts *o, cm_error *err);

#endif
