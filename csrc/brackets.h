/* The bracket rules of JSON over 64-byte blocks, shared by the structure
 * skip (json.c) and the shape of a body as it arrives (shape.c): one mask
 * per kind of byte that matters (quote, backslash, opening and closing
 * bracket), the bytes inside strings found from the quotes by a prefix XOR,
 * and only the brackets outside strings looked at one by one.  In a block
 * with a backslash (or after one that ended on a backslash) the escaped
 * bytes are found first, reading every backslash as inside a string; when
 * one turns out not to be (no valid JSON has that), the block goes byte by
 * byte instead.  Both ways follow the same rules as a byte loop would: a
 * backslash in a string escapes the next byte, brackets count only
 * outside strings. */
#ifndef CL_BRACKETS_H
#define CL_BRACKETS_H

#include "json.h"

typedef struct {
    uint64_t quote, bslash, open, close;
} cl_marks;

/* Exactly 0x80 in each byte of v that is zero (no borrow between bytes). */
static inline uint64_t
cl_zero_bytes(uint64_t v)
{
    const uint64_t low7 = CL_ONES * 0x7F;
    return ~(((v & low7) + low7) | v | low7);
}

/* The 0x80 bits of the eight bytes of t, as eight bits. */
static inline uint64_t
cl_gather_highs(uint64_t t)
{
    return ((t >> 7) * 0x0102040810204080ULL) >> 56;
}

#if defined(CL_SCAN_NEON)
/* The 0xFF bytes of four 16-byte comparison results a..d (64 bytes in
 * order) as 64 bits: each byte keeps only its own bit of 1, 2, 4 ... 128,
 * then three rounds of pairwise adds fold eight bytes into one. */
static inline uint64_t
cl_neon_bits(uint8x16_t a, uint8x16_t b, uint8x16_t c, uint8x16_t d)
{
    static const uint8_t weights[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t w = vld1q_u8(weights);
    uint8x16_t ab = vpaddq_u8(vandq_u8(a, w), vandq_u8(b, w));
    uint8x16_t cd = vpaddq_u8(vandq_u8(c, w), vandq_u8(d, w));
    uint8x16_t all = vpaddq_u8(ab, cd);
    return vgetq_lane_u64(vreinterpretq_u64_u8(vpaddq_u8(all, all)), 0);
}
#endif

static inline cl_marks
cl_block_marks(const char *p)
{
    cl_marks m = {0, 0, 0, 0};
#if defined(CL_SCAN_SSE2)
    const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\'), fold = _mm_set1_epi8(0x20);
    const __m128i o = _mm_set1_epi8('{'), c = _mm_set1_epi8('}');
    for (int i = 0; i < 4; i++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
        __m128i f = _mm_or_si128(v, fold);          /* '[' ']' onto '{' '}' */
        int at = 16 * i;
        m.quote |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, q)) << at;
        m.bslash |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, b)) << at;
        m.open |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(f, o)) << at;
        m.close |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(f, c)) << at;
    }
#elif defined(CL_SCAN_NEON)
    const uint8x16_t q = vdupq_n_u8('"'), b = vdupq_n_u8('\\'), fold = vdupq_n_u8(0x20);
    const uint8x16_t o = vdupq_n_u8('{'), c = vdupq_n_u8('}');
    uint8x16_t v[4], f[4];
    for (int i = 0; i < 4; i++) {
        v[i] = vld1q_u8((const uint8_t *)(const void *)(p + 16 * i));
        f[i] = vorrq_u8(v[i], fold);                /* '[' ']' onto '{' '}' */
    }
    m.quote = cl_neon_bits(vceqq_u8(v[0], q), vceqq_u8(v[1], q), vceqq_u8(v[2], q), vceqq_u8(v[3], q));
    m.bslash = cl_neon_bits(vceqq_u8(v[0], b), vceqq_u8(v[1], b), vceqq_u8(v[2], b), vceqq_u8(v[3], b));
    m.open = cl_neon_bits(vceqq_u8(f[0], o), vceqq_u8(f[1], o), vceqq_u8(f[2], o), vceqq_u8(f[3], o));
    m.close = cl_neon_bits(vceqq_u8(f[0], c), vceqq_u8(f[1], c), vceqq_u8(f[2], c), vceqq_u8(f[3], c));
#else
    for (int i = 0; i < 8; i++) {
        uint64_t v, f;
        int at = 8 * i;
        memcpy(&v, p + at, 8);
        f = v | (CL_ONES * 0x20);
        m.quote |= cl_gather_highs(cl_zero_bytes(v ^ (CL_ONES * '"'))) << at;
        m.bslash |= cl_gather_highs(cl_zero_bytes(v ^ (CL_ONES * '\\'))) << at;
        m.open |= cl_gather_highs(cl_zero_bytes(f ^ (CL_ONES * '{'))) << at;
        m.close |= cl_gather_highs(cl_zero_bytes(f ^ (CL_ONES * '}'))) << at;
    }
#endif
    return m;
}

/* Set bits of m: one instruction where the target has it, else a few
 * shifts and a multiply (never libgcc's out-of-line __popcountdi2). */
static inline int
cl_count_bits(uint64_t m)
{
#ifdef __POPCNT__
    return __builtin_popcountll(m);
#else
    m -= (m >> 1) & 0x5555555555555555ULL;
    m = (m & 0x3333333333333333ULL) + ((m >> 2) & 0x3333333333333333ULL);
    m = (m + (m >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((m * CL_ONES) >> 56);
#endif
}

/* Bit i: the XOR of bits 0..i. */
static inline uint64_t
cl_prefix_xor(uint64_t m)
{
    m ^= m << 1;
    m ^= m << 2;
    m ^= m << 4;
    m ^= m << 8;
    m ^= m << 16;
    m ^= m << 32;
    return m;
}


/* The bytes of a block that a backslash before them escapes, reading every
 * backslash as inside a string: one that is not itself escaped escapes the
 * next byte.  `escaped_in`: the block's first byte is escaped (the last
 * block ended on such a backslash); *escaped_out: this block does.  Once
 * the strings are known from the quotes left, the caller checks that every
 * backslash was inside one: then these are the byte loop's escapes, as
 * the two agree byte by byte up to the first backslash outside a string.
 * A loop per escape, not per byte: blocks with backslashes are few. */
static inline uint64_t
cl_escaped_bytes(uint64_t bslash, int escaped_in, int *escaped_out)
{
    uint64_t escaped = escaped_in ? 1 : 0;
    uint64_t starts = bslash & ~escaped;
    *escaped_out = 0;
    while (starts != 0) {
        int i = __builtin_ctzll(starts);
        if (i == 63) {
            *escaped_out = 1;
            break;
        }
        escaped |= (uint64_t)1 << (i + 1);
        starts &= ~((uint64_t)3 << i);     /* a backslash it escapes starts nothing */
    }
    return escaped;
}

/* One byte of the bracket rules: 1 for an opening bracket outside strings,
 * -1 for a closing one, else 0 (the string state follows the byte). */
static inline int
cl_lex_byte(int *in_string, int *escaped, char c)
{
    if (*in_string) {
        if (*escaped)
            *escaped = 0;
        else if (c == '\\')
            *escaped = 1;
        else if (c == '"')
            *in_string = 0;
        return 0;
    }
    if (c == '"')
        *in_string = 1;
    else if (c == '[' || c == '{')
        return 1;
    else if (c == ']' || c == '}')
        return -1;
    return 0;
}

#endif
