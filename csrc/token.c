/* A client's current access token, readable without Python, and its
 * renewal by the fetch thread; see token.h and token_internal.h. */
#include "token_internal.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

long long
cl_token_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

cl_token *
cl_token_ref(cl_token *t)
{
    pthread_mutex_lock(&t->mu);
    t->refs++;
    pthread_mutex_unlock(&t->mu);
    return t;
}

void
cl_token_wipe(char *s)
{
    if (s == NULL)
        return;
    volatile char *v = s;          /* a credential: not left in freed memory */
    while (*v)
        *v++ = '\0';
    free(s);
}

void
cl_token_req_unref(cl_token_req *r)
{
    if (r != NULL && --r->refs == 0) {     /* under the cell's mutex, or the last owner */
        cl_request_spec_free(&r->spec);
        free(r);
    }
}

static void
fail_clear(cl_token_fail *f)
{
    free(f->trusted);
    free(f->headers.data);
    if (f->body.data != NULL)              /* it may hold a token Python accepts */
        memset(f->body.data, 0, f->body.len);
    free(f->body.data);
    unsigned long long seq = f->seq;
    memset(f, 0, sizeof *f);
    f->seq = seq;
}

void
cl_token_unref(cl_token *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    int last = --t->refs == 0;
    pthread_mutex_unlock(&t->mu);
    if (last) {
        cl_token_wipe(t->line);
        cl_token_req_unref(t->req);
        fail_clear(&t->fail);
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
    }
}

static int
line_of(cl_token *t, unsigned long long have, char **line, unsigned long long *gen, int any)
{
    int rc = -1;
    *line = NULL;
    long long now = cl_token_now_us();
    pthread_mutex_lock(&t->mu);
    if (t->line != NULL && (any || now < t->until_us)) {
        *gen = t->gen;
        if (t->gen == have)
            rc = 0;
        else if ((*line = strdup(t->line)) != NULL)
            rc = 1;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int
cl_token_line(cl_token *t, unsigned long long have, char **line, unsigned long long *gen)
{
    return line_of(t, have, line, gen, 0);
}

int
cl_token_usable(cl_token *t)
{
    long long now = cl_token_now_us();
    pthread_mutex_lock(&t->mu);
    int ok = t->line != NULL && now < t->until_us;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

int
cl_token_line_any(cl_token *t, unsigned long long have, char **line, unsigned long long *gen)
{
    return line_of(t, have, line, gen, 1);
}

unsigned long long
cl_token_generation(cl_token *t)
{
    pthread_mutex_lock(&t->mu);
    unsigned long long g = t->gen;
    pthread_mutex_unlock(&t->mu);
    return g;
}

/* Put in a token line (taken) for `seconds`: a new generation.  t->mu held. */
unsigned long long
cl_token_put_locked(cl_token *t, char *line, double seconds)
{
    if (!(seconds >= 0))
        seconds = 0;
    if (seconds > 1e9)
        seconds = 1e9;
    char *old = t->line;
    t->line = line;
    t->until_us = cl_token_now_us() + (long long)(seconds * 1e6);
    cl_token_wipe(old);
    return ++t->gen;
}

/* ---- renewal ---------------------------------------------------------------- */

int
cl_token_usable_locked(cl_token *t)
{
    return t->line != NULL && cl_token_now_us() < t->until_us;
}

/* A renewal in flight in this process (a fork's child never waits for
 * its parent's). */
int
cl_token_in_flight_locked(cl_token *t)
{
    return t->renewing && t->renewer == getpid();
}

void
cl_token_wait_locked(cl_token *t, long ms)
{
    struct timespec ts;
    clock_gettime(CL_WAIT_CLOCK, &ts);
    ts.tv_nsec += ms * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&t->cv, &t->mu, &ts);
}

static void
buf_take(cl_buf *to, cl_buf *from)
{
    *to = *from;
    memset(from, 0, sizeof *from);
}

/* One look at the cell for a request refused with generation `refused`,
 * waiting since failure `seq0`.  t->mu held. */
static int
poll_locked(cl_token *t, unsigned long long refused, unsigned long long accept,
            unsigned long long seq0, unsigned long long *fail_seq, int may_claim,
            cl_token_req **req)
{
    if (t->line != NULL && t->gen != refused && (cl_token_usable_locked(t) || t->gen == accept))
        return CL_TOKEN_READY;
    if (t->fail.seq != seq0) {             /* the renewal waited for failed */
        *fail_seq = t->fail.seq;
        return CL_TOKEN_FAILED;
    }
    if (t->req == NULL)
        return CL_TOKEN_NO_REQUEST;
    if (cl_token_in_flight_locked(t) || !may_claim)
        return CL_TOKEN_WAIT;
    t->renewing = 1;                       /* the caller's to send */
    t->renewer = getpid();
    t->req->refs++;
    *req = t->req;
    return CL_TOKEN_CLAIMED;
}

unsigned long long
cl_token_fail_seq(cl_token *t)
{
    pthread_mutex_lock(&t->mu);
    unsigned long long seq = t->fail.seq;
    pthread_mutex_unlock(&t->mu);
    return seq;
}

int
cl_token_poll(cl_token *t, unsigned long long refused, unsigned long long accept,
              unsigned long long seq0, unsigned long long *fail_seq, int may_claim,
              cl_token_req **req, const cl_request_spec **spec)
{
    pthread_mutex_lock(&t->mu);
    int rc = poll_locked(t, refused, accept, seq0, fail_seq, may_claim, req);
    pthread_mutex_unlock(&t->mu);
    if (rc == CL_TOKEN_CLAIMED)
        *spec = &(*req)->spec;
    return rc;
}

int
cl_token_renewed(cl_token *t, cl_token_req *req, cl_http *h, unsigned long long *fail_seq,
                 unsigned long long *gen)
{
    char *line = NULL;
    double seconds = 0;
    int rc;
    int cancelled = h->code != CURLE_OK
                 && cl_http_failure(h->code, h->too_large).kind == CL_FAIL_CANCELLED;
    int good = h->code == CURLE_OK && h->status >= 200 && h->status < 300
            && cl_token_read_response(h->body.data ? h->body.data : "", h->body.len, &line, &seconds);

    pthread_mutex_lock(&t->mu);
    cl_token_req_unref(req);
    if (good) {
        *gen = cl_token_put_locked(t, line, seconds);
        rc = 1;
    }
    else if (cancelled)
        rc = -2;                           /* nothing recorded: the next one renews */
    else {
        cl_token_fail *f = &t->fail;
        fail_clear(f);
        f->seq++;
        f->code = h->code;
        f->too_large = h->too_large;
        memcpy(f->errbuf, h->errbuf, sizeof f->errbuf);
        f->trusted = h->trusted;
        h->trusted = NULL;
        f->status = h->status;
        buf_take(&f->headers, &h->headers);
        buf_take(&f->body, &h->body);
        *fail_seq = f->seq;
        rc = 0;
    }
    t->renewing = 0;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return rc;
}
