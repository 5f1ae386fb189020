#include "reg_source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int resolve_path(char *out, size_t n, const char *p, const char *base_dir, cm_error *err)
{
	int len = (p[0] == '/' || !base_dir || !*base_dir) ? snprintf(out, n, "%s", p)
							   : snprintf(out, n, "%s/%s", base_dir, p);
	if (len < 0 || (size_t)len >= n)
		return cm_error_set(err, CM_EINVAL, "path too long: %.100s", p);
	return 0;
}

int reg_source_open(reg_source **out, const char *from, const char *base_dir, reg_store *store,
		    cm_error *err)
{
	char path[4096];
	int rc;
	if (strncmp(from, "oci-layout:", 11) == 0) {
		const char *rest = from + 11;
		/* DIR[:TAG]: the tag is after the last ':' that follows the last '/' */
		const char *slash = strrchr(rest, '/');
		const char *colon = strrchr(slash ? slash : rest, ':');
		char dir[4096], tag[256] = "";
		size_t dl = colon ? (size_t)(colon - rest) : strlen(rest);
		if (dl == 0 || dl >= sizeof(dir))
			return cm_error_set(err, CM_EINVAL, "bad source '%.200s': folder missing",
					    from);
		memcpy(dir, rest, dl);
		dir[dl] = '\0';
		if (colon)
			snprintf(tag, sizeof(tag), "%s", colon + 1);
		if ((rc = resolve_path(path, sizeof(path), dir, base_dir, err)) < 0)
			return rc;
		return reg_source_oci_open(out, path, tag[0] ? tag : NULL, err);
	}
	if (strncmp(from, "docker-archive:", 15) == 0) {
		if ((rc = resolve_path(path, sizeof(path), from + 15, base_dir, err)) < 0)
			return rc;
		return reg_source_docker_archive_open(out, path, store, err);
	}
	return cm_error_set(err, CM_EINVAL,
			    "unknown image source '%.200s' (want oci-layout:DIR[:TAG] or "
			    "docker-archive:FILE)",
			    from);
}

int reg_source_store_blob(reg_reader **out, reg_store *st, const reg_desc *d, cm_error *err)
{
	int fd;
	uint64_t size;
	int rc = reg_store_open_blob(&fd, &size, st, &d->digest, 0, err);
	return rc < 0 ? rc : reg_reader_fd(out, d, fd, size, err);
}

void reg_source_free(reg_source *s)
{
	if (s && s->ops->free)
		s->ops->free(s);
	else
		free(s);
}
