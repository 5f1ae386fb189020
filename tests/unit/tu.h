/* A tiny unit-test harness: each case prints "ok - name" or
 * "not ok - name: why"; tests/run counts the lines. */
#ifndef TU_H
#define TU_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tu_failed_total;
static int tu_case_failed;

#define TU_CHECK(cond)                                                                             \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("#   %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
			tu_case_failed = 1;                                                        \
		}                                                                                  \
	} while (0)

#define TU_CHECK_STR(a, b)                                                                         \
	do {                                                                                       \
		const char *tu_a = (a), *tu_b = (b);                                               \
		if (strcmp(tu_a, tu_b) != 0) {                                                     \
			printf("#   %s:%d: '%s' != '%s'\n", __FILE__, __LINE__, tu_a, tu_b);       \
			tu_case_failed = 1;                                                        \
		}                                                                                  \
	} while (0)

#define TU_RUN(fn)                                                                                 \
	do {                                                                                       \
		tu_case_failed = 0;                                                                \
		fn();                                                                              \
		printf("%s - %s\n", tu_case_failed ? "not ok" : "ok", #fn);                        \
		tu_failed_total += tu_case_failed;                                                 \
	} while (0)

#define TU_EXIT() return tu_failed_total ? 1 : 0

#endif
