/* The floor of a decode: the same Python objects built from values already
 * parsed, with no JSON at all.
 *
 * A Tape is a list of operations made once, outside any measured loop, from
 * one decoded page (bench/floor.py walks the decoder's result and hands the
 * operations here).  Tape.build() then makes the object graph again from
 * the tape alone, in post-order on a value stack, with the cheapest calls
 * the C API has for each object:
 *
 *   ASCII str      PyUnicode_New(len, 127) + memcpy
 *   other str      PyUnicode_DecodeUTF8
 *   int, float     PyLong_FromLongLong, PyFloat_FromDouble
 *   datetime       the datetime C API, with the tzinfo object the decoder used
 *   Decimal        the Decimal type's tp_new on a str, its argument tuple
 *                  made once and reused (as custlist's decoder does)
 *   tuple, list    PyTuple_New / PyList_New + SET_ITEM; a tuple the decoder
 *                  left untracked is untracked again
 *   custlist record  PyObject_GC_NewVar of the record class, slots filled in
 *                  place, tracked only if the decoded one was
 *   msgspec Struct PyObject_GC_New (or PyObject_New) of the class, fields
 *                  stored at their member descriptors' offsets, tracked only
 *                  if the decoded one was
 *   an object that exists already (None, True, an enum member): a new
 *                  reference; an object the decoded graph holds twice is
 *                  built once and referenced again (the same graph).
 *
 * Built by bench/floor.py with the interpreter's headers into a cache
 * directory; never part of the package. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

enum {
    OP_CONST, OP_REF, OP_ASCII, OP_UTF8, OP_INT, OP_FLOAT, OP_DATETIME, OP_DECIMAL,
    OP_TUPLE, OP_LIST, OP_RECORD, OP_STRUCT,
};

typedef struct {
    uint8_t op;
    uint8_t track;            /* containers: whether the decoded one was GC-tracked */
    int32_t save;             /* slot in `saved` for an object referenced again, or -1 */
    Py_ssize_t n;             /* str/Decimal text length; item, slot or field count */
    union {
        const char *s;        /* str/Decimal text (in the tape's buffer) */
        long long i;
        double f;
        Py_ssize_t ref;       /* OP_REF: slot in `saved` */
        Py_ssize_t *offsets;  /* OP_STRUCT: per field */
        struct { uint16_t y; uint8_t m, d, hh, mi, ss; uint32_t us; } dt;
    } u;
    PyObject *obj;            /* OP_CONST object, datetime tzinfo, record or Struct class */
} fl_op;

/* custlist's record layout (csrc/common.h), checked against the class at
 * tape-build time. */
typedef struct {
    PyObject_VAR_HEAD
    Py_hash_t hash;
    PyObject *ob_item[1];
} fl_record;

typedef struct {
    PyObject_HEAD
    fl_op *ops;
    Py_ssize_t nops, depth, nsaved;
    PyObject **stack;         /* depth entries */
    PyObject **saved;         /* borrowed: objects of the graph being built */
    char *text;               /* every str and Decimal text, back to back */
    PyObject *refs;           /* list: keeps every object an op points at alive */
    PyObject *dec_args;       /* the reused 1-tuple for Decimal */
    PyTypeObject *decimal;
} fl_tape;

static PyDateTime_CAPI *dt_api;

static void
tape_dealloc(fl_tape *t)
{
    if (t->ops != NULL)
        for (Py_ssize_t i = 0; i < t->nops; i++)
            if (t->ops[i].op == OP_STRUCT)
                PyMem_Free(t->ops[i].u.offsets);
    PyMem_Free(t->ops);
    PyMem_Free(t->stack);
    PyMem_Free(t->saved);
    PyMem_Free(t->text);
    Py_XDECREF(t->refs);
    Py_XDECREF(t->dec_args);
    Py_XDECREF(t->decimal);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static int
keep(fl_tape *t, PyObject *o)
{
    return PyList_Append(t->refs, o);
}

/* One operation from its Python form:
 *   (op, save, ...) with, after save:
 *   CONST obj | REF slot | ASCII bytes | UTF8 bytes | INT int | FLOAT float |
 *   DATETIME y m d hh mi ss us tzinfo | DECIMAL bytes | TUPLE n tracked |
 *   LIST n | RECORD cls n tracked | STRUCT cls (offsets...) tracked */
static int
parse_op(fl_tape *t, PyObject *item, fl_op *o, Py_ssize_t *textpos)
{
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 3) {
        PyErr_SetString(PyExc_TypeError, "an op is a tuple (op, save, ...)");
        return -1;
    }
    Py_ssize_t na = PyTuple_GET_SIZE(item);
    long op = PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
    long save = PyLong_AsLong(PyTuple_GET_ITEM(item, 1));
    if (PyErr_Occurred())
        return -1;
    if (save >= t->nsaved) {
        PyErr_SetString(PyExc_ValueError, "save slot out of range");
        return -1;
    }
    PyObject *a = PyTuple_GET_ITEM(item, 2);
    o->op = (uint8_t)op;
    o->save = (int32_t)save;
    o->track = 0;
    o->n = 0;
    o->obj = NULL;
    switch (op) {
    case OP_CONST:
        o->obj = a;
        return keep(t, a);
    case OP_REF:
        o->u.ref = PyLong_AsSsize_t(a);
        if (o->u.ref < 0 || o->u.ref >= t->nsaved) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "ref slot out of range");
            return -1;
        }
        return 0;
    case OP_ASCII:
    case OP_UTF8:
    case OP_DECIMAL: {
        if (!PyBytes_Check(a)) {
            PyErr_SetString(PyExc_TypeError, "text must be bytes");
            return -1;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(a);
        memcpy(t->text + *textpos, PyBytes_AS_STRING(a), (size_t)len);
        o->u.s = t->text + *textpos;
        o->n = len;
        *textpos += len;
        return 0;
    }
    case OP_INT:
        o->u.i = PyLong_AsLongLong(a);
        return PyErr_Occurred() ? -1 : 0;
    case OP_FLOAT:
        o->u.f = PyFloat_AsDouble(a);
        return PyErr_Occurred() ? -1 : 0;
    case OP_DATETIME: {
        if (na != 10) {
            PyErr_SetString(PyExc_TypeError, "datetime op: y m d hh mi ss us tzinfo");
            return -1;
        }
        long f[7];
        for (int k = 0; k < 7; k++)
            f[k] = PyLong_AsLong(PyTuple_GET_ITEM(item, 2 + k));
        if (PyErr_Occurred())
            return -1;
        o->u.dt.y = (uint16_t)f[0];
        o->u.dt.m = (uint8_t)f[1];
        o->u.dt.d = (uint8_t)f[2];
        o->u.dt.hh = (uint8_t)f[3];
        o->u.dt.mi = (uint8_t)f[4];
        o->u.dt.ss = (uint8_t)f[5];
        o->u.dt.us = (uint32_t)f[6];
        o->obj = PyTuple_GET_ITEM(item, 9);
        return keep(t, o->obj);
    }
    case OP_TUPLE:
    case OP_LIST:
        o->n = PyLong_AsSsize_t(a);
        if (op == OP_TUPLE)
            o->track = na > 3 && PyObject_IsTrue(PyTuple_GET_ITEM(item, 3)) == 1;
        return PyErr_Occurred() ? -1 : 0;
    case OP_RECORD: {
        if (na != 5 || !PyType_Check(a)) {
            PyErr_SetString(PyExc_TypeError, "record op: cls n tracked");
            return -1;
        }
        PyTypeObject *tp = (PyTypeObject *)a;
        if (tp->tp_basicsize != (Py_ssize_t)offsetof(fl_record, ob_item)
            || tp->tp_itemsize != (Py_ssize_t)sizeof(PyObject *)
            || !(tp->tp_flags & Py_TPFLAGS_HAVE_GC)) {
            PyErr_Format(PyExc_TypeError, "%s is not laid out as a custlist record", tp->tp_name);
            return -1;
        }
        o->obj = a;
        o->n = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 3));
        o->track = PyObject_IsTrue(PyTuple_GET_ITEM(item, 4)) == 1;
        return PyErr_Occurred() ? -1 : keep(t, a);
    }
    case OP_STRUCT: {
        PyObject *offs = PyTuple_GET_ITEM(item, 3);
        if (na != 5 || !PyType_Check(a) || !PyTuple_Check(offs)) {
            PyErr_SetString(PyExc_TypeError, "struct op: cls (offsets...) tracked");
            return -1;
        }
        PyTypeObject *tp = (PyTypeObject *)a;
        o->n = PyTuple_GET_SIZE(offs);
        o->u.offsets = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(o->n ? o->n : 1));
        if (o->u.offsets == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        o->op = OP_STRUCT;    /* owns offsets from here on */
        for (Py_ssize_t k = 0; k < o->n; k++) {
            Py_ssize_t off = PyLong_AsSsize_t(PyTuple_GET_ITEM(offs, k));
            if (off < (Py_ssize_t)sizeof(PyObject)
                || off + (Py_ssize_t)sizeof(PyObject *) > tp->tp_basicsize) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "field offset outside the object");
                return -1;
            }
            o->u.offsets[k] = off;
        }
        o->obj = a;
        o->track = PyObject_IsTrue(PyTuple_GET_ITEM(item, 4)) == 1;
        return keep(t, a);
    }
    default:
        PyErr_Format(PyExc_ValueError, "unknown op %ld", op);
        return -1;
    }
}

/* Tape(ops, nsaved, decimal_type) */
static PyObject *
tape_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *ops = NULL, *decimal = NULL;
    Py_ssize_t nsaved = 0;
    fl_tape *t = NULL;
    if (!PyArg_ParseTuple(args, "O!nO", &PyList_Type, &ops, &nsaved, &decimal))
        return NULL;
    t = (fl_tape *)type->tp_alloc(type, 0);
    if (t == NULL)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(ops), textlen = 0, depth = 0, maxdepth = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PyList_GET_ITEM(ops, i);
        if (PyTuple_Check(it) && PyTuple_GET_SIZE(it) >= 3 && PyBytes_Check(PyTuple_GET_ITEM(it, 2)))
            textlen += PyBytes_GET_SIZE(PyTuple_GET_ITEM(it, 2));
    }
    t->nops = n;
    t->nsaved = nsaved;
    t->decimal = (PyTypeObject *)Py_NewRef(decimal);
    t->refs = PyList_New(0);
    t->ops = PyMem_Calloc((size_t)(n ? n : 1), sizeof(fl_op));
    t->text = PyMem_Malloc((size_t)(textlen ? textlen : 1));
    t->saved = PyMem_Calloc((size_t)(nsaved ? nsaved : 1), sizeof(PyObject *));
    t->dec_args = PyTuple_New(1);
    if (t->refs == NULL || t->ops == NULL || t->text == NULL || t->saved == NULL
        || t->dec_args == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    PyObject_GC_UnTrack(t->dec_args);
    Py_ssize_t textpos = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        fl_op *o = &t->ops[i];
        if (parse_op(t, PyList_GET_ITEM(ops, i), o, &textpos) < 0)
            goto fail;
        switch (o->op) {
        case OP_TUPLE: case OP_LIST: case OP_RECORD: case OP_STRUCT:
            if (o->n > depth || o->n < 0) {
                PyErr_SetString(PyExc_ValueError, "container takes more values than the stack holds");
                goto fail;
            }
            depth -= o->n;
            break;
        default:
            break;
        }
        depth++;
        if (depth > maxdepth)
            maxdepth = depth;
    }
    if (depth != 1) {
        PyErr_SetString(PyExc_ValueError, "a tape must leave exactly one value");
        goto fail;
    }
    t->depth = maxdepth;
    t->stack = PyMem_Calloc((size_t)maxdepth, sizeof(PyObject *));
    if (t->stack == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    return (PyObject *)t;
fail:
    Py_XDECREF(t);
    return NULL;
}

static PyObject *
build_decimal(fl_tape *t, const char *s, Py_ssize_t n)
{
    PyObject *text = PyUnicode_New(n, 127), *args = t->dec_args, *v = NULL;
    if (text == NULL)
        return NULL;
    memcpy(PyUnicode_DATA(text), s, (size_t)n);
    if (Py_REFCNT(args) != 1) {          /* held elsewhere: a fresh one this time */
        args = PyTuple_Pack(1, text);
        Py_DECREF(text);
        if (args == NULL)
            return NULL;
        v = t->decimal->tp_new(t->decimal, args, NULL);
        Py_DECREF(args);
        return v;
    }
    PyTuple_SET_ITEM(args, 0, text);
    v = t->decimal->tp_new(t->decimal, args, NULL);
    PyTuple_SET_ITEM(args, 0, NULL);
    Py_DECREF(text);
    return v;
}

static PyObject *
tape_build(fl_tape *t, PyObject *Py_UNUSED(ignored))
{
    PyObject **base = t->stack, **sp = base, *v = NULL;
    const fl_op *o = t->ops, *end = t->ops + t->nops;
    for (; o < end; o++) {
        switch (o->op) {
        case OP_CONST:
            v = Py_NewRef(o->obj);
            break;
        case OP_REF:
            v = Py_NewRef(t->saved[o->u.ref]);
            break;
        case OP_ASCII:
            v = PyUnicode_New(o->n, 127);
            if (v != NULL)
                memcpy(PyUnicode_DATA(v), o->u.s, (size_t)o->n);
            break;
        case OP_UTF8:
            v = PyUnicode_DecodeUTF8(o->u.s, o->n, NULL);
            break;
        case OP_INT:
            v = PyLong_FromLongLong(o->u.i);
            break;
        case OP_FLOAT:
            v = PyFloat_FromDouble(o->u.f);
            break;
        case OP_DATETIME:
            v = dt_api->DateTime_FromDateAndTime(o->u.dt.y, o->u.dt.m, o->u.dt.d, o->u.dt.hh,
                                                 o->u.dt.mi, o->u.dt.ss, (int)o->u.dt.us,
                                                 o->obj, dt_api->DateTimeType);
            break;
        case OP_DECIMAL:
            v = build_decimal(t, o->u.s, o->n);
            break;
        case OP_TUPLE:
            v = PyTuple_New(o->n);
            if (v != NULL) {
                sp -= o->n;
                for (Py_ssize_t k = 0; k < o->n; k++)
                    PyTuple_SET_ITEM(v, k, sp[k]);
                if (!o->track)
                    PyObject_GC_UnTrack(v);
            }
            break;
        case OP_LIST:
            v = PyList_New(o->n);
            if (v != NULL) {
                sp -= o->n;
                for (Py_ssize_t k = 0; k < o->n; k++)
                    PyList_SET_ITEM(v, k, sp[k]);
            }
            break;
        case OP_RECORD: {
            fl_record *r = PyObject_GC_NewVar(fl_record, (PyTypeObject *)o->obj, o->n);
            if (r != NULL) {
                r->hash = -1;
                sp -= o->n;
                memcpy(r->ob_item, sp, (size_t)o->n * sizeof(PyObject *));
                if (o->track)
                    PyObject_GC_Track(r);
            }
            v = (PyObject *)r;
            break;
        }
        case OP_STRUCT: {
            PyTypeObject *tp = (PyTypeObject *)o->obj;
            v = (tp->tp_flags & Py_TPFLAGS_HAVE_GC) ? PyObject_GC_New(PyObject, tp)
                                                     : PyObject_New(PyObject, tp);
            if (v != NULL) {
                memset((char *)v + sizeof(PyObject), 0, (size_t)tp->tp_basicsize - sizeof(PyObject));
                sp -= o->n;
                for (Py_ssize_t k = 0; k < o->n; k++)
                    *(PyObject **)((char *)v + o->u.offsets[k]) = sp[k];
                if (o->track)
                    PyObject_GC_Track(v);
            }
            break;
        }
        default:
            v = NULL;
            PyErr_SetString(PyExc_SystemError, "bad op");
            break;
        }
        if (v == NULL)
            goto fail;
        if (o->save >= 0)
            t->saved[o->save] = v;
        *sp++ = v;
    }
    return base[0];
fail:
    while (sp > base)
        Py_DECREF(*--sp);
    return NULL;
}

static PyMethodDef tape_methods[] = {
    {"build", (PyCFunction)tape_build, METH_NOARGS, "Build the graph once."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TapeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_floor.Tape",
    .tp_basicsize = sizeof(fl_tape),
    .tp_dealloc = (destructor)tape_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = tape_methods,
    .tp_new = tape_new,
};

/* The offset of a member descriptor's slot (a Struct field's place). */
static PyObject *
member_offset(PyObject *Py_UNUSED(m), PyObject *d)
{
    if (Py_TYPE(d) != &PyMemberDescr_Type) {
        PyErr_SetString(PyExc_TypeError, "not a member descriptor");
        return NULL;
    }
    PyMemberDef *def = ((PyMemberDescrObject *)d)->d_member;
    if (def->type != T_OBJECT_EX && def->type != T_OBJECT) {
        PyErr_SetString(PyExc_TypeError, "not an object member");
        return NULL;
    }
    return PyLong_FromSsize_t(def->offset);
}

/* Py_SIZE of a variable-size object (a custlist record's slot count). */
static PyObject *
ob_size(PyObject *Py_UNUSED(m), PyObject *o)
{
    return PyLong_FromSsize_t(Py_SIZE(o));
}

static PyMethodDef module_methods[] = {
    {"member_offset", member_offset, METH_O, NULL},
    {"ob_size", ob_size, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef floor_module = {
    PyModuleDef_HEAD_INIT, "_floor", NULL, -1, module_methods,
};

PyMODINIT_FUNC
PyInit__floor(void)
{
    PyObject *m = NULL;
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    dt_api = PyDateTimeAPI;
    if (PyType_Ready(&TapeType) < 0)
        return NULL;
    m = PyModule_Create(&floor_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Tape", (PyObject *)&TapeType) < 0
        || PyModule_AddIntConstant(m, "OP_CONST", OP_CONST) < 0
        || PyModule_AddIntConstant(m, "OP_REF", OP_REF) < 0
        || PyModule_AddIntConstant(m, "OP_ASCII", OP_ASCII) < 0
        || PyModule_AddIntConstant(m, "OP_UTF8", OP_UTF8) < 0
        || PyModule_AddIntConstant(m, "OP_INT", OP_INT) < 0
        || PyModule_AddIntConstant(m, "OP_FLOAT", OP_FLOAT) < 0
        || PyModule_AddIntConstant(m, "OP_DATETIME", OP_DATETIME) < 0
        || PyModule_AddIntConstant(m, "OP_DECIMAL", OP_DECIMAL) < 0
        || PyModule_AddIntConstant(m, "OP_TUPLE", OP_TUPLE) < 0
        || PyModule_AddIntConstant(m, "OP_LIST", OP_LIST) < 0
        || PyModule_AddIntConstant(m, "OP_RECORD", OP_RECORD) < 0
        || PyModule_AddIntConstant(m, "OP_STRUCT", OP_STRUCT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
