/* Arrow output: record batches built in C from the scan of each page
 * (arrow.c), and the pager's face for it (pager.c). */
#ifndef CL_ARROW_H
#define CL_ARROW_H

#include "common.h"
#include "decode.h"

/* ---- pager.c, for arrow.c ----------------------------------------------- */

typedef struct {
    const char *buf;          /* the page body, valid until the next call */
    size_t len;
    Py_ssize_t items_at;      /* byte offset of the items value, -1 if none */
    int max_depth;
    Py_ssize_t skip;          /* items to pass over first (consumed before) */
    Py_ssize_t take;          /* items to convert after them (max_items) */
} cl_page_body;

int cl_pager_next_body(PyObject *pager, cl_schema *envelope, cl_page_body *out);

/* The pager's position at a page boundary, kept while a batch is built from
 * several pages: if the batch fails, none of them was handed out, and the
 * pager's checkpoint goes back there. */
typedef struct {
    PyObject *next_url, *next_cursor;
    Py_ssize_t pending_skip, consumed, budget;
} cl_pager_mark;

void cl_pager_mark_set(PyObject *pager, cl_pager_mark *m);
void cl_pager_mark_restore(PyObject *pager, cl_pager_mark *m);
void cl_pager_mark_clear(cl_pager_mark *m);
void cl_pager_body_done(PyObject *pager);
void cl_pager_page_failed(PyObject *pager);
/* Borrowed: the envelope (items == 0) or the items schema (items == 1). */
cl_schema *cl_pager_schema(PyObject *pager, int items);

/* ---- arrow.c: Pager methods --------------------------------------------- */

PyObject *cl_arrow_c_stream(PyObject *pager, PyObject *args, PyObject *kwds);
PyObject *cl_arrow_stream(PyObject *pager, PyObject *args, PyObject *kwds);
PyObject *cl_arrow_to_arrow(PyObject *pager, PyObject *ignored);
PyObject *cl_arrow_to_pandas(PyObject *pager, PyObject *ignored);
PyObject *cl_arrow_to_polars(PyObject *pager, PyObject *ignored);

#define CL_ARROW_PAGER_METHODS \
    {"__arrow_c_stream__", (PyCFunction)(void (*)(void))cl_arrow_c_stream, \
     METH_VARARGS | METH_KEYWORDS, \
     "Arrow PyCapsule interface: the remaining records as a stream of record batches."}, \
    {"_arrow_stream", (PyCFunction)(void (*)(void))cl_arrow_stream, \
     METH_VARARGS | METH_KEYWORDS, NULL}, \
    {"to_arrow", (PyCFunction)cl_arrow_to_arrow, METH_NOARGS, \
     "The remaining records as a pyarrow.Table (needs custlist[arrow])."}, \
    {"to_pandas", (PyCFunction)cl_arrow_to_pandas, METH_NOARGS, \
     "The remaining records as a pandas DataFrame with pyarrow-backed dtypes " \
     "(needs custlist[pandas])."}, \
    {"to_polars", (PyCFunction)cl_arrow_to_polars, METH_NOARGS, \
     "The remaining records as a polars DataFrame (needs custlist[polars])."},

#endif
