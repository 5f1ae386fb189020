#include "reg_bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* pread exactly n bytes at off; a short file is CM_EVERIFY (truncated or
 * shrinking under us), an I/O error CM_EIO. */
static int pread_full(int fd, void *p, size_t n, uint64_t off, cm_error *err)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (char *)p + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return cm_error_sys(err, errno, "reading byte %llu",
					    (unsigned long long)(off + got));
		if (r == 0)
			return cm_error_set(err, CM_EVERIFY, "the file ends at byte %llu",
					    (unsigned long long)(off + got));
		got += (size_t)r;
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
static int next_entry(entry *out, int *is_end, int fd, uint64_t pos, uint64_t fsize,
		      const char *after, cm_error *err)
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
	int rc = pread_full(fd, blk, sizeof(blk), pos, err);
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
		if ((rc = pread_full(fd, pax, (size_t)padded, at, err)) < 0)
			return rc;
		at += padded;
		if ((rc = pread_full(fd, blk, sizeof(blk), at, err)) < 0)
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
		if ((rc = pread_full(fd, pad, pn, at + size, err)) < 0)
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
static int read_small(cm_buf *b, int fd, const entry *e, size_t cap, cm_error *err)
{
	if (e->h.size > cap)
		return cm_error_set(err, CM_EVERIFY, "member %s is larger than %zu bytes",
				    e->h.name, cap);
	cm_buf_free(b);
	b->data = malloc((size_t)e->h.size + 1);
	if (!b->data)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	b->cap = b->limit = (size_t)e->h.size + 1;
	int rc = pread_full(fd, b->data, (size_t)e->h.size, e->data_at, err);
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
	int fd;
	job **order; /* largest first, so the last job to finish is small */
	size_t n;
	size_t next;	 /* atomic */
	int stop;	 /* atomic: a mismatch or an error was found */
	uint64_t hashed; /* atomic */
	pthread_mutex_t mu;
	cm_error ioerr;
	int iorc;
} pool;

static void *hash_worker(void *arg)
{
	pool *p = arg;
	char *buf = malloc(HASH_CHUNK);
	reg_hasher *h = NULL;
	cm_error e;
	int rc = buf ? reg_hasher_new(&h, &e) : cm_error_set(&e, CM_ENOMEM, "out of memory");
	while (rc == 0 && !__atomic_load_n(&p->stop, __ATOMIC_RELAXED)) {
		size_t i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
		if (i >= p->n)
			break;
		job *j = p->order[i];
		reg_hasher_reset(h);
		for (uint64_t got = 0; rc == 0 && got < j->size;) {
			size_t want =
			    j->size - got > HASH_CHUNK ? HASH_CHUNK : (size_t)(j->size - got);
			if ((rc = pread_full(p->fd, buf, want, j->off + got, &e)) == 0) {
				reg_hasher_update(h, buf, want);
				got += want;
			}
		}
		if (rc < 0) {
			cm_error_wrap(&e, "member '%s'", j->path);
			break;
		}
		reg_digest d;
		reg_hasher_final(h, &d);
		__atomic_add_fetch(&p->hashed, j->size, __ATOMIC_RELAXED);
		if (strcmp(REG_DIGEST_HEX(&d), j->hex) == 0) {
			j->verified = 1;
		} else {
			j->bad = 1;
			__atomic_store_n(&p->stop, 1, __ATOMIC_RELAXED);
		}
	}
	if (rc < 0) {
		pthread_mutex_lock(&p->mu);
		if (!p->iorc) {
			p->iorc = rc;
			p->ioerr = e;
		}
		pthread_mutex_unlock(&p->mu);
		__atomic_store_n(&p->stop, 1, __ATOMIC_RELAXED);
	}
	free(buf);
	reg_hasher_free(h);
	return NULL;
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
static int hash_jobs(uint64_t *hashed, int fd, job *jobs, size_t n, unsigned threads, cm_error *err)
{
	pool p;
	memset(&p, 0, sizeof(p));
	p.fd = fd;
	p.order = malloc((n ? n : 1) * sizeof(job *));
	if (!p.order)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	/* what is left to hash: the metadata members were hashed on the way */
	p.n = 0;
	for (size_t i = 0; i < n; i++)
		if (!jobs[i].verified)
			p.order[p.n++] = &jobs[i];
	qsort(p.order, p.n, sizeof(job *), job_size_desc);
	pthread_mutex_init(&p.mu, NULL);
	unsigned nt = hash_threads(threads);
	if (nt > p.n)
		nt = p.n ? (unsigned)p.n : 1;
	pthread_t tid[MAX_THREADS];
	unsigned started = 0;
	for (unsigned i = 1; i < nt; i++)
		if (pthread_create(&tid[started], NULL, hash_worker, &p) == 0)
			started++;
	hash_worker(&p);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&p.mu);
	free(p.order);
	*hashed = p.hashed;
	/* report the first bad member in file order, whichever thread saw it */
	for (size_t i = 0; i < n; i++)
		if (jobs[i].bad)
			return cm_error_set(err, CM_EVERIFY,
					    "digest mismatch in member '%s': its bytes do not hash "
					    "to %s as SHA256SUMS says",
					    jobs[i].path, jobs[i].hex);
	if (p.iorc) {
		*err = p.ioerr;
		return p.iorc;
	}
	return 0;
}

static int scan_fd(reg_bundle_stats *st, int fd, const reg_bundle_opts *o, cm_error *err)
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

	/* 1. SHA256SUMS and 2. its signature, before anything else is trusted */
	static const char *first[2] = {REG_BUNDLE_SUMS, REG_BUNDLE_SIG};
	cm_buf *firstbuf[2] = {&sumsbuf, &sigbuf};
	size_t firstcap[2] = {REG_BUNDLE_SUMS_MAX, 1024};
	for (int i = 0; i < 2; i++) {
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
	reg_hasher *h = NULL;
	if ((rc = reg_hasher_new(&h, err)) < 0)
		goto out;
	for (;;) {
		if ((rc = next_entry(&e, &is_end, fd, pos, fsize, last, err)) < 0)
			break;
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
			reg_digest d;
			size_t cap = REG_BUNDLE_JSON_MAX;
			if ((rc = read_small(&mbuf, fd, &e, cap, err)) < 0)
				break;
			reg_hasher_reset(h);
			reg_hasher_update(h, mbuf.data, mbuf.len);
			reg_hasher_final(h, &d);
			st->bytes_hashed += mbuf.len;
			if (strcmp(REG_DIGEST_HEX(&d), se->hex) != 0) {
				rc = cm_error_set(err, CM_EVERIFY,
						  "digest mismatch in member '%s': SHA256SUMS says "
						  "%s, content hashes to %s",
						  name, se->hex, REG_DIGEST_HEX(&d));
				break;
			}
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
	reg_hasher_free(h);
	if (rc < 0)
		goto out;
	/* hash before the completeness checks: a member whose size swallowed
	 * the next one is named by its digest, not as the one that vanished */
	if (o->hash_data) {
		/* metadata members are done; the rest in parallel */
		uint64_t hashed = 0;
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
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

int reg_bundle_scan(reg_bundle_stats *out, int fd, const char *name, const reg_bundle_opts *o,
		    cm_error *err)
{
	reg_bundle_stats st;
	memset(&st, 0, sizeof(st));
	struct stat before, after;
	int rc = 0;
	if (fstat(fd, &before) < 0)
		rc = cm_error_sys(err, errno, "stat");
	else if (!S_ISREG(before.st_mode))
		rc = cm_error_set(err, CM_EINVAL, "not a regular file");
	if (rc == 0) {
		st.file_size = (uint64_t)before.st_size;
		rc = scan_fd(&st, fd, o, err);
	}
	/* A bundle written while it was read could verify one state and hold
	 * another: the layout and digests above hold only for an unchanged
	 * file. */
	if (rc == 0 && (fstat(fd, &after) < 0 || after.st_size != before.st_size ||
			after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
			after.st_mtim.tv_nsec != before.st_mtim.tv_nsec ||
			after.st_ctim.tv_sec != before.st_ctim.tv_sec ||
			after.st_ctim.tv_nsec != before.st_ctim.tv_nsec))
		rc = cm_error_set(err, CM_EVERIFY, "the file changed while it was verified");
	if (out)
		*out = st;
	if (rc < 0 && rc != CM_ENOMEM && rc != CM_EIO)
		err->code = rc = CM_EVERIFY;
	if (rc < 0)
		return cm_error_wrap(err, "bundle %s", name);
	return 0;
}
