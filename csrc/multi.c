/* Fan-out over one libcurl multi handle; see multi.h.
 *
 * The FanOut object attaches the workers of fresh pagers to one cl_multi.
 * A pager then submits and collects its requests exactly as before (every
 * URL, origin and loop check, decode and error stays in pager.c); the
 * fan-out's thread performs them: a queued job waits its turn (FIFO) for
 * one of `concurrency` transfer slots, runs on the shared multi handle, and
 * after a retryable failure waits out its backoff off the handle, without
 * holding a slot.  A finished job is marked done on the worker (waking the
 * pager) and put on the ready ring, which FanOut.next_ready() pops. */
#include "multi.h"
#include "ratelimit.h"
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum { S_IDLE, S_PENDING, S_ACTIVE, S_WAITING };

typedef struct {
    cl_worker *w;                  /* NULL: unused or detached */
    int state;
    int attempt;                   /* attempts of the current job */
    unsigned long seq;             /* FIFO order among pending jobs */
    long long due_ms;              /* S_WAITING: end of the backoff */
    long long t0_us;               /* start of the transfer */
    int ready;                     /* on the ready ring */
    int detach;                    /* asked to let go of the worker */
} mslot;

struct cl_multi {
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* ready ring and detach, on CL_WAIT_CLOCK */
    pthread_t thread;
    pid_t owner;
    int running;                   /* the thread is in its loop */
    int started, quit;
    int refs;
    CURLM *multi;
    int concurrency, active, max_active;
    unsigned long seq;
    int nslots;
    mslot *slots;
    int *ring, rhead, rlen;        /* indices of slots whose job is done */
};

static long long
now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

static int
w_cancelled(cl_worker *w)
{
    return __atomic_load_n(&w->cancel, __ATOMIC_ACQUIRE);
}

/* Slot i goes on the ready ring (once), and FanOut.next_ready() wakes up.
 * Called with m->mu held. */
static void
push_ready(cl_multi *m, int i)
{
    mslot *s = &m->slots[i];
    if (!s->ready) {
        s->ready = 1;
        m->ring[(m->rhead + m->rlen) % m->nslots] = i;
        m->rlen++;
    }
    pthread_cond_broadcast(&m->cv);
}

/* The job of slot i is over: the worker is done (its pager wakes up) and
 * the slot goes on the ready ring.  Called with m->mu held. */
static void
complete(cl_multi *m, int i, CURLcode code_if_not_run)
{
    mslot *s = &m->slots[i];
    cl_worker *w = s->w;
    if (code_if_not_run != CURLE_OK) {       /* never reached libcurl (again) */
        w->http.code = code_if_not_run;
        w->http.too_large = 0;
    }
    s->state = S_IDLE;
    pthread_mutex_lock(&w->mu);
    w->attempts = s->attempt;
    cl_worker_done_locked(w);
    pthread_mutex_unlock(&w->mu);
    push_ready(m, i);
}

/* Slot i lets go of its worker (its pager was closed, by any thread): the
 * slot goes on the ready ring too, so that the thread iterating the
 * fan-out learns of it instead of waiting for a job that will never end.
 * Called with m->mu held. */
static void
release_slot(cl_multi *m, int i)
{
    mslot *s = &m->slots[i];
    s->state = S_IDLE;
    s->w = NULL;
    push_ready(m, i);
}

static void
start(cl_multi *m, int i)
{
    mslot *s = &m->slots[i];
    cl_worker *w = s->w;
    s->attempt++;
    s->t0_us = now_us();
    cl_http_begin(&w->http, w->url, w->headers, NULL, 0);
    curl_easy_setopt(w->http.easy, CURLOPT_PRIVATE, (void *)(intptr_t)i);
    /* Over TLS, a transfer that finds a connection still in its handshake
     * waits to learn whether the server multiplexes (ALPN h2) rather than
     * opening a connection of its own: the first `concurrency` transfers
     * then share one HTTP/2 connection too.  Plain http is HTTP/1.1. */
    curl_easy_setopt(w->http.easy, CURLOPT_PIPEWAIT,
                     strncasecmp(w->url, "https://", 8) == 0 ? 1L : 0L);
    if (curl_multi_add_handle(m->multi, w->http.easy) != CURLM_OK) {
        /* the limiter let this request go: it is not on its way after all */
        if (w->limiter != NULL)
            cl_limiter_feed(w->limiter, &w->http, CURLE_FAILED_INIT);
        complete(m, i, CURLE_FAILED_INIT);
        return;
    }
    s->state = S_ACTIVE;
    if (++m->active > m->max_active)
        m->max_active = m->active;
}

/* A transfer taken off the handle before it finished. */
static void
drop_active(cl_multi *m, mslot *s)
{
    curl_multi_remove_handle(m->multi, s->w->http.easy);
    m->active--;
    if (s->w->limiter != NULL)
        cl_limiter_feed(s->w->limiter, &s->w->http, CURLE_ABORTED_BY_CALLBACK);
}

/* Detach requests, cancels of jobs not on the handle, backoffs that are
 * over, then new transfers while there is room.  Returns the longest the
 * thread may sleep (ms).  Called with m->mu held. */
static long
schedule(cl_multi *m)
{
    long long now = now_us() / 1000;
    long wait = 1000;
    for (int i = 0; i < m->nslots; i++) {
        mslot *s = &m->slots[i];
        if (s->w == NULL)
            continue;
        if (s->detach) {
            if (s->state == S_ACTIVE)
                drop_active(m, s);
            release_slot(m, i);
            continue;
        }
        if ((s->state == S_PENDING || s->state == S_WAITING) && w_cancelled(s->w))
            complete(m, i, CURLE_ABORTED_BY_CALLBACK);
        else if (s->state == S_WAITING && s->due_ms <= now) {
            s->state = S_PENDING;
            s->seq = m->seq++;
        }
        else if (s->state == S_WAITING && s->due_ms - now < wait)
            wait = (long)(s->due_ms - now);
    }
    while (m->active < m->concurrency) {
        int best = -1;
        for (int i = 0; i < m->nslots; i++)
            if (m->slots[i].w != NULL && m->slots[i].state == S_PENDING
                && (best < 0 || m->slots[i].seq < m->slots[best].seq))
                best = i;
        if (best < 0)
            break;
        cl_limiter *l = m->slots[best].w->limiter;
        long long us = l != NULL ? cl_limiter_reserve(l) : 0;
        if (us > 0) {                  /* its origin's limiter says later */
            long ms = (long)((us + 999) / 1000);
            m->slots[best].state = S_WAITING;
            m->slots[best].due_ms = now + ms;
            if (ms < wait)
                wait = ms;
            continue;
        }
        start(m, best);
    }
    return wait < 0 ? 0 : wait;
}

/* Transfers libcurl has finished: retry after a backoff, or complete. */
static void
collect(cl_multi *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        void *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        int i = (int)(intptr_t)priv;
        curl_multi_remove_handle(m->multi, easy);
        if (i < 0 || i >= m->nslots || m->slots[i].w == NULL
            || m->slots[i].w->http.easy != easy)
            continue;
        mslot *s = &m->slots[i];
        cl_worker *w = s->w;
        m->active--;
        cl_http_end(&w->http, code);
        double ms = (double)(now_us() - s->t0_us) / 1000.0;
        long long delay = cl_worker_after_attempt(w, s->attempt, code, ms);
        if (delay >= 0 && !w_cancelled(w) && !m->quit) {
            s->state = S_WAITING;
            s->due_ms = now_us() / 1000 + delay;
        }
        else
            complete(m, i, CURLE_OK);
    }
}

static void *
multi_main(void *arg)
{
    cl_multi *m = arg;
#if defined(__linux__)
    pthread_setname_np(pthread_self(), "custlist-fanout");
#endif
    pthread_mutex_lock(&m->mu);
    while (!m->quit) {
        schedule(m);
        pthread_mutex_unlock(&m->mu);
        int running = 0;
        curl_multi_perform(m->multi, &running);
        pthread_mutex_lock(&m->mu);
        collect(m);
        if (m->quit)
            break;
        long wait;
        /* room freed and work queued meanwhile: start it before sleeping
         * (an added handle makes libcurl's timer due at once) */
        wait = schedule(m);
        pthread_mutex_unlock(&m->mu);
        if (wait > 0)
            curl_multi_poll(m->multi, NULL, 0, (int)wait, NULL);
        pthread_mutex_lock(&m->mu);
    }
    /* Stopping: no transfer stays on the handle, and no pager waits for a
     * job that will never run (it sees a cancel). */
    for (int i = 0; i < m->nslots; i++) {
        mslot *s = &m->slots[i];
        if (s->w == NULL || s->state == S_IDLE)
            continue;
        if (s->state == S_ACTIVE)
            drop_active(m, s);
        complete(m, i, CURLE_ABORTED_BY_CALLBACK);
    }
    m->running = 0;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

int
cl_multi_enqueue(cl_multi *m, cl_worker *w)
{
    pthread_mutex_lock(&m->mu);
    int ok = m->running && !m->quit && w->driver_slot >= 0 && w->driver_slot < m->nslots
          && m->slots[w->driver_slot].w == w;
    if (ok) {
        mslot *s = &m->slots[w->driver_slot];
        s->state = S_PENDING;
        s->attempt = 0;
        s->seq = m->seq++;
    }
    pthread_mutex_unlock(&m->mu);
    if (ok)
        curl_multi_wakeup(m->multi);
    return ok ? 0 : -1;
}

void
cl_multi_wakeup(cl_multi *m)
{
    curl_multi_wakeup(m->multi);
}

static void
multi_free(cl_multi *m)
{
    if (m->multi != NULL)
        curl_multi_cleanup(m->multi);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m->slots);
    free(m->ring);
    free(m);
}

/* Drop a reference (m->mu held; released here). */
static void
unref_unlock(cl_multi *m)
{
    int last = --m->refs == 0;
    pthread_mutex_unlock(&m->mu);
    if (last)
        multi_free(m);
}

void
cl_multi_detach(cl_worker *w)
{
    cl_multi *m = w->driver;
    int i = w->driver_slot;
    pthread_mutex_lock(&m->mu);
    mslot *s = &m->slots[i];
    if (s->w == w) {
        if (m->running) {
            s->detach = 1;
            curl_multi_wakeup(m->multi);
            while (s->w == w && m->running)
                pthread_cond_wait(&m->cv, &m->mu);
        }
        if (s->w == w)                     /* the thread is gone: nothing is on the handle */
            release_slot(m, i);
    }
    w->driver = NULL;
    unref_unlock(m);
}

/* Stop the thread (from the FanOut, once).  The GIL is not held. */
static void
multi_stop(cl_multi *m)
{
    pthread_mutex_lock(&m->mu);
    m->quit = 1;
    int join = m->started;
    m->started = 0;
    pthread_mutex_unlock(&m->mu);
    curl_multi_wakeup(m->multi);
    if (join)
        pthread_join(m->thread, NULL);
}

static cl_multi *
multi_new(int nslots, int concurrency)
{
    pthread_condattr_t ca;
    cl_multi *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->nslots = nslots;
    m->concurrency = concurrency;
    m->refs = 1;
    m->owner = getpid();
    m->slots = calloc((size_t)(nslots > 0 ? nslots : 1), sizeof *m->slots);
    m->ring = calloc((size_t)(nslots > 0 ? nslots : 1), sizeof *m->ring);
    if (m->slots == NULL || m->ring == NULL || (m->multi = curl_multi_init()) == NULL)
        goto fail_alloc;
    /* One connection cache for every listing; HTTP/2 streams share a
     * connection where the server offers it. */
    curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    if (pthread_mutex_init(&m->mu, NULL) != 0)
        goto fail_alloc;
    if (pthread_condattr_init(&ca) != 0) {
        pthread_mutex_destroy(&m->mu);
        goto fail_alloc;
    }
    int rc = 0;
#if !defined(__APPLE__)
    rc = pthread_condattr_setclock(&ca, CL_WAIT_CLOCK);
#endif
    if (rc == 0)
        rc = pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        pthread_mutex_destroy(&m->mu);
        goto fail_alloc;
    }
    m->running = 1;
    if (pthread_create(&m->thread, NULL, multi_main, m) != 0) {
        m->running = 0;
        multi_free(m);
        return NULL;
    }
    m->started = 1;
    return m;
fail_alloc:
    if (m->multi != NULL)
        curl_multi_cleanup(m->multi);
    free(m->slots);
    free(m->ring);
    free(m);
    return NULL;
}

/* ---- the Python face: _core.FanOut ---------------------------------------- */

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

static void
attach(cl_multi *m, cl_worker *w, int i)
{
    pthread_mutex_lock(&w->mu);
    w->driver = m;
    w->driver_slot = i;
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_lock(&m->mu);
    m->slots[i].w = w;
    m->refs++;
    pthread_mutex_unlock(&m->mu);
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
    f->m = multi_new((int)n, concurrency);
    if (f->m == NULL) {
        Py_DECREF(f);
        PyErr_SetString(PyExc_RuntimeError, "could not set up libcurl's multi handle or its thread");
        return NULL;
    }
    /* From here the fan-out owns the pagers: closing it closes them. */
    f->pagers = Py_NewRef(pagers);
    for (Py_ssize_t i = 0; i < n; i++)
        attach(f->m, cl_pager_worker(PyTuple_GET_ITEM(pagers, i)), (int)i);
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

/* Pop a listing whose job is done (its worker still attached and done),
 * or whose pager let go of the fan-out (closed meanwhile: reading it says
 * so); -1 if none.  m->mu held. */
static int
pop_ready(cl_multi *m)
{
    while (m->rlen > 0) {
        int i = m->ring[m->rhead];
        m->rhead = (m->rhead + 1) % m->nslots;
        m->rlen--;
        mslot *s = &m->slots[i];
        s->ready = 0;
        if (s->w == NULL)
            return i;
        pthread_mutex_lock(&s->w->mu);
        int done = s->w->state == CL_W_DONE;
        pthread_mutex_unlock(&s->w->mu);
        if (done)
            return i;
    }
    return -1;
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
        struct timespec ts;
        long long slice = end - now_us();
        if (slice > 50000)
            slice = 50000;
        clock_gettime(CL_WAIT_CLOCK, &ts);
        if (slice > 0) {
            ts.tv_nsec += (long)(slice % 1000000) * 1000L;
            ts.tv_sec += (time_t)(slice / 1000000) + ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
        }
        pthread_mutex_lock(&m->mu);
        i = pop_ready(m);
        if (i < 0 && slice > 0) {
            pthread_cond_timedwait(&m->cv, &m->mu, &ts);
            i = pop_ready(m);
        }
        pthread_mutex_unlock(&m->mu);
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
    if (f->m != NULL && f->m->owner == getpid()) {
        Py_BEGIN_ALLOW_THREADS
        multi_stop(f->m);
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
    if (f->m != NULL) {
        pthread_mutex_lock(&f->m->mu);
        active = f->m->active;
        max_active = f->m->max_active;
        pthread_mutex_unlock(&f->m->mu);
    }
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
    if (f->m != NULL && f->m->owner == getpid()) {
        pthread_mutex_lock(&f->m->mu);
        unref_unlock(f->m);      /* attached workers may keep it a while */
    }
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
cl_multi_register(PyObject *module, cl_state *st)
{
    (void)st;
    PyObject *tp = PyType_FromModuleAndSpec(module, &fanout_spec, NULL);
    if (tp == NULL)
        return -1;
    int rc = PyModule_AddType(module, (PyTypeObject *)tp);
    Py_DECREF(tp);
    return rc;
}
