#include "reg_tar.h"

#include <stdio.h>
#include <string.h>

/* ustar field offsets and lengths */
#define F_NAME 0, 100
#define F_MODE 100, 8
#define F_UID 108, 8
#define F_GID 116, 8
#define F_SIZE 124, 12
#define F_MTIME 136, 12
#define F_CHKSUM 148, 8
#define O_TYPE 156
#define F_LINK 157, 100
#define O_MAGIC 257
#define F_UNAME 265, 32
#define F_GNAME 297, 32
#define F_DEVMAJ 329, 8
#define F_DEVMIN 337, 8
#define F_PREFIX 345, 155
#define F_PAD 500, 12

int reg_tar_is_zero(const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i])
			return 0;
	return 1;
}

/* An octal field: optional leading spaces, digits, then only NULs or
 * spaces. An empty field is 0. Base-256 (high bit set) only where allowed.
 * 0 ok, -1 malformed. */
static int octal(uint64_t *out, const unsigned char *blk, size_t off, size_t len, int b256)
{
	const unsigned char *f = blk + off;
	uint64_t v = 0;
	size_t i = 0;
	if (b256 && (f[0] & 0x80)) {
		/* big-endian, positive only (0x80 marker, no sign bit) */
		if (f[0] != 0x80)
			return -1;
		for (i = 1; i < len; i++) {
			if (v >> 56)
				return -1;
			v = (v << 8) | f[i];
		}
		*out = v;
		return 0;
	}
	while (i < len && f[i] == ' ')
		i++;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v * 8 + (uint64_t)(f[i] - '0');
	}
	for (; i < len; i++)
		if (f[i] != '\0' && f[i] != ' ')
			return -1;
	*out = v;
	return 0;
}

/* A string field: bytes up to the first NUL, and only NULs after it. */
static int str_field(char *out, size_t out_n, const unsigned char *blk, size_t off, size_t len)
{
	const unsigned char *f = blk + off;
	size_t n = 0;
	while (n < len && f[n])
		n++;
	if (!reg_tar_is_zero(f + n, len - n) || n >= out_n)
		return -1;
	memcpy(out, f, n);
	out[n] = '\0';
	return 0;
}

int reg_tar_parse_header(reg_tar_hdr *out, const unsigned char blk[REG_TAR_BLOCK], cm_error *err)
{
	memset(out, 0, sizeof(*out));
	/* the name field as it stands, for messages about a header we refuse
	 * before its fields are trusted (printable bytes only) */
	char raw[101];
	size_t rn = 0;
	for (; rn < 100 && blk[rn]; rn++)
		raw[rn] = blk[rn] >= 0x20 && blk[rn] < 0x7f ? (char)blk[rn] : '?';
	raw[rn] = '\0';
	if (memcmp(blk + O_MAGIC,
		   "ustar\0"
		   "00",
		   8) != 0)
		return cm_error_set(err, CM_EVERIFY,
				    "the header of '%s' is not a POSIX ustar header (old GNU or v7 "
				    "tar format)",
				    raw);
	uint64_t sum = 0, want;
	for (size_t i = 0; i < REG_TAR_BLOCK; i++)
		sum += (i >= 148 && i < 156) ? (uint64_t)' ' : blk[i];
	if (octal(&want, blk, F_CHKSUM, 0) < 0 || want != sum)
		return cm_error_set(err, CM_EVERIFY, "the header of '%s': checksum mismatch", raw);
	char name[101], prefix[156], junk[101];
	if (str_field(name, sizeof(name), blk, F_NAME) < 0 ||
	    str_field(prefix, sizeof(prefix), blk, F_PREFIX) < 0)
		return cm_error_set(err, CM_EVERIFY, "malformed name field");
	if (!name[0])
		return cm_error_set(err, CM_EVERIFY, "empty name");
	snprintf(out->name, sizeof(out->name), "%s%s%s", prefix, prefix[0] ? "/" : "", name);
	const char *n = out->name;
	char t = (char)blk[O_TYPE];
	if (t == '\0')
		t = '0';
	switch (t) {
	case '0':
	case 'x':
		break;
	case '1':
		return cm_error_set(err, CM_EVERIFY, "'%s' is a hard link; links are not allowed",
				    n);
	case '2':
		return cm_error_set(err, CM_EVERIFY,
				    "'%s' is a symbolic link; links are not allowed", n);
	case '3':
	case '4':
		return cm_error_set(err, CM_EVERIFY, "'%s' is not a regular file (a device)", n);
	case '5':
		return cm_error_set(err, CM_EVERIFY, "'%s' is not a regular file (a folder)", n);
	case '6':
		return cm_error_set(err, CM_EVERIFY, "'%s' is not a regular file (a FIFO)", n);
	case 'g':
		return cm_error_set(err, CM_EVERIFY, "'%s' is a global pax header; not allowed", n);
	case 'L':
	case 'K':
		return cm_error_set(err, CM_EVERIFY, "'%s' is a GNU long-name header; not allowed",
				    n);
	case 'S':
		return cm_error_set(err, CM_EVERIFY, "'%s' is a GNU sparse file; not allowed", n);
	default:
		return cm_error_set(err, CM_EVERIFY, "'%s' is not a regular file (tar type 0x%02x)",
				    n, (unsigned char)t);
	}
	out->type = t;
	uint64_t v;
	if (octal(&out->size, blk, F_SIZE, 1) < 0)
		return cm_error_set(err, CM_EVERIFY, "'%s': malformed size field", n);
	if (octal(&v, blk, F_MODE, 0) < 0 || octal(&v, blk, F_UID, 0) < 0 ||
	    octal(&v, blk, F_GID, 0) < 0 || octal(&v, blk, F_MTIME, 0) < 0 ||
	    octal(&v, blk, F_DEVMAJ, 0) < 0 || octal(&v, blk, F_DEVMIN, 0) < 0)
		return cm_error_set(err, CM_EVERIFY, "'%s': malformed numeric field", n);
	if (str_field(junk, sizeof(junk), blk, F_LINK) < 0 || junk[0])
		return cm_error_set(err, CM_EVERIFY, "'%s': a link name on a regular file", n);
	if (str_field(junk, sizeof(junk), blk, F_UNAME) < 0 ||
	    str_field(junk, sizeof(junk), blk, F_GNAME) < 0 || !reg_tar_is_zero(blk + 500, 12))
		return cm_error_set(err, CM_EVERIFY, "'%s': malformed header fields", n);
	if (t == 'x' && out->size > REG_TAR_PAX_MAX)
		return cm_error_set(err, CM_EVERIFY,
				    "pax header of %llu bytes (at most %d are allowed)",
				    (unsigned long long)out->size, REG_TAR_PAX_MAX);
	return 0;
}

int reg_tar_parse_pax(reg_tar_pax *out, const char *data, size_t len, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	size_t at = 0;
	int has_path = 0;
	while (at < len) {
		/* "LEN key=value\n", LEN in decimal counting the whole record */
		size_t rl = 0, i = at;
		if (i >= len || data[i] < '1' || data[i] > '9')
			return cm_error_set(err, CM_EVERIFY, "malformed pax record at byte %zu",
					    at);
		for (; i < len && data[i] >= '0' && data[i] <= '9'; i++) {
			if (rl > REG_TAR_PAX_MAX)
				return cm_error_set(err, CM_EVERIFY, "pax record too long");
			rl = rl * 10 + (size_t)(data[i] - '0');
		}
		if (i >= len || data[i] != ' ' || rl > len - at || rl < (i - at) + 4 ||
		    data[at + rl - 1] != '\n')
			return cm_error_set(err, CM_EVERIFY, "malformed pax record at byte %zu",
					    at);
		const char *kv = data + i + 1, *end = data + at + rl - 1;
		const char *eq = memchr(kv, '=', (size_t)(end - kv));
		if (!eq || eq == kv)
			return cm_error_set(err, CM_EVERIFY, "malformed pax record at byte %zu",
					    at);
		size_t kl = (size_t)(eq - kv), vl = (size_t)(end - eq - 1);
		const char *val = eq + 1;
		if (memchr(val, '\0', vl))
			return cm_error_set(err, CM_EVERIFY, "NUL byte in pax record %.*s", (int)kl,
					    kv);
		if (kl == 4 && memcmp(kv, "path", 4) == 0) {
			if (has_path)
				return cm_error_set(err, CM_EVERIFY,
						    "pax keyword path given twice");
			if (vl == 0 || vl > REG_TAR_NAME_MAX)
				return cm_error_set(err, CM_EVERIFY,
						    "pax path of %zu bytes is not allowed", vl);
			memcpy(out->path, val, vl);
			out->path[vl] = '\0';
			has_path = 1;
		} else if (kl == 4 && memcmp(kv, "size", 4) == 0) {
			if (out->has_size)
				return cm_error_set(err, CM_EVERIFY,
						    "pax keyword size given twice");
			uint64_t v = 0;
			if (vl == 0 || vl > 19 || (vl > 1 && val[0] == '0'))
				return cm_error_set(err, CM_EVERIFY, "malformed pax size");
			for (size_t k = 0; k < vl; k++) {
				if (val[k] < '0' || val[k] > '9')
					return cm_error_set(err, CM_EVERIFY, "malformed pax size");
				v = v * 10 + (uint64_t)(val[k] - '0');
			}
			out->size = v;
			out->has_size = 1;
		} else {
			return cm_error_set(err, CM_EVERIFY,
					    "pax keyword '%.*s' is not allowed (a bundle's pax "
					    "headers hold only path and size)",
					    (int)(kl > 64 ? 64 : kl), kv);
		}
		at += rl;
	}
	if (!has_path && !out->has_size)
		return cm_error_set(err, CM_EVERIFY, "empty pax header");
	return 0;
}

/* Does a name fit the ustar fields: name (100 bytes), or prefix (155)
 * "/" name split at a slash? The writer uses a pax path only when not. */
static int fits_ustar(const char *p)
{
	size_t n = strlen(p);
	if (n <= 100)
		return 1;
	for (size_t i = 1; i < n && i <= 155; i++)
		if (p[i] == '/' && n - i - 1 <= 100 && n - i - 1 > 0)
			return 1;
	return 0;
}

int reg_tar_apply_pax(reg_tar_hdr *h, const reg_tar_pax *pax, cm_error *err)
{
	if (pax->path[0]) {
		/* ferry's writer uses a pax path only for a name the ustar name
		 * field cannot hold; a short one only renames the member for
		 * pax-aware readers and not for others. */
		if (fits_ustar(pax->path))
			return cm_error_set(err, CM_EVERIFY,
					    "pax path '%.200s' renames member '%.200s' (a name "
					    "that fits the ustar header needs no pax path)",
					    pax->path, h->name);
		memcpy(h->name, pax->path, strlen(pax->path) + 1);
	}
	if (pax->has_size && pax->size != h->size)
		return cm_error_set(err, CM_EVERIFY,
				    "pax size %llu differs from the header's size %llu",
				    (unsigned long long)pax->size, (unsigned long long)h->size);
	return 0;
}
