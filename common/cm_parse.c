#include "cm_parse.h"

#include <errno.h>
#include <stdlib.h>

int cm_parse_long(long *out, const char *s, long lo, long hi)
{
	if (!s || !*s)
		return -1;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}
