/* The listing's chain of requests, run by the fetch thread: as a page's
 * response is in, the thread works out the next position (position.h: a
 * cursor, a next link or Link header, an offset or page number), holds it
 * to the origin, the loop guard, max_pages, max_items and the empty-page
 * run limit, and sends the request itself, keeping at most CL_CHAIN_AHEAD
 * finished pages ahead of the consumer.  No Python here.  The thread is
 * the listing's driver's (multi.c: the pager's own, or a fan-out's).
 *
 * The consumer takes the finished responses in order (cl_chain_take), each
 * with the request the thread queued after it (`next`).  It still reads
 * every page itself, as without the chain: when it agrees (the usual case)
 * the page after is already on its way; when it does not (a paging error,
 * max_items, a value the thread could not read plainly) it drops what the
 * thread did ahead (cl_chain_drop) and goes on as without the chain.
 *
 * The fetch thread's half is chain.c, the consumer's half chain_take.c.
 *
 * All state below the settings is guarded by the worker's mutex. */
#ifndef CL_CHAIN_H
#define CL_CHAIN_H

#include "position.h"
#include "worker.h"
#include "token.h"

#define CL_CHAIN_AHEAD 2           /* finished pages kept ahead of the consumer */

enum { CL_CHAIN_CURSOR, CL_CHAIN_HREF, CL_CHAIN_LINK, CL_CHAIN_OFFSET, CL_CHAIN_PAGE };

#define CL_CHAIN_MAX_POSITION 999999999999999999LL   /* as the pager's */

/* One finished response, out of the transfer's hands: the fields of a
 * cl_http that describe a response (no handles in it). */
typedef struct {
    cl_http http;
    char content_type[128];
    int attempts;
    cl_attempt log[CL_MAX_ATTEMPT_LOG];
    char *next;                    /* the request queued after it, or NULL (malloc'd) */
    unsigned long long auth_gen;   /* the token generation it was sent with (token.h) */
    int auth_resent;               /* sent again after a 401 and a renewal: a 401 now is final */
    /* not sent: the fetch thread could not renew the token (its failure
     * recorded in the cell as fail_seq; 0: the cell has no token request) */
    int auth_failed;
    unsigned long long fail_seq;
} cl_result;

typedef struct cl_chain {
    /* settings, fixed before the first request */
    int mode;
    cl_pos_paths paths;
    char *base_url, *cursor_param, *size_param;   /* cursor mode (size_param may be NULL) */
    long long page_size;                          /* -1: not sent */
    const cl_pos_origin *origin;
    long long max_pages;                          /* 0: no limit */
    int max_empty_run;
    int max_items;                                /* max_items is set: pages are counted */
    int first_page;                               /* page mode: 0 or 1 */
    /* state */
    cl_result ring[CL_CHAIN_AHEAD];
    int head, count;
    long long pages;               /* responses of the listing read so far (2xx) */
    int empty_run;                 /* consecutive empty pages (max_empty_run + 1: unknown) */
    long long budget;              /* max_items: records still to hand out before the next page */
    long long skip;                /* ... and records of it a checkpoint already handed out */
    long long at, asked;           /* offset and page modes: the request in flight's
                                    * position and page size asked for (-1: not known) */
    cl_pos_set seen;
    char *parked;                  /* the next request, waiting for room ahead */
    int halt;                      /* dropping: finished responses are discarded */
    /* credentials renewed by the client (token.h), or NULL: a request goes
     * only with a usable token, and the header it carries is replaced as a
     * newer generation comes */
    struct cl_token *token;
    unsigned long long gen;        /* the generation in the worker's headers */
    /* The fetch thread renews the token itself (token.h, cl_token_poll) before it
     * sends the job queued: because the token was missing or expiring when
     * the job was queued, or to send again a request refused with 401. */
    int need_token;
    int resent;                    /* the job is a request sent again after a 401 */
    int auth_failed;               /* the job could not be sent (see cl_result) */
    unsigned long long fail_seq;
} cl_chain;

/* Move the response of the job just finished out of w->http into r
 * (buffers are swapped, not copied).  By the thread that owns the
 * transfer's result: the fetch thread, or the pager once the job is done. */
void cl_result_collect(cl_result *r, cl_worker *w);
void cl_result_free(cl_result *r);

/* What the fetch thread worked out from a page: the next request, if the
 * page gives one plainly (malloc'd), its position (malloc'd), whether the
 * page had no items (-1: not known) and, under max_items, the records still
 * wanted after it. */
typedef struct {
    char *next;
    char *key;
    size_t keylen;
    int empty;
    long long budget;
    long long at, asked;           /* offset and page modes: of the request queued */
    /* credentials: the token was renewed for the request (sent whatever its
     * lifetime), or its renewal failed (the failure's number: no request
     * queued, the consumer raises it when it comes to send one) */
    int renewed;
    unsigned long long fail_seq;
} cl_chain_step;

/* Fetch thread: after a job, with w->mu NOT held. */
void cl_chain_plan(cl_worker *w, cl_chain_step *step);
/* The step's request needs the token renewed first: the page is set aside
 * only once the renewal is over (as the consumer would have renewed before
 * sending it), the driver looking with cl_chain_ahead_poll (as
 * cl_chain_token_poll, but the outcome goes into the step: renewed, or the
 * request dropped with the failure's number).  cl_chain_ahead_drop: the
 * listing was cancelled meanwhile, the request dropped. */
int cl_chain_step_needs_token(cl_worker *w, const cl_chain_step *step);
int cl_chain_ahead_poll(cl_worker *w, cl_chain_step *step, unsigned long long accept,
                        unsigned long long seq0, int may_claim, cl_token_req **req,
                        const cl_request_spec **spec);
void cl_chain_ahead_drop(cl_chain_step *step);
/* Fetch thread, w->mu held: set the response aside and queue the step's
 * request (its memory is taken) when every bound allows. */
void cl_chain_finish_locked(cl_worker *w, cl_chain_step *step);

/* Consumer: wait up to timeout_ms for the next finished response, moved
 * into *r.  1 taken, 0 timeout, -1 the worker is stopping. */
int cl_chain_take(cl_worker *w, cl_result *r, long timeout_ms);
/* Consumer, before it sends a request itself: discard whatever the thread
 * did ahead (waiting for a transfer under way to end), and note the
 * position sent (may be NULL), the pages read so far and, under max_items,
 * the records still wanted and those of the page asked for already handed
 * out (a checkpoint's). */
int cl_chain_drop(cl_worker *w, long timeout_ms);   /* 0: a transfer still under way */
void cl_chain_note(cl_worker *w, const char *key, size_t keylen, long long pages,
                   long long budget, long long skip, long long asked);
/* Consumer, with the request it sends: the token generation in its
 * headers, and whether it is sent again after the consumer renewed (a 401
 * to it is then final). */
void cl_chain_note_auth(cl_worker *w, unsigned long long gen, int renewed);
/* Fetch thread, no lock held, before the first attempt of a job: whether
 * it needs a token first (cl_chain_auth_locked found none usable, or a 401
 * asks for a newer one). */
int cl_chain_needs_token(cl_worker *w);
/* The cell's failure count as such a job begins to wait (its seq0). */
unsigned long long cl_chain_token_seq(cl_worker *w);
/* Fetch thread, no lock held: one look at the token for such a job, never
 * waiting (token.h, cl_token_poll).  CL_TOKEN_READY: it is in the job's
 * headers, send it.  CL_TOKEN_FAILED: not sent (w->http says why:
 * CURLE_LOGIN_DENIED with the chain's auth_failed and the renewal's failure
 * set), to be set aside as a finished job.  CL_TOKEN_WAIT: look again
 * later.  CL_TOKEN_CLAIMED: the caller sends the token request *spec and
 * gives its outcome to cl_token_renewed, then looks again, accepting the
 * generation that put in (`accept`, as cl_token_poll's). */
int cl_chain_token_poll(cl_worker *w, unsigned long long accept, unsigned long long seq0,
                        int may_claim, cl_token_req **req, const cl_request_spec **spec);
/* Free the chain once the worker is stopped. */
void cl_chain_free(cl_chain *c);

#endif
