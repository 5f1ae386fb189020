/* libFuzzer target: the TOML reader (ins_toml_parse, installer/ins_toml.c),
 * which reads `containerd config dump`.
 * fuzz-max-len: 4096
 *
 * Input: the TOML text.
 *
 * Invariants (abort when broken):
 *   - the answer is 0, or CM_EINVAL (CM_ENOMEM) with a message naming
 *     "TOML", and then nothing is left in the result;
 *   - on success the entries are sorted and unique, each found again by
 *     ins_toml_get under its own path; every path has 1..64 segments of at
 *     most 1024 bytes; every value has a known type, a string value and
 *     every item of an array are terminated strings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ins_toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ins_toml t;
	cm_error e = {0};
	int rc = ins_toml_parse(&t, (const char *)data, size, &e);
	if (rc < 0) {
		if ((rc != CM_EINVAL && rc != CM_ENOMEM) || !strstr(e.msg, "TOML") || t.n || t.v)
			abort();
		return 0;
	}
	if (rc != 0)
		abort();
	for (size_t i = 0; i < t.n; i++) {
		const ins_toml_entry *x = &t.v[i];
		if (x->n_seg < 1 || x->n_seg > 64)
			abort();
		const char *path[65];
		for (size_t s = 0; s < x->n_seg; s++) {
			if (!x->seg[s] || strlen(x->seg[s]) > 1024)
				abort();
			path[s] = x->seg[s];
		}
		path[x->n_seg] = NULL;
		if (ins_toml_get(&t, path) != x)
			abort(); /* sorted and unique: the lookup finds this one */
		switch (x->type) {
		case INS_TOML_STRING:
			if (!x->s || strlen(x->s) > size)
				abort();
			break;
		case INS_TOML_ARRAY:
			for (size_t k = 0; k < x->n_items; k++)
				if (!x->items[k] || strlen(x->items[k]) > size)
					abort();
			break;
		case INS_TOML_INT:
		case INS_TOML_BOOL:
		case INS_TOML_OTHER:
			break;
		default:
			abort();
		}
	}
	ins_toml_free(&t);
	return 0;
}
