/* Image destinations for the copy pipeline (reg_copy.h), libgit2-backend
 * style: a small table of operations behind a common head.
 *
 * Destinations today: the content store (reg_dest_store_open, below), a
 * node's containerd content store and the docker-archive/OCI archive
 * stream of ferry-install's load mode (installer/ins_install_load.c,
 * installer/ins_archive.c), and a registry repository on the transfer
 * engine (reg_dest_registry.h: HEAD or mount, POST + PUT with the body
 * pulled from the reader, manifests put at tag time; docs/architecture.md,
 * "The copy pipeline"). */
#ifndef REG_DEST_H
#define REG_DEST_H

#include <stddef.h>

#include "cm_error.h"
#include "reg_manifest.h"
#include "reg_reader.h"
#include "reg_store.h"

typedef struct reg_dest reg_dest;

struct reg_dest_ops {
	const char *name;
	/* 1 when the destination holds blob d already (it is then not sent).
	 * NULL: never (the planner decides). */
	int (*has_blob)(reg_dest *dst, const reg_desc *d);
	/* Take a blob from r (reg_reader_desc(r) says which), reading it to
	 * its end: commit only after a read returned 0 bytes with no error,
	 * and leave nothing behind on any error. Called from up to jobs
	 * threads at once. */
	int (*put_blob)(reg_dest *dst, reg_reader *r, cm_error *err);
	/* A manifest or index whose bytes were checked against d; parent is
	 * the index listing it, or NULL. NULL: the destination keeps no
	 * manifests of its own. */
	int (*put_manifest)(reg_dest *dst, const reg_desc *parent, const reg_desc *d, const void *p,
			    size_t n, cm_error *err);
	/* Blob d (held, or just sent) belongs to manifest parent. May be NULL. */
	int (*link)(reg_dest *dst, const reg_desc *parent, const reg_desc *d, cm_error *err);
	/* The image's name: ref resolves to root. May be NULL. */
	int (*tag)(reg_dest *dst, const char *ref, const reg_desc *root, cm_error *err);
	/* Everything was sent: complete what is pending. May be NULL. */
	int (*finish)(reg_dest *dst, cm_error *err);
	void (*free)(reg_dest *dst); /* NULL: free(dst) */
};

struct reg_dest {
	const struct reg_dest_ops *ops;
	char where[1024]; /* for messages */
	unsigned jobs;	  /* put_blob calls it takes at once (0 or 1: one) */
};

/* The content store: blobs through a verifying writer, manifests, links
 * and tags into its catalog. st stays the caller's. */
int reg_dest_store_open(reg_dest **out, reg_store *st, cm_error *err);

int reg_dest_finish(reg_dest *dst, cm_error *err);
/* NULL is a no-op. */
void reg_dest_free(reg_dest *dst);

#endif
