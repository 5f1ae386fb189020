/* ferry-install serve: an OCI registry answered straight from the bundle
 * file (docs/serve.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cm_file.h"
#include "cmd.h"
#include "ins_nodes.h"
#include "reg_bidx.h"
#include "reg_server.h"
#include "reg_tls.h"
#include "sig.h"

#define MAX_NAMES 64

static const char usage_text[] =
    "usage: ferry-install serve BUNDLE --pubkey KEY.pub [options]\n"
    "\n"
    "Serve the bundle's images as a read-only OCI registry, straight from the file.\n"
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

static int check_sig(void *ctx, const void *sums, size_t n, const void *sig, size_t sig_n,
		     cm_error *err)
{
	return sig_verify(ctx, sums, n, sig, sig_n, err);
}

/* ---- the backend: the bundle index ------------------------------------ */

static int be_has_repo(void *ctx, const char *repo)
{
	return reg_bidx_has_repo(ctx, repo);
}

static void to_srv(reg_srv_obj *out, const reg_bidx_obj *o)
{
	out->id = o->id;
	out->offset = o->offset;
	out->size = o->size;
	out->digest = o->digest;
	out->media_type = o->media_type;
}

static int be_manifest(void *ctx, const char *repo, const char *ref, reg_srv_obj *out)
{
	reg_bidx_obj o;
	if (!reg_bidx_manifest(ctx, repo, ref, &o))
		return 0;
	to_srv(out, &o);
	return 1;
}

static int be_blob(void *ctx, const char *repo, const reg_digest *d, reg_srv_obj *out)
{
	reg_bidx_obj o;
	if (!reg_bidx_blob(ctx, repo, d, &o))
		return 0;
	to_srv(out, &o);
	return 1;
}

static size_t be_tags(void *ctx, const char *repo, const char *const **out)
{
	return reg_bidx_tags(ctx, repo, out);
}

static size_t be_repos(void *ctx, const char *const **out)
{
	return reg_bidx_repos(ctx, out);
}

/* A bundle in parts: the pieces of an object (each part's own
 * descriptor, for sendfile), and the bytes of one that spans parts. */
static size_t be_segs(void *ctx, uint64_t off, uint64_t len, reg_srv_seg *out, size_t max)
{
	reg_bidx_seg seg[8];
	size_t n = reg_bidx_serve_segs(ctx, off, len, seg, 8);
	for (size_t i = 0; i < n && i < max && i < 8; i++) {
		out[i].fd = seg[i].fd;
		out[i].off = seg[i].off;
		out[i].len = seg[i].len;
	}
	return n;
}

static int be_read(void *ctx, uint64_t off, void *buf, size_t n)
{
	cm_error e;
	return reg_bidx_serve_read(ctx, off, buf, n, &e);
}

static int be_check(void *ctx, uint32_t id, void (*wake)(void *), void *arg)
{
	return reg_bidx_check(ctx, id, wake, arg);
}

static void be_shutdown(void *ctx)
{
	reg_bidx_stop(ctx);
}

/* ---- helpers ---------------------------------------------------------- */

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

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
	if (host[0]) {
		/* a listen host longer than a certificate name may be */
		if ((size_t)snprintf(store[*nstore], 64, "%s", host) >= 64)
			return -1;
		add_name(names, n, store[(*nstore)++]);
		return 0;
	}
	add_name(names, n, "localhost");
	add_name(names, n, "127.0.0.1");
	add_name(names, n, "::1");
	char hn[64];
	if (gethostname(hn, sizeof(hn)) == 0 && hn[0]) {
		hn[sizeof(hn) - 1] = '\0';
		snprintf(store[*nstore], sizeof(store[0]), "%s", hn);
		add_name(names, n, store[(*nstore)++]);
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
			snprintf(store[*nstore], sizeof(store[0]), "%s", ip);
			add_name(names, n, store[(*nstore)++]);
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
	unsigned threads = 0, timeout = 60, drain = 30, sndbuf = REG_SERVER_SNDBUF;
	enum {
		O_TLSCERT = 256,
		O_TLSKEY,
		O_TLSSELF,
		O_HOST,
		O_VERIFY,
		O_READY,
		O_ALOG,
		O_IDX,
		O_INSECURE,
		O_THREADS,
		O_TIMEOUT,
		O_DRAIN,
		O_SNDBUF
	};
	static const struct option opts[] = {
	    {"pubkey", required_argument, NULL, 'p'},
	    {"listen", required_argument, NULL, 'l'},
	    {"tls-cert", required_argument, NULL, O_TLSCERT},
	    {"tls-key", required_argument, NULL, O_TLSKEY},
	    {"tls-self-signed", required_argument, NULL, O_TLSSELF},
	    {"hostname", required_argument, NULL, O_HOST},
	    {"verify", required_argument, NULL, O_VERIFY},
	    {"ready-file", required_argument, NULL, O_READY},
	    {"access-log", required_argument, NULL, O_ALOG},
	    {"index-dir", required_argument, NULL, O_IDX},
	    {"insecure-skip-signature", no_argument, NULL, O_INSECURE},
	    {"threads", required_argument, NULL, O_THREADS},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"drain-timeout", required_argument, NULL, O_DRAIN},
	    {"send-buffer", required_argument, NULL, O_SNDBUF},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:l:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			pubkey = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case O_TLSCERT:
			tls_cert = optarg;
			break;
		case O_TLSKEY:
			tls_key = optarg;
			break;
		case O_TLSSELF:
			tls_dir = optarg;
			break;
		case O_HOST:
			if (nh == MAX_NAMES / 2) {
				fprintf(stderr, "ferry-install serve: too many --hostname\n");
				return 64;
			}
			hostnames[nh++] = optarg;
			break;
		case O_VERIFY:
			if (strcmp(optarg, "full") == 0)
				mode = REG_BIDX_FULL;
			else if (strcmp(optarg, "lazy") == 0)
				mode = REG_BIDX_LAZY;
			else {
				fprintf(stderr,
					"ferry-install serve: --verify must be full or lazy\n");
				return 64;
			}
			break;
		case O_READY:
			ready_file = optarg;
			break;
		case O_ALOG:
			access_log = optarg;
			break;
		case O_IDX:
			index_dir = optarg;
			break;
		case O_INSECURE:
			insecure = 1;
			break;
		case O_THREADS:
		case O_TIMEOUT:
		case O_DRAIN: {
			unsigned v;
			if (parse_uint(optarg, c == O_THREADS ? 256 : 86400, &v) < 0 ||
			    (c != O_DRAIN && v == 0)) {
				fprintf(stderr, "ferry-install serve: bad number '%s'\n", optarg);
				return 64;
			}
			*(c == O_THREADS ? &threads : c == O_TIMEOUT ? &timeout : &drain) = v;
			break;
		}
		case O_SNDBUF:
			if (parse_uint(optarg, 64u << 20, &sndbuf) < 0) {
				fprintf(stderr, "ferry-install serve: bad --send-buffer '%s'\n",
					optarg);
				return 64;
			}
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 64;
		}
	}
	if (optind + 1 != argc) {
		fputs(usage_text, stderr);
		return 64;
	}
	const char *bundle = argv[optind];
	if ((tls_cert || tls_key) && (!tls_cert || !tls_key || tls_dir)) {
		fprintf(stderr, "ferry-install serve: give --tls-cert with --tls-key, or "
				"--tls-self-signed DIR\n");
		return 64;
	}
	if (nh && !tls_dir)
		fprintf(stderr, "ferry-install serve: --hostname only matters with "
				"--tls-self-signed\n");
	cm_error uerr = {0};
	if (reg_server_check_listen(listen, &uerr) < 0) {
		fprintf(stderr, "ferry-install serve: %s\n", uerr.msg);
		return 64;
	}
	if (!pubkey && !insecure) {
		fprintf(stderr, "ferry-install serve: a public key is required (--pubkey KEY.pub); "
				"--insecure-skip-signature checks digests only\n");
		return 64;
	}

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
	reg_bidx *x = NULL;
	reg_server *srv = NULL;
	char *cert_pem = NULL, *key_pem = NULL;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);

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

	reg_bidx_opts bo;
	memset(&bo, 0, sizeof(bo));
	bo.bundle = bundle;
	bo.index_dir = index_dir;
	bo.use_index = 1;
	bo.repos = 1;
	bo.workers = 2;
	bo.insecure_skip_signature = insecure;
	bo.mode = mode;
	bo.check_sig = key ? check_sig : NULL;
	bo.sig_ctx = key;
	bo.notify = notify;
	reg_bidx_info info;
	if ((rc = reg_bidx_open(&x, &info, &bo, &err)) < 0)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr,
		"ferry-install serve: %s: %s, %llu blobs (%llu verified), %zu repositories, "
		"%zu tags; %s%s; %.1f MB hashed; start-up %.3fs\n",
		bundle, key ? "signature ok" : "signature not checked",
		(unsigned long long)info.blobs, (unsigned long long)info.verified_blobs, info.repos,
		info.tags, info.index_reused ? "index reused from " : "index built",
		info.index_reused ? info.index_path : "", (double)info.bytes_hashed / 1e6, secs);

	reg_srv_backend be = {
	    .ctx = x,
	    .fd = reg_bidx_serve_fd(x),
	    .has_repo = be_has_repo,
	    .manifest = be_manifest,
	    .blob = be_blob,
	    .tags = be_tags,
	    .repos = be_repos,
	    .check = be_check,
	    .shutdown = be_shutdown,
	    .segs = reg_bidx_parts(x) > 1 ? be_segs : NULL,
	    .read = be_read,
	};
	reg_server_opts so;
	memset(&so, 0, sizeof(so));
	so.listen = listen;
	so.tls_cert_pem = cert_pem;
	so.tls_key_pem = key_pem;
	so.threads = threads;
	so.timeout_s = timeout;
	so.send_buffer = sndbuf ? (int)sndbuf : -1;
	so.access_log_fd = log_fd;
	so.log = notify;
	so.be = &be;
	if ((rc = reg_server_start(&srv, &so, &err)) < 0)
		goto out;
	if (key_pem) {
		memset(key_pem, 0, strlen(key_pem));
		free(key_pem);
		key_pem = NULL;
	}

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
	unsigned left = reg_server_drain(srv, drain);
	if (left)
		fprintf(stderr,
			"ferry-install serve: %u request(s) still running after %us; "
			"closing them\n",
			left, drain);
	if (ready_file)
		unlink(ready_file);
out:
	reg_server_free(srv);
	reg_bidx_free(x);
	sig_pubkey_free(key);
	if (key_pem) {
		memset(key_pem, 0, strlen(key_pem));
		free(key_pem);
	}
	free(cert_pem);
	if (log_fd >= 0)
		close(log_fd);
	if (rc < 0) {
		fprintf(stderr, "ferry-install serve: %s\n", err.msg);
		if (rc == CM_EVERIFY)
			fprintf(stderr, "ferry-install serve: VERIFICATION FAILED: %s\n", bundle);
		return cm_exit_code(rc);
	}
	fprintf(stderr, "ferry-install serve: stopped\n");
	return 0;
}
