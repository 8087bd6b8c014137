/* Strict JSON scanning (RFC 8259) over a byte buffer; see json.h. */
#include "json.h"
#include "brackets.h"

void
cl_dec_init(cl_dec *d, cl_state *st, const char *buf, size_t len, int max_depth)
{
    d->start = d->p = buf;
    d->end = buf + len;
    d->depth = 0;
    d->max_depth = max_depth;
    d->guarded = 0;
    d->budget = PY_SSIZE_T_MAX;
    d->signal_tick = 0;
    d->defer_items = NULL;
    d->shape = NULL;
    d->unions = 0;
    d->exact_unions = 0;
    d->scratch = NULL;
    d->scratch_cap = 0;
    d->vcache = NULL;
    d->st = st;
    d->err = NULL;
    d->guard_depth = 0;
}

void
cl_dec_free(cl_dec *d)
{
    for (; d->guarded > 0; d->guarded--)    /* levels an error left early */
        Py_LeaveRecursiveCall();
    free(d->scratch);                       /* malloc: scans without the GIL use it too */
    d->scratch = NULL;
    d->scratch_cap = 0;
}

int
cl_dec_error(cl_dec *d, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    PyOS_vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    Py_ssize_t offset = d->p - d->start;
    if (d->err != NULL) {
        d->err->kind = CL_ERR_DECODE;
        d->err->offset = offset;
        memcpy(d->err->msg, msg, sizeof msg);
        return -1;
    }
    PyObject *exc = PyObject_CallFunction(d->st->DecodeError, "sn",
                                          msg, offset);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return -1;
}

int
cl_enter_refused(cl_dec *d)
{
    if (!PyErr_ExceptionMatches(PyExc_RecursionError))
        return -1;
    /* At the recursion limit no Python code may run, not even the
     * DecodeError constructor: set its arguments, and the exception
     * is built once the stack has unwound. */
    PyErr_Clear();
    PyObject *args = Py_BuildValue("(sn)", "JSON nested too deeply for the interpreter's "
                                   "recursion limit", (Py_ssize_t)(d->p - d->start));
    if (args != NULL) {
        PyErr_SetObject(d->st->DecodeError, args);
        Py_DECREF(args);
    }
    return -1;
}

int
cl_enter_slow(cl_dec *d)
{
    if (++d->depth > d->max_depth)
        return cl_dec_error(d, "JSON nested deeper than %d levels", d->max_depth);
    if (d->err != NULL) {
        if (d->depth <= d->guard_depth)
            return 0;
        return cl_dec_error(d, "JSON nested too deeply for the interpreter's recursion limit");
    }
    if (Py_EnterRecursiveCall(" while decoding JSON"))
        return cl_enter_refused(d);
    d->guarded++;
    return 0;
}

int
cl_expect(cl_dec *d, char c, const char *what)
{
    cl_skip_ws(d);
    if (d->p >= d->end)
        return cl_dec_error(d, "unexpected end of body, expected %s", what);
    if (*d->p != c)
        return cl_dec_error(d, "expected %s", what);
    d->p++;
    return 0;
}

int
cl_scan_literal(cl_dec *d, const char *lit, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, lit, n) != 0)
        return cl_dec_error(d, "invalid literal");
    d->p += n;
    return 0;
}

/* ---- strings ------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), or 0. */
static int
utf8_seq(const unsigned char *s, const unsigned char *end)
{
    unsigned char c = s[0];
    int n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;         /* overlong */
        if (c == 0xED) hi = 0x9F;         /* surrogates */
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;         /* overlong */
        if (c == 0xF4) hi = 0x8F;         /* > U+10FFFF */
    }
    else
        return 0;
    if (end - s < n)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int
read_hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

/* Validate one escape starting at p (p[0] == '\\'); returns its length. */
static int
check_escape(cl_dec *d, const char *p)
{
    if (d->end - p < 2)
        return 0;
    switch (p[1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return 2;
    case 'u':
        break;
    default:
        return 0;
    }
    if (d->end - p < 6)
        return 0;
    int u = read_hex4(p + 2);
    if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF))
        return 0;                          /* bad hex or lone low surrogate */
    if (u < 0xD800 || u > 0xDBFF)
        return 6;
    if (d->end - p < 12 || p[6] != '\\' || p[7] != 'u')
        return 0;                          /* high surrogate without a pair */
    int lo = read_hex4(p + 8);
    if (lo < 0xDC00 || lo > 0xDFFF)
        return 0;
    return 12;
}

#define HIGHS CL_HIGHS

int
cl_scan_string_from(cl_dec *d, cl_str *out, const char *p)
{
    out->escaped = 0;
    out->ascii = 1;
    for (;; p = cl_plain_run(p, d->end)) {
        if (p >= d->end) {
            d->p = p;
            return cl_dec_error(d, "unterminated string");
        }
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c == '\\') {
            int n = check_escape(d, p);
            if (n == 0) {
                d->p = p;
                return cl_dec_error(d, "invalid escape in string");
            }
            out->escaped = 1;
            p += n;
        }
        else if (c < 0x20) {
            d->p = p;
            return cl_dec_error(d, "control character in string");
        }
        else {
            int n = utf8_seq((const unsigned char *)p, (const unsigned char *)d->end);
            if (n == 0) {
                d->p = p;
                return cl_dec_error(d, "invalid UTF-8 in string");
            }
            out->ascii = 0;
            p += n;
        }
    }
    out->s = d->p + 1;
    out->len = p - out->s;
    d->p = p + 1;
    return 0;
}

static int
scratch_reserve(cl_dec *d, size_t n)
{
    if (n <= d->scratch_cap)
        return 0;
    size_t cap = d->scratch_cap ? d->scratch_cap : 256;
    while (cap < n)
        cap *= 2;
    char *s = realloc(d->scratch, cap);
    if (s == NULL) {
        if (d->err != NULL)
            d->err->kind = CL_ERR_NOMEM;
        else
            PyErr_NoMemory();
        return -1;
    }
    d->scratch = s;
    d->scratch_cap = cap;
    return 0;
}

static char *
put_utf8(char *o, unsigned int cp)
{
    if (cp < 0x80)
        *o++ = (char)cp;
    else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* The string was validated by cl_scan_string: escapes are well formed. */
int
cl_unescape(cl_dec *d, const cl_str *s, Py_ssize_t *out_len)
{
    if (scratch_reserve(d, (size_t)s->len + 1) < 0)
        return -1;
    const char *p = s->s, *end = s->s + s->len;
    char *o = d->scratch;
    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned int cp = (unsigned int)read_hex4(p);
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned int lo = (unsigned int)read_hex4(p + 2);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            o = put_utf8(o, cp);
            break;
        }
        default: *o++ = e; break;
        }
    }
    *out_len = o - d->scratch;
    return 0;
}

/* ---- numbers ------------------------------------------------------------ */

static const char *
digits(const char *p, const char *end)
{
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p;
}

int
cl_scan_number(cl_dec *d, cl_str *out, int *is_int)
{
    const char *p = d->p, *end = d->end, *q;
    *is_int = 1;
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0')
        p++;
    else if ((q = digits(p, end)) > p && *p != '0')
        p = q;
    else
        return cl_dec_error(d, "invalid number");
    if (p < end && *p == '.') {
        q = digits(p + 1, end);
        if (q == p + 1) {
            d->p = p;
            return cl_dec_error(d, "invalid number: digit expected after '.'");
        }
        p = q;
        *is_int = 0;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        q = digits(p, end);
        if (q == p) {
            d->p = p;
            return cl_dec_error(d, "invalid number: digit expected in exponent");
        }
        p = q;
        *is_int = 0;
    }
    out->s = d->p;
    out->len = p - d->p;
    out->escaped = 0;
    out->ascii = 1;
    d->p = p;
    return 0;
}

/* ---- structure ---------------------------------------------------------- */

int
cl_obj_next_slow(cl_dec *d, int *first, cl_str *key)
{
    cl_skip_ws(d);
    if (d->p >= d->end)
        return cl_dec_error(d, "unexpected end of body inside an object");
    if (*d->p == '}') {
        d->p++;
        return 0;
    }
    if (!*first) {
        if (*d->p != ',')
            return cl_dec_error(d, "expected ',' or '}' in object");
        d->p++;
        cl_skip_ws(d);
        if (d->p >= d->end)
            return cl_dec_error(d, "unexpected end of body inside an object");
    }
    *first = 0;
    if (*d->p != '"')
        return cl_dec_error(d, "expected a string key in object");
    if (cl_scan_string(d, key) < 0)
        return -1;
    return cl_obj_colon(d);
}

int
cl_obj_colon(cl_dec *d)
{
    if (cl_expect(d, ':', "':' after object key") < 0)
        return -1;
    cl_skip_ws(d);
    if (d->p >= d->end)
        return cl_dec_error(d, "unexpected end of body, expected a value");
    return 1;
}

int
cl_arr_next_slow(cl_dec *d, int *first)
{
    cl_skip_ws(d);
    if (d->p >= d->end)
        return cl_dec_error(d, "unexpected end of body inside an array");
    if (*d->p == ']') {
        d->p++;
        return 0;
    }
    if (!*first) {
        if (*d->p != ',')
            return cl_dec_error(d, "expected ',' or ']' in array");
        d->p++;
        cl_skip_ws(d);
        if (d->p >= d->end)
            return cl_dec_error(d, "unexpected end of body inside an array");
        if (*d->p == ']')
            return cl_dec_error(d, "trailing comma in array");
    }
    *first = 0;
    return 1;
}

/* ---- skipping by brackets (the rules and block masks: brackets.h) -------- */

/* Where a bracket scan stands between bytes. */
typedef struct {
    int in_string;
    int escaped;          /* the byte before was a backslash in a string */
    int depth;            /* brackets open since the scan began */
} cl_brackets;

/* Step over the byte c.  Returns 1 when it closes the structure the scan
 * began with, -1 when it opens one level past `room`, else 0. */
static inline int
bracket_byte(cl_brackets *b, char c, int room)
{
    int k = cl_lex_byte(&b->in_string, &b->escaped, c);
    if (k > 0)
        return ++b->depth > room ? -1 : 0;
    return k < 0 && --b->depth == 0 ? 1 : 0;
}

/* Scan [*pp, end) on from state b; stops after the bracket that closes the
 * structure (1, *pp past it), at one nested past `room` (-1), or at the
 * end (0, *pp == end). */
static int
scan_brackets(cl_brackets *b, const char **pp, const char *end, int room)
{
    const char *p = *pp;
    while (end - p >= 64) {
        cl_marks m = cl_block_marks(p);
        uint64_t inside;
        if (m.bslash != 0 || b->escaped) {
            int escaped_out;
            uint64_t quotes = m.quote & ~cl_escaped_bytes(m.bslash, b->escaped, &escaped_out);
            inside = cl_prefix_xor(quotes) ^ (b->in_string ? ~(uint64_t)0 : 0);
            if ((m.bslash & ~inside) != 0) {   /* a backslash outside a string */
                for (const char *e = p + 64; p < e; p++) {
                    int r = bracket_byte(b, *p, room);
                    if (r != 0) {
                        *pp = p + 1;
                        return r;
                    }
                }
                continue;
            }
            b->escaped = escaped_out;
        }
        else
            inside = cl_prefix_xor(m.quote) ^ (b->in_string ? ~(uint64_t)0 : 0);
        uint64_t opens = m.open & ~inside, closes = m.close & ~inside, hits = opens | closes;
        int n_open = cl_count_bits(opens), n_close = cl_count_bits(closes);
        b->in_string = (int)(inside >> 63);     /* after the block's last byte */
        if (n_close < b->depth && b->depth + n_open <= room) {
            b->depth += n_open - n_close;       /* neither the end nor too deep here */
            hits = 0;
        }
        while (hits != 0) {
            int i = __builtin_ctzll(hits);
            hits &= hits - 1;
            if ((opens >> i) & 1) {
                if (++b->depth > room) {
                    *pp = p + i + 1;
                    return -1;
                }
            }
            else if (--b->depth == 0) {
                *pp = p + i + 1;
                return 1;
            }
        }
        p += 64;
    }
    for (; p < end; p++) {
        int r = bracket_byte(b, *p, room);
        if (r != 0) {
            *pp = p + 1;
            return r;
        }
    }
    *pp = end;
    return 0;
}

int
cl_skip_structure(cl_dec *d)
{
    const char *p = d->p;
    if (p >= d->end || (*p != '[' && *p != '{'))
        return cl_skip_value(d);
    if (d->shape != NULL) {
        const cl_span *sp = cl_shape_find(d->shape, (size_t)(p - d->start));
        if (sp != NULL && sp->close < (size_t)(d->end - d->start)
            && sp->peak <= (long)d->max_depth - d->depth) {
            d->p = d->start + sp->close + 1;
            return 0;
        }
    }
    cl_brackets b = {0, 0, 0};
    int r = scan_brackets(&b, &p, d->end, d->max_depth - d->depth);
    if (r > 0) {
        d->p = p;
        return 0;
    }
    if (r < 0)
        return cl_dec_error(d, "JSON nested deeper than %d levels", d->max_depth);
    d->p = d->end;
    return cl_dec_error(d, "unexpected end of body inside an array or object");
}

int
cl_skip_value(cl_dec *d)
{
    cl_str s;
    int is_int, first = 1, rc;
    cl_skip_ws(d);
    if (d->p >= d->end)
        return cl_dec_error(d, "unexpected end of body, expected a value");
    switch (*d->p) {
    case '"':
        return cl_scan_string(d, &s);
    case '{':
        if (cl_enter(d) < 0)
            return -1;
        d->p++;
        while ((rc = cl_obj_next(d, &first, &s)) == 1)
            if (cl_skip_value(d) < 0)
                return -1;
        cl_leave(d);
        return rc;
    case '[':
        if (cl_enter(d) < 0)
            return -1;
        d->p++;
        while ((rc = cl_arr_next(d, &first)) == 1)
            if (cl_skip_value(d) < 0)
                return -1;
        cl_leave(d);
        return rc;
    case 't':
        return cl_scan_literal(d, "true", 4);
    case 'f':
        return cl_scan_literal(d, "false", 5);
    case 'n':
        return cl_scan_literal(d, "null", 4);
    default:
        return cl_scan_number(d, &s, &is_int);
    }
}
