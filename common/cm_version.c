/* Version markers: cm_version.h. */
#include "cm_version.h"

#include <string.h>

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.0.0"
#endif

#define KEY "FERRY_VERSION="
#define KEY_LEN (sizeof(KEY) - 1)

const char cm_version_marker[] = KEY FERRY_VERSION;

const char *cm_version(void)
{
	return cm_version_marker + KEY_LEN;
}

static int value_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '.' || c == '+' || c == '~' || c == '-';
}

void cm_vscan_init(cm_vscan *s)
{
	memset(s, 0, sizeof(*s));
}

void cm_vscan_feed(cm_vscan *s, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n && !s->found; i++) {
		unsigned char c = b[i];
		if (s->in_value) {
			if (c == '\0' && s->n > 0) {
				s->v[s->n] = '\0';
				s->found = 1;
				continue;
			}
			if (value_char(c) && s->n + 1 < sizeof(s->v)) {
				s->v[s->n++] = (char)c;
				continue;
			}
			/* not a marker after all (the bare key, a longer text) */
			s->in_value = 0;
			s->n = 0;
			s->matched = 0;
		}
		if (c == (unsigned char)KEY[s->matched]) {
			if (++s->matched == KEY_LEN) {
				s->in_value = 1;
				s->n = 0;
			}
		} else {
			/* KEY has no proper prefix that is also a suffix of a
			 * partial match except its first letter */
			s->matched = c == (unsigned char)KEY[0] ? 1 : 0;
		}
	}
}

const char *cm_vscan_result(const cm_vscan *s)
{
	return s->found ? s->v : NULL;
}

int cm_version_cmp(const char *a, const char *b)
{
	while (*a || *b) {
		if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
			while (*a == '0')
				a++;
			while (*b == '0')
				b++;
			size_t la = strspn(a, "0123456789"), lb = strspn(b, "0123456789");
			if (la != lb)
				return la < lb ? -1 : 1;
			int c = strncmp(a, b, la);
			if (c)
				return c < 0 ? -1 : 1;
			a += la;
			b += lb;
			continue;
		}
		if (*a != *b) {
			/* the end (or a separator) sorts before more fields */
			if (!*a)
				return -1;
			if (!*b)
				return 1;
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		}
		a++;
		b++;
	}
	return 0;
}
