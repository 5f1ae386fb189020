#include "bld_manifests.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "cm_file.h"

extern char **environ;

#define STDERR_KEEP 8192

/* ---- member list ---- */

static void safe_name(char *out, size_t n, const char *in)
{
	size_t j = 0;
	for (size_t i = 0; in[i] && j + 1 < n; i++) {
		char c = in[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		out[j++] = ok ? c : '_';
	}
	out[j] = '\0';
	if (j == 0 || out[0] == '.')
		out[0] = '_';
}

/* The length of name's .yaml, .yml or .json extension, or 0. */
static size_t yaml_ext(const char *name)
{
	size_t a = strlen(name);
	for (const char *const *x = (const char *const[]){".yaml", ".yml", ".json", NULL}; *x; x++)
		if (a > strlen(*x) && strcmp(name + a - strlen(*x), *x) == 0)
			return strlen(*x);
	return 0;
}

static int add_member(bld_manifests *m, const char *origin, const char *base, int rendered,
		      cm_error *err)
{
	bld_mfile *nv = cm_grow(m->files, m->n_files, &m->cap_files, sizeof(*nv), err);
	if (!nv)
		return CM_ENOMEM;
	m->files = nv;
	bld_mfile *f = &m->files[m->n_files];
	memset(f, 0, sizeof(*f));
	char stem[200];
	safe_name(stem, sizeof(stem), base);
	stem[strlen(stem) - yaml_ext(stem)] = '\0';
	snprintf(f->member, sizeof(f->member), "manifests/%02zu-%s.yaml", m->n_files + 1, stem);
	snprintf(f->origin, sizeof(f->origin), "%s", origin);
	f->rendered = rendered;
	f->src = m->set.n_src - 1;
	m->n_files++;
	return 0;
}

static int add_file(bld_manifests *m, const char *path, cm_error *err)
{
	int rc = bld_yset_add_file(&m->set, path, err);
	if (rc < 0)
		return rc;
	const char *base = strrchr(path, '/');
	return add_member(m, path, base ? base + 1 : path, 0, err);
}

static int is_kustomization(const char *name)
{
	return strcmp(name, "kustomization.yaml") == 0 || strcmp(name, "kustomization.yml") == 0 ||
	       strcmp(name, "Kustomization") == 0;
}

int bld_manifests_add_path(bld_manifests *m, const char *path, int render_kustomizations,
			   cm_error *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return cm_error_sys(err, errno, "manifests %s", path);
	if (S_ISREG(st.st_mode))
		return add_file(m, path, err);
	if (!S_ISDIR(st.st_mode))
		return cm_error_set(err, CM_EINVAL, "manifests %s is neither a file nor a folder",
				    path);
	char **v;
	size_t n;
	int rc = cm_dir_names(&v, &n, path, err), kust = 0;
	for (size_t i = 0; i < n; i++)
		kust |= is_kustomization(v[i]);
	if (rc == 0 && kust) {
		cm_names_free(v, n);
		if (render_kustomizations)
			return bld_manifests_add_kustomize(m, path, err);
		return cm_error_set(
		    err, CM_EINVAL,
		    "%s holds a kustomization: list it as 'kustomize: %s' so that it is rendered",
		    path, path);
	}
	size_t added = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char fp[PATH_MAX];
		struct stat fst;
		if (v[i][0] == '.' || !yaml_ext(v[i]))
			continue;
		if (snprintf(fp, sizeof(fp), "%s/%s", path, v[i]) >= (int)sizeof(fp)) {
			rc = cm_error_set(err, CM_EINVAL, "path too long: %s/%s", path, v[i]);
			break;
		}
		if (stat(fp, &fst) < 0 || !S_ISREG(fst.st_mode))
			continue;
		rc = add_file(m, fp, err);
		added++;
	}
	cm_names_free(v, n);
	if (rc == 0 && added == 0)
		rc = cm_error_set(err, CM_EINVAL, "%s holds no .yaml, .yml or .json file", path);
	return rc;
}

/* ---- kustomize ---- */

static int find_on_path(char *out, size_t n, const char *prog)
{
	if (strchr(prog, '/')) {
		if (access(prog, X_OK) != 0)
			return 0;
		snprintf(out, n, "%s", prog);
		return 1;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *c = strchr(path, ':');
		size_t l = c ? (size_t)(c - path) : strlen(path);
		if (l > 0 && (size_t)snprintf(out, n, "%.*s/%s", (int)l, path, prog) < n) {
			struct stat st;
			if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
				return 1;
		}
		path += l;
		if (*path == ':')
			path++;
	}
	return 0;
}

/* The renderer: fills argv0 (size n) with the program's path and returns
 * "kustomize" or "kubectl", or NULL when neither is on PATH. FERRY_KUSTOMIZE
 * names a program to use instead ("none" pretends neither is there). */
static const char *kustomize_tool(char *argv0, size_t n)
{
	const char *env = getenv("FERRY_KUSTOMIZE");
	if (env && *env) {
		if (strcmp(env, "none") == 0 || !find_on_path(argv0, n, env))
			return NULL;
		const char *base = strrchr(argv0, '/');
		return strncmp(base ? base + 1 : argv0, "kubectl", 7) == 0 ? "kubectl"
									   : "kustomize";
	}
	if (find_on_path(argv0, n, "kustomize"))
		return "kustomize";
	if (find_on_path(argv0, n, "kubectl"))
		return "kubectl";
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run argv, capturing stdout (capped) and the head of stderr. */
static int run_capture(const char *const *argv, cm_buf *out, cm_buf *errb, int *status,
		       cm_error *err)
{
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) < 0)
		return cm_error_sys(err, errno, "pipe");
	if (pipe2(pe, O_CLOEXEC) < 0) {
		int e = errno;
		close(po[0]);
		close(po[1]);
		return cm_error_sys(err, e, "pipe");
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	if (rc != 0) {
		close(po[0]);
		close(pe[0]);
		return cm_error_sys(err, rc, "starting %s", argv[0]);
	}
	struct pollfd pf[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
	char buf[65536];
	double deadline = now_s() + BLD_KUSTOMIZE_TIMEOUT;
	int open_fds = 2;
	rc = 0;
	/* any error ends the wait and kills the program */
	while (rc == 0 && open_fds > 0) {
		int left = (int)((deadline - now_s()) * 1000);
		if (left <= 0) {
			rc = cm_error_set(err, CM_EFAIL, "%s did not finish within %d s", argv[0],
					  BLD_KUSTOMIZE_TIMEOUT);
			break;
		}
		int pr = poll(pf, 2, left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			rc = cm_error_sys(err, errno, "poll");
			break;
		}
		for (int i = 0; rc == 0 && i < 2; i++) {
			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t r = read(pf[i].fd, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 0) {
				out->limit = BLD_YAML_FILE_MAX;
				rc = out->len + (size_t)r > BLD_YAML_FILE_MAX
					 ? cm_error_set(err, CM_EINVAL,
							"%s printed more than %zu MiB of YAML",
							argv[0], BLD_YAML_FILE_MAX >> 20)
					 : cm_buf_append(out, buf, (size_t)r, err);
			} else if (errb->len < STDERR_KEEP) {
				size_t take = (size_t)r < STDERR_KEEP - errb->len
						  ? (size_t)r
						  : STDERR_KEEP - errb->len;
				cm_buf_append(errb, buf, take, err);
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	if (rc < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	return rc;
}

static const char *last_lines(cm_buf *b)
{
	if (!b->data)
		return "";
	while (b->len && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == ' '))
		b->data[--b->len] = '\0';
	const char *p = b->data + b->len;
	int lines = 0;
	while (p > b->data && lines < 3) {
		p--;
		if (*p == '\n')
			lines++;
	}
	return *p == '\n' ? p + 1 : p;
}

int bld_manifests_add_kustomize(bld_manifests *m, const char *dir, cm_error *err)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return cm_error_sys(err, errno, "kustomization folder %s", dir);
	if (!S_ISDIR(st.st_mode))
		return cm_error_set(err, CM_EINVAL, "kustomize: %s is not a folder", dir);
	char prog[PATH_MAX];
	const char *tool = kustomize_tool(prog, sizeof(prog));
	if (!tool)
		return cm_error_set(
		    err, CM_EFAIL,
		    "rendering %s needs 'kustomize' or 'kubectl' on PATH, and neither was found: "
		    "install one (Debian: kubernetes-client provides kubectl), or render it "
		    "yourself and list the output with 'path:'",
		    dir);
	const char *verb = strcmp(tool, "kubectl") == 0 ? "kustomize" : "build";
	const char *argv[] = {prog, verb, dir, NULL};
	cm_buf out = CM_BUF_INIT, eb = CM_BUF_INIT;
	int status = 0;
	if (m->log)
		fprintf(m->log, "manifests: %s %s %s\n", prog, verb, dir);
	int rc = run_capture(argv, &out, &eb, &status, err);
	if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		rc = cm_error_set(err, CM_EFAIL, "%s %s %s failed (%s %d): %s", prog, verb, dir,
				  WIFEXITED(status) ? "exit" : "signal",
				  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
				  last_lines(&eb));
	}
	cm_buf_free(&eb);
	if (rc < 0) {
		cm_buf_free(&out);
		return rc;
	}
	char label[PATH_MAX + 64];
	snprintf(label, sizeof(label), "%s (%s %s output)", dir, tool, verb);
	if ((rc = bld_yset_add_text(&m->set, label, &out, err)) < 0)
		return rc;
	char real[PATH_MAX];
	const char *base = realpath(dir, real) ? strrchr(real, '/') : strrchr(dir, '/');
	base = base && base[1] ? base + 1 : (real[0] ? real : dir);
	return add_member(m, dir, base, 1, err);
}

int bld_manifests_from_spec(bld_manifests *m, const bld_spec *s, cm_error *err)
{
	for (size_t i = 0; i < s->n_manifests; i++) {
		const bld_manifest_spec *ms = &s->manifests[i];
		char p[PATH_MAX];
		const char *rel = ms->kustomize[0] ? ms->kustomize : ms->path;
		if (bld_spec_path(p, sizeof(p), s, rel) < 0)
			return cm_error_set(err, CM_EINVAL, "%s:%d: path too long", s->file,
					    ms->line);
		size_t first = m->n_files;
		int rc = ms->kustomize[0] ? bld_manifests_add_kustomize(m, p, err)
					  : bld_manifests_add_path(m, p, 0, err);
		if (rc < 0)
			return cm_error_wrap(err, "%s:%d: manifests entry", s->file, ms->line);
		for (size_t j = first; j < m->n_files; j++)
			m->files[j].spec_line = ms->line;
	}
	return 0;
}

void bld_manifests_free(bld_manifests *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_files; i++)
		cm_names_free(m->files[i].unbundled, m->files[i].n_unbundled);
	free(m->files);
	bld_yset_free(&m->set);
	m->files = NULL;
	m->n_files = m->cap_files = 0;
}

/* ---- pinning ---- */

typedef struct edit {
	size_t a, b;	/* byte range replaced */
	char text[700]; /* replacement */
} edit;

/* Character index (libyaml marks) to byte offset, moving a cursor. */
typedef struct cursor {
	const unsigned char *t;
	size_t len, base, ci, bi;
} cursor;

static size_t char_to_byte(cursor *c, size_t ci)
{
	if (ci < c->ci) {
		c->ci = 0;
		c->bi = c->base;
	}
	while (c->ci < ci && c->bi < c->len) {
		c->bi++;
		while (c->bi < c->len && (c->t[c->bi] & 0xC0) == 0x80)
			c->bi++;
		c->ci++;
	}
	return c->bi;
}

/* "<repository as written>@digest": drop the tag and any digest. */
static void pinned_value(char *out, size_t n, const char *value, const char *digest)
{
	char repo[REG_REF_MAX + 1];
	snprintf(repo, sizeof(repo), "%s", value);
	char *at = strchr(repo, '@');
	if (at)
		*at = '\0';
	char *slash = strrchr(repo, '/');
	char *colon = strrchr(slash ? slash : repo, ':');
	if (colon)
		*colon = '\0';
	snprintf(out, n, "%s@%s", repo, digest);
}

static const reg_image *find_image(const reg_image *imgs, size_t n, const char *ref)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(imgs[i].ref, ref) == 0)
			return &imgs[i];
	return NULL;
}

static int push_edit(edit **v, size_t *n, size_t *cap, size_t a, size_t b, const char *text,
		     cm_error *err)
{
	for (size_t i = 0; i < *n; i++)
		if ((*v)[i].a == a && (*v)[i].b == b)
			return 0; /* the same token found twice */
	edit *nv = cm_grow(*v, *n, cap, sizeof(edit), err);
	if (!nv)
		return CM_ENOMEM;
	*v = nv;
	edit *e = &(*v)[(*n)++];
	e->a = a;
	e->b = b;
	snprintf(e->text, sizeof(e->text), "%s", text);
	return 0;
}

static int cmp_edit(const void *x, const void *y)
{
	const edit *a = x, *b = y;
	return a->a < b->a ? -1 : a->a > b->a;
}

static int add_unbundled(char ***v, size_t *n, const char *ref, cm_error *err)
{
	if (!v)
		return 0;
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], ref) == 0)
			return 0;
	char **nv = realloc(*v, (*n + 1) * sizeof(char *));
	if (!nv)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	*v = nv;
	if (!(nv[*n] = strdup(ref)))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	(*n)++;
	return 0;
}

/* Parse out again and compare every occurrence with what was meant. */
static int check_pinned(const bld_yset *set, size_t src, const cm_buf *out, const reg_image *imgs,
			size_t n, int pin_suggested, cm_error *err)
{
	bld_yset again = BLD_YSET_INIT;
	cm_buf copy = CM_BUF_INIT;
	copy.limit = BLD_YAML_FILE_MAX;
	int rc = cm_buf_append(&copy, out->data, out->len, err);
	if (rc == 0)
		rc = bld_yset_add_text(&again, set->src[src].name, &copy, err);
	if (rc < 0) {
		bld_yset_free(&again);
		cm_buf_free(&copy);
		return cm_error_wrap(err, "pinned copy of %s does not parse (a bug)",
				     set->src[src].name);
	}
	size_t j = 0;
	for (size_t i = 0; rc == 0 && i < set->n_occ; i++) {
		const bld_occ *o = &set->occ[i];
		if (o->src != src)
			continue;
		if (j >= again.n_occ) {
			rc = cm_error_set(err, CM_EFAIL,
					  "pinned copy of %s lost image values (a bug)",
					  set->src[src].name);
			break;
		}
		const bld_occ *p = &again.occ[j++];
		char want[REG_REF_MAX + 88];
		const reg_image *im = o->ref[0] ? find_image(imgs, n, o->ref) : NULL;
		if (im && (!o->suggested || pin_suggested) &&
		    (o->suggested || o->style == YAML_PLAIN_SCALAR_STYLE ||
		     o->style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
		     o->style == YAML_DOUBLE_QUOTED_SCALAR_STYLE))
			pinned_value(want, sizeof(want), o->value, im->root.digest.s);
		else
			snprintf(want, sizeof(want), "%s", o->value);
		if (p->doc != o->doc || strcmp(p->path, o->path) != 0 ||
		    strcmp(p->value, want) != 0)
			rc = cm_error_set(
			    err, CM_EFAIL,
			    "pinned copy of %s: document %zu %s is '%s', expected '%s' (a bug)",
			    set->src[src].name, o->doc, o->path, p->value, want);
	}
	if (rc == 0 && j != again.n_occ)
		rc = cm_error_set(err, CM_EFAIL, "pinned copy of %s gained image values (a bug)",
				  set->src[src].name);
	bld_yset_free(&again);
	return rc;
}

int bld_pin_text(cm_buf *out, const bld_yset *set, size_t src, const reg_image *imgs, size_t n,
		 int pin_suggested, size_t *n_pinned, char ***unbundled, size_t *n_unbundled,
		 cm_error *err)
{
	const cm_buf *t = &set->src[src].text;
	const unsigned char *tx = (const unsigned char *)t->data;
	cursor c = {tx, t->len, 0, 0, 0};
	if (t->len >= 3 && tx[0] == 0xEF && tx[1] == 0xBB && tx[2] == 0xBF)
		c.base = c.bi = 3;
	else if (t->len >= 2 &&
		 ((tx[0] == 0xFF && tx[1] == 0xFE) || (tx[0] == 0xFE && tx[1] == 0xFF)))
		return cm_error_set(err, CM_EINVAL,
				    "%s: UTF-16 text cannot be pinned: convert it to UTF-8",
				    set->src[src].name);
	edit *ev = NULL;
	size_t ne = 0, cap = 0, pinned = 0;
	int rc = 0;
	memset(out, 0, sizeof(*out));
	out->limit = BLD_YAML_FILE_MAX + ((size_t)1 << 20);
	for (size_t i = 0; rc == 0 && i < set->n_occ; i++) {
		const bld_occ *o = &set->occ[i];
		if (o->src != src || !o->ref[0])
			continue;
		const reg_image *im = find_image(imgs, n, o->ref);
		if (!im || (o->suggested && !pin_suggested)) {
			if (!im)
				rc = add_unbundled(unbundled, n_unbundled, o->ref, err);
			continue;
		}
		char nv[REG_REF_MAX + 88];
		pinned_value(nv, sizeof(nv), o->value, im->root.digest.s);
		size_t a = char_to_byte(&c, o->start), b = char_to_byte(&c, o->end);
		if (b > t->len || a > b) {
			rc = cm_error_set(err, CM_EFAIL,
					  "%s:%zu:%zu: cannot locate the value (a bug)",
					  set->src[src].name, o->line, o->col);
			break;
		}
		if (!o->suggested) {
			char q = 0;
			if (o->style == YAML_SINGLE_QUOTED_SCALAR_STYLE)
				q = '\'';
			else if (o->style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)
				q = '"';
			else if (o->style != YAML_PLAIN_SCALAR_STYLE)
				continue; /* block scalar: left as written (checked below) */
			/* a prefix ("oci://") stays; the value after it is pinned */
			size_t pl = strlen(o->prefix);
			if (q ? (b - a < 2 + pl || tx[a] != q || tx[b - 1] != q ||
				 memcmp(tx + a + 1, o->prefix, pl) != 0)
			      : (b - a != pl + strlen(o->value) ||
				 memcmp(tx + a, o->prefix, pl) != 0 ||
				 memcmp(tx + a + pl, o->value, b - a - pl) != 0)) {
				rc = cm_error_set(
				    err, CM_EFAIL,
				    "%s:%zu:%zu: the value is not where the parser put it (a bug)",
				    set->src[src].name, o->line, o->col);
				break;
			}
			char text[700];
			if (q)
				snprintf(text, sizeof(text), "%c%s%s%c", q, o->prefix, nv, q);
			else
				snprintf(text, sizeof(text), "%s%s", o->prefix, nv);
			rc = push_edit(&ev, &ne, &cap, a, b, text, err);
			pinned++;
			continue;
		}
		/* inside a string: rewrite each token equal to the value, found
		 * the way the scan found it */
		size_t found = 0, p = a, x, y;
		while (rc == 0 && bld_discover_token((const char *)tx, b, &p, &x, &y))
			if (y - x == strlen(o->value) && memcmp(tx + x, o->value, y - x) == 0) {
				rc = push_edit(&ev, &ne, &cap, x, y, nv, err);
				found++;
			}
		if (found)
			pinned++;
	}
	if (rc == 0) {
		if (ne)
			qsort(ev, ne, sizeof(edit), cmp_edit);
		size_t pos = 0;
		for (size_t i = 0; rc == 0 && i < ne; i++) {
			if (ev[i].a < pos) {
				rc = cm_error_set(err, CM_EFAIL, "%s: overlapping rewrites (a bug)",
						  set->src[src].name);
				break;
			}
			if ((rc = cm_buf_append(out, tx + pos, ev[i].a - pos, err)) == 0)
				rc = cm_buf_append(out, ev[i].text, strlen(ev[i].text), err);
			pos = ev[i].b;
		}
		if (rc == 0)
			rc = cm_buf_append(out, tx + pos, t->len - pos, err);
		if (rc == 0 && !out->data)
			rc = cm_buf_append(out, "", 0, err);
	}
	free(ev);
	if (rc == 0 && ne)
		rc = check_pinned(set, src, out, imgs, n, pin_suggested, err);
	if (rc < 0) {
		cm_buf_free(out);
		return rc;
	}
	if (n_pinned)
		*n_pinned = pinned;
	return 0;
}

int bld_manifests_write(bld_manifests *m, const char *dir, const reg_image *imgs, size_t n, int pin,
			int pin_suggested, bld_file **out, size_t *n_out, cm_error *err)
{
	*out = NULL;
	*n_out = 0;
	if (m->n_files == 0)
		return 0;
	bld_file *fv = calloc(m->n_files, sizeof(*fv));
	if (!fv)
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < m->n_files; i++) {
		bld_mfile *f = &m->files[i];
		bld_file *bf = &fv[i];
		const char *base = f->member + strlen("manifests/");
		snprintf(bf->member, sizeof(bf->member), "%s", f->member);
		if ((size_t)snprintf(bf->src, sizeof(bf->src), "%s/%s", dir, base) >=
		    sizeof(bf->src)) {
			rc = cm_error_set(err, CM_EINVAL, "path too long: %s", dir);
			break;
		}
		cm_buf pinned = CM_BUF_INIT;
		const cm_buf *text = &m->set.src[f->src].text;
		if (pin) {
			if ((rc = bld_pin_text(&pinned, &m->set, f->src, imgs, n, pin_suggested,
					       &f->pinned, &f->unbundled, &f->n_unbundled, err)) <
			    0)
				break;
			text = &pinned;
		} else {
			for (size_t k = 0; rc == 0 && k < m->set.n_occ; k++) {
				const bld_occ *o = &m->set.occ[k];
				if (o->src == f->src && o->ref[0] && !find_image(imgs, n, o->ref))
					rc = add_unbundled(&f->unbundled, &f->n_unbundled, o->ref,
							   err);
			}
		}
		if (rc == 0)
			rc = cm_file_write_atomic(bf->src, text->data ? text->data : "", text->len,
						  0644, err);
		cm_buf_free(&pinned);
		if (rc == 0 && m->log)
			fprintf(m->log,
				"manifest %s <- %s: %zu documents, %zu image values pinned%s\n",
				f->member, f->origin, m->set.src[f->src].n_docs, f->pinned,
				pin ? "" : " (--no-pin)");
		for (size_t k = 0; rc == 0 && m->log && k < f->n_unbundled; k++)
			fprintf(m->log, "  warning: %s uses %s, which is not in the bundle\n",
				f->member, f->unbundled[k]);
	}
	if (rc == 0)
		rc = bld_files_hash(fv, m->n_files, err);
	if (rc < 0) {
		free(fv);
		return rc;
	}
	*out = fv;
	*n_out = m->n_files;
	return 0;
}

json_t *bld_manifests_json(const bld_manifests *m, const bld_file *files, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < m->n_files; i++) {
		const bld_mfile *f = &m->files[i];
		const bld_ysrc *s = &m->set.src[f->src];
		const bld_file *bf = NULL;
		for (size_t j = 0; j < n; j++)
			if (strcmp(files[j].member, f->member) == 0)
				bf = &files[j];
		json_t *k = bld_ysrc_kinds_json(s), *u = json_array();
		for (size_t j = 0; j < f->n_unbundled; j++)
			json_array_append_new(u, json_string(f->unbundled[j]));
		/* sha256 and size when the file was written; the origin is a
		 * path, kept as it is even when it is not UTF-8 */
		json_array_append_new(
		    a, json_pack("{s:s,s:o*,s:o*,s:o,s:b,s:I,s:o,s:I,s:o}", "path", f->member,
				 "sha256", bf ? json_string(bf->hex) : NULL, "size",
				 bf ? json_integer((json_int_t)bf->size) : NULL, "source",
				 json_stringn_nocheck(f->origin, strlen(f->origin)), "rendered",
				 f->rendered, "documents", (json_int_t)s->n_docs, "kinds", k,
				 "pinned", (json_int_t)f->pinned, "unbundledImages", u));
	}
	return a;
}

int bld_manifests_auto_images(bld_spec *s, const bld_manifests *m, int include_suggested,
			      size_t *n_added, cm_error *err)
{
	bld_found_list fl;
	int rc = bld_yset_found(&fl, &m->set, err);
	if (rc < 0)
		return rc;
	size_t added = 0;
	for (size_t i = 0; rc == 0 && i < fl.n; i++) {
		const bld_found *f = &fl.v[i];
		if (f->suggested && !include_suggested)
			continue;
		int have = 0;
		for (size_t j = 0; j < s->n_images && !have; j++) {
			reg_ref r;
			cm_error e;
			char full[REG_REF_MAX + 88];
			if (reg_ref_parse(&r, s->images[j].ref, &e) == 0 &&
			    reg_ref_string(full, sizeof(full), &r) >= 0 &&
			    strcmp(full, f->ref) == 0)
				have = 1;
		}
		/* a model's image (storageUri oci://...): built, not pulled */
		for (size_t j = 0; j < s->n_models && !have; j++) {
			char mref[REG_REF_MAX + 88];
			if (bld_model_image_ref(mref, sizeof(mref), &s->models[j], err) < 0) {
				rc = err->code;
				break;
			}
			have = strcmp(mref, f->ref) == 0;
		}
		if (rc < 0)
			break;
		if (have)
			continue;
		if (strncmp(f->ref, BLD_MODEL_HOST "/", sizeof(BLD_MODEL_HOST)) == 0) {
			const bld_occ *o = &m->set.occ[fl.order[f->first]];
			rc = cm_error_set(
			    err, CM_EINVAL,
			    "%s:%zu:%zu: %s (%s %s) names %s, a model image, but no "
			    "models: entry of the spec builds it (its name and version "
			    "give %s/<name>-modelcar:<version>)",
			    m->set.src[o->src].name, o->line, o->col, o->path, o->kind, o->name,
			    f->ref, BLD_MODEL_HOST);
			break;
		}
		bld_image_spec *nv = realloc(s->images, (s->n_images + 1) * sizeof(*nv));
		if (!nv) {
			rc = cm_error_set(err, CM_ENOMEM, "out of memory");
			break;
		}
		s->images = nv;
		bld_image_spec *is = &nv[s->n_images++];
		memset(is, 0, sizeof(*is));
		snprintf(is->ref, sizeof(is->ref), "%s", f->ref);
		/* errors about it point at the manifests entry that uses it */
		const bld_occ *o = &m->set.occ[fl.order[f->first]];
		for (size_t j = 0; j < m->n_files; j++)
			if (m->files[j].src == o->src)
				is->line = m->files[j].spec_line;
		added++;
	}
	bld_found_list_free(&fl);
	if (n_added)
		*n_added = added;
	return rc;
}
