/* The driver: listings' requests on one libcurl multi handle; see multi.h.
 *
 * Each attached worker has a slot.  A pager submits and collects its
 * requests through its worker (worker.c: every URL, origin and loop check,
 * decode and error stays in the pager's files); this thread performs them:
 * a queued job waits its turn (FIFO) for one of `concurrency` transfer
 * slots and for its rate limiter, runs on the multi handle, and after a
 * retryable failure waits out its backoff off the handle, without holding a
 * transfer slot.  A finished job is marked done on the worker (waking the
 * pager, writing its notify fd) and, in a fan-out, put on the ready ring
 * that the fan-out's owner pops (cl_multi_next_ready).
 *
 * A listing whose requests are chained (chain.h) gets them sent from this
 * thread: as a page's response is in, its next position is read and the
 * request after it queued here, at most CL_CHAIN_AHEAD finished pages
 * ahead; the pager takes the finished pages in order and checks each one.
 *
 * A chained job that needs a token first (none usable, or a 401 asked for
 * a newer one) waits for it off the handle, holding its turn (S_TOKEN):
 * the token request goes on this same handle, one at a time, or another
 * thread's renewal of the client's token cell is waited for by looking
 * again every CL_TOKEN_LOOK_MS.  The other transfers go on meanwhile: a
 * slow token endpoint holds up only the jobs that need its answer. */
#include "multi.h"
#include "chain.h"
#include "ratelimit.h"
#include "token.h"
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* S_TOKEN: a job waiting for its token before it is sent; S_AHEAD: a
 * finished page held back while the token for the request after it is
 * renewed (chain.h, cl_chain_step_needs_token). */
enum { S_IDLE, S_PENDING, S_ACTIVE, S_WAITING, S_TOKEN, S_AHEAD };

/* With nothing queued, under way or waiting, the thread sleeps this long
 * between looks (a cancel, a job or a stop wakes it at once). */
#define CL_IDLE_WAIT_MS 60000
/* A job waiting for a renewal another thread makes looks again this often. */
#define CL_TOKEN_LOOK_MS 20

typedef struct {
    cl_worker *w;                  /* NULL: unused or detached */
    int state;
    int attempt;                   /* attempts of the current job */
    unsigned long seq;             /* FIFO order among pending jobs */
    long long due_ms;              /* S_WAITING: end of the backoff */
    long long t0_us;               /* start of the transfer */
    int ready;                     /* on the ready ring */
    int detach;                    /* asked to let go of the worker */
    unsigned long long tok_seq0;   /* S_TOKEN, S_AHEAD: the cell's failures when it began to wait */
    unsigned long long tok_accept; /* ... and the token this driver's renewal put in for it */
    cl_chain_step step;            /* S_AHEAD: the request after the page */
} mslot;

struct cl_multi {
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* ready ring and detach, on CL_WAIT_CLOCK */
    pthread_t thread;
    pid_t owner;
    int priv;                      /* one worker's own: no ready ring */
    int running;                   /* the thread is in its loop */
    int started, quit;
    int refs;
    CURLM *multi;
    int concurrency, active, max_active;
    unsigned long seq;
    int nslots;
    mslot *slots;
    int *ring, rhead, rlen;        /* indices of slots whose job is done */
    struct {                       /* the token request on this handle, if any */
        cl_token *cell;            /* NULL: none under way */
        cl_token_req *req;
        cl_http http;
        volatile int cancel;
    } tok;
};

static long long
now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

static int
w_cancelled(cl_worker *w)
{
    return __atomic_load_n(&w->cancel, __ATOMIC_ACQUIRE);
}

/* ---- the retry policy ------------------------------------------------------ */

static int
status_retryable(const cl_retry_opts *r, long status)
{
    for (int i = 0; i < r->n_retry_statuses; i++)
        if (r->retry_statuses[i] == status)
            return 1;
    return 0;
}

/* Full jitter (a uniform draw below the exponential ceiling), unless the
 * server said when to come back (the caller checked it is within the cap). */
static long long
retry_delay_ms(cl_worker *w, int attempt)
{
    const cl_retry_opts *r = &w->retry;
    if (w->http.retry_after_ms >= 0)
        return w->http.retry_after_ms;
    double ceiling = r->backoff * 1000.0 * pow(2.0, attempt - 1);
    if (ceiling > r->backoff_max * 1000.0)
        ceiling = r->backoff_max * 1000.0;
    double u = (double)rand_r(&w->seed) / ((double)RAND_MAX + 1.0);
    return (long long)(u * ceiling);
}

/* After attempt `attempt` of the job (its transfer returned `code` after
 * `ms`): record it in the log, report it to the limiter and decide.  The
 * delay in ms before the next attempt, or -1 when the job is over. */
static long long
after_attempt(cl_worker *w, int attempt, CURLcode c, double ms)
{
    cl_attempt *a = &w->log[(attempt - 1) % CL_MAX_ATTEMPT_LOG];
    *a = (cl_attempt){.attempt = attempt, .code = c, .status = w->http.status,
                      .bytes = w->http.body.len, .ms = ms, .delay_ms = -1};
    if (w->limiter != NULL)
        cl_limiter_feed(w->limiter, &w->http, c);
    int retry = c == CURLE_OK ? status_retryable(&w->retry, w->http.status)
                              : cl_http_failure(c, w->http.too_large).retry;
    if (!retry || attempt > w->retry.max_retries || w_cancelled(w))
        return -1;
    /* A server that asks for more patience than allowed: give up now
     * rather than come back early against its word. */
    if (w->http.retry_after_ms >= 0
        && (double)w->http.retry_after_ms > w->retry.retry_after_max * 1000.0) {
        a->retry_after_too_long = 1;
        return -1;
    }
    a->delay_ms = retry_delay_ms(w, attempt);
    return a->delay_ms;
}

/* ---- jobs on slots ---------------------------------------------------------- */

void
cl_multi_signal_fd(int fd)
{
    /* an eventfd gets 1 added, a pipe 8 more bytes; the fd is non-blocking,
     * and when full it is readable already */
    uint64_t one = 1;
    ssize_t rc = write(fd, &one, sizeof one);
    (void)rc;
}

/* Slot i goes on the ready ring (once), and the fan-out's owner waiting in
 * cl_multi_next_ready wakes up.  Called with m->mu held. */
static void
push_ready(cl_multi *m, int i)
{
    mslot *s = &m->slots[i];
    if (m->priv)
        return;                        /* its pager alone waits, on its worker */
    if (!s->ready) {
        s->ready = 1;
        m->ring[(m->rhead + m->rlen) % m->nslots] = i;
        m->rlen++;
    }
    pthread_cond_broadcast(&m->cv);
}

static void complete(cl_multi *m, int i, CURLcode code_if_not_run);
static void token_send(cl_multi *m, cl_token *cell, cl_token_req *req,
                       const cl_request_spec *spec);

/* A chained job's page set aside and the request after it queued (the
 * step's), or held as the consumer's to send.  m->mu held. */
static void
finish_chained(cl_multi *m, int i, cl_chain_step *step)
{
    mslot *s = &m->slots[i];
    cl_worker *w = s->w;
    pthread_mutex_lock(&w->mu);
    w->attempts = s->attempt;
    cl_chain_finish_locked(w, step);
    if (w->state == CL_W_QUEUED) {     /* the next request: its turn as any job's */
        s->state = S_PENDING;
        s->attempt = 0;
        s->seq = m->seq++;
    }
    pthread_mutex_unlock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    push_ready(m, i);
}

/* One look for slot i, waiting for its token (S_TOKEN or S_AHEAD), never
 * waiting: a renewal it claims is sent on this handle (one at a time), then
 * looked at again, as it may have failed at once.  m->mu held. */
static int
token_look(cl_multi *m, int i)
{
    mslot *s = &m->slots[i];
    cl_worker *w = s->w;
    for (int claim = m->tok.cell == NULL;; claim = 0) {
        cl_token_req *req = NULL;
        const cl_request_spec *spec = NULL;
        int rc = s->state == S_AHEAD
            ? cl_chain_ahead_poll(w, &s->step, s->tok_accept, s->tok_seq0, claim, &req, &spec)
            : cl_chain_token_poll(w, s->tok_accept, s->tok_seq0, claim, &req, &spec);
        if (rc != CL_TOKEN_CLAIMED)
            return rc;
        token_send(m, w->chain->token, req, spec);
    }
}

/* Slot i holds a finished page while the token for its next request is
 * renewed (S_AHEAD).  m->mu held. */
static void
ahead_turn(cl_multi *m, int i)
{
    mslot *s = &m->slots[i];
    int rc = token_look(m, i);
    if (rc == CL_TOKEN_READY || rc == CL_TOKEN_FAILED) {
        cl_chain_step step = s->step;
        s->state = S_IDLE;
        finish_chained(m, i, &step);
    }
}

/* A slot held in S_AHEAD gives up the request after its page (cancelled,
 * stopping): the page is set aside without it. */
static void
ahead_drop(cl_multi *m, int i)
{
    mslot *s = &m->slots[i];
    cl_chain_step step = s->step;
    cl_chain_ahead_drop(&step);
    s->state = S_IDLE;
    finish_chained(m, i, &step);
}

/* The job of slot i is over: the worker is done (its pager wakes up) and
 * the slot goes on the ready ring.  Called with m->mu held. */
static void
complete(cl_multi *m, int i, CURLcode code_if_not_run)
{
    mslot *s = &m->slots[i];
    cl_worker *w = s->w;
    if (code_if_not_run != CURLE_OK) {       /* never reached libcurl (again) */
        w->http.code = code_if_not_run;
        w->http.too_large = 0;
    }
    s->state = S_IDLE;
    if (w->chain != NULL) {
        /* the next position is read, and the request after it queued,
         * here: the response is this thread's until it is set aside */
        cl_chain_step step;
        pthread_mutex_unlock(&m->mu);      /* the page read without the driver's lock */
        cl_chain_plan(w, &step);
        pthread_mutex_lock(&m->mu);
        if (s->w == w && !s->detach && cl_chain_step_needs_token(w, &step)) {
            s->state = S_AHEAD;
            s->step = step;
            s->tok_seq0 = cl_chain_token_seq(w);
            s->tok_accept = 0;
            ahead_turn(m, i);
            return;
        }
        finish_chained(m, i, &step);
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->attempts = s->attempt;
    w->state = CL_W_DONE;
    if (w->notify_fd >= 0)
        cl_multi_signal_fd(w->notify_fd);
    pthread_mutex_unlock(&w->mu);
    /* Woken after the unlock: the pager wakes to a free mutex instead of
     * blocking on it again at once.  The condition outlives this: the
     * worker is freed only after its driver let go of it. */
    pthread_cond_broadcast(&w->cv);
    push_ready(m, i);
}

/* Slot i lets go of its worker (its pager was closed, by any thread): the
 * slot goes on the ready ring too, so that the thread iterating the
 * fan-out learns of it instead of waiting for a job that will never end.
 * Called with m->mu held. */
static void
release_slot(cl_multi *m, int i)
{
    mslot *s = &m->slots[i];
    s->state = S_IDLE;
    s->w = NULL;
    push_ready(m, i);
}

static void send_job(cl_multi *m, int i);

/* The token request the cell gave this driver to send (m->mu held): on the
 * handle, or failed at once. */
static void
token_done(cl_multi *m)
{
    unsigned long long seq = 0, gen = 0;
    if (cl_token_renewed(m->tok.cell, m->tok.req, &m->tok.http, &seq, &gen) == 1) {
        /* the jobs that waited for it send it whatever its lifetime, as the
         * claimer of a renewal always has */
        for (int i = 0; i < m->nslots; i++) {
            mslot *s = &m->slots[i];
            if (s->w != NULL && (s->state == S_TOKEN || s->state == S_AHEAD)
                && s->w->chain != NULL && s->w->chain->token == m->tok.cell)
                s->tok_accept = gen;
        }
    }
    cl_http_cleanup(&m->tok.http);
    cl_token_unref(m->tok.cell);
    m->tok.cell = NULL;
    m->tok.req = NULL;
}

static void
token_send(cl_multi *m, cl_token *cell, cl_token_req *req, const cl_request_spec *spec)
{
    cl_http *h = &m->tok.http;
    cl_http_opts o = spec->opts;
    o.driven = 1;                      /* on this handle, not one of its own */
    m->tok.cancel = 0;
    m->tok.cell = cl_token_ref(cell);
    m->tok.req = req;
    if (cl_http_init(h, &o, &m->tok.cancel) == 0) {
        cl_http_begin(h, spec->url, spec->headers, spec->post, spec->post_len);
        curl_easy_setopt(h->easy, CURLOPT_PRIVATE, (void *)(intptr_t)-1);
        /* a connection of its own, as _core.request's: on one of the
         * listings' kept-alive connections that the server had closed,
         * libcurl would send it again by itself, where the plain call fails */
        curl_easy_setopt(h->easy, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(h->easy, CURLOPT_FORBID_REUSE, 1L);
        if (curl_multi_add_handle(m->multi, h->easy) == CURLM_OK)
            return;
    }
    h->code = CURLE_FAILED_INIT;
    token_done(m);
}

/* Slot i waits for its token before it is sent (S_TOKEN, counted in
 * m->active).  m->mu held. */
static void
token_turn(cl_multi *m, int i)
{
    int rc = token_look(m, i);
    if (rc == CL_TOKEN_READY)
        send_job(m, i);
    else if (rc == CL_TOKEN_FAILED) {
        m->active--;
        complete(m, i, m->slots[i].w->http.code);
    }
}

static void
start(cl_multi *m, int i)
{
    mslot *s = &m->slots[i];
    cl_worker *w = s->w;
    s->attempt++;
    s->t0_us = now_us();
    if (s->attempt == 1) {             /* under way */
        pthread_mutex_lock(&w->mu);
        w->state = CL_W_RUNNING;
        pthread_mutex_unlock(&w->mu);
    }
    if (s->attempt == 1 && cl_chain_needs_token(w)) {
        /* its token first (chain.h): it holds its turn meanwhile */
        s->state = S_TOKEN;
        s->tok_seq0 = cl_chain_token_seq(w);
        s->tok_accept = 0;
        if (++m->active > m->max_active)
            m->max_active = m->active;
        token_turn(m, i);
        return;
    }
    send_job(m, i);
}

/* The job of slot i on the handle: counted in m->active already when it
 * waited for its token. */
static void
send_job(cl_multi *m, int i)
{
    mslot *s = &m->slots[i];
    cl_worker *w = s->w;
    int counted = s->state == S_TOKEN;
    s->t0_us = now_us();
    cl_http_begin(&w->http, w->url, w->headers, NULL, 0);
    curl_easy_setopt(w->http.easy, CURLOPT_PRIVATE, (void *)(intptr_t)i);
    /* Over TLS, a transfer that finds a connection still in its handshake
     * waits to learn whether the server multiplexes (ALPN h2) rather than
     * opening a connection of its own: the first `concurrency` transfers
     * then share one HTTP/2 connection too.  Plain http is HTTP/1.1. */
    curl_easy_setopt(w->http.easy, CURLOPT_PIPEWAIT,
                     strncasecmp(w->url, "https://", 8) == 0 ? 1L : 0L);
    if (curl_multi_add_handle(m->multi, w->http.easy) != CURLM_OK) {
        /* the limiter let this request go: it is not on its way after all */
        if (w->limiter != NULL)
            cl_limiter_feed(w->limiter, &w->http, CURLE_FAILED_INIT);
        if (counted)
            m->active--;
        complete(m, i, CURLE_FAILED_INIT);
        return;
    }
    s->state = S_ACTIVE;
    if (!counted && ++m->active > m->max_active)
        m->max_active = m->active;
}

/* A transfer taken off the handle before it finished. */
static void
drop_active(cl_multi *m, mslot *s)
{
    curl_multi_remove_handle(m->multi, s->w->http.easy);
    m->active--;
    if (s->w->limiter != NULL)
        cl_limiter_feed(s->w->limiter, &s->w->http, CURLE_ABORTED_BY_CALLBACK);
}

/* A cancelled transfer ends now, as libcurl ends one its progress callback
 * aborts: off the handle, its attempt logged, the job over.  A slow server
 * or a stalled body never holds up a close() or Ctrl-C. */
static void
abort_active(cl_multi *m, int i)
{
    mslot *s = &m->slots[i];
    cl_worker *w = s->w;
    curl_multi_remove_handle(m->multi, w->http.easy);
    m->active--;
    cl_http_end(&w->http, CURLE_ABORTED_BY_CALLBACK);
    double ms = (double)(now_us() - s->t0_us) / 1000.0;
    (void)after_attempt(w, s->attempt, CURLE_ABORTED_BY_CALLBACK, ms);   /* -1: cancelled */
    complete(m, i, CURLE_OK);
}

/* Detach requests, cancels, backoffs that are over, then new transfers
 * while there is room.  Returns the longest the thread may sleep (ms).
 * Called with m->mu held. */
static long
schedule(cl_multi *m)
{
    long long now = now_us() / 1000;
    long wait = CL_IDLE_WAIT_MS;
    for (int i = 0; i < m->nslots; i++) {
        mslot *s = &m->slots[i];
        if (s->w == NULL)
            continue;
        if (s->detach) {
            if (s->state == S_ACTIVE)
                drop_active(m, s);
            else if (s->state == S_TOKEN)
                m->active--;
            else if (s->state == S_AHEAD)
                cl_chain_ahead_drop(&s->step);
            release_slot(m, i);
            continue;
        }
        if (s->state == S_ACTIVE && w_cancelled(s->w))
            abort_active(m, i);
        else if ((s->state == S_PENDING || s->state == S_WAITING) && w_cancelled(s->w))
            complete(m, i, CURLE_ABORTED_BY_CALLBACK);
        else if (s->state == S_TOKEN && w_cancelled(s->w)) {
            m->active--;
            complete(m, i, CURLE_ABORTED_BY_CALLBACK);
        }
        else if (s->state == S_TOKEN) {
            token_turn(m, i);
            if (s->state == S_TOKEN && wait > CL_TOKEN_LOOK_MS)
                wait = CL_TOKEN_LOOK_MS;
        }
        else if (s->state == S_AHEAD && w_cancelled(s->w))
            ahead_drop(m, i);
        else if (s->state == S_AHEAD) {
            ahead_turn(m, i);
            if (s->state == S_AHEAD && wait > CL_TOKEN_LOOK_MS)
                wait = CL_TOKEN_LOOK_MS;
        }
        else if (s->state == S_WAITING && s->due_ms <= now) {
            s->state = S_PENDING;
            s->seq = m->seq++;
        }
        else if (s->state == S_WAITING && s->due_ms - now < wait)
            wait = (long)(s->due_ms - now);
        else if (s->state == S_ACTIVE && wait > 1000)
            wait = 1000;               /* libcurl's own timers cut it shorter */
    }
    while (m->active < m->concurrency) {
        int best = -1;
        for (int i = 0; i < m->nslots; i++)
            if (m->slots[i].w != NULL && m->slots[i].state == S_PENDING
                && (best < 0 || m->slots[i].seq < m->slots[best].seq))
                best = i;
        if (best < 0)
            break;
        cl_limiter *l = m->slots[best].w->limiter;
        long long us = l != NULL ? cl_limiter_reserve(l) : 0;
        if (us > 0) {                  /* its origin's limiter says later */
            long ms = (long)((us + 999) / 1000);
            m->slots[best].state = S_WAITING;
            m->slots[best].due_ms = now + ms;
            if (ms < wait)
                wait = ms;
            continue;
        }
        start(m, best);
        wait = 0;                      /* libcurl's timer is due: no poll before performing */
    }
    return wait < 0 ? 0 : wait;
}

/* Transfers libcurl has finished: retry after a backoff, or complete. */
static void
collect(cl_multi *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        void *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        int i = (int)(intptr_t)priv;
        curl_multi_remove_handle(m->multi, easy);
        if (i == -1 && m->tok.cell != NULL && easy == m->tok.http.easy) {
            cl_http_end(&m->tok.http, code);
            token_done(m);             /* its jobs look again in schedule() */
            continue;
        }
        if (i < 0 || i >= m->nslots || m->slots[i].w == NULL
            || m->slots[i].w->http.easy != easy)
            continue;
        mslot *s = &m->slots[i];
        cl_worker *w = s->w;
        m->active--;
        cl_http_end(&w->http, code);
        double ms = (double)(now_us() - s->t0_us) / 1000.0;
        long long delay = after_attempt(w, s->attempt, code, ms);
        if (delay >= 0 && !w_cancelled(w) && !m->quit) {
            s->state = S_WAITING;
            s->due_ms = now_us() / 1000 + delay;
        }
        else
            complete(m, i, CURLE_OK);
    }
}

static void *
multi_main(void *arg)
{
    cl_multi *m = arg;
#if defined(__linux__)
    /* in ps, gdb, /proc: a pager's own driver, or a fan-out's */
    pthread_setname_np(pthread_self(), m->priv ? "custlist-fetch" : "custlist-fanout");
#endif
    pthread_mutex_lock(&m->mu);
    while (!m->quit) {
        schedule(m);
        pthread_mutex_unlock(&m->mu);
        int running = 0;
        curl_multi_perform(m->multi, &running);
        pthread_mutex_lock(&m->mu);
        collect(m);
        if (m->quit)
            break;
        long wait;
        /* room freed and work queued meanwhile: start it before sleeping
         * (an added handle makes libcurl's timer due at once) */
        wait = schedule(m);
        pthread_mutex_unlock(&m->mu);
        if (wait > 0)
            curl_multi_poll(m->multi, NULL, 0, (int)wait, NULL);
        pthread_mutex_lock(&m->mu);
    }
    /* Stopping: no transfer stays on the handle, and no pager waits for a
     * job that will never run (it sees a cancel). */
    for (int i = 0; i < m->nslots; i++) {
        mslot *s = &m->slots[i];
        if (s->w == NULL || s->state == S_IDLE)
            continue;
        if (s->state == S_AHEAD) {
            ahead_drop(m, i);
            continue;
        }
        if (s->state == S_ACTIVE)
            drop_active(m, s);
        else if (s->state == S_TOKEN)
            m->active--;
        complete(m, i, CURLE_ABORTED_BY_CALLBACK);
    }
    if (m->tok.cell != NULL) {         /* not finished: the next renewal is someone else's */
        curl_multi_remove_handle(m->multi, m->tok.http.easy);
        cl_http_end(&m->tok.http, CURLE_ABORTED_BY_CALLBACK);
        token_done(m);
    }
    m->running = 0;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

int
cl_multi_enqueue(cl_multi *m, cl_worker *w)
{
    pthread_mutex_lock(&m->mu);
    int ok = m->running && !m->quit && w->driver_slot >= 0 && w->driver_slot < m->nslots
          && m->slots[w->driver_slot].w == w;
    if (ok) {
        mslot *s = &m->slots[w->driver_slot];
        s->state = S_PENDING;
        s->attempt = 0;
        s->seq = m->seq++;
    }
    pthread_mutex_unlock(&m->mu);
    if (ok)
        curl_multi_wakeup(m->multi);
    return ok ? 0 : -1;
}

void
cl_multi_wakeup(cl_multi *m)
{
    curl_multi_wakeup(m->multi);
}

void
cl_multi_unqueue(cl_worker *w)
{
    cl_multi *m = w->driver;
    int i = w->driver_slot;
    pthread_mutex_lock(&m->mu);
    mslot *s = &m->slots[i];
    /* not started: pending, or waiting for its limiter before attempt 1 */
    if (s->w == w && (s->state == S_PENDING || s->state == S_WAITING) && s->attempt == 0) {
        s->state = S_IDLE;
        pthread_mutex_lock(&w->mu);
        if (w->state == CL_W_QUEUED)
            w->state = CL_W_IDLE;
        pthread_mutex_unlock(&w->mu);
    }
    pthread_mutex_unlock(&m->mu);
}

void
cl_multi_ready(cl_worker *w)
{
    cl_multi *m = w->driver;
    if (m->priv)
        return;                        /* no ready ring: its pager waits on the worker */
    pthread_mutex_lock(&m->mu);
    if (m->slots[w->driver_slot].w == w)
        push_ready(m, w->driver_slot);
    pthread_mutex_unlock(&m->mu);
}

/* ---- life ------------------------------------------------------------------- */

static void
multi_free(cl_multi *m)
{
    if (m->multi != NULL)
        curl_multi_cleanup(m->multi);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m->slots);
    free(m->ring);
    free(m);
}

/* Drop a reference (m->mu held; released here). */
static void
unref_unlock(cl_multi *m)
{
    int last = --m->refs == 0;
    pthread_mutex_unlock(&m->mu);
    if (last)
        multi_free(m);
}

void
cl_multi_unref(cl_multi *m)
{
    pthread_mutex_lock(&m->mu);
    unref_unlock(m);
}

void
cl_multi_stop(cl_multi *m)
{
    pthread_mutex_lock(&m->mu);
    m->quit = 1;
    int join = m->started;
    m->started = 0;
    pthread_mutex_unlock(&m->mu);
    curl_multi_wakeup(m->multi);
    if (join)
        pthread_join(m->thread, NULL);
}

void
cl_multi_detach(cl_worker *w)
{
    cl_multi *m = w->driver;
    int i = w->driver_slot;
    if (w->driver_private)
        cl_multi_stop(m);              /* nothing is on its handle after this */
    pthread_mutex_lock(&m->mu);
    mslot *s = &m->slots[i];
    if (s->w == w) {
        if (m->running) {
            s->detach = 1;
            curl_multi_wakeup(m->multi);
            while (s->w == w && m->running)
                pthread_cond_wait(&m->cv, &m->mu);
        }
        if (s->w == w)                     /* the thread is gone: nothing is on the handle */
            release_slot(m, i);
    }
    pthread_mutex_unlock(&m->mu);
}

void
cl_multi_release(cl_worker *w)
{
    cl_multi *m = w->driver;
    w->driver = NULL;
    cl_multi_unref(m);
}

int
cl_multi_foreign(const cl_multi *m)
{
    return m->owner != getpid();
}

static cl_multi *
multi_alloc(int nslots, int concurrency)
{
    pthread_condattr_t ca;
    cl_multi *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->nslots = nslots;
    m->concurrency = concurrency;
    m->refs = 1;
    m->owner = getpid();
    m->slots = calloc((size_t)(nslots > 0 ? nslots : 1), sizeof *m->slots);
    m->ring = calloc((size_t)(nslots > 0 ? nslots : 1), sizeof *m->ring);
    if (m->slots == NULL || m->ring == NULL || (m->multi = curl_multi_init()) == NULL)
        goto fail_alloc;
    /* One connection cache for every listing; HTTP/2 streams share a
     * connection where the server offers it. */
    curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    if (pthread_mutex_init(&m->mu, NULL) != 0)
        goto fail_alloc;
    if (pthread_condattr_init(&ca) != 0) {
        pthread_mutex_destroy(&m->mu);
        goto fail_alloc;
    }
    int rc = 0;
#if !defined(__APPLE__)
    rc = pthread_condattr_setclock(&ca, CL_WAIT_CLOCK);
#endif
    if (rc == 0)
        rc = pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        pthread_mutex_destroy(&m->mu);
        goto fail_alloc;
    }
    return m;
fail_alloc:
    if (m->multi != NULL)
        curl_multi_cleanup(m->multi);
    free(m->slots);
    free(m->ring);
    free(m);
    return NULL;
}

static int
multi_run(cl_multi *m)
{
    m->running = 1;
    if (pthread_create(&m->thread, NULL, multi_main, m) != 0) {
        m->running = 0;
        return -1;
    }
    m->started = 1;
    return 0;
}

cl_multi *
cl_multi_new(int nslots, int concurrency)
{
    cl_multi *m = multi_alloc(nslots, concurrency);
    if (m != NULL && multi_run(m) < 0) {
        multi_free(m);
        return NULL;
    }
    return m;
}

void
cl_multi_attach(cl_multi *m, cl_worker *w, int i)
{
    pthread_mutex_lock(&w->mu);
    w->driver = m;
    w->driver_slot = i;
    w->driver_private = 0;
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_lock(&m->mu);
    m->slots[i].w = w;
    m->refs++;
    pthread_mutex_unlock(&m->mu);
}

int
cl_multi_private(cl_worker *w)
{
    cl_multi *m = multi_alloc(1, 1);
    if (m == NULL)
        return -1;
    m->priv = 1;
    /* The worker's reference is the one it was made with.  Its slot is set
     * before the thread starts (pthread_create orders it): the caller holds
     * w->mu, and the driver's lock is only ever taken before a worker's. */
    m->slots[0].w = w;
    if (multi_run(m) < 0) {
        multi_free(m);
        return -1;
    }
    w->driver = m;
    w->driver_slot = 0;
    w->driver_private = 1;
    return 0;
}

/* ---- the fan-out's owner ------------------------------------------------------ */

/* Pop a listing whose job is done (its worker still attached and done),
 * or whose pager let go of the fan-out (closed meanwhile: reading it says
 * so); -1 if none.  m->mu held. */
static int
pop_ready(cl_multi *m)
{
    while (m->rlen > 0) {
        int i = m->ring[m->rhead];
        m->rhead = (m->rhead + 1) % m->nslots;
        m->rlen--;
        mslot *s = &m->slots[i];
        s->ready = 0;
        if (s->w == NULL)
            return i;
        pthread_mutex_lock(&s->w->mu);
        int done = s->w->state == CL_W_DONE
                   || (s->w->chain != NULL && s->w->chain->count > 0);
        pthread_mutex_unlock(&s->w->mu);
        if (done)
            return i;
    }
    return -1;
}

int
cl_multi_next_ready(cl_multi *m, long long us)
{
    struct timespec ts;
    clock_gettime(CL_WAIT_CLOCK, &ts);
    if (us > 0) {
        ts.tv_nsec += (long)(us % 1000000) * 1000L;
        ts.tv_sec += (time_t)(us / 1000000) + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
    }
    pthread_mutex_lock(&m->mu);
    int i = pop_ready(m);
    if (i < 0 && us > 0) {
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
        i = pop_ready(m);
    }
    pthread_mutex_unlock(&m->mu);
    return i;
}

void
cl_multi_stats(cl_multi *m, int *active, int *max_active)
{
    pthread_mutex_lock(&m->mu);
    *active = m->active;
    *max_active = m->max_active;
    pthread_mutex_unlock(&m->mu);
}
