/* TLS in front of an HTTP server that speaks plain sockets only, with
 * OpenSSL: the static (portable) build's libmicrohttpd has no GnuTLS.
 *
 * A listening TCP socket; each accepted connection gets a thread that does
 * the TLS handshake, makes a socketpair, hands one end (with the client's
 * address) to the HTTP server and then moves bytes between the TLS stream
 * and the other end until either side closes or the connection idles for
 * timeout_s. TLS 1.2 and 1.3, no ALPN (HTTP/1.1). docs/portable.md. */
#ifndef REG_TLSTERM_H
#define REG_TLSTERM_H

#include <sys/socket.h>

#include "cm_error.h"

typedef struct reg_tlsterm reg_tlsterm;

/* Called from a connection's thread after its handshake: fd is the plain
 * end, now owned by the callee (closed on failure too). Returns 0 when the
 * server took the connection. */
typedef int (*reg_tlsterm_hand)(void *ctx, int fd, const struct sockaddr *peer, socklen_t len);

typedef struct reg_tlsterm_opts {
	const struct sockaddr *addr; /* where to listen; port 0 picks one */
	socklen_t addr_len;
	const char *cert_pem; /* the certificate, then its chain */
	const char *key_pem;
	unsigned timeout_s; /* handshake and idle limit; 0: 60 */
	unsigned max_conns; /* more at once are closed on accept; 0: 1000 */
	reg_tlsterm_hand hand;
	void *ctx;
} reg_tlsterm_opts;

int reg_tlsterm_start(reg_tlsterm **out, const reg_tlsterm_opts *o, cm_error *err);

/* The port it listens on. */
unsigned reg_tlsterm_port(const reg_tlsterm *t);

/* Stop accepting (connections already made go on). */
void reg_tlsterm_quiesce(reg_tlsterm *t);

/* Stop accepting, close every connection and wait for their threads. Call
 * it after the HTTP server has stopped. NULL is a no-op. */
void reg_tlsterm_free(reg_tlsterm *t);

#endif
