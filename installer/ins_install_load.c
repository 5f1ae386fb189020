/* Load mode: stream the images into each node's runtime, skipping images
 * the node already holds (by digest). Nodes and what they hold come from
 * ins_nodes.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

#include "ins_archive.h"
#include "cm_emit.h"
#include "ins_install.h"
#include "ins_place.h"
#include "ins_receipt.h"
#include "reg_copy.h"
#include "reg_digest.h"
#include "reg_receipt.h"

/* What `ctr plugins ls -d` says of a node, asked at most once per load:
 * the snapshotter fallback and placing both read it. */
typedef struct node_plugins {
	ins_plugins p;
	int asked, rc;
	cm_error err;
} node_plugins;

/* A read-only `ctr` query on the node: its output in q. */
static int ctr_query(cm_buf *q, const ins_node *nd, const ins_load_opts *o, const char *const *rest,
		     cm_error *err)
{
	ins_argv a = {NULL, 0, 0};
	int rc = ins_ctr_argv(&a, nd, rest, err);
	if (rc == 0)
		rc = ins_ctx_query(o->ctx, q, &nd->runner, (const char *const *)a.v, err);
	ins_argv_free(&a);
	return rc;
}

static int plugins_of(node_plugins *np, const ins_node *nd, const ins_load_opts *o, cm_error *err)
{
	if (!np->asked) {
		np->asked = 1;
		const char *ls[] = {"plugins", "ls", "-d", NULL};
		cm_buf q = CM_BUF_INIT;
		char none[1] = "";
		np->rc = ctr_query(&q, nd, o, ls, &np->err);
		if (np->rc == 0)
			ins_plugins_parse(&np->p, q.data ? q.data : none);
		cm_buf_free(&q);
	}
	if (np->rc < 0)
		cm_error_set(err, np->err.code, "%s", np->err.msg);
	return np->rc;
}

static int detect_snapshotter(ins_node *nd, node_plugins *np, const ins_load_opts *o, cm_error *err)
{
	if (o->snapshotter) {
		snprintf(nd->snapshotter, sizeof(nd->snapshotter), "%s", o->snapshotter);
		return 0;
	}
	/* the CRI plugin's, from the effective configuration (a local daemon on
	 * a non-default socket: only its own config file says) */
	cm_error e = {0};
	if ((nd->runner.kind != INS_RUN_LOCAL || !nd->sock[0] || o->containerd_config) &&
	    ins_node_snapshotter(nd->snapshotter, sizeof(nd->snapshotter), o->ctx, nd,
				 o->containerd_config, &e) == 1)
		return 0;
	/* else the first healthy one of overlayfs, native */
	int rc = plugins_of(np, nd, o, err);
	const char *pick = rc < 0		? NULL
			   : np->p.overlayfs_ok ? "overlayfs"
			   : np->p.native_ok	? "native"
						: NULL;
	if (pick) {
		snprintf(nd->snapshotter, sizeof(nd->snapshotter), "%s", pick);
		ins_ctx_say(o->ctx, INS_SAY_INFO, "%s: snapshotter %s (from the daemon's plugins)",
			    nd->name, pick);
		return 0;
	}
	if (rc == 0)
		rc = cm_error_set(err, CM_EFAIL, "no usable snapshotter (give --snapshotter)");
	if ((rc =
		 ins_ctx_assume(o->ctx, rc, "cannot ask %s for its snapshotter; assuming overlayfs",
				nd->name)) == 0)
		snprintf(nd->snapshotter, sizeof(nd->snapshotter), "overlayfs");
	return rc;
}

/* Docker Hub names as docker and podman print them. */
static int same_name(const char *listed, const char *ref)
{
	if (strcmp(listed, ref) == 0)
		return 1;
	if (strncmp(ref, "docker.io/", 10) == 0) {
		const char *r = ref + 10;
		if (strcmp(listed, r) == 0)
			return 1;
		if (strncmp(r, "library/", 8) == 0 && strcmp(listed, r + 8) == 0)
			return 1;
	}
	return 0;
}

/* What the node holds of the bundle's images. */
static int list_images(ins_have_list *h, const ins_bundle *b, const ins_node *nd,
		       const ins_load_opts *o, cm_error *err)
{
	ins_have *want = calloc(b->n_images ? b->n_images : 1, sizeof(*want));
	if (!want)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < b->n_images; i++) {
		snprintf(want[i].ref, sizeof(want[i].ref), "%s", b->images[i].ref);
		snprintf(want[i].id, sizeof(want[i].id), "%s", b->images[i].root.digest.s);
	}
	int rc = ins_node_images(h, o->ctx, nd, want, b->n_images, err);
	free(want);
	return rc;
}

/* ---- containerd: content first, then one import ----
 *
 * `ctr images import` is slow at moving bytes (the client hashes every blob
 * and writes it through one gRPC stream) and cannot skip content the store
 * holds already. So on containerd the large blobs (--ingest-min) go first,
 * each streamed from the bundle into `ctr content ingest --expected-digest`,
 * in --jobs concurrent streams; containerd checks every digest again on
 * commit. The import that follows carries index.json, the manifests, the
 * configs and the small blobs, creates the images and unpacks them.
 *
 * Content that no image references yet is fair game for containerd's
 * garbage collector (any lease removal, e.g. another client's import, can
 * trigger it). A pin guards it meanwhile: a small blob of our own labelled
 * containerd.io/gc.root with a containerd.io/gc.ref.content.* label for
 * every blob the import needs. It is removed once the images hold them. */

#define INGEST_MIN_DEFAULT ((uint64_t)4 << 20)

/* Does the node's content (`ctr content ls -q`, sorted) hold sha256:hex? */
static int holds(const reg_receipt *present, const char *hex)
{
	reg_digest d;
	return reg_digest_from_hex(&d, hex, NULL) == 0 && reg_receipt_blob_find(present, &d);
}

/* `ctr content ls -q`: the digests the node's namespace holds. */
static int list_content(reg_receipt *d, const ins_node *nd, const ins_load_opts *o, cm_error *err)
{
	cm_buf q = CM_BUF_INIT;
	const char *ls[] = {"content", "ls", "-q", NULL};
	int rc = ctr_query(&q, nd, o, ls, err);
	char *p = q.data, *line;
	reg_digest dg;
	while (rc == 0 && (line = ins_next_line(&p)))
		if (reg_digest_parse(&dg, line, NULL) == 0)
			rc = reg_receipt_add_blob(d, &dg, 0, err);
	cm_buf_free(&q);
	return rc == 0 ? reg_receipt_sort(d, err) : rc;
}

/* ---- a delta: the blobs it leaves out, from the node or the bases ---- */

/* One blob a delta leaves out that a node needs: held by the node
 * (base == NONE) or to be put there from bases[base]. */
#define FROM_NODE ((size_t)-1)
typedef struct delta_blob {
	reg_digest d;
	uint64_t size;
	size_t base;
} delta_blob;

typedef struct delta_plan {
	delta_blob *v; /* sorted by digest, each once */
	size_t n, cap;
	size_t n_missing;
} delta_plan;

static int delta_blob_cmp(const void *a, const void *b)
{
	return strcmp(((const delta_blob *)a)->d.s, ((const delta_blob *)b)->d.s);
}

static const delta_blob *plan_find(const delta_plan *p, const reg_digest *d)
{
	delta_blob key;
	key.d = *d;
	return p && p->n ? bsearch(&key, p->v, p->n, sizeof(*p->v), delta_blob_cmp) : NULL;
}

/* ins_archive_opts.external: the node holds it, or it was put there. */
static int plan_has(void *ctx, const reg_digest *d)
{
	return plan_find(ctx, d) != NULL;
}

/* What the import may leave out: held by the node, or streamed before. */
typedef struct held_ctx {
	const reg_receipt *present;
	const ins_member **sent; /* sorted by pointer */
	size_t n_sent;
	const delta_plan *plan; /* a delta's blobs the bundle lacks; NULL: none */
} held_ctx;

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (const ins_member *const *)a,
		  y = (uintptr_t) * (const ins_member *const *)b;
	return x < y ? -1 : x > y;
}

static int held_skip(void *ctx, const ins_member *m)
{
	const held_ctx *h = ctx;
	if (h->present && holds(h->present, m->hex))
		return 1;
	return h->n_sent && bsearch(&m, h->sent, h->n_sent, sizeof(*h->sent), cmp_ptr) != NULL;
}

/* Run `ctr ... REST` on the node; stdin from io (may be NULL), stdout
 * dropped. */
static int node_ctr(const ins_node *nd, const char *const *rest, ins_proc_io *io,
		    const char *say_suffix, const ins_load_opts *o, cm_error *err)
{
	ins_argv cmd = {NULL, 0, 0};
	int rc = ins_ctr_argv(&cmd, nd, rest, err);
	if (rc == 0) /* "": said by the caller */
		rc = ins_ctx_run(o->ctx, &nd->runner, (const char *const *)cmd.v, io, say_suffix,
				 err);
	ins_argv_free(&cmd);
	return rc;
}

/* The node's content store for the copy pipeline (ins_place.h): ingests
 * run through the node's runner and are said like every command. */
typedef struct node_ingest {
	ins_ingest base;
	const ins_node *nd;
	const ins_load_opts *o;
} node_ingest;

/* `ctr content ingest` of sha256:hex under the ingest ref (NULL:
 * "ferry-<hex>"), stdin from io. */
static int node_ingest_run(void *ctx, const char *hex, uint64_t size, const char *ref,
			   ins_proc_io *io, const char *say, cm_error *err)
{
	const node_ingest *ni = ctx;
	char sz[32], dg[80], r[96];
	snprintf(sz, sizeof(sz), "%llu", (unsigned long long)size);
	snprintf(dg, sizeof(dg), "sha256:%s", hex);
	snprintf(r, sizeof(r), "ferry-%s", hex);
	const char *rest[] = {"content",	   "ingest", "--expected-size", sz,
			      "--expected-digest", dg,	     ref ? ref : r,	NULL};
	return node_ctr(ni->nd, rest, io, say, ni->o, err);
}

static void node_ingest_note(void *ctx, const char *msg)
{
	const node_ingest *ni = ctx;
	ins_ctx_say(ni->o->ctx, INS_SAY_INFO, "%s: %s", ni->nd->name, msg);
}

static void node_ingest_init(node_ingest *ni, const ins_node *nd, const ins_load_opts *o)
{
	ni->base.run = node_ingest_run;
	ni->base.note = node_ingest_note;
	ni->base.ctx = ni;
	ni->base.c = o->ctx;
	ni->nd = nd;
	ni->o = o;
}

static size_t ingest_jobs(const ins_load_opts *o, size_t n)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t j = o->jobs > 0 ? (size_t)o->jobs : cpus > 4 ? 4 : cpus > 1 ? (size_t)cpus : 1;
	if (j > REG_COPY_JOBS_MAX)
		j = REG_COPY_JOBS_MAX;
	return j > n ? n : j;
}

static int by_member_size_desc(const void *a, const void *b)
{
	const ins_member *x = *(const ins_member *const *)a, *y = *(const ins_member *const *)b;
	return x->size > y->size ? -1 : x->size < y->size;
}

/* dv's blobs from the bundle reader x into the node's content store
 * through the copy pipeline, --jobs at a time; *placed (may be NULL)
 * counts the blobs placed rather than streamed. A placed blob is hashed
 * again as it is copied (ins_place.h); a streamed one is checked by the
 * daemon (--expected-digest). */
static int copy_to_node(size_t *placed, const ins_place *pl, reg_bidx *x, const ins_node *nd,
			const reg_desc *dv, size_t n, const ins_load_opts *o, cm_error *err)
{
	node_ingest ni;
	node_ingest_init(&ni, nd, o);
	reg_source *src = NULL;
	reg_dest *dst = NULL;
	int rc =
	    reg_source_bundle_open(&src, x, NULL, pl->root[0] ? 0 : REG_BIDX_TRUST_VERIFIED, err);
	if (rc == 0)
		rc = ins_ctr_dest_open(&dst, pl, &ni.base, (unsigned)ingest_jobs(o, n), err);
	if (rc == 0)
		rc = reg_copy_blobs(NULL, dst, src, dv, n, err);
	if (placed)
		*placed = dst ? ins_ctr_dest_placed(dst) : 0;
	reg_dest_free(dst);
	reg_source_free(src);
	return rc;
}

/* The blobs v, from the bundle, the largest first. */
static int ingest_all(size_t *placed, const ins_place *pl, const ins_bundle *b, const ins_node *nd,
		      const ins_member **v, size_t n, const ins_load_opts *o, cm_error *err)
{
	qsort(v, n, sizeof(*v), by_member_size_desc);
	reg_desc *dv = calloc(n ? n : 1, sizeof(*dv));
	if (!dv)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = reg_digest_from_hex(&dv[i].digest, v[i]->hex, err);
		dv[i].size = v[i]->size;
	}
	*placed = 0;
	if (rc == 0)
		rc = copy_to_node(placed, pl, b->x, nd, dv, n, o, err);
	free(dv);
	return rc;
}

/* The pin: a blob of our own, a GC root referencing every digest in v. */
static int pin_create(char *pin, size_t pin_n, ins_place *pl, const ins_bundle *b,
		      const ins_node *nd, const ins_member *const *v, size_t n,
		      const ins_load_opts *o, cm_error *err)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char bv[600];
	snprintf(bv, sizeof(bv), "%s %s", b->name, b->version);
	json_t *pj = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "ferry-install", "gc pin while loading",
			       "bundle", bv, "node", nd->name, "pid", (json_int_t)getpid(), "time",
			       (json_int_t)ts.tv_sec, "nsec", (json_int_t)ts.tv_nsec);
	char *body = NULL;
	int rc = pj ? cm_json_text(&body, pj, 4096, 0, err)
		    : cm_error_set(err, CM_EINVAL, "the bundle's name or the node's is not UTF-8");
	json_decref(pj);
	reg_digest d;
	if (rc == 0)
		rc = reg_digest_buf(&d, body, strlen(body), err);
	if (rc < 0) {
		free(body);
		return cm_error_wrap(err, "pinning the content against garbage collection");
	}
	snprintf(pin, pin_n, "%s", d.s);
	char ref[96], root[64], who[600];
	snprintf(ref, sizeof(ref), "ferry-pin-%.16s", REG_DIGEST_HEX(&d));
	snprintf(root, sizeof(root), "containerd.io/gc.root=%lld", (long long)ts.tv_sec);
	snprintf(who, sizeof(who), "ferry.install/pin=%s %s", b->name, b->version);
	ins_argv lab = {NULL, 0, 0};
	const char *head[] = {"content", "label", pin, root, who, NULL};
	rc = ins_argv_addv(&lab, head, err);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = ins_argv_addf(&lab, err, "containerd.io/gc.ref.content.ferry.%zu=sha256:%s", i,
				   v[i]->hex);
	/* the collector may take the pin between ingest and label: try again */
	for (int attempt = 0; rc == 0; attempt++) {
		ins_proc_io io = {.in = body, .in_len = strlen(body)};
		cm_error e = {0};
		/* the pin is the first blob placed: if the daemon does not take
		 * it, it would take none, so placing stops for this node */
		int took = 0;
		node_ingest ni;
		node_ingest_init(&ni, nd, o);
		if (pl->root[0] && (took = ins_place_ingest(pl, &ni.base, NULL, REG_DIGEST_HEX(&d),
							    ref, body, strlen(body), err)) == 0)
			ins_place_close(pl);
		rc = took < 0 ? took
		     : took   ? 0
			      : node_ingest_run(&ni, REG_DIGEST_HEX(&d), strlen(body), ref, &io,
						" < (gc pin)", err);
		if (rc == 0) {
			/* say it short: the refs are one label per blob */
			char more[64];
			snprintf(more, sizeof(more),
				 " containerd.io/gc.ref.content.ferry.0..%zu=...", n ? n - 1 : 0);
			ins_argv w = {NULL, 0, 0};
			ins_argv c = {NULL, 0, 0};
			if (ins_ctr_argv(&c, nd, head, &e) == 0 &&
			    ins_runner_wrap(&w, &nd->runner, (const char *const *)c.v, &e) == 0)
				ins_ctx_say_cmd(o->ctx, (const char *const *)w.v, more);
			ins_argv_free(&c);
			ins_argv_free(&w);
			rc = node_ctr(nd, (const char *const *)lab.v, NULL, "", o, &e);
			if (rc < 0 && attempt < 2) {
				rc = 0;
				continue;
			}
			if (rc < 0)
				cm_error_set(err, e.code, "%s", e.msg);
		}
		break;
	}
	ins_argv_free(&lab);
	free(body);
	if (rc < 0)
		cm_error_wrap(err, "pinning the content against garbage collection");
	return rc;
}

static void pin_remove(const char *pin, const ins_node *nd, const ins_load_opts *o)
{
	const char *rm[] = {"content", "rm", pin, NULL};
	cm_error e = {0};
	if (node_ctr(nd, rm, NULL, NULL, o, &e) < 0)
		ins_ctx_say(o->ctx, INS_SAY_WARN,
			    "%s: cannot remove the gc pin %s (%s); remove it with `ctr -n k8s.io "
			    "content rm %s`",
			    nd->name, pin, e.msg, pin);
}

/* Placing blobs in the node's content store: only where ferry runs on the
 * node itself, asked of the daemon (`ctr plugins ls -d`). Off (pl->root
 * empty) whenever anything is missing; the blobs are then streamed. In
 * dry-run the store is only named. */
static void place_setup(ins_place *pl, node_plugins *np, const ins_node *nd, const ins_load_opts *o)
{
	memset(pl, 0, sizeof(*pl));
	if (o->ingest_stream || nd->runner.kind != INS_RUN_LOCAL)
		return;
	cm_error e = {0};
	char why[256] = "";
	int rc = plugins_of(np, nd, o, &e);
	if (rc == 0 && !ins_place_usable(why, sizeof(why), &np->p))
		rc = cm_error_set(&e, CM_EFAIL, "%s", why);
	if (rc == 0 && !ins_ctx_acts(o->ctx))
		snprintf(pl->root, sizeof(pl->root), "%s", np->p.content_root);
	else if (rc == 0)
		rc = ins_place_open(pl, np->p.content_root, &e);
	if (rc < 0)
		ins_ctx_say(o->ctx, INS_SAY_INFO,
			    "%s: blobs are streamed through ctr (cannot place them: %s)", nd->name,
			    e.msg);
}

/* Place or stream the large blobs of imgs the node lacks into its content
 * store, pinned (pin[0] set when a pin was made); fills h for the import. */
static int content_first(held_ctx *h, reg_receipt *present, char *pin, size_t pin_n, ins_place *pl,
			 const ins_bundle *b, const ins_node *nd, const ins_image **imgs, size_t n,
			 const ins_load_opts *o, cm_error *err)
{
	uint64_t min = o->ingest_min >= 0 ? (uint64_t)o->ingest_min : INGEST_MIN_DEFAULT;
	const ins_member **all = NULL;
	size_t n_all = 0;
	ins_archive_opts ext = {.external = h->plan ? plan_has : NULL,
				.external_ctx = (void *)h->plan};
	int rc = ins_archive_blobs(&all, &n_all, b, (const ins_image *const *)imgs, n, &ext, err);
	if (rc < 0)
		return rc;
	size_t n_big = 0;
	for (size_t i = 0; i < n_all; i++)
		n_big += all[i]->size >= min;
	if (n_big == 0) {
		free(all);
		return 0; /* everything rides in the import */
	}
	/* pin first: what is listed as present is safe from then on */
	if ((rc = pin_create(pin, pin_n, pl, b, nd, all, n_all, o, err)) < 0) {
		pin[0] = '\0';
		free(all);
		return rc;
	}
	cm_error le = {0};
	if (list_content(present, nd, o, &le) < 0) {
		ins_ctx_say(o->ctx, INS_SAY_WARN,
			    "%s: cannot list its content (%s); sending every blob", nd->name,
			    le.msg);
		reg_receipt_free(present);
	}
	size_t k = 0;
	uint64_t bytes = 0;
	for (size_t i = 0; i < n_all; i++)
		if (all[i]->size >= min && !holds(present, all[i]->hex)) {
			all[k++] = all[i];
			bytes += all[i]->size;
		}
	ins_ctx_say(
	    o->ctx, INS_SAY_INFO,
	    "%s: %zu blobs (%.1f MiB) into the content store in %zu streams, %zu held already",
	    nd->name, k, (double)bytes / 1048576.0, ingest_jobs(o, k), n_big - k);
	size_t placed = 0;
	rc = ingest_all(&placed, pl, b, nd, all, k, o, err);
	if (rc < 0) {
		free(all);
		return rc;
	}
	if (pl->root[0])
		ins_ctx_say(o->ctx, INS_SAY_INFO,
			    "%s: %zu of them %s in %s and recorded by ctr, %zu streamed", nd->name,
			    placed, ins_ctx_word(o->ctx, "placed", "to be placed"), pl->root,
			    k - placed);
	qsort(all, k, sizeof(*all), cmp_ptr);
	h->sent = all;
	h->n_sent = k;
	h->present = present;
	return 0;
}

/* ---- a delta: planning and putting the blobs it leaves out ---------- */

typedef struct plan_walk {
	delta_plan *p;
	const ins_bundle *b;
	const reg_receipt *present;
	const ins_load_opts *o;
	const ins_node *nd;
	const ins_image *im;
} plan_walk;

static int plan_add(plan_walk *w, const reg_desc *d, cm_error *err)
{
	delta_plan *p = w->p;
	for (size_t i = 0; i < p->n; i++)
		if (reg_digest_equal(&p->v[i].d, &d->digest))
			return 0; /* planned (or named) for another image */
	size_t base = FROM_NODE;
	uint32_t id;
	if (!reg_receipt_blob_find(w->present, &d->digest)) {
		if ((base = ins_delta_find(w->o->bases, w->o->n_bases, &d->digest, d->size, &id)) ==
		    w->o->n_bases) {
			ins_ctx_say(
			    w->o->ctx, INS_SAY_WARN,
			    "%s: missing: %s (%llu bytes), needed by %s: not in the bundle, "
			    "its bases or the node's content store",
			    w->nd->name, d->digest.s, (unsigned long long)d->size, w->im->ref);
			p->n_missing++;
			return 0;
		}
	}
	delta_blob *v = cm_grow(p->v, p->n, &p->cap, sizeof(*v), err);
	if (!v)
		return CM_ENOMEM;
	(p->v = v)[p->n++] = (delta_blob){.d = d->digest, .size = d->size, .base = base};
	return 0;
}

/* Every blob d reaches that the bundle does not carry. */
static int plan_desc(plan_walk *w, const reg_desc *d, int depth, cm_error *err)
{
	if (!ins_bundle_blob(w->b, &d->digest))
		return plan_add(w, d, err);
	if (!reg_media_type_is_index(d->media_type) && !reg_media_type_is_manifest(d->media_type))
		return 0;
	if (depth > 3)
		return cm_error_set(err, CM_EINVAL, "manifest %s nests too deeply", d->digest.s);
	reg_manifest man;
	int rc = ins_bundle_manifest(&man, NULL, w->b, d, err);
	if (rc < 0)
		return rc;
	if (!man.is_index)
		rc = plan_desc(w, &man.config, depth + 1, err);
	for (size_t i = 0; rc == 0 && i < man.n_items; i++)
		rc = plan_desc(w, &man.items[i], depth + 1, err);
	reg_manifest_free(&man);
	return rc;
}

/* For a delta on one node (read-only: the node is only asked what it
 * holds): the blobs the images it lacks need and the bundle does not
 * carry, each from the node's content store or a base; the ones found
 * nowhere are said and counted in p->n_missing. */
static int delta_plan_node(delta_plan *p, const ins_bundle *b, const ins_node *nd,
			   const ins_load_opts *o, cm_error *err)
{
	memset(p, 0, sizeof(*p));
	if (nd->runtime != INS_RT_CONTAINERD)
		return cm_error_set(err, CM_EUSAGE,
				    "%s: a delta loads into containerd only (%s cannot take "
				    "single blobs); serve NEW.tar OLD.tar... and use mirror mode",
				    nd->name, ins_runtime_name(nd->runtime));
	ins_have_list h = {NULL, 0};
	reg_receipt present;
	memset(&present, 0, sizeof(present));
	int rc = list_images(&h, b, nd, o, err);
	if (rc == 0)
		rc = list_content(&present, nd, o, err);
	if (rc < 0)
		cm_error_wrap(err, "%s: what the node holds", nd->name);
	plan_walk w = {p, b, &present, o, nd, NULL};
	for (size_t i = 0; rc == 0 && i < b->n_images; i++) {
		const ins_image *im = &b->images[i];
		if (ins_have_has(&h, im->ref, im->root.digest.s))
			continue;
		w.im = im;
		if ((rc = plan_desc(&w, &im->root, 0, err)) < 0)
			cm_error_wrap(err, "image %s", im->ref);
	}
	free(h.v);
	reg_receipt_free(&present);
	if (rc == 0 && p->n)
		qsort(p->v, p->n, sizeof(*p->v), delta_blob_cmp);
	return rc;
}

/* Put the planned blobs that come from the bases into the node's content
 * store (through the copy pipeline, one source per base), pinned against
 * the garbage collector until the import holds them. */
static int delta_put(char *pin, size_t pin_n, ins_place *pl, const delta_plan *p,
		     const ins_bundle *b, const ins_node *nd, const ins_load_opts *o,
		     uint64_t *bytes, cm_error *err)
{
	size_t k = 0;
	for (size_t i = 0; i < p->n; i++)
		k += p->v[i].base != FROM_NODE;
	ins_ctx_say(o->ctx, INS_SAY_INFO,
		    "%s: %zu blob%s the delta leaves out: %zu held by the node, %zu from the "
		    "bases",
		    nd->name, p->n, p->n == 1 ? "" : "s", p->n - k, k);
	if (k == 0)
		return 0;
	ins_member *mv = calloc(k, sizeof(*mv));
	const ins_member **mp = calloc(k, sizeof(*mp));
	reg_desc *dv = calloc(k, sizeof(*dv));
	int rc = mv && mp && dv ? 0 : cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0, j = 0; rc == 0 && i < p->n; i++) {
		if (p->v[i].base == FROM_NODE)
			continue;
		mv[j].hex = REG_DIGEST_HEX(&p->v[i].d);
		mv[j].size = p->v[i].size;
		mp[j] = &mv[j];
		j++;
	}
	if (rc == 0)
		rc = pin_create(pin, pin_n, pl, b, nd, mp, k, o, err);
	if (rc < 0)
		pin[0] = '\0';
	for (size_t base = 0; rc == 0 && base < o->n_bases; base++) {
		size_t n = 0;
		for (size_t i = 0; i < p->n; i++)
			if (p->v[i].base == base) {
				dv[n].digest = p->v[i].d;
				dv[n++].size = p->v[i].size;
				*bytes += p->v[i].size;
			}
		if (n == 0)
			continue;
		/* the bases were hashed in full when opened */
		rc = copy_to_node(NULL, pl, o->bases[base], nd, dv, n, o, err);
		if (rc < 0)
			cm_error_wrap(err, "%s: blobs from base %zu", nd->name, base + 1);
	}
	free(mv);
	free(mp);
	free(dv);
	return rc;
}

typedef struct feed_ctx {
	const ins_bundle *b;
	const ins_image *const *imgs;
	size_t n;
	ins_archive_opts ao;
	ins_archive_stats st;
} feed_ctx;

static int feed_archive(void *ctx, int fd, cm_error *err)
{
	feed_ctx *f = ctx;
	ins_pipe_big(fd);
	return ins_archive_write(&f->st, f->b, f->imgs, f->n, fd, &f->ao, err);
}

/* Is this image present on the node already? */
static int image_present(const ins_have_list *h, const ins_node *nd, const ins_bundle *b,
			 const ins_image *im, const ins_load_opts *o)
{
	if (nd->runtime == INS_RT_CONTAINERD)
		return ins_have_has(h, im->ref, im->root.digest.s);
	/* docker and podman list the image ID: the config digest (the manifest or
	 * index digest under docker's containerd store) */
	reg_digest cfg;
	cm_error e = {0};
	if (ins_archive_config_of(&cfg, b, im, o->platform, &e) < 0)
		return 0;
	for (size_t i = 0; i < h->n; i++) {
		if (strcmp(h->v[i].id, cfg.s) != 0 && strcmp(h->v[i].id, im->root.digest.s) != 0)
			continue;
		if (!im->r.tag[0])
			return 1; /* digest-only: the content is what matters */
		char want[REG_REF_MAX];
		if (snprintf(want, sizeof(want), "%s:%s", im->repo, im->r.tag) <
			(int)sizeof(want) &&
		    same_name(h->v[i].ref, want))
			return 1;
	}
	return 0;
}

/* One import (or load) of imgs into the node, said and run through the
 * context (said only under --dry-run). */
static int import_batch(ins_step_report *rep, const ins_bundle *b, const ins_node *nd,
			const ins_image **imgs, size_t n, int no_unpack, held_ctx *held,
			const ins_load_opts *o, cm_error *err)
{
	ins_argv cmd = {NULL, 0, 0};
	int rc;
	if (nd->runtime == INS_RT_CONTAINERD) {
		char snap[128];
		snprintf(snap, sizeof(snap), "--snapshotter=%s", nd->snapshotter);
		const char *imp[] = {"images",
				     "import",
				     "--all-platforms",
				     "--digests",
				     snap,
				     no_unpack ? "--no-unpack" : "-",
				     no_unpack ? "-" : NULL,
				     NULL};
		rc = ins_ctr_argv(&cmd, nd, imp, err);
	} else {
		const char *ld[] = {nd->runtime == INS_RT_DOCKER ? "docker" : "podman", "load",
				    NULL};
		rc = ins_argv_addv(&cmd, ld, err);
	}
	char suffix[160];
	snprintf(suffix, sizeof(suffix), " < (archive of %zu %s%s streamed from the bundle%s)", n,
		 no_unpack && !o->unpack_lazy ? "model artifact" : "image", n == 1 ? "" : "s",
		 held && (held->n_sent || (held->present && held->present->n_blobs))
		     ? ", less the blobs the content store holds"
		     : "");
	feed_ctx f = {.b = b,
		      .imgs = imgs,
		      .n = n,
		      .ao = {.oci = 1,
			     .docker = nd->runtime != INS_RT_CONTAINERD || !no_unpack,
			     .platform = o->platform}};
	if (held && nd->runtime == INS_RT_CONTAINERD) {
		f.ao.skip = held_skip;
		f.ao.skip_ctx = held;
		f.ao.external = held->plan ? plan_has : NULL;
		f.ao.external_ctx = (void *)held->plan;
	}
	ins_proc_io io = {.feed = feed_archive, .feed_ctx = &f};
	if (rc == 0 && (rc = ins_ctx_run(o->ctx, &nd->runner, (const char *const *)cmd.v, &io,
					 suffix, err)) < 0) {
		char desc[600];
		ins_runner_desc(desc, sizeof(desc), &nd->runner);
		cm_error_wrap(err, "%s: importing %zu images", desc, n);
	}
	rep->bytes += f.st.bytes;
	ins_argv_free(&cmd);
	return rc;
}

/* Each referrer the bundle holds is tied to its subject the way containerd
 * 2's pull does (core/images ChildGCLabels): a label
 * containerd.io/gc.ref.content.referrer.sha256.<12 hex>=<referrer digest>
 * on the subject's content, so the collector keeps a signature as long as
 * its image, whatever happens to the referrer's own image record. Labels
 * are added, never replaced (`ctr content label`). A subject the node does
 * not hold (an index narrowed to one platform) is said and passed over. */
static size_t label_referrers(const ins_bundle *b, const ins_node *nd, const ins_load_opts *o)
{
	size_t done = 0;
	for (size_t i = 0; i < b->n_images; i++) {
		const ins_image *im = &b->images[i];
		if (!im->referrer || !im->subject.s[0])
			continue;
		char lab[200];
		snprintf(lab, sizeof(lab), "containerd.io/gc.ref.content.referrer.sha256.%.12s=%s",
			 REG_DIGEST_HEX(&im->root.digest), im->root.digest.s);
		const char *rest[] = {"content", "label", im->subject.s, lab, NULL};
		cm_error e = {0};
		if (node_ctr(nd, rest, NULL, NULL, o, &e) < 0)
			ins_ctx_say(o->ctx, INS_SAY_WARN,
				    "%s: %s: cannot label its subject %s (%s); the referrer is "
				    "kept by its own image record only",
				    nd->name, im->ref, im->subject.s, e.msg);
		else
			done++;
	}
	return done;
}

static int load_node(ins_step_report *rep, const ins_bundle *b, ins_node *nd,
		     const delta_plan *plan, const ins_load_opts *o, cm_error *err)
{
	char desc[600];
	ins_runner_desc(desc, sizeof(desc), &nd->runner);
	int rc = 0;
	node_plugins np;
	memset(&np, 0, sizeof(np));
	if (nd->runtime == INS_RT_CONTAINERD && (rc = detect_snapshotter(nd, &np, o, err)) < 0)
		return cm_error_wrap(err, "%s: snapshotter", desc);
	ins_have_list h = {NULL, 0};
	if ((rc = list_images(&h, b, nd, o, err)) < 0 &&
	    (rc = ins_ctx_assume(o->ctx, rc, "cannot list the images on %s (%s); assuming none",
				 desc, err->msg)) < 0)
		return cm_error_wrap(err, "%s: listing images", desc);
	/* container images get unpacked; model artifacts (no image config)
	 * cannot be: containerd stores them with --no-unpack, docker and
	 * podman cannot hold them at all. todo: the images, then the artifacts
	 * (gathered in the upper half) */
	size_t half = b->n_images ? b->n_images : 1;
	const ins_image **todo = calloc(2 * half, sizeof(*todo));
	if (!todo) {
		free(h.v);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	const ins_image **arts = todo + half;
	size_t n = 0, na = 0, unloadable = 0, refs = 0;
	for (size_t i = 0; i < b->n_images; i++) {
		const ins_image *im = &b->images[i];
		reg_digest cfg;
		cm_error e = {0};
		/* a signature's layer is a payload, not a tar: kept, never unpacked */
		int art = im->referrer ||
			  ins_archive_config_of(&cfg, b, im, o->platform, &e) == CM_ENOTFOUND;
		if (art && nd->runtime != INS_RT_CONTAINERD) {
			unloadable++;
			refs += im->referrer != 0;
			ins_ctx_say(o->ctx, INS_SAY_INFO,
				    "%s: %s is %s, not an image: %s cannot hold it (mirror or push "
				    "mode serve it%s)",
				    nd->name, im->ref,
				    im->referrer ? "a referrer" : "a model artifact",
				    ins_runtime_name(nd->runtime),
				    im->referrer ? "" : "; --models-dir places its files");
		} else if (image_present(&h, nd, b, im, o)) {
			rep->skipped++;
			ins_ctx_say(o->ctx, INS_SAY_INFO, "%s: %s present (%s), skipped", nd->name,
				    im->ref, im->root.digest.s);
		} else if (art) {
			arts[na++] = im;
		} else {
			todo[n++] = im;
		}
	}
	free(h.v);
	h.v = NULL;
	h.n = 0;
	memmove(todo + n, arts, na * sizeof(*todo));
	arts = todo + n;
	if (unloadable > refs)
		snprintf(rep->note, sizeof(rep->note),
			 "%zu model artifact%s%s not loadable into %s", unloadable - refs,
			 unloadable - refs == 1 ? "" : "s", refs ? " and referrers" : "",
			 ins_runtime_name(nd->runtime));
	else if (refs)
		snprintf(rep->note, sizeof(rep->note), "%zu referrer%s not loadable into %s", refs,
			 refs == 1 ? "" : "s", ins_runtime_name(nd->runtime));
	if (n + na == 0) {
		ins_ctx_say(o->ctx, INS_SAY_INFO, "%s: all %zu images present, nothing to import",
			    nd->name, b->n_images - unloadable);
		free(todo);
		return 0;
	}
	/* containerd: the large blobs first, in parallel, then the import */
	held_ctx held = {NULL, NULL, 0, o->delta ? plan : NULL};
	reg_receipt present;
	memset(&present, 0, sizeof(present));
	char pin[80] = "", dpin[80] = "";
	uint64_t dbytes = 0;
	ins_place pl;
	memset(&pl, 0, sizeof(pl));
	if (nd->runtime == INS_RT_CONTAINERD) {
		place_setup(&pl, &np, nd, o);
		if (o->delta)
			rc = delta_put(dpin, sizeof(dpin), &pl, plan, b, nd, o, &dbytes, err);
		if (rc == 0)
			rc = content_first(&held, &present, pin, sizeof(pin), &pl, b, nd, todo,
					   n + na, o, err);
		if (rc < 0)
			cm_error_wrap(err, "%s", desc);
	}
	if (rc == 0 && n)
		rc = import_batch(rep, b, nd, todo, n, o->unpack_lazy, &held, o, err);
	if (rc == 0 && na)
		rc = import_batch(rep, b, nd, arts, na, 1, &held, o, err);
	/* the images hold their content now (or the load failed: let it go) */
	if (pin[0])
		pin_remove(pin, nd, o);
	if (dpin[0])
		pin_remove(dpin, nd, o);
	rep->bytes += dbytes;
	ins_place_close(&pl);
	for (size_t i = 0; i < held.n_sent; i++)
		rep->bytes += held.sent[i]->size;
	free(held.sent);
	reg_receipt_free(&present);
	/* check the runtime now holds every image it was given */
	if (rc == 0 && ins_ctx_acts(o->ctx)) {
		if ((rc = list_images(&h, b, nd, o, err)) < 0)
			cm_error_wrap(err, "%s: listing images after the import", desc);
		for (size_t i = 0; rc == 0 && i < n + na; i++) {
			const ins_image *im = todo[i];
			if (!image_present(&h, nd, b, im, o))
				rc = cm_error_set(err, CM_EFAIL,
						  "%s: %s (%s) is missing after the import", desc,
						  im->ref, im->root.digest.s);
		}
		free(h.v);
	}
	if (rc == 0 && nd->runtime == INS_RT_CONTAINERD)
		label_referrers(b, nd, o);
	if (rc == 0) {
		rep->done += n + na;
		ins_ctx_say(o->ctx, INS_SAY_INFO, "%s: %s %zu image%s", nd->name,
			    ins_ctx_word(o->ctx, "imported", "would import"), n + na,
			    n + na == 1 ? "" : "s");
	}
	free(todo);
	return rc;
}

typedef struct node_job {
	const ins_bundle *b;
	const ins_load_opts *o;
	ins_node nd;
	delta_plan plan;
	ins_step_report rep;
	cm_error err;
	int rc, started;
} node_job;

static void *node_main(void *arg)
{
	node_job *j = arg;
	j->rc = load_node(&j->rep, j->b, &j->nd, &j->plan, j->o, &j->err);
	return NULL;
}

int ins_install_load(ins_step_report *rep, const ins_bundle *b, const ins_node *nodes,
		     size_t n_nodes, const ins_load_opts *o, cm_error *err)
{
	double t0 = ins_now();
	int rc = 0;
	/* every node at once (each with its own streams), or one by one in dry-run */
	node_job *jv = calloc(n_nodes ? n_nodes : 1, sizeof(*jv));
	pthread_t *th = calloc(n_nodes ? n_nodes : 1, sizeof(*th));
	if (!jv || !th) {
		free(jv);
		free(th);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n_nodes; i++) {
		jv[i].b = b;
		jv[i].o = o;
		jv[i].nd = nodes[i];
		if (jv[i].nd.runtime == INS_RT_UNKNOWN)
			jv[i].nd.runtime = INS_RT_CONTAINERD;
	}
	/* a delta: what every node lacks is found (on the node or in a base)
	 * before any node is changed */
	size_t missing = 0;
	for (size_t i = 0; o->delta && rc == 0 && i < n_nodes; i++) {
		rc = delta_plan_node(&jv[i].plan, b, &jv[i].nd, o, err);
		missing += jv[i].plan.n_missing;
	}
	if (rc == 0 && missing)
		rc = cm_error_set(err, CM_EVERIFY,
				  "%zu blobs the delta leaves out are neither in its bases nor on "
				  "the node%s (named above); nothing was changed: give the delta's "
				  "bases with --base",
				  missing, n_nodes == 1 ? "" : "s");
	for (size_t i = 0; rc == 0 && i < n_nodes; i++) {
		ins_ctx_say(o->ctx, INS_SAY_INFO, "node %s: runtime %s", jv[i].nd.name,
			    ins_runtime_name(jv[i].nd.runtime));
		if (!ins_ctx_acts(o->ctx) || n_nodes == 1 ||
		    pthread_create(&th[i], NULL, node_main, &jv[i]) != 0)
			node_main(&jv[i]);
		else
			jv[i].started = 1;
	}
	for (size_t i = 0; i < n_nodes; i++) {
		if (jv[i].started)
			pthread_join(th[i], NULL);
		if (rc == 0 && jv[i].rc < 0) {
			rc = jv[i].rc;
			cm_error_set(err, rc, "%s", jv[i].err.msg);
		}
		rep->done += jv[i].rep.done;
		rep->skipped += jv[i].rep.skipped;
		rep->bytes += jv[i].rep.bytes;
		if (jv[i].rep.note[0])
			snprintf(rep->note, sizeof(rep->note), "%s", jv[i].rep.note);
	}
	for (size_t i = 0; i < n_nodes; i++)
		free(jv[i].plan.v);
	free(jv);
	free(th);
	rep->secs = ins_now() - t0;
	return rc;
}

int ins_install_archive_out(ins_step_report *rep, const ins_bundle *b, const char *path,
			    const ins_load_opts *o, cm_error *err)
{
	double t0 = ins_now();
	const ins_image **all = calloc(b->n_images ? b->n_images : 1, sizeof(*all));
	if (!all)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	size_t n = 0;
	for (size_t i = 0; i < b->n_images; i++)
		if (!b->images[i].referrer) /* a signature is no image to load */
			all[n++] = &b->images[i];
	ins_archive_opts ao = {1, 1, o->platform, NULL, NULL, NULL, NULL};
	/* every runtime takes the dual format */
	int fd = 1, rc = 0;
	if (strcmp(path, "-") != 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			free(all);
			return cm_error_sys(err, errno, "creating %s", path);
		}
	}
	ins_archive_stats st;
	rc = ins_archive_write(&st, b, all, n, fd, &ao, err);
	if (fd != 1 && close(fd) < 0 && rc == 0)
		rc = cm_error_sys(err, errno, "closing %s", path);
	free(all);
	if (rc < 0)
		return cm_error_wrap(err, "writing the archive to %s", path);
	rep->done = st.images;
	rep->bytes = st.bytes;
	rep->secs = ins_now() - t0;
	snprintf(rep->note, sizeof(rep->note), "archive of %llu images written to %s",
		 (unsigned long long)st.images, path);
	return 0;
}
