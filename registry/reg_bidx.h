/* The bundle reader: the one view of a bundle that every lab verb uses
 * (verify, inspect, serve, install, push, mirror-config), and the trust
 * boundary. It is the only code that reads bundle bytes (`make lint`
 * refuses a pread of the bundle anywhere else), and it hands out only
 * verified bytes:
 *
 *   - reg_bidx_read / the cursor / reg_bidx_copy hash what they read now
 *     and fail with CM_EVERIFY (before the last byte is handed out) when
 *     the bytes are not what the signed SHA256SUMS says;
 *   - the server's zero-copy path sends only members that reg_bidx_check
 *     reports READY: hashed in this process, or recorded as hashed in a
 *     saved index whose key (device, inode, size, mtime, ctime, the sha256
 *     of SHA256SUMS) still matches and which only this user could write.
 *
 * Start-up (reg_bidx_open):
 *   1. the bundle is opened once; that descriptor is scanned and read,
 *      never the path again;
 *   2. the scanner (reg_bundle.h) checks the signature over SHA256SUMS,
 *      then the layout strictly (reg_tar.h), and hashes every member
 *      (FULL) or the metadata only (LAZY);
 *   3. for serve (repos): index.json and every manifest reachable from it
 *      are read, hashed and parsed to rebuild repositories, tags and the
 *      set of digests each repository may serve.
 *
 * Repositories are named <upstream-host>/<path> from each index.json entry's
 * io.containerd.image.name annotation, e.g. docker.io/library/mysql.
 *
 * In LAZY mode with workers, each member is hashed by a worker thread the
 * first time it is asked for; reg_bidx_check reports the state and calls
 * back when it is known. A member that does not match is never handed out.
 * If the file changes on disk (size, mtime or ctime) every state goes back
 * to unverified and is hashed again before it is served. */
#ifndef REG_BIDX_H
#define REG_BIDX_H

#include <stddef.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "reg_bundle.h"
#include "reg_digest.h"

typedef struct reg_bidx reg_bidx;

enum { REG_BIDX_FULL = 0, REG_BIDX_LAZY = 1 };

/* Verification state of one object, as reg_bidx_check reports it.
 * UNAVAILABLE: not verified and it cannot be now (stopping, out of memory). */
enum { REG_BIDX_READY = 0, REG_BIDX_PENDING = 1, REG_BIDX_BAD = 2, REG_BIDX_UNAVAILABLE = 3 };

typedef struct reg_bidx_opts {
	const char *bundle; /* path of the uncompressed bundle tar */
	int mode;	    /* REG_BIDX_FULL or REG_BIDX_LAZY */
	unsigned threads;   /* FULL: hashing threads at start-up; 0: one per CPU */
	unsigned workers;   /* LAZY: background verify threads; 0: none */
	int repos;	    /* build the registry view (repositories, tags) */
	/* Keep the member table in a saved index (serve): in index_dir, which
	 * must be owned by this user and closed to others, or NULL for the
	 * private cache folder (~/.cache/ferry/serve-index, 0700). */
	int use_index;
	const char *index_dir;
	int insecure_skip_signature; /* required when check_sig is NULL */
	cm_buf *bundle_json;	     /* receives bundle.json's verified bytes; may be NULL */
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
	uint64_t file_size; /* all parts of a volume set */
	uint64_t members;
	uint64_t blobs;
	uint64_t verified_blobs; /* at the end of start-up */
	uint64_t bytes_hashed;	 /* by this start-up */
	size_t repos;
	size_t tags;
	int index_reused;      /* 1: the member table came from the saved index */
	char index_path[4096]; /* "" when the index could not be saved */
	char sums_sha256[65];
	size_t parts; /* files: 1, or the parts of a volume set */
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

/* The open bundle file, for the registry server's zero-copy responses
 * only (cmd_serve.c; `make lint` checks): it sends (offset, size) ranges
 * of objects that reg_bidx_check reported READY, never anything else. */
int reg_bidx_serve_fd(const reg_bidx *x);

/* A bundle given as a volume set (PREFIX.000, PREFIX.001, ...; see
 * reg_bundle_vol_open) is read as one logical byte range: offsets in this
 * API (reg_bidx_member.off, reg_bidx_obj.offset) are logical. The number
 * of files (1 for a single-file bundle): */
size_t reg_bidx_parts(const reg_bidx *x);
/* For the registry server's zero-copy responses only (cmd_serve.c, like
 * reg_bidx_serve_fd): the pieces of the logical range [off, off + len) as
 * (descriptor, offset in it, length), one per part it touches. Fills at
 * most max; returns how many there are (0: outside the bundle). A blob
 * that spans two parts is two sendfile ranges. */
typedef reg_bundle_seg reg_bidx_seg;
size_t reg_bidx_serve_segs(const reg_bidx *x, uint64_t off, uint64_t len, reg_bidx_seg *out,
			   size_t max);
/* The bytes of [off, off + n) as they are, for a server response of an
 * object reg_bidx_check reported READY that cannot go by one descriptor
 * (cmd_serve.c only). */
int reg_bidx_serve_read(const reg_bidx *x, uint64_t off, void *buf, size_t n, cm_error *err);
/* The same range as memory, for a response sent from it with
 * writev/sendmsg (cmd_serve.c only; docs/serve.md "Bundles in parts"):
 * each piece of [off, off + len) is mapped read-only from its part (only
 * that range, widened to whole pages), at most REG_BIDX_MAP_MAX pieces.
 * The kernel copies the pages into the socket as it sends; nothing is
 * read into a buffer first. reg_bidx_serve_unmap releases the mappings
 * (the response's free callback). */
#define REG_BIDX_MAP_MAX 8
typedef struct reg_bidx_map {
	size_t n;
	struct {
		const void *p; /* the piece's first byte */
		size_t len;
		void *base; /* the mapping: page-aligned, maplen bytes */
		size_t maplen;
	} v[REG_BIDX_MAP_MAX];
} reg_bidx_map;
int reg_bidx_serve_map(reg_bidx_map *out, const reg_bidx *x, uint64_t off, uint64_t len,
		       cm_error *err);
void reg_bidx_serve_unmap(reg_bidx_map *m);

/* ---- members and verified reads ------------------------------------- */

#define REG_BIDX_NONE UINT32_MAX

/* One member, as SHA256SUMS lists it and the scan placed it. off orders
 * reads (read members in file order); it is not a way to read them. */
typedef struct reg_bidx_member {
	const char *path; /* valid until reg_bidx_free */
	const char *hex;  /* sha256 from SHA256SUMS */
	uint64_t off, size;
} reg_bidx_member;

/* Members are numbered 0..n-1 in path order. */
size_t reg_bidx_count(const reg_bidx *x);
/* The member table itself: reg_bidx_count entries, in path order, owned by
 * the reader (the one table every view uses). */
const reg_bidx_member *reg_bidx_members(const reg_bidx *x);
void reg_bidx_member_at(const reg_bidx *x, uint32_t id, reg_bidx_member *out);
/* The id of a path, or of blobs/sha256/<hex>; REG_BIDX_NONE when absent. */
uint32_t reg_bidx_find(const reg_bidx *x, const char *path);
uint32_t reg_bidx_find_blob(const reg_bidx *x, const reg_digest *d);

/* Read a whole member (at most cap bytes) into out, hashing it now:
 * CM_EVERIFY naming the member when it does not match. */
int reg_bidx_read(cm_buf *out, reg_bidx *x, uint32_t id, size_t cap, cm_error *err);

/* A sequential verified read of one member. Every byte is hashed as it is
 * read, and the read that would hand out the last bytes fails with
 * CM_EVERIFY instead when the whole does not match: a consumer never
 * holds all of a bad member. With REG_BIDX_TRUST_VERIFIED, a member
 * already verified in this process is handed out without hashing again. */
enum { REG_BIDX_TRUST_VERIFIED = 1 };
typedef struct reg_bidx_cursor {
	reg_bidx *x;
	uint32_t id;
	uint64_t pos, size;
	reg_hasher *h; /* NULL when trusted */
	int checked;   /* the whole was hashed and compared (and settled) */
} reg_bidx_cursor;
int reg_bidx_cursor_open(reg_bidx_cursor *c, reg_bidx *x, uint32_t id, int flags, cm_error *err);
/* Up to n bytes from the cursor; *got 0 at the end (everything matched). */
int reg_bidx_cursor_read(reg_bidx_cursor *c, void *buf, size_t n, size_t *got, cm_error *err);
/* Move to off (a retry re-sending from there): the bytes before it are
 * read and hashed again, so the digest still covers what is sent. */
int reg_bidx_cursor_seek(reg_bidx_cursor *c, uint64_t off, cm_error *err);
void reg_bidx_cursor_close(reg_bidx_cursor *c);

/* Copy a member into fd (a temp file of the caller's), hashing it:
 * CM_EVERIFY when it does not match (the caller discards fd's file). */
int reg_bidx_copy(int fd, reg_bidx *x, uint32_t id, cm_error *err);

/* ---- the scheduler: one state per member, for every verifier -------- */

/* Make sure member id was verified: 0 matched, CM_EVERIFY not. Waits while
 * another thread hashes it; hashes it in this thread when nobody does (an
 * idle-time hasher's member is taken over). */
int reg_bidx_verify(reg_bidx *x, uint32_t id, cm_error *err);
/* 1: this thread is to hash member id now (nobody does, or an idle-time
 * hasher did and is dropped); it then reads it with a hashing cursor, whose
 * last read (for an empty member, the read at its end) settles it, or
 * calls reg_bidx_untake.
 * 0: it is verified, bad, or another thread hashes it. */
int reg_bidx_take(reg_bidx *x, uint32_t id);
void reg_bidx_untake(reg_bidx *x, uint32_t id);
/* Start n worker threads (beyond opts.workers), and queue a member for
 * them (urgent: in front; a member verified, queued or being hashed is
 * left alone). */
int reg_bidx_workers(reg_bidx *x, unsigned n, cm_error *err);
int reg_bidx_queue(reg_bidx *x, uint32_t id, int urgent);
/* Called (from the settling thread) whenever a member's outcome is known. */
void reg_bidx_on_settle(reg_bidx *x, void (*cb)(void *ctx, uint32_t id, int ok), void *ctx);
/* Idle-time hashers: threads at SCHED_IDLE that hash ids in the order
 * given while CPUs would idle; nobody waits for them. Stop returns how many
 * members they settled. */
int reg_bidx_idle_start(reg_bidx *x, const uint32_t *ids, size_t n, unsigned threads,
			cm_error *err);
uint64_t reg_bidx_idle_stop(reg_bidx *x);
/* 1 when member id was verified in this process (or by a trusted index). */
int reg_bidx_is_verified(reg_bidx *x, uint32_t id);

/* One servable object. */
typedef struct reg_bidx_obj {
	uint32_t id;	 /* for reg_bidx_check */
	uint64_t offset; /* of the bytes in reg_bidx_serve_fd */
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
