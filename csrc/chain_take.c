/* The chain of requests as the consumer sees it: the finished pages taken
 * in order (the request parked behind them queued on the driver), what the
 * fetch thread did ahead dropped, what the consumer sent noted, and the
 * chain freed.  The fetch thread's half is chain.c; see chain.h. */
#include "chain_internal.h"
#include "multi.h"
#include "token.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void
cl_result_free(cl_result *r)
{
    free(r->http.body.data);
    free(r->http.headers.data);
    free(r->next);
    memset(r, 0, sizeof *r);
}

static void
deadline(struct timespec *ts, long ms)
{
    clock_gettime(CL_WAIT_CLOCK, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int
cl_chain_take(cl_worker *w, cl_result *r, long timeout_ms)
{
    cl_chain *c = w->chain;
    struct timespec ts;
    int start = 0, more = 0;
    deadline(&ts, timeout_ms);
    pthread_mutex_lock(&w->mu);
    while (c->count == 0 && !w->quit) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    /* stopped (interpreter exit): pages fetched ahead are not handed out,
     * as no page is once the worker is stopped */
    int res = w->quit ? -1 : c->count > 0 ? 1 : 0;
    if (res == 1) {
        cl_result *from = &c->ring[c->head], old = *r;
        *r = *from;
        /* the buffers the consumer held go back to the slot as spares */
        from->http.body = old.http.body;
        from->http.headers = old.http.headers;
        from->next = NULL;
        free(old.next);
        c->head = (c->head + 1) % CL_CHAIN_AHEAD;
        c->count--;
        if (c->parked != NULL && w->state == CL_W_IDLE && !w->quit
            && !__atomic_load_n(&w->cancel, __ATOMIC_ACQUIRE)) {
            if (cl_chain_auth_locked(w) == 0) {
                /* without a usable token, the fetch thread renews first */
                cl_chain_start_locked(w, c->parked);
                start = 1;
            }
            else {
                /* out of memory: never sent; the consumer sends it when it
                 * reaches the page it follows */
                free(c->parked);
                if (c->count > 0) {
                    cl_result *last = &c->ring[(c->head + c->count - 1) % CL_CHAIN_AHEAD];
                    free(last->next);
                    last->next = NULL;
                }
            }
            c->parked = NULL;
        }
        more = c->count > 0;
    }
    pthread_mutex_unlock(&w->mu);
    /* the driver's thread runs the request parked, and learns that a
     * finished page still waits (FanOut.next_ready() tells of it again) */
    if (start && cl_multi_enqueue(w->driver, w) < 0) {
        pthread_mutex_lock(&w->mu);    /* the driver has stopped: never sent */
        if (w->state == CL_W_QUEUED)
            w->state = CL_W_IDLE;
        pthread_mutex_unlock(&w->mu);
    }
    if (more && w->driver != NULL)
        cl_multi_ready(w);
    return res;
}

int
cl_chain_drop(cl_worker *w, long timeout_ms)
{
    cl_chain *c = w->chain;
    struct timespec ts;
    deadline(&ts, timeout_ms);
    pthread_mutex_lock(&w->mu);
    c->halt = 1;                       /* a transfer under way is discarded when it ends */
    free(c->parked);
    c->parked = NULL;
    if (w->state == CL_W_QUEUED && w->driver != NULL) {
        /* on its driver's queue: taken off it there (its lock comes first) */
        pthread_mutex_unlock(&w->mu);
        cl_multi_unqueue(w);
        pthread_mutex_lock(&w->mu);
    }
    while (w->state == CL_W_RUNNING && !w->quit) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    if (w->quit || w->state == CL_W_RUNNING) {
        /* stopping (its thread still owns the job), or not over yet */
        pthread_mutex_unlock(&w->mu);
        return w->quit ? 1 : 0;
    }
    for (int i = 0; i < CL_CHAIN_AHEAD; i++) {
        free(c->ring[i].next);
        c->ring[i].next = NULL;
    }
    c->head = c->count = 0;
    c->halt = 0;
    c->need_token = c->resent = c->auth_failed = 0;
    free(w->url);
    curl_slist_free_all(w->headers);
    w->url = NULL;
    w->headers = NULL;
    pthread_mutex_unlock(&w->mu);
    return 1;
}

void
cl_chain_note(cl_worker *w, const char *key, size_t keylen, long long pages, long long budget,
              long long skip, long long asked)
{
    cl_chain *c = w->chain;
    pthread_mutex_lock(&w->mu);
    if (key != NULL)
        (void)cl_pos_set_add(&c->seen, key, keylen);   /* out of memory: a guard less */
    c->pages = pages;
    c->budget = budget;
    c->skip = skip;
    c->asked = asked;
    /* offset and page modes: the position asked for, given as digits */
    c->at = c->mode == CL_CHAIN_OFFSET ? 0 : c->first_page;
    if (key != NULL && (c->mode == CL_CHAIN_OFFSET || c->mode == CL_CHAIN_PAGE)) {
        c->at = keylen >= 1 && keylen <= 18 ? 0 : -1;
        for (size_t i = 0; i < keylen && c->at >= 0; i++)
            c->at = key[i] >= '0' && key[i] <= '9' ? c->at * 10 + (key[i] - '0') : -1;
    }
    pthread_mutex_unlock(&w->mu);
}

void
cl_chain_note_auth(cl_worker *w, unsigned long long gen, int renewed)
{
    pthread_mutex_lock(&w->mu);
    w->chain->gen = gen;
    w->chain->need_token = 0;
    w->chain->resent = renewed;
    pthread_mutex_unlock(&w->mu);
}

void
cl_chain_free(cl_chain *c)
{
    if (c == NULL)
        return;
    cl_token_unref(c->token);
    for (int i = 0; i < CL_CHAIN_AHEAD; i++)
        cl_result_free(&c->ring[i]);
    cl_pos_paths_free(&c->paths);
    cl_pos_set_free(&c->seen);
    free(c->base_url);
    free(c->cursor_param);
    free(c->size_param);
    free(c->parked);
    free(c);
}
