/* Schema compilation, and the custlist._core.Schema type.
 *
 * A schema is a tree of nodes compiled from nested tuples such as
 *   ("record", Customer, 3, ((("customerReference",), 0, ("str",)), ...))
 * Record fields may sit at a path of keys ("attributes", "status"); fields
 * sharing a prefix share a key map, so nested wire objects flatten into one
 * record without intermediate dicts.  Several paths may target one slot
 * (aliases: "line1" and "address_line_1").
 *
 * custlist._spec builds the description tuples; Schema(spec) compiles one
 * here, once per endpoint.  The nodes (decode_internal.h) are read by the
 * decoder (decode.c, decode_values.c) on every value; arrow_compile.c reads
 * the description tuple itself (cl_schema.spec). */
#include "decode_internal.h"

static const char *kind_names[] = {
    "any", "str", "int", "float", "bool", "decimal",
    "datetime", "unix_s", "unix_ms", "enum", "list", "record", "union", "defer", NULL,
};

/* ======================================================================
 * Compilation
 * ====================================================================== */

static void
keymap_free(cl_keymap *km);

static void
node_free(cl_node *n)
{
    if (n == NULL)
        return;
    node_free(n->elem);
    node_free(n->fallback);
    for (Py_ssize_t i = 0; i < n->nwords; i++)
        node_free(n->words[i].node);
    PyMem_Free(n->words);
    PyMem_Free(n->atomic);
    PyMem_Free(n->req);
    keymap_free(&n->keys);
    PyMem_Free(n);
}

static void
keymap_free(cl_keymap *km)
{
    for (Py_ssize_t i = 0; i < km->n; i++) {
        node_free(km->ents[i].value);
        if (km->ents[i].group != NULL) {
            keymap_free(km->ents[i].group);
            PyMem_Free(km->ents[i].group);
        }
    }
    PyMem_Free(km->ents);
    cl_keymap_drop_index(km);
    km->ents = NULL;
    km->n = km->cap = 0;
}

/* Keep `obj` alive in refs and point `w` at its UTF-8 bytes. */
static int
word_set(cl_schema *sc, cl_word *w, PyObject *obj)
{
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "schema key must be str, not %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyList_Append(sc->refs, obj) < 0)
        return -1;
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &len);
    w->obj = obj;
    if (s == NULL)
        return -1;
    cl_word_set(w, s, len);
    return 0;
}

static cl_node *compile_node(cl_schema *sc, PyObject *spec);

static cl_keyent *
keymap_add(cl_keymap *km)
{
    if (km->n == km->cap) {
        Py_ssize_t cap = km->cap ? km->cap * 2 : 8;
        cl_keyent *e = PyMem_Realloc(km->ents, cap * sizeof *e);
        if (e == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        km->ents = e;
        km->cap = cap;
    }
    cl_keyent *e = &km->ents[km->n++];
    memset(e, 0, sizeof *e);
    e->slot = -1;
    return e;
}

static cl_keyent *
keymap_find(cl_keymap *km, PyObject *key)
{
    for (Py_ssize_t i = 0; i < km->n; i++) {
        int eq = PyUnicode_Compare(km->ents[i].key.obj, key);
        if (eq == 0)
            return &km->ents[i];
    }
    return NULL;
}

/* Descend to the key map that holds the last key of `path`, creating
 * groups on the way. */
static cl_keymap *
keymap_descend(cl_schema *sc, cl_keymap *km, PyObject *path)
{
    for (Py_ssize_t i = 0; i + 1 < PyTuple_GET_SIZE(path); i++) {
        PyObject *k = PyTuple_GET_ITEM(path, i);
        cl_keyent *e = keymap_find(km, k);
        if (e == NULL) {
            if ((e = keymap_add(km)) == NULL || word_set(sc, &e->key, k) < 0)
                return NULL;
            if ((e->group = PyMem_Calloc(1, sizeof(cl_keymap))) == NULL) {
                PyErr_NoMemory();
                return NULL;
            }
        }
        else if (e->group == NULL) {
            PyErr_Format(PyExc_ValueError, "key %R is both a field and a group", k);
            return NULL;
        }
        km = e->group;
    }
    return km;
}

static int
compile_field(cl_schema *sc, cl_node *n, PyObject *field)
{
    PyObject *path, *spec;
    Py_ssize_t slot;
    if (!PyArg_ParseTuple(field, "O!nO;record field must be (path, slot, spec)",
                          &PyTuple_Type, &path, &slot, &spec))
        return -1;
    if (PyTuple_GET_SIZE(path) == 0 || slot < 0 || slot >= n->nslots) {
        PyErr_SetString(PyExc_ValueError, "record field needs a non-empty path and a valid slot");
        return -1;
    }
    cl_keymap *km = keymap_descend(sc, &n->keys, path);
    if (km == NULL)
        return -1;
    PyObject *last = PyTuple_GET_ITEM(path, PyTuple_GET_SIZE(path) - 1);
    if (keymap_find(km, last) != NULL) {
        PyErr_Format(PyExc_ValueError, "duplicate key %R in record schema", last);
        return -1;
    }
    cl_keyent *e = keymap_add(km);
    if (e == NULL || word_set(sc, &e->key, last) < 0)
        return -1;
    e->slot = slot;
    e->value = compile_node(sc, spec);
    return e->value == NULL ? -1 : 0;
}

/* Clear atomic[slot] for every slot some path fills with a possible container. */
static void
mark_atomic_slots(cl_keymap *km, unsigned char *atomic)
{
    for (Py_ssize_t i = 0; i < km->n; i++) {
        cl_keyent *e = &km->ents[i];
        if (e->group != NULL)
            mark_atomic_slots(e->group, atomic);
        else if (!e->value->atoms_only)
            atomic[e->slot] = 0;
    }
}

/* Whether every value the (compiled) node decodes to is an atom for the
 * GC's purposes: a str, number, decimal, datetime, enum member or None, or
 * a tuple or record built only of those, which the decoder leaves
 * untracked (decode_list, cl_record_finish).  Then containers holding them
 * need not look at them at all. */
static int
node_atoms_only(cl_node *n)
{
    switch (n->kind) {
    case K_ANY: case K_DEFER:
        return 0;
    case K_LIST:
        return n->elem->atoms_only;
    case K_RECORD:
        for (Py_ssize_t i = 0; i < n->nslots; i++)
            if (!n->atomic[i])
                return 0;
        return 1;
    case K_UNION:
        for (Py_ssize_t i = 0; i < n->nwords; i++)
            if (!n->words[i].node->atoms_only)
                return 0;
        return n->fallback == NULL || n->fallback->atoms_only;
    default:
        return 1;
    }
}

/* The slots the record class says are always there (its __required__). */
static int
compile_required(cl_node *n)
{
    PyObject *req = PyObject_GetAttrString((PyObject *)n->cls, "__required__");
    if (req == NULL) {
        PyErr_Clear();          /* a class without it requires nothing */
        return 0;
    }
    int rc = -1;
    if (!PyTuple_Check(req)) {
        PyErr_SetString(PyExc_TypeError, "__required__ must be a tuple of slot numbers");
        goto done;
    }
    n->nreq = PyTuple_GET_SIZE(req);
    if (n->nreq > 0 && (n->req = PyMem_Calloc(n->nreq, sizeof *n->req)) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n->nreq; i++) {
        n->req[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(req, i));
        if (n->req[i] < 0 || n->req[i] >= n->nslots) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "__required__ names a slot out of range");
            goto done;
        }
    }
    rc = 0;
done:
    Py_DECREF(req);
    return rc;
}

static int
compile_record(cl_schema *sc, cl_node *n, PyObject *spec)
{
    PyObject *kind, *cls, *fields;
    if (!PyArg_ParseTuple(spec, "OOnO!;record spec must be ('record', cls, nslots, fields)",
                          &kind, &cls, &n->nslots, &PyTuple_Type, &fields))
        return -1;
    if (cls != Py_None) {
        if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, sc->st->RecordType)) {
            PyErr_SetString(PyExc_TypeError, "record class must subclass custlist._core.Record");
            return -1;
        }
        if (PyList_Append(sc->refs, cls) < 0)
            return -1;
        n->cls = (PyTypeObject *)cls;
    }
    if (n->nslots < 0 || n->nslots > 4096) {
        PyErr_SetString(PyExc_ValueError, "record slot count out of range");
        return -1;
    }
    if (PyTuple_GET_SIZE(fields) > 65536) {
        PyErr_SetString(PyExc_ValueError, "record has too many fields");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++)
        if (compile_field(sc, n, PyTuple_GET_ITEM(fields, i)) < 0)
            return -1;
    if ((n->atomic = PyMem_Malloc(n->nslots + 1)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(n->atomic, 1, n->nslots + 1);
    mark_atomic_slots(&n->keys, n->atomic);
    if (n->cls != NULL && compile_required(n) < 0)
        return -1;
    return cl_keymap_index(&n->keys);
}

/* ("enum", {wire: member}) or ("union", tag, {wire: record spec}, fallback) */
static int
compile_words(cl_schema *sc, cl_node *n, PyObject *mapping, int nodes)
{
    if (!PyDict_Check(mapping)) {
        PyErr_SetString(PyExc_TypeError, "enum/union spec needs a dict");
        return -1;
    }
    Py_ssize_t pos = 0, i = 0;
    PyObject *k, *v;
    n->words = PyMem_Calloc(PyDict_GET_SIZE(mapping) + 1, sizeof(cl_word));
    if (n->words == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    while (PyDict_Next(mapping, &pos, &k, &v)) {
        cl_word *w = &n->words[i++];
        n->nwords = i;
        if (word_set(sc, w, k) < 0)
            return -1;
        if (nodes) {
            if ((w->node = compile_node(sc, v)) == NULL)
                return -1;
        }
        else {
            if (PyList_Append(sc->refs, v) < 0)
                return -1;
            w->obj = v;          /* the member to return for this wire value */
        }
    }
    return 0;
}

static int
compile_union(cl_schema *sc, cl_node *n, PyObject *spec)
{
    PyObject *kind, *tag, *variants, *fallback;
    if (!PyArg_ParseTuple(spec, "OUOO;union spec must be ('union', tag, variants, fallback)",
                          &kind, &tag, &variants, &fallback))
        return -1;
    if (word_set(sc, &n->tag, tag) < 0 || compile_words(sc, n, variants, 1) < 0)
        return -1;
    if (fallback != Py_None && (n->fallback = compile_node(sc, fallback)) == NULL)
        return -1;
    return 0;
}

static cl_node *
compile_node(cl_schema *sc, PyObject *spec)
{
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 1 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(spec, 0))) {
        PyErr_Format(PyExc_TypeError, "invalid schema node %R", spec);
        return NULL;
    }
    cl_node *n = PyMem_Calloc(1, sizeof *n);
    if (n == NULL)
        return (cl_node *)PyErr_NoMemory();
    const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(spec, 0));
    n->kind = -1;
    for (int i = 0; name != NULL && kind_names[i] != NULL; i++)
        if (strcmp(kind_names[i], name) == 0)
            n->kind = i;
    int rc = 0;
    switch (n->kind) {
    case K_ENUM:
        rc = PyTuple_GET_SIZE(spec) == 2 ? compile_words(sc, n, PyTuple_GET_ITEM(spec, 1), 0)
                                         : (PyErr_SetString(PyExc_TypeError, "enum spec"), -1);
        break;
    case K_LIST:
        if (PyTuple_GET_SIZE(spec) != 2) {
            PyErr_SetString(PyExc_TypeError, "list spec must be ('list', elem)");
            rc = -1;
        }
        else
            rc = (n->elem = compile_node(sc, PyTuple_GET_ITEM(spec, 1))) == NULL ? -1 : 0;
        break;
    case K_RECORD:
        rc = compile_record(sc, n, spec);
        break;
    case K_UNION:
        rc = compile_union(sc, n, spec);
        break;
    case -1:
        PyErr_Format(PyExc_ValueError, "unknown schema kind %R", PyTuple_GET_ITEM(spec, 0));
        rc = -1;
        break;
    default:
        break;
    }
    if (rc < 0) {
        node_free(n);
        return NULL;
    }
    n->atoms_only = node_atoms_only(n);
    return n;
}

/* ======================================================================
 * The Schema type
 * ====================================================================== */

static PyObject *
schema_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"spec", NULL};
    PyObject *spec;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!:Schema", kwlist, &PyTuple_Type, &spec))
        return NULL;
    cl_schema *sc = (cl_schema *)tp->tp_alloc(tp, 0);
    if (sc == NULL)
        return NULL;
    sc->st = PyType_GetModuleState(tp);
    sc->refs = PyList_New(0);
    sc->spec = Py_NewRef(spec);
    if (sc->refs == NULL || (sc->root = compile_node(sc, spec)) == NULL) {
        Py_DECREF(sc);
        return NULL;
    }
    sc->nslots = sc->root->nslots;
    return (PyObject *)sc;
}

/* The nodes borrow UTF-8 and objects owned by refs: they go together. */
static int
schema_clear(cl_schema *sc)
{
    node_free(sc->root);
    sc->root = NULL;
    Py_CLEAR(sc->refs);
    Py_CLEAR(sc->spec);
    return 0;
}

static void
schema_dealloc(cl_schema *sc)
{
    PyTypeObject *tp = Py_TYPE(sc);
    PyObject_GC_UnTrack(sc);
    schema_clear(sc);
    tp->tp_free((PyObject *)sc);
    Py_DECREF(tp);
}

static int
schema_traverse(cl_schema *sc, visitproc visit, void *arg)
{
    Py_VISIT(sc->refs);
    Py_VISIT(sc->spec);
    Py_VISIT(Py_TYPE(sc));
    return 0;
}

/* Schema.decode(body, max_depth=64): decode a whole document with this
 * schema as its root (one record, a list of records, any value). */
static PyObject *
schema_decode(cl_schema *sc, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"body", "max_depth", NULL};
    Py_buffer buf;
    int max_depth = CL_DEFAULT_MAX_DEPTH;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*|i:decode", kwlist, &buf, &max_depth))
        return NULL;
    if (sc->root == NULL) {              /* cleared by the GC (a cycle) */
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "this schema was cleared");
        return NULL;
    }
    PyObject *res = cl_decode_document(sc, buf.buf, buf.len, max_depth);
    PyBuffer_Release(&buf);
    return res;
}

static PyMethodDef schema_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))schema_decode, METH_VARARGS | METH_KEYWORDS,
     "Decode a JSON document whose root matches this schema."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot schema_slots[] = {
    {Py_tp_doc, "A compiled decoding schema."},
    {Py_tp_new, schema_new},
    {Py_tp_dealloc, schema_dealloc},
    {Py_tp_traverse, schema_traverse},
    {Py_tp_clear, schema_clear},
    {Py_tp_methods, schema_methods},
    {0, NULL},
};

static PyType_Spec schema_spec = {
    .name = "custlist._core.Schema",
    .basicsize = sizeof(cl_schema),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = schema_slots,
};

int
cl_schema_check(cl_state *st, PyObject *obj)
{
    return PyObject_TypeCheck(obj, st->SchemaType);
}

int
cl_schema_register(PyObject *module, cl_state *st)
{
    st->SchemaType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &schema_spec, NULL);
    if (st->SchemaType == NULL || PyModule_AddType(module, st->SchemaType) < 0)
        return -1;
    /* Which block steps this build's scans use (json.h): sse2, neon, scalar. */
    return PyModule_AddStringConstant(module, "scan_path", CL_SCAN_PATH);
}
