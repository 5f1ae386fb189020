/* URLs, split and joined by libcurl's URL API (curl_url), never by hand:
 * the transfer engine's redirects and origins, the token realm check, push's
 * target address and upload locations, model hosts. */
#ifndef REG_URL_H
#define REG_URL_H

#include <stddef.h>

#include "cm_error.h"

typedef struct reg_url {
	char scheme[16];  /* lower case */
	char host[256];	  /* as written; an IPv6 literal in brackets */
	char port[8];	  /* as written, "" when absent */
	long port_n;	  /* the port, or the scheme's default */
	char path[1024];  /* "/" at least */
	char origin[300]; /* scheme://host[:port], lower case */
	int has_user, has_query, has_fragment;
} reg_url;

/* Split url (with a scheme). path_as_is keeps "." and ".." segments.
 * CM_EINVAL when it is no URL, has no host, or a part is too long. */
int reg_url_parse(reg_url *out, const char *url, int path_as_is, cm_error *err);

/* url with query ("k=v") appended to its query, into out. */
int reg_url_add_query(char *out, size_t n, const char *url, const char *query, cm_error *err);

/* loc (absolute, or relative like a Location header) resolved against
 * base, into *out (malloc'd). Only an http:// or https:// result is taken. */
int reg_url_resolve(char **out, const char *base, const char *loc, cm_error *err);

/* url for a message or a log: the user and password are dropped and a
 * query becomes "?..." (a signed storage URL carries its secret there).
 * Never fails: what does not parse becomes "(a URL that does not parse)",
 * what does not fit is cut. */
void reg_url_redact(char *out, size_t n, const char *url);

#endif
