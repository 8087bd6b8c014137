/* The shape of a body as it arrives (shape.h): the bracket rules of the
 * structure skip (brackets.h), over the whole body from its first byte, as
 * the fetch thread receives it; the spans of the shallow structures are
 * kept.
 *
 * Its block step runs once per 64 bytes of every page, so it comes in two
 * builds of one loop: the SSE2/NEON/scalar one every machine runs, and on
 * x86-64 one with AVX2 masks, a carry-less multiply for the prefix XOR and
 * the popcnt instruction, taken when the processor (and the kernel, for the
 * wide registers) has them.  Both give the same spans from the same bytes,
 * however they arrive (tests/test_shape.py compares them). */
#include "brackets.h"

#if defined(CL_SCAN_SSE2) && defined(__x86_64__) && defined(__GNUC__)
#define CL_SHAPE_AVX2 1
#include <cpuid.h>
#include <immintrin.h>
#define CL_AVX2_FN __attribute__((target("avx2,pclmul,popcnt")))
#endif

void
cl_shape_reset(cl_shape *s)
{
    memset(s, 0, sizeof *s);
}

const cl_span *
cl_shape_find(const cl_shape *s, size_t open)
{
    for (int i = 0; i < s->n; i++)
        if (s->spans[i].open == open)
            return &s->spans[i];
    return NULL;
}

/* Every level still open has now seen `level` (or at most it). */
static inline void
shape_seen(cl_shape *s, long level)
{
    for (long k = 0; k < CL_SHAPE_LEVELS && k < s->depth; k++)
        if (s->peak[k] < level)
            s->peak[k] = level;
}

static void
shape_keep(cl_shape *s, cl_span sp)
{
    int at = s->n;
    if (s->n == CL_SHAPE_SPANS) {          /* full: the smallest gives way */
        at = 0;
        for (int i = 1; i < s->n; i++)
            if (s->spans[i].close - s->spans[i].open < s->spans[at].close - s->spans[at].open)
                at = i;
        if (s->spans[at].close - s->spans[at].open >= sp.close - sp.open)
            return;
    }
    else
        s->n++;
    s->spans[at] = sp;
}

static inline void
shape_open(cl_shape *s, size_t at)
{
    s->depth++;
    shape_seen(s, s->depth);
    if (s->depth <= CL_SHAPE_LEVELS) {
        s->open_at[s->depth - 1] = at;
        s->peak[s->depth - 1] = s->depth;
    }
}

static inline void
shape_close(cl_shape *s, size_t at)
{
    long level = s->depth;
    if (level <= 0) {
        s->broken = 1;
        return;
    }
    if (level <= CL_SHAPE_LEVELS && at - s->open_at[level - 1] >= CL_SHAPE_MIN)
        shape_keep(s, (cl_span){s->open_at[level - 1], at, s->peak[level - 1] - level + 1});
    s->depth--;
}

static inline void
shape_byte(cl_shape *s, char c, size_t at)
{
    int k = cl_lex_byte(&s->in_string, &s->escaped, c);
    if (k > 0)
        shape_open(s, at);
    else if (k < 0)
        shape_close(s, at);
}

#ifdef CL_SHAPE_AVX2
/* The 64 comparison bits of two 32-byte halves. */
static inline CL_AVX2_FN uint64_t
wide_bits(__m256i lo, __m256i hi)
{
    return (uint64_t)(uint32_t)_mm256_movemask_epi8(lo)
           | (uint64_t)(uint32_t)_mm256_movemask_epi8(hi) << 32;
}

static inline CL_AVX2_FN cl_marks
wide_marks(const char *p)
{
    const __m256i q = _mm256_set1_epi8('"'), b = _mm256_set1_epi8('\\');
    const __m256i fold = _mm256_set1_epi8(0x20);
    const __m256i o = _mm256_set1_epi8('{'), c = _mm256_set1_epi8('}');
    __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
    __m256i flo = _mm256_or_si256(lo, fold), fhi = _mm256_or_si256(hi, fold);   /* '[' ']' onto '{' '}' */
    cl_marks m;
    m.quote = wide_bits(_mm256_cmpeq_epi8(lo, q), _mm256_cmpeq_epi8(hi, q));
    m.bslash = wide_bits(_mm256_cmpeq_epi8(lo, b), _mm256_cmpeq_epi8(hi, b));
    m.open = wide_bits(_mm256_cmpeq_epi8(flo, o), _mm256_cmpeq_epi8(fhi, o));
    m.close = wide_bits(_mm256_cmpeq_epi8(flo, c), _mm256_cmpeq_epi8(fhi, c));
    return m;
}

/* Bit i: the XOR of bits 0..i, as the low half of m's carry-less product
 * with all ones. */
static inline CL_AVX2_FN uint64_t
wide_prefix_xor(uint64_t m)
{
    __m128i x = _mm_clmulepi64_si128(_mm_set_epi64x(0, (long long)m), _mm_set1_epi8(-1), 0);
    return (uint64_t)_mm_cvtsi128_si64(x);
}

static inline CL_AVX2_FN int
wide_count(uint64_t m)
{
    return __builtin_popcountll(m);
}
#endif

/* The prefix XOR of either build. */
static inline __attribute__((always_inline)) uint64_t
prefix_xor(uint64_t m, int wide)
{
#ifdef CL_SHAPE_AVX2
    if (wide)
        return wide_prefix_xor(m);
#endif
    (void)wide;
    return cl_prefix_xor(m);
}

/* The loop of both builds; `wide` is a constant in each. */
static inline __attribute__((always_inline)) void
feed_blocks(cl_shape *s, const char *buf, size_t len, int final, int wide)
{
    const char *p = buf + s->at, *end = buf + len;
    (void)wide;                        /* no wide build on this target */
    while (end - p >= 64 && !s->broken) {
        size_t base = (size_t)(p - buf);
        cl_marks m;
#ifdef CL_SHAPE_AVX2
        if (wide)
            m = wide_marks(p);
        else
#endif
            m = cl_block_marks(p);
        uint64_t inside;
        if (m.bslash != 0 || s->escaped) {
            int escaped_out;
            uint64_t quotes = m.quote & ~cl_escaped_bytes(m.bslash, s->escaped, &escaped_out);
            inside = prefix_xor(quotes, wide) ^ (s->in_string ? ~(uint64_t)0 : 0);
            if ((m.bslash & ~inside) != 0) {   /* a backslash outside a string */
                for (int i = 0; i < 64 && !s->broken; i++)
                    shape_byte(s, p[i], base + (size_t)i);
                p += 64;
                continue;
            }
            s->escaped = escaped_out;
        }
        else
            inside = prefix_xor(m.quote, wide) ^ (s->in_string ? ~(uint64_t)0 : 0);
        uint64_t opens = m.open & ~inside, closes = m.close & ~inside, hits = opens | closes;
        s->in_string = (int)(inside >> 63);
        p += 64;
        if (hits == 0)
            continue;
        int n_open, n_close;
#ifdef CL_SHAPE_AVX2
        if (wide) {
            n_open = wide_count(opens);
            n_close = wide_count(closes);
        }
        else
#endif
        {
            n_open = cl_count_bits(opens);
            n_close = cl_count_bits(closes);
        }
        if (s->depth - n_close > CL_SHAPE_LEVELS) {
            /* every bracket here is deeper than a recorded level */
            shape_seen(s, s->depth + n_open);
            s->depth += n_open - n_close;
            continue;
        }
        while (hits != 0 && !s->broken) {
            int i = __builtin_ctzll(hits);
            hits &= hits - 1;
            if ((opens >> i) & 1)
                shape_open(s, base + (size_t)i);
            else
                shape_close(s, base + (size_t)i);
        }
    }
    if (final)
        for (; p < end && !s->broken; p++)
            shape_byte(s, *p, (size_t)(p - buf));
    s->at = (size_t)(p - buf);
}

static void
feed_plain(cl_shape *s, const char *buf, size_t len, int final)
{
    feed_blocks(s, buf, len, final, 0);
}

#ifdef CL_SHAPE_AVX2
static CL_AVX2_FN void
feed_avx2(cl_shape *s, const char *buf, size_t len, int final)
{
    feed_blocks(s, buf, len, final, 1);
}

/* AVX2, PCLMULQDQ and POPCNT in the processor, and the wide registers'
 * state saved by the kernel (OSXSAVE, then XCR0's SSE and AVX bits). */
static int
avx2_usable(void)
{
    unsigned a, b, c, d, lo, hi;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (!(c & bit_OSXSAVE) || !(c & bit_AVX) || !(c & bit_PCLMUL) || !(c & bit_POPCNT))
        return 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & 6) != 6)
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b & bit_AVX2) != 0;
}
#endif

int
cl_shape_variants(void)
{
    static int known = -1;         /* the same answer from every thread */
    int v = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (v < 0) {
        v = 1 << CL_SHAPE_PLAIN;
#ifdef CL_SHAPE_AVX2
        if (avx2_usable())
            v |= 1 << CL_SHAPE_WIDE;
#endif
        __atomic_store_n(&known, v, __ATOMIC_RELAXED);
    }
    return v;
}

void
cl_shape_feed_as(cl_shape *s, const char *buf, size_t len, int final, int variant)
{
#ifdef CL_SHAPE_AVX2
    if (variant == CL_SHAPE_WIDE) {
        feed_avx2(s, buf, len, final);
        return;
    }
#endif
    (void)variant;
    feed_plain(s, buf, len, final);
}

void
cl_shape_feed(cl_shape *s, const char *buf, size_t len, int final)
{
    int wide = (cl_shape_variants() >> CL_SHAPE_WIDE) & 1;
    cl_shape_feed_as(s, buf, len, final, wide ? CL_SHAPE_WIDE : CL_SHAPE_PLAIN);
}
