/* _core.RateLimiter: Python's face of the shared rate limiter (the limiter
 * itself is ratelimit.c), and its attachment to a pager. */
#include "ratelimit_internal.h"
#include "pager.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    PyObject_HEAD
    cl_limiter *l;
} cl_ratelimiter;

static PyObject *
limiter_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"requests", "per", "max_pause", NULL};
    double requests = 0, per = 1.0, max_pause = 60.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|ddd:RateLimiter", kwlist, &requests, &per,
                                     &max_pause))
        return NULL;
    if (!(requests >= 0 && requests <= 1e9) || !(per > 0 && per <= 1e6)
        || !(max_pause >= 0 && max_pause <= 1e6)) {
        PyErr_SetString(PyExc_ValueError, "requests must be from 0 (no limit) to 1e9, per "
                        "over 0 and max_pause from 0, both at most 1e6 seconds");
        return NULL;
    }
    if (requests > 0 && !(requests / per >= CL_MIN_RATE)) {
        char msg[200];
        snprintf(msg, sizeof msg, "%g requests per %g seconds is slower than the slowest "
                 "rate taken, one request in 1e6 seconds (requests=0 means no limit)",
                 requests, per);
        PyErr_SetString(PyExc_ValueError, msg);
        return NULL;
    }
    cl_ratelimiter *self = (cl_ratelimiter *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    cl_limiter *l = calloc(1, sizeof *l);
    if (l == NULL || pthread_mutex_init(&l->mu, NULL) != 0) {
        free(l);
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    l->refs = 1;
    /* A bucket of one token: requests evenly spaced, so that no window of
     * `per` seconds ever holds more than `requests` of them. */
    l->rate = requests / per;
    l->burst = 1;
    l->tokens = 1;
    l->refill_us = cl_limiter_now_us();
    l->max_pause_us = cl_limiter_saturated_us(max_pause * 1e6);
    self->l = l;
    return (PyObject *)self;
}

/* _attach(pager): every request of `pager` goes through this limiter from
 * now on (before its first one). */
static PyObject *
limiter_attach(cl_ratelimiter *self, PyObject *pager)
{
    cl_worker *w = NULL;
    Py_BEGIN_CRITICAL_SECTION(pager);   /* the pager's state, as its methods read it */
    w = cl_pager_worker(pager);
    Py_END_CRITICAL_SECTION();
    if (w == NULL) {
        PyErr_SetString(PyExc_ValueError, "the pager is closed");
        return NULL;
    }
    pthread_mutex_lock(&w->mu);
    int fresh = !w->started && w->state == CL_W_IDLE && w->limiter == NULL;
    if (fresh)
        w->limiter = cl_limiter_ref(self->l);
    pthread_mutex_unlock(&w->mu);
    if (!fresh) {
        PyErr_SetString(PyExc_ValueError, "a rate limiter is attached to a pager before it "
                        "fetches, once");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
limiter_stats(cl_ratelimiter *self, PyObject *Py_UNUSED(ignored))
{
    cl_limiter *l = self->l;
    pthread_mutex_lock(&l->mu);
    long long now = cl_limiter_now_us();
    double paused = l->paused_until_us > now ? (double)(l->paused_until_us - now) / 1e6 : 0.0;
    long long budget = l->have_budget && now < l->window_end_us ? l->budget : -1;
    PyObject *r = Py_BuildValue("{sLsLsLsdsL}", "granted", l->granted, "throttled", l->throttled,
                                "waits", l->waits, "paused_for", paused, "budget", budget);
    pthread_mutex_unlock(&l->mu);
    return r;
}

static void
limiter_dealloc(cl_ratelimiter *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (self->l != NULL)
        cl_limiter_unref(self->l);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef limiter_methods[] = {
    {"_attach", (PyCFunction)limiter_attach, METH_O, NULL},
    {"stats", (PyCFunction)limiter_stats, METH_NOARGS,
     "Requests let go, 429s seen, waits, pause left (s), server budget left (-1: unknown)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot limiter_slots[] = {
    {Py_tp_doc, "RateLimiter(requests=0, per=1.0, max_pause=60.0): at most `requests` "
                "requests in any `per` seconds, evenly spaced (0: no limit of its own; at least one "
                "request in 1e6 seconds), and the "
                "server's word: a 429's Retry-After pauses every request, (X-)RateLimit-"
                "Remaining/-Reset hold them back once the server's window is spent; no pause "
                "longer than max_pause seconds.  Shared by every pager it is attached to, "
                "across threads and fan-outs."},
    {Py_tp_new, limiter_new},
    {Py_tp_dealloc, limiter_dealloc},
    {Py_tp_methods, limiter_methods},
    {0, NULL},
};

static PyType_Spec limiter_spec = {
    .name = "custlist._core.RateLimiter",
    .basicsize = sizeof(cl_ratelimiter),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = limiter_slots,
};

int
cl_ratelimit_register(PyObject *module, cl_state *st)
{
    (void)st;
    PyObject *tp = PyType_FromModuleAndSpec(module, &limiter_spec, NULL);
    if (tp == NULL)
        return -1;
    int rc = PyModule_AddType(module, (PyTypeObject *)tp);
    Py_DECREF(tp);
    return rc;
}
