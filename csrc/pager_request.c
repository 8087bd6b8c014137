/* The pager's requests: the URLs it asks for (resolved, held to the
 * client's origin, sized), their headers and credentials, sending them to
 * the fetch thread and collecting the response, the log of each attempt,
 * and the exceptions for a transfer that failed or a status that is not
 * 2xx.  Below the paging logic (pager_plan.c, pager_page.c): it decides
 * nothing about positions. */
#include "pager.h"
#include "errors.h"
#include "token.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CL_MSG_CAP 200            /* characters of a server's URL in a message */

/* ---- URLs ----------------------------------------------------------------- */

/* URLs are resolved, held to the origin and encoded by position.c's
 * functions, which the fetch thread uses too: both build the same URL. */
#define resolve_url cl_pos_resolve
#define same_origin cl_pos_same_origin
#define origin_free cl_pos_origin_free

/* An absolute, same-origin URL for `href`; raises UnsafeURLError otherwise.
 * Credentials are sent only to the configured origin. */
PyObject *
cl_pager_checked_url(cl_pager *p, PyObject *base, PyObject *href)
{
    const char *b = base ? PyUnicode_AsUTF8(base) : NULL;
    const char *h = PyUnicode_AsUTF8(href);
    cl_origin o;
    if (h == NULL || (base != NULL && b == NULL))
        return NULL;
    char *full = cl_pos_resolve_plain(&p->origin, b, h);
    if (full != NULL) {                /* as libcurl would give it, on the origin */
        PyObject *res = PyUnicode_FromString(full);
        free(full);
        return res;
    }
    full = resolve_url(b, h, &o);
    /* A server's href is shown capped: messages stay readable (and small)
     * whatever the server sends. */
    const char *more = PyUnicode_GET_LENGTH(href) > CL_MSG_CAP ? "... (truncated)" : "";
    if (full == NULL)
        return cl_raise(p->st->UnsafeURLError, "not a valid URL: %.200R%s", href, more);
    PyObject *res = NULL;
    if (!same_origin(&o, &p->origin))
        cl_raise(p->st->UnsafeURLError,
                 "refusing to follow %.20s://%.200s:%.10s%s: it is not the client's origin "
                 "%s://%s:%s", o.scheme, o.host, o.port, strlen(o.host) > CL_MSG_CAP ? "..." : "",
                 p->origin.scheme, p->origin.host, p->origin.port);
    else
        res = PyUnicode_FromString(full);
    curl_free(full);
    origin_free(&o);
    return res;
}

/* base_url + ("?" or "&") + param=percent-encoded cursor, checked against
 * the origin like every URL the pager requests. */
PyObject *
cl_pager_cursor_url(cl_pager *p, PyObject *cursor)
{
    Py_ssize_t n;
    const char *c = PyUnicode_AsUTF8AndSize(cursor, &n);
    if (c == NULL)
        return NULL;
    char *enc = cl_pos_encode(c, (size_t)n);
    if (enc == NULL)
        return PyErr_NoMemory();
    const char *base = PyUnicode_AsUTF8(p->base_url);
    PyObject *url = base == NULL ? NULL
        : PyUnicode_FromFormat("%s%c%U=%s", base, strchr(base, '?') ? '&' : '?',
                               p->cursor_param, enc);
    free(enc);
    PyObject *res = url == NULL ? NULL : cl_pager_checked_url(p, NULL, url);
    Py_XDECREF(url);
    return res;
}

/* ---- requests ------------------------------------------------------------- */

/* The fetch side sends the next requests itself (chain.h): the pager's
 * own fetch thread, or the fan-out's thread that drives its worker
 * (multi.c). */
static int
chained(const cl_pager *p)
{
    return p->chain_on;
}

static struct curl_slist *
build_headers(cl_pager *p, int force_auth)
{
    struct curl_slist *list = NULL, *tmp;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(p->headers); i++) {
        const char *h = PyUnicode_AsUTF8(PyTuple_GET_ITEM(p->headers, i));
        if (h != NULL && strpbrk(h, "\r\n") != NULL) {
            PyErr_SetString(PyExc_ValueError, "a header must not contain line breaks");
            goto error;
        }
        if (h == NULL || (tmp = curl_slist_append(list, h)) == NULL)
            goto error;
        list = tmp;
    }
    if (p->auth != Py_None) {
        PyObject *v = PyObject_CallOneArg(p->auth, force_auth ? Py_True : Py_False);
        if (v == NULL)
            goto error;
        if (v != Py_None) {
            PyObject *line = PyUnicode_FromFormat("Authorization: %S", v);
            const char *s = line ? PyUnicode_AsUTF8(line) : NULL;
            if (s != NULL && strpbrk(s, "\r\n") != NULL) {   /* not echoed: a credential */
                PyErr_SetString(PyExc_ValueError,
                                "the Authorization value must not contain line breaks");
                s = NULL;
            }
            tmp = s ? curl_slist_append(list, s) : NULL;
            Py_XDECREF(line);
            if (tmp == NULL) {
                Py_DECREF(v);
                goto error;
            }
            list = tmp;
        }
        Py_DECREF(v);
    }
    return list;
error:
    if (!PyErr_Occurred())
        PyErr_NoMemory();
    curl_slist_free_all(list);
    return NULL;
}

/* The pager cannot fetch any more: closed (by another thread, while this
 * one waited), stopped at interpreter exit, or inherited through fork. */
int
cl_pager_raise_closed(cl_pager *p)
{
    if (p->worker_ready && cl_worker_foreign(&p->worker))
        cl_raise(p->st->ClosedError,
                 "this pager was created by process %d and this is process %d (a fork): "
                 "it cannot use its parent's connection; create a new pager here "
                 "(resume from the pager's cursor or next_href)",
                 (int)p->worker.owner, (int)getpid());
    else
        cl_raise(p->st->ClosedError,
                 "the pager was closed while a page was being fetched; "
                 "resume from its cursor or next_href with a new pager");
    return -1;
}

/* Drop what the fetch thread did ahead, waiting without the GIL for a
 * transfer under way to end; Ctrl-C and close() are noticed meanwhile.
 * For an event loop (nowait) it never waits: 1 while a transfer dropped
 * is still under way (its end is signalled like any job's). */
int
cl_pager_drop_ahead(cl_pager *p)
{
    if (p->nowait) {
        int done;
        Py_BEGIN_ALLOW_THREADS
        done = cl_chain_drop(&p->worker, 0);
        Py_END_ALLOW_THREADS
        if (!done && p->closed)
            return cl_pager_raise_closed(p);
        return done ? 0 : 1;
    }
    for (;;) {
        int done;
        Py_BEGIN_ALLOW_THREADS
        done = cl_chain_drop(&p->worker, 50);
        Py_END_ALLOW_THREADS
        if (done)
            return 0;
        if (p->closed)
            return cl_pager_raise_closed(p);
        if (PyErr_CheckSignals() < 0) {
            cl_worker_cancel(&p->worker);
            return -1;
        }
    }
}

/* The URL requested for `url`: with a page size managed here (cursor mode
 * under max_items, or resuming inside a page), the page size parameter is
 * added: never more than the records still wanted, never fewer than the
 * records of a resumed page already consumed plus one. */
PyObject *
cl_pager_sized_url(cl_pager *p, PyObject *url)
{
    Py_ssize_t want = p->page_size;
    p->asked_next = p->page_size;
    if (p->size_param == NULL)
        return Py_NewRef(url);
    /* max_items may be near the largest Py_ssize_t: the sum saturates */
    Py_ssize_t rest = p->budget > PY_SSIZE_T_MAX - p->pending_skip ? PY_SSIZE_T_MAX
                                                                   : p->budget + p->pending_skip;
    if (p->max_items >= 0 && (want < 0 || rest < want))
        want = rest;
    if (p->pending_skip > 0 && want <= p->pending_skip)
        want = p->pending_skip + 1;
    if (want < 1)
        return Py_NewRef(url);
    p->asked_next = want;
    const char *u = PyUnicode_AsUTF8(url);
    return u == NULL ? NULL : PyUnicode_FromFormat("%U%c%U=%zd", url, strchr(u, '?') ? '&' : '?',
                                                   p->size_param, want);
}

/* The fetch thread could not renew the token for the request the consumer
 * is about to send (chain.h): the failure it recorded is raised, as the
 * token request made here would have raised it. */
static int
raise_renewal(cl_pager *p)
{
    unsigned long long seq = p->took.fail_seq;
    p->took.fail_seq = 0;
    if (seq == 0 || p->token == NULL || !chained(p))
        return 0;
    PyObject *r = PyObject_CallMethod(p->auth, "_renew", "KK", p->took.auth_gen, seq);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

int
cl_pager_submit(cl_pager *p, PyObject *url, int force_auth)
{
    if (raise_renewal(p) < 0)
        return -1;
    struct curl_slist *headers = build_headers(p, force_auth);
    if (headers == NULL && PyErr_Occurred())
        return -1;
    /* read after the token: never newer than the one in the headers */
    if (p->token != NULL)
        p->auth_gen = cl_token_generation(p->token);
    PyObject *sized = cl_pager_sized_url(p, url);
    const char *u = sized ? PyUnicode_AsUTF8(sized) : NULL;
    char *copy = u ? strdup(u) : NULL;
    Py_XDECREF(sized);
    if (copy == NULL) {
        curl_slist_free_all(headers);
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return -1;
    }
    if (chained(p)) {
        /* the consumer sends this one: whatever the fetch thread did ahead
         * is not what the listing wants (or there is none) */
        PyObject *pos = cursor_like(p) ? p->next_cursor : url;
        Py_ssize_t n = 0;
        const char *key = pos != NULL ? PyUnicode_AsUTF8AndSize(pos, &n) : NULL;
        if (pos != NULL && key == NULL) {
            free(copy);
            curl_slist_free_all(headers);
            return -1;
        }
        int busy = cl_pager_drop_ahead(p);
        if (busy != 0) {
            /* an error, or (event loop) a transfer dropped not over yet:
             * this request goes once it is, from a later step */
            free(copy);
            curl_slist_free_all(headers);
            return busy < 0 ? -1 : 0;
        }
        Py_BEGIN_ALLOW_THREADS
        cl_chain_note(&p->worker, key, (size_t)n, (long long)p->pages, (long long)p->budget,
                      (long long)p->pending_skip, (long long)p->asked_next);
        if (p->token != NULL)
            cl_chain_note_auth(&p->worker, p->auth_gen, p->auth_renewed);
        Py_END_ALLOW_THREADS
    }
    if (cl_worker_submit(&p->worker, copy, headers) < 0) {
        /* a worker stopped at interpreter exit: as when stopped mid-wait */
        if (p->closed || cl_worker_foreign(&p->worker) || cl_worker_stopped(&p->worker))
            return cl_pager_raise_closed(p);
        PyErr_SetString(PyExc_RuntimeError,
                        "could not start the fetch thread, or it is stopping (interpreter exit)");
        return -1;
    }
    p->in_flight = 1;
    return 0;
}

/* Wait for the queued request without the GIL, waking every 50 ms so that
 * Ctrl-C (and any other signal handler) runs promptly, and a close() from
 * another thread is noticed. */
static int
wait_result(cl_pager *p)
{
    for (;;) {
        int done;
        Py_BEGIN_ALLOW_THREADS
        done = chained(p) ? cl_chain_take(&p->worker, &p->took, 50)
                           : cl_worker_wait(&p->worker, 50);
        Py_END_ALLOW_THREADS
        if (p->closed || done < 0)
            return cl_pager_raise_closed(p);
        if (done)
            break;
        if (PyErr_CheckSignals() < 0) {
            cl_worker_cancel(&p->worker);
            return -1;
        }
    }
    if (!chained(p))
        cl_result_collect(&p->took, &p->worker);
    p->in_flight = 0;
    return 0;
}

/* The response collected is read: without the chain, the worker is idle
 * again (with it, the fetch thread has moved on already). */
static void
release(cl_pager *p)
{
    if (!chained(p))
        cl_worker_reset(&p->worker);
}

static PyObject *
response_headers(cl_http *h)
{
    return PyBytes_FromStringAndSize(h->headers.data ? h->headers.data : "", (Py_ssize_t)h->headers.len);
}

/* The exception for a transfer that produced no response; its class comes
 * from the one CURLcode table (cl_http_failure).  libcurl's message is not
 * guaranteed UTF-8 (it may quote a server or a system error). */
static int
raise_transport(cl_pager *p, PyObject *url)
{
    cl_http *h = &p->took.http;
    if (cl_http_failure(h->code, h->too_large).kind == CL_FAIL_CANCELLED)
        return cl_pager_raise_closed(p);
    return cl_raise_transport(p->st, h, url, "GET", p->took.attempts);
}

static int
log_enabled(PyObject *logger, int level)
{
    PyObject *r = PyObject_CallMethod(logger, "isEnabledFor", "i", level);
    if (r == NULL)
        return -1;
    int on = PyObject_IsTrue(r);
    Py_DECREF(r);
    return on;
}

/* The attempts of the job just collected, to the "custlist" logger: each
 * request at DEBUG, each retry (and a give-up on a too long Retry-After) at
 * WARNING.  The worker recorded them without the GIL; nothing is formatted
 * unless the logger wants the level.  Never a header, never a query.
 * WARNING is asked about only when an attempt has something to warn of,
 * and the URL is formatted only when a line is written: on the usual page
 * (one attempt, no retry, DEBUG off) this is one isEnabledFor call. */
static int
log_attempts(cl_pager *p, PyObject *url)
{
    cl_result *w = &p->took;
    int max_retries = p->worker.retry.max_retries;
    PyObject *lg = p->st->logger, *where = NULL, *r = NULL;
    if (w->attempts < 1)
        return 0;
    int first = w->attempts > CL_MAX_ATTEMPT_LOG ? w->attempts - CL_MAX_ATTEMPT_LOG + 1 : 1;
    int to_warn = 0;
    for (int k = first; k <= w->attempts; k++) {
        const cl_attempt *a = &w->log[(k - 1) % CL_MAX_ATTEMPT_LOG];
        to_warn |= a->delay_ms >= 0 || a->retry_after_too_long;
    }
    int debug = log_enabled(lg, 10), warn = !to_warn || debug < 0 ? 0 : log_enabled(lg, 30);
    if (debug < 0 || warn < 0)
        return -1;
    if (!debug && !warn)
        return 0;
    if ((where = cl_public_url(url)) == NULL)
        return -1;
    for (int k = first; k <= w->attempts; k++) {
        const cl_attempt *a = &w->log[(k - 1) % CL_MAX_ATTEMPT_LOG];
        char outcome[64];
        if (a->code == CURLE_OK)
            snprintf(outcome, sizeof outcome, "HTTP %ld", a->status);
        else
            snprintf(outcome, sizeof outcome, "%s", curl_easy_strerror(a->code));
        if (debug) {
            r = PyObject_CallMethod(lg, "debug", "sOsnfi",
                                    "GET %s -> %s, %d bytes, %.1f ms, attempt %d", where,
                                    outcome, (Py_ssize_t)a->bytes, a->ms, k);
            if (r == NULL)
                goto fail;
            Py_CLEAR(r);
        }
        if (warn && a->delay_ms >= 0)
            r = PyObject_CallMethod(lg, "warning", "sOsfii",
                                    "GET %s failed (%s): retry in %.3f s (attempt %d of %d)",
                                    where, outcome, (double)a->delay_ms / 1000.0, k + 1,
                                    max_retries + 1);
        else if (warn && a->retry_after_too_long)
            r = PyObject_CallMethod(lg, "warning", "sOsf",
                                    "GET %s failed (%s): Retry-After %.0f s is over "
                                    "retry_after_max, giving up", where, outcome,
                                    (double)w->http.retry_after_ms / 1000.0);
        else
            continue;
        if (r == NULL)
            goto fail;
        Py_CLEAR(r);
    }
    Py_DECREF(where);
    return 0;
fail:
    Py_DECREF(where);
    return -1;
}

static int
raise_status(cl_pager *p, PyObject *url)
{
    cl_http *h = &p->took.http;
    PyObject *exc = PyObject_CallFunction(p->error_factory, "lNy#Oi", h->status,
                                          response_headers(h), p->body.data,
                                          (Py_ssize_t)p->body.len, url, p->took.attempts);
    if (exc == NULL)
        return -1;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return -1;
}

static void
swap_body(cl_pager *p)
{
    cl_buf tmp = p->body;
    p->body = p->took.http.body;
    p->took.http.body = tmp;
    p->shape = p->took.http.shape;
}

/* Collect the response for p->next_url: renew credentials once on a 401,
 * map failures to exceptions.  On success the body is in p->body. */
int
cl_pager_fetch(cl_pager *p)
{
    if (!p->in_flight && cl_pager_submit(p, p->next_url, 0) < 0)
        return -1;
    if (wait_result(p) < 0 || log_attempts(p, p->next_url) < 0)
        return -1;
    cl_http *h = &p->took.http;
    int renewed = p->auth_renewed || p->took.auth_resent;
    p->auth_renewed = 0;
    int refused = h->code == CURLE_OK && h->status == 401 && p->auth != Py_None && !renewed;
    if (refused || p->took.auth_failed) {
        /* With a token cell, the token refused is known by its generation:
         * renewed unless another listing of the client renewed it since.
         * A request the fetch thread could not send for want of a token
         * raises the failure of the renewal it made (recorded in the cell),
         * or, when it made none, is renewed and sent from here. */
        unsigned long long gen = chained(p) ? p->took.auth_gen : p->auth_gen;
        unsigned long long failed = p->took.fail_seq;
        p->took.fail_seq = 0;
        release(p);
        if (p->token != NULL) {
            PyObject *r = PyObject_CallMethod(p->auth, "_renew", "KK", gen, failed);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
        }
        p->auth_renewed = 1;
        int sent = cl_pager_submit(p, p->next_url, p->token == NULL);
        p->auth_renewed = 0;
        if (sent < 0 || wait_result(p) < 0 || log_attempts(p, p->next_url) < 0)
            return -1;
    }
    swap_body(p);
    int rc = 0;
    if (h->code != CURLE_OK)
        rc = raise_transport(p, p->next_url);
    else if (h->status < 200 || h->status >= 300)
        rc = raise_status(p, p->next_url);
    release(p);
    return rc;
}

int
cl_pager_log_attempts(cl_pager *p, PyObject *url)
{
    if (!chained(p))               /* the response is the worker's still */
        cl_result_collect(&p->took, &p->worker);
    return log_attempts(p, url);
}
