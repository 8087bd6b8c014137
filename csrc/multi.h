/* Fan-out: the jobs of many pagers' workers run by one thread on one
 * libcurl multi handle (shared connection cache, HTTP/2 multiplexing), at
 * most `concurrency` transfers at a time, each job with the worker's own
 * retry policy (cl_worker_after_attempt).  The pagers keep all their paging
 * logic: only who performs their transfers changes.
 *
 * A cl_multi is reference counted: its FanOut object holds one reference,
 * every attached worker one more, so whichever goes last frees it.  The
 * shared multi handle is touched only by the fan-out's thread, or, once
 * that thread has stopped, under the fan-out's mutex. */
#ifndef CL_MULTI_H
#define CL_MULTI_H

#include "common.h"
#include "worker.h"

typedef struct cl_multi cl_multi;

/* Queue the worker's job (state CL_W_QUEUED) on its fan-out.  -1 when the
 * fan-out has stopped: the job will never run. */
int cl_multi_enqueue(cl_multi *m, cl_worker *w);
/* Interrupt the fan-out thread's wait so it notices a cancel (any thread). */
void cl_multi_wakeup(cl_multi *m);
/* The worker's fan-out forgets it (its transfer, if any, is removed from
 * the multi handle before this returns); drops the worker's reference. */
void cl_multi_detach(cl_worker *w);

/* pager.c, for the fan-out: the pager's worker (NULL when the pager is
 * closed or belongs to another process), and queueing the pager's next
 * request without waiting for it: 1 when a request is queued or in flight,
 * 0 when the pager sends no more (its end, max_items, max_pages, or a paging
 * error that its next page-read raises); -1 with PagerClosedError when it
 * was closed before its end. */
cl_worker *cl_pager_worker(PyObject *pager);
int cl_pager_prime(PyObject *pager);

/* Adds _core.FanOut to the module. */
int cl_multi_register(PyObject *module, cl_state *st);

#endif
