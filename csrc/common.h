/* Shared declarations of the custlist C engine.
 *
 * The engine knows nothing about any vendor: it receives compiled schemas
 * (decode_schema.c) and pager descriptions (pager.c) from the Python layer. */
#ifndef CL_COMMON_H
#define CL_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* The datetime C API is reached through cl_state.dt, not the header's static. */
#define _PY_DATETIME_IMPL
#include <datetime.h>
#undef _PY_DATETIME_IMPL
#include <stddef.h>

/* Free-threaded CPython (3.13t, 3.14t; Py_GIL_DISABLED): the module runs
 * without the GIL, and what the GIL serialised is serialised by a critical
 * section on the object (the pager, the fan-out) or, for the decoder's
 * heuristics, by atomics.  On a GIL build a critical section is a plain
 * block; CPython before 3.13 has no such macros. */
#ifndef Py_BEGIN_CRITICAL_SECTION
#define Py_BEGIN_CRITICAL_SECTION(op) {
#define Py_END_CRITICAL_SECTION() }
#endif

/* A method (self, arg) run inside a critical section on self: NAME_locked. */
#define CL_LOCKED(name, type, argtype) \
    static PyObject *name##_locked(type *self, argtype arg) \
    { \
        PyObject *r = NULL; \
        Py_BEGIN_CRITICAL_SECTION(self); \
        r = name(self, arg); \
        Py_END_CRITICAL_SECTION(); \
        return r; \
    }

/* Per-module state: the types this module created and the Python objects
 * the engine needs on its hot paths, looked up once at import. */
typedef struct {
    PyTypeObject *RecordType;
    PyTypeObject *SlotType;
    PyTypeObject *SchemaType;
    PyTypeObject *PagerType;
    PyObject *DecodeError;        /* custlist.errors.DecodeError */
    PyObject *TransportError;     /* custlist.errors.TransportError */
    PyObject *TimeoutError;       /* custlist.errors.RequestTimeoutError */
    PyObject *TooLargeError;      /* custlist.errors.ResponseTooLargeError */
    PyObject *PagingError;        /* custlist.errors.PagingError */
    PyObject *PagingLoopError;    /* custlist.errors.PagingLoopError */
    PyObject *UnsafeURLError;     /* custlist.errors.UnsafeURLError */
    PyObject *ClosedError;        /* custlist.errors.PagerClosedError */
    PyObject *logger;             /* logging.getLogger("custlist") */
    PyObject *Decimal;            /* decimal.Decimal */
    PyObject *utc;                /* datetime.timezone.utc */
    PyDateTime_CAPI *dt;
    /* Live fetch workers of this module (pager.c adds and removes them with
     * the GIL held); stopped at interpreter exit and at module free. */
    struct cl_worker *workers;
} cl_state;

/* record.c: the record object layout, shared with the decoder. */
typedef struct {
    PyObject_VAR_HEAD
    Py_hash_t hash;
    PyObject *ob_item[1];
} cl_record;

int cl_record_register(PyObject *module, cl_state *st);
PyObject *cl_record_alloc(PyTypeObject *tp, Py_ssize_t n);
void cl_record_finish(PyObject *rec, const unsigned char *atomic);
/* Whether a decoded value may be part of a reference cycle (and so a
 * container holding it needs the GC). */
int cl_may_cycle(PyObject *v);
int cl_record_check(cl_state *st, PyObject *obj);

/* decode_schema.c */
int cl_schema_register(PyObject *module, cl_state *st);

/* pager.c */
int cl_pager_register(PyObject *module, cl_state *st);

/* Raise `cls(message, *extra)` where message is formatted. */
PyObject *cl_raise(PyObject *cls, const char *fmt, ...);

#endif
