/* The bundle file: one uncompressed pax tar whose members come in a fixed
 * order so that one streaming pass verifies everything (docs/bundle-format.md):
 *
 *   SHA256SUMS, SHA256SUMS.sig, bundle.json, oci-layout, index.json,
 *   blobs/sha256/..., manifests/..., models/...
 *
 * This module holds the rules (names, order, types) and the scanner that
 * both verifies and indexes a bundle. Signature checking is a callback so
 * that the registry library never links key code. */
#ifndef REG_BUNDLE_H
#define REG_BUNDLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "cm_buf.h"
#include "cm_error.h"
#include "reg_digest.h"

#define REG_BUNDLE_SUMS "SHA256SUMS"
#define REG_BUNDLE_SIG "SHA256SUMS.sig"
#define REG_BUNDLE_JSON "bundle.json"
#define REG_BUNDLE_FORMAT_VERSION 1
#define REG_BUNDLE_SUMS_MAX ((size_t)32 << 20)
#define REG_BUNDLE_JSON_MAX ((size_t)64 << 20)
#define REG_BUNDLE_NAME_MAX 1024

/* Rank of a member path in the fixed order (0 SHA256SUMS ... 7 models/),
 * or -1 when the path belongs nowhere. */
int reg_bundle_rank(const char *path);

/* Safety rules for a member name: relative, no "..", no "." or empty
 * components, a conservative character set, at most REG_BUNDLE_NAME_MAX
 * bytes. CM_EVERIFY with the reason otherwise. */
int reg_bundle_check_name(const char *path, cm_error *err);

/* Format one SHA256SUMS line ("SHA256 (path) = hex\n") into b. */
int reg_bundle_sums_line(cm_buf *b, const char *path, const char *hex, cm_error *err);

typedef struct reg_bundle_member {
	const char *path;
	uint64_t data_offset; /* where the member's bytes start in the file */
	uint64_t size;
	const char *hex; /* sha256 listed in SHA256SUMS */
	int verified;	 /* 1 when this pass hashed the bytes and they matched */
} reg_bundle_member;

typedef struct reg_bundle_opts {
	/* Check the signature over the exact SHA256SUMS bytes. NULL skips the
	 * check (--insecure-skip-signature); digests are still checked. */
	int (*check_sig)(void *ctx, const void *sums, size_t sums_len, const void *sig,
			 size_t sig_len, cm_error *err);
	void *ctx;
	/* 1: hash every member (full verify). 0: read headers and seek past data
	 * (building an index for lazy verification); the metadata members
	 * (bundle.json, oci-layout, index.json) are hashed either way. */
	int hash_data;
	/* Hashing threads for hash_data: 0 means one per CPU this process may
	 * run on (at most 8). Members are independent, so they hash in
	 * parallel; a single member is hashed by one thread. */
	unsigned threads;
	/* 1: stop after SHA256SUMS and its signature (stats.sums is set). */
	int sig_only;
	/* Called for every regular member after SHA256SUMS.sig (after its bytes
	 * were checked when hash_data). May be NULL. */
	int (*on_member)(void *ctx, const reg_bundle_member *m, cm_error *err);
	/* Receives bundle.json's bytes when non-NULL. */
	cm_buf *bundle_json;
} reg_bundle_opts;

typedef struct reg_bundle_stats {
	uint64_t members;
	uint64_t bytes_hashed;
	uint64_t file_size;
	reg_digest sums; /* sha256 of the exact SHA256SUMS bytes */
} reg_bundle_stats;

/* Scan (and verify) the bundle open as fd; name is for messages. The
 * scanner is strict (reg_tar.h): it accepts only the tar that ferry
 * writes, so every tar reader sees the members it saw. Every failure of
 * the format, signature or digests is CM_EVERIFY with a message naming
 * the member. The file must not change during the scan (size, mtime and
 * ctime are compared afterwards). out may be NULL. The descriptor is
 * read with pread only: its offset is untouched. */
int reg_bundle_scan(reg_bundle_stats *out, int fd, const char *name, const reg_bundle_opts *o,
		    cm_error *err);

/* ---- volume sets: one bundle in several files -------------------------
 *
 * `ferry-build build --volume-size` writes OUT.tar.000, OUT.tar.001, ...
 * whose concatenation is exactly the single-file bundle. A volume set is
 * the read side: the parts opened once each, fstat'ed, and read as one
 * logical byte range (a single-file bundle is a set of one part). Nothing
 * is joined or copied. */

typedef struct reg_bundle_part {
	int fd;
	char *name;	/* the part's path, for messages */
	uint64_t start; /* logical offset of its first byte */
	uint64_t size;	/* its bytes */
	struct stat st; /* as opened (or as last noticed) */
} reg_bundle_part;

typedef struct reg_bundle_vol {
	reg_bundle_part *p;
	size_t n;
	uint64_t size; /* logical bytes: the sum of the parts */
	char *name;    /* the name the user gave (bundle or prefix) */
	char *sidecar; /* PREFIX.parts (a multi-part set), or NULL */
	char *prefix;  /* PREFIX of a set in parts, or NULL for one file */
	int owned;     /* the fds are closed by reg_bundle_vol_free */
} reg_bundle_vol;

/* One contiguous piece of a logical range: bytes [off, off + len) of fd. */
typedef struct reg_bundle_seg {
	int fd;
	uint64_t off, len;
} reg_bundle_seg;

#define REG_BUNDLE_PARTS_MAX 1000 /* .000 to .999 */
#define REG_BUNDLE_SIDECAR_MAX ((size_t)1 << 20)

/* Open a bundle by name: a file (PATH), or a volume set named by its
 * first part (PREFIX.000) or by its prefix (PREFIX, when no file of that
 * name exists). Every part is opened once and fstat'ed. A set with a gap
 * or with a part of the wrong size is CM_EVERIFY naming the part
 * ("OUT.tar.003: missing", "OUT.tar.002: 1048576 bytes short"): every part
 * but the last is as large as the first, the last is no larger. */
int reg_bundle_vol_open(reg_bundle_vol **out, const char *path, cm_error *err);
/* A set of one part over a descriptor the caller keeps (not closed). */
int reg_bundle_vol_from_fd(reg_bundle_vol **out, int fd, const char *name, cm_error *err);
void reg_bundle_vol_free(reg_bundle_vol *v);
/* Read exactly n logical bytes at off (across parts). A short part is
 * CM_EVERIFY naming it, an I/O error CM_EIO. */
int reg_bundle_vol_read(const reg_bundle_vol *v, void *buf, size_t n, uint64_t off, cm_error *err);
/* Feed logical bytes [off, off + len) into h, buf_n bytes at a time
 * through buf (as reg_bundle_vol_read fails). CM_EFAIL "stopped" as soon
 * as *stop (may be NULL) is set. */
int reg_bundle_vol_hash(reg_hasher *h, const reg_bundle_vol *v, uint64_t off, uint64_t len,
			char *buf, size_t buf_n, const int *stop, cm_error *err);
/* The pieces of [off, off + len): fills at most max, returns how many
 * there are (0 when the range lies outside the set). */
size_t reg_bundle_vol_segs(const reg_bundle_vol *v, uint64_t off, uint64_t len, reg_bundle_seg *out,
			   size_t max);
/* The index of the part holding logical byte off (n - 1 past the end). */
size_t reg_bundle_vol_part_at(const reg_bundle_vol *v, uint64_t off);
/* "OUT.tar.001" or "OUT.tar.001, OUT.tar.002": the parts holding
 * [off, off + len) (len 0: the one holding off). */
void reg_bundle_vol_where(const reg_bundle_vol *v, uint64_t off, uint64_t len, char *buf, size_t n);
/* 1 when every part still has the size, mtime and ctime (and inode) it
 * had; 0 when one changed. reg_bundle_vol_restat records the present. */
int reg_bundle_vol_same(const reg_bundle_vol *v);
void reg_bundle_vol_restat(reg_bundle_vol *v);
/* A multi-part set failed to verify: when the sidecar (PREFIX.parts,
 * unsigned: a hint only) lists a part that is missing, of another size, or
 * (check_hash) with other bytes, put that first in err's message. Never
 * changes the outcome. */
void reg_bundle_vol_explain(const reg_bundle_vol *v, int check_hash, cm_error *err);

/* The sidecar PREFIX.parts: "# NAME: SIZE bytes" and "SHA256 (NAME) = HEX"
 * (sha256sum --tag) lines, NAME the part's file name. */
typedef struct reg_bundle_sidecar_part {
	char name[256];
	uint64_t size;
	int has_size;
	char hex[REG_DIGEST_HEXLEN + 1];
} reg_bundle_sidecar_part;
/* Parse a sidecar's text (caller frees *out). */
int reg_bundle_sidecar_parse(reg_bundle_sidecar_part **out, size_t *n, const char *text, size_t len,
			     cm_error *err);
/* verify --parts-only: check every part the sidecar beside the set lists
 * (size, then sha256). report (may be NULL) is called for each part with
 * NULL (good) or what is wrong. CM_EVERIFY when any part is wrong. path
 * names the set as for reg_bundle_vol_open (or the sidecar itself). */
int reg_bundle_parts_check(const char *path,
			   void (*report)(void *ctx, const char *part, uint64_t size,
					  const char *problem),
			   void *ctx, cm_error *err);

/* The head of a bundle alone (`inspect --head`): SHA256SUMS, its
 * signature (o->check_sig; NULL skips it) and bundle.json, checked against
 * SHA256SUMS, read from the start of the file at path, or of PREFIX.000
 * when path is a set's prefix or first part: the first part suffices, the
 * other parts need not be there. Nothing after bundle.json is read or
 * checked. bundle_json receives its bytes; *read_size (may be NULL) the
 * size of the file read. CM_EVERIFY as the scanner's. */
int reg_bundle_read_head(cm_buf *bundle_json, uint64_t *read_size, const char *path,
			 const reg_bundle_opts *o, cm_error *err);

/* reg_bundle_scan over a volume set (the same checks; a digest mismatch or
 * a broken header names the part(s) holding the bytes). */
int reg_bundle_scan_vol(reg_bundle_stats *out, const reg_bundle_vol *v, const reg_bundle_opts *o,
			cm_error *err);

#endif
