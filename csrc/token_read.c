/* The token response, read in the fetch thread without Python: see
 * token_internal.h.  The scanning is json.c's (cl_dec with `err` set, so
 * it calls no Python and needs no module state); this file only says which
 * response it takes plainly. */
#include "token_internal.h"
#include "json.h"
#include <math.h>             /* isfinite */
#include <stdlib.h>
#include <string.h>
#include <strings.h>          /* strncasecmp */

/* Levels of nesting, the top-level object's included. */
#define CL_TOKEN_MAX_DEPTH 64
/* Longer numbers are Python's to read (its int conversion has a limit of
 * its own, which a user may lower). */
#define CL_TOKEN_MAX_NUMBER 40

/* The body is read plainly only when every byte is ASCII below DEL and no
 * run of digits is longer than CL_TOKEN_MAX_NUMBER (anywhere: a long run in
 * a string sends a body to Python that C could have read, never the
 * reverse).  Past that, other members' values are stepped over with
 * cl_skip_value, which refuses what JSON refuses. */
static int
plain_body(const char *body, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c >= 0x7f)
            return 0;
        run = c >= '0' && c <= '9' ? run + 1 : 0;
        if (run > CL_TOKEN_MAX_NUMBER)
            return 0;
    }
    return 1;
}

/* The members taken from the response, located in its buffer. */
typedef struct {
    cl_str tok, type, exp;
    int seen_tok, seen_type, seen_exp;
} members;

/* The top-level object: 0 with its members, or -1 for Python to judge. */
static int
read_object(cl_dec *d, members *m)
{
    cl_str key;
    int first = 1, rc;
    cl_skip_ws(d);
    if (d->p >= d->end || *d->p != '{' || cl_enter(d) < 0)
        return -1;
    d->p++;
    while ((rc = cl_obj_next(d, &first, &key)) == 1) {
        if (key.escaped)
            return -1;
        int is_tok = key.len == 12 && memcmp(key.s, "access_token", 12) == 0;
        int is_type = key.len == 10 && memcmp(key.s, "token_type", 10) == 0;
        int is_exp = key.len == 10 && memcmp(key.s, "expires_in", 10) == 0;
        if ((is_tok && m->seen_tok++) || (is_type && m->seen_type++)
            || (is_exp && m->seen_exp++))
            return -1;                 /* a member twice: Python's rule decides */
        if (is_tok || is_type) {
            cl_str *v = is_tok ? &m->tok : &m->type;
            if (*d->p != '"')
                return -1;             /* not a str: Python's message */
            if (cl_scan_string(d, v) < 0 || v->escaped)
                return -1;
        }
        else if (is_exp && (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))) {
            int is_int;
            if (cl_scan_number(d, &m->exp, &is_int) < 0 || m->exp.len > CL_TOKEN_MAX_NUMBER)
                return -1;
        }
        else if (cl_skip_value(d) < 0)
            return -1;
    }
    if (rc < 0)
        return -1;
    cl_leave(d);
    cl_skip_ws(d);
    return d->p == d->end ? 0 : -1;    /* nothing after the object */
}

int
cl_token_read_response(const char *body, size_t len, char **line, double *seconds)
{
    cl_dec d;
    cl_err err;
    members m;
    double lifetime = 3600.0;
    *line = NULL;
    memset(&err, 0, sizeof err);
    memset(&m, 0, sizeof m);
    if (!plain_body(body, len))
        return 0;
    /* No Python: failures are noted in `err` (and dropped: Python reads the
     * response again with its own parser), the depth is bounded by
     * max_depth alone (guard_depth: no interpreter recursion here), and the
     * module state is never touched. */
    cl_dec_init(&d, NULL, body, len, CL_TOKEN_MAX_DEPTH);
    d.err = &err;
    d.guard_depth = CL_TOKEN_MAX_DEPTH;
    int rc = read_object(&d, &m);
    cl_dec_free(&d);
    if (rc < 0 || !m.seen_tok || m.tok.len == 0
        || m.tok.len > CL_TOKEN_MAX_LINE - 32)
        return 0;
    int blank = 1;
    for (Py_ssize_t i = 0; i < m.tok.len; i++)
        blank &= m.tok.s[i] == ' ';
    if (blank)
        return 0;
    if (m.seen_type && (m.type.len != 6 || strncasecmp(m.type.s, "bearer", 6) != 0))
        return 0;
    if (m.seen_exp && m.exp.len > 0) {
        char digits[CL_TOKEN_MAX_NUMBER + 1];
        memcpy(digits, m.exp.s, (size_t)m.exp.len);
        digits[m.exp.len] = '\0';
        double v = strtod(digits, NULL);
        if (isfinite(v))
            lifetime = v;
    }
    if (lifetime < 0)
        lifetime = 0;
    if (lifetime > 10 * 365 * 86400.0)
        lifetime = 10 * 365 * 86400.0;
    double margin = lifetime * 0.1 < 60.0 ? lifetime * 0.1 : 60.0;
    static const char name[] = "Authorization: Bearer ";
    size_t n = (size_t)m.tok.len;
    if ((*line = malloc(sizeof name + n)) == NULL)
        return 0;
    memcpy(*line, name, sizeof name - 1);
    memcpy(*line + sizeof name - 1, m.tok.s, n);
    (*line)[sizeof name - 1 + n] = '\0';
    *seconds = lifetime - margin;
    return 1;
}
