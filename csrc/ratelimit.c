/* The shared rate limiter; see ratelimit.h. */
#include "ratelimit.h"
#include "pager.h"
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A server's unix-time reset is told apart from a delay in seconds. */
#define CL_EPOCH_THRESHOLD 1000000000.0
/* The server's window, when it gives requests left but no reset. */
#define CL_DEFAULT_WINDOW_US 1000000LL
/* The slowest rate a limiter takes: one request in the longest `per` (1e6
 * seconds).  Every wait it computes is then at most 1e12 microseconds. */
#define CL_MIN_RATE 1e-6
/* Any wait, in microseconds, is cut to this (about 11.6 days) before it
 * becomes an integer: far from overflow in every sum made with it. */
#define CL_MAX_WAIT_US 1e12

/* Seconds (or microseconds already) as whole microseconds, saturated at
 * CL_MAX_WAIT_US: huge, infinite or NaN inputs never overflow a long long. */
static long long
saturated_us(double us)
{
    if (!(us > 0))
        return 0;
    return us >= CL_MAX_WAIT_US ? (long long)CL_MAX_WAIT_US : (long long)ceil(us);
}

struct cl_limiter {
    pthread_mutex_t mu;
    int refs;
    /* the user's token bucket: rate tokens a second, at most burst (1) */
    double rate, burst, tokens;
    long long refill_us;
    /* the server's word */
    long long max_pause_us;        /* cap of any pause it asks for */
    long long paused_until_us;     /* Retry-After of a 429 */
    int have_budget;               /* requests left in its window are known ... */
    long long budget;              /* ... this many, less the ones sent since */
    long long window_end_us;
    long long outstanding;         /* let go, outcome not fed yet */
    /* counters, for stats() */
    long long granted, throttled, waits;
};

static long long
now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

long long
cl_limiter_reserve(cl_limiter *l)
{
    pthread_mutex_lock(&l->mu);
    long long now = now_us(), wait = 0;
    if (l->paused_until_us > now)
        wait = l->paused_until_us - now;
    if (l->have_budget && now >= l->window_end_us)
        l->have_budget = 0;                    /* a new window: nothing known */
    if (l->have_budget && l->budget <= 0 && l->window_end_us - now > wait)
        wait = l->window_end_us - now;
    if (l->rate > 0) {
        l->tokens += (double)(now - l->refill_us) * l->rate / 1e6;
        if (l->tokens > l->burst)
            l->tokens = l->burst;
        l->refill_us = now;
        if (l->tokens < 1.0) {
            long long need = saturated_us((1.0 - l->tokens) / l->rate * 1e6);
            if (need > wait)
                wait = need;
        }
    }
    if (wait > 0) {
        l->waits++;
        pthread_mutex_unlock(&l->mu);
        return wait < 1000 ? 1000 : wait;
    }
    if (l->rate > 0)
        l->tokens -= 1.0;
    if (l->have_budget)
        l->budget--;
    l->outstanding++;
    l->granted++;
    pthread_mutex_unlock(&l->mu);
    return 0;
}

/* A header's value, if `line` (n bytes, no terminator) is that header. */
static int
header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0)
        return 0;
    const char *v = line + k + 1;
    size_t m = n - k - 1;
    while (m > 0 && (*v == ' ' || *v == '\t'))
        v++, m--;
    while (m > 0 && (v[m - 1] == '\r' || v[m - 1] == '\n' || v[m - 1] == ' ' || v[m - 1] == '\t'))
        m--;
    if (m == 0 || m >= cap)
        return 0;
    memcpy(out, v, m);
    out[m] = '\0';
    return 1;
}

/* A finite, non-negative number from a header value; -1 otherwise. */
static double
number(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    return end != s && *end == '\0' && isfinite(v) && v >= 0 ? v : -1;
}

/* Requests left and seconds to the reset, from the last response's header
 * lines (-1 when absent).  Both the X-RateLimit-* and the RateLimit-* names. */
static void
read_headers(const cl_http *h, double *remaining, double *reset)
{
    static const char *const rem_names[] = {"x-ratelimit-remaining", "ratelimit-remaining"};
    static const char *const reset_names[] = {"x-ratelimit-reset", "ratelimit-reset"};
    *remaining = *reset = -1;
    const char *p = h->headers.data, *end = p ? p + h->headers.len : NULL;
    char val[64];
    while (p != NULL && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((eol ? eol : end) - p);
        for (int i = 0; i < 2; i++) {
            if (header_value(p, n, rem_names[i], val, sizeof val))
                *remaining = number(val);
            if (header_value(p, n, reset_names[i], val, sizeof val)) {
                double r = number(val);
                if (r >= CL_EPOCH_THRESHOLD)       /* a unix time */
                    r = r - (double)time(NULL) > 0 ? r - (double)time(NULL) : 0;
                *reset = r;
            }
        }
        p = eol ? eol + 1 : end;
    }
}

void
cl_limiter_feed(cl_limiter *l, const cl_http *h, CURLcode code)
{
    double remaining = -1, reset = -1;
    if (code == CURLE_OK)
        read_headers(h, &remaining, &reset);
    pthread_mutex_lock(&l->mu);
    long long now = now_us();
    if (l->outstanding > 0)
        l->outstanding--;
    if (code == CURLE_OK && h->status == 429)
        l->throttled++;
    /* Only the server's own word pauses everyone: a bare 429 is left to
     * the pager's backoff (and to the budget, if the headers gave one). */
    if (code == CURLE_OK && h->status == 429 && h->retry_after_ms >= 0) {
        long long pause = saturated_us((double)h->retry_after_ms * 1000.0);
        if (pause > l->max_pause_us)
            pause = l->max_pause_us;
        if (now + pause > l->paused_until_us)
            l->paused_until_us = now + pause;
    }
    if (remaining >= 0) {
        long long window = reset >= 0 ? saturated_us(reset * 1e6) : CL_DEFAULT_WINDOW_US;
        if (window > l->max_pause_us)
            window = l->max_pause_us;
        /* what is left, less what is already on its way to the server */
        long long left = (long long)(remaining < 1e15 ? remaining : 1e15) - l->outstanding;
        if (!l->have_budget || now >= l->window_end_us) {
            l->budget = left;                  /* a window we knew nothing of */
            l->window_end_us = now + window;
            l->have_budget = 1;
        }
        else if (left < l->budget)
            /* answers overtake each other on several connections: within a
             * window, the lowest count heard is the one to trust */
            l->budget = left;
    }
    pthread_mutex_unlock(&l->mu);
}

static cl_limiter *
limiter_ref(cl_limiter *l)
{
    pthread_mutex_lock(&l->mu);
    l->refs++;
    pthread_mutex_unlock(&l->mu);
    return l;
}

void
cl_limiter_unref(cl_limiter *l)
{
    pthread_mutex_lock(&l->mu);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (last) {
        pthread_mutex_destroy(&l->mu);
        free(l);
    }
}

/* ---- the Python face: _core.RateLimiter ----------------------------------- */

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
    l->refill_us = now_us();
    l->max_pause_us = saturated_us(max_pause * 1e6);
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
        w->limiter = limiter_ref(self->l);
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
    long long now = now_us();
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
