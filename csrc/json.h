/* In-situ JSON scanner over a receive buffer.
 *
 * Nothing here allocates per value: strings are located (and validated) in
 * place, numbers are delimited, unknown values are skipped.  The decoder
 * (decode.c, decode_values.c) turns what it needs into Python objects. */
#ifndef CL_JSON_H
#define CL_JSON_H

#include "common.h"
#include "shape.h"
#include <stdint.h>
#include <string.h>
/* The block steps of the scans: SSE2 on x86-64, NEON on AArch64 (both
 * always there on those machines), else eight bytes at a time in a 64-bit
 * word.  Each gives the same results; CL_SCALAR_SCAN forces the portable
 * one anywhere (a test build compares it with the others). */
#if defined(__SSE2__) && !defined(CL_SCALAR_SCAN)
#define CL_SCAN_SSE2 1
#define CL_SCAN_PATH "sse2"
#include <emmintrin.h>
#elif defined(__aarch64__) && defined(__ARM_NEON) && !defined(CL_SCALAR_SCAN)
#define CL_SCAN_NEON 1
#define CL_SCAN_PATH "neon"
#include <arm_neon.h>
#else
#define CL_SCAN_PATH "scalar"
#endif

/* decode_values.c: the values one decode call reuses (see cl_make_str). */
typedef struct cl_vcache cl_vcache;

/* A scan that runs without the GIL (cl_dec.err set) calls no Python: its
 * failure is noted here, and raised by its caller once the GIL is back. */
enum { CL_ERR_NONE, CL_ERR_NOMEM, CL_ERR_DECODE };

typedef struct {
    int kind;               /* CL_ERR_* */
    Py_ssize_t offset;      /* CL_ERR_DECODE: DecodeError(msg, offset) */
    char msg[200];
} cl_err;

typedef struct {
    const char *start;      /* first byte of the body */
    const char *p;          /* cursor */
    const char *end;        /* one past the last byte */
    int depth;
    int max_depth;
    int guarded;            /* Py_EnterRecursiveCall calls not yet left */
    Py_ssize_t budget;      /* array elements still allowed (item budget) */
    unsigned signal_tick;   /* counts values between signal checks */
    void *defer_items;      /* cl_schema * that deferred items decode with */
    const cl_shape *shape;  /* spans of this very buffer found as it arrived, or NULL */
    int unions;             /* unions open in the fast mode (decode.c) */
    int exact_unions;       /* > 0: every union looks ahead in full (decode.c) */
    char *scratch;          /* unescaped string bytes */
    size_t scratch_cap;
    cl_vcache *vcache;      /* a decode entry point's, or NULL: no reuse */
    cl_state *st;
    cl_err *err;            /* non-NULL: no Python here, failures noted in it */
    int guard_depth;        /* with err: the deepest level the interpreter's
                             * recursion guard allowed (measured before) */
} cl_dec;

/* A located string: bytes between the quotes, as on the wire. */
typedef struct {
    const char *s;
    Py_ssize_t len;
    int escaped;            /* contains backslash escapes */
    int ascii;              /* all bytes < 0x80 */
} cl_str;

void cl_dec_init(cl_dec *d, cl_state *st, const char *buf, size_t len, int max_depth);
void cl_dec_free(cl_dec *d);

/* Sets DecodeError(message, offset) at the cursor (or notes it in d->err);
 * returns -1. */
int cl_dec_error(cl_dec *d, const char *fmt, ...);

static inline int
cl_is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline void
cl_skip_ws(cl_dec *d)
{
    while (d->p < d->end && cl_is_ws(*d->p))
        d->p++;
}

/* Expect byte c after whitespace and step over it. */
int cl_expect(cl_dec *d, char c, const char *what);

#define CL_ONES 0x0101010101010101ULL
#define CL_HIGHS 0x8080808080808080ULL

/* Non-zero if any byte of v is a quote, a backslash, a control character
 * or non-ASCII: the bytes a string scan must stop at. */
static inline uint64_t
cl_special_bytes(uint64_t v)
{
    uint64_t q = v ^ (CL_ONES * '"'), b = v ^ (CL_ONES * '\\');
    return (((v - CL_ONES * 0x20) & ~v) | ((q - CL_ONES) & ~q) | ((b - CL_ONES) & ~b) | v) & CL_HIGHS;
}

/* Skip the plain ASCII run at p: sixteen bytes per step with SSE2 or NEON,
 * else eight; the first special byte of a block is found from its mask
 * without a byte loop.  In the SWAR mask only bytes above a real hit can be
 * false positives, so its lowest set bit is exact. */
static inline const char *
cl_plain_run(const char *p, const char *end)
{
#if defined(CL_SCAN_SSE2)
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* signed bytes: below 0x20 covers controls and every non-ASCII byte */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                 _mm_cmplt_epi8(v, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask != 0)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#elif defined(CL_SCAN_NEON)
    const int8x16_t quote = vdupq_n_s8('"'), bslash = vdupq_n_s8('\\'), space = vdupq_n_s8(0x20);
    while (end - p >= 16) {
        int8x16_t v = vld1q_s8((const int8_t *)(const void *)p);
        /* signed bytes, as above: below 0x20 is a control or non-ASCII */
        uint8x16_t m = vorrq_u8(vorrq_u8(vceqq_s8(v, quote), vceqq_s8(v, bslash)), vcltq_s8(v, space));
        /* four bits per byte: each 16-bit lane shifted right by 4, narrowed */
        uint64_t nibbles = vget_lane_u64(vreinterpret_u64_u8(vshrn_n_u16(vreinterpretq_u16_u8(m), 4)), 0);
        if (nibbles != 0)
            return p + (__builtin_ctzll(nibbles) >> 2);
        p += 16;
    }
#endif
    while (end - p >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        uint64_t s = cl_special_bytes(v);
        if (s != 0)
            return p + (__builtin_ctzll(s) >> 3);
        p += 8;
    }
    while (p < end && (unsigned char)*p >= 0x20 && *p != '"' && *p != '\\'
           && (unsigned char)*p < 0x80)
        p++;
    return p;
}

/* cl_scan_string from `p`, the first byte of the string (after the opening
 * quote at d->p) that is not plain ASCII. */
int cl_scan_string_from(cl_dec *d, cl_str *out, const char *p);

/* Cursor at '"': locate and validate the string, step past it.  A plain
 * ASCII string (keys, most values) is done here, inline. */
static inline int
cl_scan_string(cl_dec *d, cl_str *out)
{
    const char *p = cl_plain_run(d->p + 1, d->end);
    if (p < d->end && *p == '"') {
        out->s = d->p + 1;
        out->len = p - out->s;
        out->escaped = 0;
        out->ascii = 1;
        d->p = p + 1;
        return 0;
    }
    return cl_scan_string_from(d, out, p);
}

/* Unescape into d->scratch; *out_len receives the UTF-8 length. */
int cl_unescape(cl_dec *d, const cl_str *s, Py_ssize_t *out_len);
/* Cursor at a number: delimit it and check the grammar. */
int cl_scan_number(cl_dec *d, cl_str *out, int *is_int);
/* Skip any value, fully validating it. */
int cl_skip_value(cl_dec *d);
/* Skip an array or object by its brackets alone, without validating its
 * contents: for a region that is decoded (and validated) afterwards. */
int cl_skip_structure(cl_dec *d);
/* Match a literal (true/false/null) at the cursor. */
int cl_scan_literal(cl_dec *d, const char *lit, size_t n);

/* Object iteration: after '{' call cl_obj_next to get each key;
 * returns 1 with a key, 0 at '}', -1 on error. `first` tracks commas.
 * The cursor is left at the value, past any whitespace. */
int cl_obj_next_slow(cl_dec *d, int *first, cl_str *key);
/* Array iteration likewise: 1 at a value, 0 at ']', -1 on error. */
int cl_arr_next_slow(cl_dec *d, int *first);
/* After a key: the ':' and whitespace up to the value; 1, or -1 on error. */
int cl_obj_colon(cl_dec *d);

/* Both take compact JSON (no whitespace between tokens) inline and leave
 * anything else to the general path, which gives the same answers. */
static inline int
cl_obj_next(cl_dec *d, int *first, cl_str *key)
{
    const char *p = d->p, *end = d->end;
    if (end - p < 2)
        return cl_obj_next_slow(d, first, key);
    if (*p == '}') {
        d->p = p + 1;
        return 0;
    }
    if (*first ? *p != '"' : (*p != ',' || *++p != '"'))
        return cl_obj_next_slow(d, first, key);
    *first = 0;
    d->p = p;
    if (cl_scan_string(d, key) < 0)
        return -1;
    p = d->p;
    if (end - p >= 2 && *p == ':' && (unsigned char)p[1] > ' ') {
        d->p = p + 1;
        return 1;
    }
    return cl_obj_colon(d);
}

static inline int
cl_arr_next(cl_dec *d, int *first)
{
    const char *p = d->p, *end = d->end;
    if (end - p >= 2) {
        if (*p == ']') {
            d->p = p + 1;
            return 0;
        }
        if (*first && (unsigned char)*p > ' ') {
            *first = 0;
            return 1;
        }
        if (!*first && *p == ',' && (unsigned char)p[1] > ' ' && p[1] != ']') {
            d->p = p + 1;
            return 1;
        }
    }
    return cl_arr_next_slow(d, first);
}

/* One nesting level deeper: bounded by max_depth (itself at most
 * CL_MAX_DEPTH) and by the interpreter's recursion guard, so no setting
 * can overflow the C stack.  Without the GIL (d->err) the guard's room was
 * measured beforehand: d->guard_depth. */
int cl_enter_slow(cl_dec *d);
/* The interpreter's guard refused a level (its exception set): -1 with the
 * DecodeError a RecursionError becomes. */
int cl_enter_refused(cl_dec *d);
static inline int
cl_enter(cl_dec *d)
{
    if (d->depth >= d->max_depth || d->err != NULL)
        return cl_enter_slow(d);      /* the depth limit, and scans without the GIL */
    d->depth++;
    if (Py_EnterRecursiveCall(" while decoding JSON"))
        return cl_enter_refused(d);
    d->guarded++;
    return 0;
}
static inline void
cl_leave(cl_dec *d)
{
    d->depth--;
    if (d->guarded > 0) {
        d->guarded--;
        Py_LeaveRecursiveCall();
    }
}

#endif
