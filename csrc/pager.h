/* The Pager's layout, private to its files: pager.c (paging, the type) and
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
} cl_pager;

/* pager.c, for pager_aio.c: a thread that is about to fetch owns the pager
 * from cl_pager_enter() until cl_pager_leave(); cl_pager_submit() queues a
 * request on the worker, cl_pager_load_page() decodes the page whose
 * response is in, cl_pager_log_attempts() logs a request's attempts,
 * cl_pager_unchain() turns the fetch thread's own requests off. */
int cl_pager_enter(cl_pager *p);
void cl_pager_leave(cl_pager *p);
int cl_pager_submit(cl_pager *p, PyObject *url, int force_auth);
int cl_pager_load_page(cl_pager *p);
int cl_pager_log_attempts(cl_pager *p, PyObject *url);
int cl_pager_unchain(cl_pager *p);
/* pager_chain.c: set up the fetch thread's chain for a new pager (or
 * leave it off); -1 with an exception. */
int cl_pager_init_chain(cl_pager *p, int auth_static);

/* pager_aio.c: the Pager's _async_fd, _poll, _load and _renew methods. */
PyObject *cl_pager_async_fd(cl_pager *p, PyObject *ignored);
PyObject *cl_pager_poll(cl_pager *p, PyObject *args);
PyObject *cl_pager_load(cl_pager *p, PyObject *ignored);
PyObject *cl_pager_renew(cl_pager *p, PyObject *ignored);

#endif
