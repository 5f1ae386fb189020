/* common/ helpers the builder shares: cm_grow (cm_buf.h) and cm_dir_names
 * (cm_file.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_buf.h"
#include "cm_file.h"
#include "tu.h"

/* The array keeps its elements as it grows, capacity doubles from 16, and
 * a size that cannot be allocated fails with CM_ENOMEM, v untouched. */
static void test_grow(void)
{
	int *v = NULL;
	size_t cap = 0, n = 0;
	cm_error err = {0};
	for (int i = 0; i < 100; i++) {
		int *nv = cm_grow(v, n, &cap, sizeof(*v), &err);
		TU_CHECK(nv != NULL);
		if (!nv)
			break;
		v = nv;
		v[n++] = i * 3;
		TU_CHECK(n <= cap);
	}
	TU_CHECK(cap == 128);
	int same = 1;
	for (size_t i = 0; i < n; i++)
		same &= v[i] == (int)i * 3;
	TU_CHECK(n == 100 && same);
	size_t big = (size_t)-1 / 4;
	TU_CHECK(cm_grow(v, big, &big, 64, &err) == NULL && err.code == CM_ENOMEM);
	TU_CHECK(big == (size_t)-1 / 4);
	free(v);
}

/* Names sorted by strcmp, without "." and ".."; a missing folder is named
 * in the error. */
static void test_dir_names(void)
{
	char dir[] = "/tmp/ferry-cm-helpers.XXXXXX";
	TU_CHECK(mkdtemp(dir) != NULL);
	static const char *names[] = {"b.yaml", "A", ".hidden", "a.yaml", "sub"};
	char p[256];
	for (size_t i = 0; i < 5; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		FILE *f = fopen(p, "w");
		TU_CHECK(f != NULL);
		if (f)
			fclose(f);
	}
	char **v;
	size_t n;
	cm_error err = {0};
	TU_CHECK(cm_dir_names(&v, &n, dir, &err) == 0);
	TU_CHECK(n == 5);
	if (n == 5) {
		TU_CHECK_STR(v[0], ".hidden");
		TU_CHECK_STR(v[1], "A");
		TU_CHECK_STR(v[2], "a.yaml");
		TU_CHECK_STR(v[3], "b.yaml");
		TU_CHECK_STR(v[4], "sub");
	}
	cm_names_free(v, n);
	snprintf(p, sizeof(p), "%s/none", dir);
	TU_CHECK(cm_dir_names(&v, &n, p, &err) == CM_EIO && v == NULL && n == 0);
	TU_CHECK(strstr(err.msg, "none") != NULL);
	cm_names_free(NULL, 0); /* a no-op */
	cm_rmtree(dir);
}

int main(void)
{
	TU_RUN(test_grow);
	TU_RUN(test_dir_names);
	TU_EXIT();
}
