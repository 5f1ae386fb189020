#include "ins_runner.h"

#include "cm_file.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int ins_argv_add(ins_argv *a, const char *s, cm_error *err)
{
	char **v = cm_grow(a->v, a->n + 1, &a->cap, sizeof(*v), err);
	if (!v)
		return CM_ENOMEM;
	if (!((a->v = v)[a->n] = strdup(s)))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	a->v[++a->n] = NULL;
	return 0;
}

int ins_argv_addf(ins_argv *a, cm_error *err, const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return cm_error_set(err, CM_EINVAL, "argument too long");
	return ins_argv_add(a, buf, err);
}

int ins_argv_addv(ins_argv *a, const char *const *v, cm_error *err)
{
	for (; v && *v; v++) {
		int rc = ins_argv_add(a, *v, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void ins_argv_free(ins_argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

static int needs_quote(const char *s)
{
	if (!*s)
		return 1;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("-_./:=,@+%", *s)))
			return 1;
	return 0;
}

int ins_shell_join(cm_buf *b, const char *const *argv, cm_error *err)
{
	int rc = 0;
	for (size_t i = 0; argv[i] && rc == 0; i++) {
		if (i)
			rc = cm_buf_append(b, " ", 1, err);
		if (rc == 0 && !needs_quote(argv[i])) {
			rc = cm_buf_append(b, argv[i], strlen(argv[i]), err);
			continue;
		}
		if (rc == 0)
			rc = cm_buf_append(b, "'", 1, err);
		for (const char *p = argv[i]; rc == 0 && *p; p++)
			rc = *p == '\'' ? cm_buf_append(b, "'\\''", 4, err)
					: cm_buf_append(b, p, 1, err);
		if (rc == 0)
			rc = cm_buf_append(b, "'", 1, err);
	}
	return rc;
}

void ins_runner_desc(char *out, size_t n, const ins_runner *r)
{
	switch (r->kind) {
	case INS_RUN_DOCKER:
		snprintf(out, n, "node %s (%s exec)", r->node, r->docker[0] ? r->docker : "docker");
		break;
	case INS_RUN_MINIKUBE:
		snprintf(out, n, "node %s (minikube ssh -p %s)", r->node[0] ? r->node : r->profile,
			 r->profile);
		break;
	case INS_RUN_SSH:
		snprintf(out, n, "node %s (ssh)", r->node);
		break;
	default:
		snprintf(out, n, "local node");
	}
}

int ins_runner_wrap(ins_argv *out, const ins_runner *r, const char *const *cmd, cm_error *err)
{
	int rc = 0;
	static const char *const sudo[] = {"sudo", "-n", NULL};
	switch (r->kind) {
	case INS_RUN_LOCAL:
		if (r->sudo)
			rc = ins_argv_addv(out, sudo, err);
		return rc ? rc : ins_argv_addv(out, cmd, err);
	case INS_RUN_DOCKER: {
		const char *pre[] = {r->docker[0] ? r->docker : "docker", "exec", "-i", r->node,
				     NULL};
		rc = ins_argv_addv(out, pre, err);
		return rc ? rc : ins_argv_addv(out, cmd, err);
	}
	case INS_RUN_MINIKUBE:
	case INS_RUN_SSH: {
		/* both hand one command line to a remote shell */
		cm_buf line = CM_BUF_INIT;
		if (r->sudo)
			rc = ins_shell_join(&line, sudo, err);
		if (rc == 0 && r->sudo)
			rc = cm_buf_append(&line, " ", 1, err);
		if (rc == 0)
			rc = ins_shell_join(&line, cmd, err);
		if (rc == 0 && r->kind == INS_RUN_MINIKUBE) {
			const char *pre[] = {"minikube", "ssh", "-p", r->profile, NULL};
			rc = ins_argv_addv(out, pre, err);
			if (rc == 0 && r->node[0] && strcmp(r->node, r->profile) != 0) {
				rc = ins_argv_add(out, "-n", err);
				if (rc == 0)
					rc = ins_argv_add(out, r->node, err);
			}
		} else if (rc == 0) {
			const char *pre[] = {
			    "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", NULL};
			rc = ins_argv_addv(out, pre, err);
			if (rc == 0 && r->port[0]) {
				rc = ins_argv_add(out, "-p", err);
				if (rc == 0)
					rc = ins_argv_add(out, r->port, err);
			}
			if (rc == 0)
				rc = ins_argv_add(out, r->node, err);
		}
		if (rc == 0)
			rc = ins_argv_add(out, "--", err);
		if (rc == 0)
			rc = ins_argv_add(out, line.data ? line.data : "", err);
		cm_buf_free(&line);
		return rc;
	}
	}
	return cm_error_set(err, CM_EINVAL, "unknown runner");
}

int ins_which(const char *prog, char *out, size_t n)
{
	if (strchr(prog, '/')) {
		size_t l = strlen(prog);
		if (l >= n)
			return 0;
		memcpy(out, prog, l + 1);
		return access(prog, X_OK) == 0;
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		const char *e = strchr(path, ':');
		size_t l = e ? (size_t)(e - path) : strlen(path);
		char cand[PATH_MAX];
		snprintf(cand, sizeof(cand), "%.*s/%s", (int)l, l ? path : ".", prog);
		struct stat sb;
		if (stat(cand, &sb) == 0 && S_ISREG(sb.st_mode) && access(cand, X_OK) == 0) {
			snprintf(out, n, "%s", cand);
			return 1;
		}
		if (!e)
			break;
		path = e + 1;
	}
	return 0;
}

/* Drains the child's stdout and stderr while the main thread feeds it. */
typedef struct drain {
	int out_fd, err_fd;
	cm_buf *out;
	cm_buf *errout;
	char tail[4096];
	size_t tail_len;
	int out_over;
} drain;

static void tail_add(drain *d, const char *p, size_t n)
{
	if (n >= sizeof(d->tail)) {
		p += n - sizeof(d->tail);
		n = sizeof(d->tail);
	}
	if (d->tail_len + n > sizeof(d->tail)) {
		size_t drop = d->tail_len + n - sizeof(d->tail);
		memmove(d->tail, d->tail + drop, d->tail_len - drop);
		d->tail_len -= drop;
	}
	memcpy(d->tail + d->tail_len, p, n);
	d->tail_len += n;
}

static void *drain_main(void *arg)
{
	drain *d = arg;
	char buf[65536];
	struct pollfd p[2];
	for (;;) {
		int n = 0;
		if (d->out_fd >= 0)
			p[n++] = (struct pollfd){d->out_fd, POLLIN, 0};
		if (d->err_fd >= 0)
			p[n++] = (struct pollfd){d->err_fd, POLLIN, 0};
		if (n == 0)
			break;
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t r = read(p[i].fd, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			int is_out = p[i].fd == d->out_fd;
			if (r <= 0) {
				close(p[i].fd);
				if (is_out)
					d->out_fd = -1;
				else
					d->err_fd = -1;
				continue;
			}
			if (is_out) {
				if (d->out && !d->out_over &&
				    cm_buf_append(d->out, buf, (size_t)r, NULL) < 0)
					d->out_over = 1;
			} else {
				tail_add(d, buf, (size_t)r);
				if (d->errout)
					cm_buf_append(d->errout, buf, (size_t)r, NULL);
			}
		}
	}
	/* a child's output can hold a secret (kubectl get secret pull-secret) */
	OPENSSL_cleanse(buf, sizeof(buf));
	return NULL;
}

static void fmt_tail(char *out, size_t n, const char *t, size_t len)
{
	/* keep the last few lines, trimmed */
	while (len && (t[len - 1] == '\n' || t[len - 1] == ' '))
		len--;
	size_t start = len > n - 1 ? len - (n - 1) : 0;
	int lines = 0;
	for (size_t i = len; i > start; i--)
		if (t[i - 1] == '\n' && ++lines == 6) {
			start = i;
			break;
		}
	snprintf(out, n, "%.*s", (int)(len - start), t + start);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int ins_proc_run(const char *const *argv, ins_proc_io *io, cm_error *err)
{
	int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
	int want_in = io->feed || io->in;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int rc = 0;
	pid_t pid;
	char cmdline[512];
	cm_buf cl = CM_BUF_INIT;
	ins_shell_join(&cl, argv, NULL);
	snprintf(cmdline, sizeof(cmdline), "%.400s%s", cl.data ? cl.data : argv[0],
		 cl.len > 400 ? "..." : "");
	cm_buf_free(&cl);
	io->status = -1;
	io->err_tail[0] = '\0';

	char found[PATH_MAX];
	if (!ins_which(argv[0], found, sizeof(found)))
		return cm_error_set(err, CM_ENOTFOUND, "%s: command not found%s", argv[0],
				    strchr(argv[0], '/') ? "" : " in PATH");
	if ((want_in && pipe2(in_p, O_CLOEXEC) < 0) ||
	    (!io->inherit_stdout && pipe2(out_p, O_CLOEXEC) < 0) ||
	    (!io->inherit_stderr && pipe2(err_p, O_CLOEXEC) < 0)) {
		rc = cm_error_sys(err, errno, "pipe");
		goto close_all;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	sigset_t def, none;
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigemptyset(&none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	if (want_in)
		posix_spawn_file_actions_adddup2(&fa, in_p[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, io->in_path ? io->in_path : "/dev/null",
						 O_RDONLY, 0);
	if (!io->inherit_stdout)
		posix_spawn_file_actions_adddup2(&fa, out_p[1], 1);
	if (!io->inherit_stderr)
		posix_spawn_file_actions_adddup2(&fa, err_p[1], 2);
	int sr = posix_spawn(&pid, found, &fa, &at, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (sr != 0) {
		rc = cm_error_sys(err, sr, "starting %s", argv[0]);
		goto close_all;
	}
	close_fd(&in_p[0]);
	close_fd(&out_p[1]);
	close_fd(&err_p[1]);
	drain d;
	memset(&d, 0, sizeof(d));
	d.out_fd = out_p[0];
	d.err_fd = err_p[0];
	d.out = io->out;
	d.errout = io->errout;
	out_p[0] = err_p[0] = -1; /* the drain thread closes them */
	pthread_t th;
	int have_th = pthread_create(&th, NULL, drain_main, &d) == 0;
	if (!have_th)
		drain_main(&d); /* cannot happen in practice; avoid a deadlock only without stdin */
	cm_error ferr = {0};
	int frc = 0;
	if (io->feed)
		frc = io->feed(io->feed_ctx, in_p[1], &ferr);
	else if (io->in)
		frc = cm_write_all(in_p[1], io->in, io->in_len, &ferr);
	close_fd(&in_p[1]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (have_th)
		pthread_join(th, NULL);
	io->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	fmt_tail(io->err_tail, sizeof(io->err_tail), d.tail, d.tail_len);
	if (frc < 0 && !(ferr.code == CM_EIO && io->status != 0 && ferr.sys_errno == EPIPE)) {
		cm_error_set(err, frc, "%s", ferr.msg);
		if (io->status != 0)
			cm_error_wrap(err, "%s (exit %d%s%s)", cmdline, io->status,
				      io->err_tail[0] ? ": " : "", io->err_tail);
		return err->code;
	}
	if (io->status != 0)
		return cm_error_set(err, CM_EFAIL, "%s: exit %d%s%s", cmdline, io->status,
				    io->err_tail[0] ? ": " : "", io->err_tail);
	if (d.out_over)
		return cm_error_set(err, CM_EINVAL, "%s: output larger than expected", cmdline);
	return 0;
close_all:
	for (int i = 0; i < 2; i++) {
		close_fd(&in_p[i]);
		close_fd(&out_p[i]);
		close_fd(&err_p[i]);
	}
	return rc;
}

int ins_runner_run(const ins_runner *r, const char *const *cmd, ins_proc_io *io, cm_error *err)
{
	ins_argv a = {NULL, 0, 0};
	int rc = ins_runner_wrap(&a, r, cmd, err);
	if (rc == 0)
		rc = ins_proc_run((const char *const *)a.v, io, err);
	ins_argv_free(&a);
	return rc;
}

char *ins_next_line(char **p)
{
	char *s = *p;
	if (!s || !*s)
		return NULL;
	char *nl = strchr(s, '\n');
	if (nl) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = s + strlen(s);
	}
	size_t l = strlen(s);
	while (l && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
		s[--l] = '\0';
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}
