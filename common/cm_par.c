#include "cm_par.h"

#include <pthread.h>

typedef struct par {
	size_t n, next;
	int (*fn)(void *ctx, unsigned worker, size_t i, cm_error *err);
	void *ctx;
	pthread_mutex_t mu;
	unsigned workers;
	int rc;
	cm_error err;
} par;

static void *par_main(void *arg)
{
	par *p = arg;
	pthread_mutex_lock(&p->mu);
	unsigned me = p->workers++;
	for (;;) {
		size_t i = p->rc == 0 && p->next < p->n ? p->next++ : p->n;
		pthread_mutex_unlock(&p->mu);
		if (i == p->n)
			return NULL;
		cm_error e = {0};
		int rc = p->fn(p->ctx, me, i, &e);
		pthread_mutex_lock(&p->mu);
		if (rc < 0 && p->rc == 0) {
			p->rc = rc;
			p->err = e;
		}
	}
}

int cm_par_each(size_t n, unsigned threads,
		int (*fn)(void *ctx, unsigned worker, size_t i, cm_error *err), void *ctx,
		cm_error *err)
{
	par p = {.n = n, .fn = fn, .ctx = ctx};
	if (pthread_mutex_init(&p.mu, NULL) != 0)
		return cm_error_set(err, CM_ENOMEM, "cannot create a mutex");
	if (threads > CM_PAR_MAX)
		threads = CM_PAR_MAX;
	if (threads > n)
		threads = (unsigned)n;
	pthread_t th[CM_PAR_MAX];
	unsigned started = 0;
	for (unsigned t = 1; t < threads; t++)
		started += pthread_create(&th[started], NULL, par_main, &p) == 0;
	par_main(&p); /* this thread works too */
	for (unsigned t = 0; t < started; t++)
		pthread_join(th[t], NULL);
	pthread_mutex_destroy(&p.mu);
	if (p.rc < 0 && err)
		*err = p.err;
	return p.rc;
}
