/* Arrow output: the Arrow C Data / C Stream interfaces, filled in C straight
 * from the JSON scan of each page.
 *
 * A column tree is compiled once per stream from the item description (the
 * tuple custlist._spec hands to the Schema): str -> utf8, enums ->
 * dictionary-encoded utf8, int -> int64, float -> float64, bool -> bool,
 * timestamps -> timestamp[us, UTC], decimals -> decimal128(p, s) when a scale
 * is declared (else utf8 text), records -> struct, lists -> list, a OneOf ->
 * one struct over the union of its variants' fields, anything else -> its
 * JSON text.  Each page becomes one record batch: its items are scanned once
 * into growing buffers, which then move into the exported ArrowArray (the
 * consumer frees them through the release callbacks), while the pager has
 * already queued the next request.  No Python object is built per row.
 *
 * Buffers and exported structs use malloc/free only: consumers may release
 * them from any thread, without the GIL. */
#include "arrow.h"
#include "json.h"
#include "where.h"
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the C Data Interface (its ABI, as the Arrow specification gives it) -- */

#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE
#define ARROW_FLAG_DICTIONARY_ORDERED 1
#define ARROW_FLAG_NULLABLE 2
#define ARROW_FLAG_MAP_KEYS_SORTED 4

struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};
#endif

#ifndef ARROW_C_STREAM_INTERFACE
#define ARROW_C_STREAM_INTERFACE
struct ArrowArrayStream {
    int (*get_schema)(struct ArrowArrayStream *, struct ArrowSchema *out);
    int (*get_next)(struct ArrowArrayStream *, struct ArrowArray *out);
    const char *(*get_last_error)(struct ArrowArrayStream *);
    void (*release)(struct ArrowArrayStream *);
    void *private_data;
};
#endif

/* ---- growable buffers ---------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} abuf;

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

/* Hand the bytes over (never NULL: consumers may not accept a missing
 * buffer) and leave the builder empty. */
static void *
buf_take(abuf *b)
{
    void *p = b->p != NULL ? b->p : calloc(1, 16);
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- the column tree ------------------------------------------------------ */

enum { A_STR, A_INT, A_FLOAT, A_BOOL, A_DEC, A_DECSTR, A_TS, A_ENUM, A_LIST, A_STRUCT, A_ANY };
enum { TS_ISO, TS_UNIX_S, TS_UNIX_MS };

typedef struct akeymap akeymap;

typedef struct {
    char *s;
    size_t len;
    int col;                  /* child index, or -1 for a group */
    akeymap *group;           /* nested wire object flattened into the same struct */
    uint64_t seen;            /* group: the object it was last met in */
} akey;

struct akeymap {
    int n, cap;
    akey *ents;
    int nreq, *req;           /* children the record requires (its __required__) */
};

typedef struct {
    char *s;
    size_t len;
    akeymap keys;
} avariant;

typedef struct acol acol;

struct acol {
    int kind;
    int ts;                   /* A_TS: how numbers are read */
    int precision, scale;     /* A_DEC */
    char *name;
    int64_t length;
    int64_t mark;             /* parent row that last set this column */
    abuf valid, offs, data;
    int nchild;
    acol **child;             /* struct fields; list element (one) */
    /* struct: where each wire key goes */
    akeymap keys;
    /* union struct */
    char *tag;
    size_t taglen;
    int nvar;
    avariant *var;
    int has_fallback;
    akeymap fallback;
    int tag_col;              /* child filled from the discriminator, or -1 */
    /* enum: members first, then unknown values met in this batch */
    int nwords;
    char **words;
    size_t *wlens;
    acol *dict;
    int32_t *ht;
    size_t htcap;
};

static void
keymap_clear(akeymap *km)
{
    for (int i = 0; i < km->n; i++) {
        free(km->ents[i].s);
        if (km->ents[i].group != NULL) {
            keymap_clear(km->ents[i].group);
            free(km->ents[i].group);
        }
    }
    free(km->ents);
    free(km->req);
    memset(km, 0, sizeof *km);
}

static void
col_free(acol *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->nchild; i++)
        col_free(c->child[i]);
    free(c->child);
    free(c->valid.p);
    free(c->offs.p);
    free(c->data.p);
    free(c->name);
    keymap_clear(&c->keys);
    for (int i = 0; i < c->nvar; i++) {
        free(c->var[i].s);
        keymap_clear(&c->var[i].keys);
    }
    free(c->var);
    keymap_clear(&c->fallback);
    free(c->tag);
    for (int i = 0; i < c->nwords; i++)
        free(c->words[i]);
    free(c->words);
    free(c->wlens);
    col_free(c->dict);
    free(c->ht);
    free(c);
}

static char *
dup_bytes(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (o == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(o, s, n);
    o[n] = '\0';
    return o;
}

static acol *
col_new(int kind, const char *name)
{
    acol *c = calloc(1, sizeof *c);
    if (c == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    c->kind = kind;
    c->mark = -1;
    c->tag_col = -1;
    if ((c->name = dup_bytes(name, strlen(name))) == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

static int
col_add_child(acol *c, acol *k)
{
    acol **kids = realloc(c->child, (c->nchild + 1) * sizeof *kids);
    if (kids == NULL) {
        col_free(k);
        PyErr_NoMemory();
        return -1;
    }
    c->child = kids;
    c->child[c->nchild++] = k;
    return 0;
}

/* ---- compiling the description ------------------------------------------ */

static acol *compile_col(PyObject *spec, const char *name);

static akey *
keymap_find(akeymap *km, const char *s, size_t n)
{
    for (int i = 0; i < km->n; i++)
        if (km->ents[i].len == n && memcmp(km->ents[i].s, s, n) == 0)
            return &km->ents[i];
    return NULL;
}

static akey *
keymap_add(akeymap *km, const char *s, size_t n)
{
    if (km->n == km->cap) {
        int cap = km->cap ? km->cap * 2 : 8;
        akey *e = realloc(km->ents, cap * sizeof *e);
        if (e == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        km->ents = e;
        km->cap = cap;
    }
    akey *e = &km->ents[km->n];
    memset(e, 0, sizeof *e);
    if ((e->s = dup_bytes(s, n)) == NULL)
        return NULL;
    e->len = n;
    e->col = -1;
    km->n++;
    return e;
}

/* Map the wire path (a tuple of keys) to child `col`, through groups. */
static int
keymap_insert(akeymap *km, PyObject *path, int col)
{
    if (!PyTuple_Check(path) || PyTuple_GET_SIZE(path) == 0) {
        PyErr_SetString(PyExc_TypeError, "record field path must be a non-empty tuple");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(path);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len;
        const char *k = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(path, i), &len);
        if (k == NULL)
            return -1;
        akey *e = keymap_find(km, k, (size_t)len);
        if (i + 1 == n) {
            if (e != NULL) {
                if (e->group == NULL && e->col == col)
                    return 0;       /* the same field twice */
                PyErr_Format(PyExc_ValueError, "key %s mapped twice in a record", k);
                return -1;
            }
            if ((e = keymap_add(km, k, (size_t)len)) == NULL)
                return -1;
            e->col = col;
            return 0;
        }
        if (e == NULL) {
            if ((e = keymap_add(km, k, (size_t)len)) == NULL)
                return -1;
            if ((e->group = calloc(1, sizeof(akeymap))) == NULL) {
                PyErr_NoMemory();
                return -1;
            }
        }
        else if (e->group == NULL) {
            PyErr_Format(PyExc_ValueError, "key %s is both a field and a group", k);
            return -1;
        }
        km = e->group;
    }
    return 0;
}

/* ("record", cls, nslots, ((path, slot, spec), ...)): the record's fields
 * in slot order, named by cls.__fields__. */
static int
record_parts(PyObject *spec, PyObject **names, PyObject **fields)
{
    PyObject *kind, *cls;
    Py_ssize_t nslots;
    if (!PyArg_ParseTuple(spec, "OOnO!;record spec must be ('record', cls, nslots, fields)",
                          &kind, &cls, &nslots, &PyTuple_Type, fields))
        return -1;
    *names = PyObject_GetAttrString(cls, "__fields__");
    if (*names == NULL)
        return -1;
    if (!PyTuple_Check(*names) || PyTuple_GET_SIZE(*names) != nslots) {
        Py_CLEAR(*names);
        PyErr_SetString(PyExc_TypeError, "record class __fields__ does not match its slots");
        return -1;
    }
    return 0;
}

static int
field_parts(PyObject *field, PyObject **path, Py_ssize_t *slot, PyObject **spec, Py_ssize_t nslots)
{
    if (!PyArg_ParseTuple(field, "OnO;record field must be (path, slot, spec)", path, slot, spec))
        return -1;
    if (*slot < 0 || *slot >= nslots) {
        PyErr_SetString(PyExc_ValueError, "record field slot out of range");
        return -1;
    }
    return 0;
}

static int
same_type(const acol *a, const acol *b)
{
    if (a->kind != b->kind || a->precision != b->precision || a->scale != b->scale
        || a->nchild != b->nchild)
        return 0;
    for (int i = 0; i < a->nchild; i++)
        if (strcmp(a->child[i]->name, b->child[i]->name) != 0 || !same_type(a->child[i], b->child[i]))
            return 0;
    return 1;
}

static int
find_child(const acol *c, const char *name)
{
    for (int i = 0; i < c->nchild; i++)
        if (strcmp(c->child[i]->name, name) == 0)
            return i;
    return -1;
}

/* The children of the record's required slots (cls.__required__), checked
 * in each row read through `km`. */
static int
required_children(akeymap *km, PyObject *cls, const int *target, Py_ssize_t nslots)
{
    PyObject *req = PyObject_GetAttrString(cls, "__required__");
    if (req == NULL || !PyTuple_Check(req)) {
        PyErr_Clear();
        Py_XDECREF(req);
        return 0;
    }
    int rc = 0;
    Py_ssize_t n = PyTuple_GET_SIZE(req);
    free(km->req);
    km->nreq = 0;
    if (n > 0 && (km->req = malloc(n * sizeof *km->req)) == NULL)
        rc = (PyErr_NoMemory(), -1);
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        Py_ssize_t slot = PyLong_AsSsize_t(PyTuple_GET_ITEM(req, i));
        if (slot >= 0 && slot < nslots && target[slot] >= 0)
            km->req[km->nreq++] = target[slot];
        else if (PyErr_Occurred())
            rc = -1;
    }
    Py_DECREF(req);
    return rc;
}

/* Add one record's fields to struct `c` and map its wire paths in `km`.
 * mode 0: a plain record (every field a new child); 1: a union variant
 * (children shared by name, types must agree); 2: a union fallback (only
 * the fields the union already has with the same type). */
static int
add_record(acol *c, akeymap *km, PyObject *spec, int mode)
{
    PyObject *names = NULL, *fields, *path, *fspec;
    Py_ssize_t slot;
    int *target = NULL, rc = -1;
    if (record_parts(spec, &names, &fields) < 0)
        return -1;
    Py_ssize_t nslots = PyTuple_GET_SIZE(names);
    if ((target = malloc((nslots + 1) * sizeof *target)) == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < nslots; i++)
        target[i] = -2;                           /* not seen yet */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
        if (field_parts(PyTuple_GET_ITEM(fields, i), &path, &slot, &fspec, nslots) < 0)
            goto fail;
        if (target[slot] == -2) {
            const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(names, slot));
            if (name == NULL)
                goto fail;
            int at = mode == 0 ? -1 : find_child(c, name);
            acol *k = compile_col(fspec, name);
            if (k == NULL)
                goto fail;
            if (at >= 0) {
                int same = same_type(c->child[at], k);
                col_free(k);
                if (!same && mode == 1) {
                    PyErr_Format(PyExc_TypeError, "OneOf variants disagree on the type of "
                                 "field %s: no single Arrow column fits both", name);
                    goto fail;
                }
                target[slot] = same ? at : -1;
            }
            else if (mode == 2) {
                col_free(k);
                target[slot] = -1;                /* the fallback's own field: dropped */
            }
            else {
                if (col_add_child(c, k) < 0)
                    goto fail;
                target[slot] = c->nchild - 1;
            }
        }
        if (target[slot] >= 0 && keymap_insert(km, path, target[slot]) < 0)
            goto fail;
    }
    rc = required_children(km, PyTuple_GET_ITEM(spec, 1), target, nslots);
fail:
    free(target);
    Py_XDECREF(names);
    return rc;
}

static int
is_kind(PyObject *spec, const char *kind)
{
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 1)
        return 0;
    const char *k = PyUnicode_Check(PyTuple_GET_ITEM(spec, 0))
        ? PyUnicode_AsUTF8(PyTuple_GET_ITEM(spec, 0)) : NULL;
    if (k == NULL) {
        PyErr_Clear();
        return 0;
    }
    return strcmp(k, kind) == 0;
}

/* ("union", tag, {wire tag: record spec}, fallback spec or None) */
static int
compile_union(acol *c, PyObject *spec)
{
    PyObject *kind, *tag, *variants, *fallback, *k, *v;
    Py_ssize_t pos = 0, len;
    if (!PyArg_ParseTuple(spec, "OUO!O;union spec must be ('union', tag, variants, fallback)",
                          &kind, &tag, &PyDict_Type, &variants, &fallback))
        return -1;
    const char *t = PyUnicode_AsUTF8AndSize(tag, &len);
    if (t == NULL || (c->tag = dup_bytes(t, (size_t)len)) == NULL)
        return -1;
    c->taglen = (size_t)len;
    if ((c->var = calloc(PyDict_GET_SIZE(variants) + 1, sizeof *c->var)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    while (PyDict_Next(variants, &pos, &k, &v)) {
        avariant *var = &c->var[c->nvar];
        const char *w = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &len) : NULL;
        if (w == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "OneOf tags must be str");
            return -1;
        }
        if ((var->s = dup_bytes(w, (size_t)len)) == NULL)
            return -1;
        var->len = (size_t)len;
        c->nvar++;
        if (!is_kind(v, "record")) {
            PyErr_SetString(PyExc_TypeError, "Arrow output needs OneOf variants that are records");
            return -1;
        }
        if (add_record(c, &var->keys, v, 1) < 0)
            return -1;
    }
    if (fallback != Py_None) {
        if (!is_kind(fallback, "record")) {
            PyErr_SetString(PyExc_TypeError, "Arrow output needs a OneOf fallback that is a record");
            return -1;
        }
        c->has_fallback = 1;
        if (add_record(c, &c->fallback, fallback, 2) < 0)
            return -1;
    }
    if (find_child(c, c->tag) < 0) {             /* no field holds the tag: add one */
        acol *tc = col_new(A_STR, c->tag);
        if (tc == NULL || col_add_child(c, tc) < 0)
            return -1;
        c->tag_col = c->nchild - 1;
    }
    return 0;
}

static int
compile_enum(acol *c, PyObject *spec)
{
    PyObject *members = PyTuple_GET_SIZE(spec) == 2 ? PyTuple_GET_ITEM(spec, 1) : NULL;
    PyObject *k, *v;
    Py_ssize_t pos = 0, len;
    if (members == NULL || !PyDict_Check(members)) {
        PyErr_SetString(PyExc_TypeError, "enum spec must be ('enum', {wire: member})");
        return -1;
    }
    Py_ssize_t n = PyDict_GET_SIZE(members);
    c->words = calloc(n + 1, sizeof *c->words);
    c->wlens = calloc(n + 1, sizeof *c->wlens);
    if (c->words == NULL || c->wlens == NULL || (c->dict = col_new(A_STR, "")) == NULL) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return -1;
    }
    while (PyDict_Next(members, &pos, &k, &v)) {
        const char *w = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &len) : NULL;
        if (w == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "enum wire values must be str");
            return -1;
        }
        if ((c->words[c->nwords] = dup_bytes(w, (size_t)len)) == NULL)
            return -1;
        c->wlens[c->nwords++] = (size_t)len;
    }
    return 0;
}

static int
compile_decimal(acol *c, PyObject *spec)
{
    if (PyTuple_GET_SIZE(spec) == 1) {
        c->kind = A_DECSTR;                       /* no declared scale: exact text */
        return 0;
    }
    PyObject *kind;
    if (!PyArg_ParseTuple(spec, "Oii;decimal spec must be ('decimal', precision, scale)",
                          &kind, &c->precision, &c->scale))
        return -1;
    if (c->precision < 1 || c->precision > 38 || c->scale < 0 || c->scale > c->precision) {
        PyErr_Format(PyExc_ValueError, "decimal128 needs 1 <= precision <= 38 and "
                     "0 <= scale <= precision, not (%d, %d)", c->precision, c->scale);
        return -1;
    }
    return 0;
}

static acol *
compile_col(PyObject *spec, const char *name)
{
    static const struct { const char *name; int kind, ts; } kinds[] = {
        {"str", A_STR, 0}, {"int", A_INT, 0}, {"float", A_FLOAT, 0}, {"bool", A_BOOL, 0},
        {"decimal", A_DEC, 0}, {"datetime", A_TS, TS_ISO}, {"unix_s", A_TS, TS_UNIX_S},
        {"unix_ms", A_TS, TS_UNIX_MS}, {"enum", A_ENUM, 0}, {"list", A_LIST, 0},
        {"record", A_STRUCT, 0}, {"union", A_STRUCT, 1}, {"any", A_ANY, 0},
    };
    const char *k = NULL;
    if (PyTuple_Check(spec) && PyTuple_GET_SIZE(spec) >= 1 && PyUnicode_Check(PyTuple_GET_ITEM(spec, 0)))
        k = PyUnicode_AsUTF8(PyTuple_GET_ITEM(spec, 0));
    if (k == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "invalid schema node %R", spec);
        return NULL;
    }
    size_t i;
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].name, k) == 0)
            break;
    if (i == sizeof kinds / sizeof kinds[0]) {
        PyErr_Format(PyExc_TypeError, "field %s: no Arrow type for a %s value", name, k);
        return NULL;
    }
    acol *c = col_new(kinds[i].kind, name);
    if (c == NULL)
        return NULL;
    c->ts = kinds[i].ts;
    int rc = 0;
    switch (c->kind) {
    case A_DEC:
        rc = compile_decimal(c, spec);
        break;
    case A_ENUM:
        rc = compile_enum(c, spec);
        break;
    case A_LIST: {
        acol *e = PyTuple_GET_SIZE(spec) == 2 ? compile_col(PyTuple_GET_ITEM(spec, 1), "item") : NULL;
        if (e == NULL && !PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "list spec must be ('list', elem)");
        rc = e == NULL ? -1 : col_add_child(c, e);
        break;
    }
    case A_STRUCT:
        rc = kinds[i].ts ? compile_union(c, spec) : add_record(c, &c->keys, spec, 0);
        break;
    default:
        break;
    }
    if (rc < 0) {
        col_free(c);
        return NULL;
    }
    return c;
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
        if (read_value(d, c->child[0]) < 0)
            return -1;
    cl_leave(d);
    if (rc < 0 || put_offset(d, c, c->child[0]->length) < 0)
        return -1;
    return set_valid(c, 1);
}

/* JSON text of any value, validated. */
static int
read_any(cl_dec *d, acol *c)
{
    const char *start = d->p;
    if (cl_skip_value(d) < 0)
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
    if (read_object(d, c, km, row, ++objects_read) < 0)
        return -1;
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

/* The items array of a page: one row of `root` per item.  Called with the
 * GIL held; a signal handler's exception (KeyboardInterrupt) fails the page,
 * which the pager then fetches again on resume. */
static int
read_items(cl_dec *d, acol *root, Py_ssize_t skip, Py_ssize_t take)
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
        if (i - skip >= take)
            return 0;                         /* the rest is not wanted */
        if (++i % SIGNAL_EVERY == 0 && PyErr_CheckSignals() < 0)
            return -1;
        if (i <= skip) {
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

/* ---- exporting arrays ----------------------------------------------------- */

typedef struct {
    void *bufs[3];
    const void *ptrs[3];
    int nkids;
    struct ArrowArray *kid_store;
    struct ArrowArray **kids;
    struct ArrowArray *dict;
} xarray;

static void
xarray_release(struct ArrowArray *a)
{
    xarray *x = a->private_data;
    for (int i = 0; i < x->nkids; i++)
        if (x->kid_store[i].release != NULL)
            x->kid_store[i].release(&x->kid_store[i]);
    if (x->dict != NULL && x->dict->release != NULL)
        x->dict->release(x->dict);
    free(x->dict);
    for (int i = 0; i < 3; i++)
        free(x->bufs[i]);
    free(x->kid_store);
    free(x->kids);
    free(x);
    a->release = NULL;
}

static int64_t
count_nulls(const acol *c)
{
    int64_t ones = 0, full = c->length >> 3;
    for (int64_t i = 0; i < full; i++)
        ones += __builtin_popcount(c->valid.p[i]);
    if (c->length & 7)
        ones += __builtin_popcount(c->valid.p[full] & ((1u << (c->length & 7)) - 1));
    return c->length - ones;
}

/* Move the builder's buffers into `out` (a releasable array even when this
 * fails part-way: the caller releases it). */
static int
export_array(acol *c, struct ArrowArray *out, int top)
{
    memset(out, 0, sizeof *out);
    xarray *x = calloc(1, sizeof *x);
    if (x == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    out->length = c->length;
    out->null_count = top ? 0 : count_nulls(c);
    out->private_data = x;
    out->release = xarray_release;
    out->buffers = x->ptrs;
    int nb = 0;
    if (top) {
        x->bufs[nb++] = NULL;
        free(buf_take(&c->valid));
    }
    else
        x->bufs[nb++] = buf_take(&c->valid);
    switch (c->kind) {
    case A_STR: case A_DECSTR: case A_ANY:
        x->bufs[nb++] = buf_take(&c->offs);
        x->bufs[nb++] = buf_take(&c->data);
        break;
    case A_LIST:
        x->bufs[nb++] = buf_take(&c->offs);
        break;
    case A_STRUCT:
        break;
    default:
        x->bufs[nb++] = buf_take(&c->data);
        break;
    }
    out->n_buffers = nb;
    for (int i = 0; i < nb; i++) {
        if (x->bufs[i] == NULL && !(top && i == 0)) {
            PyErr_NoMemory();
            return -1;
        }
        x->ptrs[i] = x->bufs[i];
    }
    if (c->nchild > 0) {
        x->kid_store = calloc(c->nchild, sizeof *x->kid_store);
        x->kids = calloc(c->nchild, sizeof *x->kids);
        if (x->kid_store == NULL || x->kids == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        x->nkids = c->nchild;
        out->n_children = c->nchild;
        out->children = x->kids;
        for (int i = 0; i < c->nchild; i++) {
            x->kids[i] = &x->kid_store[i];
            if (export_array(c->child[i], &x->kid_store[i], 0) < 0)
                return -1;
        }
    }
    if (c->kind == A_ENUM) {
        if ((x->dict = calloc(1, sizeof *x->dict)) == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        out->dictionary = x->dict;
        if (export_array(c->dict, x->dict, 0) < 0)
            return -1;
    }
    return 0;
}

/* ---- exporting the schema ------------------------------------------------- */

typedef struct {
    char *format, *name;
    int nkids;
    struct ArrowSchema *kid_store;
    struct ArrowSchema **kids;
    struct ArrowSchema *dict;
} xschema;

static void
xschema_release(struct ArrowSchema *s)
{
    xschema *x = s->private_data;
    for (int i = 0; i < x->nkids; i++)
        if (x->kid_store[i].release != NULL)
            x->kid_store[i].release(&x->kid_store[i]);
    if (x->dict != NULL && x->dict->release != NULL)
        x->dict->release(x->dict);
    free(x->dict);
    free(x->kid_store);
    free(x->kids);
    free(x->format);
    free(x->name);
    free(x);
    s->release = NULL;
}

static char *
cstr_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *o = malloc(n);
    if (o != NULL)
        memcpy(o, s, n);
    return o;
}

/* No Python here: the consumer may ask from any thread.  0 or ENOMEM. */
static int
export_schema(const acol *c, struct ArrowSchema *out, int top)
{
    char fmt[32];
    memset(out, 0, sizeof *out);
    xschema *x = calloc(1, sizeof *x);
    if (x == NULL)
        return ENOMEM;
    out->private_data = x;
    out->release = xschema_release;
    switch (c->kind) {
    case A_STR: case A_DECSTR: case A_ANY: strcpy(fmt, "u"); break;
    case A_INT: strcpy(fmt, "l"); break;
    case A_FLOAT: strcpy(fmt, "g"); break;
    case A_BOOL: strcpy(fmt, "b"); break;
    case A_DEC: snprintf(fmt, sizeof fmt, "d:%d,%d", c->precision, c->scale); break;
    case A_TS: strcpy(fmt, "tsu:UTC"); break;
    case A_ENUM: strcpy(fmt, "i"); break;
    case A_LIST: strcpy(fmt, "+l"); break;
    default: strcpy(fmt, "+s"); break;
    }
    x->format = cstr_dup(fmt);
    x->name = cstr_dup(top ? "" : c->name);
    if (x->format == NULL || x->name == NULL)
        return ENOMEM;
    out->format = x->format;
    out->name = x->name;
    out->flags = top ? 0 : ARROW_FLAG_NULLABLE;
    if (c->nchild > 0) {
        x->kid_store = calloc(c->nchild, sizeof *x->kid_store);
        x->kids = calloc(c->nchild, sizeof *x->kids);
        if (x->kid_store == NULL || x->kids == NULL)
            return ENOMEM;
        x->nkids = c->nchild;
        out->n_children = c->nchild;
        out->children = x->kids;
        for (int i = 0; i < c->nchild; i++) {
            x->kids[i] = &x->kid_store[i];
            if (export_schema(c->child[i], &x->kid_store[i], 0) != 0)
                return ENOMEM;
        }
    }
    if (c->kind == A_ENUM) {
        if ((x->dict = calloc(1, sizeof *x->dict)) == NULL)
            return ENOMEM;
        out->dictionary = x->dict;
        if (export_schema(c->dict, x->dict, 0) != 0)
            return ENOMEM;
        x->dict->flags = 0;
    }
    return 0;
}

/* ---- the stream ----------------------------------------------------------- */

typedef struct {
    PyObject *pager;
    cl_schema *envelope;      /* the pager's envelope with the items deferred */
    PyObject *errors;         /* list the errors are appended to, or None */
    acol *root;
    Py_ssize_t min_rows;      /* pages are coalesced into batches of at least this many */
    char *message;
    int finished;
    int failed;               /* the errno returned, once failed */
} astream;

/* Turn the Python exception set into the stream's error. */
static int
stream_fail(astream *s, int code)
{
    PyObject *exc;
#if PY_VERSION_HEX >= 0x030C0000
    exc = PyErr_GetRaisedException();
#else
    PyObject *type, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (exc != NULL && tb != NULL)
        PyException_SetTraceback(exc, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
#endif
    PyObject *text = exc != NULL ? PyUnicode_FromFormat("%s: %S", Py_TYPE(exc)->tp_name, exc) : NULL;
    const char *t = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
    free(s->message);
    s->message = cstr_dup(t != NULL ? t : "custlist: the page could not be converted");
    PyErr_Clear();
    Py_XDECREF(text);
    if (exc != NULL && s->errors != Py_None && PyList_Append(s->errors, exc) < 0)
        PyErr_Clear();
    Py_XDECREF(exc);
    s->failed = code;
    return code;
}

static int
stream_get_schema(struct ArrowArrayStream *stream, struct ArrowSchema *out)
{
    astream *s = stream->private_data;
    int rc = export_schema(s->root, out, 1);
    if (rc != 0 && out->release != NULL)
        out->release(out);
    return rc;
}

/* One page, scanned into the builders. */
static int
build_page(astream *s, const cl_page_body *pb)
{
    cl_dec d;
    cl_dec_init(&d, s->envelope->st, pb->buf, pb->len, pb->max_depth);
    d.p += pb->items_at;
    d.depth = 1;                              /* inside the envelope */
    int rc = read_items(&d, s->root, pb->skip, pb->take);
    cl_dec_free(&d);
    return rc;
}

static int
stream_get_next(struct ArrowArrayStream *stream, struct ArrowArray *out)
{
    astream *s = stream->private_data;
    out->release = NULL;
    if (s->failed)
        return s->failed;
    if (s->finished)
        return 0;
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = 0;
    cl_pager_mark mark;
    cl_pager_mark_set(s->pager, &mark);       /* where the batch starts */
    while (s->root->length < s->min_rows) {
        cl_page_body pb;
        int got = cl_pager_next_body(s->pager, s->envelope, &pb);
        if (got == 0) {
            s->finished = 1;
            break;
        }
        int bad = got < 0 || (pb.items_at >= 0 && build_page(s, &pb) < 0);
        if (bad && got > 0)
            cl_pager_page_failed(s->pager);         /* resuming fetches it again */
        if (bad)
            rc = stream_fail(s, got < 0 ? EIO : EINVAL);
        if (got > 0)
            cl_pager_body_done(s->pager);
        if (bad) {
            if (col_reset(s->root) < 0)
                PyErr_Clear();
            cl_pager_mark_restore(s->pager, &mark);   /* its pages were not handed out */
            break;
        }
    }
    cl_pager_mark_clear(&mark);
    if (rc == 0 && s->root->length > 0
        && (export_array(s->root, out, 1) < 0 || col_reset(s->root) < 0)) {
        if (out->release != NULL)
            out->release(out);
        rc = stream_fail(s, ENOMEM);
    }
    PyGILState_Release(g);
    return rc;
}

static const char *
stream_get_last_error(struct ArrowArrayStream *stream)
{
    astream *s = stream->private_data;
    return s->message;
}

static void
stream_release(struct ArrowArrayStream *stream)
{
    astream *s = stream->private_data;
    if (s != NULL) {
        if (Py_IsInitialized()) {
            PyGILState_STATE g = PyGILState_Ensure();
            Py_XDECREF(s->pager);
            Py_XDECREF(s->envelope);
            Py_XDECREF(s->errors);
            PyGILState_Release(g);
        }
        col_free(s->root);
        free(s->message);
        free(s);
    }
    stream->private_data = NULL;
    stream->release = NULL;
}

static void
capsule_free(PyObject *capsule)
{
    struct ArrowArrayStream *stream = PyCapsule_GetPointer(capsule, "arrow_array_stream");
    if (stream == NULL) {
        PyErr_Clear();
        return;
    }
    if (stream->release != NULL)              /* not moved to a consumer */
        stream->release(stream);
    free(stream);
}

/* The envelope description with the items only located ("defer"), so a
 * page is never built into records. */
static cl_schema *
deferred_envelope(PyObject *pager)
{
    cl_schema *page = cl_pager_schema(pager, 0);
    PyObject *kind, *cls, *fields, *out = NULL, *spec = NULL, *defer = NULL;
    Py_ssize_t nslots;
    if (page->spec == NULL || !PyTuple_Check(page->spec)) {
        PyErr_SetString(PyExc_ValueError, "this pager's schema was cleared");
        return NULL;
    }
    if (!PyArg_ParseTuple(page->spec, "OOnO!;page spec", &kind, &cls, &nslots, &PyTuple_Type, &fields))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    if ((out = PyTuple_New(n)) == NULL || (defer = Py_BuildValue("(s)", "defer")) == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyTuple_GET_ITEM(fields, i), *path, *fspec;
        Py_ssize_t slot;
        if (field_parts(f, &path, &slot, &fspec, nslots) < 0)
            goto done;
        PyObject *nf = slot == 0 ? Py_BuildValue("(OnO)", path, slot, defer) : Py_NewRef(f);
        if (nf == NULL)
            goto done;
        PyTuple_SET_ITEM(out, i, nf);
    }
    if ((spec = Py_BuildValue("(OOnO)", kind, cls, nslots, out)) != NULL) {
        PyObject *sc = PyObject_CallOneArg((PyObject *)Py_TYPE(page), spec);
        Py_SETREF(spec, sc);
    }
done:
    Py_XDECREF(out);
    Py_XDECREF(defer);
    return (cl_schema *)spec;
}

/* The item description as a struct column; raw pagers have none. */
static acol *
item_columns(PyObject *pager)
{
    PyObject *spec = cl_pager_schema(pager, 1)->spec;
    if (spec == NULL || !is_kind(spec, "list") || PyTuple_GET_SIZE(spec) != 2) {
        PyErr_SetString(PyExc_TypeError, "Arrow output needs a list of items");
        return NULL;
    }
    PyObject *item = PyTuple_GET_ITEM(spec, 1);
    if (is_kind(item, "any")) {
        PyErr_SetString(PyExc_TypeError, "a raw=True pager yields plain dicts with no declared "
                        "types, so it has no Arrow schema: list without raw=True for Arrow, "
                        "pandas or polars output");
        return NULL;
    }
    if (!is_kind(item, "record") && !is_kind(item, "union")) {
        PyErr_SetString(PyExc_TypeError, "Arrow output needs items that are records");
        return NULL;
    }
    acol *root = compile_col(item, "");
    if (root != NULL && col_reset(root) < 0) {
        col_free(root);
        return NULL;
    }
    return root;
}

/* _arrow_stream(errors, min_rows=1): an "arrow_array_stream" capsule over
 * the records still to come, one batch per page, or pages coalesced into
 * batches of at least min_rows.  Errors met while reading are appended to
 * `errors` (a list, or None) so that custlist's own exception can be raised
 * again. */
static PyObject *
make_stream(PyObject *pager, PyObject *errors, Py_ssize_t min_rows)
{
    astream *s = calloc(1, sizeof *s);
    struct ArrowArrayStream *stream = calloc(1, sizeof *stream);
    PyObject *capsule = NULL;
    if (s == NULL || stream == NULL) {
        free(s);
        free(stream);
        return PyErr_NoMemory();
    }
    stream->private_data = s;
    stream->release = stream_release;
    stream->get_schema = stream_get_schema;
    stream->get_next = stream_get_next;
    stream->get_last_error = stream_get_last_error;
    s->pager = Py_NewRef(pager);
    s->errors = Py_NewRef(errors);
    s->min_rows = min_rows;
    if ((s->root = item_columns(pager)) == NULL || (s->envelope = deferred_envelope(pager)) == NULL)
        goto fail;
    capsule = PyCapsule_New(stream, "arrow_array_stream", capsule_free);
    if (capsule != NULL)
        return capsule;
fail:
    stream->release(stream);
    free(stream);
    return NULL;
}

/* __arrow_c_stream__(requested_schema=None).  The schema is the one the
 * record description gives; a requested schema is left to the consumer to
 * cast to, as the interface allows. */
PyObject *
cl_arrow_c_stream(PyObject *pager, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"requested_schema", NULL};
    PyObject *requested = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:__arrow_c_stream__", kwlist, &requested))
        return NULL;
    return make_stream(pager, Py_None, 1);
}

PyObject *
cl_arrow_stream(PyObject *pager, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"errors", "min_rows", NULL};
    PyObject *errors;
    Py_ssize_t min_rows = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|n:_arrow_stream", kwlist, &errors, &min_rows))
        return NULL;
    if ((errors != Py_None && !PyList_Check(errors)) || min_rows < 1) {
        PyErr_SetString(PyExc_ValueError, "_arrow_stream() takes a list (or None) and min_rows >= 1");
        return NULL;
    }
    return make_stream(pager, errors, min_rows);
}

/* to_arrow() and friends: thin Python faces in custlist._frames. */
static PyObject *
frames_call(PyObject *pager, const char *name)
{
    PyObject *mod = PyImport_ImportModule("custlist._frames");
    if (mod == NULL)
        return NULL;
    PyObject *res = PyObject_CallMethod(mod, name, "O", pager);
    Py_DECREF(mod);
    return res;
}

PyObject *
cl_arrow_to_arrow(PyObject *pager, PyObject *Py_UNUSED(ignored))
{
    return frames_call(pager, "to_arrow");
}

PyObject *
cl_arrow_to_pandas(PyObject *pager, PyObject *Py_UNUSED(ignored))
{
    return frames_call(pager, "to_pandas");
}

PyObject *
cl_arrow_to_polars(PyObject *pager, PyObject *Py_UNUSED(ignored))
{
    return frames_call(pager, "to_polars");
}
