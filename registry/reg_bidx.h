/* The bundle index: where every member of a bundle lives in the file, which
 * repositories and tags the bundle holds, and which blobs have been hashed.
 * `ferry-install serve` answers registry requests from it (reg_server.h)
 * without unpacking anything.
 *
 * Start-up (reg_bidx_open):
 *   1. the signature over SHA256SUMS is checked (always; the check is a
 *      callback so this library never links key code);
 *   2. the member table (path -> offset, size, sha256, verified) comes from
 *      a sqlite index keyed by the bundle's device, inode, size, mtime and
 *      the sha256 of its SHA256SUMS, or else from a scan of the tar
 *      (full: hash everything; lazy: read headers and seek past data) that
 *      is then saved;
 *   3. index.json and every manifest reachable from it are read, hashed and
 *      parsed again (they are small) to rebuild repositories, tags and the
 *      set of digests each repository may serve.
 *
 * Repositories are named <upstream-host>/<path> from each index.json entry's
 * io.containerd.image.name annotation, e.g. docker.io/library/mysql.
 *
 * Verification: in full mode every blob is hashed before the server starts
 * (or was, by an earlier run of the same file). In lazy mode each blob is
 * hashed by a worker thread the first time it is asked for; reg_bidx_check
 * reports the state and calls back when it is known. A blob that does not
 * match its digest is never served. */
#ifndef REG_BIDX_H
#define REG_BIDX_H

#include <stddef.h>
#include <stdint.h>

#include "cm_error.h"
#include "reg_digest.h"

typedef struct reg_bidx reg_bidx;

enum { REG_BIDX_FULL = 0, REG_BIDX_LAZY = 1 };

/* Verification state of one object, as reg_bidx_check reports it.
 * UNAVAILABLE: not verified and it cannot be now (stopping, out of memory). */
enum { REG_BIDX_READY = 0, REG_BIDX_PENDING = 1, REG_BIDX_BAD = 2, REG_BIDX_UNAVAILABLE = 3 };

typedef struct reg_bidx_opts {
	const char *bundle;    /* path of the uncompressed bundle tar */
	const char *index_dir; /* NULL: next to the bundle, else the cache folder */
	int mode;	       /* REG_BIDX_FULL or REG_BIDX_LAZY */
	unsigned workers;      /* lazy-verify threads; 0: 2 */
	/* Signature check over the exact SHA256SUMS bytes (see reg_bundle.h).
	 * NULL skips it (--insecure-skip-signature); digests are still checked. */
	int (*check_sig)(void *ctx, const void *sums, size_t sums_len, const void *sig,
			 size_t sig_len, cm_error *err);
	void *sig_ctx;
	/* Progress and events (a blob failed its lazy check, the index could
	 * not be saved, ...). May be NULL. Called from any thread. */
	void (*notify)(void *ctx, const char *msg);
	void *notify_ctx;
} reg_bidx_opts;

typedef struct reg_bidx_info {
	uint64_t file_size;
	uint64_t members;
	uint64_t blobs;
	uint64_t verified_blobs; /* at the end of start-up */
	uint64_t bytes_hashed;	 /* by this start-up */
	size_t repos;
	size_t tags;
	int index_reused;      /* 1: the member table came from the saved index */
	char index_path[4096]; /* "" when the index could not be saved */
	char sums_sha256[65];
} reg_bidx_info;

/* Verify and index a bundle. Verification failures are CM_EVERIFY (exit 2);
 * a full-mode start-up refuses a bundle with any bad member. info may be
 * NULL. */
int reg_bidx_open(reg_bidx **out, reg_bidx_info *info, const reg_bidx_opts *o, cm_error *err);

/* Stop the lazy-verify workers: a running hash is abandoned, queued ones are
 * dropped, and every waiter is called back (the object stays PENDING). Safe
 * to call more than once; reg_bidx_free calls it. */
void reg_bidx_stop(reg_bidx *x);
void reg_bidx_free(reg_bidx *x);

/* The open bundle file; objects are (offset, size) ranges of it. */
int reg_bidx_fd(const reg_bidx *x);

/* One servable object. */
typedef struct reg_bidx_obj {
	uint32_t id;	 /* for reg_bidx_check */
	uint64_t offset; /* of the bytes in reg_bidx_fd */
	uint64_t size;
	reg_digest digest;
	const char *media_type; /* a manifest's own media type; NULL for other blobs */
} reg_bidx_obj;

/* Does the repository exist? (full name, e.g. "docker.io/library/mysql") */
int reg_bidx_has_repo(const reg_bidx *x, const char *repo);
/* Resolve a manifest by tag or digest within repo. 1 found, 0 not. A digest
 * must be a manifest the repository's tags reach. */
int reg_bidx_manifest(const reg_bidx *x, const char *repo, const char *ref, reg_bidx_obj *out);
/* Find a blob (layer, config or manifest) that repo's images reference. */
int reg_bidx_blob(const reg_bidx *x, const char *repo, const reg_digest *d, reg_bidx_obj *out);
/* Sorted tag names of repo (0 and NULL when unknown); valid until free. */
size_t reg_bidx_tags(const reg_bidx *x, const char *repo, const char *const **out);
/* Sorted repository names; valid until free. */
size_t reg_bidx_repos(const reg_bidx *x, const char *const **out);

/* Has object id been verified? READY or BAD straight away; otherwise
 * PENDING. With wake non-NULL a PENDING object is queued for hashing and
 * wake(arg) is called once, from a worker thread, when its state is known
 * (or the workers stop); UNAVAILABLE (and no call) once they have stopped.
 * With wake NULL nothing is queued. */
int reg_bidx_check(reg_bidx *x, uint32_t id, void (*wake)(void *arg), void *arg);

#endif
