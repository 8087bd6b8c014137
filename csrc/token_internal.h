/* Token cell internals: what the cell's files share and nothing else does.
 *
 * The token cell is three files:
 *   token.c       the cell itself (reference counts, the token line and its
 *                 generation) and the renewal the fetch thread makes;
 *   token_read.c  the token response, read without Python;
 *   token_type.c  the Python face, custlist._core.TokenCell.
 * token.h is what the rest of the engine sees; this header is for those
 * files alone.  Functions declared here are hidden (never exported from the
 * extension). */
#ifndef CL_TOKEN_INTERNAL_H
#define CL_TOKEN_INTERNAL_H

#include "token.h"
#include "send.h"
#include "worker.h"             /* CL_WAIT_CLOCK */
#include <pthread.h>
#include <sys/types.h>

#ifndef CL_INTERNAL
#define CL_INTERNAL __attribute__((visibility("hidden")))
#endif

/* The token request, shared by the renewals under way while the client
 * binds the credentials anew (refs under the cell's mutex). */
struct cl_token_req {
    int refs;
    cl_request_spec spec;
};

/* The last renewal that failed: what Python needs to raise its exception. */
typedef struct {
    unsigned long long seq;        /* 0: none yet */
    CURLcode code;                 /* not CURLE_OK: the transfer failed */
    int too_large;
    char errbuf[CURL_ERROR_SIZE];
    char *trusted;
    long status;
    cl_buf headers, body;
} cl_token_fail;

struct cl_token {
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* a renewal ended (CL_WAIT_CLOCK) */
    int refs;
    char *line;                    /* "Authorization: Bearer ...", or NULL */
    long long until_us;            /* monotonic: not sent from then on */
    unsigned long long gen;
    cl_token_req *req;             /* the token request, or NULL */
    int renewing;                  /* a renewal in flight ... */
    pid_t renewer;                 /* ... in this process (a fork's child ignores it) */
    cl_token_fail fail;
};

#define CL_TOKEN_MAX_LINE 16384    /* as a header line libcurl sends whole */

/* token.c */
/* The monotonic clock in microseconds. */
CL_INTERNAL long long cl_token_now_us(void);
/* Zero a credential's bytes, then free it (NULL: nothing). */
CL_INTERNAL void cl_token_wipe(char *s);
/* Drop a reference to the token request (NULL: nothing); t->mu held. */
CL_INTERNAL void cl_token_req_unref(cl_token_req *r);
/* Put in a token line (taken) for `seconds`: a new generation.  t->mu held. */
CL_INTERNAL unsigned long long cl_token_put_locked(cl_token *t, char *line, double seconds);
/* The token is there and not expired.  t->mu held. */
CL_INTERNAL int cl_token_usable_locked(cl_token *t);
/* A renewal in flight in this process.  t->mu held. */
CL_INTERNAL int cl_token_in_flight_locked(cl_token *t);
/* Wait up to `ms` for a renewal to end.  t->mu held. */
CL_INTERNAL void cl_token_wait_locked(cl_token *t, long ms);

/* token_read.c */
/* A 2xx token response read plainly: 1 with the header line (malloc'd) and
 * the seconds it is used for (the lifetime less min(60 s, 10%), as Python
 * reckons it); 0 for Python to judge: what is not plain ASCII, an escaped
 * key or value taken, a member taken twice, a value of another type, a
 * number over 40 bytes, nesting over 64 levels (the object's included),
 * malformed JSON or bytes after it.  No Python, no GIL. */
CL_INTERNAL int cl_token_read_response(const char *body, size_t len, char **line,
                                       double *seconds);

#endif
