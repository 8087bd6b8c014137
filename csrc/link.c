/* RFC 8288 Link header parsing; see link.h.
 *
 *   Link: <https://api.example/items?page=3>; rel="next", <...>; rel=prev
 *
 * link-value = "<" URI-Reference ">" *( OWS ";" OWS link-param )
 * link-param = token BWS [ "=" BWS ( token / quoted-string ) ]
 * Several link-values are separated by commas, in one line or several. */
#include "link.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *p, *end;
} cl_span;

static void
skip_ows(cl_span *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
        s->p++;
}

static int
is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Matches the relation types of a rel value against "next" as the value's
 * characters come, one at a time (quoted-string escapes already undone), so
 * that a value of any length is read whole: no copy, no limit. */
typedef struct {
    size_t len;         /* characters of the current relation type so far */
    int match;          /* ... and they are a prefix of "next" (any case) */
    int next;           /* a relation type read whole was "next" */
} cl_rel_scan;

static void
rel_end_type(cl_rel_scan *r)
{
    if (r->len == 4 && r->match)
        r->next = 1;
    r->len = 0;
    r->match = 1;
}

static void
rel_char(cl_rel_scan *r, char c)
{
    if (c == ' ' || c == '\t') {
        if (r->len > 0)
            rel_end_type(r);
        return;
    }
    if (r->len < 4 && r->match && (c | 0x20) != "next"[r->len])
        r->match = 0;
    if (r->len < 5)     /* past four characters it is not "next" whatever follows */
        r->len++;
    if (r->len > 4)
        r->match = 0;
}

/* One parameter after a ';'.  The first rel parameter of a link-value is
 * its relation type (RFC 8288 3.3: later ones are ignored); *rel is set
 * once one was seen, *next when it says next. */
static int
parse_param(cl_span *s, int *rel, int *next, const char **why)
{
    const char *name = s->p;
    while (s->p < s->end && is_tchar(*s->p))
        s->p++;
    size_t name_len = (size_t)(s->p - name);
    if (name_len == 0) {
        *why = "a parameter without a name";
        return -1;
    }
    skip_ows(s);
    if (s->p >= s->end || *s->p != '=')
        return 0;                       /* a parameter without a value */
    s->p++;
    skip_ows(s);
    int counts = name_len == 3 && strncasecmp(name, "rel", 3) == 0 && !*rel;
    cl_rel_scan r = {.len = 0, .match = 1, .next = 0};
    if (s->p < s->end && *s->p == '"') {
        /* quoted-string: backslash escapes one character */
        s->p++;
        for (;;) {
            if (s->p >= s->end) {
                *why = "an unterminated quoted string";
                return -1;
            }
            char c = *s->p++;
            if (c == '"')
                break;
            if (c == '\\') {
                if (s->p >= s->end) {
                    *why = "an unterminated quoted string";
                    return -1;
                }
                c = *s->p++;
            }
            rel_char(&r, c);
        }
    }
    else {
        const char *v = s->p;
        while (s->p < s->end && is_tchar(*s->p))
            rel_char(&r, *s->p++);
        if (s->p == v) {
            *why = "a parameter with an empty value";
            return -1;
        }
    }
    if (r.len > 0)
        rel_end_type(&r);
    if (counts) {
        *rel = 1;
        *next = r.next;
    }
    return 0;
}

/* The link-values of one header line's value.  A next target found is
 * kept in *url (a second, different one is an error). */
static int
parse_value(cl_span *s, char **url, const char **why)
{
    for (;;) {
        skip_ows(s);
        if (s->p >= s->end)
            return 0;
        if (*s->p == ',') {             /* empty list elements are allowed */
            s->p++;
            continue;
        }
        if (*s->p != '<') {
            *why = "a link that does not start with '<'";
            return -1;
        }
        const char *target = ++s->p;
        while (s->p < s->end && *s->p != '>') {
            unsigned char c = (unsigned char)*s->p;
            if (c <= ' ' || c >= 0x7f || c == '<') {
                *why = "a link target with a space, a control character, a byte beyond "
                       "ASCII or '<'";
                return -1;
            }
            s->p++;
        }
        if (s->p >= s->end) {
            *why = "a link target without its closing '>'";
            return -1;
        }
        size_t n = (size_t)(s->p - target);
        s->p++;
        int rel = 0, next = 0;
        for (;;) {
            skip_ows(s);
            if (s->p >= s->end || *s->p == ',')
                break;
            if (*s->p != ';') {
                *why = "text after a link that is neither ';' nor ','";
                return -1;
            }
            s->p++;
            skip_ows(s);
            if (parse_param(s, &rel, &next, why) < 0)
                return -1;
        }
        if (next) {
            if (n == 0) {
                *why = "an empty rel=\"next\" target";
                return -1;
            }
            if (*url != NULL) {
                if (strlen(*url) != n || memcmp(*url, target, n) != 0) {
                    *why = "two different rel=\"next\" links";
                    return -1;
                }
            }
            else {
                if ((*url = malloc(n + 1)) == NULL) {
                    *why = "out of memory";
                    return -1;
                }
                memcpy(*url, target, n);
                (*url)[n] = '\0';
            }
        }
    }
}

int
cl_link_next(const char *headers, size_t len, char **url, const char **why)
{
    const char *p = headers, *end = headers + len;
    *url = NULL;
    *why = NULL;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *e = line_end;
        if (e > p && e[-1] == '\r')
            e--;
        if (e - p >= 5 && strncasecmp(p, "link:", 5) == 0) {
            cl_span s = {p + 5, e};
            if (parse_value(&s, url, why) < 0) {
                free(*url);
                *url = NULL;
                return -1;
            }
        }
        p = eol ? eol + 1 : end;
    }
    return *url != NULL;
}
