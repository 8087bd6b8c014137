/* The Pager's asyncio support: what custlist._aio calls to drive a pager
 * from an event loop without blocking it (the methods _async_fd, _poll,
 * _load and _renew of custlist._core.Pager, whose table is in pager.c).
 * The paging itself stays pager.c's: this file only says what the loop
 * does next and calls into pager.c (pager.h) to queue or decode a page. */
#include "pager.h"
#include "token.h"
#include <fcntl.h>
#include <stdint.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif
#include <unistd.h>

/* ---- asyncio --------------------------------------------------------------
 * custlist._aio drives the same pager from an event loop without ever
 * blocking it: _poll() says what the loop does next, and queues the next
 * request when told to; the loop watches _async_fd() (written by the fetch
 * thread as each job ends) in between; credentials are fetched off the
 * loop, and every call that may ask for them (_poll(True), _load(),
 * _renew()) comes after the loop has them in hand.
 *
 * With the fetch thread's chain (chain.h) the loop sends the first request
 * only (and one the thread could not send: no usable token, a page the
 * consumer read otherwise, a 401): the thread sends each next request as a
 * page arrives, and the loop takes the finished pages in order, each as
 * soon as it is in (a look under the worker's mutex, never held across a
 * transfer), with the checks of next() (pager_page.c) as in for.  What the
 * thread did ahead that the consumer does not want is dropped without
 * waiting for a transfer under way: the request wanted goes once it ends. */

enum { CL_POLL_READY, CL_POLL_WAIT, CL_POLL_AUTH, CL_POLL_SEND, CL_POLL_LOADED,
       CL_POLL_DECODE, CL_POLL_REFUSED, CL_POLL_RESEND };

PyObject *
cl_pager_async_fd(cl_pager *p, PyObject *Py_UNUSED(ignored))
{
    if (p->async_fd < 0 && p->worker_ready && !cl_worker_foreign(&p->worker)) {
        int fds[2];
#ifdef __linux__
        fds[0] = fds[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fds[0] < 0)
            return PyErr_SetFromErrno(PyExc_OSError);
#else
        if (pipe(fds) < 0)
            return PyErr_SetFromErrno(PyExc_OSError);
        for (int i = 0; i < 2; i++) {
            if (fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK) < 0
                || fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0) {
                PyErr_SetFromErrno(PyExc_OSError);
                close(fds[0]);
                close(fds[1]);
                return NULL;
            }
        }
#endif
        p->async_fd = fds[0];
        p->async_wfd = fds[1];
        cl_worker_notify(&p->worker, fds[1]);
        if (p->chain_on) {
            /* a page the chain set aside before the fd was watched wrote
             * nothing: readable at once, the loop looks again */
            uint64_t one = 1;
            ssize_t rc = write(fds[1], &one, sizeof one);
            (void)rc;
        }
    }
    return PyLong_FromLong(p->async_fd);
}

/* The first finished response the chain holds, looked at without taking
 * it: 1 with its outcome, 0 while none is in, -1 once the worker stops. */
typedef struct {
    CURLcode code;
    long status;
    int has_next;                  /* the thread sent (or parked) the request after it */
    unsigned long long gen;        /* the token generation it was sent with */
} cl_peek;

static int
chain_peek(cl_pager *p, cl_peek *o)
{
    cl_worker *w = &p->worker;
    int res;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&w->mu);
    cl_chain *c = w->chain;
    res = w->quit ? -1 : c->count > 0 ? 1 : 0;
    if (res == 1) {
        const cl_result *r = &c->ring[c->head];
        o->code = r->http.code;
        o->status = r->http.status;
        o->has_next = r->next != NULL;
        o->gen = r->auth_gen;
    }
    pthread_mutex_unlock(&w->mu);
    Py_END_ALLOW_THREADS
    return res;
}

/* _poll() on the chain, with a request out: what the loop does next. */
static PyObject *
poll_chain(cl_pager *p)
{
    cl_peek o;
    int got = chain_peek(p, &o);
    if (got < 0)
        return PyLong_FromLong(CL_POLL_READY);      /* stopping: next() says so */
    if (got == 0)
        return PyLong_FromLong(CL_POLL_WAIT);
    if (o.code == CURLE_OK && o.status == 401 && p->auth != Py_None && !p->auth_renewed) {
        if (p->token == NULL)
            return PyLong_FromLong(CL_POLL_AUTH);
        /* the client's token refused, or one renewed since it was sent */
        return PyLong_FromLong(cl_token_generation(p->token) == o.gen ? CL_POLL_REFUSED
                                                                      : CL_POLL_RESEND);
    }
    /* the request after it is out already (the usual case): reading the
     * page asks for no credentials unless the consumer sends another */
    if (o.code != CURLE_OK || o.status < 200 || o.status >= 300 || o.has_next
        || (p->max_pages > 0 && p->pages + 1 >= p->max_pages))
        return PyLong_FromLong(CL_POLL_DECODE);
    return PyLong_FromLong(CL_POLL_LOADED);
}

/* _poll(send=False):
 * 0 READY: next() touches neither the network nor the credentials (a record
 *   is in hand, or the end, or an error is due: max_pages reached included);
 * 1 WAIT: the request is on its way: wait for the fd;
 * 2 RENEW: the server answered 401: renew the credentials, then _renew();
 * 3 SEND: a request must be queued: with credentials in hand, _poll(True)
 *   queues it (and answers as above);
 * 4 LOADED: the response is in: _load() decodes it and may queue the
 *   request after it (credentials asked for); then _poll() again;
 * 5 DECODE: the same, but _load() queues nothing (an error status, no
 *   prefetch, the last page max_pages allows, or the fetch thread sent the
 *   request after it): no credentials asked, bar the token in hand;
 * 6 REFUSED: a 401 to the client's current token (ClientCredentials):
 *   have a newer one, then _renew();
 * 7 RESEND: a 401 to a token renewed since: have a usable one, then
 *   _renew(). */
PyObject *
cl_pager_poll(cl_pager *p, PyObject *args)
{
    int send = 0;
    if (!PyArg_ParseTuple(args, "|p:_poll", &send))
        return NULL;
    if (p->closed || p->done || !p->worker_ready || (p->items != NULL && p->pos < p->win_end))
        return PyLong_FromLong(CL_POLL_READY);
    if (!p->in_flight) {
        /* the same limit as load_envelope's: never one request past it */
        if (p->max_pages > 0 && p->pages >= p->max_pages)
            return PyLong_FromLong(CL_POLL_READY);
        if (!send)
            return PyLong_FromLong(CL_POLL_SEND);
        if (cl_pager_enter(p) < 0)
            return NULL;
        p->nowait = 1;
        int rc = cl_pager_submit(p, p->next_url, 0);
        p->nowait = 0;
        if (rc < 0)
            p->closed = 1;      /* as next() when it cannot send */
        cl_pager_leave(p);
        if (rc < 0)
            return NULL;
        if (p->closed)
            return PyLong_FromLong(CL_POLL_READY);
        if (!p->in_flight)      /* a transfer dropped is not over: sent once it is */
            return PyLong_FromLong(CL_POLL_WAIT);
    }
    if (p->chain_on)
        return poll_chain(p);
    int done = cl_worker_wait(&p->worker, 0);
    if (done == 0)
        return PyLong_FromLong(CL_POLL_WAIT);
    if (done < 0)
        return PyLong_FromLong(CL_POLL_READY);
    cl_http *h = &p->worker.http;
    if (h->code == CURLE_OK && h->status == 401 && p->auth != Py_None && !p->auth_renewed)
        return PyLong_FromLong(CL_POLL_AUTH);
    if (h->code != CURLE_OK || h->status < 200 || h->status >= 300 || !p->prefetch
        || (p->max_pages > 0 && p->pages + 1 >= p->max_pages))
        return PyLong_FromLong(CL_POLL_DECODE);     /* as load_envelope decides */
    return PyLong_FromLong(CL_POLL_LOADED);
}

/* _load(), after LOADED or DECODE: decode the page whose response is in, handing out
 * nothing.  Unlike next(), it never goes on to wait for the page after an
 * empty one: the loop polls for that one too.  On the chain, only a page
 * that is in is taken (else nothing is done), and what the thread did
 * ahead is dropped without waiting. */
PyObject *
cl_pager_load(cl_pager *p, PyObject *Py_UNUSED(ignored))
{
    cl_peek o;
    if (p->closed || p->done || (p->items != NULL && p->pos < p->win_end))
        Py_RETURN_NONE;
    if (p->chain_on && p->worker_ready && (!p->in_flight || chain_peek(p, &o) == 0))
        Py_RETURN_NONE;
    if (cl_pager_enter(p) < 0)
        return NULL;
    p->nowait = 1;
    int rc = cl_pager_load_page(p);
    p->nowait = 0;
    if (rc < 0)
        p->closed = 1;
    cl_pager_leave(p);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The 401 the chain holds, taken (without waiting) and logged. */
static int
take_refused(cl_pager *p)
{
    cl_peek o;
    int took = 0;
    if (chain_peek(p, &o) != 1 || o.code != CURLE_OK || o.status != 401)
        return 0;
    Py_BEGIN_ALLOW_THREADS
    took = cl_chain_take(&p->worker, &p->took, 0);
    Py_END_ALLOW_THREADS
    if (took != 1)
        return 0;
    return cl_pager_log_attempts(p, p->next_url) < 0 ? -1 : 1;
}

/* After a 401 and credentials renewed: the same request again, once (the
 * refused attempt logged first, as next() does). */
PyObject *
cl_pager_renew(cl_pager *p, PyObject *Py_UNUSED(ignored))
{
    if (p->closed || !p->in_flight)
        Py_RETURN_NONE;
    if (!p->chain_on && cl_worker_wait(&p->worker, 0) != 1)
        Py_RETURN_NONE;
    if (cl_pager_enter(p) < 0)
        return NULL;
    int rc;
    if (p->chain_on)
        rc = take_refused(p);
    else {
        rc = cl_pager_log_attempts(p, p->next_url);
        if (rc == 0) {
            cl_worker_reset(&p->worker);
            rc = 1;
        }
    }
    if (rc == 1) {
        p->in_flight = 0;
        p->nowait = 1;
        rc = cl_pager_submit(p, p->next_url, 0);
        p->nowait = 0;
        if (rc == 0)
            p->auth_renewed = 1;
    }
    if (rc < 0)
        p->closed = 1;          /* as next() when it cannot send again */
    cl_pager_leave(p);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}
