/* ferry's version as a marker inside its binaries, found again by scanning
 * the bytes of a binary that is never run (the installer a bundle carries:
 * docs/portable.md), and versions compared.
 *
 * The marker is the string "FERRY_VERSION=<version>" followed by a NUL;
 * <version> is 1..31 characters of [0-9A-Za-z.+~-]. */
#ifndef CM_VERSION_H
#define CM_VERSION_H

#include <stddef.h>

#define CM_VERSION_MAX 32

/* "FERRY_VERSION=" FERRY_VERSION, kept in every binary that links it. */
extern const char cm_version_marker[];
/* This program's version (the part after '='). */
const char *cm_version(void);

/* A scanner fed with consecutive chunks of a file; it keeps the first
 * complete marker. */
typedef struct cm_vscan {
	size_t matched; /* bytes of "FERRY_VERSION=" matched so far */
	int in_value;	/* reading the version */
	size_t n;
	char v[CM_VERSION_MAX];
	int found;
} cm_vscan;

void cm_vscan_init(cm_vscan *s);
void cm_vscan_feed(cm_vscan *s, const void *p, size_t n);
/* The version found, or NULL. */
const char *cm_vscan_result(const cm_vscan *s);

/* Compare dotted versions ("0.1.0" < "0.10.0" < "1.0"): numeric fields
 * compared as numbers, anything else as text; <0, 0, >0. */
int cm_version_cmp(const char *a, const char *b);

#endif
