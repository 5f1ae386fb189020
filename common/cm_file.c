#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "cm_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cm_file_read(cm_buf *out, const char *path, size_t limit, cm_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "opening %s", path);
	out->limit = limit;
	char tmp[65536];
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			return cm_error_sys(err, e, "reading %s", path);
		}
		if (n == 0)
			break;
		int rc = cm_buf_append(out, tmp, (size_t)n, err);
		if (rc < 0) {
			close(fd);
			return cm_error_wrap(err, "reading %s", path);
		}
	}
	close(fd);
	if (!out->data) /* empty file: still hand back a string */
		return cm_buf_append(out, "", 0, err);
	return 0;
}

int cm_write_all(int fd, const void *p, size_t n, cm_error *err)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return cm_error_sys(err, errno, "write");
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int cm_read_each(int fd, uint64_t n, int (*fn)(void *ctx, const void *p, size_t n, cm_error *err),
		 void *ctx, uint64_t *out_n, const char *what, cm_error *err)
{
	size_t bufsz = (size_t)1 << 20;
	char *buf = malloc(bufsz);
	int rc = buf ? 0 : cm_error_set(err, CM_ENOMEM, "out of memory");
	uint64_t left = n;
	while (rc == 0 && left > 0) {
		ssize_t k = read(fd, buf, left < bufsz ? (size_t)left : bufsz);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			rc = cm_error_sys(err, errno, "reading %s", what);
		else if (k == 0 && n != CM_READ_TO_END)
			rc = cm_error_set(err, CM_EIO, "%s ended %llu bytes early", what,
					  (unsigned long long)left);
		if (k <= 0)
			break;
		rc = fn(ctx, buf, (size_t)k, err);
		left -= (uint64_t)k;
	}
	free(buf);
	if (out_n)
		*out_n = n - left;
	return rc;
}

int cm_file_mktemp(int *out_fd, char *out_tmp, size_t n, const char *path, cm_error *err)
{
	int len = snprintf(out_tmp, n, "%s.tmp.XXXXXX", path);
	if (len < 0 || (size_t)len >= n)
		return cm_error_set(err, CM_EINVAL, "path too long: %s", path);
	int fd = mkostemp(out_tmp, O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "creating temp file for %s", path);
	*out_fd = fd;
	return 0;
}

int cm_fsync_parent(const char *path, cm_error *err)
{
	char *copy = strdup(path);
	if (!copy)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	const char *dir = dirname(copy);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		free(copy);
		return cm_error_sys(err, e, "opening folder of %s", path);
	}
	int rc = 0;
	if (fsync(fd) < 0 && errno != EINVAL)
		rc = cm_error_sys(err, errno, "fsync of folder of %s", path);
	close(fd);
	free(copy);
	return rc;
}

int cm_file_commit(int fd, const char *tmp, const char *path, cm_error *err)
{
	if (fsync(fd) < 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return cm_error_sys(err, e, "fsync %s", tmp);
	}
	if (close(fd) < 0) {
		int e = errno;
		unlink(tmp);
		return cm_error_sys(err, e, "close %s", tmp);
	}
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return cm_error_sys(err, e, "renaming %s to %s", tmp, path);
	}
	return cm_fsync_parent(path, err);
}

int cm_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, cm_error *err)
{
	char tmp[4096];
	int fd;
	int rc = cm_file_mktemp(&fd, tmp, sizeof(tmp), path, err);
	if (rc < 0)
		return rc;
	if (fchmod(fd, mode) < 0 || (rc = cm_write_all(fd, data, len, err)) < 0) {
		if (rc == 0)
			rc = cm_error_sys(err, errno, "chmod %s", tmp);
		close(fd);
		unlink(tmp);
		return cm_error_wrap(err, "writing %s", path);
	}
	return cm_file_commit(fd, tmp, path, err);
}

int cm_mkdirs(const char *path, cm_error *err)
{
	char buf[4096];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(buf))
		return cm_error_set(err, CM_EINVAL, "bad folder path '%s'", path);
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return cm_error_sys(err, errno, "creating %s", buf);
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return cm_error_sys(err, errno, "creating %s", buf);
	return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void cm_names_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int cm_dir_names(char ***out, size_t *n, const char *dir, cm_error *err)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return cm_error_sys(err, errno, "opening %s", dir);
	char **v = NULL;
	size_t k = 0, cap = 0;
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char **nv = cm_grow(v, k, &cap, sizeof(*v), err);
		if (!nv)
			rc = CM_ENOMEM;
		else if (!((v = nv)[k++] = strdup(e->d_name)))
			rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	closedir(d);
	if (rc < 0) {
		cm_names_free(v, k);
		return rc;
	}
	if (k)
		qsort(v, k, sizeof(*v), cmp_name);
	*out = v;
	*n = k;
	return 0;
}

int cm_rmtree(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
