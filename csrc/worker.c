/* Background fetch thread with retries; see worker.h. */
#include "worker.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
deadline_after(struct timespec *ts, long long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int
transport_retryable(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
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
 * server said when to come back. */
static long long
retry_delay_ms(cl_worker *w, int attempt)
{
    const cl_retry_opts *r = &w->retry;
    if (w->http.retry_after_ms >= 0) {
        double cap = r->retry_after_max * 1000.0;
        return (long long)(w->http.retry_after_ms < cap ? (double)w->http.retry_after_ms : cap);
    }
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
    while (!w->cancel && !w->quit) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    return w->cancel || w->quit;
}

static void
run_job(cl_worker *w)
{
    int attempt = 0;
    for (;;) {
        attempt++;
        CURLcode c = cl_http_get(&w->http, w->url, w->headers);
        int retry = c == CURLE_OK ? status_retryable(&w->retry, w->http.status)
                                  : transport_retryable(c) && !w->http.too_large;
        if (!retry || attempt > w->retry.max_retries || w->cancel)
            break;
        long long ms = retry_delay_ms(w, attempt);
        pthread_mutex_lock(&w->mu);
        int cancelled = backoff_sleep(w, ms);
        pthread_mutex_unlock(&w->mu);
        if (cancelled)
            break;
    }
    w->attempts = attempt;
}

static void *
worker_main(void *arg)
{
    cl_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->state != CL_W_QUEUED && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit)
            break;
        w->state = CL_W_RUNNING;
        pthread_mutex_unlock(&w->mu);
        run_job(w);
        pthread_mutex_lock(&w->mu);
        w->state = CL_W_DONE;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int
cl_worker_init(cl_worker *w, const cl_http_opts *http, const cl_retry_opts *retry)
{
    memset(w, 0, sizeof *w);
    w->retry = *retry;
    w->seed = (unsigned int)time(NULL) ^ (unsigned int)(size_t)w;
    if (pthread_mutex_init(&w->mu, NULL) != 0)
        return -1;
    if (pthread_cond_init(&w->cv, NULL) != 0) {
        pthread_mutex_destroy(&w->mu);
        return -1;
    }
    if (cl_http_init(&w->http, http, &w->cancel) < 0) {
        cl_http_cleanup(&w->http);
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
    if (!w->started) {
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pthread_mutex_unlock(&w->mu);
            free(url);
            curl_slist_free_all(headers);
            return -1;
        }
        w->started = 1;
    }
    w->url = url;
    w->headers = headers;
    w->attempts = 0;
    w->state = CL_W_QUEUED;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int
cl_worker_wait(cl_worker *w, long timeout_ms)
{
    struct timespec ts;
    deadline_after(&ts, timeout_ms);
    pthread_mutex_lock(&w->mu);
    while (w->state != CL_W_DONE) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    int done = w->state == CL_W_DONE;
    pthread_mutex_unlock(&w->mu);
    return done;
}

void
cl_worker_reset(cl_worker *w)
{
    pthread_mutex_lock(&w->mu);
    free(w->url);
    curl_slist_free_all(w->headers);
    w->url = NULL;
    w->headers = NULL;
    w->state = CL_W_IDLE;
    pthread_mutex_unlock(&w->mu);
}

void
cl_worker_cancel(cl_worker *w)
{
    pthread_mutex_lock(&w->mu);
    __atomic_store_n(&w->cancel, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    cl_http_wakeup(&w->http);
}

void
cl_worker_destroy(cl_worker *w)
{
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->quit = 1;
        __atomic_store_n(&w->cancel, 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        cl_http_wakeup(&w->http);
        pthread_join(w->thread, NULL);
        w->started = 0;
    }
    free(w->url);
    curl_slist_free_all(w->headers);
    w->url = NULL;
    w->headers = NULL;
    cl_http_cleanup(&w->http);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}
