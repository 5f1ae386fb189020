/* libFuzzer target: the registry address of `push --to` and
 * `--registry` (ins_push_check_target, curl's URL parser underneath). It
 * is written into hosts.toml, registries.conf and OKD objects, so an
 * accepted address must hold nothing that breaks out of them.
 * fuzz-max-len: 512 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ins_install.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char to[600];
	if (size >= sizeof(to))
		return 0;
	memcpy(to, data, size);
	to[size] = '\0';
	cm_error err = {0};
	int rc = ins_push_check_target(to, &err);
	if (rc < 0 && (rc != CM_EUSAGE || !err.msg[0]))
		abort(); /* a refusal is a usage error with a message */
	if (rc == 0)
		for (const char *p = to; *p; p++)
			if (strchr("\"'\\ \t\r\n@?#{}", *p) || (unsigned char)*p < 0x20)
				abort(); /* accepted, yet it could break out of a config file */
	return 0;
}
