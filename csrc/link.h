/* The next page's URL from a response's `Link` header (RFC 8288).
 * Pure C over the raw header lines the transfer collected: no Python. */
#ifndef CL_LINK_H
#define CL_LINK_H

#include <stddef.h>

/* Scan every `Link:` line of `headers` (raw "Name: value\r\n" lines of one
 * response) for the target whose rel list holds "next".  Returns 1 with the
 * target in *url (malloc'd, NUL-terminated, as given: relative or absolute),
 * 0 when no link is rel="next", -1 when a Link header is malformed or names
 * two different next pages; *why then says what is wrong (static text). */
int cl_link_next(const char *headers, size_t len, char **url, const char **why);

#endif
