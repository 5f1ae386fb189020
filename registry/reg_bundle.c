#include "reg_bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reg_digest.h"

#define READ_BLOCK (4u << 20)
/* Without hashing only headers are read and data is skipped by seeking:
 * a big block would copy megabytes per header for nothing. */
#define INDEX_BLOCK (64u << 10)

int reg_bundle_rank(const char *p)
{
	static const char *fixed[] = {REG_BUNDLE_SUMS, REG_BUNDLE_SIG, REG_BUNDLE_JSON,
				      "oci-layout", "index.json"};
	for (int i = 0; i < 5; i++)
		if (strcmp(p, fixed[i]) == 0)
			return i;
	if (strncmp(p, "blobs/", 6) == 0 || strcmp(p, "blobs") == 0)
		return 5;
	if (strncmp(p, "manifests/", 10) == 0 || strcmp(p, "manifests") == 0)
		return 6;
	if (strncmp(p, "models/", 7) == 0 || strcmp(p, "models") == 0)
		return 7;
	return -1;
}

static int name_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("._-+@:=,/", c) != NULL;
}

int reg_bundle_check_name(const char *p, cm_error *err)
{
	size_t n = strlen(p);
	if (n == 0)
		return cm_error_set(err, CM_EVERIFY, "empty member name");
	if (n > REG_BUNDLE_NAME_MAX)
		return cm_error_set(err, CM_EVERIFY, "member name of %zu bytes is too long", n);
	if (p[0] == '/')
		return cm_error_set(err, CM_EVERIFY, "unsafe member '%.200s': absolute path", p);
	for (size_t i = 0; i < n; i++)
		if (!name_char_ok((unsigned char)p[i]))
			return cm_error_set(err, CM_EVERIFY,
					    "unsafe member '%.200s': character 0x%02x not allowed",
					    p, (unsigned char)p[i]);
	/* components: none empty (except a trailing '/' of a folder), none "." or ".." */
	const char *c = p;
	while (*c) {
		const char *e = strchr(c, '/');
		size_t l = e ? (size_t)(e - c) : strlen(c);
		if (l == 0)
			return cm_error_set(err, CM_EVERIFY,
					    "unsafe member '%.200s': empty component", p);
		if ((l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
			return cm_error_set(err, CM_EVERIFY,
					    "unsafe member '%.200s': '%.*s' component", p, (int)l,
					    c);
		if (!e)
			break;
		c = e + 1;
	}
	return 0;
}

int reg_bundle_sums_line(cm_buf *b, const char *path, const char *hex, cm_error *err)
{
	return cm_buf_appendf(b, err, "SHA256 (%s) = %s\n", path, hex);
}

typedef struct sums_entry {
	char *path; /* points into the sums copy */
	const char *hex;
	int seen;
} sums_entry;

typedef struct sums {
	char *text; /* owned, modified in place */
	sums_entry *e;
	size_t n;
} sums;

static void sums_free(sums *s)
{
	free(s->text);
	free(s->e);
}

static int parse_sums(sums *out, const char *data, size_t len, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (len == 0 || data[len - 1] != '\n')
		return cm_error_set(err, CM_EVERIFY, "SHA256SUMS: empty or missing final newline");
	out->text = malloc(len + 1);
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += data[i] == '\n';
	out->e = calloc(lines, sizeof(sums_entry));
	if (!out->text || !out->e) {
		sums_free(out);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	memcpy(out->text, data, len);
	out->text[len] = '\0';
	char *line = out->text;
	for (size_t ln = 1; *line; ln++) {
		char *nl = strchr(line, '\n');
		*nl = '\0';
		size_t l = strlen(line);
		/* "SHA256 (" path ") = " 64hex */
		if (l < 8 + 4 + 64 + 1 || strncmp(line, "SHA256 (", 8) != 0 ||
		    strncmp(line + l - 64 - 4, ") = ", 4) != 0) {
			sums_free(out);
			return cm_error_set(err, CM_EVERIFY, "SHA256SUMS line %zu: malformed", ln);
		}
		char *path = line + 8;
		line[l - 64 - 4] = '\0';
		const char *hex = line + l - 64;
		reg_digest d;
		int rc = reg_bundle_check_name(path, err);
		if (rc == 0 && reg_bundle_rank(path) < 2)
			rc = cm_error_set(err, CM_EVERIFY, "member '%s' may not be listed", path);
		if (rc == 0)
			rc = reg_digest_from_hex(&d, hex, err) < 0 ? CM_EVERIFY : 0;
		if (rc == 0 && out->n && strcmp(out->e[out->n - 1].path, path) >= 0)
			rc = cm_error_set(err, CM_EVERIFY, "'%s' is out of order or listed twice",
					  path);
		/* a blob's name is its digest */
		if (rc == 0 && strncmp(path, "blobs/", 6) == 0 &&
		    (strncmp(path, "blobs/sha256/", 13) != 0 || strcmp(path + 13, hex) != 0))
			rc = cm_error_set(err, CM_EVERIFY,
					  "blob '%s' is not named by its digest %s", path, hex);
		if (rc < 0) {
			sums_free(out);
			return cm_error_wrap(err, "SHA256SUMS line %zu", ln);
		}
		out->e[out->n].path = path;
		out->e[out->n].hex = hex;
		out->n++;
		line = nl + 1;
	}
	return 0;
}

static sums_entry *sums_find(sums *s, const char *path)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->e[mid].path, path);
		if (c == 0)
			return &s->e[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Read the whole current member into b (capped). */
static int read_member(cm_buf *b, struct archive *a, const char *name, size_t cap, cm_error *err)
{
	const void *p;
	size_t len;
	int64_t off;
	int r;
	b->limit = cap;
	while ((r = archive_read_data_block(a, &p, &len, &off)) == ARCHIVE_OK)
		if (cm_buf_append(b, p, len, err) < 0)
			return cm_error_set(err, CM_EVERIFY, "member %s is larger than %zu bytes",
					    name, cap);
	if (r != ARCHIVE_EOF)
		return cm_error_set(err, CM_EVERIFY, "member %s: %s (truncated bundle?)", name,
				    archive_error_string(a));
	if (!b->data)
		cm_buf_append(b, "", 0, err);
	return 0;
}

static int check_entry(struct archive_entry *e, const char *name, int *out_is_dir, cm_error *err)
{
	int rc = reg_bundle_check_name(name, err);
	if (rc < 0)
		return rc;
	mode_t t = archive_entry_filetype(e);
	if (archive_entry_hardlink(e) || archive_entry_symlink(e) || t == AE_IFLNK)
		return cm_error_set(err, CM_EVERIFY, "member '%s' is a link; links are not allowed",
				    name);
	if (t != AE_IFREG && t != AE_IFDIR)
		return cm_error_set(err, CM_EVERIFY,
				    "member '%s' is not a regular file or folder (type 0%o)", name,
				    (unsigned)t);
	if (t == AE_IFREG && archive_entry_sparse_count(e) > 0)
		return cm_error_set(err, CM_EVERIFY, "member '%s' is a sparse file", name);
	*out_is_dir = t == AE_IFDIR;
	return 0;
}

/* A compressed bundle, by its magic number, or NULL. */
static const char *compression(int fd)
{
	unsigned char h[6] = {0};
	ssize_t n = pread(fd, h, sizeof(h), 0);
	if (n >= 2 && h[0] == 0x1f && h[1] == 0x8b)
		return "gzip";
	if (n >= 4 && h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd)
		return "zstd";
	if (n >= 6 && memcmp(h,
			     "\xfd"
			     "7zXZ\0",
			     6) == 0)
		return "xz";
	if (n >= 3 && memcmp(h, "BZh", 3) == 0)
		return "bzip2";
	return NULL;
}

/* After the last member: the end-of-archive marker (two zero blocks) must
 * be there in full, and only zeros may follow it (tar writers pad to
 * their record size). Anything else is a truncated file or data smuggled
 * past the end, where `tar -i` would find it. */
static int check_trailer(int fd, uint64_t from, uint64_t file_size, const char *last, cm_error *err)
{
	if (from > file_size || file_size - from < 1024)
		return cm_error_set(
		    err, CM_EVERIFY,
		    "truncated bundle: the end-of-archive marker after member '%s' is "
		    "incomplete",
		    last);
	if (file_size - from > ((uint64_t)1 << 20))
		return cm_error_set(
		    err, CM_EVERIFY,
		    "unexpected data after the end of the archive (%llu bytes after "
		    "member '%s')",
		    (unsigned long long)(file_size - from), last);
	char buf[65536];
	uint64_t off = from;
	while (off < file_size) {
		size_t want =
		    file_size - off < sizeof(buf) ? (size_t)(file_size - off) : sizeof(buf);
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? cm_error_sys(err, errno, "reading the end of the bundle")
				     : cm_error_set(err, CM_EVERIFY,
						    "truncated bundle after member '%s'", last);
		for (ssize_t i = 0; i < n; i++)
			if (buf[i])
				return cm_error_set(err, CM_EVERIFY,
						    "unexpected data after the end of the archive "
						    "(after member '%s', at byte %llu)",
						    last, (unsigned long long)(off + (uint64_t)i));
		off += (uint64_t)n;
	}
	return 0;
}

int reg_bundle_scan(reg_bundle_stats *out, const char *path, const reg_bundle_opts *o,
		    cm_error *err)
{
	reg_bundle_stats st = {0, 0, 0};
	struct archive *a = NULL;
	struct archive_entry *e;
	cm_buf sumsbuf = CM_BUF_INIT, sigbuf = CM_BUF_INIT, jbuf = CM_BUF_INIT;
	sums S = {NULL, NULL, 0};
	reg_hasher *h = NULL;
	int rc = 0, r;
	/* where the last member seen ends (data padded to 512), and its name */
	uint64_t last_end = 0;
	char last[REG_BUNDLE_NAME_MAX + 1] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_error_sys(err, errno, "opening bundle %s", path);
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return cm_error_set(err, CM_EINVAL, "%s is not a regular file", path);
	}
	st.file_size = (uint64_t)sb.st_size;
	if (o->hash_data)
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	const char *z = compression(fd);
	if (z) {
		rc = cm_error_set(err, CM_EVERIFY,
				  "not an uncompressed tar bundle: the file is %s-compressed "
				  "(decompress it first; bundles are never compressed)",
				  z);
		goto out;
	}
	if (st.file_size < 512) {
		rc = cm_error_set(
		    err, CM_EVERIFY,
		    "truncated bundle: %llu bytes is too short for the first member %s",
		    (unsigned long long)st.file_size, REG_BUNDLE_SUMS);
		goto out;
	}
	if ((rc = reg_hasher_new(&h, err)) < 0)
		goto out;
	a = archive_read_new();
	archive_read_support_format_tar(a);
	archive_read_support_filter_none(a);
	if (archive_read_open_fd(a, fd, o->hash_data ? READ_BLOCK : INDEX_BLOCK) != ARCHIVE_OK) {
		rc = cm_error_set(err, CM_EVERIFY, "not an uncompressed tar bundle: %s",
				  archive_error_string(a));
		goto out;
	}
	/* 1. SHA256SUMS and 2. its signature, before anything else is trusted */
	static const char *first[2] = {REG_BUNDLE_SUMS, REG_BUNDLE_SIG};
	cm_buf *firstbuf[2] = {&sumsbuf, &sigbuf};
	size_t firstcap[2] = {REG_BUNDLE_SUMS_MAX, 1024};
	for (int i = 0; i < 2; i++) {
		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF) {
			rc = cm_error_set(err, CM_EVERIFY, "missing member %s (empty bundle)",
					  first[i]);
			goto out;
		}
		if (r != ARCHIVE_OK && i == 0) {
			rc = cm_error_set(err, CM_EVERIFY,
					  "not an uncompressed tar bundle: %s (compressed or split "
					  "bundles must be decompressed or joined first)",
					  archive_error_string(a));
			goto out;
		}
		if (r != ARCHIVE_OK) {
			rc = cm_error_set(err, CM_EVERIFY,
					  "member %s: %s (truncated bundle after %s)", first[i],
					  archive_error_string(a), first[i - 1]);
			goto out;
		}
		const char *name = archive_entry_pathname(e);
		if (!name || strcmp(name, first[i]) != 0 || archive_entry_filetype(e) != AE_IFREG) {
			rc = cm_error_set(err, CM_EVERIFY,
					  "member %d is '%.200s', expected %s (wrong order)", i + 1,
					  name ? name : "?", first[i]);
			goto out;
		}
		uint64_t data_at = (uint64_t)archive_filter_bytes(a, 0);
		if ((rc = read_member(firstbuf[i], a, first[i], firstcap[i], err)) < 0)
			goto out;
		last_end = data_at + ((firstbuf[i]->len + 511) & ~(uint64_t)511);
		snprintf(last, sizeof(last), "%s", first[i]);
	}
	if (o->check_sig && (rc = o->check_sig(o->ctx, sumsbuf.data, sumsbuf.len, sigbuf.data,
					       sigbuf.len, err)) < 0) {
		cm_error_wrap(err, "%s", REG_BUNDLE_SIG);
		rc = CM_EVERIFY;
		err->code = rc;
		goto out;
	}
	if ((rc = parse_sums(&S, sumsbuf.data, sumsbuf.len, err)) < 0)
		goto out;
	cm_buf_free(&sigbuf);

	/* 3. everything else, in rank order, each hashed while streaming */
	int last_rank = 2;
	int have_json = 0;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		int is_dir = 0;
		if (!name) {
			rc = cm_error_set(err, CM_EVERIFY, "member without a name");
			goto out;
		}
		if ((rc = check_entry(e, name, &is_dir, err)) < 0)
			goto out;
		int rank = reg_bundle_rank(name);
		if (rank < 0) {
			rc = cm_error_set(err, CM_EVERIFY,
					  "member '%s' is not part of the bundle format", name);
			goto out;
		}
		if (rank < 2 || rank < last_rank) {
			rc = cm_error_set(
			    err, CM_EVERIFY,
			    "member '%s' is out of order (wrong order): it must come before "
			    "'%s'",
			    name, last);
			goto out;
		}
		last_rank = rank;
		uint64_t data_at = (uint64_t)archive_filter_bytes(a, 0);
		uint64_t esize = archive_entry_size_is_set(e) && archive_entry_size(e) > 0
				     ? (uint64_t)archive_entry_size(e)
				     : 0;
		last_end = data_at + ((esize + 511) & ~(uint64_t)511);
		snprintf(last, sizeof(last), "%s", name);
		if (is_dir)
			continue;
		sums_entry *se = sums_find(&S, name);
		if (!se) {
			rc = cm_error_set(err, CM_EVERIFY,
					  "extra member '%s' is not listed in SHA256SUMS", name);
			goto out;
		}
		if (se->seen) {
			rc = cm_error_set(err, CM_EVERIFY, "member '%s' appears twice", name);
			goto out;
		}
		se->seen = 1;
		have_json |= rank == 2;
		reg_bundle_member m = {name, data_at, esize, se->hex, 0};
		int want_json = rank == 2 && o->bundle_json;
		if (want_json)
			jbuf.limit = REG_BUNDLE_JSON_MAX;
		if (o->hash_data || rank <= 4) {
			const void *p;
			size_t len;
			int64_t off;
			uint64_t got = 0;
			reg_hasher_reset(h);
			while ((r = archive_read_data_block(a, &p, &len, &off)) == ARCHIVE_OK) {
				reg_hasher_update(h, p, len);
				got += len;
				if (want_json && (rc = cm_buf_append(&jbuf, p, len, err)) < 0) {
					rc = cm_error_set(err, CM_EVERIFY,
							  "bundle.json exceeds %zu bytes",
							  REG_BUNDLE_JSON_MAX);
					goto out;
				}
			}
			if (r != ARCHIVE_EOF) {
				rc = cm_error_set(err, CM_EVERIFY,
						  "member '%s': %s (truncated bundle)", name,
						  archive_error_string(a));
				goto out;
			}
			reg_digest d;
			reg_hasher_final(h, &d);
			st.bytes_hashed += got;
			if (strcmp(REG_DIGEST_HEX(&d), se->hex) != 0) {
				rc = cm_error_set(
				    err, CM_EVERIFY,
				    "digest mismatch in member '%s': SHA256SUMS says %s, "
				    "content hashes to %s",
				    name, se->hex, REG_DIGEST_HEX(&d));
				goto out;
			}
			m.verified = 1;
		} else if (archive_read_data_skip(a) != ARCHIVE_OK) {
			rc = cm_error_set(err, CM_EVERIFY, "member '%s': %s (truncated bundle)",
					  name, archive_error_string(a));
			goto out;
		}
		st.members++;
		if (o->on_member && (rc = o->on_member(o->ctx, &m, err)) < 0)
			goto out;
	}
	if (r != ARCHIVE_EOF) {
		rc = cm_error_set(err, CM_EVERIFY,
				  "reading the member after '%s': %s (truncated or corrupt bundle)",
				  last, archive_error_string(a));
		goto out;
	}
	if (!have_json) {
		rc = cm_error_set(err, CM_EVERIFY, "missing member %s", REG_BUNDLE_JSON);
		goto out;
	}
	for (size_t i = 0; i < S.n; i++)
		if (!S.e[i].seen) {
			rc =
			    cm_error_set(err, CM_EVERIFY,
					 "missing member '%s' (listed in SHA256SUMS)", S.e[i].path);
			goto out;
		}
	if ((rc = check_trailer(fd, last_end, st.file_size, last, err)) < 0)
		goto out;
	if (o->bundle_json) {
		cm_buf_free(o->bundle_json);
		*o->bundle_json = jbuf;
		jbuf.data = NULL;
	}
out:
	if (a)
		archive_read_free(a);
	close(fd);
	reg_hasher_free(h);
	sums_free(&S);
	cm_buf_free(&sumsbuf);
	cm_buf_free(&sigbuf);
	cm_buf_free(&jbuf);
	if (out)
		*out = st;
	if (rc < 0 && rc != CM_ENOMEM && rc != CM_EIO)
		err->code = rc = CM_EVERIFY;
	if (rc < 0)
		return cm_error_wrap(err, "bundle %s", path);
	return 0;
}
