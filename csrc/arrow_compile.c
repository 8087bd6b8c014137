/* Arrow output: the column tree compiled from an item description (the
 * tuple custlist._spec hands to the Schema): str -> utf8, enums ->
 * dictionary-encoded utf8, int -> int64, float -> float64, bool -> bool,
 * timestamps -> timestamp[us, UTC], decimals -> decimal128(p, s) when a scale
 * is declared (else utf8 text), records -> struct, lists -> list, a OneOf ->
 * one struct over the union of its variants' and its fallback's fields,
 * anything else -> its JSON text. */
#include "arrow_cols.h"
#include <stdlib.h>
#include <string.h>

static void
keys_clear(cl_keymap *km)
{
    for (Py_ssize_t i = 0; i < km->n; i++) {
        free((char *)km->ents[i].key.s);
        if (km->ents[i].group != NULL) {
            keys_clear(km->ents[i].group);
            free(km->ents[i].group);
        }
    }
    free(km->ents);
    cl_keymap_drop_index(km);
    memset(km, 0, sizeof *km);
}

static void
keymap_clear(akeymap *km)
{
    keys_clear(&km->keys);
    free(km->req);
    free(km->rec);
    memset(km, 0, sizeof *km);
}

void
cl_acol_free(acol *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->nchild; i++)
        cl_acol_free(c->child[i]);
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
    cl_acol_free(c->dict);
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
        cl_acol_free(k);
        PyErr_NoMemory();
        return -1;
    }
    c->child = kids;
    c->child[c->nchild++] = k;
    return 0;
}

/* ---- compiling the description ------------------------------------------ */

static cl_keyent *
keymap_find(cl_keymap *km, const char *s, size_t n)
{
    for (Py_ssize_t i = 0; i < km->n; i++)
        if ((size_t)km->ents[i].key.len == n && memcmp(km->ents[i].key.s, s, n) == 0)
            return &km->ents[i];
    return NULL;
}

static cl_keyent *
keymap_add(cl_keymap *km, const char *s, size_t n)
{
    if (km->n == km->cap) {
        Py_ssize_t cap = km->cap ? km->cap * 2 : 8;
        cl_keyent *e = realloc(km->ents, cap * sizeof *e);
        if (e == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        km->ents = e;
        km->cap = cap;
    }
    cl_keyent *e = &km->ents[km->n];
    memset(e, 0, sizeof *e);
    char *copy = dup_bytes(s, n);
    if (copy == NULL)
        return NULL;
    cl_word_set(&e->key, copy, (Py_ssize_t)n);
    e->slot = -1;
    km->n++;
    return e;
}

/* Map the wire path (a tuple of keys) to child `col`, through groups. */
static int
keymap_insert(cl_keymap *km, PyObject *path, int col)
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
        cl_keyent *e = keymap_find(km, k, (size_t)len);
        if (i + 1 == n) {
            if (e != NULL) {
                if (e->group == NULL && e->slot == col)
                    return 0;       /* the same field twice */
                PyErr_Format(PyExc_ValueError, "key %s mapped twice in a record", k);
                return -1;
            }
            if ((e = keymap_add(km, k, (size_t)len)) == NULL)
                return -1;
            e->slot = col;
            return 0;
        }
        if (e == NULL) {
            if ((e = keymap_add(km, k, (size_t)len)) == NULL)
                return -1;
            if ((e->group = calloc(1, sizeof(cl_keymap))) == NULL) {
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
    km->req = NULL;
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

/* Keep the name of the record class that `km` reads, for its errors. */
static int
record_name(akeymap *km, PyObject *cls)
{
    const char *name = PyType_Check(cls) ? ((PyTypeObject *)cls)->tp_name : NULL;
    if (name == NULL)
        return 0;
    const char *dot = strrchr(name, '.');
    free(km->rec);
    if ((km->rec = strdup(dot != NULL ? dot + 1 : name)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Add one record's fields to struct `c` and map its wire paths in `km`.
 * mode 0: a plain record (every field a new child); 1: a union variant or
 * its fallback (children shared by name, types must agree). */
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
            acol *k = cl_acol_compile(fspec, name);
            if (k == NULL)
                goto fail;
            if (at >= 0) {
                int same = same_type(c->child[at], k);
                cl_acol_free(k);
                if (!same) {
                    PyErr_Format(PyExc_TypeError, "OneOf variants disagree on the type of "
                                 "field %s: no single Arrow column fits both", name);
                    goto fail;
                }
                target[slot] = at;
            }
            else {
                if (col_add_child(c, k) < 0)
                    goto fail;
                target[slot] = c->nchild - 1;
            }
        }
        if (target[slot] >= 0 && keymap_insert(&km->keys, path, target[slot]) < 0)
            goto fail;
    }
    if (cl_keymap_index(&km->keys) < 0)
        goto fail;
    rc = required_children(km, PyTuple_GET_ITEM(spec, 1), target, nslots);
    if (rc == 0 && record_name(km, PyTuple_GET_ITEM(spec, 1)) < 0)
        rc = -1;
fail:
    free(target);
    Py_XDECREF(names);
    return rc;
}

int
cl_acol_is_kind(PyObject *spec, const char *kind)
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
    cl_word_set(&c->tagword, c->tag, len);
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
        if (!cl_acol_is_kind(v, "record")) {
            PyErr_SetString(PyExc_TypeError, "Arrow output needs OneOf variants that are records");
            return -1;
        }
        if (add_record(c, &var->keys, v, 1) < 0)
            return -1;
    }
    if (fallback != Py_None) {
        if (!cl_acol_is_kind(fallback, "record")) {
            PyErr_SetString(PyExc_TypeError, "Arrow output needs a OneOf fallback that is a record");
            return -1;
        }
        c->has_fallback = 1;
        if (add_record(c, &c->fallback, fallback, 1) < 0)
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

acol *
cl_acol_compile(PyObject *spec, const char *name)
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
        acol *e = PyTuple_GET_SIZE(spec) == 2 ? cl_acol_compile(PyTuple_GET_ITEM(spec, 1), "item") : NULL;
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
        cl_acol_free(c);
        return NULL;
    }
    return c;
}
