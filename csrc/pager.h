/* The Pager's layout, private to its files: pager.c (the type, its entry
 * points), pager_page.c (loading a page), pager_plan.c (positions),
 * pager_request.c (requests), pager_chain.c (the fetch thread's chain) and
 * pager_aio.c (the asyncio support).  The rest of the engine reaches a
 * pager through the functions arrow.h and multi.h declare. */
#ifndef CL_PAGER_H
#define CL_PAGER_H

#include "common.h"
#include "decode.h"
#include "worker.h"
#include "chain.h"

/* Cursor-like modes resume from a str position put in the query (a cursor,
 * an offset, a page number); link-like ones from a URL (body or header). */
enum { MODE_CURSOR, MODE_HREF, MODE_OFFSET, MODE_PAGE, MODE_LINK };

/* Consecutive empty pages that still say "more" before PagingError. */
#define CL_MAX_EMPTY_RUN 100

/* Page envelope slots, in the order custlist._spec lays them out. */
enum { P_ITEMS, P_TOTAL, P_CURSOR, P_HAS_MORE, P_NEXT, P_PREV, P_TRACE, P_TOTAL_PAGES,
       P_NSLOTS };

typedef cl_pos_origin cl_origin;

typedef struct {
    PyObject_HEAD
    cl_state *st;
    PyObject *module;
    cl_schema *page_schema;
    cl_schema *item_schema;
    int mode;
    int prefetch;
    int max_depth;
    Py_ssize_t page_values;   /* values one page may build (max_items_per_page) */
    Py_ssize_t max_pages;     /* 0: no limit */
    int first_page;           /* page mode: the number of the first page, 0 or 1 */
    int empty_run;            /* consecutive empty pages that said "more" */
    PyObject *base_url;       /* cursor mode: first page URL without a cursor */
    PyObject *cursor_param;
    PyObject *headers;        /* tuple of "Name: value" */
    PyObject *auth;           /* callable(force) -> header value, or None */
    PyObject *error_factory;  /* callable(status, headers, body, url, attempts) */
    PyObject *page_class;
    cl_origin origin;
    cl_worker worker;
    int worker_ready;
    cl_result took;           /* the response collected last (status, headers, log...) */
    int chain_on;             /* the fetch thread sends the next requests (chain.h) */
    cl_buf body;              /* the page being decoded (swapped with the response's) */
    cl_shape shape;           /* its spans, found by the fetch thread (swapped with it) */
    /* position */
    PyObject *items;          /* tuple of the current page */
    Py_ssize_t pos;
    PyObject *cur_url;        /* request that produced the current page */
    PyObject *cur_cursor;
    PyObject *next_url;       /* request for the next page, NULL at the end */
    PyObject *next_cursor;
    PyObject *slots[P_NSLOTS];/* envelope of the current page */
    cl_pos_set seen;          /* fingerprints of the cursors / hrefs followed */
    PyObject *pending;        /* paging error raised once the page is consumed */
    int paging_failed;        /* that error was raised */
    Py_ssize_t fault_len;     /* records of the page that showed it (-1: unknown) */
    int keep_pending;         /* the error resumes right after the page's records */
    int position_seen;        /* a page held the cursor or next-link key */
    Py_ssize_t before;        /* records of the listing before this pager (-1: unknown) */
    char content_type[128];   /* of the page being decoded */
    int in_flight;            /* next_url queued on the worker */
    int done;
    int closed;
    int busy;
    Py_ssize_t pages;
    /* the window: records [pos, win_end) of the current page are still to
     * be handed out; page_len is the page's item count (-1 before known) */
    Py_ssize_t win_end;
    Py_ssize_t page_len;
    Py_ssize_t win_begin;     /* records skipped at the head of the page */
    Py_ssize_t consumed;      /* records handed out so far */
    /* max_items (-1: none): budget is what may still be handed out; once
     * it runs out with records left, the pager is `capped` (no request
     * after that point, the position kept for a checkpoint) */
    Py_ssize_t max_items;
    Py_ssize_t budget;
    int capped;
    Py_ssize_t pending_skip;  /* records of the next page already consumed (resume) */
    PyObject *size_param;     /* cursor/offset: page size query parameter, or NULL */
    Py_ssize_t page_size;     /* the page size asked for (-1: the server's default) */
    PyObject *watch;          /* called with each Arrow page's record count, or NULL */
    /* offset and page modes: records asked for by the request queued and by
     * the one that produced the current page (-1: unknown), and the current
     * page's item count once known (-1 before) */
    Py_ssize_t asked_next;
    Py_ssize_t asked_cur;
    Py_ssize_t counted;
    /* asyncio (custlist._aio): the fd the loop watches and the one the
     * worker writes (one eventfd on Linux, a pipe elsewhere), and whether
     * the job in flight already carries renewed credentials */
    int async_fd;
    int async_wfd;
    int auth_renewed;
    /* set while the event loop calls in: dropping what the fetch thread
     * did ahead never waits for a transfer under way (the request the
     * consumer wants is sent once that one has ended) */
    int nowait;
    /* ClientCredentials: the client's token cell (token.h), whose token the
     * chain sends, and the generation of the one the consumer sent last */
    struct cl_token *token;
    unsigned long long auth_gen;
} cl_pager;

/* Cursor-like modes resume from a str position, the others from a URL. */
static inline int
cursor_like(const cl_pager *p)
{
    return p->mode == MODE_CURSOR || p->mode == MODE_OFFSET || p->mode == MODE_PAGE;
}

/* pager.c, for pager_aio.c: a thread that is about to fetch owns the pager
 * from cl_pager_enter() until cl_pager_leave(). */
int cl_pager_enter(cl_pager *p);
void cl_pager_leave(cl_pager *p);

/* pager.c, for the fan-out (fanout.c) and the rate limiter (ratelimit_type.c),
 * which take pager objects: the pager's worker (NULL when the pager is
 * closed or belongs to another process), and queueing the pager's next
 * request without waiting for it: 1 when a request is queued or in flight,
 * 0 when the pager sends no more (its end, max_items, max_pages, or a paging
 * error that its next page-read raises); -1 with PagerClosedError when it
 * was closed before its end. */
cl_worker *cl_pager_worker(PyObject *pager);
int cl_pager_prime(PyObject *pager);

/* pager_page.c: load the next page (cl_pager_load_page: its records into
 * p->items; cl_pager_load_envelope: its envelope decoded with `envelope`,
 * the window counted when `need_count`), each queueing the request after
 * it; the run of empty pages after one of n records; a DecodeError that
 * names the response; the paging error deferred until the page's records
 * were handed out, raised (once, closing the pager; returns -1). */
int cl_pager_load_page(cl_pager *p);
int cl_pager_load_envelope(cl_pager *p, cl_schema *envelope, int need_count);
int cl_pager_check_empty_run(cl_pager *p, Py_ssize_t n);
void cl_pager_explain_decode_error(cl_pager *p);
int cl_pager_raise_pending(cl_pager *p);

/* pager_plan.c: the next request (or the end) from the envelope just
 * decoded; the loop guard (1 if `pos` was followed before, else it is
 * remembered); the envelope slots; an int slot's value (-1 absent,
 * LLONG_MAX beyond a long long); MissingKeyError for a slot (returns -1);
 * the window of the page just decoded (set from its n records, or counted
 * where it must be known before the items are built); a page that could
 * not be delivered given back, to be fetched again. */
int cl_pager_plan_next(cl_pager *p);
int cl_pager_seen_before(cl_pager *p, PyObject *pos);
void cl_pager_clear_slots(cl_pager *p);
long long cl_pager_slot_int(PyObject *v);
int cl_pager_missing_key(cl_pager *p, int slot, const char *why);
void cl_pager_set_window(cl_pager *p, Py_ssize_t n);
int cl_pager_count_window(cl_pager *p, int need);
void cl_pager_rewind_page(cl_pager *p);

/* pager_request.c: URLs held to the client's origin (UnsafeURLError
 * otherwise): `href` resolved against `base` (may be NULL), and the
 * cursor-mode URL for a position; the URL as requested (page size added);
 * queue a request on the worker (with `nowait`, a request that must wait
 * for a dropped transfer to end is not sent: 0 with in_flight still 0);
 * collect the response for p->next_url into p->body (renewing credentials
 * once on a 401, failures raised); log a request's attempts; drop what the
 * fetch thread did ahead (0; with `nowait`, 1 when a transfer dropped is
 * still under way: its response will be discarded); ClosedError for a
 * pager that cannot fetch any more (returns -1). */
PyObject *cl_pager_checked_url(cl_pager *p, PyObject *base, PyObject *href);
PyObject *cl_pager_cursor_url(cl_pager *p, PyObject *cursor);
PyObject *cl_pager_sized_url(cl_pager *p, PyObject *url);
int cl_pager_submit(cl_pager *p, PyObject *url, int force_auth);
int cl_pager_fetch(cl_pager *p);
int cl_pager_log_attempts(cl_pager *p, PyObject *url);
int cl_pager_drop_ahead(cl_pager *p);
int cl_pager_raise_closed(cl_pager *p);

/* pager_chain.c: set up the fetch thread's chain for a new pager (or
 * leave it off); -1 with an exception. */
int cl_pager_init_chain(cl_pager *p, int auth_static);
/* The token cell of the pager's credentials (before its first request). */
int cl_pager_attach_token(PyObject *self, struct cl_token *t);

/* pager_aio.c: the Pager's _async_fd, _poll, _load and _renew methods. */
PyObject *cl_pager_async_fd(cl_pager *p, PyObject *ignored);
PyObject *cl_pager_poll(cl_pager *p, PyObject *args);
PyObject *cl_pager_load(cl_pager *p, PyObject *ignored);
PyObject *cl_pager_renew(cl_pager *p, PyObject *ignored);

#endif
