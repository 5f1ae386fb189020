/* A tiny unit-test harness: each case prints "ok - name" or
 * "not ok - name: why"; tests/run counts the lines. A case that made no
 * check at all fails ("no checks"): a test that cannot fail is a defect. */
#ifndef TU_H
#define TU_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tu_failed_total;
static int tu_case_failed;
static unsigned long tu_case_checks; /* checks made by the running case */

#define TU_CHECK(cond)                                                                             \
	do {                                                                                       \
		tu_case_checks++;                                                                  \
		if (!(cond)) {                                                                     \
			printf("#   %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
			tu_case_failed = 1;                                                        \
		}                                                                                  \
	} while (0)

#define TU_CHECK_STR(a, b)                                                                         \
	do {                                                                                       \
		const char *tu_a = (a), *tu_b = (b);                                               \
		tu_case_checks++;                                                                  \
		if (!tu_a || !tu_b || strcmp(tu_a, tu_b) != 0) {                                   \
			printf("#   %s:%d: '%s' != '%s'\n", __FILE__, __LINE__,                    \
			       tu_a ? tu_a : "(null)", tu_b ? tu_b : "(null)");                    \
			tu_case_failed = 1;                                                        \
		}                                                                                  \
	} while (0)

/* A check with its own message (printf-style) when cond is false. */
#define TU_CHECK_MSG(cond, ...)                                                                    \
	do {                                                                                       \
		tu_case_checks++;                                                                  \
		if (!(cond)) {                                                                     \
			printf("#   %s:%d: ", __FILE__, __LINE__);                                 \
			printf(__VA_ARGS__);                                                       \
			printf("\n");                                                              \
			tu_case_failed = 1;                                                        \
		}                                                                                  \
	} while (0)

#define TU_RUN(fn)                                                                                 \
	do {                                                                                       \
		tu_case_failed = 0;                                                                \
		tu_case_checks = 0;                                                                \
		fn();                                                                              \
		if (!tu_case_checks)                                                               \
			printf("not ok - %s: no checks\n", #fn);                                   \
		else                                                                               \
			printf("%s - %s\n", tu_case_failed ? "not ok" : "ok", #fn);                \
		tu_failed_total += tu_case_failed || !tu_case_checks;                              \
		fflush(stdout); /* a forked child must not print this line again */                \
	} while (0)

#define TU_EXIT() return tu_failed_total ? 1 : 0

#endif
