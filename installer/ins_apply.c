#include "ins_apply.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cm_emit.h"

#define MANIFEST_FILE_MAX ((size_t)64 << 20)
#define PHASES 6

/* Helm's install order, with each kind's phase and whether it is
 * cluster-scoped (C) or namespaced (N). Other kinds: phase 5, last. */
enum { N = 0, C = 1 };
static const struct {
	const char *kind;
	int phase, cluster;
} helm_order[] = {
    {"PriorityClass", 0, C},
    {"Namespace", 0, C},
    {"NetworkPolicy", 2, N},
    {"ResourceQuota", 2, N},
    {"LimitRange", 2, N},
    {"PodDisruptionBudget", 2, N},
    {"ServiceAccount", 2, N},
    {"Secret", 2, N},
    {"SecretList", 2, N},
    {"ConfigMap", 2, N},
    {"StorageClass", 2, C},
    {"PersistentVolume", 2, C},
    {"PersistentVolumeClaim", 2, N},
    {"CustomResourceDefinition", 1, C},
    {"ClusterRole", 2, C},
    {"ClusterRoleList", 2, C},
    {"ClusterRoleBinding", 2, C},
    {"ClusterRoleBindingList", 2, C},
    {"Role", 2, N},
    {"RoleList", 2, N},
    {"RoleBinding", 2, N},
    {"RoleBindingList", 2, N},
    {"Service", 3, N},
    {"DaemonSet", 3, N},
    {"Pod", 3, N},
    {"ReplicationController", 3, N},
    {"ReplicaSet", 3, N},
    {"Deployment", 3, N},
    {"HorizontalPodAutoscaler", 3, N},
    {"StatefulSet", 3, N},
    {"Job", 3, N},
    {"CronJob", 3, N},
    {"IngressClass", 3, C},
    {"Ingress", 3, N},
    {"APIService", 3, C},
    {"MutatingWebhookConfiguration", 4, C},
    {"ValidatingWebhookConfiguration", 4, C},
};
#define N_HELM (int)(sizeof(helm_order) / sizeof(helm_order[0]))

static const char *phase_name(int phase)
{
	static const char *const names[PHASES] = {"namespaces", "CRDs",	    "RBAC and config",
						  "workloads",	"webhooks", "custom resources"};
	return phase >= 0 && phase < PHASES ? names[phase] : "?";
}

static int rank_of(const char *kind)
{
	int i;
	for (i = 0; i < N_HELM && strcmp(kind, helm_order[i].kind) != 0; i++)
		;
	return i;
}

static void classify(ins_kdoc *d)
{
	d->rank = rank_of(d->kind);
	d->phase = d->rank == N_HELM ? 5 : helm_order[d->rank].phase;
}

static int cmp_doc(const void *a, const void *b)
{
	const ins_kdoc *x = a, *y = b;
	if (x->phase != y->phase)
		return x->phase < y->phase ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->rank == N_HELM) {
		int c = strcmp(x->kind, y->kind);
		if (c)
			return c;
	}
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void ins_apply_sort(ins_kdoc *docs, size_t n)
{
	qsort(docs, n, sizeof(*docs), cmp_doc);
}

/* Walk one document's events and pick the fields we route by. */
typedef struct frame {
	int is_map;
	int want_key;
	char key[64];
	char path[192]; /* dotted path of this container, "" for the root; "!" inside a sequence */
} frame;

static void take(ins_kdoc *d, const char *path, const char *v)
{
	struct {
		const char *p;
		char *dst;
		size_t n;
	} f[] = {
	    {"kind", d->kind, sizeof(d->kind)},
	    {"apiVersion", d->api, sizeof(d->api)},
	    {"metadata.name", d->name, sizeof(d->name)},
	    {"metadata.namespace", d->ns, sizeof(d->ns)},
	    {"spec.names.kind", d->crd_kind, sizeof(d->crd_kind)},
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (strcmp(path, f[i].p) == 0)
			snprintf(f[i].dst, f[i].n, "%s", v);
}

static int parse_one(ins_kdoc *d, const char *text, size_t len, int *empty, cm_error *err)
{
	yaml_parser_t p;
	yaml_event_t ev;
	frame st[64];
	int depth = 0, rc = 0, done = 0, nodes = 0;
	if (!yaml_parser_initialize(&p))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = cm_error_set(err, CM_EINVAL, "YAML error at line %zu: %s",
					  p.problem_mark.line + 1, p.problem ? p.problem : "?");
			break;
		}
		frame *top = depth ? &st[depth - 1] : NULL;
		char path[256] = "";
		int is_value = top && top->is_map && !top->want_key;
		if (top && is_value) {
			if (strcmp(top->path, "!") == 0)
				snprintf(path, sizeof(path), "!");
			else
				snprintf(path, sizeof(path), "%s%s%s", top->path,
					 top->path[0] ? "." : "", top->key);
		} else if (top && !top->is_map) {
			snprintf(path, sizeof(path), "!");
		}
		switch (ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			if (nodes) /* a second document in one chunk cannot happen: we split on ---
				    */
				done = 1;
			break;
		case YAML_SCALAR_EVENT:
			nodes++;
			if (top && top->is_map && top->want_key) {
				snprintf(top->key, sizeof(top->key), "%s",
					 (const char *)ev.data.scalar.value);
				top->want_key = 0;
			} else if (top) {
				if (depth == 1 || path[0] != '!')
					take(d, path, (const char *)ev.data.scalar.value);
				if (top->is_map)
					top->want_key = 1;
			}
			break;
		case YAML_ALIAS_EVENT:
			if (top && top->is_map)
				top->want_key = !top->want_key;
			break;
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			nodes++;
			if (depth == (int)(sizeof(st) / sizeof(st[0]))) {
				rc = cm_error_set(err, CM_EINVAL, "YAML nests too deeply");
				done = 1;
				break;
			}
			if (top && top->is_map && top->want_key) {
				rc = cm_error_set(err, CM_EINVAL,
						  "complex mapping keys are not supported");
				done = 1;
				break;
			}
			st[depth].is_map = ev.type == YAML_MAPPING_START_EVENT;
			st[depth].want_key = 1;
			st[depth].key[0] = '\0';
			if (snprintf(st[depth].path, sizeof(st[depth].path), "%s",
				     depth == 0 ? ""
				     : path[0]	? path
						: "!") >= (int)sizeof(st[depth].path)) {
				rc = cm_error_set(err, CM_EINVAL, "keys nested too deep: %.64s...",
						  path);
				done = 1;
				break;
			}
			depth++;
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			depth--;
			if (depth > 0 && st[depth - 1].is_map)
				st[depth - 1].want_key = 1;
			break;
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	*empty = nodes == 0 || (nodes == 1 && !d->kind[0]);
	return rc;
}

/* Only whitespace and comments? */
static int blank(const char *s, size_t n)
{
	int comment = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			comment = 0;
		else if (s[i] == '#')
			comment = 1;
		else if (!comment && s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	}
	return 1;
}

static int add_doc(ins_kdoc **docs, size_t *n, const char *text, size_t len, const char *file,
		   int doc, cm_error *err)
{
	if (blank(text, len))
		return 0;
	ins_kdoc d;
	memset(&d, 0, sizeof(d));
	d.text = text;
	d.len = len;
	d.doc = doc;
	snprintf(d.file, sizeof(d.file), "%s", file);
	int empty = 0;
	int rc = parse_one(&d, text, len, &empty, err);
	if (rc < 0)
		return cm_error_wrap(err, "%s document %d", file, doc);
	if (empty)
		return 0;
	if (!d.kind[0] || !d.api[0] || !d.name[0])
		return cm_error_set(
		    err, CM_EINVAL,
		    "%s document %d: kind, apiVersion and metadata.name are required", file, doc);
	classify(&d);
	d.seq = *n;
	ins_kdoc *v = realloc(*docs, (*n + 1) * sizeof(*v));
	if (!v)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	v[*n] = d;
	*docs = v;
	(*n)++;
	return 0;
}

int ins_apply_parse(ins_kdoc **docs, size_t *n, const char *text, size_t len, const char *file,
		    cm_error *err)
{
	/* Split at "---" lines (column 0): a document marker ends any block
	 * scalar, so a textual split is exact and keeps every byte. */
	size_t start = 0, i = 0;
	int doc = 1;
	while (i <= len) {
		size_t eol = i;
		while (eol < len && text[eol] != '\n')
			eol++;
		int marker = eol - i >= 3 && strncmp(text + i, "---", 3) == 0 &&
			     (eol - i == 3 || text[i + 3] == ' ' || text[i + 3] == '\t' ||
			      text[i + 3] == '\r');
		int end_marker = eol - i >= 3 && strncmp(text + i, "...", 3) == 0 &&
				 (eol - i == 3 || text[i + 3] == ' ' || text[i + 3] == '\r');
		if (marker || end_marker) {
			int rc = add_doc(docs, n, text + start, i - start, file, doc, err);
			if (rc < 0)
				return rc;
			if (!blank(text + start, i - start))
				doc++;
			start = eol < len ? eol + 1 : len;
			if (marker && !blank(text + i + 3, eol - i - 3) && text[i + 3] != '#') {
				/* "--- value" on the marker line: keep it in the document */
				start = i + 3;
			}
		}
		if (eol >= len)
			break;
		i = eol + 1;
	}
	return add_doc(docs, n, text + start, len - start, file, doc, err);
}

/* The first meaningful line of kubectl's stderr. */
static void first_line(char *out, size_t n, const char *e)
{
	while (*e == '\n' || *e == ' ')
		e++;
	const char *nl = strchr(e, '\n');
	size_t l = nl ? (size_t)(nl - e) : strlen(e);
	snprintf(out, n, "%.*s", (int)l, e);
}

static void trim_tail(char *s)
{
	size_t l = strlen(s);
	while (l && (s[l - 1] == '\n' || s[l - 1] == ' '))
		s[--l] = '\0';
}

typedef struct applier {
	const ins_apply_opts *o;
	uint64_t calls, retries, applied;
} applier;

/* The object d, in its own namespace or else ns (NULL: none). */
static void describe(char *out, size_t n, const ins_kdoc *d, const char *ns)
{
	ns = d->ns[0] ? d->ns : ns ? ns : "";
	snprintf(out, n, "%.127s/%.255s%s%.255s (%.600s, document %d)", d->kind, d->name,
		 ns[0] ? " in namespace " : "", ns, d->file, d->doc);
}

/* d failed for good after tries attempts; why: kubectl's stderr, else e. */
static int failed(cm_error *err, const char *phase, const ins_kdoc *d, const char *ns, int tries,
		  const cm_buf *why, const char *e)
{
	char desc[1600], msg[1024];
	describe(desc, sizeof(desc), d, ns);
	snprintf(msg, sizeof(msg), "%.1000s", why->data && why->len ? why->data : e);
	trim_tail(msg);
	return cm_error_set(err, CM_EFAIL, "%s: %s failed after %d attempt%s: %s", phase, desc,
			    tries, tries == 1 ? "" : "s", msg);
}

/* One kubectl call; stderr lands in errb. */
static int kubectl(applier *ap, const char *const *rest, const char *in, size_t in_len,
		   const char *suffix, cm_buf *errb, cm_error *err)
{
	ap->calls++; /* said, and run unless --dry-run */
	return ins_kube_run(ap->o->ctx, ap->o->kube, rest, in, in_len, suffix, errb, err);
}

static int batch_text(cm_buf *b, ins_kdoc *const *v, size_t n, cm_error *err)
{
	int rc = 0;
	b->len = 0;
	b->limit = (size_t)256 << 20;
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = cm_buf_append(b, "---\n", 4, err);
		if (rc == 0)
			rc = cm_buf_append(b, v[i]->text, v[i]->len, err);
		if (rc == 0 && (v[i]->len == 0 || v[i]->text[v[i]->len - 1] != '\n'))
			rc = cm_buf_append(b, "\n", 1, err);
	}
	return rc;
}

/* Apply objects in one call (with -n ns when ns is set), retrying
 * transient errors; on failure, find and name the object. */
static int apply_batch(applier *ap, ins_kdoc *const *v, size_t n, const char *ns, const char *phase,
		       cm_error *err)
{
	const ins_apply_opts *o = ap->o;
	const ins_kube *k = o->kube;
	cm_buf text = CM_BUF_INIT, errb = CM_BUF_INIT;
	char nsflag[300];
	snprintf(nsflag, sizeof(nsflag), "--namespace=%s", ns ? ns : "");
	const char *rest[] = {"apply",
			      "--server-side",
			      "--force-conflicts",
			      "--field-manager=ferry",
			      "-f",
			      "-",
			      ns ? nsflag : NULL,
			      NULL};
	char suffix[256];
	snprintf(suffix, sizeof(suffix), " < (%zu object%s: %s)", n, n == 1 ? "" : "s", phase);
	int rc = batch_text(&text, v, n, err);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < n; i++) { /* what the one command applies */
		char d[1600];
		describe(d, sizeof(d), v[i], ns);
		ins_ctx_say(o->ctx, INS_SAY_PLAN, "  %s", d);
	}
	double wait = k->backoff > 0 ? k->backoff : 0.0;
	for (int attempt = 0;; attempt++) {
		cm_error e = {0};
		rc = kubectl(ap, rest, text.data, text.len, suffix, &errb, &e);
		if (rc == 0) {
			ap->applied += n;
			goto out;
		}
		if (rc == CM_ENOTFOUND) { /* kubectl itself is missing */
			cm_error_set(err, rc, "%s", e.msg);
			goto out;
		}
		const char *es = errb.data ? errb.data : e.msg;
		if (ins_kube_transient(es) && attempt < k->retries) {
			char l[512];
			first_line(l, sizeof(l), es);
			ins_ctx_say(o->ctx, INS_SAY_INFO,
				    "%s: transient error, retry %d/%d in %.2gs: %s", phase,
				    attempt + 1, k->retries, wait, l);
			ap->retries++;
			ins_kube_backoff(&wait);
			continue;
		}
		/* give up: name the object */
		int tries = attempt + 1;
		if (n > 1) {
			for (size_t i = 0; i < n; i++) {
				cm_buf one = CM_BUF_INIT;
				cm_error e1 = {0};
				int r1 = batch_text(&one, &v[i], 1, &e1);
				if (r1 == 0)
					r1 = kubectl(ap, rest, one.data, one.len,
						     " < (1 object: finding the failing one)",
						     &errb, &e1);
				cm_buf_free(&one);
				if (r1 < 0) {
					rc = failed(err, phase, v[i], ns, tries, &errb, e1.msg);
					goto out;
				}
			}
			/* every object went through on its own: the batch failed for a
			 * reason that has passed */
			ap->applied += n;
			rc = 0;
			goto out;
		}
		rc = failed(err, phase, v[0], ns, tries, &errb, e.msg);
		goto out;
	}
out:
	cm_buf_free(&text);
	cm_buf_free(&errb);
	return rc;
}

/* kubectl wait --for condition=Established on every CRD of the phase. A
 * CRD just created may not be visible yet: while one is absent (get
 * --ignore-not-found: no answer), wait and ask again. */
static int wait_crds(applier *ap, ins_kdoc *const *v, size_t n, cm_error *err)
{
	const ins_apply_opts *o = ap->o;
	ins_argv rest = {NULL, 0, 0};
	cm_buf errb = CM_BUF_INIT;
	const char *head[] = {"wait", "--for", "condition=Established", NULL};
	int rc = ins_argv_addv(&rest, head, err);
	if (rc == 0)
		rc = ins_argv_addf(&rest, err, "--timeout=%.0fs", o->wait_timeout);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = ins_argv_addf(&rest, err, "crd/%s", v[i]->name);
	double wait = o->kube->backoff;
	for (int attempt = 0; rc == 0; attempt++) {
		cm_error e = {0};
		if (kubectl(ap, (const char *const *)rest.v, NULL, 0, NULL, &errb, &e) == 0)
			break;
		int absent = 0;
		for (size_t i = 0; i < n && !absent && attempt < o->kube->retries; i++) {
			json_t *j = NULL;
			absent = ins_kube_get(&j, o->ctx, o->kube, "customresourcedefinition",
					      v[i]->name, NULL, (size_t)4 << 20, 0, NULL) == 0;
			json_decref(j);
		}
		if (absent) {
			ap->retries++;
			ins_kube_backoff(&wait);
			continue;
		}
		char msg[1024];
		snprintf(msg, sizeof(msg), "%.1000s", errb.data && errb.len ? errb.data : e.msg);
		trim_tail(msg);
		rc = cm_error_set(err, CM_EFAIL,
				  "CRDs: waiting for condition Established (timeout %.0fs): %s",
				  o->wait_timeout, msg);
	}
	ins_argv_free(&rest);
	cm_buf_free(&errb);
	return rc;
}

/* Every namespace the objects land in, for o->namespaces_ready. */
static int namespaces_ready(const ins_kdoc *docs, size_t n, const ins_apply_opts *o, cm_error *err)
{
	const char **ns = calloc(n + 1, sizeof(*ns));
	size_t k = 0;
	if (!ns)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		int r = rank_of(docs[i].kind);
		if (r < N_HELM && helm_order[r].cluster)
			continue;
		const char *x = docs[i].ns[0]	? docs[i].ns
				: o->namespace_ ? o->namespace_
						: "default";
		size_t j;
		for (j = 0; j < k && strcmp(ns[j], x) != 0; j++)
			;
		if (j == k)
			ns[k++] = x;
	}
	int rc = o->namespaces_ready(o->ud, ns, k, err);
	free(ns);
	return rc;
}

int ins_apply_manifests(ins_step_report *rep, const ins_bundle *b, const ins_apply_opts *o,
			cm_error *err)
{
	double t0 = ins_now();
	ins_kdoc *docs = NULL;
	size_t n = 0;
	cm_buf *texts = calloc(b->n_manifests + 1, sizeof(cm_buf));
	ins_kdoc **batch = NULL;
	int rc = 0;
	applier ap = {o, 0, 0, 0};
	char ns_doc[512];
	if (!texts)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	for (size_t i = 0; i < b->n_manifests && rc == 0; i++) {
		const ins_file *f = &b->manifests[i];
		rep->bytes += f->m->size;
		if ((rc = ins_bundle_read(&texts[i], b, f->m, MANIFEST_FILE_MAX, err)) == 0)
			rc = ins_apply_parse(&docs, &n, texts[i].data ? texts[i].data : "",
					     texts[i].len, f->path, err);
	}
	if (rc < 0)
		goto out;
	/* --namespace: make sure it exists */
	if (o->namespace_) {
		int have = 0;
		for (size_t i = 0; i < n; i++)
			have |= strcmp(docs[i].kind, "Namespace") == 0 &&
				strcmp(docs[i].name, o->namespace_) == 0;
		if (!have) {
			/* libyaml's emitter writes it: the name stays one value */
			cm_buf nb = CM_BUF_INIT;
			nb.limit = sizeof(ns_doc) - 1;
			json_t *nj = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind",
					       "Namespace", "metadata", "name", o->namespace_);
			rc = nj ? cm_yaml_append(&nb, nj, err)
				: cm_error_set(err, CM_EINVAL, "--namespace is not UTF-8");
			json_decref(nj);
			if (rc == 0)
				snprintf(ns_doc, sizeof(ns_doc), "%s", nb.data);
			cm_buf_free(&nb);
			if (rc == 0)
				rc = ins_apply_parse(&docs, &n, ns_doc, strlen(ns_doc),
						     "(--namespace)", err);
			if (rc < 0)
				goto out;
		}
	}
	ins_apply_sort(docs, n);
	batch = calloc(n ? n : 1, sizeof(*batch));
	if (!batch) {
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
		goto out;
	}
	size_t crds = 0;
	for (int ph = 0; ph < PHASES && rc == 0; ph++) {
		char phase[64];
		snprintf(phase, sizeof(phase), "phase %d/%d %s", ph + 1, PHASES, phase_name(ph));
		/* pass 0: objects that name their namespace (or none needed);
		 * pass 1: objects left open, sent with --namespace */
		size_t in_phase = 0;
		for (int pass = 0; pass < 2 && rc == 0; pass++) {
			size_t k = 0;
			for (size_t i = 0; i < n; i++) {
				if (docs[i].phase != ph)
					continue;
				int open = !docs[i].ns[0] && o->namespace_;
				if (open == pass)
					batch[k++] = &docs[i];
			}
			if (k == 0)
				continue;
			in_phase += k;
			if (in_phase == k)
				ins_ctx_say(o->ctx, INS_SAY_INFO, "%s", phase);
			rc = apply_batch(&ap, batch, k, pass ? o->namespace_ : NULL, phase, err);
		}
		/* namespaces exist now: pull secrets before anything that pulls */
		if (rc == 0 && ph == 0 && o->namespaces_ready)
			rc = namespaces_ready(docs, n, o, err);
		if (rc == 0 && ph == 1 && in_phase) {
			size_t k = 0;
			for (size_t i = 0; i < n; i++)
				if (docs[i].phase == 1)
					batch[k++] = &docs[i];
			crds = k;
			rc = wait_crds(&ap, batch, k, err);
		}
	}
	rep->done = ap.applied;
	snprintf(rep->note, sizeof(rep->note),
		 "%zu objects, %zu CRDs waited for, %llu kubectl commands, %llu retries", n, crds,
		 (unsigned long long)ap.calls, (unsigned long long)ap.retries);
out:
	for (size_t i = 0; i < b->n_manifests; i++)
		cm_buf_free(&texts[i]);
	free(texts);
	free(batch);
	free(docs);
	rep->secs = ins_now() - t0;
	return rc;
}
