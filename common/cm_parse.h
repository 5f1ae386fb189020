/* Parsing numbers from command lines and environment variables. */
#ifndef CM_PARSE_H
#define CM_PARSE_H

/* A whole decimal number within lo..hi; 0 on success, -1 otherwise (empty,
 * trailing junk, overflow, out of range). */
int cm_parse_long(long *out, const char *s, long lo, long hi);

#endif
