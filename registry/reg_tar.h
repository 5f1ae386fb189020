/* Strict parsing of the tar headers a bundle may hold.
 *
 * A bundle is a tar that ferry writes (libarchive, pax_restricted), so the
 * verifier accepts only that shape and nothing a lenient reader would also
 * take: ustar headers ("ustar\0" "00") with a correct checksum, regular
 * files ('0' or NUL), and pax extended headers ('x') whose records are
 * `path` (only for a name too long for the ustar fields) and `size` (only
 * equal to the ustar size field). No GNU or SCHILY extensions, no global
 * headers, no links, devices or folders. Every other tar reader (GNU tar,
 * Python's tarfile, libarchive) then sees the same names and sizes as this
 * one; tests/e2e/verify_hostile.sh checks that against GNU tar and Python.
 *
 * These are pure functions over bytes (no I/O), fuzzed by
 * tests/fuzz/fuzz_bundle.c through the scanner that uses them. */
#ifndef REG_TAR_H
#define REG_TAR_H

#include <stddef.h>
#include <stdint.h>

#include "cm_error.h"

#define REG_TAR_BLOCK 512
/* A pax header of a ferry bundle holds one path (<= 1024 bytes) and one
 * size: anything larger is not ours. */
#define REG_TAR_PAX_MAX 4096
#define REG_TAR_NAME_MAX 1024

typedef struct reg_tar_pax {
	char path[REG_TAR_NAME_MAX + 1]; /* "" when absent */
	int has_size;
	uint64_t size;
} reg_tar_pax;

typedef struct reg_tar_hdr {
	char type;			 /* '0' (regular, NUL normalised to '0') or 'x' (pax) */
	char name[REG_TAR_NAME_MAX + 1]; /* prefix "/" name from the ustar fields */
	uint64_t size;
} reg_tar_hdr;

/* 1 when the 512 bytes are all zero (an end-of-archive block). */
int reg_tar_is_zero(const void *p, size_t n);

/* Parse one header block strictly. CM_EVERIFY with the reason otherwise
 * (the caller adds where). */
int reg_tar_parse_header(reg_tar_hdr *out, const unsigned char blk[REG_TAR_BLOCK], cm_error *err);

/* Parse the data of a pax extended header ('x'): "LEN key=value\n"
 * records, each LEN counting its whole record, only the allowed keywords,
 * each at most once. */
int reg_tar_parse_pax(reg_tar_pax *out, const char *data, size_t len, cm_error *err);

/* Apply a pax header to the member header that follows it: the name and
 * size every reader will use. CM_EVERIFY when the pax header says what the
 * ustar fields could have said (a `path` that fits them) or contradicts
 * them (a `size` that differs). */
int reg_tar_apply_pax(reg_tar_hdr *h, const reg_tar_pax *pax, cm_error *err);

#endif
