/* The Record base type: an immutable, fixed-size array of values.
 *
 * Python subclasses (declared through custlist._spec.RecordMeta) carry the
 * field names in `__fields__` and one `Slot` descriptor per field, so an
 * attribute read is a type-dict hit plus an index.  The decoder allocates a
 * record and fills its slots in place: no dict, no __init__ call. */
#include "common.h"
#include <string.h>

typedef struct {
    PyObject_HEAD
    Py_ssize_t index;
    PyObject *name;
    PyTypeObject *base;   /* borrowed: the module's Record type */
    PyObject *doc;        /* the field's docstring, or None */
} cl_slot;

/* ---- allocation ------------------------------------------------------- */

/* A record with every slot NULL, not yet tracked by the GC. */
PyObject *
cl_record_alloc(PyTypeObject *tp, Py_ssize_t n)
{
    cl_record *r = PyObject_GC_NewVar(cl_record, tp, n);   /* increfs a heap type */
    if (r == NULL)
        return NULL;
    memset(r->ob_item, 0, (size_t)n * sizeof(PyObject *));
    r->hash = -1;
    return (PyObject *)r;
}

static void record_dealloc(cl_record *r);

/* Whether a decoded value can take part in a reference cycle: a dict or a
 * list (mutable: a user may store the record in it, even while CPython
 * leaves a dict of atoms untracked), or a tuple or record holding one.  The
 * decoder builds tuples and records bottom-up and leaves untracked those
 * holding nothing of the kind, so for them being tracked is the answer, of
 * any Record class.  Only for values of schema nodes that may hold
 * containers (the decoder skips the others): there a tracked GC object is a
 * tuple, a record or a value of an "any" field. */
int
cl_may_cycle(PyObject *v)
{
    PyTypeObject *tp = Py_TYPE(v);
    if (tp == &PyDict_Type || tp == &PyList_Type)
        return 1;
    return (tp->tp_flags & Py_TPFLAGS_HAVE_GC) && PyObject_GC_IsTracked(v);
}

/* Called by the decoder once every slot is set.  Missing slots become None.
 * `atomic`: per slot, whether the schema only ever puts atoms there (those
 * slots are not looked at).
 * A record holding only atomic values, untracked records and tuples of
 * those needs no GC tracking: built bottom-up and immutable, it cannot be
 * part of a cycle. */
void
cl_record_finish(PyObject *obj, const unsigned char *atomic)
{
    cl_record *r = (cl_record *)obj;
    int needs_gc = 0;
    for (Py_ssize_t i = 0; i < Py_SIZE(r); i++) {
        PyObject *v = r->ob_item[i];
        if (v == NULL)
            r->ob_item[i] = Py_NewRef(Py_None);
        else if (!needs_gc && !atomic[i] && cl_may_cycle(v))
            needs_gc = 1;
    }
    if (needs_gc)
        PyObject_GC_Track(obj);
}

int
cl_record_check(cl_state *st, PyObject *obj)
{
    return PyObject_TypeCheck(obj, st->RecordType);
}

static PyObject *
record_fields(PyTypeObject *tp)
{
    PyObject *f = PyObject_GetAttrString((PyObject *)tp, "__fields__");
    if (f == NULL)
        return NULL;
    if (!PyTuple_Check(f)) {
        Py_DECREF(f);
        PyErr_Format(PyExc_TypeError, "%s.__fields__ must be a tuple", tp->tp_name);
        return NULL;
    }
    return f;
}

/* Record(*values, **by_name): used by users building records by hand and by
 * pickle (via __reduce__).  Unset fields are None. */
static int
record_fill_kwargs(cl_record *r, PyObject *fields, PyObject *kwds)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(kwds, &pos, &key, &value)) {
        Py_ssize_t i = PySequence_Index(fields, key);
        if (i < 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s has no field %R", Py_TYPE(r)->tp_name, key);
            return -1;
        }
        if (r->ob_item[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s got field %R twice", Py_TYPE(r)->tp_name, key);
            return -1;
        }
        r->ob_item[i] = Py_NewRef(value);
    }
    return 0;
}

static PyObject *
record_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    PyObject *fields = record_fields(tp);
    if (fields == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(fields), nargs = PyTuple_GET_SIZE(args);
    cl_record *r = NULL;
    if (nargs > n) {
        PyErr_Format(PyExc_TypeError, "%s takes at most %zd values (%zd given)",
                     tp->tp_name, n, nargs);
        goto error;
    }
    r = (cl_record *)cl_record_alloc(tp, n);
    if (r == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < nargs; i++)
        r->ob_item[i] = Py_NewRef(PyTuple_GET_ITEM(args, i));
    if (kwds != NULL && record_fill_kwargs(r, fields, kwds) < 0)
        goto error;
    for (Py_ssize_t i = 0; i < n; i++)
        if (r->ob_item[i] == NULL)
            r->ob_item[i] = Py_NewRef(Py_None);
    Py_DECREF(fields);
    PyObject_GC_Track(r);        /* values given by hand may form cycles */
    return (PyObject *)r;
error:
    Py_XDECREF(r);
    Py_DECREF(fields);
    return NULL;
}

static int
record_traverse(cl_record *r, visitproc visit, void *arg)
{
    for (Py_ssize_t i = Py_SIZE(r); --i >= 0;)
        Py_VISIT(r->ob_item[i]);
    Py_VISIT(Py_TYPE(r));
    return 0;
}

static int
record_clear(cl_record *r)
{
    for (Py_ssize_t i = Py_SIZE(r); --i >= 0;)
        Py_CLEAR(r->ob_item[i]);
    return 0;
}

static void
record_dealloc(cl_record *r)
{
    PyTypeObject *tp = Py_TYPE(r);
    PyObject_GC_UnTrack(r);
    Py_TRASHCAN_BEGIN(r, record_dealloc)
    record_clear(r);
    tp->tp_free((PyObject *)r);
    /* inside: a dealloc the trashcan defers runs again later, and only that
     * run may drop the record's reference to its type */
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

/* ---- protocol methods ------------------------------------------------- */

/* The type's __name__ (a new reference). */
static PyObject *
type_name(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyType_GetName(tp);
#else
    return PyObject_GetAttrString((PyObject *)tp, "__name__");
#endif
}

static PyObject *
record_repr(cl_record *r)
{
    PyObject *name = NULL, *fields = NULL, *parts = NULL, *sep = NULL, *joined = NULL, *res = NULL;
    int rc = Py_ReprEnter((PyObject *)r);
    if (rc < 0)
        return NULL;
    /* PyType_GetName, not the private _PyType_Name: the public API is the
       one kept across CPython versions (type_name: 3.10 has no such API). */
    name = type_name(Py_TYPE(r));
    if (rc > 0) {
        res = name == NULL ? NULL : PyUnicode_FromFormat("%U(...)", name);
        Py_XDECREF(name);
        return res;
    }
    if (name == NULL)
        goto done;
    fields = record_fields(Py_TYPE(r));
    if (fields == NULL)
        goto done;
    parts = PyList_New(0);
    if (parts == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < Py_SIZE(r) && i < PyTuple_GET_SIZE(fields); i++) {
        PyObject *part = PyUnicode_FromFormat("%U=%R", PyTuple_GET_ITEM(fields, i), r->ob_item[i]);
        if (part == NULL || PyList_Append(parts, part) < 0) {
            Py_XDECREF(part);
            goto done;
        }
        Py_DECREF(part);
    }
    sep = PyUnicode_FromString(", ");
    if (sep == NULL || (joined = PyUnicode_Join(sep, parts)) == NULL)
        goto done;
    res = PyUnicode_FromFormat("%U(%U)", name, joined);
done:
    Py_XDECREF(name);
    Py_XDECREF(fields);
    Py_XDECREF(parts);
    Py_XDECREF(sep);
    Py_XDECREF(joined);
    Py_ReprLeave((PyObject *)r);
    return res;
}

static PyObject *
record_richcompare(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || Py_TYPE(a) != Py_TYPE(b))
        Py_RETURN_NOTIMPLEMENTED;
    cl_record *x = (cl_record *)a, *y = (cl_record *)b;
    int equal = Py_SIZE(x) == Py_SIZE(y);
    for (Py_ssize_t i = 0; equal && i < Py_SIZE(x); i++) {
        int eq = PyObject_RichCompareBool(x->ob_item[i], y->ob_item[i], Py_EQ);
        if (eq < 0)
            return NULL;
        equal = eq;
    }
    return PyBool_FromLong(op == Py_EQ ? equal : !equal);
}

static PyObject *
record_as_tuple(cl_record *r)
{
    PyObject *t = PyTuple_New(Py_SIZE(r));
    if (t == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < Py_SIZE(r); i++)
        PyTuple_SET_ITEM(t, i, Py_NewRef(r->ob_item[i]));
    return t;
}

/* The hash is kept once computed; threads without the GIL that race to
 * compute it store the same value (relaxed atomics: never a torn word). */
#ifdef Py_GIL_DISABLED
#define HASH_LOAD(r) __atomic_load_n(&(r)->hash, __ATOMIC_RELAXED)
#define HASH_STORE(r, h) __atomic_store_n(&(r)->hash, (h), __ATOMIC_RELAXED)
#else
#define HASH_LOAD(r) ((r)->hash)
#define HASH_STORE(r, h) ((r)->hash = (h))
#endif

static Py_hash_t
record_hash(cl_record *r)
{
    Py_hash_t known = HASH_LOAD(r);
    if (known != -1)
        return known;
    PyObject *t = record_as_tuple(r);
    if (t == NULL)
        return -1;
    Py_hash_t h = PyObject_Hash(t);
    Py_DECREF(t);
    if (h != -1)
        HASH_STORE(r, h);
    return h;
}

static PyObject *
record_reduce(cl_record *r, PyObject *Py_UNUSED(ignored))
{
    PyObject *t = record_as_tuple(r);
    if (t == NULL)
        return NULL;
    return Py_BuildValue("(ON)", (PyObject *)Py_TYPE(r), t);
}

/* to_dict(): field name -> value; nested records become dicts and tuples of
 * records become lists, recursively.  Leaf values keep their types. */
static PyObject *to_plain(PyObject *v, PyTypeObject *base);

static PyObject *
record_to_dict_impl(cl_record *r, PyTypeObject *base)
{
    PyObject *fields = record_fields(Py_TYPE(r)), *d = NULL;
    if (fields == NULL)
        return NULL;
    if (Py_EnterRecursiveCall(" in to_dict()"))
        goto error;
    d = PyDict_New();
    for (Py_ssize_t i = 0; d != NULL && i < Py_SIZE(r) && i < PyTuple_GET_SIZE(fields); i++) {
        PyObject *v = to_plain(r->ob_item[i], base);
        if (v == NULL || PyDict_SetItem(d, PyTuple_GET_ITEM(fields, i), v) < 0) {
            Py_XDECREF(v);
            Py_CLEAR(d);
            break;
        }
        Py_DECREF(v);
    }
    Py_LeaveRecursiveCall();
error:
    Py_DECREF(fields);
    return d;
}

static PyObject *
to_plain(PyObject *v, PyTypeObject *base)
{
    if (PyObject_TypeCheck(v, base))
        return record_to_dict_impl((cl_record *)v, base);
    if (PyTuple_Check(v) || PyList_Check(v)) {
        /* a list may contain itself (an "any" value the caller changed):
         * RecursionError, never a C stack overflow */
        if (Py_EnterRecursiveCall(" in to_dict()"))
            return NULL;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
        PyObject *out = PyList_New(n);
        for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
            PyObject *x = to_plain(PySequence_Fast_GET_ITEM(v, i), base);
            if (x == NULL)
                Py_CLEAR(out);
            else
                PyList_SET_ITEM(out, i, x);
        }
        Py_LeaveRecursiveCall();
        return out;
    }
    return Py_NewRef(v);
}

static PyObject *
record_to_dict(cl_record *r, PyObject *Py_UNUSED(ignored))
{
    PyTypeObject *base = Py_TYPE(r);
    while (base->tp_base != NULL && base->tp_base != &PyBaseObject_Type)
        base = base->tp_base;
    return record_to_dict_impl(r, base);
}

static PyMethodDef record_methods[] = {
    {"__reduce__", (PyCFunction)record_reduce, METH_NOARGS, NULL},
    {"to_dict", (PyCFunction)record_to_dict, METH_NOARGS,
     "Return the record as a dict of field name to value (nested records as dicts)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot record_slots[] = {
    {Py_tp_doc, "Immutable typed record built by the custlist decoder."},
    {Py_tp_new, record_new},
    {Py_tp_dealloc, record_dealloc},
    {Py_tp_traverse, record_traverse},
    {Py_tp_clear, record_clear},
    {Py_tp_repr, record_repr},
    {Py_tp_richcompare, record_richcompare},
    {Py_tp_hash, record_hash},
    {Py_tp_methods, record_methods},
    {0, NULL},
};

static PyType_Spec record_spec = {
    .name = "custlist._core.Record",
    .basicsize = offsetof(cl_record, ob_item),
    .itemsize = sizeof(PyObject *),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC
           | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = record_slots,
};

/* ---- Slot: the read-only field descriptor ----------------------------- */

static PyObject *
slot_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"index", "name", "base", "doc", NULL};
    Py_ssize_t index;
    PyObject *name, *base, *doc = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "nUO!|O:Slot", kwlist, &index, &name,
                                     &PyType_Type, &base, &doc))
        return NULL;
    if (doc != Py_None && !PyUnicode_Check(doc)) {
        PyErr_SetString(PyExc_TypeError, "doc must be a str or None");
        return NULL;
    }
    if (index < 0) {
        PyErr_SetString(PyExc_ValueError, "index must be >= 0");
        return NULL;
    }
    /* slot_get reads the record layout: only Record types qualify */
    cl_state *st = PyType_GetModuleState(tp);
    if (st == NULL || !PyType_IsSubtype((PyTypeObject *)base, st->RecordType)) {
        PyErr_Format(PyExc_TypeError, "Slot base must be %s or a subclass, not %R",
                     st ? st->RecordType->tp_name : "custlist._core.Record", base);
        return NULL;
    }
    cl_slot *s = (cl_slot *)tp->tp_alloc(tp, 0);
    if (s == NULL)
        return NULL;
    s->index = index;
    s->name = Py_NewRef(name);
    /* kept borrowed, so the module's own type (alive as long as this Slot's
     * type): a Record subclass named as base could die before the Slot */
    s->base = st->RecordType;
    s->doc = Py_NewRef(doc);
    return (PyObject *)s;
}

static void
slot_dealloc(cl_slot *s)
{
    PyTypeObject *tp = Py_TYPE(s);
    Py_CLEAR(s->name);
    Py_CLEAR(s->doc);
    tp->tp_free((PyObject *)s);
    Py_DECREF(tp);
}

static PyObject *
slot_get(cl_slot *s, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None)
        return Py_NewRef((PyObject *)s);
    if (!PyObject_TypeCheck(obj, s->base) || s->index >= Py_SIZE(obj)) {
        PyErr_Format(PyExc_TypeError, "field %R does not apply to %s", s->name,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    return Py_NewRef(((cl_record *)obj)->ob_item[s->index]);
}

static int
slot_set(cl_slot *s, PyObject *obj, PyObject *Py_UNUSED(value))
{
    PyErr_Format(PyExc_AttributeError, "%s is immutable: cannot set %R",
                 Py_TYPE(obj)->tp_name, s->name);
    return -1;
}

static PyObject *
slot_repr(cl_slot *s)
{
    return PyUnicode_FromFormat("<field %U at %zd>", s->name, s->index);
}

static PyObject *
slot_get_doc(cl_slot *s, void *Py_UNUSED(closure))
{
    return Py_NewRef(s->doc);
}

/* __doc__ per field: help() and IPython's `Record.field?` show it. */
static PyGetSetDef slot_getset[] = {
    {"__doc__", (getter)slot_get_doc, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot slot_slots[] = {
    {Py_tp_new, slot_new},
    {Py_tp_getset, slot_getset},
    {Py_tp_dealloc, slot_dealloc},
    {Py_tp_descr_get, slot_get},
    {Py_tp_descr_set, slot_set},
    {Py_tp_repr, slot_repr},
    {0, NULL},
};

static PyType_Spec slot_spec = {
    .name = "custlist._core.Slot",
    .basicsize = sizeof(cl_slot),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = slot_slots,
};

int
cl_record_register(PyObject *module, cl_state *st)
{
    st->RecordType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &record_spec, NULL);
    if (st->RecordType == NULL || PyModule_AddType(module, st->RecordType) < 0)
        return -1;
    st->SlotType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &slot_spec, NULL);
    if (st->SlotType == NULL || PyModule_AddType(module, st->SlotType) < 0)
        return -1;
    return 0;
}
