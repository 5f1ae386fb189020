/* libFuzzer target: the HTTP Range header (reg_server_parse_range).
 * fuzz-max-len: 256
 *
 * Input: "SIZE\nHEADER" -- the blob size in decimal on the first line
 * (digits only, wrapping at 2^64), the Range header value after it. The
 * seeds in corpus/range/ are readable that way.
 *
 * Invariants (abort when broken):
 *   - the answer is -1 (416), 0 (serve all) or 1 (a range);
 *   - a range has first <= last < size, so it never reads past the blob;
 *   - a range is never answered for an empty blob;
 *   - a header that does not start with the "bytes" unit is ignored (0);
 *   - "bytes=A-B" with A < size and B >= A is the range A..min(B, size-1)
 *     (RFC 9110 14.1.2: an end past the blob is clamped, never 416). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reg_server.h"

static int digits(const char *s, const char *e, uint64_t *out)
{
	uint64_t v = 0;
	if (s == e || e - s > 19)
		return 0;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[512];
	if (size >= sizeof(buf))
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	uint64_t blob = 0;
	char *p = buf;
	for (; *p >= '0' && *p <= '9'; p++)
		blob = blob * 10 + (uint64_t)(*p - '0');
	if (*p == '\n')
		p++;
	const char *h = p;

	uint64_t first = 7, last = 3;
	int rc = reg_server_parse_range(h, blob, &first, &last);
	if (rc < -1 || rc > 1)
		abort();
	if (rc == 1 && !(first <= last && last < blob))
		abort();
	const char *u = h;
	while (*u == ' ')
		u++;
	if (strncmp(u, "bytes=", 6) != 0 && rc != 0)
		abort();
	/* the model for the plain "bytes=A-B" form */
	if (strncmp(h, "bytes=", 6) == 0) {
		const char *a = h + 6, *dash = strchr(a, '-');
		uint64_t va, vb;
		if (dash && digits(a, dash, &va) &&
		    digits(dash + 1, dash + 1 + strlen(dash + 1), &vb) && va < blob && vb >= va) {
			uint64_t want_last = vb < blob ? vb : blob - 1;
			if (rc != 1 || first != va || last != want_last)
				abort();
		}
	}
	return 0;
}
