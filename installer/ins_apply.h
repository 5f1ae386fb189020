/* Applying the bundle's manifests in a safe order (apply-order.md).
 *
 * Every YAML document of manifests/... is parsed with libyaml for its
 * kind, apiVersion, name and namespace (the text itself is sent as is),
 * sorted into Helm's install order and applied in phases:
 *
 *   1 namespaces        PriorityClass, Namespace
 *   2 CRDs              then `wait --for condition=Established` on each
 *   3 RBAC and config   NetworkPolicy ... PersistentVolumeClaim, ClusterRole ... RoleBinding
 *   4 workloads         Service, DaemonSet ... Ingress, APIService
 *   5 webhooks          Mutating/ValidatingWebhookConfiguration
 *   6 custom resources  every other kind, alphabetically
 *
 * Each phase is one `kubectl apply --server-side --force-conflicts
 * --field-manager=ferry -f -` (split by namespace when --namespace is
 * given). Transient failures (no API Status: discovery lag "no matches for
 * kind"; or a reason that passes: a webhook not ready, Conflict,
 * TooManyRequests; ins_kube_transient) are retried with exponential
 * back-off; when a phase still fails its objects are applied one at a
 * time so that the error names the object. */
#ifndef INS_APPLY_H
#define INS_APPLY_H

#include <stddef.h>

#include "ins_install.h"

/* One YAML document. */
typedef struct ins_kdoc {
	const char *text; /* points into its file's buffer */
	size_t len;
	char kind[128];
	char api[256];
	char name[256];
	char ns[256];	    /* metadata.namespace, "" when open */
	char crd_kind[128]; /* a CRD's spec.names.kind */
	char file[1024];    /* manifests/... */
	int doc;	    /* 1-based index in its file */
	int phase;	    /* 0..5 */
	int rank;	    /* Helm order; unknown kinds share the last rank */
	size_t seq;	    /* position in the bundle */
} ins_kdoc;

/* Split text into documents and parse each (docs grow; text must outlive
 * them). Empty documents are dropped. */
int ins_apply_parse(ins_kdoc **docs, size_t *n, const char *text, size_t len, const char *file,
		    cm_error *err);
/* Sort into the apply order. */
void ins_apply_sort(ins_kdoc *docs, size_t n);

typedef struct ins_apply_opts {
	const ins_ctx *ctx;
	const ins_kube *kube;
	const char *namespace_; /* --namespace: where manifests leave it open */
	double wait_timeout;	/* seconds, for CRDs to become Established */
	/* once the namespaces exist, before anything that pulls: called with
	 * every namespace the objects land in (NULL: nothing to do) */
	int (*namespaces_ready)(void *ud, const char *const *ns, size_t n, cm_error *err);
	void *ud;
} ins_apply_opts;

int ins_apply_manifests(ins_step_report *rep, const ins_bundle *b, const ins_apply_opts *o,
			cm_error *err);

#endif
