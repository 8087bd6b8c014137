/* A client's current access token, where the fetch thread can read it
 * without Python: the "Authorization: Bearer ..." line, the moment it stops
 * being used (monotonic clock), and a generation that grows with each token
 * put in (so the generation counts the tokens fetched).
 *
 * Python's ClientCredentials puts in the tokens it fetches itself
 * (_core.TokenCell.set), and gives the cell its token request
 * (TokenCell._configure, the arguments of _core.request) when it is bound
 * to a client.  From then on the fetch thread renews by itself, in C and
 * without the GIL (cl_token_renew): when the token is missing or expiring
 * as a request is about to go, or a request sent with generation G was
 * refused with 401.  One request serves every listing of the client: a
 * renewal in flight (from the engine or from Python, TokenCell._begin) is
 * waited for, never doubled, and the generation tells whether another one
 * renewed meanwhile.
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

typedef struct cl_token cl_token;

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

/* Renew the token unless generation `refused` is no longer current and the
 * token in the cell is usable: waits for a renewal in flight, or sends the
 * one request itself.  No Python, no GIL; `cancel` (the listing's) aborts
 * the wait and the request.  Returns 1 with a newer token in the cell; 0
 * when the renewal failed (*fail_seq: the failure recorded); -1 when the
 * cell has no token request (the consumer renews through Python); -2 when
 * cancelled. */
int cl_token_renew(cl_token *t, unsigned long long refused, volatile int *cancel,
                   unsigned long long *fail_seq);

/* Adds _core.TokenCell to the module. */
int cl_token_register(PyObject *module);

#endif
