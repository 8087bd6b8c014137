/* A client's current access token, where the fetch thread can read it
 * without Python: the "Authorization: Bearer ..." line, the moment it stops
 * being used (monotonic clock), and a generation that grows with each token
 * put in (so the generation counts the tokens fetched).
 *
 * Python's ClientCredentials puts in the tokens it fetches itself
 * (_core.TokenCell.set), and gives the cell its token request
 * (TokenCell._configure, the arguments of _core.request) when it is bound
 * to a client.  From then on the fetch thread renews by itself, in C and
 * without the GIL (cl_token_poll; the request goes on its driver's handle):
 * when the token is missing or expiring as a request is about to go, or a
 * request sent with generation G was refused with 401.  One request serves
 * every listing of the client: a renewal in flight (from the engine or from
 * Python, TokenCell._begin) is waited for, never doubled, and the
 * generation tells whether another one renewed meanwhile.
 *
 * A renewal that fails is recorded in the cell under a sequence number
 * (the response, or the transfer's failure); the consumer raises it through
 * Python's own builders (TokenCell._failure), so the exception is the one a
 * Python fetch gives, from the one request made.  The response reader
 * (token_read.c, on json.c's scanner) is strict: whatever it does not
 * accept plainly is recorded the same way and judged by Python.
 *
 * Reference counted like the rate limiter: the Python object holds one
 * reference, each chain one more. */
#ifndef CL_TOKEN_H
#define CL_TOKEN_H

#include "common.h"
#include "send.h"

typedef struct cl_token cl_token;
typedef struct cl_token_req cl_token_req;

cl_token *cl_token_ref(cl_token *t);
void cl_token_unref(cl_token *t);
/* The token to send, when its generation is not `have`: 1 with a malloc'd
 * header line in *line and its generation in *gen; 0 when generation
 * `have` is current and usable; -1 when there is no usable token (none
 * yet, expired, or out of memory).  Any thread, no GIL. */
int cl_token_line(cl_token *t, unsigned long long have, char **line, unsigned long long *gen);
/* As cl_token_line, but an expired token is given too (one renewed a
 * moment ago may have no lifetime left: it is sent once, as Python does). */
int cl_token_line_any(cl_token *t, unsigned long long have, char **line,
                      unsigned long long *gen);
/* 1 when the cell holds a token still to be sent.  Any thread. */
int cl_token_usable(cl_token *t);
/* The current generation (0: no token yet).  Any thread. */
unsigned long long cl_token_generation(cl_token *t);

/* The renewal, in steps for the driver, which sends the token request on
 * its own multi handle beside the listings' transfers (any thread, no GIL;
 * one request serves every listing of the client: a renewal under way is
 * waited for, never doubled).  cl_token_poll looks once, for a request
 * refused with generation
 * `refused` by a job waiting since failure `seq0` (cl_token_fail_seq when
 * it began to wait): CL_TOKEN_READY, a usable newer token in the cell, or
 * generation `accept` whatever its lifetime (the one the caller's own
 * renewal put in, 0: none), which is sent once whatever its lifetime;
 * CL_TOKEN_FAILED, a renewal failed since (*fail_seq); CL_TOKEN_NO_REQUEST;
 * CL_TOKEN_WAIT, a renewal is under way (or `may_claim` is 0); or
 * CL_TOKEN_CLAIMED, the renewal is the caller's to send: *spec is the
 * request, valid with *req until cl_token_renewed(t, *req, h, ...) is given
 * the transfer's outcome (a cancelled one records no failure): 1 with a
 * newer token in the cell, 0 when the renewal failed (*fail_seq: the
 * failure recorded), -2 when cancelled. */
enum { CL_TOKEN_READY, CL_TOKEN_FAILED, CL_TOKEN_NO_REQUEST, CL_TOKEN_WAIT, CL_TOKEN_CLAIMED };
unsigned long long cl_token_fail_seq(cl_token *t);
int cl_token_poll(cl_token *t, unsigned long long refused, unsigned long long accept,
                  unsigned long long seq0, unsigned long long *fail_seq, int may_claim,
                  cl_token_req **req, const cl_request_spec **spec);
/* ... and *gen: the generation a good renewal put in. */
int cl_token_renewed(cl_token *t, cl_token_req *req, cl_http *h, unsigned long long *fail_seq,
                     unsigned long long *gen);

/* Adds _core.TokenCell to the module. */
int cl_token_register(PyObject *module);

#endif
