/* A read-only OCI distribution (Docker registry v2) server over
 * libmicrohttpd, answering from an abstract store of byte ranges in one
 * file. `ferry-install serve` plugs the bundle index (reg_bidx.h) in.
 *
 * Endpoints: /v2/, manifests and blobs (GET, HEAD, Range), tags/list and
 * _catalog (n, last, Link), referrers (an empty index). Everything else that
 * is not GET or HEAD gets 405 UNSUPPORTED.
 *
 * Names: a request for NAME with ?ns=HOST (containerd's mirror hint) is
 * looked up as HOST/NAME first, then as NAME.
 *
 * Bytes: blob and manifest bodies are file-descriptor responses at the
 * object's offset (sendfile(2) without TLS). Connections get a thread each
 * (default) or share an epoll pool; memory per connection is bounded by
 * libmicrohttpd's connection pool, connections are capped, idle ones time
 * out. Objects the backend has not verified yet are hashed first (only that
 * connection waits); one that fails is refused with a JSON error and never
 * sent. */
#ifndef REG_SERVER_H
#define REG_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "cm_error.h"
#include "reg_digest.h"

#define REG_SERVER_URL_MAX 4096	       /* longer request paths get 414 */
#define REG_SERVER_NAME_MAX 255	       /* longer repository names get NAME_INVALID */
#define REG_SERVER_SNDBUF (256 * 1024) /* default SO_SNDBUF per connection */
#define REG_SERVER_MAX_CONNS 1000      /* default connection cap */
#define REG_SERVER_PER_IP 64	       /* default connections one client address may hold */

typedef struct reg_srv_obj {
	uint32_t id;
	uint64_t offset; /* in the backend's fd */
	uint64_t size;
	reg_digest digest;
	const char *media_type; /* manifests: their own media type */
} reg_srv_obj;

/* A piece of an object: [off, off + len) of fd. */
typedef struct reg_srv_seg {
	int fd;
	uint64_t off, len;
} reg_srv_seg;

/* A piece of an object in memory (see map below). */
typedef struct reg_srv_iov {
	const void *p;
	size_t len;
} reg_srv_iov;

/* States from check() (same values as reg_bidx.h). */
enum { REG_SRV_READY = 0, REG_SRV_PENDING = 1, REG_SRV_BAD = 2, REG_SRV_UNAVAILABLE = 3 };

typedef struct reg_srv_backend {
	void *ctx;
	int fd; /* the file all objects live in; dup()ed for each response */
	int (*has_repo)(void *ctx, const char *repo);
	/* 1 found, 0 not */
	int (*manifest)(void *ctx, const char *repo, const char *tag_or_digest, reg_srv_obj *out);
	int (*blob)(void *ctx, const char *repo, const reg_digest *d, reg_srv_obj *out);
	/* Sorted names, valid for the backend's life. */
	size_t (*tags)(void *ctx, const char *repo, const char *const **out);
	size_t (*repos)(void *ctx, const char *const **out);
	/* Verification state; see reg_bidx_check. NULL: always READY. */
	int (*check)(void *ctx, uint32_t id, void (*wake)(void *arg), void *arg);
	/* Called by reg_server_free before the HTTP daemon stops: must call
	 * back every pending wake(). May be NULL. */
	void (*shutdown)(void *ctx);
	/* Objects in several files (a bundle in parts). NULL: every object
	 * lies in fd. Otherwise offsets are logical and segs gives the pieces
	 * of [off, off + len) (fills at most max, returns how many there
	 * are): one piece goes out as a file response of its descriptor
	 * (sendfile); a range over several pieces is read with read (0 or <0)
	 * into the response, a buffer at a time. */
	size_t (*segs)(void *ctx, uint64_t off, uint64_t len, reg_srv_seg *out, size_t max);
	int (*read)(void *ctx, uint64_t off, void *buf, size_t n);
	/* Optional, with segs: a range over several pieces as memory, sent
	 * from it (an iovec response: writev/sendmsg, no copy into a server
	 * buffer). Fills out (at most max) and returns a handle that unmap
	 * releases when the response is done; NULL: read is used instead. */
	void *(*map)(void *ctx, uint64_t off, uint64_t len, reg_srv_iov *out, size_t max,
		     size_t *n);
	void (*unmap)(void *handle);
} reg_srv_backend;

typedef struct reg_server_opts {
	const char *listen;	  /* "ADDR:PORT", "[V6ADDR]:PORT" or ":PORT"; port 0 picks one */
	const char *tls_cert_pem; /* both NULL: plain HTTP */
	const char *tls_key_pem;
	unsigned threads;   /* 0: a thread per connection; N: an epoll pool of N */
	unsigned timeout_s; /* idle connection timeout; 0: 60 */
	unsigned max_conns; /* 0: REG_SERVER_MAX_CONNS */
	/* Connections one client address may hold at once (the rest are
	 * closed on accept), so that one client cannot take them all.
	 * 0: REG_SERVER_PER_IP. */
	unsigned max_conns_per_ip;
	int send_buffer;   /* SO_SNDBUF bytes; 0: REG_SERVER_SNDBUF; <0: kernel autotuning */
	int access_log_fd; /* one line per request; -1: none */
	/* libmicrohttpd's own messages (and ours). May be NULL. */
	void (*log)(void *ctx, const char *msg);
	void *log_ctx;
	const reg_srv_backend *be;
} reg_server_opts;

typedef struct reg_server reg_server;

int reg_server_start(reg_server **out, const reg_server_opts *o, cm_error *err);
/* Check a listen address ahead of time (CM_EUSAGE when malformed). */
int reg_server_check_listen(const char *listen, cm_error *err);
/* The bound address as a URL authority: "127.0.0.1:5000", "[::1]:5000". */
const char *reg_server_addr(const reg_server *s);
/* Stop accepting and wait (up to timeout_s) for requests in flight to end.
 * Returns the number still running when it gave up. */
unsigned reg_server_drain(reg_server *s, unsigned timeout_s);
/* Stop and free. NULL is a no-op. */
void reg_server_free(reg_server *s);

/* Parse "bytes=a-b" against size. 1: a range (first, last filled); 0: no
 * usable Range (serve everything); -1: unsatisfiable (416). As RFC 9110
 * 14.1.2 says, an end past the blob is clamped to its last byte
 * ("bytes=0-999999" on 10 bytes is 0-9) and a suffix longer than the blob
 * is all of it; only a first byte past the end (or an empty blob) is 416. */
int reg_server_parse_range(const char *h, uint64_t size, uint64_t *first, uint64_t *last);

#endif
