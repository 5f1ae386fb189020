/* cm_error carries its cause: the errno of a failed call and the digest
 * concerned survive wrapping, and a new error clears them, so callers
 * decide on fields, never on the message text. */
#include <errno.h>
#include <string.h>

#include "cm_error.h"
#include "tu.h"

static void test_cause_survives_wrap(void)
{
	cm_error e = {0};
	TU_CHECK(cm_error_sys(&e, EPIPE, "writing %s to ctr", "blob") == CM_EIO);
	TU_CHECK(e.sys_errno == EPIPE);
	cm_error_set_digest(&e, "sha256:abc");
	cm_error_wrap(&e, "node %s", "n1");
	TU_CHECK(e.code == CM_EIO && e.sys_errno == EPIPE);
	TU_CHECK_STR(e.digest, "sha256:abc");
	TU_CHECK(strncmp(e.msg, "node n1: writing blob to ctr: ", 30) == 0);
	/* a new error is a new cause */
	cm_error_set(&e, CM_EVERIFY, "digest mismatch");
	TU_CHECK(e.sys_errno == 0 && e.digest[0] == '\0');
	cm_error_sys(&e, ENOENT, "open");
	cm_error_clear(&e);
	TU_CHECK(e.code == 0 && e.sys_errno == 0 && e.msg[0] == '\0');
	cm_error_set_digest(NULL, "x"); /* NULL is a no-op */
	TU_CHECK(cm_exit_code(CM_ECANCELED) == 1);
}

int main(void)
{
	TU_RUN(test_cause_survives_wrap);
	TU_EXIT();
}
