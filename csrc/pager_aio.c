/* The Pager's asyncio support: what custlist._aio calls to drive a pager
 * from an event loop without blocking it (the methods _async_fd, _poll,
 * _load and _renew of custlist._core.Pager, whose table is in pager.c).
 * The paging itself stays pager.c's: this file only says what the loop
 * does next and calls into pager.c (pager.h) to queue or decode a page. */
#include "pager.h"
#include <fcntl.h>
#include <stdint.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif
#include <unistd.h>

/* ---- asyncio --------------------------------------------------------------
 * custlist._aio drives the same pager from an event loop without ever
 * blocking it: _poll() says what the loop does next, and queues the next
 * request when told to; the loop watches _async_fd() (written by the worker
 * as a job finishes) in between; credentials are fetched off the loop, and
 * every call that may ask for them (_poll(True), _load(), _renew()) comes
 * after the loop has them in hand. */

enum { CL_POLL_READY, CL_POLL_WAIT, CL_POLL_AUTH, CL_POLL_SEND, CL_POLL_LOADED,
       CL_POLL_DECODE };

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
    }
    return PyLong_FromLong(p->async_fd);
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
 *   prefetch, or the last page max_pages allows): no credentials asked. */
PyObject *
cl_pager_poll(cl_pager *p, PyObject *args)
{
    int send = 0;
    if (!PyArg_ParseTuple(args, "|p:_poll", &send))
        return NULL;
    if (cl_pager_unchain(p) < 0)   /* the loop sends every request */
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
        int rc = cl_pager_submit(p, p->next_url, 0);
        if (rc < 0)
            p->closed = 1;      /* as next() when it cannot send */
        cl_pager_leave(p);
        if (rc < 0)
            return NULL;
    }
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
 * empty one: the loop polls for that one too. */
PyObject *
cl_pager_load(cl_pager *p, PyObject *Py_UNUSED(ignored))
{
    if (p->closed || p->done || (p->items != NULL && p->pos < p->win_end))
        Py_RETURN_NONE;
    if (cl_pager_enter(p) < 0)
        return NULL;
    int rc = cl_pager_load_page(p);
    if (rc < 0)
        p->closed = 1;
    cl_pager_leave(p);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* After a 401 and credentials renewed: the same request again, once (the
 * refused attempt logged first, as next() does). */
PyObject *
cl_pager_renew(cl_pager *p, PyObject *Py_UNUSED(ignored))
{
    if (p->closed || !p->in_flight || cl_worker_wait(&p->worker, 0) != 1)
        Py_RETURN_NONE;
    if (cl_pager_enter(p) < 0)
        return NULL;
    int rc = cl_pager_log_attempts(p, p->next_url);
    if (rc == 0) {
        cl_worker_reset(&p->worker);
        p->in_flight = 0;
        rc = cl_pager_submit(p, p->next_url, 0);
    }
    if (rc < 0)
        p->closed = 1;          /* as next() when it cannot send again */
    cl_pager_leave(p);
    if (rc < 0)
        return NULL;
    p->auth_renewed = 1;
    Py_RETURN_NONE;
}
