/* The pager's positions: from a page's envelope, the next request or the
 * end (cursor, next link, Link header, offset or page number), the loop
 * guard over the positions followed, the window of a page's records handed
 * out (skip into a resumed page, max_items), giving a page back when it
 * could not be delivered, and the marks Arrow output resumes from. */
#include "pager.h"
#include "errors.h"
#include "arrow.h"
#include "envelope.h"
#include "json.h"
#include "link.h"
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CL_MAX_POSITION 999999999999999999LL   /* largest offset or page number */

void
cl_pager_clear_slots(cl_pager *p)
{
    for (int i = 0; i < P_NSLOTS; i++)
        Py_CLEAR(p->slots[i]);
}

/* The loop guard keeps a 128-bit fingerprint per position (position.c's
 * set, the kind the fetch thread keeps for its own requests), whatever
 * the position's length.  1 if `pos` was followed before, else remembers
 * it and returns 0. */
int
cl_pager_seen_before(cl_pager *p, PyObject *pos)
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
    int c = cl_pager_seen_before(p, pos);
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
long long
cl_pager_slot_int(PyObject *v)
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
    long long total = cl_pager_slot_int(p->slots[P_TOTAL]), pages = cl_pager_slot_int(p->slots[P_TOTAL_PAGES]);
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
    if ((*url = cl_pager_cursor_url(p, *cursor)) == NULL) {
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
int
cl_pager_missing_key(cl_pager *p, int slot, const char *why)
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
int
cl_pager_plan_next(cl_pager *p)
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
            return cl_pager_missing_key(p, P_CURSOR, "; the page says there is more");
        if (has_more && is_empty(c)) {
            cl_raise(p->st->PagingError, "the page says there is more but gives no cursor");
            return -1;
        }
        if (has_more) {
            if (!PyUnicode_Check(c)) {
                cl_raise(p->st->PagingError, "the page cursor is not a string: %R", c);
                return -1;
            }
            if (not_seen(p, c) < 0 || (url = cl_pager_cursor_url(p, c)) == NULL)
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
        if ((url = cl_pager_checked_url(p, p->cur_url, href)) == NULL || not_seen(p, url) < 0) {
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
void
cl_pager_set_window(cl_pager *p, Py_ssize_t n)
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
int
cl_pager_count_window(cl_pager *p, int need)
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
    cl_pager_set_window(p, n);
    return 0;
}

/* A page that could not be decoded: resuming must fetch it again, not skip
 * it, and its window (records skipped, taken, handed out) is given back. */
void
cl_pager_rewind_page(cl_pager *p)
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

/* For arrow.c: the position before a run of pages (a checkpoint), to go
 * back to when none of them is handed out. */
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
