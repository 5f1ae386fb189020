/* Placing blobs straight into a local containerd's content store (see
 * ins_place.h for why and how the daemon is told). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_file.h"
#include "cm_parse.h"
#include "ins_place.h"
#include "ins_runner.h"
#include "reg_digest.h"

#define PLACE_CHUNK ((size_t)1 << 20)

/* "Key:   value" -> value when line starts with key, else NULL. */
static const char *field(const char *line, const char *key)
{
	size_t k = strlen(key);
	if (strncmp(line, key, k) != 0)
		return NULL;
	line += k;
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

void ins_plugins_parse(ins_plugins *out, char *text)
{
	char type[128] = "", id[128] = "";
	int failed = 0;
	char *p = text, *line;
	const char *v;
	memset(out, 0, sizeof(*out));
	/* a block is Type:, ID:, ...; a plugin that did not load has Error: */
	for (;;) {
		line = ins_next_line(&p);
		if (!line || field(line, "Type:")) {
			if (!failed && strcmp(type, "io.containerd.snapshotter.v1") == 0) {
				out->overlayfs_ok |= strcmp(id, "overlayfs") == 0;
				out->native_ok |= strcmp(id, "native") == 0;
			}
			if (!line)
				break;
			snprintf(type, sizeof(type), "%s", field(line, "Type:"));
			id[0] = '\0';
			failed = 0;
		} else if ((v = field(line, "ID:"))) {
			snprintf(id, sizeof(id), "%s", v);
		} else if (field(line, "Error:")) {
			failed = 1;
		} else if (strcmp(type, "io.containerd.content.v1") == 0 &&
			   strcmp(id, "content") == 0 && (v = field(line, "root")) && *v == '/') {
			snprintf(out->content_root, sizeof(out->content_root), "%s", v);
		} else if (strcmp(type, "io.containerd.metadata.v1") == 0 &&
			   strcmp(id, "bolt") == 0 && (v = field(line, "policy")) && *v) {
			snprintf(out->policy, sizeof(out->policy), "%s", v);
		}
	}
}

int ins_place_usable(char *why, size_t why_n, const ins_plugins *p)
{
	if (!p->content_root[0]) {
		snprintf(why, why_n, "the daemon shows no content root");
		return 0;
	}
	if (p->policy[0] && strcmp(p->policy, "shared") != 0) {
		snprintf(why, why_n, "the daemon's content sharing policy is \"%s\"", p->policy);
		return 0;
	}
	return 1;
}

/* Remove the temp folders of killed runs (ferry-place.<pid> whose process
 * is gone). */
static void sweep(const char *root)
{
	DIR *d = opendir(root);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		long pid;
		char path[PATH_MAX];
		if (strncmp(e->d_name, "ferry-place.", 12) != 0 ||
		    cm_parse_long(&pid, e->d_name + 12, 1, INT_MAX) < 0 ||
		    (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", root, e->d_name) < (int)sizeof(path))
			cm_rmtree(path);
	}
	closedir(d);
}

static int place_open(ins_place *p, const char *root, cm_error *err)
{
	char blobs[PATH_MAX];
	struct stat st;
	if (snprintf(blobs, sizeof(blobs), "%s/blobs/sha256", root) >= (int)sizeof(blobs) ||
	    snprintf(p->tmp, sizeof(p->tmp), "%s/ferry-place.%ld", root, (long)getpid()) >=
		(int)sizeof(p->tmp) ||
	    snprintf(p->empty, sizeof(p->empty), "%s/empty", p->tmp) >= (int)sizeof(p->empty))
		return cm_error_set(err, CM_EINVAL, "content root path too long: %s", root);
	if (stat(root, &st) < 0)
		return cm_error_sys(err, errno, "content root %s", root);
	if (!S_ISDIR(st.st_mode))
		return cm_error_set(err, CM_EINVAL, "content root %s is not a folder", root);
	if (access(root, W_OK) < 0)
		return cm_error_sys(err, errno, "content root %s", root);
	int rc = cm_mkdirs(blobs, err);
	if (rc < 0)
		return rc;
	sweep(root);
	cm_rmtree(p->tmp); /* a temp folder of a killed run with our pid */
	if (mkdir(p->tmp, 0700) < 0)
		return cm_error_sys(err, errno, "creating %s", p->tmp);
	int fd = open(p->empty, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0) {
		rc = cm_error_sys(err, errno, "creating %s", p->empty);
		rmdir(p->tmp);
		return rc;
	}
	close(fd);
	snprintf(p->root, sizeof(p->root), "%s", root);
	return 0;
}

int ins_place_open(ins_place *p, const char *root, cm_error *err)
{
	memset(p, 0, sizeof(*p));
	int rc = place_open(p, root, err);
	if (rc < 0)
		memset(p, 0, sizeof(*p));
	return rc;
}

static void blob_path(char *out, size_t n, const ins_place *p, const char *hex)
{
	snprintf(out, n, "%s/blobs/sha256/%s", p->root, hex);
}

/* 1 when the store holds a regular file of that size under hex. */
static int held(const ins_place *p, const char *hex, uint64_t size)
{
	char path[PATH_MAX + 96];
	struct stat st;
	blob_path(path, sizeof(path), p, hex);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size;
}

/* The blob hex of size bytes, from r or else data: into a temp file of
 * ours, then renamed into blobs/sha256 (cm_file_commit). */
static int place(int *placed, const ins_place *p, const char *hex, uint64_t size, reg_reader *r,
		 const void *data, cm_error *err)
{
	*placed = 0;
	if (held(p, hex, size))
		return 0;
	if (!p->root[0])
		return cm_error_set(err, CM_EINVAL, "placing is off");
	char tmp[PATH_MAX + 96], path[PATH_MAX + 96];
	snprintf(tmp, sizeof(tmp), "%s/%s", p->tmp, hex);
	unlink(tmp); /* left by a failed attempt */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		return cm_error_sys(err, errno, "creating %s", tmp);
	int rc = r ? reg_reader_to_fd(r, fd, err) : cm_write_all(fd, data, (size_t)size, err);
	if (rc < 0) {
		close(fd);
		unlink(tmp);
		return rc;
	}
	blob_path(path, sizeof(path), p, hex);
	if ((rc = cm_file_commit(fd, tmp, path, err)) == 0)
		*placed = 1;
	return rc;
}

int ins_place_bytes(int *placed, const ins_place *p, const char *hex, const void *data, size_t n,
		    cm_error *err)
{
	return place(placed, p, hex, n, NULL, data, err);
}

int ins_place_reader(int *placed, const ins_place *p, reg_reader *r, cm_error *err)
{
	const reg_desc *d = reg_reader_desc(r);
	return place(placed, p, REG_DIGEST_HEX(&d->digest), d->size, r, NULL, err);
}

void ins_place_unlink(const ins_place *p, const char *hex)
{
	char path[PATH_MAX + 96];
	if (!p->root[0])
		return;
	blob_path(path, sizeof(path), p, hex);
	unlink(path);
}

void ins_place_close(ins_place *p)
{
	if (!p || !p->tmp[0])
		return;
	cm_rmtree(p->tmp);
	memset(p, 0, sizeof(*p));
}

/* ---- the content store as a destination ---- */

void ins_pipe_big(int fd)
{
#ifdef F_SETPIPE_SZ
	(void)fcntl(fd, F_SETPIPE_SZ, (int)PLACE_CHUNK);
#else
	(void)fd;
#endif
}

int ins_place_ingest(const ins_place *p, const ins_ingest *ing, reg_reader *r, const char *hex,
		     const char *ref, const void *data, size_t n, cm_error *err)
{
	char say[PATH_MAX + 160];
	if (snprintf(say, sizeof(say), " < (empty file: the blob was %s %s/blobs/sha256)",
		     ins_ctx_word(ing->c, "placed in", "to be placed in"),
		     p->root) >= (int)sizeof(say))
		return cm_error_set(err, CM_EINVAL, "content root path too long: %s", p->root);
	int placed = 0, rc = 0;
	cm_error e = {0};
	if (ins_ctx_acts(ing->c))
		rc = r ? ins_place_reader(&placed, p, r, &e)
		       : ins_place_bytes(&placed, p, hex, data, n, &e);
	if (rc == CM_EVERIFY) {
		*err = e;
		return rc;
	}
	if (rc == 0) {
		ins_proc_io io = {.in_path = p->empty};
		if ((rc = ing->run(ing->ctx, hex, r ? reg_reader_desc(r)->size : n, ref, &io, say,
				   &e)) == 0)
			return 1;
		if (placed)
			ins_place_unlink(p, hex);
	}
	if (ing->note) {
		char msg[CM_ERROR_MAX + 160];
		snprintf(msg, sizeof(msg),
			 "sha256:%.64s not placed in the content store (%s); streaming it", hex,
			 e.msg);
		ing->note(ing->ctx, msg);
	}
	return 0;
}

typedef struct ctr_dest {
	reg_dest base;
	const ins_place *p;
	const ins_ingest *ing;
	pthread_mutex_t mu;
	size_t placed;
} ctr_dest;

static int pipe_sink(void *ctx, const void *p, size_t n, cm_error *err)
{
	return cm_write_all(*(int *)ctx, p, n, err);
}

/* stdin of a streaming ingest: the blob, from its reader */
static int feed_reader(void *ctx, int fd, cm_error *err)
{
	ins_pipe_big(fd);
	int rc = reg_reader_pump(ctx, pipe_sink, &fd, err);
	/* ctr stopped reading: it holds the blob already (exit 0) or failed
	 * (its exit status says why) */
	if (rc < 0 && err->sys_errno == EPIPE) {
		cm_error_clear(err);
		rc = 0;
	}
	return rc;
}

static int cd_put_blob(reg_dest *dst, reg_reader *r, cm_error *err)
{
	ctr_dest *c = (ctr_dest *)dst;
	const reg_desc *d = reg_reader_desc(r);
	const char *hex = REG_DIGEST_HEX(&d->digest);
	int rc;
	if (c->p->root[0]) {
		if ((rc = ins_place_ingest(c->p, c->ing, r, hex, NULL, NULL, 0, err)) < 0)
			return cm_error_wrap(err, "placing %s in the content store", d->digest.s);
		if (rc > 0) {
			pthread_mutex_lock(&c->mu);
			c->placed++;
			pthread_mutex_unlock(&c->mu);
			return 0;
		}
		if ((rc = reg_reader_rewind(r, err)) < 0)
			return rc;
	}
	ins_proc_io io = {.feed = feed_reader, .feed_ctx = r};
	rc = c->ing->run(c->ing->ctx, hex, d->size, NULL, &io, " < (blob streamed from the bundle)",
			 err);
	return rc < 0 ? cm_error_wrap(err, "streaming %s into the content store", d->digest.s) : 0;
}

static void cd_free(reg_dest *dst)
{
	ctr_dest *c = (ctr_dest *)dst;
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static const struct reg_dest_ops ctr_ops = {
    "containerd content store", NULL, cd_put_blob, NULL, NULL, NULL, NULL, cd_free};

int ins_ctr_dest_open(reg_dest **out, const ins_place *p, const ins_ingest *ing, unsigned jobs,
		      cm_error *err)
{
	ctr_dest *c = calloc(1, sizeof(*c));
	if (!c)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c);
		return cm_error_set(err, CM_ENOMEM, "cannot create a mutex");
	}
	c->base.ops = &ctr_ops;
	c->base.jobs = ins_ctx_acts(ing->c) ? jobs : 1;
	c->p = p;
	c->ing = ing;
	snprintf(c->base.where, sizeof(c->base.where), "the content store%s%.900s",
		 p->root[0] ? " at " : "", p->root);
	*out = &c->base;
	return 0;
}

size_t ins_ctr_dest_placed(const reg_dest *d)
{
	return ((const ctr_dest *)d)->placed;
}
