/* TLS termination with OpenSSL in front of a plain-socket HTTP server:
 * reg_tlsterm.h. */
#include "reg_tlsterm.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reg_tls.h"

#define PUMP_BUF (64 * 1024)

struct reg_tlsterm {
	reg_tlsterm_opts o;
	SSL_CTX *ctx;
	int lfd;
	int wake[2]; /* written once on free: every thread polls wake[0] */
	unsigned port;
	pthread_t acceptor;
	int acceptor_started;
	int quiesced;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned live; /* connection threads */
};

typedef struct pump {
	reg_tlsterm *t;
	int fd;
	struct sockaddr_storage peer;
	socklen_t peer_len;
} pump;

static long now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec;
}

/* Wait for the events SSL asked for (or for plain ones) on up to two fds
 * plus the wake pipe, until deadline (0: none); 0 ready, -1 stop (woken or
 * out of time). */
static int wait_io(reg_tlsterm *t, struct pollfd *p, int n, long deadline)
{
	p[n] = (struct pollfd){.fd = t->wake[0], .events = POLLIN};
	int r;
	do {
		long left = deadline ? deadline - now_s() : 3600;
		if (left <= 0)
			return -1;
		r = poll(p, (nfds_t)n + 1, (int)(left > 3600 ? 3600000 : left * 1000));
	} while ((r < 0 && errno == EINTR) || (r == 0 && !deadline));
	if (r <= 0 || p[n].revents)
		return -1;
	return 0;
}

static short want_events(SSL *ssl, int r)
{
	int e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return POLLIN;
	if (e == SSL_ERROR_WANT_WRITE)
		return POLLOUT;
	return 0; /* closed or failed */
}

/* Move bytes both ways until one side closes. tcp and plain are
 * non-blocking. No idle limit here: the HTTP server times idle connections
 * out and closes its end (a request may wait long for a lazy hash). */
static void run_pump(reg_tlsterm *t, SSL *ssl, int tcp, int plain, char *down, char *up)
{
	size_t down_len = 0, down_off = 0, up_len = 0, up_off = 0;
	int client_eof = 0, server_eof = 0, tcp_hup = 0, plain_hup = 0;
	for (;;) {
		short tcp_ev = 0, plain_ev = 0;
		int progress = 0;
		/* client -> server */
		if (!client_eof && down_len == 0) {
			int r = SSL_read(ssl, down, PUMP_BUF);
			if (r > 0) {
				down_len = (size_t)r;
				down_off = 0;
				progress = 1;
			} else {
				short w = want_events(ssl, r);
				if (!w) {
					client_eof = 1;
					shutdown(plain, SHUT_WR);
				}
				tcp_ev |= w;
			}
		}
		if (down_len) {
			ssize_t w = send(plain, down + down_off, down_len - down_off, MSG_NOSIGNAL);
			if (w > 0) {
				down_off += (size_t)w;
				if (down_off == down_len)
					down_len = 0;
				progress = 1;
			} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				plain_ev |= POLLOUT;
			} else if (w < 0 && errno != EINTR) {
				return; /* the server closed */
			}
		}
		/* server -> client */
		if (!server_eof && up_len == 0) {
			ssize_t r = recv(plain, up, PUMP_BUF, 0);
			if (r > 0) {
				up_len = (size_t)r;
				up_off = 0;
				progress = 1;
			} else if (r == 0) {
				server_eof = 1;
			} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
				plain_ev |= POLLIN;
			} else if (errno != EINTR) {
				return;
			}
		}
		if (up_len) {
			int r = SSL_write(ssl, up + up_off, (int)(up_len - up_off));
			if (r > 0) {
				up_off += (size_t)r;
				if (up_off == up_len)
					up_len = 0;
				progress = 1;
			} else {
				short w = want_events(ssl, r);
				if (!w)
					return; /* the client went away */
				tcp_ev |= w;
			}
		}
		if (server_eof && up_len == 0) {
			SSL_shutdown(ssl); /* best effort: a close_notify */
			return;
		}
		if (client_eof && down_len == 0 && server_eof)
			return;
		if (progress)
			continue;
		/* A hung-up fd is polled again only for what is wanted from it
		 * (else poll would return at once, again and again). */
		struct pollfd p[3] = {
		    {.fd = tcp_hup && !tcp_ev ? -1 : tcp, .events = tcp_ev},
		    {.fd = plain_hup && !plain_ev ? -1 : plain, .events = plain_ev}};
		if (wait_io(t, p, 2, 0) < 0)
			return;
		tcp_hup |= (p[0].revents & (POLLHUP | POLLERR)) != 0;
		plain_hup |= (p[1].revents & (POLLHUP | POLLERR)) != 0;
		if (tcp_hup && plain_hup && !tcp_ev && !plain_ev)
			return;
	}
}

static void *pump_main(void *arg)
{
	pump *pm = arg;
	reg_tlsterm *t = pm->t;
	char *down = malloc(PUMP_BUF), *up = malloc(PUMP_BUF);
	SSL *ssl = SSL_new(t->ctx);
	int sp[2] = {-1, -1};
	if (!down || !up || !ssl || SSL_set_fd(ssl, pm->fd) != 1)
		goto out;
	long deadline = now_s() + (t->o.timeout_s ? t->o.timeout_s : 60);
	for (;;) {
		int r = SSL_accept(ssl);
		if (r == 1)
			break;
		short w = want_events(ssl, r);
		struct pollfd p[2] = {{.fd = pm->fd, .events = w}};
		if (!w || wait_io(t, p, 1, deadline) < 0)
			goto out;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
		goto out;
	int server_end = sp[0];
	sp[0] = -1;
	if (t->o.hand(t->o.ctx, server_end, (struct sockaddr *)&pm->peer, pm->peer_len) != 0)
		goto out;
	int fl = fcntl(sp[1], F_GETFL);
	if (fl < 0 || fcntl(sp[1], F_SETFL, fl | O_NONBLOCK) != 0)
		goto out;
	run_pump(t, ssl, pm->fd, sp[1], down, up);
out:
	ERR_clear_error();
	SSL_free(ssl);
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	close(pm->fd);
	free(down);
	free(up);
	pthread_mutex_lock(&t->mu);
	t->live--;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	free(pm);
	OPENSSL_thread_stop();
	return NULL;
}

static void *accept_main(void *arg)
{
	reg_tlsterm *t = arg;
	unsigned max = t->o.max_conns ? t->o.max_conns : 1000;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, (size_t)256 * 1024);
	for (;;) {
		struct pollfd p[2] = {{.fd = t->lfd, .events = POLLIN},
				      {.fd = t->wake[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents || __atomic_load_n(&t->quiesced, __ATOMIC_RELAXED))
			break;
		pump *pm = calloc(1, sizeof(*pm));
		if (!pm)
			continue;
		pm->t = t;
		pm->peer_len = sizeof(pm->peer);
		pm->fd = accept4(t->lfd, (struct sockaddr *)&pm->peer, &pm->peer_len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (pm->fd < 0) {
			free(pm);
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
				struct timespec ts = {0, 50 * 1000 * 1000};
				nanosleep(&ts, NULL);
			}
			continue;
		}
		pthread_mutex_lock(&t->mu);
		int ok = t->live < max;
		if (ok)
			t->live++;
		pthread_mutex_unlock(&t->mu);
		pthread_t th;
		if (ok && pthread_create(&th, &attr, pump_main, pm) == 0)
			continue;
		if (ok) {
			pthread_mutex_lock(&t->mu);
			t->live--;
			pthread_cond_broadcast(&t->cv);
			pthread_mutex_unlock(&t->mu);
		}
		close(pm->fd);
		free(pm);
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

int reg_tlsterm_start(reg_tlsterm **out, const reg_tlsterm_opts *o, cm_error *err)
{
	*out = NULL;
	if (!o->hand || !o->cert_pem || !o->key_pem || !o->addr)
		return cm_error_set(err, CM_EINVAL, "incomplete TLS terminator options");
	reg_tlsterm *t = calloc(1, sizeof(*t));
	if (!t)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	t->o = *o;
	t->lfd = t->wake[0] = t->wake[1] = -1;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	int rc = 0;
	t->ctx = SSL_CTX_new(TLS_server_method());
	if (!t->ctx) {
		rc = reg_tls_error(err, "cannot make a context");
		goto fail;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				     SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(t->ctx, 0);
	if ((rc = reg_tls_ctx_use(t->ctx, o->cert_pem, o->key_pem, err)) < 0)
		goto fail;
	if (pipe2(t->wake, O_CLOEXEC) != 0) {
		rc = cm_error_sys(err, errno, "pipe");
		goto fail;
	}
	t->lfd = socket(o->addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (t->lfd < 0 || setsockopt(t->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (o->addr->sa_family == AF_INET6 &&
	     setsockopt(t->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
	    bind(t->lfd, o->addr, o->addr_len) != 0 || listen(t->lfd, 1024) != 0) {
		rc = cm_error_sys(err, errno, "cannot listen");
		goto fail;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(t->lfd, (struct sockaddr *)&ss, &sl) == 0)
		t->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	if (pthread_create(&t->acceptor, NULL, accept_main, t) != 0) {
		rc = cm_error_set(err, CM_EIO, "cannot start the TLS acceptor thread");
		goto fail;
	}
	t->acceptor_started = 1;
	*out = t;
	return 0;
fail:
	reg_tlsterm_free(t);
	return rc;
}

unsigned reg_tlsterm_port(const reg_tlsterm *t)
{
	return t->port;
}

void reg_tlsterm_quiesce(reg_tlsterm *t)
{
	if (!t || !t->acceptor_started)
		return;
	__atomic_store_n(&t->quiesced, 1, __ATOMIC_RELAXED);
	shutdown(t->lfd, SHUT_RDWR); /* wakes poll() with POLLIN|POLLHUP */
	pthread_join(t->acceptor, NULL);
	t->acceptor_started = 0;
	close(t->lfd);
	t->lfd = -1;
}

void reg_tlsterm_free(reg_tlsterm *t)
{
	if (!t)
		return;
	if (t->wake[1] >= 0) {
		char c = 1;
		ssize_t w = write(t->wake[1], &c, 1);
		(void)w;
	}
	reg_tlsterm_quiesce(t);
	pthread_mutex_lock(&t->mu);
	while (t->live)
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
	if (t->lfd >= 0)
		close(t->lfd);
	if (t->wake[0] >= 0)
		close(t->wake[0]);
	if (t->wake[1] >= 0)
		close(t->wake[1]);
	SSL_CTX_free(t->ctx);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
}
