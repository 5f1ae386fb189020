/* Placing blobs straight into a local containerd's content store (see
 * ins_place.h for why and how the daemon is told). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

static int begin(int *fd, char *tmp, size_t n, const ins_place *p, const char *hex, cm_error *err)
{
	if (!p->root[0])
		return cm_error_set(err, CM_EINVAL, "placing is off");
	snprintf(tmp, n, "%s/%s", p->tmp, hex);
	unlink(tmp); /* left by a failed attempt */
	*fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (*fd < 0)
		return cm_error_sys(err, errno, "creating %s", tmp);
	return 0;
}

static int finish(int fd, const char *tmp, const ins_place *p, const char *hex, cm_error *err)
{
	char path[PATH_MAX + 96];
	blob_path(path, sizeof(path), p, hex);
	return cm_file_commit(fd, tmp, path, err);
}

static void discard(int fd, const char *tmp)
{
	close(fd);
	unlink(tmp);
}

int ins_place_bytes(int *placed, const ins_place *p, const char *hex, const void *data, size_t n,
		    cm_error *err)
{
	*placed = 0;
	if (held(p, hex, n))
		return 0;
	char tmp[PATH_MAX + 96];
	int fd;
	int rc = begin(&fd, tmp, sizeof(tmp), p, hex, err);
	if (rc < 0)
		return rc;
	if ((rc = cm_write_all(fd, data, n, err)) < 0) {
		discard(fd, tmp);
		return rc;
	}
	if ((rc = finish(fd, tmp, p, hex, err)) == 0)
		*placed = 1;
	return rc;
}

int ins_place_member(int *placed, const ins_place *p, const ins_bundle *b, const ins_member *m,
		     cm_error *err)
{
	*placed = 0;
	if (held(p, m->hex, m->size))
		return 0;
	char tmp[PATH_MAX + 96];
	int fd;
	int rc = begin(&fd, tmp, sizeof(tmp), p, m->hex, err);
	if (rc < 0)
		return rc;
	rc = ins_bundle_copy_member(fd, b, m, err);
	if (rc < 0) {
		discard(fd, tmp);
		return rc;
	}
	if ((rc = finish(fd, tmp, p, m->hex, err)) == 0)
		*placed = 1;
	return rc;
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
