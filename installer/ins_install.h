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
 * reports every command it would run. */
#ifndef INS_INSTALL_H
#define INS_INSTALL_H

#include <stddef.h>
#include <stdint.h>

#include "cm_error.h"
#include "ins_install_bundle.h"
#include "ins_runner.h"

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

/* Message levels for opts->say. */
enum {
	INS_SAY_STEP = 0, /* a step begins */
	INS_SAY_INFO,	  /* progress */
	INS_SAY_CMD,	  /* a command run (or, in dry-run, that would run) */
	INS_SAY_WARN,
};

typedef struct ins_install_opts {
	const char *bundle;
	const char *pubkey;
	int insecure_skip_signature;

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

	/* set by the push step when the registry needs credentials: pull
	 * secrets go into the namespaces the manifests use */
	const char *pull_host;
	const char *pull_auth; /* base64 user:secret */

	void (*say)(void *ud, int level, const char *msg);
	void *say_ud;
} ins_install_opts;

typedef struct ins_step_report {
	int ran;	/* 0: not applicable / skipped by flag */
	char note[256]; /* why not, or a summary */
	uint64_t done, skipped, failed;
	uint64_t bytes;
	double secs;
} ins_step_report;

typedef struct ins_install_report {
	ins_step_report verify, images, manifests, models;
	uint64_t nodes;
	double total_secs;
} ins_install_report;

/* Parse "kind[:C]", "minikube[:P]", "okd", "containerd[:SOCK]", "crio",
 * "docker". */
int ins_target_parse(ins_install_opts *o, const char *s, cm_error *err);
const char *ins_target_name(ins_target_kind t);

int ins_install_run(ins_install_report *rep, const ins_install_opts *o, cm_error *err);

/* ---- shared between the install steps (ins_install_*.c) ---- */

void ins_say(const ins_install_opts *o, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Say the command line (level INS_SAY_CMD) with a suffix ("< archive"). */
void ins_say_cmd(const ins_install_opts *o, const char *const *argv, const char *suffix);

/* A node images are delivered to. */
typedef struct ins_node {
	ins_runner runner;
	ins_runtime runtime;
	char name[256];
	char sock[512];	      /* containerd socket ("" for the default) */
	char snapshotter[64]; /* containerd */
} ins_node;

/* The nodes of the target, with their transport and runtime. */
int ins_install_nodes(ins_node **out, size_t *n, const ins_install_opts *o, cm_error *err);

/* Step 2, load mode: stream the images into every node. */
int ins_install_load(ins_step_report *rep, const ins_bundle *b, const ins_node *nodes,
		     size_t n_nodes, const ins_install_opts *o, cm_error *err);

/* Write the archive a runtime takes to o->archive_out. */
int ins_install_archive_out(ins_step_report *rep, const ins_bundle *b, ins_runtime rt,
			    const ins_install_opts *o, cm_error *err);

/* Step 2, mirror mode. */
int ins_install_mirror(ins_step_report *rep, const ins_bundle *b, const ins_node *nodes,
		       size_t n_nodes, const ins_install_opts *o, cm_error *err);

/* Point the target's nodes (or cluster) at the mirror addr. */
int ins_install_mirror_config(ins_step_report *rep, const ins_bundle *b, const ins_node *nodes,
			      size_t n_nodes, const char *addr, const char *ca_pem, int plain_http,
			      const ins_install_opts *o, cm_error *err);

/* Step 2, push mode (also `ferry-install push`). */
typedef struct ins_push_stats {
	uint64_t images, manifests_put, blobs_uploaded, blobs_skipped, blobs_mounted;
	uint64_t bytes_uploaded;
} ins_push_stats;
/* Is --to HOST[:PORT][/PREFIX] (an http:// or https:// scheme allowed)?
 * CM_EUSAGE naming what is wrong. */
int ins_push_check_target(const char *to, cm_error *err);
int ins_push_bundle(ins_push_stats *st, const ins_bundle *b, const ins_install_opts *o,
		    cm_error *err);

/* Pull secrets (ins_install_secrets.c). ins_pull_auth: the base64
 * user:secret the local credentials hold for host (1), none (0). */
int ins_pull_auth(char **out_auth, const char *host, cm_error *err);
/* Wipe *out_auth of ins_pull_auth, then free it; NULL is a no-op. */
void ins_pull_auth_free(char *auth);
int ins_okd_pull_secret(const char *host, const char *auth, const ins_install_opts *o,
			cm_error *err);
int ins_ns_pull_secret(const char *ns, const char *host, const char *auth,
		       const ins_install_opts *o, cm_error *err);

/* Step 4. */
int ins_install_models(ins_step_report *rep, const ins_bundle *b, const ins_install_opts *o,
		       cm_error *err);
/* Say the KServe storageUri (oci://<modelcar ref>) of each model. */
void ins_say_storage_uris(const ins_bundle *b, const ins_install_opts *o);

/* kubectl (or oc) argv prefix with --kubeconfig/--context. */
int ins_kubectl_argv(ins_argv *a, const ins_install_opts *o, cm_error *err);

#endif
