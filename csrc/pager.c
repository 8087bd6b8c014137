/* The Pager: an iterator of records over a paged endpoint: cursor in the
 * body, next URL in the body (href) or in a Link header, offset/limit, or
 * page numbers.
 *
 * Each page is decoded in two passes over the receive buffer: the envelope
 * first (items are only located, not built), so the next request can be
 * queued on the worker thread at once; then the items, built into records
 * while the next page downloads without the GIL.  Where it can, the fetch
 * thread has sent that request already (chain.h): the pager then only
 * checks that it is the one it would send.
 *
 * The layout is in pager.h; the asyncio methods (_async_fd, _poll, _load,
 * _renew) are pager_aio.c's. */
#include "pager.h"
#include "request.h"
#include "worker.h"
#include "arrow.h"
#include "envelope.h"
#include "json.h"
#include "link.h"
#include "multi.h"
#include <float.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CL_DEFAULT_PAGE_VALUES 1000000

static const char *const mode_names[] = {"cursor", "href", "offset", "page", "link"};

#define CL_MAX_POSITION 999999999999999999LL   /* largest offset or page number */

#define CL_MSG_CAP 200            /* characters of a server's URL in a message */

static int
cursor_like(const cl_pager *p)
{
    return p->mode == MODE_CURSOR || p->mode == MODE_OFFSET || p->mode == MODE_PAGE;
}

/* ---- URLs ----------------------------------------------------------------- */

/* URLs are resolved, held to the origin and encoded by position.c's
 * functions, which the fetch thread uses too: both build the same URL. */
#define resolve_url cl_pos_resolve
#define same_origin cl_pos_same_origin
#define origin_free cl_pos_origin_free

/* An absolute, same-origin URL for `href`; raises UnsafeURLError otherwise.
 * Credentials are sent only to the configured origin. */
static PyObject *
checked_url(cl_pager *p, PyObject *base, PyObject *href)
{
    const char *b = base ? PyUnicode_AsUTF8(base) : NULL;
    const char *h = PyUnicode_AsUTF8(href);
    cl_origin o;
    if (h == NULL || (base != NULL && b == NULL))
        return NULL;
    char *full = resolve_url(b, h, &o);
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
static PyObject *
cursor_url(cl_pager *p, PyObject *cursor)
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
    PyObject *res = url == NULL ? NULL : checked_url(p, NULL, url);
    Py_XDECREF(url);
    return res;
}

/* ---- requests ------------------------------------------------------------- */

/* The fetch thread sends the next requests itself (chain.h): set up for
 * this pager, and not driven by a fan-out's thread (multi.c), whose
 * transfers end as without the chain. */
static int
chained(const cl_pager *p)
{
    return p->chain_on && p->worker.driver == NULL;
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
static int
raise_closed(cl_pager *p)
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
 * transfer under way to end; Ctrl-C and close() are noticed meanwhile. */
static int
drop_ahead(cl_pager *p)
{
    for (;;) {
        int done;
        Py_BEGIN_ALLOW_THREADS
        done = cl_chain_drop(&p->worker, 50);
        Py_END_ALLOW_THREADS
        if (done)
            return 0;
        if (p->closed)
            return raise_closed(p);
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
static PyObject *
sized_url(cl_pager *p, PyObject *url)
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

static int
submit(cl_pager *p, PyObject *url, int force_auth)
{
    struct curl_slist *headers = build_headers(p, force_auth);
    if (headers == NULL && PyErr_Occurred())
        return -1;
    PyObject *sized = sized_url(p, url);
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
        if (drop_ahead(p) < 0) {
            free(copy);
            curl_slist_free_all(headers);
            return -1;
        }
        Py_BEGIN_ALLOW_THREADS
        cl_chain_note(&p->worker, key, (size_t)n, (long long)p->pages, (long long)p->budget,
                      (long long)p->pending_skip, (long long)p->asked_next);
        Py_END_ALLOW_THREADS
    }
    if (cl_worker_submit(&p->worker, copy, headers) < 0) {
        /* a worker stopped at interpreter exit: as when stopped mid-wait */
        if (p->closed || cl_worker_foreign(&p->worker) || cl_worker_stopped(&p->worker))
            return raise_closed(p);
        PyErr_SetString(PyExc_RuntimeError,
                        "could not start the fetch thread, or it is stopping (interpreter exit)");
        return -1;
    }
    p->in_flight = 1;
    return 0;
}

/* Close for good and free the worker.  Called with the GIL by the thread
 * that owns the pager: the one inside enter()/leave(), or any thread when
 * none is (close, dealloc).  worker_ready drops before the GIL is released,
 * so no other thread reaches the worker while it is joined and freed. */
static void
pager_teardown(cl_pager *p)
{
    p->closed = 1;
    p->in_flight = 0;
    if (!p->worker_ready)
        return;
    p->worker_ready = 0;
    cl_registry_remove(&p->worker);
    int foreign = cl_worker_foreign(&p->worker);
    Py_BEGIN_ALLOW_THREADS
    cl_worker_destroy(&p->worker);
    Py_END_ALLOW_THREADS
    if (!foreign)                 /* in a fork's child it is abandoned with the worker */
        cl_chain_free(p->worker.chain);
    p->worker.chain = NULL;
    p->chain_on = 0;
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
            return raise_closed(p);
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
        return raise_closed(p);
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
static int
fetch(cl_pager *p)
{
    if (!p->in_flight && submit(p, p->next_url, 0) < 0)
        return -1;
    if (wait_result(p) < 0 || log_attempts(p, p->next_url) < 0)
        return -1;
    cl_http *h = &p->took.http;
    int renewed = p->auth_renewed;
    p->auth_renewed = 0;
    if (h->code == CURLE_OK && h->status == 401 && p->auth != Py_None && !renewed) {
        release(p);
        if (submit(p, p->next_url, 1) < 0 || wait_result(p) < 0
            || log_attempts(p, p->next_url) < 0)
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

/* ---- paging --------------------------------------------------------------- */

static void
clear_slots(cl_pager *p)
{
    for (int i = 0; i < P_NSLOTS; i++)
        Py_CLEAR(p->slots[i]);
}

/* The loop guard keeps a 128-bit fingerprint per position (position.c's
 * set, the kind the fetch thread keeps for its own requests), whatever
 * the position's length.  1 if `pos` was followed before, else remembers
 * it and returns 0. */
static int
seen_before(cl_pager *p, PyObject *pos)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(pos, &n);
    if (s == NULL)
        return -1;
    int c = cl_pos_set_add(&p->seen, s, (size_t)n);
    if (c < 0)
        PyErr_NoMemory();
    return c;
}

static int
not_seen(cl_pager *p, PyObject *pos)
{
    int c = seen_before(p, pos);
    if (c > 0)
        cl_raise(p->st->PagingLoopError,
                 "the server sent a page position it already sent: stopping to avoid a loop");
    return c == 0 ? 0 : -1;
}

static int
is_empty(PyObject *v)
{
    return v == NULL || v == Py_None || (PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) == 0);
}

/* How many items the current page holds (counted once, by brackets). */
static Py_ssize_t
page_count(cl_pager *p)
{
    PyObject *off = p->slots[P_ITEMS];
    if (p->counted >= 0)
        return p->counted;
    if (off == NULL || off == Py_None)
        p->counted = 0;
    else if (PyTuple_Check(off))
        p->counted = PyTuple_GET_SIZE(off);
    else if (PyLong_Check(off))
        p->counted = cl_count_items(p->st, p->body.data, p->body.len, PyLong_AsSsize_t(off),
                                    p->max_depth);
    else
        p->counted = 0;                 /* items decoded as something else: none */
    return p->counted;
}

/* Offset and page numbers always move on, so a server that ignores them
 * (and sends the same records again and again) is caught by content: the
 * items' bytes (or, decoded in one pass, the body) hashed twice over 64
 * bits, one key per page in the same set as the positions followed. */
static int
items_repeat(cl_pager *p)
{
    const char *s = p->body.data ? p->body.data : "", *e = s + p->body.len;
    PyObject *off = p->slots[P_ITEMS];
    if (off != NULL && PyLong_Check(off)) {
        cl_dec d;
        cl_dec_init(&d, p->st, p->body.data, p->body.len, p->max_depth);
        d.shape = &p->shape;
        d.p += PyLong_AsSsize_t(off);
        d.depth = 1;
        int rc = cl_skip_structure(&d);
        s = p->body.data + PyLong_AsSsize_t(off);
        e = d.p;
        cl_dec_free(&d);
        if (rc < 0)
            return -1;
    }
    uint64_t h1 = 14695981039346656037ULL, h2 = 0x9E3779B97F4A7C15ULL;
    for (const char *c = s; c < e; c++) {
        h1 = (h1 ^ (unsigned char)*c) * 1099511628211ULL;
        h2 = (h2 + (unsigned char)*c) * 0xBF58476D1CE4E5B9ULL;
        h2 ^= h2 >> 31;
    }
    char k[17] = {'I'};          /* the page's records: 'I' and their two hashes */
    memcpy(k + 1, &h1, 8);
    memcpy(k + 9, &h2, 8);
    int c = cl_pos_set_add(&p->seen, k, sizeof k);
    if (c < 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (c > 0)
        cl_raise(p->st->PagingLoopError,
                 "the server sent the same records for %s %U as for an earlier page: it "
                 "ignores the %U parameter; stopping to avoid a loop",
                 p->mode == MODE_OFFSET ? "offset" : "page", p->cur_cursor ? p->cur_cursor
                 : p->cursor_param, p->cursor_param);
    return c != 0 ? -1 : 0;
}

/* An int slot's value (total, total_pages): -1 when absent, LLONG_MAX when
 * beyond a long long. */
static long long
slot_int(PyObject *v)
{
    int overflow = 0;
    if (v == NULL || !PyLong_Check(v))
        return -1;
    long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
    return overflow > 0 ? LLONG_MAX : overflow < 0 ? -1 : n;
}

/* Offset and page modes: the next position is this page's plus its record
 * count (offset) or plus one (page).  The end: an empty page, has_more
 * false, the total (offset) or total_pages (page) reached, or a page
 * shorter than the records asked for. */
static int
plan_numbered(cl_pager *p, PyObject **url, PyObject **cursor)
{
    Py_ssize_t n = page_count(p);
    if (n < 0)
        return -1;
    long long at = p->mode == MODE_OFFSET ? 0 : p->first_page;
    if (p->cur_cursor != NULL) {        /* digits: checked at the start, made here after */
        const char *c = PyUnicode_AsUTF8(p->cur_cursor);
        if (c == NULL)
            return -1;
        at = strtoll(c, NULL, 10);
    }
    long long total = slot_int(p->slots[P_TOTAL]), pages = slot_int(p->slots[P_TOTAL_PAGES]);
    PyObject *more_slot = p->slots[P_HAS_MORE];
    int more = 0;   /* set on every path below; gcc 14 -O3 cannot see it */
    if (n == 0)
        more = 0;
    else if (!is_empty(more_slot) && (more = PyObject_IsTrue(more_slot)) < 0)
        return -1;
    else if (!is_empty(more_slot))
        ;
    else if (p->mode == MODE_PAGE && pages >= 0)
        more = at - p->first_page + 1 < pages;      /* pages read so far, from the first */
    else if (p->mode == MODE_OFFSET && total >= 0)
        more = at + n < total;
    else
        more = p->asked_cur < 1 || n >= p->asked_cur;
    if (!more)
        return 0;
    long long next = p->mode == MODE_OFFSET ? at + n : at + 1;
    if (next > CL_MAX_POSITION) {
        cl_raise(p->st->PagingError, "the next %U would be %lld: beyond what custlist follows",
                 p->cursor_param, next);
        return -1;
    }
    if (items_repeat(p) < 0 || (*cursor = PyUnicode_FromFormat("%lld", next)) == NULL)
        return -1;
    if ((*url = cursor_url(p, *cursor)) == NULL) {
        Py_CLEAR(*cursor);
        return -1;
    }
    return 0;
}

/* Link mode: the rel="next" target of the response's Link header, into the
 * next-href slot (NULL when there is none). */
static int
link_header_next(cl_pager *p)
{
    cl_http *h = &p->took.http;
    char *target = NULL;
    const char *why = NULL;
    int rc = cl_link_next(h->headers.data ? h->headers.data : "", h->headers.len, &target, &why);
    if (rc < 0) {
        PyObject *where = cl_public_url(p->cur_url);
        if (where != NULL)
            cl_raise(p->st->PagingError, "malformed Link header in the response from %.200U: %s",
                     where, why);
        Py_XDECREF(where);
        return -1;
    }
    Py_CLEAR(p->slots[P_NEXT]);
    if (rc > 0) {
        p->slots[P_NEXT] = PyUnicode_FromString(target);
        free(target);
        if (p->slots[P_NEXT] == NULL)
            return -1;
    }
    return 0;
}

/* MissingKeyError for the page's `slot` (its key is absent); the error
 * waits for the page's records and keeps the position after them. */
static int
missing_key(cl_pager *p, int slot, const char *why)
{
    PyObject *paths = cl_envelope_paths(p->page_schema, slot);
    if (paths == NULL)
        return -1;
    cl_envelope_missing(p->st, p->body.data, p->body.len, p->max_depth, paths, why);
    Py_DECREF(paths);
    p->keep_pending = slot != P_ITEMS;
    return -1;
}

/* From the envelope just decoded, work out the next request (or the end). */
static int
plan_next(cl_pager *p)
{
    PyObject *url = NULL, *cursor = NULL;
    if (p->mode == MODE_LINK && link_header_next(p) < 0)
        return -1;
    if (p->mode == MODE_OFFSET || p->mode == MODE_PAGE) {
        if (plan_numbered(p, &url, &cursor) < 0)
            return -1;
    }
    else if (p->mode == MODE_CURSOR) {
        PyObject *more = p->slots[P_HAS_MORE], *c = p->slots[P_CURSOR];
        int has_more = is_empty(more) ? !is_empty(c) : PyObject_IsTrue(more);
        if (has_more < 0)
            return -1;
        if (has_more && c == NULL)
            return missing_key(p, P_CURSOR, "; the page says there is more");
        if (has_more && is_empty(c)) {
            cl_raise(p->st->PagingError, "the page says there is more but gives no cursor");
            return -1;
        }
        if (has_more) {
            if (!PyUnicode_Check(c)) {
                cl_raise(p->st->PagingError, "the page cursor is not a string: %R", c);
                return -1;
            }
            if (not_seen(p, c) < 0 || (url = cursor_url(p, c)) == NULL)
                return -1;
            cursor = Py_NewRef(c);
        }
    }
    else if (!is_empty(p->slots[P_NEXT])) {
        PyObject *href = p->slots[P_NEXT];
        if (!PyUnicode_Check(href)) {
            cl_raise(p->st->PagingError, "the next-page link is not a string: %R", href);
            return -1;
        }
        if ((url = checked_url(p, p->cur_url, href)) == NULL || not_seen(p, url) < 0) {
            Py_XDECREF(url);
            return -1;
        }
    }
    Py_XSETREF(p->next_url, url);
    Py_XSETREF(p->next_cursor, cursor);
    p->done = url == NULL;
    return 0;
}

/* The records of the page just decoded (n of them) that are handed out:
 * after those a resumed checkpoint already consumed, and within max_items.
 * When max_items runs out with records left, nothing more is requested. */
static void
set_window(cl_pager *p, Py_ssize_t n)
{
    Py_ssize_t begin = p->pending_skip < n ? p->pending_skip : n, end = n;
    p->pending_skip = 0;
    if (p->max_items >= 0) {
        if (end - begin > p->budget)
            end = begin + p->budget;
        p->budget -= end - begin;
        if (p->budget == 0 && (end < n || !p->done)) {
            p->capped = 1;
            p->done = 1;
        }
    }
    p->page_len = n;
    p->win_begin = p->pos = begin;
    p->win_end = end;
}

/* The window of the page just decoded, when it must be known before its
 * items are built: for the size of the next request (max_items), to skip
 * into a resumed page, or when `need`ed (Arrow output).  Otherwise it is
 * set once the items are built. */
static int
count_window(cl_pager *p, int need)
{
    PyObject *off = p->slots[P_ITEMS];
    Py_ssize_t n;
    if (p->counted >= 0 || off == NULL || !PyLong_Check(off) || need || p->max_items >= 0
        || p->pending_skip > 0) {
        if ((n = page_count(p)) < 0)
            return -1;
    }
    else
        return 0;
    /* A resume point is inside its page, or at its end when every record of
     * it was handed out (the page that showed a paging error: its next
     * position is read afresh).  One past it was not taken from this
     * listing (or the page lost records since), and skipping on would drop
     * records unseen. */
    if (p->pending_skip > 0 && p->pending_skip > n) {
        cl_raise(p->st->PagingError, "the resume point says %zd records of this page were "
                 "handed out, but it has %zd: the checkpoint does not fit this listing",
                 p->pending_skip, n);
        return -1;
    }
    set_window(p, n);
    return 0;
}

/* A page that could not be decoded: resuming must fetch it again, not skip
 * it, and its window (records skipped, taken, handed out) is given back. */
static void
rewind_page(cl_pager *p)
{
    Py_XSETREF(p->next_url, Py_NewRef(p->cur_url));
    Py_XSETREF(p->next_cursor, Py_XNewRef(p->cur_cursor));
    p->done = 0;
    p->capped = 0;
    if (p->page_len >= 0) {
        p->pending_skip = p->win_begin;
        p->consumed -= p->pos - p->win_begin;
        if (p->max_items >= 0)
            p->budget += p->win_end - p->win_begin;
    }
    Py_CLEAR(p->items);
    p->page_len = -1;
    p->pos = p->win_begin = p->win_end = 0;
}

static int
is_json_type(const char *ct)
{
    for (; *ct != '\0'; ct++)
        if (strncasecmp(ct, "json", 4) == 0)
            return 1;
    return 0;
}

/* A DecodeError from a page also names the URL and the Content-Type (as
 * attributes url and content_type); when the response does not even claim to
 * be JSON (an HTML page from a proxy, say), the message says so. */
static void
explain_decode_error(cl_pager *p)
{
    PyObject *type, *value, *tb, *off = NULL, *msg = NULL, *exc = NULL, *ct = NULL;
    PyObject *where = NULL;
    if (!PyErr_ExceptionMatches(p->st->DecodeError))
        return;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (!is_json_type(p->content_type)) {
        /* the message names origin and path only, as other errors do */
        if ((where = cl_public_url(p->cur_url)) == NULL
            || (off = PyObject_GetAttrString(value, "offset")) == NULL
            || (msg = PyObject_GetAttrString(value, "message")) == NULL)
            goto done;
        exc = PyObject_CallFunction(p->st->DecodeError, "NO",
            PyUnicode_FromFormat("%S; the response from %.200U is %s%s, not JSON", msg, where,
                                 p->content_type[0] ? "" : "without a Content-Type",
                                 p->content_type),
            off);
        if (exc == NULL)
            goto done;
        Py_SETREF(value, exc);
    }
    ct = p->content_type[0] ? PyUnicode_FromString(p->content_type) : Py_NewRef(Py_None);
    if (ct == NULL || PyObject_SetAttrString(value, "url", p->cur_url) < 0
        || PyObject_SetAttrString(value, "content_type", ct) < 0)
        goto done;
done:
    PyErr_Clear();              /* a failure here keeps the original error */
    Py_XDECREF(where);
    Py_XDECREF(off);
    Py_XDECREF(msg);
    Py_XDECREF(ct);
    PyErr_Restore(type, value, tb);
}

static void
note_content_type(cl_pager *p)
{
    memcpy(p->content_type, p->took.content_type, sizeof p->content_type);
}

/* A paging error found in a page's envelope (a repeated cursor, "more" with
 * no cursor...) waits until the page's records are all delivered: nothing
 * received is dropped.  The resume point after it is that page itself with
 * every record skipped: resuming asks for it again and reads its next
 * position afresh (the same error if the server still says the same). */
static void
defer_paging_error(cl_pager *p)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    Py_XSETREF(p->pending, value);
    Py_CLEAR(p->next_url);
    Py_CLEAR(p->next_cursor);
    p->done = 1;
}

/* Raise the deferred paging error (once); the pager closes, not done.
 * Returns -1. */
static int
raise_pending(cl_pager *p)
{
    PyObject *exc = p->pending;
    p->pending = NULL;
    if (p->keep_pending) {    /* resume right after this page's records */
        Py_XSETREF(p->next_url, Py_XNewRef(p->cur_url));
        Py_XSETREF(p->next_cursor, Py_XNewRef(p->cur_cursor));
        p->pending_skip = p->win_end;
        Py_CLEAR(p->items);
        p->page_len = -1;
        p->pos = p->win_begin = p->win_end = 0;
        p->keep_pending = 0;
    }
    else {
        p->paging_failed = 1;
        p->fault_len = p->page_len;
    }
    p->done = 0;
    p->closed = 1;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return -1;
}

/* At the listing's natural end (not cut by max_items), when the records
 * of the whole listing are known (from its start, or from a checkpoint)
 * and the last page states a total: fewer records than that is an error,
 * raised once the page's records are delivered.  A cursor or next-link key
 * no page held is then named as the likely cause (a misspelt key). */
static int
check_total(cl_pager *p)
{
    long long total = slot_int(p->slots[P_TOTAL]);
    if (p->before < 0 || total < 0 || p->capped || p->next_url != NULL)
        return 0;
    if (p->page_len < 0 && count_window(p, 1) < 0)
        return -1;
    if (p->capped)
        return 0;
    Py_ssize_t received = p->before + p->consumed + (p->page_len - p->win_begin);
    if (received >= total)
        return 0;
    int slot = p->mode == MODE_CURSOR ? P_CURSOR : p->mode == MODE_HREF ? P_NEXT : -1;
    if (slot >= 0 && !p->position_seen) {
        char why[120];
        PyOS_snprintf(why, sizeof why, "; %zd of the %lld records the pages state have "
                      "arrived", received, total);
        missing_key(p, slot, why);
    }
    else
        cl_envelope_short(received, total, p->cur_url);
    p->keep_pending = 1;
    defer_paging_error(p);
    return 0;
}

/* Fetch the next page and decode its envelope with `envelope`, queueing
 * the request after it (unless max_items or max_pages is reached). */
static int
load_envelope(cl_pager *p, cl_schema *envelope, int need_count)
{
    if (p->max_pages > 0 && p->pages >= p->max_pages) {
        cl_raise(p->st->PagingError,
                 "max_pages=%zd reached and the listing has more pages: resume from the "
                 "pager's cursor or next_href", p->max_pages);
        return -1;
    }
    if (fetch(p) < 0)
        return -1;
    note_content_type(p);
    Py_XSETREF(p->cur_url, Py_NewRef(p->next_url));
    Py_XSETREF(p->cur_cursor, Py_XNewRef(p->next_cursor));
    clear_slots(p);
    Py_CLEAR(p->items);
    p->pos = p->win_begin = p->win_end = 0;
    p->page_len = -1;
    p->counted = -1;
    p->asked_cur = p->asked_next;
    if (cl_decode_page_shaped(envelope, p->item_schema, p->body.data, p->body.len, p->max_depth,
                              p->page_values, p->slots, &p->shape) < 0) {
        explain_decode_error(p);
        return -1;
    }
    if (p->slots[P_CURSOR] != NULL || p->slots[P_NEXT] != NULL)
        p->position_seen = 1;
    if (p->slots[P_ITEMS] == NULL) {     /* nothing to deliver: this page again on resume */
        missing_key(p, P_ITEMS, "");
        p->keep_pending = 0;
        rewind_page(p);
        return -1;
    }
    if (plan_next(p) < 0) {
        if (PyErr_ExceptionMatches(p->st->DecodeError)) {   /* counting the items */
            explain_decode_error(p);
            return -1;
        }
        /* offset and page modes: a loop means this page's records repeat an
         * earlier page's, so they are not delivered; any other paging error
         * waits until this page's records are */
        if ((p->mode == MODE_OFFSET || p->mode == MODE_PAGE)
            && PyErr_ExceptionMatches(p->st->PagingLoopError))
            return -1;
        defer_paging_error(p);
    }
    if (count_window(p, need_count) < 0 || (p->pending == NULL && check_total(p) < 0)) {
        explain_decode_error(p);
        Py_CLEAR(p->pending);
        p->keep_pending = 0;
        rewind_page(p);
        return -1;
    }
    int last_allowed = p->max_pages > 0 && p->pages + 1 >= p->max_pages;
    int want = p->prefetch && !p->done && !last_allowed;
    p->pages++;
    if (p->took.next != NULL) {
        /* the fetch thread sent a request after this page already: the
         * one wanted, or one to drop (submit() drops it) */
        int same = 0;
        if (want) {
            PyObject *sized = sized_url(p, p->next_url);
            const char *u = sized ? PyUnicode_AsUTF8(sized) : NULL;
            same = u != NULL && strcmp(u, p->took.next) == 0;
            Py_XDECREF(sized);
            if (u == NULL) {
                p->pages--;
                rewind_page(p);
                return -1;
            }
        }
        p->in_flight = same;
        if (!same && drop_ahead(p) < 0) {
            p->pages--;
            rewind_page(p);
            return -1;
        }
    }
    if (want && !p->in_flight && submit(p, p->next_url, 0) < 0) {
        p->pages--;
        rewind_page(p);      /* e.g. closed meanwhile: this page is not delivered */
        return -1;
    }
    return 0;
}

/* A page of n items just loaded: a run of empty pages that still say
 * "more" ends the listing (records and Arrow output alike). */
static int
check_empty_run(cl_pager *p, Py_ssize_t n)
{
    p->empty_run = n == 0 && !p->done ? p->empty_run + 1 : 0;
    if (p->empty_run > CL_MAX_EMPTY_RUN) {
        cl_raise(p->st->PagingError,
                 "more than %d pages in a row had no records but said there were more: "
                 "stopping", CL_MAX_EMPTY_RUN);
        return -1;
    }
    return 0;
}

/* Fetch and decode the next page into p->items. */
static int
load_page(cl_pager *p)
{
    if (load_envelope(p, p->page_schema, 0) < 0)
        return -1;
    PyObject *off = p->slots[P_ITEMS], *items;
    if (off != NULL && PyLong_Check(off))
        items = cl_decode_items(p->item_schema, p->body.data, p->body.len,
                                PyLong_AsSsize_t(off), p->max_depth, p->page_values);
    else    /* decoded in the same pass (no prefetch), or none */
        items = Py_NewRef(off != NULL ? off : Py_None);
    if (items != NULL && !PyTuple_Check(items))
        Py_SETREF(items, PyTuple_New(0));       /* absent or null: no items */
    if (items != NULL && p->page_len >= 0 && PyTuple_GET_SIZE(items) != p->page_len) {
        PyErr_SetString(PyExc_RuntimeError, "custlist: items counted and decoded differ");
        Py_CLEAR(items);
    }
    if (items == NULL) {
        explain_decode_error(p);
        Py_CLEAR(p->pending);
        rewind_page(p);
        return -1;
    }
    p->items = items;
    if (p->page_len < 0)
        set_window(p, PyTuple_GET_SIZE(items));
    return check_empty_run(p, PyTuple_GET_SIZE(items));
}

/* A thread that is about to fetch owns the pager until leave(). */
static int
enter(cl_pager *p)
{
    if (!p->done && !p->closed && p->worker_ready && cl_worker_foreign(&p->worker)) {
        raise_closed(p);       /* inherited through fork: never touch the worker */
        pager_teardown(p);
        return -1;
    }
    if (p->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this pager is in use by another thread");
        return -1;
    }
    p->busy = 1;
    return 0;
}

/* The owner is done; a close() that came meanwhile left the teardown to it. */
static void
leave(cl_pager *p)
{
    p->busy = 0;
    if (p->closed)
        pager_teardown(p);
}

static PyObject *
pager_iternext(cl_pager *p)
{
    if (p->items != NULL && p->pos < p->win_end && !p->closed) {
        p->consumed++;
        return Py_NewRef(PyTuple_GET_ITEM(p->items, p->pos++));
    }
    if (enter(p) < 0)
        return NULL;
    PyObject *res = NULL;
    while (!p->closed) {
        if (p->pending != NULL) {
            raise_pending(p);
            break;
        }
        if (p->done)
            break;
        if (load_page(p) < 0) {
            p->closed = 1;
            break;
        }
        if (p->pos < p->win_end) {
            p->consumed++;
            res = Py_NewRef(PyTuple_GET_ITEM(p->items, p->pos++));
            break;
        }
    }
    leave(p);
    return res;
}

/* _next_page(): the rest of the current page, or the next page, as a Page;
 * None at the end. */
static PyObject *
pager_next_page(cl_pager *p, PyObject *Py_UNUSED(ignored))
{
    if (p->closed)
        Py_RETURN_NONE;
    if (p->items == NULL || p->pos >= p->win_end) {
        if (p->pending != NULL) {
            if (enter(p) < 0)
                return NULL;
            raise_pending(p);
            leave(p);
            return NULL;
        }
        if (p->done || p->closed)
            Py_RETURN_NONE;
        if (enter(p) < 0)
            return NULL;
        int rc = load_page(p);
        if (rc < 0)
            p->closed = 1;
        leave(p);
        if (rc < 0)
            return NULL;
    }
    PyObject *rest = PyTuple_GetSlice(p->items, p->pos, p->win_end);
    if (rest == NULL)
        return NULL;
    p->consumed += p->win_end - p->pos;
    p->pos = p->win_end;
    PyObject *v[P_NSLOTS];
    v[P_ITEMS] = rest;
    for (int i = 1; i < P_NSLOTS; i++)
        v[i] = p->slots[i] ? p->slots[i] : Py_None;
    v[P_CURSOR] = cursor_like(p) && p->next_cursor ? p->next_cursor : Py_None;
    v[P_NEXT] = !cursor_like(p) && p->next_url ? p->next_url : Py_None;
    PyObject *page = PyObject_Vectorcall(p->page_class, v, P_NSLOTS, NULL);
    Py_DECREF(rest);
    return page;
}

/* For arrow.c: the next page's body, its envelope decoded with `envelope`
 * (items located, not built) and the next request already queued.  The body
 * stays valid, and the pager busy, until cl_pager_body_done().  1 with a page, 0 at the end, -1 on error. */
int
cl_pager_next_body(PyObject *self, cl_schema *envelope, cl_page_body *out)
{
    cl_pager *p = (cl_pager *)self;
    if (p->items != NULL && p->pos < p->win_end) {
        PyErr_SetString(PyExc_ValueError, "this pager is part-way through a page: Arrow output "
                        "starts at a page boundary (take it before iterating records)");
        return -1;
    }
    if (p->pending != NULL && !p->closed) {   /* after the page that showed it, as records */
        if (enter(p) < 0)
            return -1;
        raise_pending(p);
        leave(p);
        return -1;
    }
    if (p->done || p->closed)
        return 0;
    if (enter(p) < 0)
        return -1;
    if (load_envelope(p, envelope, 1) < 0 || check_empty_run(p, p->page_len) < 0) {
        p->closed = 1;
        leave(p);
        return -1;
    }
    PyObject *off = p->slots[P_ITEMS];
    out->buf = p->body.data;
    out->len = p->body.len;
    out->items_at = off != NULL && PyLong_Check(off) ? PyLong_AsSsize_t(off) : -1;
    out->max_depth = p->max_depth;
    out->skip = p->win_begin;
    out->take = p->win_end - p->win_begin;
    out->count = p->page_len;
    out->budget = p->page_values;
    p->consumed += p->win_end - p->pos;
    p->pos = p->win_end;
    if (p->watch != NULL) {   /* a progress display: never a reason to fail the data */
        PyObject *r = PyObject_CallFunction(p->watch, "n", out->take);
        if (r == NULL && !PyErr_ExceptionMatches(PyExc_Exception)) {
            Py_CLEAR(p->pending);
            rewind_page(p);   /* but Ctrl-C met in it stops the listing */
            p->closed = 1;
            leave(p);
            return -1;
        }
        if (r == NULL)
            PyErr_WriteUnraisable(p->watch);
        Py_XDECREF(r);
    }
    return 1;
}

int
cl_pager_mark_set(PyObject *self, cl_pager_mark *m)
{
    cl_pager *p = (cl_pager *)self;
    if (p->items != NULL && p->pos < p->win_end) {
        PyErr_SetString(PyExc_ValueError, "this pager is part-way through a page: Arrow output "
                        "starts at a page boundary (take it before iterating records)");
        return -1;
    }
    m->next_url = Py_XNewRef(p->next_url);
    m->next_cursor = Py_XNewRef(p->next_cursor);
    m->pending_skip = p->pending_skip;
    m->consumed = p->consumed;
    m->budget = p->budget;
    return 0;
}

/* Back to the mark, for the checkpoint: the pager is closed by then. */
void
cl_pager_mark_restore(PyObject *self, cl_pager_mark *m)
{
    cl_pager *p = (cl_pager *)self;
    if (m->next_url == NULL || !p->closed)
        return;               /* at the end then, or not failed here (busy elsewhere) */
    Py_XSETREF(p->next_url, Py_NewRef(m->next_url));
    Py_XSETREF(p->next_cursor, Py_XNewRef(m->next_cursor));
    p->pending_skip = m->pending_skip;
    p->consumed = m->consumed;
    p->budget = m->budget;
    p->done = p->capped = 0;
    Py_CLEAR(p->pending);     /* a paging error met after the mark: back before it */
    p->paging_failed = 0;
    Py_CLEAR(p->items);
    p->page_len = -1;
    p->pos = p->win_begin = p->win_end = 0;
}

void
cl_pager_mark_clear(cl_pager_mark *m)
{
    Py_CLEAR(m->next_url);
    Py_CLEAR(m->next_cursor);
}

/* For arrow.c: the body last returned is no longer read.  Until then the
 * pager stays entered, so that no other caller (another thread, or the
 * watch callback itself) fetches into the buffer being converted. */
void
cl_pager_body_done(PyObject *self)
{
    leave((cl_pager *)self);
}

/* For arrow.c: the page last returned could not be converted. */
void
cl_pager_page_failed(PyObject *self)
{
    cl_pager *p = (cl_pager *)self;
    explain_decode_error(p);
    rewind_page(p);
    p->closed = 1;
    if (!p->busy)
        pager_teardown(p);
}

cl_schema *
cl_pager_schema(PyObject *self, int items)
{
    cl_pager *p = (cl_pager *)self;
    return items ? p->item_schema : p->page_schema;
}

/* ---- for pager_aio.c (pager.h) ------------------------------------------ */

int
cl_pager_enter(cl_pager *p)
{
    return enter(p);
}

void
cl_pager_leave(cl_pager *p)
{
    leave(p);
}

int
cl_pager_submit(cl_pager *p, PyObject *url, int force_auth)
{
    return submit(p, url, force_auth);
}

int
cl_pager_load_page(cl_pager *p)
{
    return load_page(p);
}

int
cl_pager_log_attempts(cl_pager *p, PyObject *url)
{
    if (!chained(p))               /* the response is the worker's still */
        cl_result_collect(&p->took, &p->worker);
    return log_attempts(p, url);
}

/* Back to requests sent by the consumer only (asyncio and fan-out drive
 * the worker themselves): what the fetch thread did ahead is dropped, and
 * the next page is asked for again. */
int
cl_pager_unchain(cl_pager *p)
{
    if (!p->chain_on || !p->worker_ready || cl_worker_foreign(&p->worker))
        return 0;
    if (drop_ahead(p) < 0)
        return -1;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&p->worker.mu);
    cl_chain_free(p->worker.chain);
    p->worker.chain = NULL;
    pthread_mutex_unlock(&p->worker.mu);
    Py_END_ALLOW_THREADS
    p->chain_on = 0;
    p->in_flight = 0;
    return 0;
}

/* For multi.c: the worker a fan-out drives, and the next request queued
 * without waiting (the fan-out collects it through _next_page). */
cl_worker *
cl_pager_worker(PyObject *self)
{
    cl_pager *p = (cl_pager *)self;
    return p->worker_ready && !p->closed && !cl_worker_foreign(&p->worker) ? &p->worker : NULL;
}

int
cl_pager_prime(PyObject *self)
{
    cl_pager *p = (cl_pager *)self;
    if (p->closed) {
        /* its end (or max_items) was reached before: nothing is missing */
        if (p->done && p->pending == NULL && !p->paging_failed)
            return 0;
        if (p->worker_ready && cl_worker_foreign(&p->worker))
            return raise_closed(p);
        cl_raise(p->st->ClosedError,
                 "the pager was closed before its listing ended; resume from its checkpoint "
                 "with a new pager");
        return -1;
    }
    if (p->in_flight)
        return 1;
    /* the end, max_items, a paging error waiting for its page to be read,
     * or max_pages pages read: no request (the next page-read says which) */
    if (p->done || p->next_url == NULL || p->pending != NULL
        || (p->max_pages > 0 && p->pages >= p->max_pages))
        return 0;
    if (enter(p) < 0)
        return -1;
    int rc = submit(p, p->next_url, 0);
    leave(p);
    return rc < 0 ? -1 : 1;
}

/* pages(): an iterator of Page objects over the same position. */
static PyObject *
pager_pages(cl_pager *p, PyObject *Py_UNUSED(ignored))
{
    PyObject *next = PyObject_GetAttrString((PyObject *)p, "_next_page");
    if (next == NULL)
        return NULL;
    PyObject *it = PyCallIter_New(next, Py_None);
    Py_DECREF(next);
    return it;
}

/* Safe from any thread at any moment: it cancels; the thread that owns the
 * transfer (if one is inside next()) tears down when its wait returns.  The
 * position stays: resume points remain valid. */
static PyObject *
pager_close(cl_pager *p, PyObject *Py_UNUSED(ignored))
{
    p->closed = 1;
    if (p->worker_ready && !cl_worker_foreign(&p->worker))
        cl_worker_cancel(&p->worker);
    if (!p->busy)
        pager_teardown(p);
    /* a task awaiting the fd wakes to find it closed (never a parent's, after fork) */
    if (p->async_wfd >= 0 && !cl_worker_foreign(&p->worker)) {
        uint64_t one = 1;
        ssize_t rc = write(p->async_wfd, &one, sizeof one);
        (void)rc;               /* full: readable already */
    }
    Py_RETURN_NONE;
}

static PyObject *
pager_enter(cl_pager *p, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef((PyObject *)p);
}

static PyObject *
pager_exit(cl_pager *p, PyObject *Py_UNUSED(args))
{
    PyObject *r = pager_close(p, NULL);
    Py_XDECREF(r);
    if (r == NULL)
        return NULL;
    Py_RETURN_FALSE;
}

/* ---- construction --------------------------------------------------------- */

static int
parse_retry_statuses(PyObject *seq, cl_retry_opts *r)
{
    PyObject *fast = PySequence_Fast(seq, "retry_statuses must be a sequence of ints");
    if (fast == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    r->n_retry_statuses = 0;
    for (Py_ssize_t i = 0; i < n && i < 16; i++) {
        long s = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if (s == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        r->retry_statuses[r->n_retry_statuses++] = s;
    }
    Py_DECREF(fast);
    return 0;
}

static int
init_origin(cl_pager *p, PyObject *origin)
{
    const char *s = PyUnicode_AsUTF8(origin);
    if (s == NULL)
        return -1;
    char *full = resolve_url(NULL, s, &p->origin);
    if (full == NULL) {
        PyErr_Format(PyExc_ValueError, "invalid base URL %R", origin);
        return -1;
    }
    curl_free(full);
    return 0;
}

/* The first request: the start URL (cursor mode: base URL plus any start
 * cursor), checked against the origin like every later one. */
static int
init_first(cl_pager *p, PyObject *start_url, PyObject *start_cursor)
{
    if (cursor_like(p) && start_cursor != Py_None) {
        if (!PyUnicode_Check(start_cursor)) {
            PyErr_SetString(PyExc_TypeError, "start cursor must be a str");
            return -1;
        }
        if (p->mode == MODE_OFFSET || p->mode == MODE_PAGE) {
            long long v = -1;
            Py_ssize_t n;
            const char *c = PyUnicode_AsUTF8AndSize(start_cursor, &n);
            if (c == NULL)
                return -1;
            if (n >= 1 && n <= 18 && strspn(c, "0123456789") == (size_t)n)
                v = strtoll(c, NULL, 10);
            if (v < 0 || (n > 1 && c[0] == '0')) {
                PyErr_Format(PyExc_ValueError, "the start %s must be a whole number as "
                             "digits, not %R", mode_names[p->mode], start_cursor);
                return -1;
            }
        }
        p->next_cursor = Py_NewRef(start_cursor);
        p->next_url = cursor_url(p, start_cursor);
        return p->next_url == NULL ? -1 : seen_before(p, start_cursor);
    }
    p->next_url = checked_url(p, NULL, start_url);
    return p->next_url == NULL ? -1 : seen_before(p, p->next_url);
}

static int
check_schemas(cl_pager *p)
{
    if (!cl_schema_check(p->st, (PyObject *)p->page_schema)
        || !cl_schema_check(p->st, (PyObject *)p->item_schema)) {
        PyErr_SetString(PyExc_TypeError, "page_schema and item_schema must be Schema objects");
        return -1;
    }
    if (p->page_schema->nslots != P_NSLOTS) {
        PyErr_Format(PyExc_ValueError, "page schema must have %d slots", P_NSLOTS);
        return -1;
    }
    return 0;
}

static PyObject *
pager_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {
        "url", "page_schema", "item_schema", "mode", "origin", "error_factory", "page_class",
        "headers", "auth", "cursor_param", "start_cursor", "prefetch", "max_depth",
        "max_retries", "backoff", "backoff_max", "retry_after_max", "retry_statuses",
        "connect_timeout", "timeout", "low_speed_limit", "low_speed_time", "max_body",
        "user_agent", "proxy", "ca_file", "ca_path", "max_items", "skip", "page_size_param",
        "page_size", "finished", "max_items_per_page", "max_pages", "first_page", "auth_static",
        NULL,
    };
    PyObject *url, *page_schema, *item_schema, *origin, *error_factory, *page_class;
    PyObject *headers = NULL, *auth = Py_None, *cursor_param = NULL, *start_cursor = Py_None;
    PyObject *retry_statuses = NULL;
    const char *mode, *user_agent = "custlist";
    const char *proxy = NULL, *ca_file = NULL, *ca_path = NULL;
    int prefetch = 1, max_depth = CL_DEFAULT_MAX_DEPTH;
    cl_retry_opts r = {.max_retries = 3, .backoff = 0.5, .backoff_max = 30.0, .retry_after_max = 60.0};
    double connect_timeout = 10.0, timeout = 60.0;
    long low_speed_limit = 1, low_speed_time = 30;
    Py_ssize_t max_body = 64 * 1024 * 1024, max_items = -1, skip = 0, page_size = -1;
    PyObject *size_param = Py_None, *max_pages_obj = Py_None;
    Py_ssize_t page_values = CL_DEFAULT_PAGE_VALUES, max_pages = 0;
    int finished = 0, first_page = 1, auth_static = 0;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "UOOsUOO|O!OUOpiidddOddllnszzznnOnpnOip:Pager", kwlist, &url, &page_schema,
            &item_schema, &mode, &origin, &error_factory, &page_class, &PyTuple_Type, &headers,
            &auth, &cursor_param, &start_cursor, &prefetch, &max_depth, &r.max_retries,
            &r.backoff, &r.backoff_max, &r.retry_after_max, &retry_statuses, &connect_timeout,
            &timeout, &low_speed_limit, &low_speed_time, &max_body, &user_agent, &proxy,
            &ca_file, &ca_path, &max_items, &skip, &size_param, &page_size, &finished,
            &page_values, &max_pages_obj, &first_page, &auth_static))
        return NULL;
    if (first_page != 0 && first_page != 1) {
        PyErr_SetString(PyExc_ValueError, "first_page must be 0 or 1");
        return NULL;
    }
    if (max_pages_obj != Py_None
        && (max_pages = PyLong_AsSsize_t(max_pages_obj)) == -1 && PyErr_Occurred())
        return NULL;
    if (page_values < 1 || (max_pages_obj != Py_None && max_pages < 1)) {
        PyErr_SetString(PyExc_ValueError, "max_items_per_page and max_pages must be at least 1");
        return NULL;
    }
    if (max_items < -1 || skip < 0 || page_size < -1 || page_size == 0) {
        PyErr_SetString(PyExc_ValueError, "max_items, skip and page_size must not be negative");
        return NULL;
    }
    if (skip >= page_values) {      /* no page holds that many records */
        PyErr_Format(PyExc_ValueError, "not a usable checkpoint: skip %zd is beyond the most "
                     "records a page may hold (max_items_per_page=%zd)", skip, page_values);
        return NULL;
    }
    if (size_param != Py_None && !PyUnicode_Check(size_param)) {
        PyErr_SetString(PyExc_TypeError, "page_size_param must be a str or None");
        return NULL;
    }
    int mode_id = 0;
    while (mode_id < (int)(sizeof mode_names / sizeof *mode_names)
           && strcmp(mode, mode_names[mode_id]) != 0)
        mode_id++;
    if (mode_id == (int)(sizeof mode_names / sizeof *mode_names)) {
        PyErr_SetString(PyExc_ValueError,
                        "mode must be 'cursor', 'href', 'offset', 'page' or 'link'");
        return NULL;
    }
    if (r.max_retries < 0 || !(r.backoff >= 0 && r.backoff <= DBL_MAX)
        || !(r.backoff_max >= 0 && r.backoff_max <= DBL_MAX)
        || !(r.retry_after_max >= 0 && r.retry_after_max <= DBL_MAX)
        || max_body <= 0) {
        PyErr_SetString(PyExc_ValueError,
                        "retry and limit settings must be finite and not negative");
        return NULL;
    }
    if (cl_check_max_depth(max_depth) < 0)
        return NULL;
    cl_http_opts ho = {.max_body = (size_t)max_body, .user_agent = user_agent, .proxy = proxy,
                       .ca_file = ca_file, .ca_path = ca_path};
    if (cl_http_opts_timing(&ho, connect_timeout, timeout, low_speed_limit, low_speed_time) < 0
        || cl_http_opts_text(&ho) < 0)
        return NULL;
    if (retry_statuses == NULL) {
        static const long dflt[] = {429, 500, 502, 503, 504};
        memcpy(r.retry_statuses, dflt, sizeof dflt);
        r.n_retry_statuses = 5;
    }
    else if (parse_retry_statuses(retry_statuses, &r) < 0)
        return NULL;

    cl_pager *p = (cl_pager *)tp->tp_alloc(tp, 0);
    if (p == NULL)
        return NULL;
    p->async_fd = p->async_wfd = -1;
    /* The engine's own type holds the module: custlist.Pager derives from it. */
    PyTypeObject *own = tp;
    while (own->tp_base != NULL && own->tp_base != &PyBaseObject_Type)
        own = own->tp_base;
    p->st = PyType_GetModuleState(own);
    p->module = Py_NewRef(PyType_GetModule(own));
    p->page_schema = (cl_schema *)Py_NewRef(page_schema);
    p->item_schema = (cl_schema *)Py_NewRef(item_schema);
    p->mode = mode_id;
    p->prefetch = prefetch;
    p->max_depth = max_depth;
    p->page_values = page_values;
    p->max_pages = max_pages;
    p->first_page = first_page;
    p->base_url = Py_NewRef(url);
    p->cursor_param = cursor_param ? Py_NewRef(cursor_param) : PyUnicode_FromString("cursor");
    p->headers = headers ? Py_NewRef(headers) : PyTuple_New(0);
    p->auth = Py_NewRef(auth);
    p->error_factory = Py_NewRef(error_factory);
    p->page_class = Py_NewRef(page_class);
    p->page_len = p->fault_len = -1;
    p->before = -1;
    p->max_items = p->budget = max_items;
    p->capped = p->done = max_items == 0;      /* nothing wanted: nothing requested */
    p->pending_skip = skip;
    p->size_param = (p->mode == MODE_CURSOR || p->mode == MODE_OFFSET) && size_param != Py_None
        ? Py_NewRef(size_param) : NULL;
    p->page_size = page_size;
    p->asked_next = p->asked_cur = p->counted = -1;
    if (p->cursor_param == NULL || p->headers == NULL
        || check_schemas(p) < 0 || init_origin(p, origin) < 0)
        goto error;
    if (finished) {             /* resumed from the end of a listing */
        p->done = 1;
        p->capped = 0;
    }
    else if (init_first(p, url, start_cursor) < 0)
        goto error;
    if (cl_worker_init(&p->worker, &ho, &r) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "could not set up libcurl");
        goto error;
    }
    /* The two-pass decode (prefetch) steps over the items by the spans the
     * fetch thread finds; the one-pass decode has no use for them. */
    p->worker.http.shape_on = prefetch;
    p->worker_ready = 1;
    cl_registry_add(&p->st->workers, &p->worker);
    if (cl_pager_init_chain(p, auth_static) < 0)
        goto error;
    return (PyObject *)p;
error:
    Py_DECREF(p);
    return NULL;
}

static int
pager_traverse(cl_pager *p, visitproc visit, void *arg)
{
    Py_VISIT(p->module);
    Py_VISIT(p->page_schema);
    Py_VISIT(p->item_schema);
    Py_VISIT(p->auth);
    Py_VISIT(p->error_factory);
    Py_VISIT(p->page_class);
    Py_VISIT(p->watch);
    Py_VISIT(p->items);
    Py_VISIT(p->pending);
    for (int i = 0; i < P_NSLOTS; i++)
        Py_VISIT(p->slots[i]);
    Py_VISIT(Py_TYPE(p));
    return 0;
}

static int
pager_clear(cl_pager *p)
{
    Py_CLEAR(p->page_schema);
    Py_CLEAR(p->item_schema);
    Py_CLEAR(p->base_url);
    Py_CLEAR(p->cursor_param);
    Py_CLEAR(p->headers);
    Py_CLEAR(p->auth);
    Py_CLEAR(p->error_factory);
    Py_CLEAR(p->page_class);
    Py_CLEAR(p->items);
    Py_CLEAR(p->cur_url);
    Py_CLEAR(p->cur_cursor);
    Py_CLEAR(p->next_url);
    Py_CLEAR(p->next_cursor);
    Py_CLEAR(p->pending);
    Py_CLEAR(p->size_param);
    Py_CLEAR(p->watch);
    clear_slots(p);
    return 0;
}

static void
pager_dealloc(cl_pager *p)
{
    PyTypeObject *tp = Py_TYPE(p);
    PyObject_GC_UnTrack(p);
    pager_teardown(p);
    pager_clear(p);
    if (p->async_fd >= 0) {     /* after the worker: it may write until joined */
        close(p->async_fd);
        if (p->async_wfd != p->async_fd)
            close(p->async_wfd);
    }
    origin_free(&p->origin);
    cl_result_free(&p->took);
    cl_pos_set_free(&p->seen);
    free(p->body.data);
    Py_CLEAR(p->module);
    tp->tp_free((PyObject *)p);
    Py_DECREF(tp);
}

/* ---- attributes ----------------------------------------------------------- */

/* The current page has records not handed out yet (max_items may have
 * stopped inside it). */
static int
mid_page(cl_pager *p)
{
    return p->page_len >= 0 && p->pos < p->page_len;
}

static PyObject *
or_none(PyObject *v)
{
    return Py_NewRef(v ? v : Py_None);
}

/* The resume point: resuming from it never loses a record.  Mid-page that is
 * the current page itself (it is delivered again from its first record);
 * once the page is consumed, the next one; None at the end. */
static PyObject *
get_cursor(cl_pager *p, void *Py_UNUSED(c))
{
    if (!cursor_like(p))
        Py_RETURN_NONE;
    return or_none(mid_page(p) ? p->cur_cursor : p->next_cursor);
}

static PyObject *
get_next_href(cl_pager *p, void *Py_UNUSED(c))
{
    if (cursor_like(p))
        Py_RETURN_NONE;
    return or_none(mid_page(p) ? p->cur_url : p->next_url);
}

static PyObject *
get_slot(cl_pager *p, void *c)
{
    return or_none(p->slots[(int)(intptr_t)c]);
}

static PyObject *
get_done(cl_pager *p, void *Py_UNUSED(c))
{
    return PyBool_FromLong(p->done && !p->capped && !mid_page(p) && p->pending == NULL);
}

static PyObject *
get_consumed(cl_pager *p, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(p->consumed);
}

/* _watch(callable or None): called with the record count of each page
 * handed to Arrow output (records iterated one by one are the caller's to
 * count). */
static PyObject *
pager_watch(cl_pager *p, PyObject *callback)
{
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "_watch() takes a callable or None");
        return NULL;
    }
    Py_XSETREF(p->watch, callback == Py_None ? NULL : Py_NewRef(callback));
    Py_RETURN_NONE;
}

/* _position(): (page, skip, finished), the exact position after the last
 * record handed out: the page that holds the next record (its cursor, None
 * for the first page, or its URL) and how many of its records come before
 * it.  A page is re-requested with the same query, so this holds across
 * page boundaries, max_items, errors and close(). */
static PyObject *
pager_position(cl_pager *p, PyObject *Py_UNUSED(ignored))
{
    int cursor = cursor_like(p);
    PyObject *page = NULL;
    if (!mid_page(p) && p->pending != NULL && p->keep_pending) {
        page = cursor ? p->cur_cursor : p->cur_url;
        return Py_BuildValue("(OnO)", page ? page : Py_None, p->win_end, Py_False);
    }
    if (!mid_page(p) && (p->pending != NULL || p->paging_failed)) {
        /* the page that showed the paging error, all of it handed out */
        Py_ssize_t n = p->pending != NULL ? p->page_len : p->fault_len;
        if (n < 0) {
            cl_raise(p->st->PagingError, "the listing stopped on a paging error from the "
                     "server before its page was counted: there is no position to resume from");
            return NULL;
        }
        page = cursor ? p->cur_cursor : p->cur_url;
        return Py_BuildValue("(OnO)", page ? page : Py_None, n, Py_False);
    }
    if (mid_page(p)) {
        page = cursor ? p->cur_cursor : p->cur_url;
        return Py_BuildValue("(OnO)", page ? page : Py_None, p->pos, Py_False);
    }
    if (p->next_url == NULL)
        return Py_BuildValue("(OnO)", Py_None, (Py_ssize_t)0, Py_True);
    page = cursor ? p->next_cursor : p->next_url;
    return Py_BuildValue("(OnO)", page ? page : Py_None, p->pending_skip, Py_False);
}

/* _count_from(n): the listing handed out n records before this pager
 * (0 from its start, a checkpoint's count); -1: not known.  Known, a
 * listing that ends with fewer records than its pages' total is an error. */
static PyObject *
pager_count_from(cl_pager *p, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    p->before = n < 0 ? -1 : n;
    Py_RETURN_NONE;
}

static PyObject *
get_pages(cl_pager *p, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(p->pages);
}

/* Without the GIL (free-threaded CPython) every entry point runs in a
 * critical section on the pager: what the GIL made one step stays one step.
 * The section is let go wherever the GIL would be (the waits for the fetch
 * thread), where `busy` keeps a second caller out as it does with the GIL:
 * two threads reading one pager get each record once, or the RuntimeError
 * "this pager is in use by another thread".  On a GIL build the wrappers
 * are plain calls. */
static PyObject *
pager_iternext_locked(cl_pager *p)
{
    PyObject *r = NULL;
    Py_BEGIN_CRITICAL_SECTION(p);
    r = pager_iternext(p);
    Py_END_CRITICAL_SECTION();
    return r;
}
CL_LOCKED(get_cursor, cl_pager, void *)
CL_LOCKED(get_next_href, cl_pager, void *)
CL_LOCKED(get_slot, cl_pager, void *)
CL_LOCKED(get_done, cl_pager, void *)
CL_LOCKED(get_pages, cl_pager, void *)
CL_LOCKED(get_consumed, cl_pager, void *)
CL_LOCKED(pager_next_page, cl_pager, PyObject *)
CL_LOCKED(pager_position, cl_pager, PyObject *)
CL_LOCKED(pager_watch, cl_pager, PyObject *)
CL_LOCKED(pager_count_from, cl_pager, PyObject *)
CL_LOCKED(cl_pager_async_fd, cl_pager, PyObject *)
CL_LOCKED(cl_pager_poll, cl_pager, PyObject *)
CL_LOCKED(cl_pager_load, cl_pager, PyObject *)
CL_LOCKED(cl_pager_renew, cl_pager, PyObject *)
CL_LOCKED(pager_pages, cl_pager, PyObject *)
CL_LOCKED(pager_close, cl_pager, PyObject *)
CL_LOCKED(pager_enter, cl_pager, PyObject *)
CL_LOCKED(pager_exit, cl_pager, PyObject *)

static PyGetSetDef pager_getset[] = {
    {"cursor", (getter)get_cursor_locked, NULL, "Resume cursor (cursor-paged endpoints).", NULL},
    {"next_href", (getter)get_next_href_locked, NULL, "Resume link (href-paged endpoints).", NULL},
    {"prev_href", (getter)get_slot_locked, NULL, "Link to the page before the current one.", (void *)P_PREV},
    {"total", (getter)get_slot_locked, NULL, "Total reported by the API, once a page is in.", (void *)P_TOTAL},
    {"trace_id", (getter)get_slot_locked, NULL, "Trace id of the last page.", (void *)P_TRACE},
    {"total_pages", (getter)get_slot_locked, NULL, "Page count reported by the API (page paging).",
     (void *)P_TOTAL_PAGES},
    {"done", (getter)get_done_locked, NULL, "True once every record has been yielded.", NULL},
    {"pages_fetched", (getter)get_pages_locked, NULL, "Pages fetched so far.", NULL},
    {"consumed", (getter)get_consumed_locked, NULL, "Records handed out so far.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef pager_methods[] = {
    {"_next_page", (PyCFunction)pager_next_page_locked, METH_NOARGS, NULL},
    {"_position", (PyCFunction)pager_position_locked, METH_NOARGS, NULL},
    {"_watch", (PyCFunction)pager_watch_locked, METH_O, NULL},
    {"_count_from", (PyCFunction)pager_count_from_locked, METH_O, NULL},
    {"_async_fd", (PyCFunction)cl_pager_async_fd_locked, METH_NOARGS, NULL},
    {"_poll", (PyCFunction)cl_pager_poll_locked, METH_VARARGS, NULL},
    {"_load", (PyCFunction)cl_pager_load_locked, METH_NOARGS, NULL},
    {"_renew", (PyCFunction)cl_pager_renew_locked, METH_NOARGS, NULL},
    {"pages", (PyCFunction)pager_pages_locked, METH_NOARGS, "Iterate page by page (Page objects)."},
    {"close", (PyCFunction)pager_close_locked, METH_NOARGS, "Stop paging and release the connection."},
    {"__enter__", (PyCFunction)pager_enter_locked, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)pager_exit_locked, METH_VARARGS, NULL},
    CL_ARROW_PAGER_METHODS
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "Pager[Record]: the pager's type with its item type, for annotations."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot pager_slots[] = {
    {Py_tp_doc, "Iterator over the records of a paged endpoint."},
    {Py_tp_new, pager_new},
    {Py_tp_dealloc, pager_dealloc},
    {Py_tp_traverse, pager_traverse},
    {Py_tp_clear, pager_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, pager_iternext_locked},
    {Py_tp_getset, pager_getset},
    {Py_tp_methods, pager_methods},
    {0, NULL},
};

static PyType_Spec pager_spec = {
    .name = "custlist._core.Pager",
    .basicsize = sizeof(cl_pager),
    /* BASETYPE: custlist.Pager adds its description and weak references. */
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC
           | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = pager_slots,
};

int
cl_pager_register(PyObject *module, cl_state *st)
{
    st->PagerType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &pager_spec, NULL);
    if (st->PagerType == NULL || PyModule_AddType(module, st->PagerType) < 0)
        return -1;
    return 0;
}
