/* Running commands, locally or "on a node".
 *
 * Every command that runs on a node goes through one runner: local,
 * `docker exec -i NODE`, `minikube ssh -p PROFILE [-n NODE]` or
 * `ssh [-p PORT] HOST`. The command itself (ctr, docker, podman, ...) is
 * the same whatever the transport. Processes are started with
 * posix_spawnp(), never through a shell on this side; ssh and minikube ssh
 * hand a remote shell a command line whose every word is single-quoted. */
#ifndef INS_RUNNER_H
#define INS_RUNNER_H

#include <stddef.h>

#include "cm_buf.h"
#include "cm_error.h"

/* A growable NULL-terminated argv. */
typedef struct ins_argv {
	char **v;
	size_t n, cap;
} ins_argv;

int ins_argv_add(ins_argv *a, const char *s, cm_error *err);
int ins_argv_addf(ins_argv *a, cm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ins_argv_addv(ins_argv *a, const char *const *v, cm_error *err);
void ins_argv_free(ins_argv *a);

/* Append argv to b as one shell command line (words single-quoted when
 * they need it). */
int ins_shell_join(cm_buf *b, const char *const *argv, cm_error *err);

typedef enum {
	INS_RUN_LOCAL = 0,
	INS_RUN_DOCKER,	  /* docker exec -i NODE ... */
	INS_RUN_MINIKUBE, /* minikube ssh -p PROFILE [-n NODE] -- ... */
	INS_RUN_SSH,	  /* ssh [-p PORT] HOST -- ... */
} ins_runner_kind;

typedef struct ins_runner {
	ins_runner_kind kind;
	char node[256];	   /* container, minikube node or ssh destination; "" for local */
	char profile[256]; /* minikube profile */
	char port[16];	   /* ssh port, "" for the default */
	int sudo;	   /* prefix the node command with "sudo -n" */
	char docker[64];   /* the docker CLI ("docker" when "") */
} ins_runner;

/* "local", "docker exec NODE", "minikube ssh -p P -n N", "ssh HOST". */
void ins_runner_desc(char *out, size_t n, const ins_runner *r);

/* Wrap cmd, a command to run on the node, for the runner's transport. */
int ins_runner_wrap(ins_argv *out, const ins_runner *r, const char *const *cmd, cm_error *err);

/* What a process reads and where its output goes. */
typedef struct ins_proc_io {
	/* stdin: a feeder that writes into fd (then the pipe is closed), a
	 * fixed text, a file, or nothing (/dev/null). */
	int (*feed)(void *ctx, int fd, cm_error *err);
	void *feed_ctx;
	const char *in;
	size_t in_len;
	const char *in_path; /* or this file (opened read-only) */
	cm_buf *out;	     /* stdout, capped by its limit; NULL discards */
	cm_buf *errout;	     /* all of stderr, capped by its limit; may be NULL */
	int inherit_stdout;  /* pass stdout through instead */
	int inherit_stderr;  /* pass stderr through (it is then not quoted in errors) */
	int status;	     /* out: the exit status, or 128+signal */
	char err_tail[1024]; /* out: the last lines of stderr */
} ins_proc_io;

/* Run argv (argv[0] looked up in PATH) and wait. 0 when it exits 0;
 * CM_ENOTFOUND when the program does not exist; CM_EFAIL naming the
 * command, its status and the end of its stderr otherwise. A feeder's
 * error wins over the exit status it causes. */
int ins_proc_run(const char *const *argv, ins_proc_io *io, cm_error *err);

/* Run cmd on the runner's node. */
int ins_runner_run(const ins_runner *r, const char *const *cmd, ins_proc_io *io, cm_error *err);

/* The next line of command output at *p (NUL-terminated in place, blanks
 * trimmed at both ends), advancing *p; NULL at the end. */
char *ins_next_line(char **p);

/* Find prog in PATH (or check it when it holds a '/'); 1 found, 0 not. */
int ins_which(const char *prog, char *out, size_t n);

#endif
