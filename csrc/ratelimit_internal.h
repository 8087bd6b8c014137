/* Rate limiter internals: what the limiter's files share and nothing else
 * does.
 *
 * The limiter is two files:
 *   ratelimit.c       the limiter the driver paces by (no Python);
 *   ratelimit_type.c  the Python face, custlist._core.RateLimiter.
 * ratelimit.h is what the rest of the engine sees; this header is for those
 * files alone.  Functions declared here are hidden (never exported from the
 * extension). */
#ifndef CL_RATELIMIT_INTERNAL_H
#define CL_RATELIMIT_INTERNAL_H

#include "ratelimit.h"
#include <pthread.h>

#ifndef CL_INTERNAL
#define CL_INTERNAL __attribute__((visibility("hidden")))
#endif

/* The slowest rate a limiter takes: one request in the longest `per` (1e6
 * seconds).  Every wait it computes is then at most 1e12 microseconds. */
#define CL_MIN_RATE 1e-6

struct cl_limiter {
    pthread_mutex_t mu;
    int refs;
    /* the user's token bucket: rate tokens a second, at most burst (1) */
    double rate, burst, tokens;
    long long refill_us;
    /* the server's word */
    long long max_pause_us;        /* cap of any pause it asks for */
    long long paused_until_us;     /* Retry-After of a 429 */
    int have_budget;               /* requests left in its window are known ... */
    long long budget;              /* ... this many, less the ones sent since */
    long long window_end_us;
    long long outstanding;         /* let go, outcome not fed yet */
    /* counters, for stats() */
    long long granted, throttled, waits;
};

/* Seconds (or microseconds already) as whole microseconds, saturated:
 * huge, infinite or NaN inputs never overflow a long long. */
CL_INTERNAL long long cl_limiter_saturated_us(double us);
/* The monotonic clock, in microseconds. */
CL_INTERNAL long long cl_limiter_now_us(void);
/* One more reference (a worker's: dropped by cl_limiter_unref). */
CL_INTERNAL cl_limiter *cl_limiter_ref(cl_limiter *l);

#endif
