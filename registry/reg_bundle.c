#include "reg_bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_file.h"
#include "cm_par.h"
#include "reg_digest.h"
#include "reg_tar.h"

/* Members are hashed in 1 MiB preads: large enough that syscalls cost
 * nothing, small enough to stay in the CPU cache between the copy and the
 * hash. */
#define HASH_CHUNK ((size_t)1 << 20)
#define MAX_THREADS 8

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
	if (strncmp(p, "tools/", 6) == 0 || strcmp(p, "tools") == 0)
		return 8; /* the portable ferry-install (docs/portable.md) */
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
	s->text = NULL; /* parse_sums frees on error and its caller again */
	s->e = NULL;
	s->n = 0;
}

static int parse_sums(sums *out, const char *data, size_t len, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (len == 0 || data[len - 1] != '\n')
		return cm_error_set(err, CM_EVERIFY, "SHA256SUMS: empty or missing final newline");
	if (memchr(data, '\0', len))
		return cm_error_set(err, CM_EVERIFY, "SHA256SUMS: a NUL byte");
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

static int entry_key_cmp(const void *key, const void *e)
{
	return strcmp(key, ((const sums_entry *)e)->path);
}

static sums_entry *sums_find(sums *s, const char *path)
{
	return bsearch(path, s->e, s->n, sizeof(*s->e), entry_key_cmp);
}

/* A compressed bundle, by its magic number, or NULL. */
static const char *compression(const reg_bundle_vol *v)
{
	unsigned char h[6] = {0};
	size_t n = v->size < sizeof(h) ? (size_t)v->size : sizeof(h);
	if (reg_bundle_vol_read(v, h, n, 0, NULL) < 0)
		return NULL;
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
static int check_trailer(const reg_bundle_vol *v, uint64_t from, uint64_t file_size,
			 const char *last, cm_error *err)
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
		size_t n = file_size - off < sizeof(buf) ? (size_t)(file_size - off) : sizeof(buf);
		int rc = reg_bundle_vol_read(v, buf, n, off, err);
		if (rc < 0)
			return cm_error_wrap(err, "reading the end of the bundle after member '%s'",
					     last);
		for (size_t i = 0; i < n; i++)
			if (buf[i])
				return cm_error_set(err, CM_EVERIFY,
						    "unexpected data after the end of the archive "
						    "(after member '%s', at byte %llu)",
						    last, (unsigned long long)(off + (uint64_t)i));
		off += (uint64_t)n;
	}
	return 0;
}

static uint64_t pad512(uint64_t n)
{
	return (n + 511) & ~(uint64_t)511;
}

/* One member as the walk found it. */
typedef struct entry {
	reg_tar_hdr h;	  /* name and size every tar reader agrees on */
	uint64_t data_at; /* first data byte */
	uint64_t end;	  /* where the next header starts */
} entry;

/* Read the entry whose header starts at pos (a pax header and the member
 * it describes count as one). *is_end when pos holds the end marker.
 * Every rule that makes the layout unambiguous is checked here: the
 * checksum, the allowed types and pax keywords, a size that lies within
 * the file, zero padding. after names the previous member for messages. */
static int next_entry(entry *out, int *is_end, const reg_bundle_vol *fd, uint64_t pos,
		      uint64_t fsize, const char *after, cm_error *err)
{
	unsigned char blk[REG_TAR_BLOCK];
	*is_end = 0;
	memset(out, 0, sizeof(*out));
	if (pos == fsize) {
		/* cut at a header boundary: the caller names what is missing */
		*is_end = 1;
		return 0;
	}
	if (fsize - pos < REG_TAR_BLOCK)
		return cm_error_set(err, CM_EVERIFY,
				    "the member header after '%s' is cut short at byte %llu "
				    "(truncated bundle)",
				    after, (unsigned long long)fsize);
	int rc = reg_bundle_vol_read(fd, blk, sizeof(blk), pos, err);
	if (rc < 0)
		return rc;
	if (reg_tar_is_zero(blk, sizeof(blk))) {
		*is_end = 1;
		return 0;
	}
	if ((rc = reg_tar_parse_header(&out->h, blk, err)) < 0)
		return cm_error_wrap(err, "the header at byte %llu (after member '%s')",
				     (unsigned long long)pos, after);
	uint64_t at = pos + REG_TAR_BLOCK;
	if (out->h.type == 'x') {
		/* the pax data, its padding, then the member's own header; errors
		 * name that member (its ustar name: the pax path may be the lie) */
		char pax[REG_TAR_PAX_MAX];
		reg_tar_pax px;
		uint64_t plen = out->h.size, padded = pad512(plen);
		if (fsize - at < padded + REG_TAR_BLOCK)
			return cm_error_set(err, CM_EVERIFY,
					    "the pax header after member '%s' is cut short "
					    "(truncated bundle)",
					    after);
		if ((rc = reg_bundle_vol_read(fd, pax, (size_t)padded, at, err)) < 0)
			return rc;
		at += padded;
		if ((rc = reg_bundle_vol_read(fd, blk, sizeof(blk), at, err)) < 0)
			return rc;
		if (reg_tar_is_zero(blk, sizeof(blk)))
			return cm_error_set(err, CM_EVERIFY,
					    "a pax header after member '%s' is followed by the end "
					    "of the archive",
					    after);
		if ((rc = reg_tar_parse_header(&out->h, blk, err)) < 0)
			return cm_error_wrap(err, "the header at byte %llu (after member '%s')",
					     (unsigned long long)at, after);
		if (out->h.type == 'x')
			return cm_error_set(err, CM_EVERIFY,
					    "member '%.200s': two pax headers in a row",
					    out->h.name);
		if (!reg_tar_is_zero(pax + plen, (size_t)(padded - plen)))
			return cm_error_set(err, CM_EVERIFY,
					    "member '%.200s': non-zero bytes in the padding of its "
					    "pax header",
					    out->h.name);
		if ((rc = reg_tar_parse_pax(&px, pax, (size_t)plen, err)) < 0 ||
		    (rc = reg_tar_apply_pax(&out->h, &px, err)) < 0)
			return cm_error_wrap(err, "member '%.200s' (pax header at byte %llu)",
					     out->h.name, (unsigned long long)pos);
		at += REG_TAR_BLOCK;
	}
	out->data_at = at;
	uint64_t size = out->h.size;
	if (size > fsize - at || pad512(size) > fsize - at)
		return cm_error_set(err, CM_EVERIFY,
				    "member '%.200s' declares %llu bytes (padded to %llu) but the "
				    "file holds only %llu after its header (truncated bundle, or "
				    "a header that lies about its size)",
				    out->h.name, (unsigned long long)size,
				    (unsigned long long)pad512(size),
				    (unsigned long long)(fsize - at));
	out->end = at + pad512(size);
	if (size % REG_TAR_BLOCK) {
		char pad[REG_TAR_BLOCK];
		size_t pn = (size_t)(out->end - (at + size));
		if ((rc = reg_bundle_vol_read(fd, pad, pn, at + size, err)) < 0)
			return rc;
		if (!reg_tar_is_zero(pad, pn))
			return cm_error_set(err, CM_EVERIFY,
					    "member '%.200s': non-zero bytes in the padding after "
					    "its %llu bytes of data",
					    out->h.name, (unsigned long long)size);
	}
	return 0;
}

/* Read a whole small member (capped) into b. */
static int read_small(cm_buf *b, const reg_bundle_vol *fd, const entry *e, size_t cap,
		      cm_error *err)
{
	if (e->h.size > cap)
		return cm_error_set(err, CM_EVERIFY, "member %s is larger than %zu bytes",
				    e->h.name, cap);
	cm_buf_free(b);
	b->data = malloc((size_t)e->h.size + 1);
	if (!b->data)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	b->cap = b->limit = (size_t)e->h.size + 1;
	int rc = reg_bundle_vol_read(fd, b->data, (size_t)e->h.size, e->data_at, err);
	if (rc < 0)
		return cm_error_wrap(err, "member %s", e->h.name);
	b->len = (size_t)e->h.size;
	b->data[b->len] = '\0';
	return 0;
}

/* A member whose data is hashed after the walk. */
typedef struct job {
	const char *path; /* in the SHA256SUMS copy */
	const char *hex;
	uint64_t off, size;
	int verified; /* 1 matched; 0 not hashed or mismatch (see bad) */
	int bad;
} job;

typedef struct pool {
	const reg_bundle_vol *fd;
	job **order;		/* largest first, so the last job to finish is small */
	char *buf[MAX_THREADS]; /* each worker's */
	reg_hasher *h[MAX_THREADS];
	uint64_t hashed; /* atomic */
} pool;

/* Hash job i on worker w. A mismatch marks it bad and stops the pool
 * (CM_EVERIFY); hash_jobs names the first bad member in file order. */
static int hash_one(void *ctx, unsigned w, size_t i, cm_error *err)
{
	pool *p = ctx;
	job *j = p->order[i];
	int rc = 0;
	if (!p->buf[w] && !(p->buf[w] = malloc(HASH_CHUNK)))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	if (!p->h[w] && (rc = reg_hasher_new(&p->h[w], err)) < 0)
		return rc;
	reg_hasher_reset(p->h[w]);
	if ((rc = reg_bundle_vol_hash(p->h[w], p->fd, j->off, j->size, p->buf[w], HASH_CHUNK, NULL,
				      err)) < 0)
		return cm_error_wrap(err, "member '%s'", j->path);
	reg_digest d;
	reg_hasher_final(p->h[w], &d);
	__atomic_add_fetch(&p->hashed, j->size, __ATOMIC_RELAXED);
	j->verified = strcmp(REG_DIGEST_HEX(&d), j->hex) == 0;
	j->bad = !j->verified;
	return j->bad ? CM_EVERIFY : 0;
}

static int job_size_desc(const void *a, const void *b)
{
	const job *x = *(job *const *)a, *y = *(job *const *)b;
	return x->size < y->size ? 1 : x->size > y->size ? -1 : (x < y ? -1 : x > y);
}

static unsigned hash_threads(unsigned want)
{
	if (want)
		return want > MAX_THREADS ? MAX_THREADS : want;
	cpu_set_t set;
	int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
	return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (unsigned)n;
}

/* Hash every job; the members are independent, so on several threads. */
static int hash_jobs(uint64_t *hashed, const reg_bundle_vol *fd, job *jobs, size_t n,
		     unsigned threads, cm_error *err)
{
	pool p = {.fd = fd};
	p.order = malloc((n ? n : 1) * sizeof(job *));
	if (!p.order)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	/* what is left to hash: the metadata members were hashed on the way */
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!jobs[i].verified)
			p.order[m++] = &jobs[i];
	qsort(p.order, m, sizeof(job *), job_size_desc);
	cm_error ioerr;
	int rc = cm_par_each(m, hash_threads(threads), hash_one, &p, &ioerr);
	for (unsigned i = 0; i < MAX_THREADS; i++) {
		free(p.buf[i]);
		reg_hasher_free(p.h[i]);
	}
	free(p.order);
	*hashed = p.hashed;
	/* report the first bad member in file order, whichever thread saw it */
	for (size_t i = 0; i < n; i++)
		if (jobs[i].bad) {
			char where[1024] = "";
			if (fd->n > 1) {
				char parts[900];
				reg_bundle_vol_where(fd, jobs[i].off, jobs[i].size, parts,
						     sizeof(parts));
				snprintf(where, sizeof(where), " (its bytes are in %.900s)", parts);
			}
			return cm_error_set(err, CM_EVERIFY,
					    "digest mismatch in member '%s'%s: its bytes do not "
					    "hash to %s as SHA256SUMS says",
					    jobs[i].path, where, jobs[i].hex);
		}
	if (rc < 0)
		*err = ioerr;
	return rc;
}

/* A metadata member read whole (b): its bytes must hash to hex. */
static int check_meta(reg_bundle_stats *st, const cm_buf *b, const char *name, const char *hex,
		      cm_error *err)
{
	reg_digest d;
	int rc = reg_digest_buf(&d, b->data, b->len, err);
	if (rc < 0)
		return rc;
	st->bytes_hashed += b->len;
	if (strcmp(REG_DIGEST_HEX(&d), hex) != 0)
		return cm_error_set(err, CM_EVERIFY,
				    "digest mismatch in member '%s': SHA256SUMS says %s, content "
				    "hashes to %s",
				    name, hex, REG_DIGEST_HEX(&d));
	return 0;
}

/* head: the first three members alone (reg_bundle_read_head) */
static int scan_fd(reg_bundle_stats *st, const reg_bundle_vol *fd, const reg_bundle_opts *o,
		   int head, cm_error *err)
{
	cm_buf sumsbuf = CM_BUF_INIT, sigbuf = CM_BUF_INIT, mbuf = CM_BUF_INIT;
	sums S = {NULL, NULL, 0};
	job *jobs = NULL;
	size_t njobs = 0;
	int rc = 0, is_end = 0;
	char last[REG_TAR_NAME_MAX + 1] = "the start of the file";
	uint64_t pos = 0, fsize = st->file_size;
	entry e;

	const char *z = compression(fd);
	if (z)
		return cm_error_set(err, CM_EVERIFY,
				    "not an uncompressed tar bundle: the file is %s-compressed "
				    "(decompress it first; bundles are never compressed)",
				    z);
	if (fsize < REG_TAR_BLOCK)
		return cm_error_set(
		    err, CM_EVERIFY,
		    "truncated bundle: %llu bytes is too short for the first member %s",
		    (unsigned long long)fsize, REG_BUNDLE_SUMS);

	/* 1. SHA256SUMS and 2. its signature, before anything else is trusted
	 * (and for the head, 3. bundle.json) */
	static const char *first[3] = {REG_BUNDLE_SUMS, REG_BUNDLE_SIG, REG_BUNDLE_JSON};
	cm_buf *firstbuf[3] = {&sumsbuf, &sigbuf, &mbuf};
	size_t firstcap[3] = {REG_BUNDLE_SUMS_MAX, 1024, REG_BUNDLE_JSON_MAX};
	for (int i = 0; i < (head ? 3 : 2); i++) {
		if ((rc = next_entry(&e, &is_end, fd, pos, fsize, last, err)) < 0) {
			if (i == 0)
				cm_error_wrap(err, "not a ferry bundle");
			goto out;
		}
		if (is_end) {
			rc = cm_error_set(err, CM_EVERIFY, "missing member %s (empty bundle)",
					  first[i]);
			goto out;
		}
		if (strcmp(e.h.name, first[i]) != 0) {
			rc = cm_error_set(err, CM_EVERIFY,
					  "member %d is '%.200s', expected %s (wrong order)", i + 1,
					  e.h.name, first[i]);
			goto out;
		}
		if ((rc = read_small(firstbuf[i], fd, &e, firstcap[i], err)) < 0)
			goto out;
		pos = e.end;
		snprintf(last, sizeof(last), "%s", first[i]);
	}
	if ((rc = reg_digest_buf(&st->sums, sumsbuf.data, sumsbuf.len, err)) < 0)
		goto out;
	if (o->check_sig && (rc = o->check_sig(o->ctx, sumsbuf.data, sumsbuf.len, sigbuf.data,
					       sigbuf.len, err)) < 0) {
		cm_error_wrap(err, "%s", REG_BUNDLE_SIG);
		rc = err->code = CM_EVERIFY;
		goto out;
	}
	if ((rc = parse_sums(&S, sumsbuf.data, sumsbuf.len, err)) < 0)
		goto out;
	if (head) {
		sums_entry *se = sums_find(&S, REG_BUNDLE_JSON);
		rc = se ? check_meta(st, &mbuf, REG_BUNDLE_JSON, se->hex, err)
			: cm_error_set(err, CM_EVERIFY, "%s is not listed in SHA256SUMS",
				       REG_BUNDLE_JSON);
		if (rc == 0 && o->bundle_json) {
			cm_buf_free(o->bundle_json);
			*o->bundle_json = mbuf;
			mbuf = (cm_buf)CM_BUF_INIT;
		}
		goto out;
	}
	if (o->sig_only)
		goto out;
	jobs = calloc(S.n ? S.n : 1, sizeof(job));
	if (!jobs) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto out;
	}

	/* 3. everything else, in rank order: the layout first, metadata hashed
	 * as it is met, data hashed afterwards on every core */
	int last_rank = 2, have_json = 0;
	for (;;) {
		if ((rc = next_entry(&e, &is_end, fd, pos, fsize, last, err)) < 0) {
			if (fd->n > 1) {
				char part[600];
				reg_bundle_vol_where(fd, pos, 0, part, sizeof(part));
				cm_error_wrap(err, "in %.600s", part);
			}
			break;
		}
		if (is_end)
			break;
		const char *name = e.h.name;
		if ((rc = reg_bundle_check_name(name, err)) < 0)
			break;
		int rank = reg_bundle_rank(name);
		if (rank < 0) {
			rc = cm_error_set(err, CM_EVERIFY,
					  "member '%s' is not part of the bundle format", name);
			break;
		}
		if (rank < 2 || rank < last_rank) {
			rc = cm_error_set(
			    err, CM_EVERIFY,
			    "member '%s' is out of order (wrong order): it must come before '%s'",
			    name, last);
			break;
		}
		last_rank = rank;
		sums_entry *se = sums_find(&S, name);
		if (!se) {
			rc = cm_error_set(err, CM_EVERIFY,
					  "extra member '%s' is not listed in SHA256SUMS", name);
			break;
		}
		if (se->seen) {
			rc = cm_error_set(err, CM_EVERIFY, "member '%s' appears twice", name);
			break;
		}
		se->seen = 1;
		job *j = &jobs[njobs++];
		j->path = se->path;
		j->hex = se->hex;
		j->off = e.data_at;
		j->size = e.h.size;
		if (rank <= 4) {
			/* bundle.json, oci-layout, index.json: small, needed now */
			if ((rc = read_small(&mbuf, fd, &e, REG_BUNDLE_JSON_MAX, err)) < 0 ||
			    (rc = check_meta(st, &mbuf, name, se->hex, err)) < 0)
				break;
			j->verified = 1;
			if (rank == 2) {
				have_json = 1;
				if (o->bundle_json) {
					cm_buf_free(o->bundle_json);
					*o->bundle_json = mbuf;
					mbuf = (cm_buf)CM_BUF_INIT;
				}
			}
		}
		pos = e.end;
		snprintf(last, sizeof(last), "%s", name);
	}
	if (rc < 0)
		goto out;
	/* hash before the completeness checks: a member whose size swallowed
	 * the next one is named by its digest, not as the one that vanished */
	if (o->hash_data) {
		/* metadata members are done; the rest in parallel */
		uint64_t hashed = 0;
		for (size_t i = 0; i < fd->n; i++)
			posix_fadvise(fd->p[i].fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		rc = hash_jobs(&hashed, fd, jobs, njobs, o->threads, err);
		st->bytes_hashed += hashed;
		if (rc < 0)
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
	if ((rc = check_trailer(fd, pos, fsize, last, err)) < 0)
		goto out;
	for (size_t i = 0; i < njobs && rc == 0; i++) {
		reg_bundle_member m = {jobs[i].path, jobs[i].off, jobs[i].size, jobs[i].hex,
				       jobs[i].verified};
		st->members++;
		if (o->on_member)
			rc = o->on_member(o->ctx, &m, err);
	}
out:
	free(jobs);
	sums_free(&S);
	cm_buf_free(&sumsbuf);
	cm_buf_free(&sigbuf);
	cm_buf_free(&mbuf);
	return rc;
}

static int scan_vol(reg_bundle_stats *out, const reg_bundle_vol *v, const reg_bundle_opts *o,
		    int head, cm_error *err)
{
	reg_bundle_stats st;
	memset(&st, 0, sizeof(st));
	st.file_size = v->size;
	int rc = scan_fd(&st, v, o, head, err);
	/* A bundle written while it was read could verify one state and hold
	 * another: the layout and digests above hold only for unchanged
	 * files. */
	if (rc == 0 && !reg_bundle_vol_same(v))
		rc = cm_error_set(err, CM_EVERIFY, "the file changed while it was verified");
	if (out)
		*out = st;
	if (rc < 0 && rc != CM_ENOMEM && rc != CM_EIO)
		err->code = rc = CM_EVERIFY;
	if (rc < 0)
		return cm_error_wrap(err, "bundle %s", v->name);
	return 0;
}

int reg_bundle_scan_vol(reg_bundle_stats *out, const reg_bundle_vol *v, const reg_bundle_opts *o,
			cm_error *err)
{
	return scan_vol(out, v, o, 0, err);
}

int reg_bundle_scan(reg_bundle_stats *out, int fd, const char *name, const reg_bundle_opts *o,
		    cm_error *err)
{
	reg_bundle_vol *v = NULL;
	int rc = reg_bundle_vol_from_fd(&v, fd, name, err);
	if (rc < 0) {
		if (out)
			memset(out, 0, sizeof(*out));
		return cm_error_wrap(err, "bundle %s", name);
	}
	rc = reg_bundle_scan_vol(out, v, o, err);
	reg_bundle_vol_free(v);
	return rc;
}

/* ---- volume sets -------------------------------------------------------- */

static char *part_path(const char *prefix, size_t i)
{
	size_t l = strlen(prefix) + 16;
	char *p = malloc(l);
	if (p)
		snprintf(p, l, "%s.%03zu", prefix, i);
	return p;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

void reg_bundle_vol_free(reg_bundle_vol *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		if (v->owned && v->p[i].fd >= 0)
			close(v->p[i].fd);
		free(v->p[i].name);
	}
	free(v->p);
	free(v->name);
	free(v->sidecar);
	free(v->prefix);
	free(v);
}

static reg_bundle_vol *vol_new(const char *name, size_t cap)
{
	reg_bundle_vol *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->p = calloc(cap ? cap : 1, sizeof(reg_bundle_part));
	v->name = strdup(name);
	if (!v->p || !v->name) {
		reg_bundle_vol_free(v);
		return NULL;
	}
	return v;
}

/* Open and fstat one part (a regular file). */
static int add_part(reg_bundle_vol *v, int fd, const char *name, cm_error *err)
{
	reg_bundle_part *p = &v->p[v->n];
	p->fd = fd;
	if (!(p->name = strdup(name))) {
		if (v->owned)
			close(fd);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	v->n++;
	if (fstat(fd, &p->st) < 0)
		return cm_error_sys(err, errno, "stat %s", name);
	if (!S_ISREG(p->st.st_mode))
		return cm_error_set(err, CM_EINVAL, "%s is not a regular file", name);
	p->start = v->size;
	p->size = (uint64_t)p->st.st_size;
	v->size += p->size;
	return 0;
}

int reg_bundle_vol_from_fd(reg_bundle_vol **out, int fd, const char *name, cm_error *err)
{
	*out = NULL;
	reg_bundle_vol *v = vol_new(name, 1);
	if (!v)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	int rc = add_part(v, fd, name, err);
	if (rc < 0) {
		reg_bundle_vol_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

/* ".NNN" at the end of path: the part number, or -1. */
static int part_suffix(const char *path)
{
	size_t l = strlen(path);
	if (l < 5 || path[l - 4] != '.')
		return -1;
	int k = 0;
	for (size_t i = l - 3; i < l; i++) {
		if (path[i] < '0' || path[i] > '9')
			return -1;
		k = k * 10 + (path[i] - '0');
	}
	return k;
}

static int vol_open_parts(reg_bundle_vol *v, const char *prefix, cm_error *err)
{
	size_t i;
	for (i = 0; i < REG_BUNDLE_PARTS_MAX; i++) {
		char *pp = part_path(prefix, i);
		if (!pp)
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		int fd = open(pp, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			int rc = e == ENOENT && i > 0
				     ? 0
				     : cm_error_sys(err, e, "opening bundle part %s", pp);
			free(pp);
			if (rc < 0)
				return rc;
			break;
		}
		int rc = add_part(v, fd, pp, err);
		free(pp);
		if (rc < 0)
			return rc;
	}
	/* a gap: a later part exists, so this one is missing */
	for (size_t j = i + 1; j < REG_BUNDLE_PARTS_MAX; j++) {
		char *pp = part_path(prefix, j);
		if (!pp)
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		struct stat sb;
		int there = stat(pp, &sb) == 0;
		free(pp);
		if (there) {
			char *miss = part_path(prefix, i);
			int rc = cm_error_set(err, CM_EVERIFY, "%s: missing (part %03zu exists)",
					      miss ? miss : prefix, j);
			free(miss);
			return rc;
		}
	}
	/* equal parts but the last, which is no larger */
	uint64_t want = v->p[0].size;
	if (want == 0)
		return cm_error_set(err, CM_EVERIFY, "%s: empty", v->p[0].name);
	for (size_t k = 1; k < v->n; k++) {
		const reg_bundle_part *p = &v->p[k];
		if (p->size < want && k + 1 < v->n)
			return cm_error_set(err, CM_EVERIFY,
					    "%s: %llu bytes short (every part but the last holds "
					    "%llu bytes, as %s does)",
					    p->name, (unsigned long long)(want - p->size),
					    (unsigned long long)want, v->p[0].name);
		if (p->size > want)
			return cm_error_set(err, CM_EVERIFY,
					    "%s: %llu bytes more than a part of this set holds (%s "
					    "holds %llu): a part from another build?",
					    p->name, (unsigned long long)(p->size - want),
					    v->p[0].name, (unsigned long long)want);
		if (p->size == 0)
			return cm_error_set(err, CM_EVERIFY, "%s: empty", p->name);
	}
	size_t l = strlen(prefix) + 8;
	if ((v->sidecar = malloc(l)) != NULL)
		snprintf(v->sidecar, l, "%s.parts", prefix);
	if (!v->sidecar || !(v->prefix = strdup(prefix)))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	return 0;
}

int reg_bundle_vol_open(reg_bundle_vol **out, const char *path, cm_error *err)
{
	*out = NULL;
	char *prefix = NULL;
	int k = part_suffix(path);
	struct stat sb;
	if (k == 0) {
		if (!(prefix = strdup(path)))
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		prefix[strlen(prefix) - 4] = '\0';
	} else if (k > 0) {
		char *first = malloc(strlen(path) + 1);
		if (!first)
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		memcpy(first, path, strlen(path) + 1);
		memcpy(first + strlen(first) - 3, "000", 3);
		int is_set = stat(first, &sb) == 0;
		int rc = 0;
		if (is_set)
			rc = cm_error_set(err, CM_EUSAGE,
					  "%s is part %d of a set: name its first part %s (or the "
					  "prefix without .000)",
					  path, k, first);
		free(first);
		if (rc < 0)
			return rc;
	} else if (stat(path, &sb) < 0 && errno == ENOENT) {
		char *p0 = part_path(path, 0);
		if (!p0)
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		if (stat(p0, &sb) == 0 && !(prefix = strdup(path))) {
			free(p0);
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		}
		free(p0);
	}
	reg_bundle_vol *v = vol_new(path, prefix ? REG_BUNDLE_PARTS_MAX : 1);
	if (!v) {
		free(prefix);
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	}
	v->owned = 1;
	int rc;
	if (prefix) {
		rc = vol_open_parts(v, prefix, err);
	} else {
		/* One descriptor for everything: what is verified is what is read. */
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		rc = fd < 0 ? cm_error_sys(err, errno, "opening bundle %s", path)
			    : add_part(v, fd, path, err);
	}
	free(prefix);
	if (rc < 0) {
		reg_bundle_vol_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

size_t reg_bundle_vol_part_at(const reg_bundle_vol *v, uint64_t off)
{
	size_t lo = 0, hi = v->n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->p[mid].start <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

int reg_bundle_vol_read(const reg_bundle_vol *v, void *buf, size_t n, uint64_t off, cm_error *err)
{
	size_t got = 0;
	while (got < n) {
		uint64_t at = off + got;
		if (at >= v->size)
			return cm_error_set(err, CM_EVERIFY, "the file ends at byte %llu",
					    (unsigned long long)v->size);
		const reg_bundle_part *p = &v->p[reg_bundle_vol_part_at(v, at)];
		uint64_t in = at - p->start;
		size_t want = n - got;
		if (want > p->size - in)
			want = (size_t)(p->size - in);
		ssize_t r = pread(p->fd, (char *)buf + got, want, (off_t)in);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return cm_error_sys(err, errno, "reading %s at byte %llu", p->name,
					    (unsigned long long)in);
		if (r == 0)
			return cm_error_set(err, CM_EVERIFY, "%s ends at byte %llu (it shrank)",
					    p->name, (unsigned long long)in);
		got += (size_t)r;
	}
	return 0;
}

int reg_bundle_vol_hash(reg_hasher *h, const reg_bundle_vol *v, uint64_t off, uint64_t len,
			char *buf, size_t buf_n, const int *stop, cm_error *err)
{
	for (uint64_t got = 0; got < len;) {
		if (stop && __atomic_load_n(stop, __ATOMIC_RELAXED))
			return cm_error_set(err, CM_EFAIL, "stopped");
		size_t want = len - got > buf_n ? buf_n : (size_t)(len - got);
		int rc = reg_bundle_vol_read(v, buf, want, off + got, err);
		if (rc < 0)
			return rc;
		reg_hasher_update(h, buf, want);
		got += want;
	}
	return 0;
}

size_t reg_bundle_vol_segs(const reg_bundle_vol *v, uint64_t off, uint64_t len, reg_bundle_seg *out,
			   size_t max)
{
	if (off > v->size || len > v->size - off)
		return 0;
	size_t k = 0;
	for (size_t i = len ? reg_bundle_vol_part_at(v, off) : v->n; i < v->n && len > 0; i++) {
		const reg_bundle_part *p = &v->p[i];
		uint64_t in = off - p->start;
		uint64_t take = p->size - in < len ? p->size - in : len;
		if (take == 0)
			continue;
		if (k < max) {
			out[k].fd = p->fd;
			out[k].off = in;
			out[k].len = take;
		}
		k++;
		off += take;
		len -= take;
	}
	return k;
}

void reg_bundle_vol_where(const reg_bundle_vol *v, uint64_t off, uint64_t len, char *buf, size_t n)
{
	cm_buf b = CM_BUF_INIT;
	size_t a = reg_bundle_vol_part_at(v, off);
	size_t z = len ? reg_bundle_vol_part_at(v, off + len - 1) : a;
	for (size_t i = a; i <= z && i < v->n; i++)
		if (cm_buf_appendf(&b, NULL, "%s%s", i > a ? ", " : "", v->p[i].name) < 0)
			break;
	snprintf(buf, n, "%s", b.data ? b.data : v->name);
	cm_buf_free(&b);
}

static int stat_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

int reg_bundle_vol_same(const reg_bundle_vol *v)
{
	for (size_t i = 0; i < v->n; i++) {
		struct stat now;
		if (fstat(v->p[i].fd, &now) < 0 || !stat_same(&now, &v->p[i].st))
			return 0;
	}
	return 1;
}

void reg_bundle_vol_restat(reg_bundle_vol *v)
{
	for (size_t i = 0; i < v->n; i++) {
		struct stat now;
		if (fstat(v->p[i].fd, &now) == 0)
			v->p[i].st = now;
	}
}

int reg_bundle_sidecar_parse(reg_bundle_sidecar_part **out, size_t *n, const char *text, size_t len,
			     cm_error *err)
{
	*out = NULL;
	*n = 0;
	reg_bundle_sidecar_part *v = NULL;
	size_t cap = 0, k = 0, ln = 0;
	for (size_t at = 0; at < len;) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t l = nl ? (size_t)(nl - (text + at)) : len - at;
		char line[600];
		ln++;
		if (l >= sizeof(line)) {
			free(v);
			return cm_error_set(err, CM_EVERIFY, "line %zu is too long", ln);
		}
		memcpy(line, text + at, l);
		line[l] = '\0';
		at += l + (nl ? 1 : 0);
		char name[256];
		unsigned long long size;
		char hex[REG_DIGEST_HEXLEN + 2];
		int is_size = 0, is_sum = 0, end = -1;
		if (sscanf(line, "# %255[^: ]: %llu bytes%n", name, &size, &end) == 2 &&
		    end == (int)l)
			is_size = 1;
		else if (l > 8 + 4 + REG_DIGEST_HEXLEN && strncmp(line, "SHA256 (", 8) == 0 &&
			 strncmp(line + l - REG_DIGEST_HEXLEN - 4, ") = ", 4) == 0) {
			size_t nl2 = l - REG_DIGEST_HEXLEN - 4 - 8;
			if (nl2 == 0 || nl2 >= sizeof(name)) {
				free(v);
				return cm_error_set(err, CM_EVERIFY, "line %zu: bad name", ln);
			}
			memcpy(name, line + 8, nl2);
			name[nl2] = '\0';
			memcpy(hex, line + l - REG_DIGEST_HEXLEN, REG_DIGEST_HEXLEN + 1);
			is_sum = 1;
		} else if (line[0] == '#' || l == 0) {
			continue;
		} else {
			free(v);
			return cm_error_set(err, CM_EVERIFY, "line %zu: malformed", ln);
		}
		if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
			free(v);
			return cm_error_set(err, CM_EVERIFY, "line %zu: a part name holds '/'", ln);
		}
		size_t i;
		for (i = 0; i < k && strcmp(v[i].name, name) != 0; i++)
			;
		if (i == k) {
			if (k == cap) {
				cap = cap ? cap * 2 : 16;
				if (cap > REG_BUNDLE_PARTS_MAX * 2) {
					free(v);
					return cm_error_set(err, CM_EVERIFY, "too many parts");
				}
				reg_bundle_sidecar_part *nv = realloc(v, cap * sizeof(*v));
				if (!nv) {
					free(v);
					return cm_error_set(err, CM_ENOMEM, "out of memory");
				}
				v = nv;
			}
			memset(&v[k], 0, sizeof(v[k]));
			snprintf(v[k].name, sizeof(v[k].name), "%s", name);
			k++;
		}
		if (is_size) {
			v[i].size = size;
			v[i].has_size = 1;
		}
		if (is_sum) {
			reg_digest d;
			if (reg_digest_from_hex(&d, hex, NULL) < 0) {
				free(v);
				return cm_error_set(err, CM_EVERIFY, "line %zu: bad sha256", ln);
			}
			memcpy(v[i].hex, hex, REG_DIGEST_HEXLEN + 1);
		}
	}
	*out = v;
	*n = k;
	return 0;
}

static int read_sidecar(reg_bundle_sidecar_part **out, size_t *n, const char *path, cm_error *err)
{
	cm_buf b = CM_BUF_INIT;
	int rc = cm_file_read(&b, path, REG_BUNDLE_SIDECAR_MAX - 1, err);
	if (rc == CM_EINVAL) /* over the limit */
		rc = cm_error_set(err, CM_EVERIFY, "%s is larger than %zu bytes", path,
				  REG_BUNDLE_SIDECAR_MAX);
	if (rc == 0 && (rc = reg_bundle_sidecar_parse(out, n, b.data, b.len, err)) < 0)
		cm_error_wrap(err, "%s", path);
	cm_buf_free(&b);
	return rc;
}

/* What is wrong with part name (in folder dir) against its sidecar line:
 * "" when nothing. */
static void part_problem(char *out, size_t n, const reg_bundle_sidecar_part *sp, int fd,
			 uint64_t size, int check_hash)
{
	out[0] = '\0';
	if (fd < 0) {
		snprintf(out, n, "missing");
		return;
	}
	if (sp->has_size && size != sp->size) {
		if (size < sp->size)
			snprintf(out, n, "%llu bytes short", (unsigned long long)(sp->size - size));
		else
			snprintf(out, n, "%llu bytes too long",
				 (unsigned long long)(size - sp->size));
		return;
	}
	if (check_hash && sp->hex[0]) {
		reg_digest d;
		cm_error e;
		/* the part fds are read with pread only: moving the offset is harmless */
		if ((lseek(fd, 0, SEEK_SET) < 0 && cm_error_sys(&e, errno, "seeking") < 0) ||
		    reg_digest_fd(&d, NULL, fd, &e) < 0)
			snprintf(out, n, "unreadable: %.200s", e.msg);
		else if (strcmp(REG_DIGEST_HEX(&d), sp->hex) != 0)
			snprintf(out, n,
				 "its sha256 is not the one the sidecar lists (changed, or a part "
				 "from another build)");
	}
}

/* dir of path, with a trailing '/', or "" */
static void dir_of(char *out, size_t n, const char *path)
{
	const char *b = base_name(path);
	snprintf(out, n, "%.*s", (int)(b - path), path);
}

void reg_bundle_vol_explain(const reg_bundle_vol *v, int check_hash, cm_error *err)
{
	if (!v->sidecar || !err)
		return;
	reg_bundle_sidecar_part *sp = NULL;
	size_t ns = 0;
	cm_error e;
	if (read_sidecar(&sp, &ns, v->sidecar, &e) < 0)
		return;
	char dir[4096];
	dir_of(dir, sizeof(dir), v->sidecar);
	cm_buf b = CM_BUF_INIT;
	for (size_t i = 0; i < ns; i++) {
		const reg_bundle_part *p = NULL;
		for (size_t j = 0; j < v->n && !p; j++)
			if (strcmp(base_name(v->p[j].name), sp[i].name) == 0)
				p = &v->p[j];
		char prob[300];
		part_problem(prob, sizeof(prob), &sp[i], p ? p->fd : -1, p ? p->size : 0,
			     check_hash);
		if (prob[0] && cm_buf_appendf(&b, NULL, "%s%s%s: %s", b.len ? "; " : "", dir,
					      sp[i].name, prob) < 0)
			break;
	}
	free(sp);
	if (b.len)
		cm_error_wrap(err, "%s (as %s lists the parts)", b.data, base_name(v->sidecar));
	cm_buf_free(&b);
}

int reg_bundle_parts_check(const char *path,
			   void (*report)(void *ctx, const char *part, uint64_t size,
					  const char *problem),
			   void *ctx, cm_error *err)
{
	/* the sidecar: PATH itself when it ends in .parts, else PREFIX.parts */
	cm_buf side = CM_BUF_INIT;
	size_t l = strlen(path);
	int rc;
	if (l > 6 && strcmp(path + l - 6, ".parts") == 0)
		rc = cm_buf_appendf(&side, err, "%s", path);
	else if (part_suffix(path) == 0)
		rc = cm_buf_appendf(&side, err, "%.*s.parts", (int)(l - 4), path);
	else
		rc = cm_buf_appendf(&side, err, "%s.parts", path);
	if (rc < 0)
		return rc;
	reg_bundle_sidecar_part *sp = NULL;
	size_t ns = 0;
	if ((rc = read_sidecar(&sp, &ns, side.data, err)) < 0) {
		cm_buf_free(&side);
		return rc;
	}
	char dir[4096];
	dir_of(dir, sizeof(dir), side.data);
	size_t bad = 0;
	char first[600] = "";
	if (ns == 0)
		rc = cm_error_set(err, CM_EVERIFY, "%s lists no parts", side.data);
	for (size_t i = 0; rc == 0 && i < ns; i++) {
		cm_buf pp = CM_BUF_INIT;
		if ((rc = cm_buf_appendf(&pp, err, "%s%s", dir, sp[i].name)) < 0)
			break;
		int fd = open(pp.data, O_RDONLY | O_CLOEXEC);
		struct stat sb;
		uint64_t size = fd >= 0 && fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
		char prob[300];
		if (!sp[i].hex[0] || !sp[i].has_size)
			snprintf(prob, sizeof(prob), "the sidecar lacks its %s",
				 sp[i].hex[0] ? "size" : "sha256");
		else
			part_problem(prob, sizeof(prob), &sp[i], fd, size, 1);
		if (fd >= 0)
			close(fd);
		if (report)
			report(ctx, pp.data, size, prob[0] ? prob : NULL);
		if (prob[0] && !bad++)
			snprintf(first, sizeof(first), "%.250s: %.300s", pp.data, prob);
		cm_buf_free(&pp);
	}
	if (rc == 0 && bad)
		rc = cm_error_set(err, CM_EVERIFY, "%zu of %zu parts do not match %s: %s%s", bad,
				  ns, side.data, first, bad > 1 ? "; ..." : "");
	free(sp);
	cm_buf_free(&side);
	return rc;
}

int reg_bundle_read_head(cm_buf *bundle_json, uint64_t *read_size, const char *path,
			 const reg_bundle_opts *o, cm_error *err)
{
	/* the file named, or the first part of a set */
	cm_buf name = CM_BUF_INIT;
	struct stat sb;
	int rc = stat(path, &sb) < 0 && errno == ENOENT ? cm_buf_appendf(&name, err, "%s.000", path)
							: cm_buf_appendf(&name, err, "%s", path);
	if (rc < 0)
		return rc;
	int fd = open(name.data, O_RDONLY | O_CLOEXEC);
	reg_bundle_vol *v = NULL;
	if (fd < 0)
		rc = cm_error_sys(err, errno, "opening bundle %s", name.data);
	else if ((rc = reg_bundle_vol_from_fd(&v, fd, name.data, err)) < 0)
		close(fd);
	cm_buf_free(&name);
	if (rc < 0)
		return rc;
	v->owned = 1;
	reg_bundle_opts ho = *o;
	ho.bundle_json = bundle_json;
	if ((rc = scan_vol(NULL, v, &ho, 1, err)) == 0 && read_size)
		*read_size = v->size;
	reg_bundle_vol_free(v);
	return rc;
}
