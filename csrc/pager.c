/* The Pager: an iterator of records over a paged endpoint: cursor in the
 * body, next URL in the body (href) or in a Link header, offset/limit, or
 * page numbers.  This file is the type: its entry points (iteration, pages,
 * close, the Arrow and fan-out hooks), construction and attributes.
 *
 * Each page is decoded in two passes over the receive buffer: the envelope
 * first (items are only located, not built), so the next request can be
 * queued on the worker thread at once; then the items, built into records
 * while the next page downloads without the GIL.  Where it can, the fetch
 * thread has sent that request already (chain.h): the pager then only
 * checks that it is the one it would send.
 *
 * The layers below, each calling only those under it: pager_page.c loads a
 * page (envelope, items, the errors a page shows), pager_plan.c works out
 * positions (the next request, the loop guard, the window, checkpoints),
 * pager_request.c builds and sends requests and maps their failures.  The
 * layout is in pager.h; the asyncio methods (_async_fd, _poll, _load,
 * _renew) are pager_aio.c's, the fetch thread's chain pager_chain.c's. */
#include "pager.h"
#include "token.h"
#include "request.h"
#include "arrow.h"
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CL_DEFAULT_PAGE_VALUES 1000000

static const char *const mode_names[] = {"cursor", "href", "offset", "page", "link"};

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

/* A thread that is about to fetch owns the pager until leave(). */
static int
enter(cl_pager *p)
{
    if (!p->done && !p->closed && p->worker_ready && cl_worker_foreign(&p->worker)) {
        cl_pager_raise_closed(p);       /* inherited through fork: never touch the worker */
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
            cl_pager_raise_pending(p);
            break;
        }
        if (p->done)
            break;
        if (cl_pager_load_page(p) < 0) {
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
            cl_pager_raise_pending(p);
            leave(p);
            return NULL;
        }
        if (p->done || p->closed)
            Py_RETURN_NONE;
        if (enter(p) < 0)
            return NULL;
        int rc = cl_pager_load_page(p);
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

/* The page's window handed out: counted as consumed, and the progress
 * display told; -1 with the page to be fetched again (Ctrl-C met in the
 * display: it stops the listing). */
static int
hand_out(cl_pager *p)
{
    Py_ssize_t take = p->win_end - p->win_begin;
    p->consumed += p->win_end - p->pos;
    p->pos = p->win_end;
    if (p->watch != NULL) {   /* a progress display: never a reason to fail the data */
        PyObject *r = PyObject_CallFunction(p->watch, "n", take);
        if (r == NULL && !PyErr_ExceptionMatches(PyExc_Exception)) {
            Py_CLEAR(p->pending);
            cl_pager_rewind_page(p);
            p->closed = 1;
            return -1;
        }
        if (r == NULL)
            PyErr_WriteUnraisable(p->watch);
        Py_XDECREF(r);
    }
    return 0;
}

/* For arrow.c: the next page's body, its envelope decoded with `envelope`
 * (items located, not built) and the next request already queued.  The
 * items are counted first only when the window needs it (max_items, a
 * resumed page, a total to check); otherwise the conversion counts them
 * (cl_pager_body_read).  The body stays valid, and the pager busy, until
 * cl_pager_body_done().  1 with a page, 0 at the end, -1 on error. */
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
        cl_pager_raise_pending(p);
        leave(p);
        return -1;
    }
    if (p->done || p->closed)
        return 0;
    if (enter(p) < 0)
        return -1;
    if (cl_pager_load_envelope(p, envelope, 0) < 0
        || (p->page_len >= 0 && cl_pager_check_empty_run(p, p->page_len) < 0)) {
        p->closed = 1;
        leave(p);
        return -1;
    }
    PyObject *off = p->slots[P_ITEMS];
    out->buf = p->body.data;
    out->len = p->body.len;
    out->items_at = off != NULL && PyLong_Check(off) ? PyLong_AsSsize_t(off) : -1;
    out->max_depth = p->max_depth;
    out->budget = p->page_values;
    if (p->page_len < 0) {                    /* every item wanted: counted as converted */
        out->skip = 0;
        out->take = PY_SSIZE_T_MAX;
        out->count = -1;
        return 1;
    }
    out->skip = p->win_begin;
    out->take = p->win_end - p->win_begin;
    out->count = p->page_len;
    if (hand_out(p) < 0) {
        leave(p);
        return -1;
    }
    return 1;
}

int
cl_pager_body_read(PyObject *self, Py_ssize_t rows)
{
    cl_pager *p = (cl_pager *)self;
    if (p->page_len >= 0)
        return 0;                             /* counted before, handed out then */
    cl_pager_set_window(p, rows);
    if (cl_pager_check_empty_run(p, rows) < 0) {
        p->closed = 1;
        return -1;
    }
    return hand_out(p);
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
    cl_pager_explain_decode_error(p);
    cl_pager_rewind_page(p);
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

/* For fanout.c: the worker a fan-out drives, and the next request queued
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
            return cl_pager_raise_closed(p);
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
    int rc = cl_pager_submit(p, p->next_url, 0);
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
    char *full = cl_pos_resolve(NULL, s, &p->origin);
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
        p->next_url = cl_pager_cursor_url(p, start_cursor);
        return p->next_url == NULL ? -1 : cl_pager_seen_before(p, start_cursor);
    }
    p->next_url = cl_pager_checked_url(p, NULL, start_url);
    return p->next_url == NULL ? -1 : cl_pager_seen_before(p, p->next_url);
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
    cl_token_unref(p->token);
    p->token = NULL;
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
    cl_pager_clear_slots(p);
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
    cl_pos_origin_free(&p->origin);
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
