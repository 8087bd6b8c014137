/* Arrow output: the columns of a record batch, filled in C straight from
 * the JSON scan of each page (arrow_compile.c makes the column tree,
 * arrow_export.c hands it over).  A page's items are scanned once into
 * growing buffers; no Python object is built per row.  The bounds are the
 * record path's: the page's item budget (max_items_per_page) is spent on
 * the same values, and the same values fail with the same DecodeError at
 * the same offset.
 *
 * The scan runs without the GIL: it calls no Python, touches only the
 * builders of its own stream and the page body its pager keeps for it, and
 * notes a failure (out of memory, or a DecodeError's message, offset and
 * where it happened) in a C record that is raised as the same exception
 * once the GIL is back.  Only a look at pending signals, on the main
 * thread, takes the GIL for a moment now and then. */
#include "arrow_cols.h"
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__APPLE__)
#include <xlocale.h>
#endif

/* ---- a page's scan, without Python -------------------------------------- */

/* One step of where a DecodeError happened (where.h has the record path's). */
typedef struct {
    char kind;                /* 'c' column, 'r' record, 'i' index */
    const char *s;            /* column: wire key; record: class name */
    size_t n;
    const char *column;       /* column: its name, NULL for a nested group */
    Py_ssize_t i;
} aseg;

/* The state of one page's scan.  The scan functions take &a->d, its first
 * member, and SCAN(d) gives the rest back. */
typedef struct {
    cl_dec d;
    cl_err err;
    uint64_t *objects;        /* the root column's object count */
    aseg *where;              /* innermost first */
    int nwhere, where_cap;
    PyThreadState *ts;        /* the thread state released for the scan */
    int signals;              /* on the main thread: look at signals */
    struct timespec looked;   /* when signals were last looked at */
    PyObject *raised[3];      /* a signal handler's exception (type, value, tb) */
} ascan;

#define SCAN(d) ((ascan *)(void *)(d))

/* Note a step of where the DecodeError being raised happened, as the
 * record path's cl_where_* do (an out-of-memory failure gets none). */
static void
where_add(cl_dec *d, char kind, const char *s, size_t n, const char *column, Py_ssize_t i)
{
    ascan *a = SCAN(d);
    if (a->err.kind != CL_ERR_DECODE)
        return;
    if (a->nwhere == a->where_cap) {
        int cap = a->where_cap ? a->where_cap * 2 : 8;
        aseg *w = realloc(a->where, (size_t)cap * sizeof *w);
        if (w == NULL)
            return;                           /* the error stays, less located */
        a->where = w;
        a->where_cap = cap;
    }
    a->where[a->nwhere++] = (aseg){kind, s, n, column, i};
}

static void
where_column(cl_dec *d, const char *s, size_t n, const char *column)
{
    where_add(d, 'c', s, n, column, 0);
}

static void
where_record_name(cl_dec *d, const char *name)
{
    where_add(d, 'r', name, strlen(name), NULL, 0);
}

static void
where_index(cl_dec *d, Py_ssize_t i)
{
    where_add(d, 'i', NULL, 0, NULL, i);
}

/* Numbers in JSON have a '.' whatever the process's locale says. */
static locale_t c_numeric;
static pthread_once_t c_numeric_once = PTHREAD_ONCE_INIT;

static void
c_numeric_make(void)
{
    c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

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
    if (p == NULL)
        return -1;                            /* out of memory: noted by the page's scan */
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

/* Rows from n on dropped at every level below c, and the marks they left
 * forgotten: a union's object read in the fast mode, read again exactly
 * (read_struct).  c's own rows from n on go too.  An enum value met only
 * in the abandoned reading stays in the batch's dictionary, unused. */
static void
rollback_col(acol *c, int64_t n)
{
    if (c->kind == A_LIST) {
        /* elements past the last whole row: a list the reading left open */
        rollback_col(c->child[0], ((int32_t *)c->offs.p)[n < c->length ? n : c->length]);
    }
    else if (c->kind == A_STRUCT) {
        for (int i = 0; i < c->nchild; i++) {
            if (c->child[i]->mark >= n)
                c->child[i]->mark = -1;
            rollback_col(c->child[i], n);
        }
    }
    truncate_col(c, n);
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
    if (ht == NULL)
        return -1;
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
read_int(cl_dec *d, acol *c)
{
    cl_str num;
    int64_t x;
    const char *at = d->p;
    if (cl_scan_integer(d, &num) < 0)
        return -1;
    if (cl_int64_of(&num, &x) < 0) {
        d->p = at;
        return cl_dec_error(d, "integer out of range for int64 (column %s)", c->name);
    }
    return append_fixed(c, &x, sizeof x);
}

static int
read_float(cl_dec *d, acol *c)
{
    cl_str num;
    int is_int;
    char small[64], *text = small;
    if (cl_scan_number_as(d, &num, &is_int, "a number") < 0)
        return -1;
    if ((size_t)num.len >= sizeof small && (text = malloc((size_t)num.len + 1)) == NULL)
        return -1;
    memcpy(text, num.s, (size_t)num.len);
    text[num.len] = '\0';
    /* correctly rounded, as Python's float() is: the same double */
    double v = strtod_l(text, NULL, c_numeric);
    if (text != small)
        free(text);
    if (isinf(v))
        return cl_dec_error(d, "number out of range");
    return append_fixed(c, &v, sizeof v);
}

static int
read_bool(cl_dec *d, acol *c)
{
    int v = cl_scan_bool(d);
    if (v < 0 || put_bit(&c->data, c->length, v) < 0)
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
    const char *at = d->p;
    if (cl_scan_decimal_text(d, &tok) < 0)
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
    const char *at = d->p;
    long long us;
    if (*d->p == '"') {
        cl_iso f;
        if (cl_scan_iso(d, &f) < 0)
            return -1;
        us = cl_iso_epoch_us(&f);
        if (us < CL_EPOCH_US_MIN || us > CL_EPOCH_US_MAX) {
            d->p = at;
            return cl_dec_error(d, "timestamp out of range");
        }
    }
    else if (c->ts == TS_ISO)
        return type_error(d, "an ISO-8601 timestamp string");
    else if (cl_scan_unix(d, c->ts == TS_UNIX_MS, &us) < 0)
        return -1;
    int64_t v = us;
    return append_fixed(c, &v, sizeof v);
}

static int
read_enum(cl_dec *d, acol *c)
{
    cl_str s;
    const char *b = NULL;
    Py_ssize_t n = 0;
    int32_t ix;
    if (cl_scan_str_value(d, &s) < 0 || str_bytes(d, &s, &b, &n) < 0
        || dict_index(d, c, b, (size_t)n, &ix) < 0)
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
    for (Py_ssize_t i = 0; (rc = cl_arr_next(d, &first)) == 1; i++) {
        if (spend(d) < 0)
            return -1;
        if (read_value(d, c->child[0]) < 0) {
            where_index(d, i);                /* the element, as records name it */
            return -1;
        }
    }
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

/* A nested object met again replaces the first one whole, as json.loads
 * does: forget what its fields set in this row. */
static void
forget_group(acol *c, cl_keymap *km, int64_t row)
{
    for (Py_ssize_t i = 0; i < km->n; i++) {
        cl_keyent *e = &km->ents[i];
        if (e->group != NULL) {
            forget_group(c, e->group, row);
            continue;
        }
        acol *k = c->child[e->slot];
        if (k->mark == row) {
            truncate_col(k, row);
            k->mark = -1;
        }
    }
}

static int read_object(cl_dec *d, acol *c, cl_keymap *km, int64_t row, uint64_t serial);

/* The object at the cursor into row `row` of struct c, through key map km;
 * `watch` (may be NULL) as cl_key_next takes it.  Inlined into its two
 * callers below, so that the plain one's key scan has no watch at all. */
static inline __attribute__((always_inline)) int
read_object_in(cl_dec *d, acol *c, cl_keymap *km, int64_t row, uint64_t serial,
               const cl_word *watch)
{
    int first = 1, rc, tags = 0;
    Py_ssize_t at = 0;          /* the place in the key map's memory of keys */
    cl_keyent *e;
    if (cl_enter(d) < 0)
        return -1;
    d->p++;
    while ((rc = cl_key_next(d, km, &first, &at, watch, &tags, &e)) == 1) {
        if (e == NULL) {
            if (cl_skip_value(d) < 0)
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
                where_column(d, e->key.s, (size_t)e->key.len, NULL);
                return -1;
            }
            continue;
        }
        acol *k = c->child[e->slot];
        if (k->mark == row)
            truncate_col(k, row);
        if (read_value(d, k) < 0) {
            where_column(d, e->key.s, (size_t)e->key.len, k->name);
            return -1;
        }
        k->mark = row;
    }
    cl_leave(d);
    return rc;
}

static int
read_object(cl_dec *d, acol *c, cl_keymap *km, int64_t row, uint64_t serial)
{
    return read_object_in(d, c, km, row, serial, NULL);
}

/* The same, a union's discriminator (met once) watched for. */
static int
read_object_watching(cl_dec *d, acol *c, cl_keymap *km, int64_t row, uint64_t serial,
                     const cl_word *watch)
{
    return read_object_in(d, c, km, row, serial, watch);
}

/* Name the wire key (through nested groups) of column `col` of km, as the
 * record path names a required field that is absent or null; 0 if none. */
static int
where_required(cl_dec *d, acol *c, cl_keymap *km, int col)
{
    for (Py_ssize_t i = 0; i < km->n; i++) {
        cl_keyent *e = &km->ents[i];
        if (e->group != NULL ? where_required(d, c, e->group, col) : e->slot == col) {
            where_column(d, e->key.s, (size_t)e->key.len,
                         e->group != NULL ? NULL : c->child[col]->name);
            return 1;
        }
    }
    return 0;
}

/* Row `row` of struct c from the object at the cursor, through key map km;
 * `watch` (may be NULL): the union's discriminator, met once already, whose
 * second copy is a DecodeError; `tag` its value for the tag column. */
static inline __attribute__((always_inline)) int
read_struct_as(cl_dec *d, acol *c, akeymap *km, int64_t row, const cl_word *watch,
               const char *tag, Py_ssize_t taglen)
{
    if (c->tag_col >= 0 && tag != NULL) {
        acol *k = c->child[c->tag_col];
        if (append_bytes(d, k, tag, (size_t)taglen) < 0)
            return -1;
        k->mark = row;
    }
    const char *at = d->p;
    uint64_t serial = ++*SCAN(d)->objects;
    if ((watch != NULL ? read_object_watching(d, c, &km->keys, row, serial, watch)
                       : read_object(d, c, &km->keys, row, serial)) < 0) {
        if (km->rec != NULL)
            where_record_name(d, km->rec);
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
            if (!where_required(d, c, &km->keys, km->req[i]))
                where_column(d, "", 0, k->name);
            if (km->rec != NULL)
                where_record_name(d, km->rec);
            return -1;
        }
    }
    return set_valid(c, 1);
}

/* The variant a discriminator's value names (its fallback, or NULL), and
 * the value's bytes. */
static int
union_keys(cl_dec *d, acol *c, const cl_str *tag, akeymap **km, const char **b, Py_ssize_t *n)
{
    *km = NULL;
    *b = NULL;
    *n = 0;
    if (tag->s != NULL) {
        if (str_bytes(d, tag, b, n) < 0)
            return -1;
        for (int i = 0; i < c->nvar && *km == NULL; i++)
            if (c->var[i].len == (size_t)*n && memcmp(c->var[i].s, *b, (size_t)*n) == 0)
                *km = &c->var[i].keys;
    }
    if (*km == NULL && c->has_fallback)
        *km = &c->fallback;
    return 0;
}

/* The union read as the contract states it: the whole object looked ahead
 * for the last discriminator, every value validated on the way (the
 * look-ahead's errors come first, at their own offsets). */
static int
read_union_exact(cl_dec *d, acol *c, int64_t row)
{
    cl_str tag;
    akeymap *km;
    const char *b;
    Py_ssize_t n;
    if (cl_find_tag(d, c->tag, (Py_ssize_t)c->taglen, 0, 1, &tag) < 0
        || union_keys(d, c, &tag, &km, &b, &n) < 0)
        return -1;
    if (km == NULL)
        return cl_dec_error(d, "unknown or missing \"%s\" discriminator", c->tag);
    return read_struct_as(d, c, km, row, NULL, b, n);
}

/* A union's object in the fast mode, as the record path reads it
 * (decode.c): the look-ahead stops at the first discriminator (usually the
 * first key), the object is read as the variant it names, and the key scan
 * watches for the discriminator again.  That gives what the full look-ahead
 * gives unless the key repeats (its last copy counts) or the object is
 * refused; both end in a DecodeError, on which the outermost union in the
 * fast mode drops what the reading added and reads the object again in the
 * exact mode, nested unions included, so the rows and the error are the
 * exact mode's, at no more than twice its cost.  The full look-ahead alone
 * went over every item twice. */
static int
read_union(cl_dec *d, acol *c, int64_t row)
{
    if (d->exact_unions > 0)
        return read_union_exact(d, c, row);
    ascan *a = SCAN(d);
    const char *at = d->p;
    int depth = d->depth, nwhere = a->nwhere;
    Py_ssize_t budget = d->budget;
    cl_str tag;
    akeymap *km;
    const char *b;
    Py_ssize_t n;
    int found = cl_find_tag(d, c->tag, (Py_ssize_t)c->taglen, 1, 0, &tag);
    if (found < 0 || union_keys(d, c, &tag, &km, &b, &n) < 0)
        return -1;                            /* the full look-ahead fails there too */
    if (found == 0 && km == NULL)             /* it read the whole object: no discriminator */
        return cl_dec_error(d, "unknown or missing \"%s\" discriminator", c->tag);
    if (km == NULL)
        return read_union_exact(d, c, row);   /* a later copy may name a variant */
    d->unions++;
    int rc = read_struct_as(d, c, km, row, found ? &c->tagword : NULL, b, n);
    d->unions--;
    if (rc == 0 || d->unions > 0 || a->err.kind != CL_ERR_DECODE)
        return rc;
    a->err.kind = CL_ERR_NONE;
    a->nwhere = nwhere;
    rollback_col(c, row);
    d->p = at;
    d->depth = depth;
    d->budget = budget;
    d->exact_unions++;
    rc = read_union_exact(d, c, row);
    d->exact_unions--;
    return rc;
}

static int
read_struct(cl_dec *d, acol *c)
{
    if (*d->p != '{')
        return type_error(d, "an object");
    if (c->tag != NULL)
        return read_union(d, c, c->length);
    return read_struct_as(d, c, &c->keys, c->length, NULL, NULL, 0);
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
        Py_ssize_t n = 0;
        if (cl_scan_str_value(d, &s) < 0 || str_bytes(d, &s, &b, &n) < 0)
            return -1;
        return append_bytes(d, c, b, (size_t)n);
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

/* Items between two looks at the clock, and the time between two looks at
 * pending signals: Ctrl-C must not wait for all of a huge page, and a
 * look takes the GIL, which another thread may hold for a switch interval. */
#define SIGNAL_EVERY 4096
#define SIGNAL_NS 50000000LL

/* On the main thread: run the signal handlers if SIGNAL_NS went by since
 * the last time; -1 with their exception noted (KeyboardInterrupt). */
static int
look_at_signals(ascan *a)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ns = (now.tv_sec - a->looked.tv_sec) * 1000000000LL + (now.tv_nsec - a->looked.tv_nsec);
    if (ns < SIGNAL_NS)
        return 0;
    a->looked = now;
    PyEval_RestoreThread(a->ts);
    int rc = PyErr_CheckSignals();
    if (rc < 0)
        PyErr_Fetch(&a->raised[0], &a->raised[1], &a->raised[2]);
    a->ts = PyEval_SaveThread();
    return rc;
}

/* The items array of a page (`count` of them): one row of `root` per item
 * of the window.  Every item spends one unit of the budget, converted or
 * not; the values inside converted items spend theirs.  Called without
 * the GIL; a signal handler's exception (KeyboardInterrupt) fails the page,
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
        if (++i % SIGNAL_EVERY == 0 && SCAN(d)->signals && look_at_signals(SCAN(d)) < 0)
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
            where_index(d, i - 1);
            return -1;
        }
    }
    cl_leave(d);
    return rc;
}

/* ---- the columns of a pager's items --------------------------------------- */

/* The item description as a struct column; raw pagers have none. */
cl_acols *
cl_acols_new(PyObject *spec)
{
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
    pthread_once(&c_numeric_once, c_numeric_make);
    if (c_numeric == (locale_t)0) {
        PyErr_NoMemory();
        return NULL;
    }
    acol *root = cl_acol_compile(item, "");
    if (root != NULL && col_reset(root) < 0) {
        cl_acol_free(root);
        PyErr_NoMemory();
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
    if (col_reset(c) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Nesting levels (up to `levels`) the interpreter's recursion guard allows
 * on this thread from here: what the record path's cl_enter would be let
 * through, measured with the GIL for a scan without it. */
static int
guard_room(int levels)
{
    int n = 0;
    while (n < levels && Py_EnterRecursiveCall(" while decoding JSON") == 0)
        n++;
    if (n < levels)
        PyErr_Clear();                        /* the RecursionError of the last try */
    for (int i = 0; i < n; i++)
        Py_LeaveRecursiveCall();
    return n;
}

/* The failure noted by a scan, raised with the GIL as the record path
 * raises it: the same exception, message, offset and where. */
static void
raise_noted(ascan *a, cl_state *st)
{
    if (a->raised[0] != NULL) {
        PyErr_Restore(a->raised[0], a->raised[1], a->raised[2]);
        return;
    }
    if (a->err.kind != CL_ERR_DECODE) {
        PyErr_NoMemory();
        return;
    }
    PyObject *exc = PyObject_CallFunction(st->DecodeError, "sn", a->err.msg, a->err.offset);
    PyObject *where = NULL;
    if (exc == NULL)
        return;
    if (a->nwhere > 0) {
        where = PyObject_GetAttrString(exc, "where");
        if (where == NULL || !PyList_Check(where)) {
            PyErr_Clear();
            Py_XSETREF(where, PyList_New(0));
            if (where != NULL && PyObject_SetAttrString(exc, "where", where) < 0)
                Py_CLEAR(where);
        }
    }
    for (int i = 0; where != NULL && i < a->nwhere; i++) {
        const aseg *w = &a->where[i];
        PyObject *seg = w->kind == 'c' ? Py_BuildValue("(ss#z)", "column", w->s,
                                                       (Py_ssize_t)w->n, w->column)
                      : w->kind == 'r' ? Py_BuildValue("(ss)", "record", w->s)
                      : Py_BuildValue("(sn)", "index", w->i);
        if (seg != NULL)
            (void)PyList_Append(where, seg);
        Py_XDECREF(seg);
    }
    PyErr_Clear();
    Py_XDECREF(where);
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
}

int
cl_acols_add_page(cl_acols *c, cl_schema *envelope, const cl_page_body *pb, int *room,
                  int signals)
{
    if (pb->items_at < 0)
        return 0;                             /* no items value: an empty page */
    if (*room < 0)
        *room = guard_room(pb->max_depth - 1);
    ascan a;
    memset(&a, 0, sizeof a);
    cl_dec_init(&a.d, envelope->st, pb->buf, pb->len, pb->max_depth);
    a.d.p += pb->items_at;
    a.d.depth = 1;                            /* inside the envelope */
    a.d.budget = pb->budget;
    a.d.err = &a.err;
    a.d.guard_depth = 1 + *room;
    a.objects = &c->objects;
    a.signals = signals;
    if (signals)
        clock_gettime(CLOCK_MONOTONIC, &a.looked);
    a.ts = PyEval_SaveThread();
    int rc = read_items(&a.d, c, pb->skip, pb->take, pb->count);
    PyEval_RestoreThread(a.ts);
    cl_dec_free(&a.d);
    if (rc < 0)
        raise_noted(&a, envelope->st);
    free(a.where);
    return rc < 0 ? -1 : 0;
}

int
cl_acols_export(cl_acols *c, struct ArrowArray *out)
{
    if (cl_acol_export_array(c, out, 1) < 0 || col_reset(c) < 0) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
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
