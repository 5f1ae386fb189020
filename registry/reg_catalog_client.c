/* Listing a registry: its catalog and a repository's tags, page by page,
 * through the transfer engine (reg_request: auth, retries, TLS). Every
 * answer is capped (reg_client.h). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "reg_client.h"
#include "reg_ref.h"
#include "reg_url.h"

void reg_names_free(reg_names *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		free(n->v[i]);
	free(n->v);
	memset(n, 0, sizeof(*n));
}

static int names_add(reg_names *n, const char *s, cm_error *err)
{
	if (CM_GROW(&n->v, n->n, &n->cap, err) < 0)
		return CM_ENOMEM;
	if (!(n->v[n->n] = strdup(s)))
		return cm_error_set(err, CM_ENOMEM, "out of memory");
	n->n++;
	return 0;
}

int reg_link_next(char *out, size_t n, const char *link, const char *url, cm_error *err)
{
	out[0] = '\0';
	/* <target>; rel="next"[, <other>; rel="prev"] */
	for (const char *p = link; p && *p;) {
		const char *lt = strchr(p, '<'), *gt = lt ? strchr(lt, '>') : NULL;
		if (!lt || !gt)
			break;
		const char *end = strchr(gt, ',');
		size_t plen = end ? (size_t)(end - gt) : strlen(gt);
		char params[512];
		snprintf(params, sizeof(params), "%.*s", (int)(plen < 511 ? plen : 511), gt + 1);
		p = end ? end + 1 : NULL;
		if (!strstr(params, "rel=\"next\"") && !strstr(params, "rel=next"))
			continue;
		char target[2048];
		size_t tl = (size_t)(gt - lt - 1);
		if (tl >= sizeof(target))
			return cm_error_set(err, CM_EINVAL,
					    "a Link header's next page is too long");
		memcpy(target, lt + 1, tl);
		target[tl] = '\0';
		char *abs = NULL;
		if (reg_url_resolve(&abs, url, target, err) < 0)
			return cm_error_wrap(err, "a Link header's next page");
		reg_url a, b;
		int rc = 0;
		if (reg_url_parse(&a, abs, 1, err) < 0 || reg_url_parse(&b, url, 1, err) < 0)
			rc = cm_error_wrap(err, "a Link header's next page");
		else if (strcmp(a.origin, b.origin) != 0)
			rc = cm_error_set(err, CM_EINVAL,
					  "a Link header's next page is on another origin (%s)",
					  a.origin);
		else if (snprintf(out, n, "%s", abs) >= (int)n)
			rc = cm_error_set(err, CM_EINVAL, "a Link header's next page is too long");
		free(abs);
		if (rc < 0)
			out[0] = '\0';
		return rc;
	}
	return 0;
}

/* GET url0 and its next pages; key's array of strings into out. */
static int list(reg_names *out, reg_lane *l, const reg_endpoint *ep, const char *url0,
		const char *scope, const char *key, const char *what, size_t max, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	char url[2048], prev[2048] = "";
	reg_resp r;
	memset(&r, 0, sizeof(r));
	int rc = 0;
	if (snprintf(url, sizeof(url), "%s", url0) >= (int)sizeof(url))
		return cm_error_set(err, CM_EINVAL, "%s: URL too long", what);
	for (int page = 0; rc == 0 && url[0]; page++) {
		if (page == REG_LIST_MAX_PAGES) {
			rc = cm_error_set(err, CM_EINVAL, "%s: more than %d pages (the cap)", what,
					  REG_LIST_MAX_PAGES);
			break;
		}
		reg_req q = {.method = "GET", .url = url, .scope = scope, .ep = ep};
		if ((rc = reg_request(&r, l, &q, err)) < 0)
			break;
		if (r.status != 200) {
			rc = reg_resp_error(err, &r, what);
			break;
		}
		json_error_t je;
		json_t *root = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &je);
		json_t *a = json_object_get(root, key);
		if (!json_is_array(a) && !(json_is_null(a) && json_is_object(root))) {
			json_decref(root);
			rc = cm_error_set(err, CM_EINVAL,
					  "%s: the answer is not JSON with a \"%s\" list", what,
					  key);
			break;
		}
		size_t i;
		json_t *v;
		json_array_foreach(a, i, v)
		{
			const char *s = json_string_value(v);
			if (out->n >= max) {
				rc = cm_error_set(err, CM_EINVAL, "%s: more than %zu %s (the cap)",
						  what, max, key);
				break;
			}
			if (!s || (strcmp(key, "tags") == 0
				       ? !reg_ref_valid_tag(s)
				       : (strlen(s) > 255 || !reg_ref_valid_path(s)))) {
				rc = cm_error_set(err, CM_EINVAL,
						  "%s: %s[%zu] is not a valid name: %.80s", what,
						  key, i, s ? s : "(not a string)");
				break;
			}
			if ((rc = names_add(out, s, err)) < 0)
				break;
		}
		json_decref(root);
		if (rc < 0)
			break;
		char next[2048];
		if ((rc = reg_link_next(next, sizeof(next), r.link, url, err)) < 0) {
			cm_error_wrap(err, "%s", what);
			break;
		}
		if (next[0] && (strcmp(next, url) == 0 || strcmp(next, prev) == 0)) {
			rc = cm_error_set(err, CM_EINVAL,
					  "%s: the next page is a page already read", what);
			break;
		}
		memcpy(prev, url, sizeof(prev));
		memcpy(url, next, sizeof(url));
	}
	cm_buf_free(&r.body);
	if (rc < 0)
		reg_names_free(out);
	return rc;
}

int reg_list_repositories(reg_names *out, reg_lane *l, const reg_endpoint *ep, const char *base,
			  size_t max, cm_error *err)
{
	char url[1024];
	if (snprintf(url, sizeof(url), "%s/v2/_catalog?n=%d", base, REG_LIST_PAGE) >=
	    (int)sizeof(url))
		return cm_error_set(err, CM_EINVAL, "%.200s: URL too long", base);
	return list(out, l, ep, url, "registry:catalog:*", "repositories", "GET /v2/_catalog", max,
		    err);
}

int reg_list_tags(reg_names *out, reg_lane *l, const reg_endpoint *ep, const char *base,
		  const char *repo, size_t max, cm_error *err)
{
	char url[1400], scope[400], what[400];
	if (snprintf(url, sizeof(url), "%s/v2/%s/tags/list?n=%d", base, repo, REG_LIST_PAGE) >=
		(int)sizeof(url) ||
	    snprintf(scope, sizeof(scope), "repository:%s:pull", repo) >= (int)sizeof(scope) ||
	    snprintf(what, sizeof(what), "GET /v2/%s/tags/list", repo) >= (int)sizeof(what))
		return cm_error_set(err, CM_EINVAL, "repository %.200s: name too long", repo);
	return list(out, l, ep, url, scope, "tags", what, max, err);
}
