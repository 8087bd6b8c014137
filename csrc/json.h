/* In-situ JSON scanner over a receive buffer.
 *
 * Nothing here allocates per value: strings are located (and validated) in
 * place, numbers are delimited, unknown values are skipped.  The decoder
 * (decode.c) turns what it needs into Python objects. */
#ifndef CL_JSON_H
#define CL_JSON_H

#include "common.h"

typedef struct {
    const char *start;      /* first byte of the body */
    const char *p;          /* cursor */
    const char *end;        /* one past the last byte */
    int depth;
    int max_depth;
    int guarded;            /* Py_EnterRecursiveCall calls not yet left */
    Py_ssize_t budget;      /* array elements still allowed (item budget) */
    unsigned signal_tick;   /* counts values between signal checks */
    void *defer_items;      /* cl_schema * that deferred items decode with */
    int unions;             /* unions open in the fast mode (decode.c) */
    int exact_unions;       /* > 0: every union looks ahead in full (decode.c) */
    char *scratch;          /* unescaped string bytes */
    size_t scratch_cap;
    cl_state *st;
} cl_dec;

/* A located string: bytes between the quotes, as on the wire. */
typedef struct {
    const char *s;
    Py_ssize_t len;
    int escaped;            /* contains backslash escapes */
    int ascii;              /* all bytes < 0x80 */
} cl_str;

void cl_dec_init(cl_dec *d, cl_state *st, const char *buf, size_t len, int max_depth);
void cl_dec_free(cl_dec *d);

/* Sets DecodeError(message, offset) at the cursor; returns -1. */
int cl_dec_error(cl_dec *d, const char *fmt, ...);

static inline void
cl_skip_ws(cl_dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t'))
        d->p++;
}

/* Expect byte c after whitespace and step over it. */
int cl_expect(cl_dec *d, char c, const char *what);

/* Cursor at '"': locate and validate the string, step past it. */
int cl_scan_string(cl_dec *d, cl_str *out);
/* Unescape into d->scratch; *out_len receives the UTF-8 length. */
int cl_unescape(cl_dec *d, const cl_str *s, Py_ssize_t *out_len);
/* Cursor at a number: delimit it and check the grammar. */
int cl_scan_number(cl_dec *d, cl_str *out, int *is_int);
/* Skip any value, fully validating it. */
int cl_skip_value(cl_dec *d);
/* Skip an array or object by its brackets alone, without validating its
 * contents: for a region that is decoded (and validated) afterwards. */
int cl_skip_structure(cl_dec *d);
/* Match a literal (true/false/null) at the cursor. */
int cl_scan_literal(cl_dec *d, const char *lit, size_t n);

/* Object iteration: after '{' call cl_obj_next to get each key;
 * returns 1 with a key, 0 at '}', -1 on error. `first` tracks commas. */
int cl_obj_next(cl_dec *d, int *first, cl_str *key);
/* Array iteration likewise: 1 at a value, 0 at ']', -1 on error. */
int cl_arr_next(cl_dec *d, int *first);

/* One nesting level deeper: bounded by max_depth (itself at most
 * CL_MAX_DEPTH) and by the interpreter's recursion guard, so no setting
 * can overflow the C stack. */
int cl_enter(cl_dec *d);
static inline void
cl_leave(cl_dec *d)
{
    d->depth--;
    if (d->guarded > 0) {
        d->guarded--;
        Py_LeaveRecursiveCall();
    }
}

#endif
