/* A listing's job: the one request a pager has queued, its state (idle,
 * queued, under way, done), its retry settings and attempt log, and the
 * waits of the pager that collects it.  The job is performed by a driver
 * (multi.h): a fan-out's, shared by its listings, or, for a pager on its
 * own, a private driver of concurrency 1 made at its first request.  There
 * is one way to perform a request: this file never touches libcurl's
 * transfers itself.
 *
 * Lifecycle: any thread may cancel (cl_worker_cancel); only the thread that
 * owns the pager stops and frees the worker (cl_worker_destroy), once.  A
 * worker belongs to the process that created it: in a forked child it is
 * abandoned, never joined or cleaned up (its driver's thread does not exist
 * there and its connection is the parent's). */
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

/* What one attempt of a job did, for the log (written by the driver's
 * thread, read by the pager once the job is done). */
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
    /* On CL_WAIT_CLOCK: whoever waits for the job to be done (the pager)
     * waits here; the driver broadcasts it as a job ends, a cancel or stop
     * too. */
    pthread_cond_t cv;
    pid_t owner;                   /* the process that created the worker */
    int started;                   /* a job was submitted once */
    int state;
    int quit;
    volatile int cancel;
    int notify_fd;                 /* written once per finished job (asyncio), or -1 */
    cl_retry_opts retry;
    unsigned int seed;
    /* The driver that performs this worker's jobs (multi.h): a fan-out's,
     * set when the fan-out takes the pager (before its first job), or the
     * worker's own, made at its first job.  Held (a reference) until the
     * worker is destroyed; driver_private: the worker's own. */
    struct cl_multi *driver;
    int driver_slot;
    int driver_private;
    /* Set before the first job: every request waits for this shared rate
     * limiter and reports back to it (ratelimit.c); a reference is held. */
    struct cl_limiter *limiter;
    /* Set before the first job, or cleared while no job is under way: the
     * driver's thread sends the listing's next request itself (chain.h),
     * and finished responses go to the chain instead of CL_W_DONE. */
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
/* Queue a GET on the worker's driver (made at the first job unless a
 * fan-out's is set); takes ownership of url (malloc'd) and headers.
 * Refused (-1, both freed) once the worker is cancelled or stopping, or
 * when its driver has stopped or could not be made. */
int cl_worker_submit(cl_worker *w, char *url, struct curl_slist *headers);
/* Wait up to timeout_ms for the result: 1 when done, 0 on timeout, -1 when
 * the worker was stopped (the job will never complete). */
int cl_worker_wait(cl_worker *w, long timeout_ms);
/* From now on, write an eventfd increment to `fd` as each job finishes
 * (an asyncio loop watches it); -1 to stop. */
void cl_worker_notify(cl_worker *w, int fd);
/* Back to idle after the caller has read the result; frees the job. */
void cl_worker_reset(cl_worker *w);
/* Abort the transfer in flight and any backoff sleep, for good (any thread). */
void cl_worker_cancel(cl_worker *w);
/* Cancel for good and take the job off its driver (a private driver's
 * thread is joined); the handles stay for cl_worker_destroy. */
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
