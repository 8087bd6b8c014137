/* Chain internals: what the chain's two files share and nothing else does.
 *
 * The chain is two files:
 *   chain.c       the fetch thread's half: the next request planned as a
 *                 page arrives, the page set aside, the request queued;
 *   chain_take.c  the consumer's half: pages taken, dropped, noted.
 * chain.h is what the rest of the engine and the pager see; this header is
 * for those files alone.  Functions declared here are hidden (never
 * exported from the extension). */
#ifndef CL_CHAIN_INTERNAL_H
#define CL_CHAIN_INTERNAL_H

#include "chain.h"

#ifndef CL_INTERNAL
#define CL_INTERNAL __attribute__((visibility("hidden")))
#endif

/* w->mu held.  Before a job is queued: its token, or need_token set.
 * 0, or -1 out of memory. */
CL_INTERNAL int cl_chain_auth_locked(cl_worker *w);
/* w->mu held: `url` (taken) becomes the worker's job, queued for the fetch
 * thread's loop. */
CL_INTERNAL void cl_chain_start_locked(cl_worker *w, char *url);

#endif
