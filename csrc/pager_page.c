/* Loading a page: fetch it, decode its envelope (items located) and plan
 * the request after it, then build its items; and the errors a page shows,
 * explained (a DecodeError names the URL and Content-Type), deferred until
 * the page's records are delivered (a paging error), or found at the end
 * (fewer records than the stated total, a run of empty pages). */
#include "pager.h"
#include "errors.h"
#include "envelope.h"
#include <string.h>
#include <strings.h>

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
void
cl_pager_explain_decode_error(cl_pager *p)
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
int
cl_pager_raise_pending(cl_pager *p)
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
    long long total = cl_pager_slot_int(p->slots[P_TOTAL]);
    if (p->before < 0 || total < 0 || p->capped || p->next_url != NULL)
        return 0;
    if (p->page_len < 0 && cl_pager_count_window(p, 1) < 0)
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
        cl_pager_missing_key(p, slot, why);
    }
    else
        cl_envelope_short(received, total, p->cur_url);
    p->keep_pending = 1;
    defer_paging_error(p);
    return 0;
}

/* Fetch the next page and decode its envelope with `envelope`, queueing
 * the request after it (unless max_items or max_pages is reached). */
int
cl_pager_load_envelope(cl_pager *p, cl_schema *envelope, int need_count)
{
    if (p->max_pages > 0 && p->pages >= p->max_pages) {
        cl_raise(p->st->PagingError,
                 "max_pages=%zd reached and the listing has more pages: resume from the "
                 "pager's cursor or next_href", p->max_pages);
        return -1;
    }
    if (cl_pager_fetch(p) < 0)
        return -1;
    note_content_type(p);
    Py_XSETREF(p->cur_url, Py_NewRef(p->next_url));
    Py_XSETREF(p->cur_cursor, Py_XNewRef(p->next_cursor));
    cl_pager_clear_slots(p);
    Py_CLEAR(p->items);
    p->pos = p->win_begin = p->win_end = 0;
    p->page_len = -1;
    p->counted = -1;
    p->asked_cur = p->asked_next;
    if (cl_decode_page_shaped(envelope, p->item_schema, p->body.data, p->body.len, p->max_depth,
                              p->page_values, p->slots, &p->shape) < 0) {
        cl_pager_explain_decode_error(p);
        return -1;
    }
    if (p->slots[P_CURSOR] != NULL || p->slots[P_NEXT] != NULL)
        p->position_seen = 1;
    if (p->slots[P_ITEMS] == NULL) {     /* nothing to deliver: this page again on resume */
        cl_pager_missing_key(p, P_ITEMS, "");
        p->keep_pending = 0;
        cl_pager_rewind_page(p);
        return -1;
    }
    if (cl_pager_plan_next(p) < 0) {
        if (PyErr_ExceptionMatches(p->st->DecodeError)) {   /* counting the items */
            cl_pager_explain_decode_error(p);
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
    if (cl_pager_count_window(p, need_count) < 0 || (p->pending == NULL && check_total(p) < 0)) {
        cl_pager_explain_decode_error(p);
        Py_CLEAR(p->pending);
        p->keep_pending = 0;
        cl_pager_rewind_page(p);
        return -1;
    }
    int last_allowed = p->max_pages > 0 && p->pages + 1 >= p->max_pages;
    int want = p->prefetch && !p->done && !last_allowed;
    p->pages++;
    if (p->took.next != NULL) {
        /* the fetch thread sent a request after this page already: the
         * one wanted, or one to drop (cl_pager_submit() drops it) */
        int same = 0;
        if (want) {
            PyObject *sized = cl_pager_sized_url(p, p->next_url);
            const char *u = sized ? PyUnicode_AsUTF8(sized) : NULL;
            same = u != NULL && strcmp(u, p->took.next) == 0;
            Py_XDECREF(sized);
            if (u == NULL) {
                p->pages--;
                cl_pager_rewind_page(p);
                return -1;
            }
        }
        p->in_flight = same;
        if (!same && cl_pager_drop_ahead(p) < 0) {
            p->pages--;
            cl_pager_rewind_page(p);
            return -1;
        }
    }
    if (want && !p->in_flight && cl_pager_submit(p, p->next_url, 0) < 0) {
        p->pages--;
        cl_pager_rewind_page(p);      /* e.g. closed meanwhile: this page is not delivered */
        return -1;
    }
    return 0;
}

/* A page of n items just loaded: a run of empty pages that still say
 * "more" ends the listing (records and Arrow output alike). */
int
cl_pager_check_empty_run(cl_pager *p, Py_ssize_t n)
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
int
cl_pager_load_page(cl_pager *p)
{
    if (cl_pager_load_envelope(p, p->page_schema, 0) < 0)
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
        cl_pager_explain_decode_error(p);
        Py_CLEAR(p->pending);
        cl_pager_rewind_page(p);
        return -1;
    }
    p->items = items;
    if (p->page_len < 0)
        cl_pager_set_window(p, PyTuple_GET_SIZE(items));
    return cl_pager_check_empty_run(p, PyTuple_GET_SIZE(items));
}
