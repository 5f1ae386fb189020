/* Tools a bundle carries: ins_tools.h. */
#include "ins_tools.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK ((size_t)1 << 20)

const ins_member *ins_tools_installer(const ins_bundle *b)
{
	return ins_bundle_member(b, INS_TOOL_INSTALLER);
}

int ins_tools_version(char out[CM_VERSION_MAX], const ins_bundle *b, const ins_member *m,
		      cm_error *err)
{
	out[0] = '\0';
	char *buf = malloc(CHUNK);
	if (!buf)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	reg_bidx_cursor c;
	int rc = ins_bundle_cursor(&c, b, m, REG_BIDX_TRUST_VERIFIED, err);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	cm_vscan s;
	cm_vscan_init(&s);
	/* the whole member is read (and so hashed): a marker is only taken
	 * from bytes that matched SHA256SUMS */
	for (;;) {
		size_t got = 0;
		if ((rc = reg_bidx_cursor_read(&c, buf, CHUNK, &got, err)) < 0 || got == 0)
			break;
		cm_vscan_feed(&s, buf, got);
	}
	reg_bidx_cursor_close(&c);
	free(buf);
	if (rc < 0)
		return cm_error_wrap(err, "reading %s", m->path);
	const char *v = cm_vscan_result(&s);
	if (v)
		memcpy(out, v, strlen(v) + 1);
	return 0;
}
