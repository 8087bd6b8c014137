/* Schema-directed decoding: JSON bytes -> records, straight from the scan.
 *
 * What the rest of the engine sees of the decoder: the compiled Schema
 * (decode_schema.c) and the page and items entry points (decode.c).  The
 * decoder's own files share decode_internal.h; the scanning they share with
 * the Arrow builder is scan.h's. */
#ifndef CL_DECODE_H
#define CL_DECODE_H

#include "common.h"
#include "shape.h"

typedef struct cl_node cl_node;

/* A compiled schema (custlist._core.Schema), built once per endpoint from
 * the description tuple that custlist._spec produces. */
typedef struct {
    PyObject_HEAD
    cl_state *st;
    cl_node *root;
    PyObject *refs;        /* owns every key string, class and member the nodes point to */
    PyObject *spec;        /* the description tuple it was compiled from (arrow.c reads it) */
    Py_ssize_t nslots;     /* for a page schema: how many page slots */
} cl_schema;

#define CL_DEFAULT_MAX_DEPTH 64
/* The deepest nesting any setting may allow: the decode recurses once per
 * level, and this keeps it far inside any thread's C stack. */
#define CL_MAX_DEPTH 1000

/* ValueError unless 2 <= max_depth <= CL_MAX_DEPTH. */
int cl_check_max_depth(int max_depth);

/* Decode a page envelope (a record schema without a class) into `slots`
 * (nslots of them, NULL where absent).  A "defer" field stores the byte
 * offset of its array as an int (None for null) instead of decoding it;
 * `items` (may be NULL) is the schema such an array decodes with later.
 * At most `max_items` array elements are built (DecodeError past it). */
int cl_decode_page(cl_schema *page, cl_schema *items, const char *buf, size_t len,
                   int max_depth, Py_ssize_t max_items, PyObject **slots);
/* The same, with the spans of `buf` found as it arrived (shape.h; may be
 * NULL): a deferred items array recorded there is stepped over at once. */
int cl_decode_page_shaped(cl_schema *page, cl_schema *items, const char *buf, size_t len,
                          int max_depth, Py_ssize_t max_items, PyObject **slots,
                          const cl_shape *shape);

/* Decode the list of items whose '[' is at byte `offset`. Returns a tuple. */
PyObject *cl_decode_items(cl_schema *items, const char *buf, size_t len,
                          Py_ssize_t offset, int max_depth, Py_ssize_t max_items);

int cl_schema_check(cl_state *st, PyObject *obj);

/* How many items the list at byte `offset` holds (0 for null), by their
 * brackets alone; -1 with DecodeError if it is not a well-formed list. */
Py_ssize_t cl_count_items(cl_state *st, const char *buf, size_t len, Py_ssize_t offset,
                          int max_depth);

#endif
