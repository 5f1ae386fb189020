/* Push mode: a planner over the copy pipeline. Every bundle image goes
 * into an existing registry, straight from the bundle's offsets, through a
 * registry destination per image (registry/reg_dest_registry.h: requests
 * on the transfer engine; docs/architecture.md, "The copy pipeline").
 *
 * Repositories on the target are [PREFIX/]<upstream-host>/<path>, the
 * layout mirror configuration expects. The plan, per image:
 *   - blobs (configs, layers): the destination's has_blob (HEAD, else a
 *     mount from the repository this run put it in), else its put_blob
 *     (POST + PUT, PATCH chunks beyond 64 MiB) reading a digesting reader
 *     over the bundle reader's cursor; a failed upload goes again whole,
 *     in a new session (UPLOAD_TRIES);
 *   - manifests: handed to the destination once what each references
 *     matched; its tag puts children of an index first (by digest), then
 *     the root (by tag, or by digest for digest-only references), each
 *     skipped when a HEAD already answers with its digest.
 * Referrers (bundle.json "referrers"; docs/supply-chain.md "Push"): their
 * manifests go after their subject's (the manifest phase runs in an order
 * where a referrer waits for the images it refers to); cosign's
 * sha256-H.sig/.att/.sbom by tag; an OCI 1.1 fallback index sha256-H puts
 * its artifacts by digest first, then itself by tag unless the target has
 * the referrers API (a GET /v2/<name>/referrers/<digest> probe answering an
 * image index, once per push, or an artifact PUT answered OCI-Subject).
 * The blobs of all images form one queue, largest first, taken by twice
 * --jobs threads, at most --jobs of which stream a large body at a time
 * (the destination's gate); an image's manifests go as soon as all of its
 * blobs are there. A blob another worker uploads right now goes to the
 * back of the queue once, and is then mounted.
 *
 * Verification in the same pass, through the bundle reader's one scheduler
 * (reg_bidx.h: one state per member, shared by every thread). The bundle
 * may come opened with metadata_only (signature, SHA256SUMS, the layout and
 * the metadata members checked; content not read): every other member is
 * then hashed exactly once, and that is the whole check of its content:
 *   - a blob that is uploaded is hashed by the reader's cursor that feeds
 *     the upload (reg_bidx_take), unless an idle-time hasher (the reader's,
 *     one per CPU at SCHED_IDLE, working from the end of the queue) got to
 *     it first;
 *   - a blob that is not read for upload (HEAD found it, mounted, put by
 *     this run already) is queued for the reader's worker thread, and a
 *     worker that needs it before then hashes it itself (reg_bidx_verify);
 *   - a manifest or index is hashed when it is read, before it is parsed;
 *   - the reader's worker hashes manifests/ and models/ meanwhile, and
 *     every member still unhashed is hashed once the images are pushed.
 * A manifest or index is put only after everything it references was
 * hashed and matched; the first mismatch stops every worker (CM_EVERIFY,
 * naming the member), so no manifest or tag that references unverified
 * content is ever put. Blobs are content-addressed and the registry checks
 * each upload against its digest, so an upload never stores wrong bytes
 * under a right name. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ins_install.h"
#include "ins_receipt.h"
#include "ins_verify.h"
#include "reg_bundle.h"
#include "reg_client.h"
#include "reg_dest_registry.h"
#include "reg_digest.h"
#include "reg_ref.h"
#include "reg_url.h"

#define HASH_BUF ((size_t)256 << 10)
#define PREHASHERS 8
#define UPLOAD_TRIES 3
/* [PREFIX/]<repository>: the prefix (shared.prefix) and a bundle image's
 * repository (ins_image.repo) */
#define REPO_MAX 816

typedef struct shared {
	const ins_bundle *b;
	const ins_install_opts *o;
	const ins_ctx *c;  /* messages; whether this run acts (--dry-run) */
	ins_push_target t; /* --to, and its endpoint (--ca, --realm-credentials) */
	/* the HTTP side: the registry engine (auth, tokens, retries, TLS); its
	 * auth state is shared by every worker's lane */
	reg_client *client;
	/* blob hex -> a repository known to hold it (for mounts) */
	struct {
		char hex[65];
		char repo[REPO_MAX];
		int state;
	} * where;
	size_t n_where, cap_where;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* one registry destination per image (its repository), siblings
	 * sharing the lanes and the counts */
	reg_dest **dst;
	uint64_t images, skipped_here; /* pushed; blobs this run put there already */
	/* verification: the states are the reader's (reg_bidx.h); these
	 * record the outcome (under mu) */
	int stop; /* a failure anywhere: workers stop */
	int vbad; /* verr holds the first digest mismatch */
	cm_error verr;
	size_t vbad_i; /* its member */
	int vfail;     /* vfail_err holds the final check's own failure (I/O) */
	cm_error vfail_err;
	uint64_t members_idle; /* hashed by an idle-time hasher */
	/* blob members for the idle-time hashers, the last uploaded first */
	uint32_t *pre;
	size_t n_pre;
	/* upload bodies streaming at once (under mu, cv): a worker gives its
	 * slot back when its body is sent, not when the registry answers, so
	 * that the registry's commit of one blob (an fsync) overlaps the next
	 * upload instead of leaving the CPUs idle */
	int streams_free;
	/* a delta (ins_delta_set_open): its blobs left out come from the
	 * target (HEAD) or from a base's reader (verified in full) */
	ins_delta_set ds;
	/* referrers (bundle.json "referrers"; docs/supply-chain.md "Push"):
	 * per image its kind (R_*) and the digest it refers to ("" unknown);
	 * api: the target answers the OCI 1.1 referrers API */
	int *rkind;
	reg_digest *subject;
	int api;
	uint64_t ref_pushed, ref_present; /* referrers put, found there already */
} shared;

/* What an image of the bundle is: an image, a tag-scheme artifact
 * (sha256-H.sig, .att, .sbom: pushed by tag), or an OCI 1.1 fallback index
 * (sha256-H: its artifacts by digest; the index by tag without the API). */
enum { R_NONE = 0, R_TAG, R_INDEX };

typedef struct conn {
	shared *s;
	char *buf; /* HASH_BUF bytes: what an upload did not read, read to be checked */
} conn;

/* Stop every worker (after a failure anywhere). */
static void stop_all(shared *s)
{
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* CM_EFAIL once a failure anywhere stopped the push (s: a shared; also
 * the destination's proceed hook). */
static int stopped(void *ud, cm_error *err)
{
	shared *s = ud;
	pthread_mutex_lock(&s->mu);
	int st = s->stop;
	pthread_mutex_unlock(&s->mu);
	return st ? cm_error_set(err, CM_EFAIL, "stopped after a failure elsewhere") : 0;
}

/* The registry destination's hooks (reg_dest_registry.h). */

/* A stream slot (see shared.streams_free). */
static void gate(void *ud, int take)
{
	shared *s = ud;
	pthread_mutex_lock(&s->mu);
	if (take) {
		while (!s->streams_free && !s->stop)
			pthread_cond_wait(&s->cv, &s->mu);
		s->streams_free--; /* may go below 0 after a stop: given back all the same */
	} else {
		s->streams_free++;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
}

static void warn(void *ud, const char *msg)
{
	ins_ctx_say(((shared *)ud)->c, INS_SAY_WARN, "%s", msg);
}

/* Another repository of the target that holds d: the one this run put it
 * in (mount from there). */
static int mount_from(void *ud, const reg_desc *d, char *repo, size_t n);

enum { B_UPLOADING = 0, B_DONE = 1, B_FAILED = 2 };

/* The where entry of blob hex (under mu), or n_where. */
static size_t where_at(const shared *s, const char *hex)
{
	size_t i = 0;
	while (i < s->n_where && strcmp(s->where[i].hex, hex) != 0)
		i++;
	return i;
}

/* Claim a blob: 0 when this worker is to HEAD/upload it (then release()),
 * 1 when it is already in a repository of the target (from filled: mount
 * it). While another worker uploads it: with wait, waits for that, so that
 * the second repository mounts instead of uploading the same bytes again;
 * without, returns 2 at once (the caller pushes its other blobs first). */
static int claim(shared *s, const char *hex, const char *repo, char *from, size_t n, int wait)
{
	pthread_mutex_lock(&s->mu);
	size_t i;
	while ((i = where_at(s, hex)) < s->n_where && s->where[i].state == B_UPLOADING && wait)
		pthread_cond_wait(&s->cv, &s->mu);
	int rc = 0;
	if (i == s->n_where) {
		void *v = cm_grow(s->where, i, &s->cap_where, sizeof(*s->where), NULL);
		if (v)
			snprintf((s->where = v)[s->n_where++].hex, 65, "%s", hex);
		else
			i = SIZE_MAX; /* no bookkeeping: just upload */
	} else if (s->where[i].state == B_DONE)
		rc = 1;
	else if (s->where[i].state == B_UPLOADING)
		rc = 2;
	if (rc == 1)
		snprintf(from, n, "%s", s->where[i].repo);
	else if (rc == 0 && i != SIZE_MAX) {
		s->where[i].state = B_UPLOADING;
		snprintf(s->where[i].repo, sizeof(s->where[0].repo), "%s", repo);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static void release(shared *s, const char *hex, const char *repo, int ok)
{
	pthread_mutex_lock(&s->mu);
	size_t i = where_at(s, hex);
	if (i < s->n_where) {
		s->where[i].state = ok ? B_DONE : B_FAILED;
		if (ok)
			snprintf(s->where[i].repo, sizeof(s->where[0].repo), "%s", repo);
	}
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void count(shared *s, uint64_t *field, uint64_t v)
{
	pthread_mutex_lock(&s->mu);
	*field += v;
	pthread_mutex_unlock(&s->mu);
}

/* --- verification of member contents ------------------------------------ */

static size_t member_index(const shared *s, const ins_member *m)
{
	return (size_t)(m - s->b->m);
}

/* Record a mismatch of member i: stop everything; the first one (e says
 * which) is what the run reports. */
static void record_bad(shared *s, size_t i, const cm_error *e)
{
	pthread_mutex_lock(&s->mu);
	if (!s->vbad) {
		s->verr = *e;
		s->verr.code = CM_EVERIFY;
		s->vbad_i = i;
	}
	s->vbad = 1;
	s->stop = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* The reader settled a member: a mismatch found by any of its threads
 * stops the push at once. */
static void on_settle(void *ctx, uint32_t id, int ok)
{
	shared *s = ctx;
	if (ok)
		return;
	cm_error e;
	cm_error_set(&e, CM_EVERIFY,
		     "digest mismatch in member '%s': its bytes do not hash to %s as SHA256SUMS "
		     "says",
		     s->b->m[id].path, s->b->m[id].hex);
	record_bad(s, id, &e);
}

/* Member i must have matched before anything that references it is put:
 * waits while another thread hashes it, hashes it here when nobody has. */
static int verified(conn *k, size_t i, cm_error *err)
{
	int rc = reg_bidx_verify(k->s->b->x, (uint32_t)i, err);
	if (rc == CM_EVERIFY)
		record_bad(k->s, i, err);
	return rc;
}

/* Every member still unhashed, hashed in this thread while the reader's
 * worker takes the queued ones: after the images are pushed, or in a dry
 * run. */
static void check_rest(shared *s)
{
	const ins_bundle *b = s->b;
	for (size_t i = 0; i < b->n_m; i++)
		reg_bidx_queue(b->x, (uint32_t)i, 0);
	for (size_t i = 0; i < b->n_m && !stopped(s, NULL); i++) {
		cm_error e = {0};
		int rc = reg_bidx_verify(b->x, (uint32_t)i, &e);
		if (rc == CM_EVERIFY) {
			record_bad(s, i, &e);
		} else if (rc < 0) {
			pthread_mutex_lock(&s->mu);
			if (!s->vfail)
				s->vfail_err = e;
			s->vfail = 1;
			s->stop = 1;
			pthread_mutex_unlock(&s->mu);
		}
	}
}
static int mount_from(void *ud, const reg_desc *d, char *repo, size_t n)
{
	shared *s = ud;
	pthread_mutex_lock(&s->mu);
	size_t i = where_at(s, REG_DIGEST_HEX(&d->digest));
	int found = i < s->n_where && s->where[i].state == B_DONE;
	if (found)
		snprintf(repo, n, "%s", s->where[i].repo);
	pthread_mutex_unlock(&s->mu);
	return found;
}

/* The bundle reader's cursor as the stream under a reg_reader. */
static int cur_read(void *ctx, void *buf, size_t n, size_t *got, cm_error *err)
{
	return reg_bidx_cursor_read(ctx, buf, n, got, err);
}

static int cur_rewind(void *ctx, cm_error *err)
{
	return reg_bidx_cursor_seek(ctx, 0, err);
}

static const reg_stream_ops cursor_ops = {cur_read, cur_rewind, NULL};

/* One blob into image's repository: HEAD, or a mount from the repository
 * this run put it in, or an upload through the digesting reader from the
 * bundle reader's cursor over m, its member, or (m NULL: a delta left it
 * out, and delta_preflight found it on the target or in a base) from the
 * base's reader. When wait is 0 and another worker uploads this blob right
 * now, nothing is done and *later is set: push it after the others (by
 * then it can be mounted). */
static int push_blob(conn *k, size_t image, const char *repo, const reg_desc *d,
		     const ins_member *m, int wait, int *later, cm_error *err)
{
	shared *s = k->s;
	reg_dest *dst = s->dst[image];
	size_t mi = m ? member_index(s, m) : 0, bi;
	uint32_t id;
	char from[REPO_MAX];
	reg_bidx_cursor cur;
	reg_reader *rd = NULL;
	int rc = 0, hashing = 0, have_cur = 0;
	if ((rc = stopped(s, err)) < 0)
		return rc;
	const char *hex = REG_DIGEST_HEX(&d->digest);
	int cl = claim(s, hex, repo, from, sizeof(from), wait);
	if (cl == 2) {
		*later = 1;
		return 0;
	}
	int owner = cl == 0;
	if (owner && (rc = stopped(s, err)) < 0)
		goto out;
	if ((!owner && strcmp(from, repo) == 0) || dst->ops->has_blob(dst, d)) {
		if (!owner && strcmp(from, repo) == 0)
			count(s, &s->skipped_here, 1); /* this run put it there already */
		if (m) /* found or mounted: the reader's worker hashes it, before the
			* background work */
			reg_bidx_queue(s->b->x, (uint32_t)mi, 1);
		goto out;
	}
	if (m) {
		/* the read that feeds the upload also hashes, unless another
		 * thread hashes (or hashed) this member */
		hashing = reg_bidx_take(s->b->x, (uint32_t)mi);
		rc = ins_bundle_cursor(&cur, s->b, m, hashing ? 0 : REG_BIDX_TRUST_VERIFIED, err);
		if (rc < 0 && hashing)
			reg_bidx_untake(s->b->x, (uint32_t)mi);
		hashing = hashing && rc == 0;
	} else if ((bi = ins_delta_find(s->ds.x, s->ds.n, &d->digest, d->size, &id)) < s->ds.n) {
		/* a member verified in full when the base was opened */
		rc = reg_bidx_cursor_open(&cur, s->ds.x[bi], id, REG_BIDX_TRUST_VERIFIED, err);
	} else {
		rc = cm_error_set(err, CM_EVERIFY,
				  "blob %s is left out of the delta and is neither on the target "
				  "nor in a base",
				  d->digest.s);
	}
	have_cur = rc == 0;
	if (rc == 0 &&
	    (rc = reg_reader_new(&rd, d, &cursor_ops, &cur, REG_READER_SELF_VERIFIED, err)) == 0)
		rc = dst->ops->put_blob(dst, rd, err);
out:
	/* A digest mismatch outranks the upload's own outcome (a registry
	 * refuses a tampered upload with a less telling DIGEST_INVALID). */
	if (hashing) {
		/* read what the upload did not, so the reader checks the whole */
		cm_error ve = {0};
		int vr = 0;
		size_t got = 1;
		while (got && (vr = reg_bidx_cursor_read(&cur, k->buf, HASH_BUF, &got, &ve)) == 0)
			;
		/* the cursor's last read (or, for an empty member, its end) settled it */
		if (vr < 0 && vr != CM_EVERIFY)
			reg_bidx_untake(s->b->x, (uint32_t)mi);
		else if (vr == CM_EVERIFY)
			record_bad(s, mi, &ve);
		if (vr == CM_EVERIFY || (vr < 0 && rc == 0)) {
			rc = vr;
			*err = ve;
		}
	} else if (m && rc < 0 && rc != CM_EVERIFY && stopped(s, NULL) == 0) {
		cm_error ve = {0};
		if (verified(k, mi, &ve) == CM_EVERIFY) {
			rc = CM_EVERIFY;
			*err = ve;
		}
	}
	reg_reader_free(rd);
	if (have_cur)
		reg_bidx_cursor_close(&cur);
	if (owner)
		release(s, hex, repo, rc == 0);
	if (rc < 0)
		cm_error_wrap(err, "blob %s to %s%s", d->digest.s, repo, m ? "" : " (from a base)");
	return rc;
}

/* Every member man references must have matched its digest: a
 * manifest's config and layers (one a delta leaves out was checked by
 * delta_preflight and pushed), the children of an index the bundle holds
 * (a child that is itself an index is put as it is). */
static int refs_verified(conn *k, const reg_manifest *man, cm_error *err)
{
	for (size_t j = man->is_index ? 1 : 0; j <= man->n_items; j++) {
		const reg_desc *d = j == 0 ? &man->config : &man->items[j - 1];
		const ins_member *m = ins_bundle_blob(k->s->b, &d->digest);
		if (!m && (man->is_index || k->s->ds.is_delta))
			continue;
		if (!m)
			return cm_error_set(err, CM_EVERIFY, "blob %s is not in the bundle",
					    d->digest.s);
		if (verified(k, member_index(k->s, m), err) < 0)
			return cm_error_wrap(err, "%s %s", man->is_index ? "manifest" : "blob",
					     d->digest.s);
	}
	return 0;
}

/* Read the manifest or index d names, check its bytes against its digest
 * (before they are parsed or pushed), and parse it. raw receives the
 * bytes that are pushed. */
static int read_manifest(conn *k, reg_manifest *out, cm_buf *raw, const reg_desc *d, cm_error *err)
{
	shared *s = k->s;
	memset(out, 0, sizeof(*out));
	const ins_member *m = ins_bundle_blob(s->b, &d->digest);
	if (!m)
		return cm_error_set(err, CM_EVERIFY, "manifest %s is not in the bundle",
				    d->digest.s);
	size_t mi = member_index(s, m);
	/* the read hashes these bytes (and settles the member) */
	int mine = reg_bidx_take(s->b->x, (uint32_t)mi);
	int rc = ins_bundle_read(raw, s->b, m, REG_MANIFEST_MAX, err);
	if (rc == CM_EVERIFY)
		record_bad(s, mi, err);
	else if (rc < 0 && mine)
		reg_bidx_untake(s->b->x, (uint32_t)mi);
	if (rc < 0)
		return cm_error_wrap(err, "manifest %s", d->digest.s);
	if (rc == 0)
		rc = reg_manifest_parse(out, raw->data, raw->len, d->media_type, err);
	if (rc < 0)
		return cm_error_wrap(err, "manifest %s", d->digest.s);
	return 0;
}

/* The manifests of an image whose blobs are all in repo, handed to its
 * destination once what each references matched: children of an index
 * (put by digest), then the root (put by tag, or by digest for a
 * digest-only reference). */
static int push_image(conn *k, size_t image, cm_error *err)
{
	shared *s = k->s;
	const ins_image *im = &s->b->images[image];
	reg_dest *dst = s->dst[image];
	char repo[REPO_MAX];
	snprintf(repo, sizeof(repo), "%s%s", s->t.prefix, im->repo);
	reg_manifest root;
	cm_buf rraw = CM_BUF_INIT;
	uint64_t puts0 = reg_dest_registry_puts(dst);
	int rc = read_manifest(k, &root, &rraw, &im->root, err);
	if (rc < 0) {
		cm_buf_free(&rraw);
		return rc;
	}
	/* a fallback index on a registry with the referrers API: its artifacts
	 * (each naming its subject) by digest, and no fallback tag */
	int fallback = s->rkind[image] == R_INDEX && root.is_index;
	pthread_mutex_lock(&s->mu);
	int by_api = fallback && s->api;
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; root.is_index && i < root.n_items && rc == 0; i++) {
		const reg_desc *kid = &root.items[i];
		if (!reg_media_type_is_manifest(kid->media_type) &&
		    !reg_media_type_is_index(kid->media_type))
			continue;
		reg_manifest man;
		cm_buf raw = CM_BUF_INIT;
		if ((rc = read_manifest(k, &man, &raw, kid, err)) == 0 &&
		    (rc = refs_verified(k, &man, err)) == 0)
			rc = dst->ops->put_manifest(dst, &im->root, kid, raw.data, raw.len, err);
		reg_manifest_free(&man);
		cm_buf_free(&raw);
	}
	if (rc == 0)
		rc = refs_verified(k, &root, err);
	if (rc == 0 && fallback) {
		/* the artifacts first, by digest: a registry that answers their
		 * PUT with OCI-Subject has the referrers API (then no fallback tag) */
		rc = reg_dest_registry_put_children(dst, &im->root, err);
		if (rc == 0 && !by_api && reg_dest_registry_saw_subject(dst)) {
			by_api = 1;
			pthread_mutex_lock(&s->mu);
			int first = !s->api;
			s->api = 1;
			pthread_mutex_unlock(&s->mu);
			if (first)
				ins_ctx_say(s->c, INS_SAY_INFO,
					    "%s answered OCI-Subject: it has the referrers API; no "
					    "fallback tags",
					    s->t.host);
		}
	}
	if (rc == 0 && !by_api)
		rc = dst->ops->put_manifest(dst, NULL, &im->root, rraw.data, rraw.len, err);
	if (rc == 0 && !by_api)
		rc = dst->ops->tag(dst, im->ref, &im->root, err);
	size_t n_art = root.is_index ? root.n_items : 0;
	reg_manifest_free(&root);
	cm_buf_free(&rraw);
	if (rc < 0)
		return rc;
	if (!s->rkind[image]) {
		count(s, &s->images, 1);
		ins_ctx_say(s->c, INS_SAY_INFO, "pushed %s -> %s/%s%s%s", im->ref, s->t.host, repo,
			    im->r.tag[0] ? ":" : "@", im->r.tag[0] ? im->r.tag : im->root.digest.s);
		return 0;
	}
	int put = reg_dest_registry_puts(dst) > puts0;
	count(s, put ? &s->ref_pushed : &s->ref_present, 1);
	if (by_api)
		ins_ctx_say(
		    s->c, INS_SAY_INFO,
		    "referrer %s: %zu artifacts of %s -> %s/%s by digest (referrers API, no "
		    "fallback tag)%s",
		    im->ref, n_art, s->subject[image].s, s->t.host, repo,
		    put ? "" : ", already there");
	else
		ins_ctx_say(s->c, INS_SAY_INFO, "referrer %s (of %s) -> %s/%s:%s%s", im->ref,
			    s->subject[image].s[0] ? s->subject[image].s : "?", s->t.host, repo,
			    im->r.tag[0] ? im->r.tag : im->root.digest.s,
			    put ? "" : ", already there");
	return 0;
}

/* The work: first every blob of every image into its repository, as one
 * queue, largest first, so that --jobs streams stay busy to the end (a
 * blob another worker is uploading right now goes to the back once, and
 * is then mounted); then the manifests, image by image, each as soon as
 * all of its image's blobs are there. Under shared.mu. */
typedef struct btask {
	size_t image;	     /* index in b->images */
	size_t seq;	     /* order of discovery (ties in the sort) */
	const ins_member *m; /* its member; NULL: not in the bundle (push_blob says so) */
	int deferred;
	int on_target; /* a blob the delta leaves out that its repository holds already */
	size_t mount;  /* else 1 + an image whose repository holds it (mounted), or 0 */
	reg_desc d;
} btask;

typedef struct work {
	shared *s;
	btask *t;
	size_t n_t, cap_t;
	size_t *q; /* ring of task indices still to push */
	size_t q_head, q_len;
	size_t *pending; /* per image: blob tasks not done yet */
	size_t next;	 /* next place in order for the manifest phase */
	size_t *order;	 /* images, each subject before its referrers */
	size_t *pos;	 /* image -> its place in order */
	int *done;	 /* per image: its manifests are on the target */
	int failed;
	cm_error err;
} work;

static int add_task(work *w, size_t image, const reg_desc *d, cm_error *err)
{
	btask *v = cm_grow(w->t, w->n_t, &w->cap_t, sizeof(*v), err);
	if (!v)
		return CM_ENOMEM;
	w->t = v;
	v[w->n_t] = (btask){
	    .image = image, .seq = w->n_t, .m = ins_bundle_blob(w->s->b, &d->digest), .d = *d};
	w->n_t++;
	return 0;
}

/* The blobs of image i (its manifests are read and checked here). */
static int plan_image(conn *k, work *w, size_t i, cm_error *err)
{
	const ins_image *im = &w->s->b->images[i];
	reg_manifest root;
	cm_buf raw = CM_BUF_INIT;
	int rc = read_manifest(k, &root, &raw, &im->root, err);
	const reg_desc *kids = root.is_index ? root.items : &im->root;
	size_t nk = rc < 0 ? 0 : root.is_index ? root.n_items : 1;
	for (size_t j = 0; j < nk && rc == 0; j++) {
		reg_manifest man;
		if (!reg_media_type_is_manifest(kids[j].media_type) &&
		    !reg_media_type_is_index(kids[j].media_type))
			continue;
		if (root.is_index)
			rc = read_manifest(k, &man, &raw, &kids[j], err);
		else
			man = root;
		if (rc == 0 && !man.is_index) {
			rc = add_task(w, i, &man.config, err);
			for (size_t l = 0; l < man.n_items && rc == 0; l++)
				rc = add_task(w, i, &man.items[l], err);
		}
		if (root.is_index)
			reg_manifest_free(&man);
	}
	reg_manifest_free(&root);
	cm_buf_free(&raw);
	if (rc < 0)
		return cm_error_wrap(err, "image %s", im->ref);
	return 0;
}

/* A delta, before anything is written: each blob it leaves out must be in
 * its image's repository on the target (HEAD; mount_from knows no
 * repository yet, so has_blob mounts nothing) or in a base (a member
 * verified in full, of the recorded size). The ones found nowhere are
 * named with the images that need them: CM_EVERIFY. */
static int delta_preflight(work *w, cm_error *err)
{
	shared *s = w->s;
	size_t n_missing = 0, n_target = 0, n_base = 0;
	char first[100] = "";
	for (size_t i = 0; i < w->n_t; i++) {
		btask *t = &w->t[i];
		if (t->m)
			continue;
		int dup = 0; /* counted once, for the first image that needs it */
		for (size_t j = 0; j < i && !dup; j++)
			dup = !w->t[j].m && reg_digest_equal(&w->t[j].d.digest, &t->d.digest);
		if (!s->ds.is_delta)
			return cm_error_set(err, CM_EVERIFY, "blob %s is not in the bundle",
					    t->d.digest.s);
		t->on_target = s->dst[t->image]->ops->has_blob(s->dst[t->image], &t->d);
		/* else another repository of the target: mounted from there */
		for (size_t j = 0; j < s->b->n_images && !t->on_target && !t->mount; j++)
			if (strcmp(s->b->images[j].repo, s->b->images[t->image].repo) != 0 &&
			    s->dst[j]->ops->has_blob(s->dst[j], &t->d))
				t->mount = j + 1;
		if (t->on_target || t->mount) {
			n_target += !dup;
			continue;
		}
		uint32_t id;
		if (ins_delta_find(s->ds.x, s->ds.n, &t->d.digest, t->d.size, &id) < s->ds.n) {
			n_base += !dup;
			continue;
		}
		/* named once per image (a blob two images need: both named) */
		int seen = 0;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !w->t[j].m && !w->t[j].on_target && !w->t[j].mount &&
			       w->t[j].image == t->image &&
			       reg_digest_equal(&w->t[j].d.digest, &t->d.digest);
		if (seen)
			continue;
		ins_ctx_say(s->c, INS_SAY_WARN,
			    "missing: %s (%llu bytes), needed by %s: left out of the delta, not on "
			    "the target and in none of the %zu bases",
			    t->d.digest.s, (unsigned long long)t->d.size,
			    s->b->images[t->image].ref, s->ds.n);
		if (!n_missing++)
			snprintf(first, sizeof(first), "%.80s", t->d.digest.s);
	}
	if (n_missing)
		return cm_error_set(err, CM_EVERIFY,
				    "%zu blobs the delta leaves out are neither on the target nor "
				    "in a base (first: %s); nothing was pushed (give its bases "
				    "with --base)",
				    n_missing, first);
	/* now (no HEAD above could mount anything) the repositories that hold
	 * them are where mounts come from */
	for (size_t i = 0; i < w->n_t; i++) {
		btask *t = &w->t[i];
		if (t->m || !t->mount)
			continue;
		char from[REPO_MAX], other[REPO_MAX];
		snprintf(from, sizeof(from), "%s%s", s->t.prefix, s->b->images[t->mount - 1].repo);
		if (claim(s, REG_DIGEST_HEX(&t->d.digest), from, other, sizeof(other), 0) == 0)
			release(s, REG_DIGEST_HEX(&t->d.digest), from, 1);
	}
	if (s->ds.is_delta)
		ins_ctx_say(
		    s->c, INS_SAY_INFO,
		    "a delta: %zu blobs left out are on the target, %zu come from the bases",
		    n_target, n_base);
	return 0;
}

/* Largest first, so that the streams finish together. */
static int cmp_task(const void *a, const void *b)
{
	const btask *x = a, *y = b;
	uint64_t xs = x->m ? x->m->size : x->d.size, ys = y->m ? y->m->size : y->d.size;
	if (xs != ys)
		return xs > ys ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void fail(work *w, cm_error *e, const char *ref)
{
	shared *s = w->s;
	pthread_mutex_lock(&s->mu);
	if (!w->failed) {
		w->err = *e;
		if (ref)
			cm_error_wrap(&w->err, "image %s", ref);
	}
	w->failed = 1;
	s->stop = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Image j is a subject of referrer i: the same repository, and the
 * manifest i refers to is j's root. */
static int subject_of(const shared *s, size_t i, size_t j)
{
	const ins_image *a = &s->b->images[i], *c = &s->b->images[j];
	return i != j && s->rkind[i] && s->subject[i].s[0] && strcmp(a->repo, c->repo) == 0 &&
	       reg_digest_equal(&c->root.digest, &s->subject[i]);
}

/* Every subject of image i that comes before it is on the target (under
 * mu). */
static int subjects_done(const work *w, size_t i)
{
	for (size_t j = 0; j < w->s->b->n_images; j++)
		if (subject_of(w->s, i, j) && w->pos[j] < w->pos[i] && !w->done[j])
			return 0;
	return 1;
}

/* The manifest phase's order: the images, then the referrers whose
 * subjects are placed, pass by pass (a referrer of a referrer after it),
 * then any left (a cycle: no order among them). */
static int plan_order(work *w, cm_error *err)
{
	shared *s = w->s;
	size_t n = s->b->n_images, k = 0;
	if (!(w->order = calloc(n ? n : 1, sizeof(size_t))) ||
	    !(w->pos = calloc(n ? n : 1, sizeof(size_t))) ||
	    !(w->done = calloc(n ? n : 1, sizeof(int))))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		w->pos[i] = SIZE_MAX;
	/* phase 0 the images, 1 (pass by pass) the referrers whose subjects
	 * are placed, 2 the rest */
	for (int phase = 0; phase < 3; phase++)
		for (int progress = 1; progress;) {
			progress = 0;
			for (size_t i = 0; i < n; i++) {
				int ready = w->pos[i] == SIZE_MAX && (phase || !s->rkind[i]);
				for (size_t j = 0; phase == 1 && j < n && ready; j++)
					ready = !subject_of(s, i, j) || w->pos[j] != SIZE_MAX;
				if (ready) {
					w->pos[i] = k;
					w->order[k++] = i;
					progress = phase == 1;
				}
			}
		}
	return 0;
}

/* bundle.json's referrers: each one's kind and subject, onto the image of
 * index.json it is (by reference, else by digest). */
static int referrers_load(shared *s, cm_error *err)
{
	const ins_bundle *b = s->b;
	size_t n = b->n_images ? b->n_images : 1;
	if (!(s->rkind = calloc(n, sizeof(int))) || !(s->subject = calloc(n, sizeof(reg_digest))))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	json_error_t je;
	json_t *bj = json_loadb(b->bundle_json ? b->bundle_json : "{}",
				b->bundle_json ? b->bundle_json_len : 2, 0, &je);
	if (!bj)
		return cm_error_set(err, CM_EVERIFY, "bundle.json: %s", je.text);
	size_t j;
	json_t *e;
	json_array_foreach(json_object_get(bj, "referrers"), j, e)
	{
		const char *ref = json_string_value(json_object_get(e, "ref"));
		const char *dg = json_string_value(json_object_get(e, "digest"));
		const char *kind = json_string_value(json_object_get(e, "kind"));
		const char *subj = json_string_value(json_object_get(e, "subject"));
		size_t i = b->n_images;
		for (size_t x = 0; x < b->n_images && i == b->n_images; x++)
			if (ref && strcmp(b->images[x].ref, ref) == 0)
				i = x;
		for (size_t x = 0; x < b->n_images && i == b->n_images; x++)
			if (dg && b->images[x].referrer &&
			    strcmp(b->images[x].root.digest.s, dg) == 0)
				i = x;
		if (i == b->n_images)
			continue; /* not in index.json: nothing to push */
		s->rkind[i] = kind && strcmp(kind, "index") == 0 ? R_INDEX : R_TAG;
		cm_error pe;
		if (!subj || reg_digest_parse(&s->subject[i], subj, &pe) < 0)
			memset(&s->subject[i], 0, sizeof(s->subject[i]));
	}
	json_decref(bj);
	/* a referrer index.json marks that bundle.json does not name */
	for (size_t i = 0; i < b->n_images; i++)
		if (b->images[i].referrer && !s->rkind[i])
			s->rkind[i] = R_TAG;
	return 0;
}

/* Does the target have the referrers API? Asked once, for the first
 * fallback index (nothing else needs the answer). */
static void probe_api(shared *s)
{
	for (size_t i = 0; i < s->b->n_images; i++) {
		if (s->rkind[i] != R_INDEX || !s->subject[i].s[0])
			continue;
		cm_error pe = {0};
		/* a registry that cannot answer it has no API worth using: the
		 * tag scheme works everywhere (its PUTs still say OCI-Subject) */
		if (reg_dest_registry_referrers_api(&s->api, s->dst[i], &s->subject[i], &pe) < 0)
			ins_ctx_say(s->c, INS_SAY_WARN, "the referrers API probe failed (%s)",
				    pe.msg);
		ins_ctx_say(
		    s->c, INS_SAY_INFO,
		    s->api ? "%s has the referrers API: artifacts with a subject go by digest, "
			     "without fallback tags"
			   : "%s has no referrers API: referrers go by tag (sha256-<hex>.sig "
			     "and the fallback index sha256-<hex>)",
		    s->t.host);
		return;
	}
}

static void *worker(void *arg)
{
	work *w = arg;
	shared *s = w->s;
	conn k = {s, malloc(HASH_BUF)};
	cm_error e = {0};
	if (!k.buf) {
		cm_error_set(&e, CM_ENOMEM, "out of memory");
		fail(w, &e, NULL);
		return NULL;
	}
	/* 1. blobs */
	for (;;) {
		pthread_mutex_lock(&s->mu);
		if (s->stop || w->q_len == 0) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		size_t ti = w->q[w->q_head];
		w->q_head = (w->q_head + 1) % w->n_t;
		w->q_len--;
		btask *t = &w->t[ti];
		int wait = t->deferred || w->q_len == 0;
		pthread_mutex_unlock(&s->mu);
		const ins_image *im = &s->b->images[t->image];
		char repo[REPO_MAX];
		snprintf(repo, sizeof(repo), "%s%s", s->t.prefix, im->repo);
		int later = 0;
		cm_error_clear(&e);
		int rc = t->on_target
			     ? 0 /* delta_preflight's HEAD found it */
			     : push_blob(&k, t->image, repo, &t->d, t->m, wait, &later, &e);
		if (rc < 0) {
			fail(w, &e, im->ref);
			break;
		}
		pthread_mutex_lock(&s->mu);
		if (later) {
			t->deferred = 1;
			w->q[(w->q_head + w->q_len) % w->n_t] = ti;
			w->q_len++;
		} else {
			w->pending[t->image]--;
			pthread_cond_broadcast(&s->cv);
		}
		pthread_mutex_unlock(&s->mu);
	}
	/* 2. manifests, in order: a referrer once its subject is there */
	for (;;) {
		pthread_mutex_lock(&s->mu);
		size_t at = w->next, n = s->b->n_images;
		if (!s->stop && at < n)
			w->next++;
		size_t i = at < n ? w->order[at] : n;
		while (!s->stop && at < n && (w->pending[i] || !subjects_done(w, i)))
			pthread_cond_wait(&s->cv, &s->mu);
		int go = !s->stop && at < n;
		pthread_mutex_unlock(&s->mu);
		if (!go)
			break;
		cm_error_clear(&e);
		if (push_image(&k, i, &e) < 0) {
			fail(w, &e, s->b->images[i].ref);
			break;
		}
		pthread_mutex_lock(&s->mu);
		w->done[i] = 1;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
	free(k.buf);
	return NULL;
}

int ins_push_check_target(const char *to, cm_error *err)
{
	ins_push_target *t = malloc(sizeof(*t)); /* a reg_endpoint is large */
	int rc = t ? ins_push_target_parse(t, to, 0, NULL, NULL, 0, err)
		   : cm_error_set(err, CM_ENOMEM, "out of memory");
	free(t);
	return rc;
}

int ins_push_target_parse(ins_push_target *out, const char *to, int plain, const char *ca,
			  const char *const *realm_creds, size_t n_realm_creds, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	const char *arg = to;
	if (strncmp(to, "https://", 8) == 0)
		to += 8;
	else if (strncmp(to, "http://", 7) == 0) {
		to += 7;
		plain = 1;
	}
	/* curl's URL parser, not ours: HOST[:PORT] only (no user, query or
	 * fragment), and a prefix that is a repository path */
	/* characters that could break out of hosts.toml, registries.conf or a
	 * YAML value, and curl's separators for what an address has not (curl
	 * drops an empty query or fragment: "host#" would pass it) */
	for (const char *q = to; *q; q++)
		if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e ||
		    strchr("\"'\\@?#{}", *q))
			return cm_error_set(err, CM_EUSAGE,
					    "'%.200s': only HOST[:PORT][/PREFIX] (no user, query, "
					    "fragment, quotes or spaces)",
					    to);
	char url[1024];
	if (snprintf(url, sizeof(url), "https://%s", to) >= (int)sizeof(url))
		return cm_error_set(err, CM_EUSAGE, "'%.100s...': too long", to);
	reg_url u;
	if (reg_url_parse(&u, url, 1, NULL) < 0)
		return cm_error_set(err, CM_EUSAGE, "'%.200s' is not HOST[:PORT][/PREFIX]", to);
	if (u.has_user || u.has_query || u.has_fragment)
		return cm_error_set(
		    err, CM_EUSAGE,
		    "'%.200s': only HOST[:PORT][/PREFIX] (no user, query or fragment)", to);
	if (snprintf(out->host, sizeof(out->host), "%s%s%s", u.host, u.port[0] ? ":" : "",
		     u.port) >= (int)sizeof(out->host))
		return cm_error_set(err, CM_EUSAGE, "'%.200s': host too long", to);
	const char *p = u.path;
	while (*p == '/')
		p++;
	char *pre = out->prefix;
	if (snprintf(pre, sizeof(out->prefix), "%s", p) >= (int)sizeof(out->prefix))
		return cm_error_set(err, CM_EUSAGE, "'%.200s': prefix too long", to);
	size_t l = strlen(pre);
	while (l && pre[l - 1] == '/')
		pre[--l] = '\0';
	if (l && !reg_ref_valid_path(pre))
		return cm_error_set(err, CM_EUSAGE,
				    "'%.200s': prefix '%s' is not a repository path", to, pre);
	if (l && snprintf(pre + l, sizeof(out->prefix) - l, "/") >= (int)(sizeof(out->prefix) - l))
		return cm_error_set(err, CM_EUSAGE, "'%.200s': prefix too long", to);
	reg_endpoint *ep = &out->ep;
	if (snprintf(out->base, sizeof(out->base), "%s://%s", plain ? "http" : "https",
		     out->host) >= (int)sizeof(out->base) ||
	    snprintf(ep->prefix, sizeof(ep->prefix), "%s", out->host) >= (int)sizeof(ep->prefix) ||
	    snprintf(ep->endpoint, sizeof(ep->endpoint), "%s", out->base) >=
		(int)sizeof(ep->endpoint))
		return cm_error_set(err, CM_EUSAGE, "'%.200s' is too long", arg);
	ep->insecure = plain;
	if (ca && snprintf(ep->ca, sizeof(ep->ca), "%s", ca) >= (int)sizeof(ep->ca))
		return cm_error_set(err, CM_EUSAGE, "--ca: path too long");
	for (; ep->n_realm_creds < n_realm_creds && ep->n_realm_creds < REG_REALM_CREDS_MAX;
	     ep->n_realm_creds++)
		if (snprintf(ep->realm_creds[ep->n_realm_creds], sizeof(ep->realm_creds[0]), "%s",
			     realm_creds[ep->n_realm_creds]) >= (int)sizeof(ep->realm_creds[0]))
			return cm_error_set(err, CM_EUSAGE, "--realm-credentials: too long");
	return 0;
}

/* The registry's engine for the target, and GET /v2/: the registry answers
 * (anonymously; the engine learns the auth scheme when a request first
 * needs it). */
static void on_event(void *ud, const reg_event *ev)
{
	shared *s = ud;
	if (ev->type == REG_EV_AUTH)
		ins_ctx_say(s->c, INS_SAY_INFO, "registry %s: credentials %s", ev->what, ev->msg);
	else if (ev->type == REG_EV_RETRY)
		ins_ctx_say(s->c, INS_SAY_INFO, "%s: %s; retrying in %.1fs", ev->what, ev->msg,
			    ev->wait);
}

static int connect_target(shared *s, cm_error *err)
{
	const ins_install_opts *o = s->o;
	reg_client_opts co = {.jobs = o->jobs > 0 ? o->jobs : 4,
			      .retry_budget = -1,
			      .endpoints = &s->t.ep,
			      .n_endpoints = 1,
			      .progress = on_event,
			      .progress_ud = s,
			      .realm_flag = "--realm-credentials"};
	return reg_client_new(&s->client, &co, err);
}

/* The plan: every image's manifests read and checked, its blobs queued
 * largest first, and the idle-time hashers' list (the queue backwards). */
static int plan(work *w, cm_error *err)
{
	shared *s = w->s;
	const ins_bundle *b = s->b;
	conn pk = {s, NULL}; /* manifests are read whole: no buffer */
	int rc = 0;
	if (!(w->pending = calloc(b->n_images ? b->n_images : 1, sizeof(size_t))) ||
	    !(s->dst = calloc(b->n_images ? b->n_images : 1, sizeof(reg_dest *))))
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	/* each image's repository: a registry destination on the engine */
	reg_dest_registry_opts ro = {.client = s->client,
				     .ep = &s->t.ep,
				     .base = s->t.base,
				     .jobs = (unsigned)(s->o->jobs > 0 ? s->o->jobs : 4),
				     .tries = UPLOAD_TRIES,
				     .mount_from = mount_from,
				     .warn = warn,
				     .gate = gate,
				     .proceed = stopped,
				     .ud = s};
	for (size_t i = 0; i < b->n_images && rc == 0; i++) {
		char repo[REPO_MAX];
		snprintf(repo, sizeof(repo), "%s%s", s->t.prefix, b->images[i].repo);
		ro.repo = repo;
		rc = i == 0 ? reg_dest_registry_open(&s->dst[0], &ro, err)
			    : reg_dest_registry_sibling(&s->dst[i], s->dst[0], repo, err);
	}
	for (size_t i = 0; i < b->n_images && rc == 0; i++)
		rc = plan_image(&pk, w, i, err);
	if (rc == 0)
		rc = plan_order(w, err);
	if (rc == 0)
		rc = delta_preflight(w, err);
	if (rc == 0)
		probe_api(s);
	if (rc == 0 && w->n_t && !(w->q = calloc(w->n_t, sizeof(size_t))))
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	if (rc < 0)
		return rc;
	qsort(w->t, w->n_t, sizeof(btask), cmp_task);
	for (size_t i = 0; i < w->n_t; i++) {
		w->q[i] = i;
		w->pending[w->t[i].image]++;
	}
	w->q_len = w->n_t;
	/* without it, the uploads hash everything themselves */
	s->pre = calloc(w->n_t ? w->n_t : 1, sizeof(uint32_t));
	for (size_t i = 0; s->pre && i < w->n_t; i++) {
		const ins_member *m = w->t[w->n_t - 1 - i].m;
		if (m)
			s->pre[s->n_pre++] = (uint32_t)member_index(s, m);
	}
	return 0;
}

/* --jobs streams with twice as many workers, and one idle-time hasher per
 * CPU this process may run on; returns when the workers are done and the
 * idle-time hashers have let go of what they held. */
static void run_workers(work *w)
{
	shared *s = w->s;
	size_t most = w->n_t > s->b->n_images ? w->n_t : s->b->n_images;
	int jobs = s->o->jobs > 0 ? s->o->jobs : 4;
	if ((size_t)jobs > most)
		jobs = (int)(most ? most : 1);
	/* jobs bodies stream at once; twice as many workers, so that one whose
	 * body is sent and that waits for the registry's answer leaves its
	 * slot to another */
	s->streams_free = jobs;
	int threads = (size_t)jobs * 2 > most ? (int)most : jobs * 2;
	pthread_t th[64];
	int started = 0;
	/* w->failed is written by workers under mu: read it so */
	int failed = stopped(s, NULL) < 0;
	for (int i = 0; i < threads && i < 64 && !failed; i++)
		if (pthread_create(&th[i], NULL, worker, w) == 0)
			started++;
	cpu_set_t set;
	long cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
								 : sysconf(_SC_NPROCESSORS_ONLN);
	if (s->o->push_no_idle_hash)
		cpus = 0;
	cm_error ie;
	if (stopped(s, NULL) == 0 && s->n_pre)
		reg_bidx_idle_start(s->b->x, s->pre, s->n_pre,
				    (unsigned)(cpus > PREHASHERS ? PREHASHERS : cpus), &ie);
	if (started == 0 && !failed)
		worker(w);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	/* what the idle-time hashers hold now is hashed at normal priority */
	s->members_idle = reg_bidx_idle_stop(s->b->x);
}

/* A delta's record checked and its bases (--base) opened and verified in
 * full, as install --base does (same key; each a base the delta records).
 * A full bundle opens nothing. */
static int open_delta(shared *s, cm_error *err)
{
	const ins_install_opts *o = s->o;
	const ins_bundle *b = s->b;
	int rc = ins_delta_set_open(&s->ds, b->x, b->bundle_json, b->bundle_json_len, o->bases,
				    o->n_bases, o->pubkey, o->insecure_skip_signature, err);
	if (rc < 0)
		return cm_error_wrap(err, "delta");
	if (!s->ds.is_delta && o->n_bases)
		ins_ctx_say(s->c, INS_SAY_WARN, "%s is a full bundle; --base is not needed",
			    o->bundle);
	else if (s->ds.is_delta)
		ins_ctx_say(s->c, INS_SAY_INFO, "a delta: %zu blobs left out, %zu bases verified",
			    s->ds.omitted.n_blobs, s->ds.n);
	return 0;
}

/* The run's outcome: a tampered bundle outranks every other failure, then
 * a worker's, then the verifier's own (I/O). */
static int outcome(shared *s, const work *w, cm_error *err)
{
	if (!s->vbad && !w->failed && !s->vfail)
		return 0;
	if (s->vbad)
		*err = w->failed && w->err.code == CM_EVERIFY ? w->err : s->verr;
	else
		*err = w->failed ? w->err : s->vfail_err;
	int rc = s->vbad ? CM_EVERIFY : err->code ? err->code : CM_EFAIL;
	err->code = rc;
	return rc;
}

int ins_push_bundle(ins_push_stats *st, const ins_ctx *c, const ins_bundle *b,
		    const ins_install_opts *o, cm_error *err)
{
	memset(st, 0, sizeof(*st));
	shared *s = calloc(1, sizeof(*s));
	if (!s)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	s->b = b;
	s->o = o;
	s->c = c;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	work w;
	memset(&w, 0, sizeof(w));
	w.s = s;
	/* bundle.json, oci-layout and index.json were hashed when the bundle
	 * was opened (the scanner always hashes them); the reader hashes the
	 * rest: its worker starts on what no image needs (manifests/, models/)
	 * while the pushing starts, and a mismatch anywhere stops the push */
	int rc = ins_push_target_parse(&s->t, o->push_to, o->push_insecure, o->ca, o->realm_creds,
				       o->n_realm_creds, err);
	if (rc == 0)
		rc = open_delta(s, err);
	if (rc == 0)
		rc = referrers_load(s, err);
	reg_bidx_on_settle(b->x, on_settle, s);
	if (rc == 0)
		rc = reg_bidx_workers(b->x, 1, err);
	for (size_t i = 0; rc == 0 && i < b->n_m; i++) {
		int r = reg_bundle_rank(b->m[i].path);
		if (r == 6 || r == 7)
			reg_bidx_queue(b->x, (uint32_t)i, 0);
	}
	if (rc == 0)
		rc = connect_target(s, err);
	int ran = rc == 0;
	if (ran)
		ins_ctx_say(c, INS_SAY_INFO, "push to %s%s%s", s->t.base, s->t.prefix[0] ? "/" : "",
			    s->t.prefix);
	if (ran && !ins_ctx_acts(c)) {
		/* nothing is pushed, but the content is checked all the same */
		check_rest(s);
		for (size_t i = 0; i < b->n_images && !s->vbad && !s->vfail; i++)
			ins_ctx_say(c, INS_SAY_INFO, "would push %s -> %s/%s%s", b->images[i].ref,
				    s->t.host, s->t.prefix, b->images[i].repo);
	} else if (ran) {
		/* GET /v2/ once: the engine's own ping, which its first request
		 * with a scope would otherwise send again */
		if ((rc = reg_client_ping(s->client, s->t.base, &s->t.ep, err)) < 0)
			cm_error_wrap(err, "registry %s", s->t.host);
		else
			rc = plan(&w, err);
		if (rc < 0) {
			w.failed = 1;
			w.err = *err;
			stop_all(s);
		}
		run_workers(&w);
		/* the images are out: whatever is left is hashed now */
		if (!w.failed)
			check_rest(s);
	}
	/* the reader's threads stop before s goes (its callback uses it) */
	reg_bidx_stop(b->x);
	reg_bidx_on_settle(b->x, NULL, NULL);
	if (ran)
		rc = outcome(s, &w, err);
	uint64_t n_checked = 0, bytes_checked = 0;
	for (size_t i = 0; ran && i < b->n_m; i++) {
		if (rc == 0 && !reg_bidx_is_verified(b->x, (uint32_t)i))
			rc = cm_error_set(err, CM_EVERIFY, "member '%s' was not verified",
					  b->m[i].path); /* cannot happen: all were hashed above */
		if (reg_bundle_rank(b->m[i].path) > 4) {
			n_checked++;
			bytes_checked += b->m[i].size;
		}
	}
	if (ran && rc == 0)
		ins_ctx_say(
		    c, INS_SAY_INFO,
		    "verified %llu members (%llu bytes) while pushing, %llu of them in idle time",
		    (unsigned long long)n_checked, (unsigned long long)bytes_checked,
		    (unsigned long long)s->members_idle);
	if (ran && s->dst && s->dst[0]) {
		reg_dest_registry_stats ds;
		reg_dest_registry_stats_get(&ds, s->dst[0]);
		st->images = s->images;
		st->manifests_put = ds.manifests_put;
		st->blobs_uploaded = ds.blobs_uploaded;
		st->blobs_skipped = ds.blobs_skipped + s->skipped_here;
		st->blobs_mounted = ds.blobs_mounted;
		st->bytes_uploaded = ds.bytes_uploaded;
		st->referrers_pushed = s->ref_pushed;
		st->referrers_present = s->ref_present;
		st->referrers_api = s->api || reg_dest_registry_saw_subject(s->dst[0]);
	}
	free(w.t);
	free(w.q);
	free(w.pending);
	free(w.order);
	free(w.pos);
	free(w.done);
	free(s->rkind);
	free(s->subject);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->pre);
	free(s->where);
	for (size_t i = 0; s->dst && i < b->n_images; i++)
		reg_dest_free(s->dst[i]);
	free(s->dst);
	reg_client_free(s->client);
	ins_delta_set_free(&s->ds);
	free(s);
	return rc;
}
