/* Arrow output: record batches built in C from the scan of each page.
 * arrow.c builds the columns of a page, arrow_stream.c drives the Arrow C
 * stream over the pager (batches, errors, rollback), and pager.c gives
 * them the pages. */
#ifndef CL_ARROW_H
#define CL_ARROW_H

#include "common.h"
#include "decode.h"
#include <stdint.h>

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

/* ---- pager.c, for the Arrow stream -------------------------------------- */

typedef struct {
    const char *buf;          /* the page body, valid until the next call */
    size_t len;
    Py_ssize_t items_at;      /* byte offset of the items value, -1 if none */
    int max_depth;
    Py_ssize_t skip;          /* items to pass over first (consumed before) */
    Py_ssize_t take;          /* items to convert after them (max_items); PY_SSIZE_T_MAX:
                               * all, uncounted (cl_pager_body_read settles the window) */
    Py_ssize_t count;         /* items the page holds, -1 when uncounted */
    Py_ssize_t budget;        /* values the page may build (max_items_per_page) */
} cl_page_body;

int cl_pager_next_body(PyObject *pager, cl_schema *envelope, cl_page_body *out);

/* The pager's position at a page boundary, kept while Arrow output reads:
 * if the read fails, none of its pages was handed out, and the pager's
 * checkpoint goes back there. */
typedef struct {
    PyObject *next_url, *next_cursor;
    Py_ssize_t pending_skip, consumed, budget;
} cl_pager_mark;

/* -1 with ValueError when the pager is part-way through a page. */
int cl_pager_mark_set(PyObject *pager, cl_pager_mark *m);
void cl_pager_mark_restore(PyObject *pager, cl_pager_mark *m);
void cl_pager_mark_clear(cl_pager_mark *m);
/* The page last returned was converted into `rows` rows: its window
 * settled when it was not counted before (the items are not passed over
 * twice when every one is wanted), the progress display told.  -1 with an
 * exception (the pager closed, the page to be fetched again). */
int cl_pager_body_read(PyObject *pager, Py_ssize_t rows);
void cl_pager_body_done(PyObject *pager);
void cl_pager_page_failed(PyObject *pager);
/* Borrowed: the envelope (items == 0) or the items schema (items == 1). */
cl_schema *cl_pager_schema(PyObject *pager, int items);

/* ---- arrow.c: the columns of a record batch ----------------------------- */

typedef struct acol cl_acols;

/* A pager's items description (its items schema's spec, cl_pager_schema)
 * as columns (a TypeError when it has none). */
cl_acols *cl_acols_new(PyObject *items_spec);
void cl_acols_free(cl_acols *c);
int64_t cl_acols_rows(const cl_acols *c);
/* Append the page's items (its window) as rows; -1 with an exception.
 * Called with the GIL, which the scan of the items lets go: the page body
 * must stay put meanwhile (the pager stays entered until
 * cl_pager_body_done).  *room: the recursion guard's room on this thread,
 * -1 to have it measured (then kept for the next pages of the same call);
 * signals: look at pending signals now and then (on the main thread). */
int cl_acols_add_page(cl_acols *c, cl_schema *envelope, const cl_page_body *pb, int *room,
                      int signals);
/* Empty the builders (after a failure, or once exported). */
int cl_acols_reset(cl_acols *c);
/* Move the rows built into `out`, a struct array; -1 with an exception
 * (`out` is then released). */
int cl_acols_export(cl_acols *c, struct ArrowArray *out);
/* No Python here: 0 or ENOMEM (`out` is then released). */
int cl_acols_schema(const cl_acols *c, struct ArrowSchema *out);

/* ---- arrow_stream.c: Pager methods -------------------------------------- */

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
