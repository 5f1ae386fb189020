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

#endif
