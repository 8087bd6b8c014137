/* The fetch worker: a background thread per pager that performs one GET at
 * a time, with retries and backoff, never touching Python.  The pager queues
 * a request as soon as the next URL is known (prefetch) and collects the
 * result when the caller needs the page.
 *
 * Lifecycle: any thread may cancel (cl_worker_cancel); only the thread that
 * owns the pager stops and frees the worker (cl_worker_destroy), once.  A
 * worker belongs to the process that created it: in a forked child it is
 * abandoned, never joined or cleaned up (its thread does not exist there and
 * its connection is the parent's). */
#ifndef CL_WORKER_H
#define CL_WORKER_H

#include "http.h"
#include <pthread.h>
#include <sys/types.h>

typedef struct {
    int max_retries;
    double backoff;                /* seconds: base of the exponential backoff */
    double backoff_max;            /* cap of one backoff sleep */
    double retry_after_max;        /* cap of an honoured Retry-After */
    long retry_statuses[16];
    int n_retry_statuses;
} cl_retry_opts;

/* Every timed wait runs on the monotonic clock: a wall-clock step (NTP, a
 * suspended laptop) neither shortens nor stretches a backoff.  (macOS has
 * no pthread_condattr_setclock: its waits stay on the wall clock.) */
#if defined(__APPLE__)
#define CL_WAIT_CLOCK CLOCK_REALTIME
#else
#define CL_WAIT_CLOCK CLOCK_MONOTONIC
#endif

enum { CL_W_IDLE, CL_W_QUEUED, CL_W_RUNNING, CL_W_DONE };

/* What one attempt of a job did, for the log (written by the worker thread,
 * read by the pager once the job is done). */
typedef struct {
    int attempt;
    CURLcode code;
    long status;
    size_t bytes;
    double ms;                     /* duration of the transfer */
    long long delay_ms;            /* the retry that follows: its delay, or -1 */
    int retry_after_too_long;      /* not retried: Retry-After over the cap */
} cl_attempt;

#define CL_MAX_ATTEMPT_LOG 8       /* the last attempts of a job are kept */

struct cl_multi;
struct cl_limiter;
struct cl_chain;

typedef struct cl_worker {
    pthread_mutex_t mu;
    /* Two conditions on CL_WAIT_CLOCK, so that a wake-up reaches only the
     * thread it is for: `cv` for whoever waits for a job to be done (the
     * pager), `job_cv` for the fetch thread (a job queued, a backoff cut
     * short, quit).  A cancel or stop broadcasts both. */
    pthread_cond_t cv;
    pthread_cond_t job_cv;
    pthread_t thread;
    pid_t owner;                   /* the process that created the worker */
    int started;                   /* the thread was created ... */
    int joined;                    /* ... and has been joined */
    int state;
    int quit;
    volatile int cancel;
    int notify_fd;                 /* written once per finished job (asyncio), or -1 */
    cl_retry_opts retry;
    unsigned int seed;
    /* Set before the first job (cl_multi_attach): a fan-out's thread runs
     * this worker's jobs on its shared multi handle (multi.c); the worker
     * then has no thread of its own.  Cleared once detached. */
    struct cl_multi *driver;
    int driver_slot;
    /* Set before the first job: every request waits for this shared rate
     * limiter and reports back to it (ratelimit.c); a reference is held. */
    struct cl_limiter *limiter;
    /* Set before the first job, or cleared while no job is under way: the
     * fetch thread sends the listing's next request itself (chain.h), and
     * finished responses go to the chain instead of CL_W_DONE. */
    struct cl_chain *chain;
    /* the registry of live workers (module state): see cl_registry_add */
    struct cl_worker *reg_next, **reg_prev;
    /* the job */
    char *url;
    struct curl_slist *headers;
    /* the result, valid in CL_W_DONE */
    cl_http http;
    int attempts;
    cl_attempt log[CL_MAX_ATTEMPT_LOG];    /* ring: attempt k at (k - 1) % size */
} cl_worker;

int cl_worker_init(cl_worker *w, const cl_http_opts *http, const cl_retry_opts *retry);
/* Queue a GET; takes ownership of url (malloc'd) and headers.  Refused (-1,
 * both freed) once the worker is cancelled or stopping. */
int cl_worker_submit(cl_worker *w, char *url, struct curl_slist *headers);
/* Wait up to timeout_ms for the result: 1 when done, 0 on timeout, -1 when
 * the worker was stopped (the job will never complete). */
int cl_worker_wait(cl_worker *w, long timeout_ms);
/* From now on, write an eventfd increment to `fd` as each job finishes
 * (an asyncio loop watches it); -1 to stop. */
void cl_worker_notify(cl_worker *w, int fd);
/* After attempt `attempt` of the job (its transfer returned `code` after
 * `ms`): record it in the log and decide.  Returns the delay in ms before
 * the next attempt, or -1 when the job is over.  Shared by this file's
 * thread and the fan-out's (multi.c): one retry policy. */
long long cl_worker_after_attempt(cl_worker *w, int attempt, CURLcode code, double ms);
/* The job is over: CL_W_DONE, waiters woken, the notify fd written.
 * Called with w->mu held, by whichever thread ran the job. */
void cl_worker_done_locked(cl_worker *w);
/* Back to idle after the caller has read the result; frees the job. */
void cl_worker_reset(cl_worker *w);
/* Abort the transfer in flight and any backoff sleep, for good (any thread). */
void cl_worker_cancel(cl_worker *w);
/* Cancel and join the thread (once); the handles stay for cl_worker_destroy. */
void cl_worker_stop(cl_worker *w);
/* Stop, then free everything.  In a forked child: abandon (no join, no
 * libcurl cleanup that could write to the parent's connection). */
void cl_worker_destroy(cl_worker *w);
/* True in a process other than the one that created the worker (a fork). */
int cl_worker_foreign(const cl_worker *w);
/* 1 once the worker was stopped (it refuses every job from then on). */
int cl_worker_stopped(cl_worker *w);

/* The registry of live workers: link on creation, unlink before destroy,
 * stop all at interpreter exit.  Callers hold the GIL (or, free-threaded,
 * are attached to the interpreter: a lock of the registry serialises them). */
void cl_registry_add(cl_worker **head, cl_worker *w);
void cl_registry_remove(cl_worker *w);
void cl_registry_stop_all(cl_worker **head);

#endif
