#include "reg_url.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static int put(char *dst, size_t n, const char *v)
{
	size_t l = v ? strlen(v) : 0;
	if (l >= n)
		return -1;
	memcpy(dst, v ? v : "", l);
	dst[l] = '\0';
	return 0;
}

int reg_url_parse(reg_url *out, const char *url, int path_as_is, cm_error *err)
{
	memset(out, 0, sizeof(*out));
	CURLU *u = curl_url();
	char *sc = NULL, *h = NULL, *p = NULL, *dp = NULL, *path = NULL, *user = NULL, *q = NULL,
	     *f = NULL;
	int rc = 0;
	if (!u ||
	    curl_url_set(u, CURLUPART_URL, url, path_as_is ? CURLU_PATH_AS_IS : 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &sc, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || !h[0] ||
	    curl_url_get(u, CURLUPART_PORT, &dp, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		char shown[256];
		reg_url_redact(shown, sizeof(shown), url);
		rc = cm_error_set(err, CM_EINVAL, "'%s' is no URL with a host", shown);
	} else {
		curl_url_get(u, CURLUPART_PORT, &p, 0);
		curl_url_get(u, CURLUPART_PATH, &path, 0);
		out->has_user = curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK;
		out->has_query = curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK;
		out->has_fragment = curl_url_get(u, CURLUPART_FRAGMENT, &f, 0) == CURLUE_OK;
		out->port_n = strtol(dp, NULL, 10);
		if (put(out->scheme, sizeof(out->scheme), sc) < 0 ||
		    put(out->host, sizeof(out->host), h) < 0 ||
		    put(out->port, sizeof(out->port), p) < 0 ||
		    put(out->path, sizeof(out->path), path ? path : "/") < 0 ||
		    snprintf(out->origin, sizeof(out->origin), "%s://%s%s%s", sc, h, p ? ":" : "",
			     p ? p : "") >= (int)sizeof(out->origin)) {
			char shown[256];
			reg_url_redact(shown, sizeof(shown), url);
			rc = cm_error_set(err, CM_EINVAL, "'%s': a part is too long", shown);
		}
		lower(out->scheme);
		lower(out->origin);
	}
	curl_free(sc);
	curl_free(h);
	curl_free(p);
	curl_free(dp);
	curl_free(path);
	curl_free(user);
	curl_free(q);
	curl_free(f);
	curl_url_cleanup(u);
	return rc;
}

int reg_url_add_query(char *out, size_t n, const char *url, const char *query, cm_error *err)
{
	CURLU *u = curl_url();
	char *full = NULL;
	int rc = 0;
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_QUERY, query, CURLU_APPENDQUERY) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK)
		rc = cm_error_set(err, CM_EINVAL, "'%.200s' is no URL", url);
	else if (put(out, n, full) < 0)
		rc = cm_error_set(err, CM_EINVAL, "URL too long: %.200s...", full);
	curl_free(full);
	curl_url_cleanup(u);
	return rc;
}

int reg_url_resolve(char **out, const char *base, const char *loc, cm_error *err)
{
	*out = NULL;
	CURLU *u = curl_url();
	char *nu = NULL;
	int rc = 0;
	if (!u || curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_URL, loc, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &nu, 0) != CURLUE_OK ||
	    (strncmp(nu, "http://", 7) != 0 && strncmp(nu, "https://", 8) != 0))
		rc = cm_error_set(err, CM_EINVAL, "'%.200s' is no http(s) URL", loc);
	else if (!(*out = strdup(nu)))
		rc = cm_error_set(err, CM_ENOMEM, "out of memory");
	curl_free(nu);
	curl_url_cleanup(u);
	return rc;
}

void reg_url_redact(char *out, size_t n, const char *url)
{
	if (!n)
		return;
	CURLU *u = curl_url();
	char *full = NULL;
	int query = 0;
	if (u && curl_url_set(u, CURLUPART_URL, url, CURLU_PATH_AS_IS) == CURLUE_OK) {
		char *q = NULL;
		query = curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK;
		curl_free(q);
		curl_url_set(u, CURLUPART_USER, NULL, 0);
		curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
		curl_url_set(u, CURLUPART_QUERY, NULL, 0);
		curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
		if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK)
			full = NULL;
	}
	int len = snprintf(out, n, "%s%s", full ? full : "(a URL that does not parse)",
			   query ? "?..." : "");
	if (len < 0 || (size_t)len >= n)
		out[n - 1] = '\0'; /* cut: the message stays a message */
	curl_free(full);
	curl_url_cleanup(u);
}
