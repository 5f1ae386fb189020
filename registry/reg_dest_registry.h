/* A registry as a copy-pipeline destination (reg_dest.h), on the one
 * transfer engine (reg_client.h): the push side of the pipeline.
 *
 *   has_blob      HEAD /v2/<repo>/blobs/<d>; when absent and mount_from
 *                 names another repository of the target that holds it, a
 *                 cross-repository mount (POST ?mount=&from=, 201)
 *   put_blob      POST /v2/<repo>/blobs/uploads/, then PUT ?digest= with
 *                 the body pulled from the digesting reader (PATCH chunks
 *                 first beyond REG_DEST_REGISTRY_CHUNK); the reader fails
 *                 its last read on a wrong digest or size, curl aborts the
 *                 body, and the registry never commits the blob. A failed
 *                 upload goes again whole in a new session (rewinding the
 *                 reader) up to tries times; a digest mismatch never.
 *   put_manifest  kept in memory: a registry refuses a manifest whose
 *                 blobs it lacks, and reg_copy hands manifests over first
 *   tag           the kept manifests go out: children by digest, then the
 *                 root by the reference's tag (or digest); each is skipped
 *                 when a HEAD already answers with its digest
 *   jobs          uploads at once; each call takes a lane (its own
 *                 keep-alive connections) from a pool
 * Beyond the table (referrers, docs/supply-chain.md "Push"):
 *   reg_dest_registry_put_children  the kept children by digest, no root
 *                 and no tag (an OCI 1.1 fallback index's artifacts, on a
 *                 registry with the referrers API)
 *   reg_dest_registry_referrers_api GET /v2/<repo>/referrers/<digest>:
 *                 does the registry answer an image index?
 *   reg_dest_registry_saw_subject  did a manifest PUT answer OCI-Subject?
 * The client, endpoint and strings stay the caller's. */
#ifndef REG_DEST_REGISTRY_H
#define REG_DEST_REGISTRY_H

#include <stdint.h>

#include "reg_client.h"
#include "reg_dest.h"

#define REG_DEST_REGISTRY_CHUNK ((uint64_t)64 << 20)
/* A blob body this large takes a slot of the caller's gate (opts.gate). */
#define REG_DEST_REGISTRY_SMALL ((uint64_t)1 << 20)

typedef struct reg_dest_registry_stats {
	uint64_t blobs_uploaded, blobs_skipped, blobs_mounted, bytes_uploaded, manifests_put;
} reg_dest_registry_stats;

typedef struct reg_dest_registry_opts {
	reg_client *client;
	const reg_endpoint *ep; /* TLS and realm rules of the target */
	const char *base;	/* "http[s]://host[:port]" */
	const char *repo;	/* the repository on the target */
	unsigned jobs;		/* uploads at once (0: 1) */
	int tries;		/* upload sessions per blob (0: 3) */
	/* another repository of the target known to hold d (into repo, n
	 * bytes): 1, else 0. NULL: no mounts. */
	int (*mount_from)(void *ud, const reg_desc *d, char *repo, size_t n);
	/* d is now in o->repo (uploaded, mounted or found). May be NULL. */
	void (*holds)(void *ud, const reg_desc *d, const char *repo);
	/* a retried upload, for the front end. May be NULL. */
	void (*warn)(void *ud, const char *msg);
	/* take 1: a body of REG_DEST_REGISTRY_SMALL bytes or more is about to
	 * stream (may block until a slot is free); take 0: it is sent (given
	 * back when the last byte went, not when the registry answers). May be
	 * NULL. */
	void (*gate)(void *ud, int take);
	/* before each manifest PUT and each further upload session: <0 stops
	 * (a failure elsewhere; err may be NULL). May be NULL. */
	int (*proceed)(void *ud, cm_error *err);
	void *ud;
} reg_dest_registry_opts;

int reg_dest_registry_open(reg_dest **out, const reg_dest_registry_opts *o, cm_error *err);
/* Another repository of the same target: shares first's options, lanes
 * and counts (each is freed on its own; the shared part with the last). */
int reg_dest_registry_sibling(reg_dest **out, reg_dest *first, const char *repo, cm_error *err);
/* Put the manifests handed over with a parent (by digest, each skipped
 * when a HEAD answers with its digest) and drop the rest (root: not put,
 * not tagged). */
int reg_dest_registry_put_children(reg_dest *dst, const reg_desc *root, cm_error *err);
/* Manifests this destination (not its siblings) PUT so far. */
uint64_t reg_dest_registry_puts(reg_dest *dst);
/* *out = 1 when GET /v2/<repo>/referrers/<subject> answers 200 with an
 * OCI image index (the registry has the referrers API), else 0; <0 only
 * when the request itself failed. */
int reg_dest_registry_referrers_api(int *out, reg_dest *dst, const reg_digest *subject,
				    cm_error *err);
/* 1 once a manifest PUT of this destination or a sibling was answered
 * with OCI-Subject (the registry indexed the manifest's subject: it has the
 * referrers API), else 0. */
int reg_dest_registry_saw_subject(reg_dest *dst);
/* What this destination and its siblings did so far. */
void reg_dest_registry_stats_get(reg_dest_registry_stats *out, reg_dest *dst);

#endif
