/* Arrow output: the columns of a record batch, filled in C straight from
 * the JSON scan of each page (arrow_compile.c makes the column tree,
 * arrow_export.c hands it over).  A page's items are scanned once into
 * growing buffers; no Python object is built per row.  The bounds are the
 * record path's: the page's item budget (max_items_per_page) is spent on
 * the same values, and the same values fail with the same DecodeError at
 * the same offset. */
#include "arrow_cols.h"
#include "json.h"
#include "where.h"
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable buffers ---------------------------------------------------- */

static int
buf_reserve(abuf *b, size_t extra)
{
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(p + b->cap, 0, cap - b->cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int
buf_put(abuf *b, const void *src, size_t n)
{
    if (n == 0)
        return 0;                 /* an empty string: no bytes, maybe no buffer yet */
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

/* ---- appending ------------------------------------------------------------ */

static int
set_valid(acol *c, int v)
{
    size_t byte = (size_t)(c->length >> 3);
    if (byte >= c->valid.len) {
        if (buf_reserve(&c->valid, byte + 1 - c->valid.len) < 0)
            return -1;
        c->valid.len = byte + 1;
    }
    uint8_t bit = (uint8_t)(1u << (c->length & 7));
    if (v)
        c->valid.p[byte] |= bit;
    else
        c->valid.p[byte] &= (uint8_t)~bit;
    c->length++;
    return 0;
}

static int
put_bit(abuf *b, int64_t i, int v)
{
    size_t byte = (size_t)(i >> 3);
    if (byte >= b->len) {
        if (buf_reserve(b, byte + 1 - b->len) < 0)
            return -1;
        b->len = byte + 1;
    }
    if (v)
        b->p[byte] |= (uint8_t)(1u << (i & 7));
    else
        b->p[byte] &= (uint8_t)~(1u << (i & 7));
    return 0;
}

static int
put_offset(cl_dec *d, acol *c, int64_t v)
{
    if (v > INT32_MAX)
        return cl_dec_error(d, "column %s holds more than 2 GiB in one page", c->name);
    int32_t o = (int32_t)v;
    return buf_put(&c->offs, &o, sizeof o);
}

static int
append_null(cl_dec *d, acol *c)
{
    static const uint8_t zeros[16] = {0};
    int rc = 0;
    switch (c->kind) {
    case A_STR: case A_DECSTR: case A_ANY:
        rc = put_offset(d, c, (int64_t)c->data.len);
        break;
    case A_LIST:
        rc = put_offset(d, c, c->child[0]->length);
        break;
    case A_INT: case A_FLOAT: case A_TS:
        rc = buf_put(&c->data, zeros, 8);
        break;
    case A_DEC:
        rc = buf_put(&c->data, zeros, 16);
        break;
    case A_ENUM:
        rc = buf_put(&c->data, zeros, 4);
        break;
    case A_BOOL:
        rc = put_bit(&c->data, c->length, 0);
        break;
    case A_STRUCT:
        for (int i = 0; i < c->nchild && rc == 0; i++)
            rc = append_null(d, c->child[i]);
        break;
    }
    return rc < 0 ? -1 : set_valid(c, 0);
}

static int
append_bytes(cl_dec *d, acol *c, const char *s, size_t n)
{
    if (buf_put(&c->data, s, n) < 0 || put_offset(d, c, (int64_t)c->data.len) < 0)
        return -1;
    return set_valid(c, 1);
}

static int
append_fixed(acol *c, const void *v, size_t n)
{
    return buf_put(&c->data, v, n) < 0 ? -1 : set_valid(c, 1);
}

/* Drop rows from n on (a field met twice in one object: the last wins, as
 * in records). */
static void
truncate_col(acol *c, int64_t n)
{
    if (n >= c->length)
        return;
    switch (c->kind) {
    case A_STR: case A_DECSTR: case A_ANY:
        c->data.len = (size_t)((int32_t *)c->offs.p)[n];
        c->offs.len = (size_t)(n + 1) * 4;
        break;
    case A_LIST:
        truncate_col(c->child[0], ((int32_t *)c->offs.p)[n]);
        c->offs.len = (size_t)(n + 1) * 4;
        break;
    case A_INT: case A_FLOAT: case A_TS:
        c->data.len = (size_t)n * 8;
        break;
    case A_DEC:
        c->data.len = (size_t)n * 16;
        break;
    case A_ENUM:
        c->data.len = (size_t)n * 4;
        break;
    case A_BOOL:
        c->data.len = (size_t)((n + 7) >> 3);
        break;
    case A_STRUCT:
        for (int i = 0; i < c->nchild; i++)
            truncate_col(c->child[i], n);
        break;
    }
    c->valid.len = (size_t)((n + 7) >> 3);
    c->length = n;
}

/* ---- enum dictionaries ---------------------------------------------------- */

static unsigned
hash_bytes(const char *s, size_t n)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static const char *
dict_entry(acol *dict, int32_t i, size_t *n)
{
    int32_t *o = (int32_t *)dict->offs.p;
    *n = (size_t)(o[i + 1] - o[i]);
    return (const char *)dict->data.p + o[i];
}

static int
dict_rehash(acol *c, size_t cap)
{
    int32_t *ht = calloc(cap, sizeof *ht);
    if (ht == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (int32_t i = 0; i < (int32_t)c->dict->length; i++) {
        size_t n;
        const char *s = dict_entry(c->dict, i, &n);
        size_t j = hash_bytes(s, n) & (cap - 1);
        while (ht[j] != 0)
            j = (j + 1) & (cap - 1);
        ht[j] = i + 1;
    }
    free(c->ht);
    c->ht = ht;
    c->htcap = cap;
    return 0;
}

/* The dictionary index of a value, adding it when new. */
static int
dict_index(cl_dec *d, acol *c, const char *s, size_t n, int32_t *out)
{
    if ((size_t)c->dict->length * 2 >= c->htcap
        && dict_rehash(c, c->htcap ? c->htcap * 2 : 64) < 0)
        return -1;
    size_t j = hash_bytes(s, n) & (c->htcap - 1);
    while (c->ht[j] != 0) {
        size_t m;
        const char *e = dict_entry(c->dict, c->ht[j] - 1, &m);
        if (m == n && memcmp(e, s, n) == 0) {
            *out = c->ht[j] - 1;
            return 0;
        }
        j = (j + 1) & (c->htcap - 1);
    }
    if (c->dict->length >= INT32_MAX)
        return cl_dec_error(d, "too many distinct values in column %s", c->name);
    *out = (int32_t)c->dict->length;
    c->ht[j] = *out + 1;
    return append_bytes(d, c->dict, s, n);
}

/* ---- empty builders ------------------------------------------------------- */

static int
col_reset(acol *c)
{
    c->length = 0;
    c->mark = -1;
    c->valid.len = c->data.len = c->offs.len = 0;
    if (c->kind == A_STR || c->kind == A_DECSTR || c->kind == A_ANY || c->kind == A_LIST) {
        int32_t zero = 0;
        if (buf_put(&c->offs, &zero, sizeof zero) < 0)
            return -1;
    }
    for (int i = 0; i < c->nchild; i++)
        if (col_reset(c->child[i]) < 0)
            return -1;
    if (c->kind == A_ENUM) {
        if (col_reset(c->dict) < 0)
            return -1;
        if (c->ht != NULL)
            memset(c->ht, 0, c->htcap * sizeof *c->ht);
        for (int i = 0; i < c->nwords; i++) {
            int32_t ix;
            if (dict_index(NULL, c, c->words[i], c->wlens[i], &ix) < 0)
                return -1;
        }
    }
    return 0;
}

/* ---- reading values ------------------------------------------------------- */

static int read_value(cl_dec *d, acol *c);

/* One unit of the page's item budget, spent where the record path spends
 * it: before each item, each element of a list and each member of a value
 * kept as JSON (dict, list or any), at the same place, with the same error. */
static int
spend(cl_dec *d)
{
    if (d->budget-- <= 0) {
        d->budget = 0;
        return cl_dec_error(d, "page holds more values than max_items_per_page allows");
    }
    return 0;
}

static int
type_error(cl_dec *d, const char *expected)
{
    return cl_dec_error(d, "expected %s", expected);
}

/* The bytes of a located string, unescaped when needed (then in scratch). */
static int
string_bytes(cl_dec *d, const cl_str *s, const char **out, size_t *n)
{
    if (!s->escaped) {
        *out = s->s;
        *n = (size_t)s->len;
        return 0;
    }
    Py_ssize_t len;
    if (cl_unescape(d, s, &len) < 0)
        return -1;
    *out = d->scratch;
    *n = (size_t)len;
    return 0;
}

static int
read_string(cl_dec *d, cl_str *s, const char **b, size_t *n)
{
    if (*d->p != '"')
        return type_error(d, "a string");
    if (cl_scan_string(d, s) < 0)
        return -1;
    return string_bytes(d, s, b, n);
}

static int
scan_number_value(cl_dec *d, cl_str *num, int *is_int, const char *expected)
{
    char c = *d->p;
    if (c != '-' && (c < '0' || c > '9'))
        return type_error(d, expected);
    return cl_scan_number(d, num, is_int);
}

static int
read_int(cl_dec *d, acol *c)
{
    cl_str num;
    int is_int;
    const char *at = d->p;
    if (scan_number_value(d, &num, &is_int, "an integer") < 0)
        return -1;
    if (!is_int) {
        d->p = at;
        return type_error(d, "an integer");
    }
    int neg = num.s[0] == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (Py_ssize_t i = neg; i < num.len; i++) {
        unsigned dg = (unsigned)(num.s[i] - '0');
        if (v > (limit - dg) / 10) {
            d->p = at;
            return cl_dec_error(d, "integer out of range for int64 (column %s)", c->name);
        }
        v = v * 10 + dg;
    }
    int64_t x = neg ? (int64_t)(0 - v) : (int64_t)v;
    return append_fixed(c, &x, sizeof x);
}

static int
read_float(cl_dec *d, acol *c)
{
    cl_str num;
    int is_int;
    char small[64], *text = small;
    if (scan_number_value(d, &num, &is_int, "a number") < 0)
        return -1;
    if ((size_t)num.len >= sizeof small && (text = malloc((size_t)num.len + 1)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(text, num.s, (size_t)num.len);
    text[num.len] = '\0';
    double v = PyOS_string_to_double(text, NULL, NULL);
    if (text != small)
        free(text);
    if (v == -1.0 && PyErr_Occurred())
        return -1;
    if (isinf(v))
        return cl_dec_error(d, "number out of range");
    return append_fixed(c, &v, sizeof v);
}

static int
read_bool(cl_dec *d, acol *c)
{
    int v = *d->p == 't';
    if (!v && *d->p != 'f')
        return type_error(d, "a boolean");
    if (v ? cl_scan_literal(d, "true", 4) < 0 : cl_scan_literal(d, "false", 5) < 0)
        return -1;
    if (put_bit(&c->data, c->length, v) < 0)
        return -1;
    return set_valid(c, 1);
}

/* The decimal text (as the record path accepts it) into a scaled 128-bit
 * integer; a value that needs more places or digits than declared is an
 * error, never rounded. */
static int
read_decimal(cl_dec *d, acol *c)
{
    cl_str tok;
    int is_int;
    const char *at = d->p;
    if (*d->p == '"') {
        if (cl_scan_string(d, &tok) < 0)
            return -1;
        if (tok.escaped || !cl_plain_decimal(tok.s, tok.len)) {
            d->p = at;
            return type_error(d, "a decimal amount");
        }
    }
    else if (scan_number_value(d, &tok, &is_int, "a decimal amount") < 0)
        return -1;
    if (c->kind == A_DECSTR)
        return append_bytes(d, c, tok.s, (size_t)tok.len);

    const char *s = tok.s, *e = tok.s + tok.len;
    int neg = s < e && *s == '-';
    s += neg;
    const char *first = NULL, *last = NULL;   /* significant digits, '.' skipped */
    long long frac = 0, exp10 = 0, nd = 0;
    int in_frac = 0;
    for (; s < e && *s != 'e' && *s != 'E'; s++) {
        if (*s == '.') {
            in_frac = 1;
            continue;
        }
        frac += in_frac;
        if (first == NULL && *s == '0')
            continue;
        if (first == NULL)
            first = s;
        last = s;
        nd++;
    }
    if (s < e) {                              /* exponent, saturated */
        int eneg = *++s == '-';
        s += *s == '+' || *s == '-';
        for (; s < e; s++)
            if (exp10 < 1000000000LL)
                exp10 = exp10 * 10 + (*s - '0');
        if (eneg)
            exp10 = -exp10;
    }
    __int128 v = 0;
    if (nd > 0) {
        /* value = digits * 10^(exp10 - frac); as scale s: digits * 10^shift */
        long long shift = c->scale + exp10 - frac, drop = shift < 0 ? -shift : 0;
        long long keep = nd - drop;
        if (drop > 0) {
            const char *q = last;
            for (long long i = 0; i < drop && q >= first; q--) {
                if (*q == '.')
                    continue;
                if (*q != '0' || keep <= 0) {
                    d->p = at;
                    return cl_dec_error(d, "decimal amount does not fit decimal128(%d, %d): "
                                        "more than %d decimal places (column %s)",
                                        c->precision, c->scale, c->scale, c->name);
                }
                i++;
            }
        }
        if (keep + (shift > 0 ? shift : 0) > c->precision) {
            d->p = at;
            return cl_dec_error(d, "decimal amount does not fit decimal128(%d, %d): "
                                "more than %d digits (column %s)",
                                c->precision, c->scale, c->precision, c->name);
        }
        long long taken = 0;
        for (const char *q = first; q <= last && taken < keep; q++) {
            if (*q == '.')
                continue;
            v = v * 10 + (*q - '0');
            taken++;
        }
        for (long long i = 0; i < shift; i++)
            v *= 10;
        if (neg)
            v = -v;
    }
    return append_fixed(c, &v, sizeof v);
}

/* Timestamps as the record path reads them, to epoch microseconds. */
static int
read_timestamp(cl_dec *d, acol *c)
{
    const long long lo = -62135596800LL * 1000000LL, hi = 253402300799LL * 1000000LL + 999999LL;
    const char *at = d->p;
    long long us;
    if (*d->p == '"') {
        cl_str s;
        if (cl_scan_string(d, &s) < 0)
            return -1;
        if (s.escaped || cl_parse_iso(s.s, s.len, &us) < 0) {
            d->p = at;
            return cl_dec_error(d, "invalid ISO-8601 timestamp");
        }
    }
    else {
        cl_str num;
        int is_int;
        if (c->ts == TS_ISO)
            return type_error(d, "an ISO-8601 timestamp string");
        if (scan_number_value(d, &num, &is_int, "a timestamp") < 0)
            return -1;
        if (!is_int || num.len > 18) {
            d->p = at;
            return is_int ? cl_dec_error(d, "timestamp out of range")
                          : type_error(d, "an integer timestamp");
        }
        long long t = 0;
        for (Py_ssize_t i = num.s[0] == '-'; i < num.len; i++)
            t = t * 10 + (num.s[i] - '0');
        if (num.s[0] == '-')
            t = -t;
        long long limit = c->ts == TS_UNIX_S ? 253402300799LL : 253402300799999LL;
        if (t > limit || t < -limit) {
            d->p = at;
            return cl_dec_error(d, "timestamp out of range");
        }
        us = c->ts == TS_UNIX_S ? t * 1000000 : t * 1000;
    }
    if (us < lo || us > hi) {
        d->p = at;
        return cl_dec_error(d, "timestamp out of range");
    }
    int64_t v = us;
    return append_fixed(c, &v, sizeof v);
}

static int
read_enum(cl_dec *d, acol *c)
{
    cl_str s;
    const char *b = NULL;
    size_t n = 0;
    int32_t ix;
    if (read_string(d, &s, &b, &n) < 0 || dict_index(d, c, b, n, &ix) < 0)
        return -1;
    return append_fixed(c, &ix, sizeof ix);
}

static int
read_list(cl_dec *d, acol *c)
{
    int first = 1, rc;
    if (*d->p != '[')
        return type_error(d, "an array");
    if (cl_enter(d) < 0)
        return -1;
    d->p++;
    while ((rc = cl_arr_next(d, &first)) == 1)
        if (spend(d) < 0 || read_value(d, c->child[0]) < 0)
            return -1;
    cl_leave(d);
    if (rc < 0 || put_offset(d, c, c->child[0]->length) < 0)
        return -1;
    return set_valid(c, 1);
}

/* Pass over a value kept as JSON, validated, spending the budget as the
 * record path does when it builds the dict or list. */
static int
skip_any(cl_dec *d)
{
    cl_str key;
    int first = 1, rc;
    cl_skip_ws(d);
    if (d->p >= d->end || (*d->p != '{' && *d->p != '['))
        return cl_skip_value(d);
    int object = *d->p == '{';
    if (cl_enter(d) < 0)
        return -1;
    d->p++;
    while ((rc = object ? cl_obj_next(d, &first, &key) : cl_arr_next(d, &first)) == 1)
        if (spend(d) < 0 || skip_any(d) < 0)
            return -1;
    cl_leave(d);
    return rc;
}

/* JSON text of any value, validated. */
static int
read_any(cl_dec *d, acol *c)
{
    const char *start = d->p;
    if (skip_any(d) < 0)
        return -1;
    return append_bytes(d, c, start, (size_t)(d->p - start));
}

static akey *
match_key(cl_dec *d, akeymap *km, const cl_str *key, int *expect)
{
    const char *b;
    size_t n;
    if (string_bytes(d, key, &b, &n) < 0)
        return NULL;
    if (*expect < km->n) {                    /* usually the documented order */
        akey *e = &km->ents[*expect];
        if (e->len == n && memcmp(e->s, b, n) == 0) {
            (*expect)++;
            return e;
        }
    }
    for (int i = 0; i < km->n; i++) {
        akey *e = &km->ents[i];
        if (e->len == n && memcmp(e->s, b, n) == 0) {
            *expect = i + 1;
            return e;
        }
    }
    return NULL;
}

/* Objects read so far (with the GIL): tells a group met twice in one object. */
static uint64_t objects_read;

/* A nested object met again replaces the first one whole, as json.loads
 * does: forget what its fields set in this row. */
static void
forget_group(acol *c, akeymap *km, int64_t row)
{
    for (int i = 0; i < km->n; i++) {
        akey *e = &km->ents[i];
        if (e->group != NULL) {
            forget_group(c, e->group, row);
            continue;
        }
        acol *k = c->child[e->col];
        if (k->mark == row) {
            truncate_col(k, row);
            k->mark = -1;
        }
    }
}

/* The object at the cursor into row `row` of struct c, through key map km. */
static int
read_object(cl_dec *d, acol *c, akeymap *km, int64_t row, uint64_t serial)
{
    cl_str key;
    int first = 1, rc, expect = 0;
    if (cl_enter(d) < 0)
        return -1;
    d->p++;
    while ((rc = cl_obj_next(d, &first, &key)) == 1) {
        akey *e = match_key(d, km, &key, &expect);
        if (e == NULL) {
            if (PyErr_Occurred() || cl_skip_value(d) < 0)
                return -1;
            continue;
        }
        if (e->group != NULL) {
            if (e->seen == serial)
                forget_group(c, e->group, row);
            e->seen = serial;
            if (*d->p == 'n') {
                if (cl_scan_literal(d, "null", 4) < 0)
                    return -1;
            }
            else if (*d->p != '{')
                return type_error(d, "an object");
            else if (read_object(d, c, e->group, row, serial) < 0) {
                cl_where_column(d->st, e->s, e->len, NULL);
                return -1;
            }
            continue;
        }
        acol *k = c->child[e->col];
        if (k->mark == row)
            truncate_col(k, row);
        if (read_value(d, k) < 0) {
            cl_where_column(d->st, e->s, e->len, k->name);
            return -1;
        }
        k->mark = row;
    }
    cl_leave(d);
    return rc;
}

/* Look ahead in the object at the cursor for the discriminator's value:
 * the last one, as json.loads keeps, and only if it is a string.  The
 * cursor is restored. */
static int
find_tag(cl_dec *d, acol *c, cl_str *out)
{
    const char *at = d->p, *b;
    int depth = d->depth, first = 1, rc;
    size_t n;
    cl_str key;
    out->s = NULL;
    d->p++;
    while ((rc = cl_obj_next(d, &first, &key)) == 1) {
        if (string_bytes(d, &key, &b, &n) < 0)
            return -1;
        if (n == c->taglen && memcmp(b, c->tag, n) == 0) {
            out->s = NULL;
            if (*d->p == '"') {
                if (cl_scan_string(d, out) < 0)
                    return -1;
                continue;
            }
        }
        if (cl_skip_value(d) < 0)
            return -1;
    }
    d->p = at;
    d->depth = depth;
    return rc < 0 ? -1 : 0;
}

static int
read_struct(cl_dec *d, acol *c)
{
    int64_t row = c->length;
    akeymap *km = &c->keys;
    if (*d->p != '{')
        return type_error(d, "an object");
    if (c->tag != NULL) {
        cl_str tag;
        const char *b = NULL;
        size_t n = 0;
        avariant *v = NULL;
        if (find_tag(d, c, &tag) < 0)
            return -1;
        if (tag.s != NULL) {
            if (string_bytes(d, &tag, &b, &n) < 0)
                return -1;
            for (int i = 0; i < c->nvar && v == NULL; i++)
                if (c->var[i].len == n && memcmp(c->var[i].s, b, n) == 0)
                    v = &c->var[i];
        }
        if (v != NULL)
            km = &v->keys;
        else if (c->has_fallback)
            km = &c->fallback;
        else
            return cl_dec_error(d, "unknown or missing \"%s\" discriminator", c->tag);
        if (c->tag_col >= 0 && tag.s != NULL) {
            acol *k = c->child[c->tag_col];
            if (append_bytes(d, k, b, n) < 0)
                return -1;
            k->mark = row;
        }
    }
    const char *at = d->p;
    if (read_object(d, c, km, row, ++objects_read) < 0) {
        if (km->rec != NULL)
            cl_where_record_name(d->st, km->rec);
        return -1;
    }
    for (int i = 0; i < c->nchild; i++)
        if (c->child[i]->mark != row && append_null(d, c->child[i]) < 0)
            return -1;
    for (int i = 0; i < km->nreq; i++) {       /* absent or null: the records' error */
        const acol *k = c->child[km->req[i]];
        if (k->length <= row || !(k->valid.p[row >> 3] >> (row & 7) & 1)) {
            d->p = at;
            cl_dec_error(d, k->mark == row ? "a required field is null"
                                           : "a required field is missing");
            cl_where_column(d->st, "", 0, k->name);
            if (km->rec != NULL)
                cl_where_record_name(d->st, km->rec);
            return -1;
        }
    }
    return set_valid(c, 1);
}

static int
read_value(cl_dec *d, acol *c)
{
    cl_skip_ws(d);
    if (d->p >= d->end)
        return cl_dec_error(d, "unexpected end of body, expected a value");
    if (*d->p == 'n')
        return cl_scan_literal(d, "null", 4) < 0 ? -1 : append_null(d, c);
    switch (c->kind) {
    case A_STR: {
        cl_str s;
        const char *b = NULL;
        size_t n = 0;
        return read_string(d, &s, &b, &n) < 0 ? -1 : append_bytes(d, c, b, n);
    }
    case A_INT: return read_int(d, c);
    case A_FLOAT: return read_float(d, c);
    case A_BOOL: return read_bool(d, c);
    case A_DEC: case A_DECSTR: return read_decimal(d, c);
    case A_TS: return read_timestamp(d, c);
    case A_ENUM: return read_enum(d, c);
    case A_LIST: return read_list(d, c);
    case A_STRUCT: return read_struct(d, c);
    default: return read_any(d, c);
    }
}

/* Items between two looks at pending signals: a huge page is converted
 * with the GIL held, and Ctrl-C must not wait for all of it. */
#define SIGNAL_EVERY 4096

/* The items array of a page (`count` of them): one row of `root` per item
 * of the window.  Every item spends one unit of the budget, converted or
 * not; the values inside converted items spend theirs.  Called with the
 * GIL held; a signal handler's exception (KeyboardInterrupt) fails the page,
 * which the pager then fetches again on resume. */
static int
read_items(cl_dec *d, acol *root, Py_ssize_t skip, Py_ssize_t take, Py_ssize_t count)
{
    int first = 1, rc;
    Py_ssize_t i = 0;
    cl_skip_ws(d);
    if (d->p >= d->end)
        return cl_dec_error(d, "unexpected end of body, expected a value");
    if (*d->p == 'n')
        return cl_scan_literal(d, "null", 4);
    if (*d->p != '[')
        return type_error(d, "an array");
    if (cl_enter(d) < 0)
        return -1;
    d->p++;
    while ((rc = cl_arr_next(d, &first)) == 1) {
        if (i - skip >= take && count - i <= d->budget)
            return 0;                         /* the rest is not wanted, and fits */
        if (spend(d) < 0)
            return -1;
        if (++i % SIGNAL_EVERY == 0 && PyErr_CheckSignals() < 0)
            return -1;
        if (i <= skip || i - skip > take) {
            if (cl_skip_value(d) < 0)
                return -1;
            continue;
        }
        if (*d->p == 'n') {                   /* a null item: a row of nulls */
            if (cl_scan_literal(d, "null", 4) < 0 || append_null(d, root) < 0)
                return -1;
        }
        else if (read_struct(d, root) < 0) {
            cl_where_index(d->st, i - 1);
            return -1;
        }
    }
    cl_leave(d);
    return rc;
}

/* ---- the columns of a pager's items --------------------------------------- */

/* The item description as a struct column; raw pagers have none. */
cl_acols *
cl_acols_new(PyObject *pager)
{
    PyObject *spec = cl_pager_schema(pager, 1)->spec;
    if (spec == NULL || !cl_acol_is_kind(spec, "list") || PyTuple_GET_SIZE(spec) != 2) {
        PyErr_SetString(PyExc_TypeError, "Arrow output needs a list of items");
        return NULL;
    }
    PyObject *item = PyTuple_GET_ITEM(spec, 1);
    if (cl_acol_is_kind(item, "any")) {
        PyErr_SetString(PyExc_TypeError, "a raw=True pager yields plain dicts with no declared "
                        "types, so it has no Arrow schema: list without raw=True for Arrow, "
                        "pandas or polars output");
        return NULL;
    }
    if (!cl_acol_is_kind(item, "record") && !cl_acol_is_kind(item, "union")) {
        PyErr_SetString(PyExc_TypeError, "Arrow output needs items that are records");
        return NULL;
    }
    acol *root = cl_acol_compile(item, "");
    if (root != NULL && col_reset(root) < 0) {
        cl_acol_free(root);
        return NULL;
    }
    return root;
}

void
cl_acols_free(cl_acols *c)
{
    cl_acol_free(c);
}

int64_t
cl_acols_rows(const cl_acols *c)
{
    return c->length;
}

int
cl_acols_reset(cl_acols *c)
{
    return col_reset(c);
}

int
cl_acols_add_page(cl_acols *c, cl_schema *envelope, const cl_page_body *pb)
{
    if (pb->items_at < 0)
        return 0;                             /* no items value: an empty page */
    cl_dec d;
    cl_dec_init(&d, envelope->st, pb->buf, pb->len, pb->max_depth);
    d.p += pb->items_at;
    d.depth = 1;                              /* inside the envelope */
    d.budget = pb->budget;
    int rc = read_items(&d, c, pb->skip, pb->take, pb->count);
    cl_dec_free(&d);
    return rc;
}

int
cl_acols_export(cl_acols *c, struct ArrowArray *out)
{
    if (cl_acol_export_array(c, out, 1) < 0 || col_reset(c) < 0) {
        if (out->release != NULL)
            out->release(out);
        return -1;
    }
    return 0;
}

int
cl_acols_schema(const cl_acols *c, struct ArrowSchema *out)
{
    int rc = cl_acol_export_schema(c, out, 1);
    if (rc != 0 && out->release != NULL)
        out->release(out);
    return rc;
}
