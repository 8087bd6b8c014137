/* _core.FanOut: many fresh pagers' requests on one driver (multi.h), at
 * most `concurrency` transfers at a time.  The pagers keep all their paging
 * logic: only who performs their transfers changes.  This file is the
 * Python face: it attaches the pagers' workers to a shared driver, primes
 * their requests, hands out the listings whose pages are in, and closes
 * them all; the driver itself knows nothing of Python. */
#include "fanout.h"
#include "multi.h"
#include "pager.h"
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long
now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

typedef struct {
    PyObject_HEAD
    cl_state *st;
    PyObject *pagers;              /* tuple */
    cl_multi *m;
    int closed;
} cl_fanout;

/* The worker of pager i, if it has never fetched and is in no fan-out. */
static cl_worker *
fresh_worker(PyObject *pager, Py_ssize_t i)
{
    cl_worker *w = cl_pager_worker(pager);
    if (w == NULL) {
        PyErr_Format(PyExc_ValueError, "pager %zd is closed", i);
        return NULL;
    }
    pthread_mutex_lock(&w->mu);
    int fresh = !w->started && w->state == CL_W_IDLE && w->driver == NULL;
    pthread_mutex_unlock(&w->mu);
    if (!fresh) {
        PyErr_Format(PyExc_ValueError,
                     "pager %zd has already fetched or is part of another fan-out: give "
                     "fan_out fresh pagers (a saved resume point starts one part-way)", i);
        return NULL;
    }
    return w;
}

static PyObject *
fanout_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"pagers", "concurrency", NULL};
    PyObject *pagers = NULL;
    int concurrency = 8;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!i:FanOut", kwlist, &PyTuple_Type, &pagers,
                                     &concurrency))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(pagers);
    if (concurrency < 1 || concurrency > 1024) {
        PyErr_SetString(PyExc_ValueError, "concurrency must be from 1 to 1024");
        return NULL;
    }
    if (n > 1000000) {
        PyErr_SetString(PyExc_ValueError, "at most 1000000 listings in one fan-out");
        return NULL;
    }
    cl_state *st = PyType_GetModuleState(tp);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!PyObject_TypeCheck(PyTuple_GET_ITEM(pagers, i), st->PagerType)) {
            PyErr_Format(PyExc_TypeError, "fan_out takes custlist pagers, not %.200s",
                         Py_TYPE(PyTuple_GET_ITEM(pagers, i))->tp_name);
            return NULL;
        }
    for (Py_ssize_t i = 0; i < n; i++)
        for (Py_ssize_t j = 0; j < i; j++)
            if (PyTuple_GET_ITEM(pagers, i) == PyTuple_GET_ITEM(pagers, j)) {
                PyErr_Format(PyExc_ValueError, "pager %zd is given twice", i);
                return NULL;
            }
    for (Py_ssize_t i = 0; i < n; i++)
        if (fresh_worker(PyTuple_GET_ITEM(pagers, i), i) == NULL)
            return NULL;
    cl_fanout *f = (cl_fanout *)tp->tp_alloc(tp, 0);
    if (f == NULL)
        return NULL;
    f->st = st;
    f->m = cl_multi_new((int)n, concurrency);
    if (f->m == NULL) {
        Py_DECREF(f);
        PyErr_SetString(PyExc_RuntimeError, "could not set up libcurl's multi handle or its thread");
        return NULL;
    }
    /* From here the fan-out owns the pagers: closing it closes them. */
    f->pagers = Py_NewRef(pagers);
    for (Py_ssize_t i = 0; i < n; i++)
        cl_multi_attach(f->m, cl_pager_worker(PyTuple_GET_ITEM(pagers, i)), (int)i);
    return (PyObject *)f;
}

static PyObject *
fanout_prime(cl_fanout *f, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0 || i >= PyTuple_GET_SIZE(f->pagers)) {
        PyErr_SetString(PyExc_IndexError, "no such listing");
        return NULL;
    }
    PyObject *pager = PyTuple_GET_ITEM(f->pagers, i);
    int rc = -1;
    Py_BEGIN_CRITICAL_SECTION(pager);   /* as the pager's own methods (pager.c) */
    rc = cl_pager_prime(pager);
    Py_END_CRITICAL_SECTION();
    return rc < 0 ? NULL : PyBool_FromLong(rc);
}

/* next_ready(timeout): the index of a listing whose next page has arrived
 * (or failed for good, or whose pager was closed), or None after `timeout`
 * seconds.  Waits without the GIL, running signal handlers every 50 ms. */
static PyObject *
fanout_next_ready(cl_fanout *f, PyObject *arg)
{
    double timeout = PyFloat_AsDouble(arg);
    if (timeout == -1.0 && PyErr_Occurred())
        return NULL;
    if (!(timeout >= 0 && timeout <= 1e6)) {
        PyErr_SetString(PyExc_ValueError, "timeout must be from 0 to 1e6 seconds");
        return NULL;
    }
    if (f->m == NULL || f->closed) {
        PyErr_SetString(f->st->ClosedError, "the fan-out is closed");
        return NULL;
    }
    cl_multi *m = f->m;
    long long end = now_us() + (long long)(timeout * 1e6);
    for (;;) {
        int i;
        Py_BEGIN_ALLOW_THREADS
        long long slice = end - now_us();
        if (slice > 50000)
            slice = 50000;
        i = cl_multi_next_ready(m, slice);
        Py_END_ALLOW_THREADS
        if (i >= 0)
            return PyLong_FromLong(i);
        if (PyErr_CheckSignals() < 0)
            return NULL;
        if (f->closed) {                       /* by another thread meanwhile */
            PyErr_SetString(f->st->ClosedError, "the fan-out is closed");
            return NULL;
        }
        if (now_us() >= end)
            Py_RETURN_NONE;
    }
}

/* Close every pager (resume points stay readable), then stop the thread. */
static int
fanout_shutdown(cl_fanout *f)
{
    int rc = 0;
    if (f->closed)
        return 0;
    f->closed = 1;
    if (f->pagers != NULL)
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(f->pagers); i++) {
            PyObject *r = PyObject_CallMethod(PyTuple_GET_ITEM(f->pagers, i), "close", NULL);
            if (r == NULL)
                rc = -1;
            Py_XDECREF(r);
        }
    if (f->m != NULL && !cl_multi_foreign(f->m)) {
        Py_BEGIN_ALLOW_THREADS
        cl_multi_stop(f->m);
        Py_END_ALLOW_THREADS
    }
    return rc;
}

static PyObject *
fanout_close(cl_fanout *f, PyObject *Py_UNUSED(ignored))
{
    if (fanout_shutdown(f) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
fanout_stats(cl_fanout *f, PyObject *Py_UNUSED(ignored))
{
    int active = 0, max_active = 0;
    if (f->m != NULL)
        cl_multi_stats(f->m, &active, &max_active);
    return Py_BuildValue("{sisi}", "active", active, "max_active", max_active);
}

static int
fanout_traverse(cl_fanout *f, visitproc visit, void *arg)
{
    Py_VISIT(f->pagers);
    Py_VISIT(Py_TYPE(f));
    return 0;
}

static int
fanout_clear(cl_fanout *f)
{
    Py_CLEAR(f->pagers);
    return 0;
}

static void
fanout_dealloc(cl_fanout *f)
{
    PyTypeObject *tp = Py_TYPE(f);
    PyObject_GC_UnTrack(f);
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    if (fanout_shutdown(f) < 0)
        PyErr_WriteUnraisable((PyObject *)f);
    PyErr_Restore(et, ev, tb);
    fanout_clear(f);
    if (f->m != NULL && !cl_multi_foreign(f->m))
        cl_multi_unref(f->m);    /* attached workers may keep it a while */
    f->m = NULL;
    tp->tp_free((PyObject *)f);
    Py_DECREF(tp);
}

/* Without the GIL, each method runs in a critical section on the fan-out,
 * let go while next_ready() waits, as the GIL would be (common.h). */
CL_LOCKED(fanout_prime, cl_fanout, PyObject *)
CL_LOCKED(fanout_next_ready, cl_fanout, PyObject *)
CL_LOCKED(fanout_close, cl_fanout, PyObject *)
CL_LOCKED(fanout_stats, cl_fanout, PyObject *)

static PyMethodDef fanout_methods[] = {
    {"prime", (PyCFunction)fanout_prime_locked, METH_O,
     "prime(i): queue listing i's next request unless one is queued; False when it has "
     "nothing more to fetch."},
    {"next_ready", (PyCFunction)fanout_next_ready_locked, METH_O,
     "next_ready(timeout): index of a listing whose page is in, or None after timeout s."},
    {"close", (PyCFunction)fanout_close_locked, METH_NOARGS,
     "Close every pager and stop the fan-out's thread."},
    {"stats", (PyCFunction)fanout_stats_locked, METH_NOARGS,
     "Transfers on the multi handle now and at most so far."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot fanout_slots[] = {
    {Py_tp_doc, "FanOut(pagers, concurrency): the transfers of fresh pagers on one libcurl "
                "multi handle driven by one thread (see custlist.fan_out)."},
    {Py_tp_new, fanout_new},
    {Py_tp_dealloc, fanout_dealloc},
    {Py_tp_traverse, fanout_traverse},
    {Py_tp_clear, fanout_clear},
    {Py_tp_methods, fanout_methods},
    {0, NULL},
};

static PyType_Spec fanout_spec = {
    .name = "custlist._core.FanOut",
    .basicsize = sizeof(cl_fanout),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = fanout_slots,
};

int
cl_fanout_register(PyObject *module, cl_state *st)
{
    (void)st;
    PyObject *tp = PyType_FromModuleAndSpec(module, &fanout_spec, NULL);
    if (tp == NULL)
        return -1;
    int rc = PyModule_AddType(module, (PyTypeObject *)tp);
    Py_DECREF(tp);
    return rc;
}
