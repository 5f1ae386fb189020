/* A parallel loop: the one pool of worker threads for independent jobs
 * (the bundle scanner's hashing, the copy pipeline's blobs). */
#ifndef CM_PAR_H
#define CM_PAR_H

#include <stddef.h>

#include "cm_error.h"

#define CM_PAR_MAX 64 /* threads at most */

/* fn(ctx, worker, i, err) for every i < n, each once and started in order
 * of i, on up to threads threads, this one among them; worker (< threads)
 * names the thread running it, for buffers of its own. After the first fn
 * that fails no i starts; its code is returned and its err copied out. */
int cm_par_each(size_t n, unsigned threads,
		int (*fn)(void *ctx, unsigned worker, size_t i, cm_error *err), void *ctx,
		cm_error *err);

#endif
