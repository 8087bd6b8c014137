/* Background fetch thread with retries; see worker.h. */
#include "worker.h"
#include "chain.h"
#include "multi.h"
#include "ratelimit.h"
#include <errno.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Every timed wait runs on CL_WAIT_CLOCK (worker.h). */
static void
deadline_after(struct timespec *ts, long long ms)
{
    clock_gettime(CL_WAIT_CLOCK, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static double
ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1000.0 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static int
cancelled(cl_worker *w)
{
    return __atomic_load_n(&w->cancel, __ATOMIC_ACQUIRE);
}

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

/* Sleep unless cancelled; returns 1 if cancelled.  Called with mu held. */
static int
backoff_sleep(cl_worker *w, long long ms)
{
    struct timespec ts;
    deadline_after(&ts, ms);
    while (!cancelled(w) && !w->quit) {
        if (pthread_cond_timedwait(&w->job_cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    return cancelled(w) || w->quit;
}

long long
cl_worker_after_attempt(cl_worker *w, int attempt, CURLcode c, double ms)
{
    cl_attempt *a = &w->log[(attempt - 1) % CL_MAX_ATTEMPT_LOG];
    *a = (cl_attempt){.attempt = attempt, .code = c, .status = w->http.status,
                      .bytes = w->http.body.len, .ms = ms, .delay_ms = -1};
    if (w->limiter != NULL)
        cl_limiter_feed(w->limiter, &w->http, c);
    int retry = c == CURLE_OK ? status_retryable(&w->retry, w->http.status)
                              : cl_http_failure(c, w->http.too_large).retry;
    if (!retry || attempt > w->retry.max_retries || cancelled(w))
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

/* Wait for the rate limiter's go; -1 when cancelled meanwhile. */
static int
pace(cl_worker *w)
{
    long long us;
    while (w->limiter != NULL && (us = cl_limiter_reserve(w->limiter)) > 0) {
        pthread_mutex_lock(&w->mu);
        int stop = backoff_sleep(w, (us + 999) / 1000);
        pthread_mutex_unlock(&w->mu);
        if (stop)
            return -1;
    }
    return 0;
}

static void
run_job(cl_worker *w)
{
    int attempt = 0;
    for (;;) {
        attempt++;
        if (pace(w) < 0) {
            w->http.code = CURLE_ABORTED_BY_CALLBACK;   /* as a cancelled transfer */
            w->http.status = 0;
            w->http.too_large = 0;
            break;
        }
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CURLcode c = cl_http_get(&w->http, w->url, w->headers);
        long long ms = cl_worker_after_attempt(w, attempt, c, ms_since(&t0));
        if (ms < 0)
            break;
        pthread_mutex_lock(&w->mu);
        int stop = backoff_sleep(w, ms);
        pthread_mutex_unlock(&w->mu);
        if (stop)
            break;
    }
    w->attempts = attempt;
}

/* Tell an event loop watching the notify fd (if any) that the job is over:
 * an eventfd gets 1 added, a pipe 8 more bytes; the fd is non-blocking, and
 * when full it is readable already.  With w->mu held. */
static void
signal_fd(cl_worker *w)
{
    if (w->notify_fd >= 0) {
        uint64_t one = 1;
        ssize_t rc = write(w->notify_fd, &one, sizeof one);
        (void)rc;                   /* full counter: already readable */
    }
}

/* The job is over: CL_W_DONE and the notify fd written, with w->mu held;
 * the waiters are for the caller to wake. */
static void
mark_done(cl_worker *w)
{
    w->state = CL_W_DONE;
    signal_fd(w);
}

void
cl_worker_done_locked(cl_worker *w)
{
    mark_done(w);
    pthread_cond_broadcast(&w->cv);
}

static void *
worker_main(void *arg)
{
    cl_worker *w = arg;
#if defined(__linux__)
    pthread_setname_np(pthread_self(), "custlist-fetch");   /* in ps, gdb, /proc */
#endif
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->state != CL_W_QUEUED && !w->quit)
            pthread_cond_wait(&w->job_cv, &w->mu);
        if (w->quit)
            break;
        w->state = CL_W_RUNNING;
        pthread_mutex_unlock(&w->mu);
        run_job(w);
        if (w->chain != NULL) {
            /* the next position is read before the lock: the response is
             * this thread's until it is set aside */
            cl_chain_step step;
            cl_chain_plan(w, &step);
            pthread_mutex_lock(&w->mu);
            cl_chain_finish_locked(w, &step);
            pthread_mutex_unlock(&w->mu);
            pthread_cond_broadcast(&w->cv);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        pthread_mutex_lock(&w->mu);
        mark_done(w);
        pthread_mutex_unlock(&w->mu);
        /* Woken after the unlock: the pager wakes to a free mutex instead
         * of blocking on it again at once.  The condition outlives this:
         * the pager frees the worker only after joining this thread. */
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int
cl_worker_init(cl_worker *w, const cl_http_opts *http, const cl_retry_opts *retry)
{
    pthread_condattr_t ca;
    memset(w, 0, sizeof *w);
    w->notify_fd = -1;
    w->retry = *retry;
    w->owner = getpid();
    w->seed = (unsigned int)time(NULL) ^ (unsigned int)(size_t)w;
    if (pthread_mutex_init(&w->mu, NULL) != 0)
        return -1;
    if (pthread_condattr_init(&ca) != 0) {
        pthread_mutex_destroy(&w->mu);
        return -1;
    }
    int rc = 0, conds = 0;
#if !defined(__APPLE__)
    rc = pthread_condattr_setclock(&ca, CL_WAIT_CLOCK);
#endif
    if (rc == 0 && (rc = pthread_cond_init(&w->cv, &ca)) == 0)
        conds++;
    if (rc == 0 && (rc = pthread_cond_init(&w->job_cv, &ca)) == 0)
        conds++;
    pthread_condattr_destroy(&ca);
    if (rc == 0 && cl_http_init(&w->http, http, &w->cancel) < 0) {
        cl_http_cleanup(&w->http);
        rc = -1;
    }
    if (rc != 0) {
        if (conds > 1)
            pthread_cond_destroy(&w->job_cv);
        if (conds > 0)
            pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        return -1;
    }
    return 0;
}

int
cl_worker_submit(cl_worker *w, char *url, struct curl_slist *headers)
{
    pthread_mutex_lock(&w->mu);
    if (w->quit || cancelled(w) || w->state != CL_W_IDLE)
        goto refuse;
    if (!w->started && w->driver == NULL) {
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            goto refuse;
        w->started = 1;
    }
    w->url = url;
    w->headers = headers;
    w->attempts = 0;
    w->state = CL_W_QUEUED;
    pthread_mutex_unlock(&w->mu);
    /* after the unlock (see worker_main); only the owner frees the worker */
    if (w->driver == NULL)
        pthread_cond_signal(&w->job_cv);
    if (w->driver != NULL && cl_multi_enqueue(w->driver, w) < 0) {
        cl_worker_reset(w);            /* the fan-out has stopped */
        pthread_mutex_lock(&w->mu);
        w->state = CL_W_IDLE;
        pthread_mutex_unlock(&w->mu);
        return -1;
    }
    return 0;
refuse:
    pthread_mutex_unlock(&w->mu);
    free(url);
    curl_slist_free_all(headers);
    return -1;
}

int
cl_worker_wait(cl_worker *w, long timeout_ms)
{
    struct timespec ts;
    deadline_after(&ts, timeout_ms);
    pthread_mutex_lock(&w->mu);
    while (w->state != CL_W_DONE && !w->quit) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    int res = w->state == CL_W_DONE ? 1 : w->quit ? -1 : 0;
    pthread_mutex_unlock(&w->mu);
    return res;
}

void
cl_worker_notify(cl_worker *w, int fd)
{
    pthread_mutex_lock(&w->mu);
    w->notify_fd = fd;
    /* A job that finished before anyone watched the fd wrote nothing: the
     * event loop, about to wait on it, would wait for ever. */
    if (w->state == CL_W_DONE)
        signal_fd(w);
    pthread_mutex_unlock(&w->mu);
}

void
cl_worker_reset(cl_worker *w)
{
    pthread_mutex_lock(&w->mu);
    free(w->url);
    curl_slist_free_all(w->headers);
    w->url = NULL;
    w->headers = NULL;
    if (w->state == CL_W_DONE)
        w->state = CL_W_IDLE;
    pthread_mutex_unlock(&w->mu);
}

void
cl_worker_cancel(cl_worker *w)
{
    pthread_mutex_lock(&w->mu);
    __atomic_store_n(&w->cancel, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&w->cv);
    pthread_cond_broadcast(&w->job_cv);
    pthread_mutex_unlock(&w->mu);
    cl_http_wakeup(&w->http);
    if (w->driver != NULL)
        cl_multi_wakeup(w->driver);
}

void
cl_worker_stop(cl_worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    __atomic_store_n(&w->cancel, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&w->cv);
    pthread_cond_broadcast(&w->job_cv);
    int join = w->started && !w->joined;
    w->joined |= w->started;
    pthread_mutex_unlock(&w->mu);
    cl_http_wakeup(&w->http);
    if (join)
        pthread_join(w->thread, NULL);
    if (w->driver != NULL)
        cl_multi_detach(w);            /* the fan-out lets go of the easy handle */
}

int
cl_worker_foreign(const cl_worker *w)
{
    return w->owner != getpid();
}

int
cl_worker_stopped(cl_worker *w)
{
    pthread_mutex_lock(&w->mu);
    int quit = w->quit;
    pthread_mutex_unlock(&w->mu);
    return quit;
}

void
cl_worker_destroy(cl_worker *w)
{
    if (cl_worker_foreign(w))
        return;          /* the mutex may be held by a thread that is not here */
    cl_worker_stop(w);
    free(w->url);
    curl_slist_free_all(w->headers);
    w->url = NULL;
    w->headers = NULL;
    cl_http_cleanup(&w->http);
    if (w->limiter != NULL)
        cl_limiter_unref(w->limiter);
    w->limiter = NULL;
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->job_cv);
    pthread_mutex_destroy(&w->mu);
}

/* ---- registry ---------------------------------------------------------- */

/* With the GIL its holders take turns; without it (free-threaded CPython)
 * one lock for every registry of the process (they change only when a
 * pager starts or goes).  PyMutex lets go of the thread state while it
 * waits, so it never holds up a stop-the-world pause. */
#ifdef Py_GIL_DISABLED
static PyMutex registry_mu;
#define REGISTRY_LOCK() PyMutex_Lock(&registry_mu)
#define REGISTRY_UNLOCK() PyMutex_Unlock(&registry_mu)
#else
#define REGISTRY_LOCK() ((void)0)
#define REGISTRY_UNLOCK() ((void)0)
#endif

void
cl_registry_add(cl_worker **head, cl_worker *w)
{
    REGISTRY_LOCK();
    w->reg_next = *head;
    if (*head != NULL)
        (*head)->reg_prev = &w->reg_next;
    w->reg_prev = head;
    *head = w;
    REGISTRY_UNLOCK();
}

static void
registry_unlink(cl_worker *w)
{
    if (w->reg_prev == NULL)
        return;
    *w->reg_prev = w->reg_next;
    if (w->reg_next != NULL)
        w->reg_next->reg_prev = w->reg_prev;
    w->reg_next = NULL;
    w->reg_prev = NULL;
}

void
cl_registry_remove(cl_worker *w)
{
    REGISTRY_LOCK();
    registry_unlink(w);
    REGISTRY_UNLOCK();
}

/* Stop every worker of this process and forget them all.  Their pagers
 * still own the memory and free it when they go; a stopped worker refuses
 * new jobs, so nothing reaches libcurl after this.  Each is unlinked and
 * stopped (its thread joined) under the lock: the stop wakes the thread
 * waiting on its pager, which then frees it (cl_registry_remove first)
 * while the GIL, when there is one, keeps it waiting; without the GIL only
 * this lock does, until the worker is stopped for good. */
void
cl_registry_stop_all(cl_worker **head)
{
    cl_worker *w = NULL;
    REGISTRY_LOCK();
    while ((w = *head) != NULL) {
        registry_unlink(w);
        if (!cl_worker_foreign(w))
            cl_worker_stop(w);
    }
    REGISTRY_UNLOCK();
}
