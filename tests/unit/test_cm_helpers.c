/* common/ helpers the builder and the registry share: cm_grow and CM_GROW
 * (cm_buf.h), cm_dir_names and cm_read_each (cm_file.h), cm_par_each
 * (cm_par.h). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_buf.h"
#include "cm_file.h"
#include "cm_par.h"
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

/* CM_GROW grows an array in place and keeps its elements. */
static void test_grow_at(void)
{
	uint64_t *v = NULL;
	size_t cap = 0;
	cm_error err = {0};
	int ok = 1;
	for (size_t i = 0; i < 40; i++) {
		ok &= CM_GROW(&v, i, &cap, &err) == 0 && v != NULL && i < cap;
		if (!ok)
			break;
		v[i] = i * i;
	}
	TU_CHECK(ok && cap == 64);
	for (size_t i = 0; ok && i < 40; i++)
		ok &= v[i] == i * i;
	TU_CHECK(ok);
	free(v);
}

typedef struct sum {
	uint64_t n, total;
	int fail_at; /* the call that fails, or -1 */
} sum;

static int add_block(void *ctx, const void *p, size_t n, cm_error *err)
{
	sum *s = ctx;
	if (s->fail_at >= 0 && s->n++ == (uint64_t)s->fail_at)
		return cm_error_set(err, CM_EVERIFY, "the sink refused block %d", s->fail_at);
	for (size_t i = 0; i < n; i++)
		s->total += ((const unsigned char *)p)[i];
	return 0;
}

/* Exactly n bytes, or to the end; a short file is named with how much it
 * lacks; the callback's error stops the read and comes back. */
static void test_read_each(void)
{
	char path[] = "/tmp/ferry-read-each.XXXXXX";
	int fd = mkstemp(path);
	TU_CHECK(fd >= 0);
	size_t len = (3u << 20) + 5; /* more than one block */
	unsigned char *data = malloc(len);
	uint64_t want = 0;
	for (size_t i = 0; data && i < len; i++) {
		data[i] = (unsigned char)(i * 7);
		want += data[i];
	}
	cm_error err = {0};
	TU_CHECK(data && cm_write_all(fd, data, len, &err) == 0);
	sum s = {0, 0, -1};
	uint64_t got = 0;
	TU_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	TU_CHECK(cm_read_each(fd, CM_READ_TO_END, add_block, &s, &got, path, &err) == 0);
	TU_CHECK(got == len && s.total == want);
	/* exactly 10 bytes, then the rest */
	sum a = {0, 0, -1};
	TU_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	TU_CHECK(cm_read_each(fd, 10, add_block, &a, &got, path, &err) == 0 && got == 10);
	TU_CHECK(cm_read_each(fd, len - 10, add_block, &a, NULL, path, &err) == 0);
	TU_CHECK(a.total == want);
	/* one byte more than the file holds */
	sum b = {0, 0, -1};
	TU_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	TU_CHECK(cm_read_each(fd, len + 1, add_block, &b, &got, path, &err) == CM_EIO);
	TU_CHECK(got == len && strstr(err.msg, "ended 1 bytes early") && strstr(err.msg, path));
	/* the sink's error */
	sum c = {0, 0, 1};
	TU_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	TU_CHECK(cm_read_each(fd, CM_READ_TO_END, add_block, &c, &got, path, &err) == CM_EVERIFY);
	TU_CHECK(c.n == 2 && got < len && strstr(err.msg, "refused block 1"));
	close(fd);
	unlink(path);
	free(data);
}

typedef struct par_ctx {
	int runs[1000];
	unsigned max_worker;
	size_t fail_at; /* (size_t)-1: none */
} par_ctx;

static int par_job(void *ctx, unsigned worker, size_t i, cm_error *err)
{
	par_ctx *p = ctx;
	__atomic_add_fetch(&p->runs[i], 1, __ATOMIC_RELAXED);
	unsigned m = __atomic_load_n(&p->max_worker, __ATOMIC_RELAXED);
	while (worker > m && !__atomic_compare_exchange_n(&p->max_worker, &m, worker, 0,
							  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	if (i == p->fail_at)
		return cm_error_set(err, CM_ENOTFOUND, "job %zu failed", i);
	if (p->fail_at != (size_t)-1)
		usleep(1000); /* the failing job ends while the others run */
	return 0;
}

/* Every job runs once on a worker below the thread count; after a failure
 * no job starts, and the failure's code and message come back. */
static void test_par_each(void)
{
	static par_ctx p;
	memset(&p, 0, sizeof(p));
	p.fail_at = (size_t)-1;
	cm_error err = {0};
	TU_CHECK(cm_par_each(1000, 4, par_job, &p, &err) == 0);
	int once = 1;
	for (size_t i = 0; i < 1000; i++)
		once &= p.runs[i] == 1;
	TU_CHECK(once && p.max_worker < 4);
	TU_CHECK(cm_par_each(0, 4, par_job, &p, &err) == 0);

	/* one thread: exactly the jobs up to the failing one */
	memset(&p, 0, sizeof(p));
	p.fail_at = 100;
	TU_CHECK(cm_par_each(1000, 1, par_job, &p, &err) == CM_ENOTFOUND);
	int ran = 0;
	for (size_t i = 0; i < 1000; i++)
		ran += p.runs[i];
	TU_CHECK(ran == 101 && p.runs[100] == 1 && p.max_worker == 0);

	/* four: the others stop soon after it (each job takes 1 ms; the
	 * last one would start after 0.3 s at best) */
	memset(&p, 0, sizeof(p));
	p.fail_at = 100;
	TU_CHECK(cm_par_each(1000, 4, par_job, &p, &err) == CM_ENOTFOUND);
	TU_CHECK(strstr(err.msg, "job 100 failed") != NULL);
	int at_most_once = 1;
	for (size_t i = 0; i < 1000; i++)
		at_most_once &= p.runs[i] <= 1;
	TU_CHECK(at_most_once && p.runs[100] == 1 && p.runs[999] == 0);
}

int main(void)
{
	TU_RUN(test_grow);
	TU_RUN(test_grow_at);
	TU_RUN(test_read_each);
	TU_RUN(test_par_each);
	TU_RUN(test_dir_names);
	TU_EXIT();
}
