/* The fetch worker: a background thread per pager that performs one GET at
 * a time, with retries and backoff, never touching Python.  The pager queues
 * a request as soon as the next URL is known (prefetch) and collects the
 * result when the caller needs the page. */
#ifndef CL_WORKER_H
#define CL_WORKER_H

#include "http.h"
#include <pthread.h>

typedef struct {
    int max_retries;
    double backoff;                /* seconds: base of the exponential backoff */
    double backoff_max;            /* cap of one backoff sleep */
    double retry_after_max;        /* cap of an honoured Retry-After */
    long retry_statuses[16];
    int n_retry_statuses;
} cl_retry_opts;

enum { CL_W_IDLE, CL_W_QUEUED, CL_W_RUNNING, CL_W_DONE };

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started;
    int state;
    int quit;
    volatile int cancel;
    cl_retry_opts retry;
    unsigned int seed;
    /* the job */
    char *url;
    struct curl_slist *headers;
    /* the result, valid in CL_W_DONE */
    cl_http http;
    int attempts;
} cl_worker;

int cl_worker_init(cl_worker *w, const cl_http_opts *http, const cl_retry_opts *retry);
/* Queue a GET; takes ownership of url (malloc'd) and headers. */
int cl_worker_submit(cl_worker *w, char *url, struct curl_slist *headers);
/* Wait up to timeout_ms for the result; 1 when done, 0 on timeout. */
int cl_worker_wait(cl_worker *w, long timeout_ms);
/* Back to idle after the caller has read the result; frees the job. */
void cl_worker_reset(cl_worker *w);
/* Abort the transfer in flight and any backoff sleep. */
void cl_worker_cancel(cl_worker *w);
/* Stop and join the thread, free everything. */
void cl_worker_destroy(cl_worker *w);

#endif
