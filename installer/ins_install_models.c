/* Step 4: place the bundle's model files under --models-dir as
 * <name>/<version>/<file>, each checked against its sha256 while it is
 * copied (temp file, fsync, rename). A file already in place is skipped:
 * when an xattr written with it still matches its size and mtime, without
 * reading it again; otherwise after hashing it. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cm_file.h"
#include "ins_install.h"
#include "reg_digest.h"

#define BUF (1u << 20)
#define XATTR "user.ferry.sha256"

static void stamp(char *out, size_t n, const char *hex, const struct stat *sb)
{
	snprintf(out, n, "%s %lld %lld.%09ld", hex, (long long)sb->st_size,
		 (long long)sb->st_mtim.tv_sec, sb->st_mtim.tv_nsec);
}

/* 1 when path already holds the member's bytes. */
static int in_place(const char *path, const ins_member *m, cm_error *err)
{
	struct stat sb;
	if (stat(path, &sb) < 0)
		return errno == ENOENT ? 0 : cm_error_sys(err, errno, "stat %s", path);
	if (!S_ISREG(sb.st_mode))
		return cm_error_set(err, CM_EINVAL, "%s exists and is not a regular file", path);
	if ((uint64_t)sb.st_size != m->size)
		return 0;
	char want[200], have[200];
	stamp(want, sizeof(want), m->hex, &sb);
	ssize_t l = getxattr(path, XATTR, have, sizeof(have) - 1);
	if (l > 0) {
		have[l] = '\0';
		if (strcmp(have, want) == 0)
			return 1;
	}
	reg_digest d;
	uint64_t size;
	int rc = reg_digest_file(&d, &size, path, err);
	if (rc < 0)
		return rc;
	if (strcmp(REG_DIGEST_HEX(&d), m->hex) != 0)
		return 0;
	setxattr(path, XATTR, want, strlen(want), 0); /* best effort */
	return 1;
}

static int place(const ins_bundle *b, const ins_member *m, const char *path, cm_error *err)
{
	char dir[PATH_MAX], tmp[PATH_MAX + 32];
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	int rc = cm_mkdirs(dir, err), fd = -1;
	if (rc == 0)
		rc = cm_file_mktemp(&fd, tmp, sizeof(tmp), path, err);
	if (rc < 0)
		return rc;
	rc = ins_bundle_copy_member(fd, b, m, err);
	if (rc == 0 && fchmod(fd, 0644) < 0)
		rc = cm_error_sys(err, errno, "chmod %s", tmp);
	if (rc < 0) {
		close(fd);
		unlink(tmp);
		return rc;
	}
	if ((rc = cm_file_commit(fd, tmp, path, err)) < 0)
		return rc;
	struct stat sb;
	char st[200];
	if (stat(path, &sb) == 0) {
		stamp(st, sizeof(st), m->hex, &sb);
		setxattr(path, XATTR, st, strlen(st), 0);
	}
	return 0;
}

int ins_install_models(ins_step_report *rep, const ins_ctx *c, const ins_bundle *b, const char *dir,
		       cm_error *err)
{
	double t0 = ins_now();
	int rc = 0;
	for (size_t i = 0; i < b->n_models && rc == 0; i++) {
		const ins_file *f = &b->models[i];
		/* models/<name>/<version>/<file...>: member names were checked when
		 * the bundle was verified (no "..", no absolute paths) */
		const char *rest = f->path + 7;
		rest = strchr(rest, '/');
		rest = rest ? strchr(rest + 1, '/') : NULL;
		if (!rest) {
			rc = cm_error_set(err, CM_EVERIFY, "bad model member %s", f->path);
			break;
		}
		char path[PATH_MAX];
		int l = snprintf(path, sizeof(path), "%s/%s/%s%s", dir, f->name, f->version, rest);
		if (l < 0 || (size_t)l >= sizeof(path)) {
			rc = cm_error_set(err, CM_EINVAL, "path too long under %s", dir);
			break;
		}
		int have = in_place(path, f->m, err);
		if (have < 0) {
			rc = have;
			break;
		}
		if (have) {
			rep->skipped++;
			ins_ctx_say(c, INS_SAY_INFO, "%s: present (sha256 %.12s...), skipped", path,
				    f->m->hex);
			continue;
		}
		if (ins_ctx_change(c, "place %s (%llu bytes, sha256 %.12s...)", path,
				   (unsigned long long)f->m->size, f->m->hex) &&
		    (rc = place(b, f->m, path, err)) < 0) {
			cm_error_wrap(err, "model %s:%s", f->name, f->version);
			break;
		}
		rep->done++;
		rep->bytes += f->m->size;
	}
	rep->secs = ins_now() - t0;
	snprintf(rep->note, sizeof(rep->note), "into %.240s", dir);
	return rc;
}

/* A short string without control characters (bundle.json is signed, but
 * a terminal is no place for escapes). */
static int printable(const char *s)
{
	if (!s || strlen(s) > REG_REF_MAX)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

void ins_say_storage_uris(const ins_ctx *c, const ins_bundle *b)
{
	json_t *j = json_loadb(b->bundle_json, b->bundle_json_len, 0, NULL);
	json_t *v, *a = json_object_get(j, "modelArtifacts");
	size_t i;
	json_array_foreach(a, i, v)
	{
		const char *ref =
		    json_string_value(json_object_get(json_object_get(v, "modelcar"), "ref"));
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *ver = json_string_value(json_object_get(v, "version"));
		if (printable(ref) && printable(name) && printable(ver))
			ins_ctx_say(c, INS_SAY_INFO, "model %s %s: KServe storageUri oci://%s",
				    name, ver, ref);
	}
	json_decref(j);
}
