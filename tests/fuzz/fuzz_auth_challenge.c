/* libFuzzer target: the WWW-Authenticate parser (reg_auth_parse_challenge)
 * and what the clients do with its result: the realm rules
 * (reg_auth_realm_check) and the token request (reg_auth_token_req). The
 * input is the header's value, as a registry would send it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reg_client.h"

static void check_str(const char *s, size_t n)
{
	/* every output is a NUL-terminated string within its buffer */
	if (!memchr(s, '\0', n))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	char *v = malloc(size + 1);
	if (!v)
		return 0;
	memcpy(v, data, size);
	v[size] = '\0';
	/* the sizes the clients use */
	char scheme[32], realm[1024], service[256], scope[600];
	int rc = reg_auth_parse_challenge(v, scheme, sizeof(scheme), realm, sizeof(realm), service,
					  sizeof(service), scope, sizeof(scope));
	check_str(scheme, sizeof(scheme));
	check_str(realm, sizeof(realm));
	check_str(service, sizeof(service));
	check_str(scope, sizeof(scope));
	if (rc == 0 && !scheme[0])
		abort();
	/* tiny buffers: truncation, never an overflow */
	char s1[1], r2[2], sv3[3], sc4[4];
	reg_auth_parse_challenge(v, s1, sizeof(s1), r2, sizeof(r2), sv3, sizeof(sv3), sc4,
				 sizeof(sc4));
	if (s1[0])
		abort();
	check_str(r2, sizeof(r2));
	check_str(sv3, sizeof(sv3));
	check_str(sc4, sizeof(sc4));
	reg_auth_parse_challenge(v, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
	if (rc == 0 && realm[0]) {
		static const char *const allow[] = {"auth.example.com", "127.0.0.2:5001"};
		int creds = 0;
		char host[300];
		cm_error err = {0};
		const char *origins[] = {"https://registry.example.com", "http://127.0.0.1:5000"};
		for (size_t i = 0; i < 2; i++) {
			int r = reg_auth_realm_check(&creds, host, sizeof(host), origins[i], realm,
						     allow, 2, &err);
			check_str(host, sizeof(host));
			if (r == 0 && creds != 0 && creds != 1)
				abort();
		}
		for (int ident = 0; ident < 2; ident++) {
			reg_token_req tr;
			if (reg_auth_token_req(&tr, realm, service, scope, ident, "s3cret", &err) ==
			    0) {
				if (!tr.url || (ident && !tr.form) || (!ident && tr.form))
					abort();
				reg_auth_token_req_free(&tr);
			}
		}
	}
	free(v);
	return 0;
}
