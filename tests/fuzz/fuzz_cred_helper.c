/* libFuzzer target: a credential helper's answer to `get`
 * (reg_auth_parse_helper_output), as docker-credential-<name> prints it on
 * stdout. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reg_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (64 << 10)) /* run_helper's cap on the answer */
		return 0;
	char user[256], secret[4096];
	cm_error err = {0};
	int rc = reg_auth_parse_helper_output(user, sizeof(user), secret, sizeof(secret),
					      (const char *)data, size, &err);
	if (rc != 1 && rc != CM_EINVAL)
		abort();
	if (rc == 1) {
		if (!memchr(user, '\0', sizeof(user)) || !memchr(secret, '\0', sizeof(secret)))
			abort();
	} else {
		if (!err.msg[0] || user[0] || secret[0])
			abort();
	}
	/* tiny buffers: refused as too long, never an overflow */
	char u1[1], s1[2];
	rc = reg_auth_parse_helper_output(u1, sizeof(u1), s1, sizeof(s1), (const char *)data, size,
					  &err);
	if (rc == 1 && (u1[0] || !memchr(s1, '\0', sizeof(s1))))
		abort();
	return 0;
}
