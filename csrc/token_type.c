/* custlist._core.TokenCell: the Python face of a token cell (token.h). */
#include "token_internal.h"
#include "pager.h"
#include "request.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the Python face: _core.TokenCell ------------------------------------- */

typedef struct {
    PyObject_HEAD
    cl_token *t;
} cl_tokencell;

static PyObject *
cell_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":TokenCell", kwlist))
        return NULL;
    cl_tokencell *self = (cl_tokencell *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    cl_token *t = calloc(1, sizeof *t);
    pthread_condattr_t ca;
    int conds = 0;
    if (t != NULL && pthread_condattr_init(&ca) == 0) {
#if !defined(__APPLE__)
        if (pthread_condattr_setclock(&ca, CL_WAIT_CLOCK) == 0)
#endif
            conds = pthread_cond_init(&t->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (t == NULL || !conds || pthread_mutex_init(&t->mu, NULL) != 0) {
        if (conds)
            pthread_cond_destroy(&t->cv);
        free(t);
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    t->refs = 1;
    self->t = t;
    return (PyObject *)self;
}

/* set(value, seconds): from now on, "Authorization: <value>" for at most
 * `seconds`; a new generation.  The value is never echoed in a message. */
static PyObject *
cell_set(cl_tokencell *self, PyObject *args)
{
    const char *value = NULL;
    Py_ssize_t n = 0;
    double seconds = 0;
    if (!PyArg_ParseTuple(args, "s#d:set", &value, &n, &seconds))
        return NULL;
    if (n < 1 || n > CL_TOKEN_MAX_LINE || memchr(value, '\r', (size_t)n) != NULL
        || memchr(value, '\n', (size_t)n) != NULL || memchr(value, '\0', (size_t)n) != NULL) {
        PyErr_SetString(PyExc_ValueError, "the Authorization value must be one line of at most "
                        "16384 characters");
        return NULL;
    }
    static const char name[] = "Authorization: ";
    char *line = malloc(sizeof name + (size_t)n);
    if (line == NULL)
        return PyErr_NoMemory();
    memcpy(line, name, sizeof name - 1);
    memcpy(line + sizeof name - 1, value, (size_t)n);
    line[sizeof name - 1 + n] = '\0';
    cl_token *t = self->t;
    pthread_mutex_lock(&t->mu);
    unsigned long long gen = cl_token_put_locked(t, line, seconds);
    pthread_mutex_unlock(&t->mu);
    return PyLong_FromUnsignedLongLong(gen);
}

/* _configure(method, url, headers, body, **transport): the token request
 * the fetch threads send when they renew (the arguments of _core.request).
 * Holds the client's credentials: never shown. */
static PyObject *
cell_configure(cl_tokencell *self, PyObject *args, PyObject *kwds)
{
    cl_token_req *req = calloc(1, sizeof *req);
    if (req == NULL)
        return PyErr_NoMemory();
    if (cl_request_spec_parse(&req->spec, args, kwds, "_configure") < 0) {
        free(req);
        return NULL;
    }
    req->refs = 1;
    cl_token *t = self->t;
    pthread_mutex_lock(&t->mu);
    cl_token_req *old = t->req;
    t->req = req;
    cl_token_req_unref(old);
    pthread_mutex_unlock(&t->mu);
    Py_RETURN_NONE;
}

/* _begin(refused) -> bool: Python is about to fetch a token.  Waits
 * (without the GIL) for a renewal in flight; False when the cell now holds
 * a usable token newer than generation `refused`, else True: the renewal is
 * Python's until _end(), and the fetch threads wait for it. */
static PyObject *
cell_begin(cl_tokencell *self, PyObject *arg)
{
    unsigned long long refused = PyLong_AsUnsignedLongLong(arg);
    cl_token *t = self->t;
    int busy = 1, fresh = 0;
    if (refused == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    while (busy) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&t->mu);
        if (cl_token_in_flight_locked(t))
            cl_token_wait_locked(t, 50);
        busy = cl_token_in_flight_locked(t);
        if (!busy) {
            fresh = cl_token_usable_locked(t) && t->gen != refused;
            if (!fresh) {
                t->renewing = 1;
                t->renewer = getpid();
            }
        }
        pthread_mutex_unlock(&t->mu);
        Py_END_ALLOW_THREADS
        if (busy && PyErr_CheckSignals() < 0)
            return NULL;
    }
    return PyBool_FromLong(!fresh);
}

static PyObject *
cell_end(cl_tokencell *self, PyObject *Py_UNUSED(ignored))
{
    cl_token *t = self->t;
    pthread_mutex_lock(&t->mu);
    t->renewing = 0;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    Py_RETURN_NONE;
}

/* _peek() -> (value, seconds left): the Authorization value in the cell
 * ("" when none) and how long it is still sent (<= 0: expired). */
static PyObject *
cell_peek(cl_tokencell *self, PyObject *Py_UNUSED(ignored))
{
    cl_token *t = self->t;
    static const size_t skip = sizeof "Authorization: " - 1;
    pthread_mutex_lock(&t->mu);
    char *copy = t->line != NULL ? strdup(t->line + skip) : strdup("");
    double left = t->line != NULL ? (double)(t->until_us - cl_token_now_us()) / 1e6 : 0.0;
    pthread_mutex_unlock(&t->mu);
    if (copy == NULL)
        return PyErr_NoMemory();
    PyObject *res = Py_BuildValue("(sd)", copy, left);
    cl_token_wipe(copy);
    return res;
}

/* _failure(seq, url) -> None | (status, raw headers, body): the renewal the
 * fetch thread could not make, recorded as `seq` or later.  A transfer that
 * failed raises here, as _core.request(url) raises it; a response is given
 * back for Python to read as it reads its own. */
static PyObject *
cell_failure(cl_tokencell *self, PyObject *args)
{
    unsigned long long seq = 0;
    PyObject *url = NULL;
    cl_state *st = PyType_GetModuleState(Py_TYPE(self));
    if (!PyArg_ParseTuple(args, "KU:_failure", &seq, &url))
        return NULL;
    if (st == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "custlist's module state is gone");
        return NULL;
    }
    cl_token *t = self->t;
    cl_http h;
    memset(&h, 0, sizeof h);
    PyObject *res = NULL;
    pthread_mutex_lock(&t->mu);
    cl_token_fail *f = &t->fail;
    int have = seq > 0 && f->seq >= seq;
    if (have && f->code != CURLE_OK) {
        h.code = f->code;
        h.too_large = f->too_large;
        memcpy(h.errbuf, f->errbuf, sizeof h.errbuf);
        h.trusted = f->trusted != NULL ? strdup(f->trusted) : NULL;
    }
    else if (have)
        res = Py_BuildValue("ly#y#", f->status, f->headers.data ? f->headers.data : "",
                            (Py_ssize_t)f->headers.len, f->body.data ? f->body.data : "",
                            (Py_ssize_t)f->body.len);
    pthread_mutex_unlock(&t->mu);
    if (have && h.code != CURLE_OK) {
        cl_raise_transport(st, &h, url, "POST", 1);
        free(h.trusted);
        return NULL;
    }
    if (!have)
        Py_RETURN_NONE;
    return res;
}

static PyObject *
cell_generation(cl_tokencell *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(cl_token_generation(self->t));
}

/* _attach(pager): the pager's chain sends the token of this cell (before
 * its first request). */
static PyObject *
cell_attach(cl_tokencell *self, PyObject *pager)
{
    cl_state *st = PyType_GetModuleState(Py_TYPE(self));
    int rc;
    if (st == NULL || !PyObject_TypeCheck(pager, st->PagerType)) {
        PyErr_SetString(PyExc_TypeError, "_attach() takes a pager");
        return NULL;
    }
    Py_BEGIN_CRITICAL_SECTION(pager);
    rc = cl_pager_attach_token(pager, self->t);
    Py_END_CRITICAL_SECTION();
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static void
cell_dealloc(cl_tokencell *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    cl_token_unref(self->t);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef cell_methods[] = {
    {"set", (PyCFunction)cell_set, METH_VARARGS, NULL},
    {"_attach", (PyCFunction)cell_attach, METH_O, NULL},
    {"_configure", (PyCFunction)(void (*)(void))cell_configure, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"_begin", (PyCFunction)cell_begin, METH_O, NULL},
    {"_end", (PyCFunction)cell_end, METH_NOARGS, NULL},
    {"_peek", (PyCFunction)cell_peek, METH_NOARGS, NULL},
    {"_failure", (PyCFunction)cell_failure, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cell_getset[] = {
    {"generation", (getter)cell_generation, NULL, "tokens put in so far", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot cell_slots[] = {
    {Py_tp_doc, "TokenCell(): a client's current access token, shared by its pagers' fetch "
                "threads: set(value, seconds) puts in \"Authorization: <value>\" for at most "
                "`seconds`; generation counts the tokens put in."},
    {Py_tp_new, cell_new},
    {Py_tp_dealloc, cell_dealloc},
    {Py_tp_methods, cell_methods},
    {Py_tp_getset, cell_getset},
    {0, NULL},
};

static PyType_Spec cell_spec = {
    .name = "custlist._core.TokenCell",
    .basicsize = sizeof(cl_tokencell),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = cell_slots,
};

int
cl_token_register(PyObject *module)
{
    PyObject *tp = PyType_FromModuleAndSpec(module, &cell_spec, NULL);
    if (tp == NULL)
        return -1;
    int rc = PyModule_AddType(module, (PyTypeObject *)tp);
    Py_DECREF(tp);
    return rc;
}
