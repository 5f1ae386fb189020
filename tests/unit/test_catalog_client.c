/* Listing a registry (registry/reg_catalog_client.c): the Link header's
 * next page. The requests themselves are covered by
 * tests/e2e/receipt_registry.sh (a docker-registry and hostile stubs). */
#include "reg_client.h"
#include "tu.h"

static void test_link_next(void)
{
	char out[256];
	cm_error e = {0};
	const char *u = "http://127.0.0.1:5000/v2/_catalog?n=100";
	TU_CHECK(reg_link_next(out, sizeof(out), "</v2/_catalog?last=b&n=100>; rel=\"next\"", u,
			       &e) == 0);
	TU_CHECK_STR(out, "http://127.0.0.1:5000/v2/_catalog?last=b&n=100");
	/* absolute on the same origin; a prev link first */
	TU_CHECK(reg_link_next(out, sizeof(out),
			       "</v2/_catalog?n=1>; rel=\"prev\", "
			       "<http://127.0.0.1:5000/v2/_catalog?last=c>; rel=\"next\"",
			       u, &e) == 0);
	TU_CHECK_STR(out, "http://127.0.0.1:5000/v2/_catalog?last=c");
	/* none: the last page */
	TU_CHECK(reg_link_next(out, sizeof(out), "", u, &e) == 0);
	TU_CHECK_STR(out, "");
	TU_CHECK(reg_link_next(out, sizeof(out), "</v2/_catalog?n=1>; rel=\"prev\"", u, &e) == 0);
	TU_CHECK_STR(out, "");
	/* another origin (host, port or scheme): refused */
	TU_CHECK(reg_link_next(out, sizeof(out),
			       "<http://127.0.0.2:5000/v2/_catalog>; rel=\"next\"", u,
			       &e) == CM_EINVAL);
	TU_CHECK(strstr(e.msg, "another origin") != NULL);
	TU_CHECK_STR(out, "");
	TU_CHECK(reg_link_next(out, sizeof(out),
			       "<http://127.0.0.1:5001/v2/_catalog>; rel=\"next\"", u,
			       &e) == CM_EINVAL);
	TU_CHECK(reg_link_next(out, sizeof(out),
			       "<https://127.0.0.1:5000/v2/_catalog>; rel=\"next\"", u,
			       &e) == CM_EINVAL);
	/* too long for out */
	char small[24];
	TU_CHECK(reg_link_next(small, sizeof(small), "</v2/_catalog?last=b>; rel=\"next\"", u,
			       &e) == CM_EINVAL);
	TU_CHECK(strstr(e.msg, "too long") != NULL);
}

int main(void)
{
	TU_RUN(test_link_next);
	TU_EXIT();
}
