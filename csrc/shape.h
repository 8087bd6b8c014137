/* Where a page's big arrays and objects end, found by the fetch thread as
 * the body arrives (shape.c scans, http.c feeds it): the pager's locating
 * pass then steps over the items array at once instead of scanning it on
 * the consumer's thread.  No Python here: it runs without the GIL.
 *
 * A span is only ever a shortcut: the structure skip (cl_skip_structure)
 * uses it when it starts at exactly a recorded opening bracket, and the
 * scan that recorded it follows the same rules from the same byte, so the
 * end is the one the skip would find.  Whatever is not recorded (cut short,
 * too deep to be sure, too small, the table full) is scanned as before,
 * errors included. */
#ifndef CL_SHAPE_H
#define CL_SHAPE_H

#include <stddef.h>

#define CL_SHAPE_SPANS 8           /* kept: the largest ones */
#define CL_SHAPE_LEVELS 3          /* recorded: structures this shallow (root = 1) */
#define CL_SHAPE_MIN 1024          /* ... and at least this long */

typedef struct {
    size_t open, close;            /* offsets of the two brackets */
    long peak;                     /* levels inside, its own counted (an upper bound) */
} cl_span;

typedef struct {
    int in_string, escaped;
    int broken;                    /* a close with nothing open: nothing more recorded */
    long depth;
    size_t at;                     /* bytes scanned so far */
    size_t open_at[CL_SHAPE_LEVELS];
    long peak[CL_SHAPE_LEVELS];    /* deepest level seen since each open level began */
    int n;
    cl_span spans[CL_SHAPE_SPANS];
} cl_shape;

/* Forget the last body. */
void cl_shape_reset(cl_shape *s);
/* Scan buf[s->at, len): whole 64-byte blocks only, unless `final` (the
 * body is complete). */
void cl_shape_feed(cl_shape *s, const char *buf, size_t len, int final);
/* The builds of the feed's block step: every machine has the plain one
 * (SSE2, NEON or scalar), x86-64 with AVX2 the wide one. */
enum { CL_SHAPE_PLAIN, CL_SHAPE_WIDE };
/* Which of them this machine runs: bit 1 << CL_SHAPE_* each. */
int cl_shape_variants(void);
/* cl_shape_feed with the given build (one of cl_shape_variants()). */
void cl_shape_feed_as(cl_shape *s, const char *buf, size_t len, int final, int variant);
/* The span opening at `open`, if recorded. */
const cl_span *cl_shape_find(const cl_shape *s, size_t open);

#endif
