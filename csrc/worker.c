/* A listing's job and its lifecycle; see worker.h.  The driver (multi.c)
 * performs the job; this file queues it there, waits for it and stops it. */
#include "worker.h"
#include "multi.h"
#include "ratelimit.h"
#include <errno.h>
#include <stdint.h>
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

static int
cancelled(cl_worker *w)
{
    return __atomic_load_n(&w->cancel, __ATOMIC_ACQUIRE);
}

int
cl_worker_init(cl_worker *w, const cl_http_opts *http, const cl_retry_opts *retry)
{
    pthread_condattr_t ca;
    cl_http_opts ho = *http;
    ho.driven = 1;                 /* its transfers run on a driver's multi handle */
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
    pthread_condattr_destroy(&ca);
    if (rc == 0 && cl_http_init(&w->http, &ho, &w->cancel) < 0) {
        cl_http_cleanup(&w->http);
        rc = -1;
    }
    if (rc != 0) {
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
    /* a pager on its own: a driver of its own, with its thread, from now */
    if (w->driver == NULL && cl_multi_private(w) < 0)
        goto refuse;
    w->started = 1;
    w->url = url;
    w->headers = headers;
    w->attempts = 0;
    w->state = CL_W_QUEUED;
    cl_multi *d = w->driver;
    pthread_mutex_unlock(&w->mu);
    /* after the unlock: the driver's thread takes w->mu as it starts it */
    if (cl_multi_enqueue(d, w) < 0) {
        cl_worker_reset(w);            /* the driver has stopped */
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
        cl_multi_signal_fd(fd);
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
    cl_multi *d = w->driver;           /* held until the worker is destroyed */
    pthread_mutex_unlock(&w->mu);
    if (d != NULL)
        cl_multi_wakeup(d);            /* it drops the transfer or backoff at once */
}

void
cl_worker_stop(cl_worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    __atomic_store_n(&w->cancel, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&w->cv);
    cl_multi *d = w->driver;
    pthread_mutex_unlock(&w->mu);
    if (d != NULL)
        cl_multi_detach(w);            /* the driver lets go of the easy handle */
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
    if (w->driver != NULL)
        cl_multi_release(w);           /* the last reference frees the driver */
    free(w->url);
    curl_slist_free_all(w->headers);
    w->url = NULL;
    w->headers = NULL;
    cl_http_cleanup(&w->http);
    if (w->limiter != NULL)
        cl_limiter_unref(w->limiter);
    w->limiter = NULL;
    pthread_cond_destroy(&w->cv);
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
 * stopped (a private driver's thread joined) under the lock: the stop wakes the thread
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
