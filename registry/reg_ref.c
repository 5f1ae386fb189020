/* Image reference parsing, after docker/distribution's "reference" package.
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ host "/" ] path
 *   host      := domain-component ( "." domain-component )* [ ":" port ]
 *              | "[" ipv6 "]" [ ":" port ]
 *   path      := component ( "/" component )*
 *   component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag       := [A-Za-z0-9_] [A-Za-z0-9._-]{0,127}
 *   digest    := "sha256:" [a-f0-9]{64}
 *
 * The first component of the name is a host only if it contains "." or
 * ":" or is "localhost"; otherwise the host is docker.io. */
#include "reg_ref.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NAME_MAX_LEN 255 /* repository name, as written and normalised */
#define TAG_MAX_LEN 128
#define DIGEST_HEX_LEN 64
#define QUOTE_SRC_MAX 200 /* input bytes quoted in an error message */

static const char default_host[] = "docker.io";
static const char legacy_host[] = "index.docker.io";
static const char official_prefix[] = "library/";
static const char digest_alg[] = "sha256";

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || is_digit(c);
}

static int is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static int is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_lower_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f');
}

/* A printable copy of s for error messages: control bytes become \xNN,
 * '"' and '\' are escaped, and long input is cut short with "...". */
static void quote(char *out, size_t n, const char *s)
{
	size_t o = 0, i;

	for (i = 0; s[i] && i < QUOTE_SRC_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[8];
		size_t k;

		if (c < 0x20 || c >= 0x7f) {
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
			k = 4;
		} else if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			k = 2;
		} else {
			tmp[0] = (char)c;
			k = 1;
		}
		if (o + k + 4 > n) /* keep room for "..." and the NUL */
			break;
		memcpy(out + o, tmp, k);
		o += k;
	}
	if (s[i] && o + 4 <= n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* Fill err with 'invalid reference "<input>": <why>' and return CM_EINVAL. */
static int bad(cm_error *err, const char *in, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(cm_error *err, const char *in, const char *fmt, ...)
{
	char q[QUOTE_SRC_MAX * 4 + 8], why[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	quote(q, sizeof(q), in);
	return cm_error_set(err, CM_EINVAL, "invalid reference \"%s\": %s", q, why);
}

/* What is wrong with path component p[0..n), or NULL. */
static const char *component_problem(const char *p, size_t n)
{
	size_t i, j;

	if (n == 0)
		return "is empty";
	for (i = 0; i < n; i++) {
		char c = p[i];
		if (!is_lower_alnum(c) && c != '.' && c != '_' && c != '-')
			return "may only contain lowercase letters, digits, \".\", \"_\" and \"-\"";
	}
	if (!is_lower_alnum(p[0]))
		return "must start with a lowercase letter or digit";
	if (!is_lower_alnum(p[n - 1]))
		return "must end with a lowercase letter or digit";
	for (i = 0; i < n; i = j) {
		size_t k, d;

		if (is_lower_alnum(p[i])) {
			j = i + 1;
			continue;
		}
		for (j = i; j < n && !is_lower_alnum(p[j]); j++)
			;
		k = j - i;
		for (d = 0; d < k && p[i + d] == '-'; d++)
			;
		if (k == 1 || d == k || (k == 2 && p[i] == '_' && p[i + 1] == '_'))
			continue;
		return "has an invalid separator (allowed: \".\", \"_\", \"__\" or dashes)";
	}
	return NULL;
}

/* Check path p[0..n). On failure return what is wrong and set *co and *cn to
 * the offending component (cn = 0 when the whole path is at fault). */
static const char *path_problem(const char *p, size_t n, size_t *co, size_t *cn)
{
	size_t i, start;

	*co = 0;
	*cn = 0;
	if (n == 0)
		return "repository name is empty";
	if (n > NAME_MAX_LEN)
		return "repository name is longer than 255 characters";
	for (i = 0; i + 1 < n; i++)
		if (p[i] == '/' && p[i + 1] == '/')
			return "repository name has an empty path component (\"//\")";
	if (p[0] == '/')
		return "repository name must not start with \"/\"";
	if (p[n - 1] == '/')
		return "repository name must not end with \"/\"";
	for (i = 0; i < n; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			return "repository name must be lowercase";
	for (start = 0; start <= n; start = i + 1) {
		const char *why;

		for (i = start; i < n && p[i] != '/'; i++)
			;
		why = component_problem(p + start, i - start);
		if (why) {
			*co = start;
			*cn = i - start;
			return why;
		}
	}
	return NULL;
}

/* What is wrong with host h[0..n), or NULL. */
static const char *host_problem(const char *h, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return "is empty";
	if (n > NAME_MAX_LEN)
		return "is longer than 255 characters";
	if (h[0] == '[') {
		size_t colons = 0;

		for (i = 1; i < n && h[i] != ']'; i++) {
			if (h[i] == ':')
				colons++;
			else if (!is_hex(h[i]))
				return "has an invalid IPv6 address (want [hex:hex::...])";
		}
		if (i == n)
			return "has an unterminated \"[\"";
		if (colons < 2)
			return "has an invalid IPv6 address (want [hex:hex::...])";
		i++;
	} else {
		for (;;) {
			size_t st = i;

			while (i < n && (is_alnum(h[i]) || h[i] == '-'))
				i++;
			if (i == st)
				return "has an empty or invalid name component "
				       "(only letters, digits, \"-\" and \".\" are allowed)";
			if (h[st] == '-' || h[i - 1] == '-')
				return "has a name component that starts or ends with \"-\"";
			if (i < n && h[i] == '.') {
				i++;
				continue;
			}
			break;
		}
	}
	if (i < n) {
		unsigned long port = 0;
		size_t digits;

		if (h[i] != ':')
			return "contains an invalid character "
			       "(only letters, digits, \"-\", \".\" and \":port\" are allowed)";
		for (i++, digits = 0; i < n; i++, digits++) {
			if (!is_digit(h[i]) || digits >= 5)
				return "has an invalid port (want 1-65535)";
			port = port * 10 + (unsigned long)(h[i] - '0');
		}
		if (digits == 0 || port == 0 || port > 65535)
			return "has an invalid port (want 1-65535)";
	}
	return NULL;
}

/* What is wrong with tag t[0..n), or NULL. */
static const char *tag_problem(const char *t, size_t n)
{
	if (n == 0)
		return "is empty";
	if (n > TAG_MAX_LEN)
		return "is longer than 128 characters";
	if (!is_alnum(t[0]) && t[0] != '_')
		return "must start with a letter, digit or \"_\"";
	for (size_t i = 1; i < n; i++) {
		char c = t[i];
		if (!is_alnum(c) && c != '_' && c != '.' && c != '-')
			return "may only contain letters, digits, \"_\", \".\" and \"-\"";
	}
	return NULL;
}

static int parse_digest(reg_ref *r, const char *in, const char *d, size_t n, cm_error *err)
{
	const char *colon = memchr(d, ':', n);
	size_t alen, hlen;

	if (n == 0)
		return bad(err, in, "digest is empty after \"@\"");
	if (!colon)
		return bad(err, in, "digest \"%.80s\" must be \"sha256:<64 hex digits>\"", d);
	alen = (size_t)(colon - d);
	hlen = n - alen - 1;
	if (alen != sizeof(digest_alg) - 1 || memcmp(d, digest_alg, alen) != 0)
		return bad(err, in, "unsupported digest algorithm \"%.*s\" (only sha256)",
			   (int)(alen > 32 ? 32 : alen), d);
	if (hlen != DIGEST_HEX_LEN)
		return bad(err, in, "sha256 digest has %zu hex digits, want 64", hlen);
	for (size_t i = 0; i < hlen; i++)
		if (!is_lower_hex(colon[1 + i]))
			return bad(err, in, "sha256 digest must be 64 lowercase hex digits");
	memcpy(r->digest, d, n);
	r->digest[n] = '\0';
	return 0;
}

int reg_ref_parse(reg_ref *out, const char *s, cm_error *err)
{
	reg_ref r;
	const char *at, *slash, *why, *path;
	size_t len, name_len, host_len, path_len, co, cn, i;
	int has_tag = 0, rc;

	memset(&r, 0, sizeof(r));
	if (out)
		memset(out, 0, sizeof(*out));
	if (!out || !s)
		return cm_error_set(err, CM_EINVAL, "invalid reference: no reference given");

	len = strnlen(s, REG_REF_MAX + 1);
	if (len == 0)
		return bad(err, s, "reference is empty");
	if (len > REG_REF_MAX)
		return bad(err, s, "longer than %d bytes", REG_REF_MAX);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ' || (c >= '\t' && c <= '\r'))
			return bad(err, s, "contains whitespace at byte %zu", i);
		if (c < 0x20 || c == 0x7f)
			return bad(err, s, "contains a control character at byte %zu", i);
		if (c >= 0x80)
			return bad(err, s, "contains a non-ASCII byte at byte %zu", i);
	}
	if (len == DIGEST_HEX_LEN) {
		for (i = 0; i < len && is_lower_hex(s[i]); i++)
			;
		if (i == len)
			return bad(err, s,
				   "a 64-digit hex string is an image ID, not a repository name");
	}

	/* name [":" tag] ["@" digest]: the digest follows the first "@", the
	 * tag the last ":" that has no "/" after it. */
	at = memchr(s, '@', len);
	name_len = at ? (size_t)(at - s) : len;
	if (at && (rc = parse_digest(&r, s, at + 1, len - name_len - 1, err)) != 0)
		return rc;
	for (i = name_len; i > 0 && s[i - 1] != '/' && s[i - 1] != ':'; i--)
		;
	if (i > 0 && s[i - 1] == ':') {
		size_t tag_len = name_len - i;

		if (tag_len == 0)
			return bad(err, s, "tag is empty after \":\"");
		why = tag_problem(s + i, tag_len);
		if (why)
			return bad(err, s, "tag \"%.*s\" %s", (int)(tag_len > 64 ? 64 : tag_len),
				   s + i, why);
		memcpy(r.tag, s + i, tag_len);
		r.tag[tag_len] = '\0';
		has_tag = 1;
		name_len = i - 1;
	}

	if (name_len == 0)
		return bad(err, s, "repository name is empty");
	if (name_len > NAME_MAX_LEN)
		return bad(err, s, "repository name is longer than 255 characters");
	if (s[0] == '/')
		return bad(err, s, "repository name must not start with \"/\"");
	if (s[name_len - 1] == '/')
		return bad(err, s, "repository name must not end with \"/\"");
	for (i = 0; i + 1 < name_len; i++)
		if (s[i] == '/' && s[i + 1] == '/')
			return bad(err, s, "repository name has an empty path component (\"//\")");

	/* [host "/"] path */
	slash = memchr(s, '/', name_len);
	host_len = slash ? (size_t)(slash - s) : 0;
	if (slash && (memchr(s, '.', host_len) || memchr(s, ':', host_len) ||
		      (host_len == 9 && memcmp(s, "localhost", 9) == 0))) {
		why = host_problem(s, host_len);
		if (why)
			return bad(err, s, "registry host \"%.*s\" %s", (int)host_len, s, why);
		if (host_len == sizeof(legacy_host) - 1 && memcmp(s, legacy_host, host_len) == 0) {
			snprintf(r.host, sizeof(r.host), "%s", default_host);
		} else {
			memcpy(r.host, s, host_len);
			r.host[host_len] = '\0';
		}
		path = slash + 1;
		path_len = name_len - host_len - 1;
	} else {
		snprintf(r.host, sizeof(r.host), "%s", default_host);
		path = s;
		path_len = name_len;
	}

	why = path_problem(path, path_len, &co, &cn);
	if (why && cn > 0)
		return bad(err, s, "path component \"%.*s\" %s", (int)cn, path + co, why);
	if (why)
		return bad(err, s, "%s", why);

	/* docker.io/mysql -> docker.io/library/mysql */
	if (strcmp(r.host, default_host) == 0 && !memchr(path, '/', path_len)) {
		if (sizeof(official_prefix) - 1 + path_len > NAME_MAX_LEN)
			return bad(err, s,
				   "repository name is longer than 255 characters "
				   "after adding \"library/\"");
		snprintf(r.path, sizeof(r.path), "%s%.*s", official_prefix, (int)path_len, path);
	} else {
		memcpy(r.path, path, path_len);
		r.path[path_len] = '\0';
	}
	/* The 255 limit is on the normalised name, host included (as in
	 * distribution's ParseNormalizedNamed): otherwise "a/b" could parse
	 * while its own canonical "docker.io/a/b" does not. */
	if (strlen(r.host) + 1 + strlen(r.path) > NAME_MAX_LEN)
		return bad(err, s,
			   "repository name \"%s/...\" is longer than 255 characters once "
			   "normalised",
			   r.host);

	if (!has_tag && !r.digest[0])
		snprintf(r.tag, sizeof(r.tag), "%s", "latest");
	*out = r;
	return 0;
}

/* host/path, and with full the tag and digest too */
static int format(char *out, size_t n, const reg_ref *r, int full)
{
	if (!out || n == 0)
		return CM_EINVAL;
	int w =
	    r ? snprintf(out, n, "%s/%s%s%s%s%s", r->host, r->path, full && r->tag[0] ? ":" : "",
			 full ? r->tag : "", full && r->digest[0] ? "@" : "", full ? r->digest : "")
	      : -1;
	if (w < 0 || (size_t)w >= n) {
		out[0] = '\0';
		return CM_EINVAL;
	}
	return 0;
}

int reg_ref_repo(char *out, size_t n, const reg_ref *r)
{
	return format(out, n, r, 0);
}

int reg_ref_string(char *out, size_t n, const reg_ref *r)
{
	return format(out, n, r, 1);
}

int reg_ref_valid_path(const char *path)
{
	size_t co, cn;

	if (!path)
		return 0;
	return path_problem(path, strnlen(path, NAME_MAX_LEN + 1), &co, &cn) == NULL;
}

int reg_ref_valid_tag(const char *tag)
{
	if (!tag)
		return 0;
	return tag_problem(tag, strnlen(tag, TAG_MAX_LEN + 1)) == NULL;
}
