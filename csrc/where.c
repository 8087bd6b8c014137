/* Where a DecodeError happened: each level of the decode that unwinds
 * through it adds one segment, innermost first, to the exception's `where`
 * list; custlist.errors.DecodeError turns them into the record type, the
 * field, its wire path and the item's index.  Only error paths call this;
 * a failure here leaves the original error as it was. */
#include "where.h"

typedef struct {
    PyObject *type, *value, *tb;
} cl_held;

/* Hold the DecodeError being raised (0: none is, nothing to note). */
static int
hold(cl_state *st, cl_held *h)
{
    if (!PyErr_ExceptionMatches(st->DecodeError))
        return 0;
    PyErr_Fetch(&h->type, &h->value, &h->tb);
    PyErr_NormalizeException(&h->type, &h->value, &h->tb);
    if (h->value == NULL) {
        PyErr_Restore(h->type, h->value, h->tb);
        return 0;
    }
    return 1;
}

/* Append `segment` (may be NULL) to the held error's `where`, raise it again. */
static void
release(cl_held *h, PyObject *segment)
{
    PyObject *where = NULL;
    if (segment != NULL) {
        where = PyObject_GetAttrString(h->value, "where");
        if (where == NULL || !PyList_Check(where)) {
            PyErr_Clear();
            Py_XSETREF(where, PyList_New(0));
            if (where != NULL && PyObject_SetAttrString(h->value, "where", where) < 0)
                Py_CLEAR(where);
        }
        if (where != NULL)
            (void)PyList_Append(where, segment);
    }
    PyErr_Clear();
    Py_XDECREF(where);
    Py_XDECREF(segment);
    PyErr_Restore(h->type, h->value, h->tb);
}

void
cl_where_key(cl_state *st, PyObject *key, Py_ssize_t slot)
{
    cl_held h;
    if (hold(st, &h))
        release(&h, Py_BuildValue("(sOn)", "key", key, slot));
}

void
cl_where_index(cl_state *st, Py_ssize_t i)
{
    cl_held h;
    if (hold(st, &h))
        release(&h, Py_BuildValue("(sn)", "index", i));
}

void
cl_where_record(cl_state *st, PyTypeObject *cls)
{
    cl_held h;
    if (hold(st, &h))
        release(&h, Py_BuildValue("(sO)", "record", (PyObject *)cls));
}

void
cl_where_missing(cl_state *st, Py_ssize_t slot)
{
    cl_held h;
    if (hold(st, &h))
        release(&h, Py_BuildValue("(sn)", "missing", slot));
}

void
cl_where_column(cl_state *st, const char *s, size_t n, const char *column)
{
    cl_held h;
    if (hold(st, &h))
        release(&h, Py_BuildValue("(ss#z)", "column", s, (Py_ssize_t)n, column));
}

void
cl_where_record_name(cl_state *st, const char *name)
{
    cl_held h;
    if (hold(st, &h))
        release(&h, Py_BuildValue("(ss)", "record", name));
}
