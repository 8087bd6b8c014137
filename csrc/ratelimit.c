/* The shared rate limiter, as the driver paces by it: reservations, the
 * server's word fed back, references.  No Python here; its Python face,
 * _core.RateLimiter, is ratelimit_type.c.  See ratelimit.h. */
#include "ratelimit_internal.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A server's unix-time reset is told apart from a delay in seconds. */
#define CL_EPOCH_THRESHOLD 1000000000.0
/* The server's window, when it gives requests left but no reset. */
#define CL_DEFAULT_WINDOW_US 1000000LL
/* Any wait, in microseconds, is cut to this (about 11.6 days) before it
 * becomes an integer: far from overflow in every sum made with it. */
#define CL_MAX_WAIT_US 1e12

/* Seconds (or microseconds already) as whole microseconds, saturated at
 * CL_MAX_WAIT_US: huge, infinite or NaN inputs never overflow a long long. */
long long
cl_limiter_saturated_us(double us)
{
    if (!(us > 0))
        return 0;
    return us >= CL_MAX_WAIT_US ? (long long)CL_MAX_WAIT_US : (long long)ceil(us);
}

long long
cl_limiter_now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

long long
cl_limiter_reserve(cl_limiter *l)
{
    pthread_mutex_lock(&l->mu);
    long long now = cl_limiter_now_us(), wait = 0;
    if (l->paused_until_us > now)
        wait = l->paused_until_us - now;
    if (l->have_budget && now >= l->window_end_us)
        l->have_budget = 0;                    /* a new window: nothing known */
    if (l->have_budget && l->budget <= 0 && l->window_end_us - now > wait)
        wait = l->window_end_us - now;
    if (l->rate > 0) {
        l->tokens += (double)(now - l->refill_us) * l->rate / 1e6;
        if (l->tokens > l->burst)
            l->tokens = l->burst;
        l->refill_us = now;
        if (l->tokens < 1.0) {
            long long need = cl_limiter_saturated_us((1.0 - l->tokens) / l->rate * 1e6);
            if (need > wait)
                wait = need;
        }
    }
    if (wait > 0) {
        l->waits++;
        pthread_mutex_unlock(&l->mu);
        return wait < 1000 ? 1000 : wait;
    }
    if (l->rate > 0)
        l->tokens -= 1.0;
    if (l->have_budget)
        l->budget--;
    l->outstanding++;
    l->granted++;
    pthread_mutex_unlock(&l->mu);
    return 0;
}

/* A header's value, if `line` (n bytes, no terminator) is that header. */
static int
header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0)
        return 0;
    const char *v = line + k + 1;
    size_t m = n - k - 1;
    while (m > 0 && (*v == ' ' || *v == '\t'))
        v++, m--;
    while (m > 0 && (v[m - 1] == '\r' || v[m - 1] == '\n' || v[m - 1] == ' ' || v[m - 1] == '\t'))
        m--;
    if (m == 0 || m >= cap)
        return 0;
    memcpy(out, v, m);
    out[m] = '\0';
    return 1;
}

/* A finite, non-negative number from a header value; -1 otherwise. */
static double
number(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    return end != s && *end == '\0' && isfinite(v) && v >= 0 ? v : -1;
}

/* Requests left and seconds to the reset, from the last response's header
 * lines (-1 when absent).  Both the X-RateLimit-* and the RateLimit-* names. */
static void
read_headers(const cl_http *h, double *remaining, double *reset)
{
    static const char *const rem_names[] = {"x-ratelimit-remaining", "ratelimit-remaining"};
    static const char *const reset_names[] = {"x-ratelimit-reset", "ratelimit-reset"};
    *remaining = *reset = -1;
    const char *p = h->headers.data, *end = p ? p + h->headers.len : NULL;
    char val[64];
    while (p != NULL && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((eol ? eol : end) - p);
        for (int i = 0; i < 2; i++) {
            if (header_value(p, n, rem_names[i], val, sizeof val))
                *remaining = number(val);
            if (header_value(p, n, reset_names[i], val, sizeof val)) {
                double r = number(val);
                if (r >= CL_EPOCH_THRESHOLD)       /* a unix time */
                    r = r - (double)time(NULL) > 0 ? r - (double)time(NULL) : 0;
                *reset = r;
            }
        }
        p = eol ? eol + 1 : end;
    }
}

void
cl_limiter_feed(cl_limiter *l, const cl_http *h, CURLcode code)
{
    double remaining = -1, reset = -1;
    if (code == CURLE_OK)
        read_headers(h, &remaining, &reset);
    pthread_mutex_lock(&l->mu);
    long long now = cl_limiter_now_us();
    if (l->outstanding > 0)
        l->outstanding--;
    if (code == CURLE_OK && h->status == 429)
        l->throttled++;
    /* Only the server's own word pauses everyone: a bare 429 is left to
     * the pager's backoff (and to the budget, if the headers gave one). */
    if (code == CURLE_OK && h->status == 429 && h->retry_after_ms >= 0) {
        long long pause = cl_limiter_saturated_us((double)h->retry_after_ms * 1000.0);
        if (pause > l->max_pause_us)
            pause = l->max_pause_us;
        if (now + pause > l->paused_until_us)
            l->paused_until_us = now + pause;
    }
    if (remaining >= 0) {
        long long window = reset >= 0 ? cl_limiter_saturated_us(reset * 1e6) : CL_DEFAULT_WINDOW_US;
        if (window > l->max_pause_us)
            window = l->max_pause_us;
        /* what is left, less what is already on its way to the server */
        long long left = (long long)(remaining < 1e15 ? remaining : 1e15) - l->outstanding;
        if (!l->have_budget || now >= l->window_end_us) {
            l->budget = left;                  /* a window we knew nothing of */
            l->window_end_us = now + window;
            l->have_budget = 1;
        }
        else if (left < l->budget)
            /* answers overtake each other on several connections: within a
             * window, the lowest count heard is the one to trust */
            l->budget = left;
    }
    pthread_mutex_unlock(&l->mu);
}

cl_limiter *
cl_limiter_ref(cl_limiter *l)
{
    pthread_mutex_lock(&l->mu);
    l->refs++;
    pthread_mutex_unlock(&l->mu);
    return l;
}

void
cl_limiter_unref(cl_limiter *l)
{
    pthread_mutex_lock(&l->mu);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (last) {
        pthread_mutex_destroy(&l->mu);
        free(l);
    }
}
