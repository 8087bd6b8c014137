/* The scalar values of the schema-directed decoder: the Python object of
 * one JSON scalar, as its schema node asks.
 *
 * str (straight from validated UTF-8, short repeated texts through a small
 * per-call table), int, float, bool, Decimal (exact, from the wire text),
 * datetime (ISO-8601 strings, unix seconds or milliseconds) and enum
 * members.  decode.c's dispatch (decode_value) jumps here once per value.
 * The values are scanned by scan.h (whose rules the Arrow builder shares);
 * what is here is building the objects. */
#include "decode_internal.h"
#include <math.h>

/* ---- repeated values ---------------------------------------------------
 *
 * Short strings and decimal texts repeat within a page (statuses, currency
 * and country codes, enum text a schema does not know, the keys of generic
 * objects): each decode call keeps the last object built for each short
 * text in a small direct-mapped table and hands out the same object again.
 * The table belongs to the call (on the decoding thread's stack):
 * no other thread ever sees it, with the GIL or without it, and nothing of
 * it is in module or static state, so sub-interpreters share nothing.  A
 * decode without one (d->vcache NULL) builds every value.
 *
 * Whether a field's values repeat enough to pay for the look-up is learnt
 * per schema node (vc_policy), across calls: a node starts with the cache
 * on and keeps it while at least half of a window of VC_WINDOW look-ups
 * hit (a miss costs about what a hit saves on a short ASCII str); below
 * that (names, e-mails, ids) it skips the cache for the next VC_OFF_SPAN
 * values, then tries a window again.  Schemas are shared
 * between threads, so the policy word is read and written with relaxed
 * atomic loads and stores: a racing update is lost at worst, which moves a
 * heuristic and never a value. */
#define CL_VCACHE_MAXLEN 16       /* longer texts are not cached */
#define VC_WINDOW 64
#define VC_MIN_HITS (VC_WINDOW / 2)
#define VC_OFF_SPAN 1024
#define VC_OFF 0x80000000u       /* policy: off; low 16 bits count skipped values */

enum { VC_STR = 1, VC_DECIMAL = 2 };

/* The entry points (cl_decode_page, cl_decode_items, Schema.decode) keep
 * the table on their stack: no allocation, and entries are cleared only
 * once a value wants them. */
void
cl_vc_begin(cl_dec *d, cl_vcache *c)
{
    c->used = 0;
    c->dec_args = NULL;
    d->vcache = c;
}

void
cl_vc_end(cl_dec *d)
{
    cl_vcache *c = d->vcache;
    d->vcache = NULL;
    if (c == NULL)
        return;
    Py_CLEAR(c->dec_args);
    if (!c->used)
        return;
    for (int i = 0; i < CL_VCACHE_SIZE; i++)
        Py_XDECREF(c->ents[i].obj);
}

/* Whether the node's next value goes through the cache (a NULL node, a
 * generic value: always). */
static inline int
vc_wanted(cl_node *n)
{
    if (n == NULL)
        return 1;
    uint32_t s = __atomic_load_n(&n->vc_policy, __ATOMIC_RELAXED);
    if (!(s & VC_OFF))
        return 1;
    uint32_t skipped = (s & 0xFFFF) + 1;
    __atomic_store_n(&n->vc_policy, skipped >= VC_OFF_SPAN ? 0 : VC_OFF | skipped,
                     __ATOMIC_RELAXED);
    return 0;
}

/* Count one look-up of the node's window (bits 0-15 look-ups, 16-23 hits). */
static inline void
vc_count(cl_node *n, int hit)
{
    if (n == NULL)
        return;
    uint32_t s = __atomic_load_n(&n->vc_policy, __ATOMIC_RELAXED);
    uint32_t probes = (s & 0xFFFF) + 1, hits = ((s >> 16) & 0xFF) + (hit != 0);
    if (probes >= VC_WINDOW)
        s = hits >= VC_MIN_HITS ? 0 : VC_OFF;
    else
        s = (hits << 16) | probes;
    __atomic_store_n(&n->vc_policy, s, __ATOMIC_RELAXED);
}

/* The entry for text b[0..len) (len <= CL_VCACHE_MAXLEN) of kind `tag`
 * in the call's table (d->vcache, not NULL);
 * `limit`: where readable memory ends (word_head).  *hit says whether it
 * holds that text's object already; if not, vc_fill stores one there. */
static inline cl_vent *
vc_entry(cl_dec *d, int tag, const char *b, Py_ssize_t len, const char *limit, int *hit)
{
    if (!d->vcache->used) {
        memset(d->vcache->ents, 0, sizeof d->vcache->ents);
        d->vcache->used = 1;
    }
    uint64_t w0 = word_head(b, len, limit);
    uint64_t w1 = len > 8 ? word_head(b + 8, len - 8, limit) : 0;
    uint64_t h = (w0 + w1 * 31 + (uint64_t)(len * 4 + tag)) * 0x9E3779B97F4A7C15ULL;
    cl_vent *e = &d->vcache->ents[h >> 57];
    *hit = e->tag == tag && e->len == len && e->w0 == w0 && e->w1 == w1;
    if (!*hit) {
        Py_CLEAR(e->obj);
        e->tag = 0;
        e->w0 = w0;
        e->w1 = w1;
        e->len = (int32_t)len;
    }
    return e;
}

/* Keep `o` (may be NULL: an error) in the entry vc_entry missed on. */
static PyObject *
vc_fill(cl_vent *e, int tag, PyObject *o)
{
    if (o != NULL) {
        e->obj = Py_NewRef(o);
        e->tag = tag;
    }
    return o;
}

/* The code point of the sequence at *pp, stepping past it.  Only for
 * UTF-8 already validated (see str_from_utf8). */
static inline Py_UCS4
utf8_next(const unsigned char **pp)
{
    const unsigned char *p = *pp;
    Py_UCS4 c = p[0];
    if (c < 0x80)
        *pp = p + 1;
    else if (c < 0xE0) {
        c = ((c & 0x1F) << 6) | (p[1] & 0x3F);
        *pp = p + 2;
    }
    else if (c < 0xF0) {
        c = ((c & 0x0F) << 12) | ((Py_UCS4)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        *pp = p + 3;
    }
    else {
        c = ((c & 0x07) << 18) | ((Py_UCS4)(p[1] & 0x3F) << 12)
          | ((Py_UCS4)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        *pp = p + 4;
    }
    return c;
}

/* Eight bytes at p, as one word (any alignment). */
static inline uint64_t
load8(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* A str from UTF-8 that is known valid: cl_scan_string refused overlong
 * forms, surrogates and anything past U+10FFFF, and cl_unescape writes only
 * code points its escapes were checked to be.  One pass counts the
 * characters (bytes that are not continuation bytes 10xxxxxx) and finds
 * whether a lead byte of C4 or more (a character above U+FF) or of F0 or
 * more (one above U+FFFF) occurs: that gives the narrowest kind, the one
 * CPython itself would pick, so the str compares and hashes like any other.
 * The pass looks at eight bytes at a time: in each byte, bit 7 of w << k is
 * the byte's own bit 7 - k.  One allocation; one pass writes the characters,
 * copying runs of eight ASCII bytes whole into a 1-byte str. */
static PyObject *
str_from_utf8(const char *s, Py_ssize_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    Py_ssize_t cont = 0, i = 0;
    uint64_t wide = 0, astral = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = load8(p + i);
        uint64_t lead = w & (w << 1);                 /* 11xxxxxx */
        cont += (Py_ssize_t)((((w & ~(w << 1) & CL_HIGHS) >> 7) * CL_ONES) >> 56);
        wide |= lead & ((w << 2) | (w << 3) | (w << 4) | (w << 5));
        astral |= lead & (w << 2) & (w << 3);
    }
    for (; i < n; i++) {
        unsigned c = p[i];
        cont += (c & 0xC0) == 0x80;
        wide |= c >= 0xC4 ? 0x80 : 0;
        astral |= c >= 0xF0 ? 0x80 : 0;
    }
    Py_UCS4 maxchar = (astral & CL_HIGHS) ? 0x10FFFF : (wide & CL_HIGHS) ? 0xFFFF
                    : cont ? 0xFF : 0x7F;
    PyObject *o = PyUnicode_New(n - cont, maxchar);
    if (o == NULL)
        return NULL;
    void *data = PyUnicode_DATA(o);
    if (maxchar == 0x7F) {
        memcpy(data, s, (size_t)n);
        return o;
    }
    switch (PyUnicode_KIND(o)) {
    case PyUnicode_1BYTE_KIND:
        for (Py_UCS1 *out = data; p < e;) {
            if (e - p >= 8 && !(load8(p) & CL_HIGHS)) {
                memcpy(out, p, 8);
                out += 8;
                p += 8;
            }
            else
                *out++ = (Py_UCS1)utf8_next(&p);
        }
        break;
    case PyUnicode_2BYTE_KIND:
        for (Py_UCS2 *out = data; p < e;)
            *out++ = (Py_UCS2)utf8_next(&p);
        break;
    default:
        for (Py_UCS4 *out = data; p < e;)
            *out++ = utf8_next(&p);
        break;
    }
    return o;
}

static PyObject *
build_str(const char *b, Py_ssize_t len, int ascii)
{
    if (!ascii)
        return str_from_utf8(b, len);
    PyObject *o = PyUnicode_New(len, 127);
    if (o != NULL)
        memcpy(PyUnicode_DATA(o), b, (size_t)len);
    return o;
}

/* The str of a located string; a short one through the cache when the
 * field's node wants it (`n` NULL: a generic value, always). */
PyObject *
cl_make_str(cl_dec *d, const cl_str *s, cl_node *n)
{
    const char *b = s->s, *limit = d->end;
    Py_ssize_t len = s->len;
    int ascii = s->ascii && !s->escaped, hit;
    if (s->escaped) {
        if (cl_unescape(d, s, &len) < 0)
            return NULL;
        b = d->scratch;
        limit = d->scratch + d->scratch_cap;
    }
    if (len > CL_VCACHE_MAXLEN || d->vcache == NULL || !vc_wanted(n))
        return build_str(b, len, ascii);
    cl_vent *e = vc_entry(d, VC_STR, b, len, limit, &hit);
    vc_count(n, hit);
    if (hit)
        return Py_NewRef(e->obj);
    return vc_fill(e, VC_STR, build_str(b, len, ascii));
}

/* `n`: the field's node (its cache policy), NULL for a generic value. */
PyObject *
cl_decode_str(cl_dec *d, cl_node *n)
{
    cl_str s;
    if (cl_scan_str_value(d, &s) < 0)
        return NULL;
    return cl_make_str(d, &s, n);
}

/* Copy a delimited token into scratch as a NUL-terminated C string. */
static const char *
token_cstr(cl_dec *d, const cl_str *num)
{
    cl_str copy = *num;
    copy.escaped = 1;          /* cl_unescape copies plain bytes verbatim */
    Py_ssize_t n;
    if (cl_unescape(d, &copy, &n) < 0)
        return NULL;
    d->scratch[n] = '\0';
    return d->scratch;
}

PyObject *
cl_int_from_token(cl_dec *d, const cl_str *num)
{
    int64_t small;
    if (num->len <= 18 && cl_int64_of(num, &small) == 0)
        return PyLong_FromLongLong(small);
    const char *c = token_cstr(d, num);
    if (c == NULL)
        return NULL;
    PyObject *v = PyLong_FromString(c, NULL, 10);
    if (v == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        /* beyond sys.get_int_max_str_digits(): converting it would take
         * quadratic time, which is what that limit is there to prevent */
        PyErr_Clear();
        const char *after = d->p;
        d->p = num->s;
        cl_dec_error(d, "integer of %zd digits exceeds the interpreter's limit on int digits",
                     num->len - (num->s[0] == '-'));
        d->p = after;
    }
    return v;
}

PyObject *
cl_float_from_token(cl_dec *d, const cl_str *num)
{
    const char *c = token_cstr(d, num);
    if (c == NULL)
        return NULL;
    double v = PyOS_string_to_double(c, NULL, NULL);
    if (v == -1.0 && PyErr_Occurred())
        return NULL;
    if (isinf(v)) {
        cl_dec_error(d, "number out of range");
        return NULL;
    }
    return PyFloat_FromDouble(v);
}

PyObject *
cl_decode_int(cl_dec *d)
{
    cl_str num;
    if (cl_scan_integer(d, &num) < 0)
        return NULL;
    return cl_int_from_token(d, &num);
}

PyObject *
cl_decode_float(cl_dec *d)
{
    cl_str num;
    int is_int;
    if (cl_scan_number_as(d, &num, &is_int, "a number") < 0)
        return NULL;
    return cl_float_from_token(d, &num);
}

PyObject *
cl_decode_bool(cl_dec *d)
{
    int v = cl_scan_bool(d);
    return v < 0 ? NULL : Py_NewRef(v ? Py_True : Py_False);
}

/* Decimal(text), exact; `at`: where the value starts, for the error. */
static PyObject *
build_decimal(cl_dec *d, const char *s, Py_ssize_t len, const char *at)
{
    PyObject *text = build_str(s, len, 1);  /* digits, sign, '.', exponent: ASCII */
    if (text == NULL)
        return NULL;
    /* Decimal's own constructor, without type.__call__ around it: its
     * __init__ is object's, which does nothing when __new__ is overridden.
     * Its argument tuple is made once per call of the decoder and kept in
     * the call's value table (d->vcache, on the entry point's stack, seen
     * by this thread alone): it goes in again only while nothing else holds
     * a reference to it, its item emptied in between.  It is untracked, so
     * gc.get_objects() (from a gc callback, say) never hands it out. */
    PyTypeObject *tp = (PyTypeObject *)d->st->Decimal;
    cl_vcache *c = d->vcache;
    PyObject *args = NULL, *v = NULL;
    if (c != NULL && c->dec_args != NULL) {
        args = c->dec_args;
        c->dec_args = NULL;
    }
    else if ((args = PyTuple_New(1)) == NULL) {
        Py_DECREF(text);
        return NULL;
    }
    else
        PyObject_GC_UnTrack(args);
    PyTuple_SET_ITEM(args, 0, text);
    v = tp->tp_new(tp, args, NULL);
    if (c != NULL && Py_REFCNT(args) == 1) {
        PyTuple_SET_ITEM(args, 0, NULL);
        Py_DECREF(text);
        c->dec_args = args;
    }
    else
        Py_DECREF(args);
    if (v == NULL && (PyErr_ExceptionMatches(PyExc_ArithmeticError)
                      || PyErr_ExceptionMatches(PyExc_ValueError))) {
        /* decimal.InvalidOperation: an exponent beyond the context's limits */
        PyErr_Clear();
        const char *after = d->p;
        d->p = at;
        cl_dec_error(d, "decimal amount out of range");
        d->p = after;
    }
    return v;
}

/* Decimal is immutable: a repeated amount text gets the same object (the
 * text is the key, so "1.0", "1.00" and "-0" stay what they are). */
PyObject *
cl_decode_decimal(cl_dec *d, cl_node *n)
{
    cl_str tok;
    const char *at = d->p;
    if (cl_scan_decimal_text(d, &tok) < 0)
        return NULL;
    if (tok.len > CL_VCACHE_MAXLEN || d->vcache == NULL || !vc_wanted(n))
        return build_decimal(d, tok.s, tok.len, at);
    int hit;
    cl_vent *e = vc_entry(d, VC_DECIMAL, tok.s, tok.len, d->end, &hit);
    vc_count(n, hit);
    if (hit)
        return Py_NewRef(e->obj);
    return vc_fill(e, VC_DECIMAL, build_decimal(d, tok.s, tok.len, at));
}

/* ---- datetimes ---------------------------------------------------------- */

/* The civil date of day n, counted from 0000-03-01 (a year that starts in
 * March ends with the leap day): the Neri-Schneider method, every step an
 * unsigned multiplication, shift or division by a constant.  Checked
 * against the plain era / year-of-era arithmetic for every day of years 1
 * to 9999. */
static inline void
civil_from_days(uint32_t n, int *y, int *m, int *day)
{
    uint32_t n1 = 4 * n + 3;
    uint32_t c = n1 / 146097;                   /* centuries */
    uint32_t nc = n1 % 146097 / 4;              /* day of the century */
    uint64_t p2 = (uint64_t)2939745 * (4 * nc + 3);
    uint32_t z = (uint32_t)(p2 >> 32);          /* year of the century */
    uint32_t ny = (uint32_t)p2 / 2939745 / 4;   /* day of the year, from March 1 */
    uint32_t n3 = 2141 * ny + 197913;
    uint32_t jan = ny >= 306;                   /* January or February: the next year */
    *y = (int)(100 * c + z + jan);
    *m = (int)(jan ? (n3 >> 16) - 12 : n3 >> 16);
    *day = (int)((n3 & 0xFFFF) / 2141) + 1;
}

/* The aware datetime (UTC) of epoch microseconds within years 1 to 9999
 * (which the callers checked). */
static PyObject *
datetime_of_epoch_us(cl_dec *d, long long us)
{
    if (us < CL_EPOCH_US_MIN || us > CL_EPOCH_US_MAX)
        __builtin_unreachable();
    /* from 0001-01-01T00:00, so every division below is unsigned */
    uint64_t u = (uint64_t)(us - CL_EPOCH_US_MIN);
    uint64_t secs = u / 1000000, frac = u % 1000000;
    uint64_t days = secs / 86400, sod = secs % 86400;
    int y, m, day;
    civil_from_days((uint32_t)days + 306, &y, &m, &day);   /* 0001-01-01 is day 306 */
    PyDateTime_CAPI *api = d->st->dt;
    return api->DateTime_FromDateAndTime(y, m, day, (int)(sod / 3600), (int)(sod / 60 % 60),
                                         (int)(sod % 60), (int)frac, d->st->utc,
                                         api->DateTimeType);
}

/* Timestamps: ISO-8601 strings always; numbers as unix seconds or
 * milliseconds when the field says so (the scans are scan.h's). */
PyObject *
cl_decode_datetime(cl_dec *d, int kind)
{
    const char *at = d->p;
    if (*d->p == '"') {
        cl_iso f;
        if (cl_scan_iso(d, &f) < 0)
            return NULL;
        PyDateTime_CAPI *api = d->st->dt;
        if (f.off == 0)                    /* UTC already: the fields are the datetime's */
            return api->DateTime_FromDateAndTime(f.y, f.m, f.day, f.hh, f.mi, f.ss, f.us,
                                                 d->st->utc, api->DateTimeType);
        long long us = cl_iso_epoch_us(&f);
        if (us < CL_EPOCH_US_MIN || us > CL_EPOCH_US_MAX) {
            d->p = at;                     /* errors point at the value */
            cl_dec_error(d, "timestamp out of range");
            return NULL;
        }
        return datetime_of_epoch_us(d, us);
    }
    if (kind == K_DATETIME) {
        type_error(d, "an ISO-8601 timestamp string");
        return NULL;
    }
    long long us;
    if (cl_scan_unix(d, kind == K_UNIX_MS, &us) < 0)
        return NULL;
    return datetime_of_epoch_us(d, us);
}

/* ---- enums -------------------------------------------------------------- */

/* Known values become enum members; an unknown value stays a plain str,
 * since vendors add values without notice. */
PyObject *
cl_decode_enum(cl_dec *d, cl_node *n)
{
    cl_str s;
    const char *b;
    Py_ssize_t len;
    if (cl_scan_str_value(d, &s) < 0 || str_bytes(d, &s, &b, &len) < 0)
        return NULL;
    cl_word *w = match_word(d, n->words, n->nwords, b, len);
    if (w != NULL)
        return Py_NewRef(w->obj);
    return cl_make_str(d, &s, n);
}
