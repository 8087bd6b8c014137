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

/* Does the relation-type list [s, s + n) hold "next"?  (Space-separated,
 * compared without regard to case.) */
static int
rel_has_next(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        size_t j = i;
        while (j < n && s[j] != ' ' && s[j] != '\t')
            j++;
        if (j - i == 4 && strncasecmp(s + i, "next", 4) == 0)
            return 1;
        i = j;
    }
    return 0;
}

/* One parameter after a ';'.  Sets *next when it is a rel that says next. */
static int
parse_param(cl_span *s, int *next, const char **why)
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
    const char *v;
    size_t vn;
    char buf[256];
    if (s->p < s->end && *s->p == '"') {
        /* quoted-string: backslash escapes one character */
        size_t k = 0;
        int overflow = 0;
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
            if (k < sizeof buf)
                buf[k++] = c;
            else
                overflow = 1;
        }
        v = buf;
        vn = overflow ? 0 : k;
    }
    else {
        v = s->p;
        while (s->p < s->end && is_tchar(*s->p))
            s->p++;
        vn = (size_t)(s->p - v);
        if (vn == 0) {
            *why = "a parameter with an empty value";
            return -1;
        }
    }
    if (name_len == 3 && strncasecmp(name, "rel", 3) == 0 && rel_has_next(v, vn))
        *next = 1;
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
        int next = 0;
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
            if (parse_param(s, &next, why) < 0)
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
