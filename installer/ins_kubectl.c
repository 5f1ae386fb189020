#include "ins_kubectl.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static int kube_argv(ins_argv *a, const ins_kube *k, const char *const *rest, cm_error *err)
{
	int rc = ins_argv_add(a, k->prog, err);
	if (rc == 0 && k->kubeconfig)
		rc = ins_argv_addf(a, err, "--kubeconfig=%s", k->kubeconfig);
	if (rc == 0 && k->context[0])
		rc = ins_argv_addf(a, err, "--context=%s", k->context);
	if (rc == 0)
		rc = ins_argv_addv(a, rest, err);
	return rc;
}

int ins_kube_run(const ins_ctx *c, const ins_kube *k, const char *const *rest, const char *in,
		 size_t in_len, const char *suffix, cm_buf *errb, cm_error *err)
{
	ins_argv a = {NULL, 0, 0};
	int rc = kube_argv(&a, k, rest, err);
	ins_proc_io io;
	memset(&io, 0, sizeof(io));
	cm_buf out = CM_BUF_INIT;
	out.limit = (size_t)8 << 20;
	if (errb) {
		errb->len = 0;
		if (errb->data)
			errb->data[0] = '\0';
		errb->limit = (size_t)1 << 20;
	}
	io.out = &out;
	io.errout = errb;
	io.in = in;
	io.in_len = in_len;
	if (rc == 0)
		rc = ins_ctx_run(c, NULL, (const char *const *)a.v, &io, suffix, err);
	cm_buf_free(&out);
	ins_argv_free(&a);
	return rc;
}

int ins_kube_query(const ins_ctx *c, const ins_kube *k, const char *const *rest, cm_buf *out,
		   int quiet, cm_error *err)
{
	ins_argv a = {NULL, 0, 0};
	int rc = kube_argv(&a, k, rest, err);
	if (rc == 0 && quiet) {
		ins_proc_io io = {.out = out};
		rc = ins_proc_run((const char *const *)a.v, &io, err);
	} else if (rc == 0) {
		rc = ins_ctx_query(c, out, NULL, (const char *const *)a.v, err);
	}
	ins_argv_free(&a);
	return rc;
}

int ins_kube_get(json_t **out, const ins_ctx *c, const ins_kube *k, const char *type,
		 const char *name, const char *ns, size_t out_cap, int wipe, cm_error *err)
{
	*out = NULL;
	const char *rest[] = {
	    "get", type, name, "--ignore-not-found", "-o", "json", ns ? "-n" : NULL, ns, NULL};
	cm_buf q = CM_BUF_INIT;
	q.limit = out_cap;
	if (wipe) { /* allocated at the cap: growing never leaves a copy behind */
		if (!(q.data = malloc(out_cap + 1)))
			return cm_error_set(err, CM_ENOMEM, "out of memory");
		q.cap = out_cap + 1;
		q.data[0] = '\0';
	}
	int rc = ins_kube_query(c, k, rest, &q, 1, err);
	if (rc == 0 && q.len) {
		json_error_t je;
		*out = json_loadb(q.data, q.len, 0, &je);
		rc = *out ? 1
			  : cm_error_set(err, CM_EINVAL, "%s %s: the answer is not JSON (%s)", type,
					 name, je.text);
	}
	if (wipe && q.data)
		OPENSSL_cleanse(q.data, q.cap);
	cm_buf_free(&q);
	return rc;
}

int ins_kube_transient(const char *e)
{
	/* metav1.StatusReason values that pass with time */
	static const char *const passing[] = {"Conflict", "TooManyRequests", "ServiceUnavailable",
					      "Timeout",  "ServerTimeout",   "InternalError"};
	static const char tag[] = "Error from server (";
	for (const char *p = strstr(e, tag); p; p = strstr(p + 1, tag)) {
		const char *r = p + sizeof(tag) - 1;
		size_t l = strspn(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
		if (r[l] != ')')
			continue;
		size_t i;
		for (i = 0; i < sizeof(passing) / sizeof(passing[0]); i++)
			if (strlen(passing[i]) == l && strncmp(r, passing[i], l) == 0)
				break;
		if (i == sizeof(passing) / sizeof(passing[0]))
			return 0; /* the server refused it: trying again changes nothing */
	}
	return 1;
}

void ins_kube_backoff(double *wait)
{
	ins_sleep(*wait);
	*wait = *wait * 2 > 30 ? 30 : *wait * 2;
}
