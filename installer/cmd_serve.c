/* ferry-install serve: an OCI registry answered straight from the bundle
 * file (docs/serve.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cm_emit.h"
#include "cm_file.h"
#include "cmd.h"
#include "ins_nodes.h"
#include "ins_receipt.h"
#include "ins_verify.h"
#include "reg_bidx.h"
#include "reg_bundle.h"
#include "reg_ref.h"
#include "reg_server.h"
#include "reg_tls.h"
#include "sig.h"

#define MAX_NAMES 64

static const char usage_text[] =
    "usage: ferry-install serve BUNDLE [BASE...] --pubkey KEY.pub [options]\n"
    "\n"
    "Serve the bundle's images as a read-only OCI registry, straight from the file.\n"
    "A delta is served with its bases named after it (newest first): one registry,\n"
    "tags from the first bundle that has them, left-out blobs from the bases.\n"
    "\n"
    "  --listen ADDR:PORT        address to listen on (default 0.0.0.0:5000; port 0 picks one)\n"
    "  --tls-cert FILE --tls-key FILE\n"
    "                            serve HTTPS with this certificate (chain) and key\n"
    "  --tls-self-signed DIR     make (or reuse) a CA in DIR and a server certificate;\n"
    "                            nodes trust DIR/ca.crt\n"
    "  --hostname NAME           a DNS name or IP for the certificate (repeatable)\n"
    "  --verify=full|lazy        full: hash everything at start (once per file);\n"
    "                            lazy: hash each blob when first asked for (default full)\n"
    "  --index-dir DIR           keep the sqlite index in DIR (default: next to the bundle,\n"
    "                            else $XDG_CACHE_HOME/ferry/serve-index)\n"
    "  --ready-file PATH         written (atomically) once the registry answers\n"
    "  --access-log PATH         one line per request ('-' for stdout)\n"
    "  --threads N               an epoll pool of N threads (default: a thread per\n"
    "                            connection, fastest; see docs/serve.md)\n"
    "  --timeout SECS            idle connection timeout (default 60)\n"
    "  --drain-timeout SECS      on SIGTERM, wait this long for requests (default 30)\n"
    "  --send-buffer BYTES       socket send buffer per connection (default 262144;\n"
    "                            0: the kernel's autotuning, for long fat networks)\n"
    "  --insecure-skip-signature do not check the signature (digests are still checked)\n";

static void notify(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "ferry-install serve: %s\n", msg);
}

/* ---- the backend: the bundle readers ---------------------------------- */

/* One bundle, or a delta and its bases served as one registry
 * (docs/serve.md "Deltas"): readers[0] is the newest. Object ids and
 * offsets carry the reader's index in their top bits, so that check(),
 * segs() and read() go to the right reader. */
#define MAX_BUNDLES 16
#define ID_SHIFT 28
#define ID_MASK ((1u << ID_SHIFT) - 1)
#define OFF_SHIFT 56
#define OFF_MASK ((UINT64_C(1) << OFF_SHIFT) - 1)

/* A blob a delta's image in repo needs and the delta left out. */
typedef struct srv_need {
	char repo[600];
	reg_digest d;
} srv_need;

typedef struct srv_repo {
	const char *name;
	const char **tags;
	size_t ntags;
} srv_repo;

typedef struct srv_union {
	size_t n;
	reg_bidx *x[MAX_BUNDLES];
	cm_buf bj[MAX_BUNDLES];
	reg_bidx_info info[MAX_BUNDLES];
	srv_need *needs; /* sorted by repo, then digest */
	size_t n_needs, cap_needs;
	srv_repo *repos; /* the union, sorted */
	const char **repo_names;
	size_t n_repos;
} srv_union;

static int need_cmp(const void *a, const void *b)
{
	const srv_need *x = a, *y = b;
	int c = strcmp(x->repo, y->repo);
	return c ? c : strcmp(x->d.s, y->d.s);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void to_srv(reg_srv_obj *out, const reg_bidx_obj *o, size_t i)
{
	out->id = ((uint32_t)i << ID_SHIFT) | o->id;
	out->offset = ((uint64_t)i << OFF_SHIFT) | o->offset;
	out->size = o->size;
	out->digest = o->digest;
	out->media_type = o->media_type;
}

static int be_has_repo(void *ctx, const char *repo)
{
	srv_union *u = ctx;
	for (size_t i = 0; i < u->n; i++)
		if (reg_bidx_has_repo(u->x[i], repo))
			return 1;
	return 0;
}

/* Tags: the first (newest) bundle that has the tag wins. */
static int be_manifest(void *ctx, const char *repo, const char *ref, reg_srv_obj *out)
{
	srv_union *u = ctx;
	reg_bidx_obj o;
	for (size_t i = 0; i < u->n; i++)
		if (reg_bidx_manifest(u->x[i], repo, ref, &o)) {
			to_srv(out, &o, i);
			return 1;
		}
	return 0;
}

static int be_blob(void *ctx, const char *repo, const reg_digest *d, reg_srv_obj *out)
{
	srv_union *u = ctx;
	reg_bidx_obj o;
	for (size_t i = 0; i < u->n; i++)
		if (reg_bidx_blob(u->x[i], repo, d, &o)) {
			to_srv(out, &o, i);
			return 1;
		}
	if (u->n < 2)
		return 0;
	/* A blob a delta left out, for an image of this repository: from the
	 * bundle (a base) that holds it, checked like any other member. */
	srv_need key;
	if (snprintf(key.repo, sizeof(key.repo), "%s", repo) >= (int)sizeof(key.repo))
		return 0;
	key.d = *d;
	if (!bsearch(&key, u->needs, u->n_needs, sizeof(*u->needs), need_cmp))
		return 0;
	for (size_t i = 0; i < u->n; i++) {
		uint32_t id = reg_bidx_find_blob(u->x[i], d);
		if (id == REG_BIDX_NONE)
			continue;
		reg_bidx_member m;
		reg_bidx_member_at(u->x[i], id, &m);
		o.id = id;
		o.offset = m.off;
		o.size = m.size;
		o.digest = *d;
		o.media_type = NULL;
		to_srv(out, &o, i);
		return 1;
	}
	return 0;
}

static size_t be_tags(void *ctx, const char *repo, const char *const **out)
{
	srv_union *u = ctx;
	if (u->n == 1)
		return reg_bidx_tags(u->x[0], repo, out);
	/* a srv_repo begins with its name */
	const srv_repo *r = bsearch(&repo, u->repos, u->n_repos, sizeof(srv_repo), str_cmp);
	*out = r ? r->tags : NULL;
	return r ? r->ntags : 0;
}

static size_t be_repos(void *ctx, const char *const **out)
{
	srv_union *u = ctx;
	if (u->n == 1)
		return reg_bidx_repos(u->x[0], out);
	*out = u->repo_names;
	return u->n_repos;
}

/* The reader an offset of to_srv goes to, or NULL. */
static reg_bidx *reader_of(const srv_union *u, uint64_t off)
{
	size_t i = (size_t)(off >> OFF_SHIFT);
	return i < u->n ? u->x[i] : NULL;
}

/* The pieces of an object (each part's own descriptor, for sendfile), and
 * the bytes of one that spans parts. */
static size_t be_segs(void *ctx, uint64_t off, uint64_t len, reg_srv_seg *out, size_t max)
{
	reg_bidx *x = reader_of(ctx, off);
	reg_bidx_seg seg[8];
	size_t n = x ? reg_bidx_serve_segs(x, off & OFF_MASK, len, seg, 8) : 0;
	for (size_t k = 0; k < n && k < max && k < 8; k++) {
		out[k].fd = seg[k].fd;
		out[k].off = seg[k].off;
		out[k].len = seg[k].len;
	}
	return n;
}

static int be_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	reg_bidx *x = reader_of(ctx, off);
	cm_error e;
	return x ? reg_bidx_serve_read(x, off & OFF_MASK, buf, n, &e) : -1;
}

/* A range over several parts as memory: each piece mapped from its part
 * (reg_bidx_serve_map), for an iovec response; be_unmap releases it.
 * Mapped pages count in the server's RSS while their response lives, so
 * the bytes mapped are capped: a body over MAP_ONE_MAX, or one that would
 * take the mapped total over MAP_ALL_MAX, goes through the reader's
 * buffer instead (docs/serve.md "Serving bytes"). */
#define MAP_ONE_MAX ((uint64_t)512 << 20)
#define MAP_ALL_MAX ((uint64_t)1 << 30)

typedef struct mapped {
	reg_bidx_map m;
	uint64_t len;
} mapped;

static pthread_mutex_t g_map_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_mapped;

static void *be_map(void *ctx, uint64_t off, uint64_t len, reg_srv_iov *out, size_t max, size_t *n)
{
	reg_bidx *x = reader_of(ctx, off);
	cm_error e;
	*n = 0;
	if (!x || len > MAP_ONE_MAX)
		return NULL;
	pthread_mutex_lock(&g_map_mu);
	int room = g_mapped + len <= MAP_ALL_MAX;
	if (room)
		g_mapped += len;
	pthread_mutex_unlock(&g_map_mu);
	if (!room)
		return NULL;
	mapped *m = malloc(sizeof(*m));
	if (!m || reg_bidx_serve_map(&m->m, x, off & OFF_MASK, len, &e) < 0 || m->m.n > max) {
		if (m)
			reg_bidx_serve_unmap(&m->m);
		free(m);
		pthread_mutex_lock(&g_map_mu);
		g_mapped -= len;
		pthread_mutex_unlock(&g_map_mu);
		return NULL;
	}
	m->len = len;
	for (size_t k = 0; k < m->m.n; k++) {
		out[k].p = m->m.v[k].p;
		out[k].len = m->m.v[k].len;
	}
	*n = m->m.n;
	return m;
}

static void be_unmap(void *handle)
{
	mapped *m = handle;
	reg_bidx_serve_unmap(&m->m);
	pthread_mutex_lock(&g_map_mu);
	g_mapped -= m->len;
	pthread_mutex_unlock(&g_map_mu);
	free(m);
}

static int be_check(void *ctx, uint32_t id, void (*wake)(void *), void *arg)
{
	srv_union *u = ctx;
	size_t i = id >> ID_SHIFT;
	if (i >= u->n)
		return REG_SRV_BAD;
	return reg_bidx_check(u->x[i], id & ID_MASK, wake, arg);
}

static void be_shutdown(void *ctx)
{
	srv_union *u = ctx;
	for (size_t i = 0; i < u->n; i++)
		reg_bidx_stop(u->x[i]);
}

static void union_free(srv_union *u)
{
	for (size_t i = 0; i < u->n_repos; i++)
		free(u->repos[i].tags);
	free(u->repos);
	free(u->repo_names);
	free(u->needs);
	for (size_t i = 0; i < u->n; i++) {
		reg_bidx_free(u->x[i]);
		cm_buf_free(&u->bj[i]);
	}
	memset(u, 0, sizeof(*u));
}

/* Every bundle's repositories (repo NULL), or its tags of repo, sorted
 * and each once, into *out (freed by the caller). */
static size_t gather(const char ***out, const srv_union *u, const char *repo)
{
	const char *const *l;
	size_t total = 0, n = 0, w = 0;
	for (size_t i = 0; i < u->n; i++)
		total += repo ? reg_bidx_tags(u->x[i], repo, &l) : reg_bidx_repos(u->x[i], &l);
	if (!(*out = calloc(total + 1, sizeof(char *))))
		return SIZE_MAX;
	for (size_t i = 0; i < u->n; i++) {
		size_t k = repo ? reg_bidx_tags(u->x[i], repo, &l) : reg_bidx_repos(u->x[i], &l);
		for (size_t j = 0; j < k; j++)
			(*out)[n++] = l[j];
	}
	qsort(*out, n, sizeof(char *), str_cmp);
	for (size_t j = 0; j < n; j++)
		if (w == 0 || strcmp((*out)[w - 1], (*out)[j]) != 0)
			(*out)[w++] = (*out)[j];
	return w;
}

/* The union's repositories and, for each, its tags from every bundle. */
static int union_repos(srv_union *u, cm_error *err)
{
	if ((u->n_repos = gather(&u->repo_names, u, NULL)) == SIZE_MAX ||
	    !(u->repos = calloc(u->n_repos + 1, sizeof(srv_repo)))) {
		u->n_repos = 0;
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	for (size_t j = 0; j < u->n_repos; j++) {
		srv_repo *r = &u->repos[j];
		r->name = u->repo_names[j];
		if ((r->ntags = gather(&r->tags, u, r->name)) == SIZE_MAX) {
			r->ntags = 0;
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		}
	}
	return 0;
}

typedef struct need_ctx {
	srv_union *u;
	const ins_rbundle *b;
	const reg_receipt *om;
} need_ctx;

/* Record (repository of ref, d) when the delta left d out. */
static int need_fn(void *ctx, const char *ref, const reg_desc *d, cm_error *err)
{
	need_ctx *c = ctx;
	if (!reg_receipt_blob_find(c->om, &d->digest))
		return 0;
	reg_ref r;
	if (reg_ref_parse(&r, ref, err) < 0)
		return cm_error_wrap(err, "bundle.json image %s", ref);
	srv_union *u = c->u;
	srv_need *p = cm_grow(u->needs, u->n_needs, &u->cap_needs, sizeof(*p), err);
	if (!p)
		return CM_ENOMEM;
	srv_need *nd = &(u->needs = p)[u->n_needs];
	if (snprintf(nd->repo, sizeof(nd->repo), "%s/%s", r.host, r.path) >= (int)sizeof(nd->repo))
		return cm_error_set(err, CM_EVERIFY, "image %s: repository name too long", ref);
	nd->d = d->digest;
	u->n_needs++;
	return 0;
}

/* Is bundle j one that delta om records as its base? (A delta that
 * records none -- made from a receipt by other means -- takes any.) */
static int is_recorded(const reg_receipt *om, const reg_bidx_info *info)
{
	if (!om->n_bundles)
		return 1;
	for (size_t k = 0; k < om->n_bundles; k++)
		if (strcmp(om->bundles[k].sums, info->sums_sha256) == 0)
			return 1;
	return 0;
}

/* The deltas among the bundles (docs/serve.md "Deltas"): each checked on
 * its own like verify does; every bundle after the first must be a
 * recorded base of a delta named before it; every blob a delta leaves out
 * must be held, with its recorded size, by a bundle after it that the
 * delta records. Missing blobs are named with their images before the
 * registry starts (CM_EVERIFY). */
static int union_check(srv_union *u, char *const *names, cm_error *err)
{
	reg_receipt om[MAX_BUNDLES];
	int is_delta[MAX_BUNDLES];
	ins_rbundle view[MAX_BUNDLES];
	size_t missing = 0;
	int rc = 0;
	memset(om, 0, sizeof(om));
	memset(view, 0, sizeof(view));
	for (size_t i = 0; rc == 0 && i < u->n; i++) {
		view[i].x = u->x[i];
		view[i].info = u->info[i];
		view[i].bundle_json = u->bj[i];
		rc = ins_delta_read(&om[i], &is_delta[i], u->bj[i].data, u->bj[i].len, err);
		if (rc < 0)
			cm_error_wrap(err, "%s", names[i]);
		if (rc == 0 && is_delta[i] &&
		    (rc = ins_delta_check_self(&view[i], &om[i], err)) < 0)
			cm_error_wrap(err, "%s", names[i]);
	}
	for (size_t j = 1; rc == 0 && j < u->n; j++) {
		int ok = 0;
		for (size_t i = 0; i < j && !ok; i++)
			ok = is_delta[i] && is_recorded(&om[i], &u->info[j]);
		if (!ok)
			rc = cm_error_set(err, CM_EVERIFY,
					  "%s is not a base of a delta named before it (a bundle "
					  "after the first must be one that a delta records)",
					  names[j]);
	}
	for (size_t i = 0; rc == 0 && i < u->n; i++) {
		if (!is_delta[i])
			continue;
		for (size_t b = 0; b < om[i].n_blobs; b++) {
			const reg_receipt_blob *o = &om[i].blobs[b];
			int found = 0;
			uint32_t id;
			for (size_t j = i + 1; j < u->n && !found; j++)
				found = is_recorded(&om[i], &u->info[j]) &&
					ins_delta_find(&u->x[j], 1, &o->digest, o->size, &id) == 0;
			if (found)
				continue;
			char users[1024];
			ins_delta_users(users, sizeof(users), &view[i], &o->digest);
			fprintf(stderr,
				"ferry-install serve: missing: %s (%llu bytes), left out of %s, "
				"needed by %s\n",
				o->digest.s, (unsigned long long)o->size, names[i],
				users[0] ? users : "(no image)");
			missing++;
		}
		if (!om[i].n_blobs)
			continue;
		need_ctx nc = {u, &view[i], &om[i]};
		rc = ins_delta_walk(&view[i], need_fn, &nc, err);
	}
	if (rc == 0 && missing)
		rc = cm_error_set(err, CM_EVERIFY,
				  "%zu blobs left out of a delta are in none of the bundles given "
				  "after it; give its bases (verify --base says which)",
				  missing);
	if (rc == 0 && u->n_needs)
		qsort(u->needs, u->n_needs, sizeof(*u->needs), need_cmp);
	for (size_t i = 0; i < u->n; i++)
		reg_receipt_free(&om[i]);
	if (rc == 0 && u->n > 1)
		rc = union_repos(u, err);
	return rc;
}

/* ---- helpers ---------------------------------------------------------- */

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void add_name(const char **names, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(names[i], name) == 0)
			return;
	if (*n < MAX_NAMES)
		names[(*n)++] = name;
}

/* A copy of name (at most 63 bytes: 0 when longer) into the next of store,
 * added. */
static int add_copy(char store[][256], size_t *nstore, const char **names, size_t *n,
		    const char *name)
{
	if ((size_t)snprintf(store[*nstore], 64, "%s", name) >= 64)
		return 0;
	add_name(names, n, store[(*nstore)++]);
	return 1;
}

/* Names for a self-signed certificate: --hostname values, then the listen
 * address; a wildcard listen adds localhost, the host name and every
 * interface address. */
static int tls_names(char store[][256], size_t *nstore, const char **names, size_t *n,
		     const char *const *hostnames, size_t nh, const char *listen)
{
	for (size_t i = 0; i < nh; i++)
		add_name(names, n, hostnames[i]);
	char host[256];
	ins_listen_host(host, sizeof(host), listen);
	if (host[0]) /* a listen host longer than a certificate name may be: -1 */
		return add_copy(store, nstore, names, n, host) ? 0 : -1;
	add_name(names, n, "localhost");
	add_name(names, n, "127.0.0.1");
	add_name(names, n, "::1");
	char hn[64];
	if (gethostname(hn, sizeof(hn)) == 0 && hn[0]) {
		hn[sizeof(hn) - 1] = '\0';
		add_copy(store, nstore, names, n, hn);
	}
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) == 0) {
		for (struct ifaddrs *p = ifa; p && *nstore < MAX_NAMES; p = p->ifa_next) {
			if (!p->ifa_addr)
				continue;
			char ip[INET6_ADDRSTRLEN];
			if (p->ifa_addr->sa_family == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)p->ifa_addr)->sin_addr,
					  ip, sizeof(ip));
			else if (p->ifa_addr->sa_family == AF_INET6 &&
				 !IN6_IS_ADDR_LINKLOCAL(
				     &((struct sockaddr_in6 *)p->ifa_addr)->sin6_addr))
				inet_ntop(AF_INET6,
					  &((struct sockaddr_in6 *)p->ifa_addr)->sin6_addr, ip,
					  sizeof(ip));
			else
				continue;
			add_copy(store, nstore, names, n, ip);
		}
		freeifaddrs(ifa);
	}
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	const char *pubkey = NULL, *listen = "0.0.0.0:5000", *tls_cert = NULL, *tls_key = NULL;
	const char *tls_dir = NULL, *ready_file = NULL, *access_log = NULL, *index_dir = NULL;
	const char *hostnames[MAX_NAMES];
	size_t nh = 0;
	int insecure = 0, mode = REG_BIDX_FULL;
	int threads = 0, timeout = 60, drain = 30, sndbuf = REG_SERVER_SNDBUF;
	const cmd_opt opts[] = {
	    CMD_S("pubkey", 'p', &pubkey),
	    CMD_S("listen", 'l', &listen),
	    CMD_S("tls-cert", 0, &tls_cert),
	    CMD_S("tls-key", 0, &tls_key),
	    CMD_S("tls-self-signed", 0, &tls_dir),
	    CMD_L("hostname", hostnames, &nh, MAX_NAMES / 2, "too many --hostname"),
	    CMD_E("verify", &mode, REG_BIDX_FULL, "full|lazy", "--verify must be full or lazy"),
	    CMD_S("ready-file", 0, &ready_file),
	    CMD_S("access-log", 0, &access_log),
	    CMD_S("index-dir", 0, &index_dir),
	    CMD_F("insecure-skip-signature", 0, &insecure, 1),
	    CMD_I("threads", 0, &threads, 1, 256, "bad number '%s'"),
	    CMD_I("timeout", 0, &timeout, 1, 86400, "bad number '%s'"),
	    CMD_I("drain-timeout", 0, &drain, 0, 86400, "bad number '%s'"),
	    CMD_I("send-buffer", 0, &sndbuf, 0, 64 << 20, "bad --send-buffer '%s'"),
	    CMD_END,
	};
	int c = cmd_opts_parse("serve", argc, argv, opts, usage_text, 1, MAX_BUNDLES);
	if (c >= 0)
		return c;
	const char *bundle = argv[optind];
	char *const *bundles = argv + optind;
	size_t n_bundles = (size_t)(argc - optind);
	if ((tls_cert || tls_key) && (!tls_cert || !tls_key || tls_dir))
		return cmd_usage_error("serve", "give --tls-cert with --tls-key, or "
						"--tls-self-signed DIR");
	if (nh && !tls_dir)
		fprintf(stderr, "ferry-install serve: --hostname only matters with "
				"--tls-self-signed\n");
	cm_error uerr = {0};
	if (reg_server_check_listen(listen, &uerr) < 0)
		return cmd_usage_error("serve", "%s", uerr.msg);
	if (!pubkey && !insecure)
		return cmd_usage_error("serve", "a public key is required (--pubkey KEY.pub); "
						"--insecure-skip-signature checks digests only");

	/* Signals go to sigwait() below; every thread started from here on
	 * inherits the mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	cm_error err = {0};
	int rc = 0, log_fd = -1;
	sig_pubkey *key = NULL;
	srv_union u;
	memset(&u, 0, sizeof(u));
	reg_server *srv = NULL;
	char *cert_pem = NULL, *key_pem = NULL;
	double t0 = ins_now();

	if (insecure)
		fprintf(stderr, "ferry-install serve: WARNING: signature NOT checked "
				"(--insecure-skip-signature)\n");
	else if ((rc = sig_pubkey_load(&key, pubkey, &err)) < 0)
		goto out;

	if (tls_dir) {
		const char *names[MAX_NAMES];
		char store[MAX_NAMES][256];
		size_t n = 0, ns = 0;
		if (tls_names(store, &ns, names, &n, hostnames, nh, listen) < 0) {
			rc = cm_error_set(&err, CM_EUSAGE,
					  "--listen: the host is longer than the 63 bytes a "
					  "certificate name may hold");
			goto out;
		}
		if ((rc = reg_tls_self_signed(&cert_pem, &key_pem, tls_dir, names, n, &err)) < 0)
			goto out;
		fprintf(stderr, "ferry-install serve: TLS certificate for");
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %s", names[i]);
		fprintf(stderr, "; nodes trust %s/%s\n", tls_dir, REG_TLS_CA_FILE);
	} else if (tls_cert &&
		   (rc = reg_tls_load(&cert_pem, &key_pem, tls_cert, tls_key, &err)) < 0) {
		goto out;
	}

	if (access_log) {
		log_fd = strcmp(access_log, "-") == 0
			     ? dup(1)
			     : open(access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (log_fd < 0) {
			rc = cm_error_sys(&err, errno, "opening access log %s", access_log);
			goto out;
		}
	}

	for (size_t i = 0; i < n_bundles; i++) {
		reg_bidx_opts bo = {.bundle = bundles[i],
				    .index_dir = index_dir,
				    .use_index = 1,
				    .repos = 1,
				    .workers = 2,
				    .insecure_skip_signature = insecure,
				    .mode = mode,
				    .check_sig = key ? ins_verify_check_sig : NULL,
				    .sig_ctx = key,
				    .notify = notify};
		u.bj[i] = (cm_buf)CM_BUF_INIT;
		reg_bidx_info *info = &u.info[i];
		if ((rc = reg_bidx_open(&u.x[i], info, &bo, &err)) < 0) {
			cm_error_wrap(&err, "%s", bundles[i]);
			goto out;
		}
		u.n = i + 1;
		/* bundle.json (the delta record), read and hashed through the
		 * reader (asking reg_bidx_open for it would skip the saved index) */
		uint32_t bj = reg_bidx_find(u.x[i], "bundle.json");
		if (bj == REG_BIDX_NONE) {
			rc = cm_error_set(&err, CM_EVERIFY, "%s: no bundle.json", bundles[i]);
			goto out;
		}
		if ((rc = reg_bidx_read(&u.bj[i], u.x[i], bj, REG_BUNDLE_JSON_MAX, &err)) < 0) {
			cm_error_wrap(&err, "%s: bundle.json", bundles[i]);
			goto out;
		}
		if (reg_bidx_count(u.x[i]) > ID_MASK) {
			rc = cm_error_set(&err, CM_EINVAL, "%s: more than %u members", bundles[i],
					  ID_MASK);
			goto out;
		}
		double secs = ins_now() - t0;
		fprintf(stderr,
			"ferry-install serve: %s: %s, %llu blobs (%llu verified), %zu "
			"repositories, %zu tags; %s%s; %.1f MB hashed; start-up %.3fs\n",
			bundles[i], key ? "signature ok" : "signature not checked",
			(unsigned long long)info->blobs, (unsigned long long)info->verified_blobs,
			info->repos, info->tags,
			info->index_reused ? "index reused from " : "index built",
			info->index_reused ? info->index_path : "",
			(double)info->bytes_hashed / 1e6, secs);
	}
	if ((rc = union_check(&u, bundles, &err)) < 0)
		goto out;
	if (u.n > 1)
		fprintf(stderr,
			"ferry-install serve: serving %zu bundles as one registry (%zu "
			"repositories; tags from the first bundle that has them)\n",
			u.n, u.n_repos);

	reg_srv_backend be = {
	    .ctx = &u,
	    .fd = reg_bidx_serve_fd(u.x[0]),
	    .has_repo = be_has_repo,
	    .manifest = be_manifest,
	    .blob = be_blob,
	    .tags = be_tags,
	    .repos = be_repos,
	    .check = be_check,
	    .shutdown = be_shutdown,
	    .segs = be_segs,
	    .read = be_read,
	    .map = be_map,
	    .unmap = be_unmap,
	};
	reg_server_opts so = {.listen = listen,
			      .tls_cert_pem = cert_pem,
			      .tls_key_pem = key_pem,
			      .threads = (unsigned)threads,
			      .timeout_s = (unsigned)timeout,
			      .send_buffer = sndbuf ? sndbuf : -1,
			      .access_log_fd = log_fd,
			      .log = notify,
			      .be = &be};
	if ((rc = reg_server_start(&srv, &so, &err)) < 0)
		goto out;
	cm_free_wiped(key_pem);
	key_pem = NULL;

	char url[160];
	snprintf(url, sizeof(url), "%s://%s", cert_pem ? "https" : "http", reg_server_addr(srv));
	if (ready_file) {
		char line[200];
		int l = snprintf(line, sizeof(line), "%s\n", url);
		if ((rc = cm_file_write_atomic(ready_file, line, (size_t)l, 0644, &err)) < 0)
			goto out;
	}
	printf("ready: %s\n", url);
	fflush(stdout);

	int sig = 0;
	while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP)
		; /* HUP: nothing to reload */
	fprintf(stderr, "ferry-install serve: signal %d: draining\n", sig);
	unsigned left = reg_server_drain(srv, (unsigned)drain);
	if (left)
		fprintf(stderr,
			"ferry-install serve: %u request(s) still running after %ds; "
			"closing them\n",
			left, drain);
	if (ready_file)
		unlink(ready_file);
out:
	reg_server_free(srv);
	union_free(&u);
	sig_pubkey_free(key);
	cm_free_wiped(key_pem);
	free(cert_pem);
	if (log_fd >= 0)
		close(log_fd);
	if (rc < 0)
		return cmd_fail("serve", rc, &err, bundle, NULL);
	fprintf(stderr, "ferry-install serve: stopped\n");
	return 0;
}
