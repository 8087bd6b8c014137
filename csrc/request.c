/* _core.request: one HTTP request through the engine's transport (the OAuth
 * token POST), and what it shares with the pager; see request.h. */
#include "request.h"
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

/* Largest timeout accepted, in seconds: its milliseconds fit a 32-bit long. */
#define CL_MAX_TIMEOUT 1000000.0

static int
check_seconds(const char *name, double v)
{
    if (isfinite(v) && v >= 0.001 && v <= CL_MAX_TIMEOUT)
        return 0;
    PyObject *got = PyFloat_FromDouble(v);
    if (got != NULL) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be a finite number of seconds from 0.001 to 1000000, not %R",
                     name, got);
        Py_DECREF(got);
    }
    return -1;
}

int
cl_http_opts_timing(cl_http_opts *o, double connect_timeout, double timeout,
                    long low_speed_limit, long low_speed_time)
{
    if (check_seconds("connect_timeout", connect_timeout) < 0
        || check_seconds("timeout", timeout) < 0)
        return -1;
    if (low_speed_limit < 1 || low_speed_time < 1) {
        PyErr_SetString(PyExc_ValueError, "low_speed_limit and low_speed_time must be >= 1");
        return -1;
    }
    o->connect_timeout_ms = (long)(connect_timeout * 1000.0);
    o->timeout_ms = (long)(timeout * 1000.0);
    o->low_speed_limit = low_speed_limit;
    o->low_speed_time = low_speed_time;
    return 0;
}

int
cl_http_opts_text(const cl_http_opts *o)
{
    if ((o->user_agent != NULL && strpbrk(o->user_agent, "\r\n") != NULL)
        || (o->proxy != NULL && strpbrk(o->proxy, "\r\n") != NULL)) {
        PyErr_SetString(PyExc_ValueError,
                        "user_agent and proxy must not contain line breaks");
        return -1;
    }
    return 0;
}

/* ---- the one-shot transfer ------------------------------------------------
 * It runs on a thread of its own so that the caller, waiting without the
 * GIL, can wake every 50 ms to run signal handlers (Ctrl-C) and cancel. */

typedef struct {
    cl_http http;
    const cl_request_spec *spec;
    volatile int cancel;
    int done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} cl_job;

static void *
job_main(void *arg)
{
    cl_job *j = arg;
    cl_request_perform(j->spec, &j->http);
    pthread_mutex_lock(&j->mu);
    j->done = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Wait up to `ms` for the transfer; 1 once it is over. */
static int
job_wait(cl_job *j, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->mu);
    while (!j->done)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) == ETIMEDOUT)
            break;
    int done = j->done;
    pthread_mutex_unlock(&j->mu);
    return done;
}

static int
job_init(cl_job *j)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return -1;
    int bad = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0
           || pthread_cond_init(&j->cv, &attr) != 0;
    pthread_condattr_destroy(&attr);
    if (bad)
        return -1;
    if (pthread_mutex_init(&j->mu, NULL) != 0) {
        pthread_cond_destroy(&j->cv);
        return -1;
    }
    return 0;
}

/* Run the job to its end; -1 with the exception of a signal handler set
 * when one raised (the transfer is then cancelled and joined). */
static int
job_run(cl_job *j)
{
    pthread_t thread;
    int rc = 0, started, done = 0;
    Py_BEGIN_ALLOW_THREADS
    started = pthread_create(&thread, NULL, job_main, j) == 0;
    Py_END_ALLOW_THREADS
    if (!started) {
        PyErr_SetString(PyExc_RuntimeError, "could not start the request thread");
        return -1;
    }
    while (!done) {
        Py_BEGIN_ALLOW_THREADS
        done = job_wait(j, 50);
        Py_END_ALLOW_THREADS
        if (!done && PyErr_CheckSignals() < 0) {
            __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
            cl_http_wakeup(&j->http);
            rc = -1;
            break;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    pthread_join(thread, NULL);
    Py_END_ALLOW_THREADS
    return rc;
}

static struct curl_slist *
header_list(PyObject *headers)
{
    struct curl_slist *list = NULL, *tmp;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(headers); i++) {
        PyObject *item = PyTuple_GET_ITEM(headers, i);
        const char *s = PyUnicode_Check(item) ? PyUnicode_AsUTF8(item) : NULL;
        if (s == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "headers must be a tuple of str");
            goto fail;
        }
        if (strpbrk(s, "\r\n") != NULL) {
            PyErr_SetString(PyExc_ValueError, "a header must not contain line breaks");
            goto fail;
        }
        if ((tmp = curl_slist_append(list, s)) == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        list = tmp;
    }
    return list;
fail:
    curl_slist_free_all(list);
    return NULL;
}

/* A copy of an optional string; 0, or -1 with MemoryError. */
static int
dup_opt(const char *from, const char **to)
{
    *to = NULL;
    if (from != NULL && (*to = strdup(from)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

int
cl_request_spec_parse(cl_request_spec *s, PyObject *args, PyObject *kwds, const char *fname)
{
    static char *kwlist[] = {
        "method", "url", "headers", "body", "connect_timeout", "timeout", "low_speed_limit",
        "low_speed_time", "max_body", "user_agent", "proxy", "ca_file", "ca_path", NULL,
    };
    const char *method, *post = NULL, *user_agent = "custlist";
    const char *proxy = NULL, *ca_file = NULL, *ca_path = NULL;
    PyObject *url, *headers = NULL;
    Py_ssize_t post_len = 0, max_body = 1024 * 1024;
    double connect_timeout = 10.0, timeout = 60.0;
    long low_speed_limit = 1, low_speed_time = 30;
    char format[64];
    memset(s, 0, sizeof *s);
    snprintf(format, sizeof format, "sU|O!z#$ddllnzzzz:%s", fname);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, format, kwlist, &method, &url, &PyTuple_Type,
                                     &headers, &post, &post_len, &connect_timeout, &timeout,
                                     &low_speed_limit, &low_speed_time, &max_body, &user_agent,
                                     &proxy, &ca_file, &ca_path))
        return -1;
    int is_post = strcmp(method, "POST") == 0;
    if (!is_post && strcmp(method, "GET") != 0) {
        PyErr_SetString(PyExc_ValueError, "method must be 'GET' or 'POST'");
        return -1;
    }
    if (is_post != (post != NULL)) {
        PyErr_SetString(PyExc_ValueError, "a POST has a body and a GET has none");
        return -1;
    }
    if (max_body < 1) {
        PyErr_SetString(PyExc_ValueError, "max_body must be >= 1");
        return -1;
    }
    cl_http_opts o = {.max_body = (size_t)max_body, .user_agent = user_agent, .proxy = proxy,
                      .ca_file = ca_file, .ca_path = ca_path};
    if (cl_http_opts_timing(&o, connect_timeout, timeout, low_speed_limit, low_speed_time) < 0
        || cl_http_opts_text(&o) < 0)
        return -1;
    const char *u = PyUnicode_AsUTF8(url);
    if (u == NULL)
        return -1;
    if (headers != NULL && (s->headers = header_list(headers)) == NULL && PyErr_Occurred())
        return -1;
    s->opts = o;
    s->opts.user_agent = s->opts.proxy = s->opts.ca_file = s->opts.ca_path = NULL;
    if ((s->url = strdup(u)) == NULL
        || (post != NULL && (s->post = malloc((size_t)post_len + 1)) == NULL)) {
        PyErr_NoMemory();
        goto fail;
    }
    if (post != NULL) {
        memcpy(s->post, post, (size_t)post_len);
        s->post[post_len] = '\0';
        s->post_len = (size_t)post_len;
    }
    if (dup_opt(user_agent, &s->opts.user_agent) < 0 || dup_opt(proxy, &s->opts.proxy) < 0
        || dup_opt(ca_file, &s->opts.ca_file) < 0 || dup_opt(ca_path, &s->opts.ca_path) < 0)
        goto fail;
    return 0;
fail:
    cl_request_spec_free(s);
    return -1;
}

/* request(method, url, headers=(), body=None, *, ...) -> (status, headers, body) */
static PyObject *
request(PyObject *module, PyObject *args, PyObject *kwds)
{
    cl_state *st = PyModule_GetState(module);
    PyObject *url = NULL, *res = NULL;
    cl_request_spec spec;
    cl_job j;
    int job_ready = 0;
    memset(&j, 0, sizeof j);
    if (cl_request_spec_parse(&spec, args, kwds, "request") < 0)
        return NULL;
    if (job_init(&j) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "could not set up the request");
        goto fail;
    }
    job_ready = 1;
    if (cl_request_init(&spec, &j.http, &j.cancel) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "could not set up libcurl");
        goto fail;
    }
    j.spec = &spec;
    if (job_run(&j) < 0)
        goto fail;
    if (j.http.code != CURLE_OK) {
        if ((url = PyUnicode_FromString(spec.url)) != NULL)
            cl_raise_transport(st, &j.http, url, spec.post != NULL ? "POST" : "GET", 1);
        goto fail;
    }
    res = Py_BuildValue("ly#y#", j.http.status,
                        j.http.headers.data ? j.http.headers.data : "",
                        (Py_ssize_t)j.http.headers.len,
                        j.http.body.data ? j.http.body.data : "", (Py_ssize_t)j.http.body.len);
fail:
    cl_http_cleanup(&j.http);
    if (job_ready) {
        pthread_cond_destroy(&j.cv);
        pthread_mutex_destroy(&j.mu);
    }
    cl_request_spec_free(&spec);
    Py_XDECREF(url);
    return res;
}

static PyMethodDef request_methods[] = {
    {"request", (PyCFunction)(void (*)(void))request, METH_VARARGS | METH_KEYWORDS,
     "request(method, url, headers=(), body=None, *, connect_timeout, timeout, low_speed_limit,\n"
     "        low_speed_time, max_body, user_agent, proxy, ca_file, ca_path)\n"
     "-> (status, raw header bytes, body bytes)\n\n"
     "One request through the engine's transport: no redirects, timeouts and the stall\n"
     "guard, a body limit, an explicit proxy and CA, TLS always verified."},
    {NULL, NULL, 0, NULL},
};

int
cl_request_register(PyObject *module)
{
    return PyModule_AddFunctions(module, request_methods);
}
