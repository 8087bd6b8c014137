/* Decode internals: what the decoder's files share and nothing else does.
 *
 * The schema-directed decoder is three files:
 *   decode_schema.c  compiles a description tuple into the node tree below
 *                    (key maps, enum words, union variants) and is the
 *                    custlist._core.Schema type;
 *   decode_values.c  builds the scalar values: str (with the repeated-value
 *                    cache), int, float, bool, Decimal, datetime, enum member;
 *   decode.c         the structure: the dispatch by kind, lists, generic
 *                    values, records and their key matching, unions, and the
 *                    entry points (a page, its deferred items, a document).
 * decode.h is what the rest of the engine sees; this header is for those
 * files alone.  Functions declared here are hidden (never exported from the
 * extension), so a call between two of the files is a plain direct call and
 * one inside its own file may still be inlined. */
#ifndef CL_DECODE_INTERNAL_H
#define CL_DECODE_INTERNAL_H

#include "decode.h"
#include "json.h"
#include <stdint.h>
#include <string.h>

#define CL_INTERNAL __attribute__((visibility("hidden")))
#define CL_NOINLINE __attribute__((noinline))

enum {
    K_ANY, K_STR, K_INT, K_FLOAT, K_BOOL, K_DECIMAL,
    K_DATETIME, K_UNIX_S, K_UNIX_MS, K_ENUM, K_LIST, K_RECORD, K_UNION, K_DEFER,
};

typedef struct {              /* a wire string matched by bytes */
    const char *s;
    Py_ssize_t len;
    uint64_t head, head2;     /* bytes 0-7 and 8-15, zero-padded: see word_head */
    PyObject *obj;            /* borrowed from cl_schema.refs */
    cl_node *node;            /* union variants */
} cl_word;

typedef struct cl_keymap cl_keymap;

typedef struct {
    cl_word key;
    Py_ssize_t slot;          /* -1 for a group */
    cl_node *value;           /* leaf value schema */
    cl_keymap *group;         /* nested object flattened into the same record */
} cl_keyent;

/* What the key map remembers of the last object decoded with it: for each
 * place in it (the object's start, after each of its keys, after any key it
 * does not hold) the key that came next. */
typedef struct {
    Py_ssize_t len;           /* -1: nothing remembered */
    uint64_t head, head2;     /* as in cl_word */
    const char *s;            /* a known key's bytes (compared past 16) */
    cl_keyent *ent;           /* NULL: a key the map does not hold */
    Py_ssize_t next;          /* the place after this key */
    uint64_t mask, mask2;     /* head_mask of len and of len - 8 (0 if len <= 8) */
    int raw;                  /* the key's bytes are its spelling in the body: at
                                 most 16, no quote, backslash or control byte */
} cl_pred;

struct cl_keymap {
    Py_ssize_t n, cap;
    cl_keyent *ents;
    int32_t *index;           /* open addressing by key_hash: ents index + 1, 0 empty */
    size_t mask;              /* index size - 1 */
    cl_pred *preds;           /* n + 2: the start, after ents[i] at i + 1, after an unknown key */
#ifdef Py_GIL_DISABLED
    uint32_t seq;             /* preds' sequence count: odd while one is written */
#endif
};

/* The memory of the last object belongs to the schema, which threads share.
 * With the GIL a key's prediction is read and learnt in one step.  Without
 * it (free-threaded CPython) the memory is a sequence lock: a reader copies
 * a prediction, then uses it only if the key map's count is even and has
 * not moved (else it takes the hash index, as on a miss); a writer that
 * finds another one writing leaves the prediction as it is (it is a
 * heuristic: a key it failed to learn is looked up again next time).  Each
 * field is read and written with relaxed atomics, so a copy is never a torn
 * word.  On a GIL build all of it is plain loads and stores. */
#ifdef Py_GIL_DISABLED
#define PRED_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define PRED_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
static inline uint32_t
pred_read_begin(const cl_keymap *km)
{
    return __atomic_load_n(&km->seq, __ATOMIC_ACQUIRE);
}
static inline int
pred_read_ok(const cl_keymap *km, uint32_t seq)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return !(seq & 1) && __atomic_load_n(&km->seq, __ATOMIC_RELAXED) == seq;
}
static inline int
pred_write_begin(cl_keymap *km)
{
    uint32_t seq = __atomic_load_n(&km->seq, __ATOMIC_RELAXED);
    if ((seq & 1) || !__atomic_compare_exchange_n(&km->seq, &seq, seq + 1, 0, __ATOMIC_ACQUIRE,
                                                  __ATOMIC_RELAXED))
        return 0;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    return 1;
}
static inline void
pred_write_end(cl_keymap *km)
{
    __atomic_store_n(&km->seq, __atomic_load_n(&km->seq, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}
#else
#define PRED_LOAD(x) (x)
#define PRED_STORE(x, v) ((x) = (v))
#define pred_read_begin(km) ((void)(km), 0u)
#define pred_read_ok(km, seq) ((void)(km), (void)(seq), 1)
#define pred_write_begin(km) ((void)(km), 1)
#define pred_write_end(km) ((void)(km))
#endif

struct cl_node {
    int kind;
    cl_node *elem;            /* K_LIST */
    Py_ssize_t nwords;        /* K_ENUM members, K_UNION variants */
    cl_word *words;
    cl_word tag;              /* K_UNION discriminator key */
    cl_node *fallback;        /* K_UNION */
    PyTypeObject *cls;        /* K_RECORD (NULL for a page envelope) */
    Py_ssize_t nslots;
    cl_keymap keys;
    uint32_t vc_policy;       /* K_STR, K_ENUM, K_DECIMAL: see vc_wanted */
    unsigned char *atomic;    /* K_RECORD: per slot, 1 if it only ever holds atoms */
    Py_ssize_t nreq;          /* K_RECORD: slots never absent nor null (cls.__required__) */
    Py_ssize_t *req;
    int atoms_only;           /* every value is an atom: see node_atoms_only */
};

/* The first min(len, 8) bytes of s as one word, the rest zero: a key or
 * enum value is matched by its length and this word before any memcmp. */
static inline uint64_t
head_mask(Py_ssize_t len)
{
    if (len >= 8)
        return ~0ULL;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return len == 0 ? 0 : ~0ULL << (8 * (8 - len));
#else
    return (1ULL << (8 * len)) - 1;
#endif
}

/* `limit`: where readable memory ends; one 8-byte load when it allows. */
static inline uint64_t
word_head(const char *s, Py_ssize_t len, const char *limit)
{
    uint64_t v = 0;
    if (limit - s >= 8)
        memcpy(&v, s, 8);
    else
        memcpy(&v, s, (size_t)(len < 8 ? len : 8));
    return v & head_mask(len);
}

/* memcmp() == 0 for the short tails of keys, without the call. */
static inline int
bytes_eq(const char *a, const char *b, Py_ssize_t n)
{
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return 0;
    }
    for (; n > 0; n--)
        if (*a++ != *b++)
            return 0;
    return 1;
}

/* word_head of s and of s + 8 (0 for at most 8 bytes) at once: two plain
 * loads when `limit` leaves sixteen bytes to read. */
static inline void
key_words(const char *s, Py_ssize_t len, const char *limit, uint64_t *head, uint64_t *head2)
{
    if (limit - s >= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + 8, 8);
        *head = a & head_mask(len);
        *head2 = len > 8 ? b & head_mask(len - 8) : 0;
        return;
    }
    *head = word_head(s, len, limit);
    *head2 = len > 8 ? word_head(s + 8, len - 8, limit) : 0;
}

/* Whether (len, head, head2, s) is the key (b, blen) whose key_words are
 * `bhead` and `bhead2`. */
static inline int
key_is(Py_ssize_t len, uint64_t head, uint64_t head2, const char *s, const char *b,
       Py_ssize_t blen, uint64_t bhead, uint64_t bhead2)
{
    return len == blen && head == bhead && head2 == bhead2
        && (blen <= 16 || bytes_eq(s + 16, b + 16, blen - 16));
}

#define KEY_IS(w, b, len, head, head2) \
    key_is((w)->len, (w)->head, (w)->head2, (w)->s, b, len, head, head2)

/* `head`: word_head of s; `limit` as for word_head. */
static inline int
word_eq(const cl_word *w, const char *s, Py_ssize_t len, uint64_t head, const char *limit)
{
    if (w->len != len || w->head != head)
        return 0;
    if (len <= 8)
        return 1;
    return w->head2 == word_head(s + 8, len - 8, limit)
        && (len <= 16 || bytes_eq(w->s + 16, s + 16, len - 16));
}

static inline size_t
key_hash(Py_ssize_t len, uint64_t head, uint64_t head2)
{
    uint64_t h = (head ^ (head2 * 0x9E3779B97F4A7C15ULL) ^ (uint64_t)len) * 0xFF51AFD7ED558CCDULL;
    return (size_t)(h >> 29);
}

static inline int
type_error(cl_dec *d, const char *expected)
{
    return cl_dec_error(d, "expected %s", expected);
}

/* The wire bytes of a string, unescaped if needed (may live in scratch). */
static inline int
str_bytes(cl_dec *d, const cl_str *s, const char **out, Py_ssize_t *n)
{
    if (!s->escaped) {
        *out = s->s;
        *n = s->len;
        return 0;
    }
    if (cl_unescape(d, s, n) < 0)
        return -1;
    *out = d->scratch;
    return 0;
}

/* The word that is (s, len), which lies in the body or in d->scratch. */
static inline cl_word *
match_word(cl_dec *d, cl_word *words, Py_ssize_t n, const char *s, Py_ssize_t len)
{
    uint64_t head, head2;
    key_words(s, len, s == d->scratch ? d->scratch + d->scratch_cap : d->end, &head, &head2);
    for (Py_ssize_t i = 0; i < n; i++)
        if (KEY_IS(&words[i], s, len, head, head2))
            return &words[i];
    return NULL;
}

/* ---- the table of repeated values (decode_values.c) --------------------- */

#define CL_VCACHE_SIZE 128        /* entries: h >> 57 picks one */

typedef struct {
    uint64_t w0, w1;              /* the text, zero-padded (word_head) */
    int32_t len, tag;             /* tag 0: empty */
    PyObject *obj;
} cl_vent;

struct cl_vcache {
    int used;                     /* ents cleared and possibly holding objects */
    PyObject *dec_args;           /* see build_decimal; NULL or a 1-tuple, item NULL */
    cl_vent ents[CL_VCACHE_SIZE];
};

/* The entry points keep the table on their stack (decode_values.c). */
CL_INTERNAL void cl_vc_begin(cl_dec *d, cl_vcache *c);
CL_INTERNAL void cl_vc_end(cl_dec *d);

/* ---- decode_values.c: the scalar values --------------------------------- */

/* Each value decoder starts at the value (the cursor past any whitespace,
 * not at null) and leaves the cursor past it.  `n`: the field's node (its
 * cache policy), NULL for a generic value.  They stay functions of their
 * own, which decode_value jumps to (see decode.c). */
CL_INTERNAL PyObject *cl_decode_str(cl_dec *d, cl_node *n) CL_NOINLINE;
CL_INTERNAL PyObject *cl_decode_int(cl_dec *d) CL_NOINLINE;
CL_INTERNAL PyObject *cl_decode_float(cl_dec *d) CL_NOINLINE;
CL_INTERNAL PyObject *cl_decode_bool(cl_dec *d) CL_NOINLINE;
CL_INTERNAL PyObject *cl_decode_decimal(cl_dec *d, cl_node *n) CL_NOINLINE;
CL_INTERNAL PyObject *cl_decode_datetime(cl_dec *d, int kind) CL_NOINLINE;
CL_INTERNAL PyObject *cl_decode_enum(cl_dec *d, cl_node *n) CL_NOINLINE;

/* The str of a located string (a short one through the cache). */
CL_INTERNAL PyObject *cl_make_str(cl_dec *d, const cl_str *s, cl_node *n);
/* The int or float of a number token that cl_scan_number delimited. */
CL_INTERNAL PyObject *cl_int_from_token(cl_dec *d, const cl_str *num);
CL_INTERNAL PyObject *cl_float_from_token(cl_dec *d, const cl_str *num);

/* ---- decode.c: documents ------------------------------------------------ */

/* Schema.decode: a whole document whose root is the schema's root. */
CL_INTERNAL PyObject *cl_decode_document(cl_schema *sc, const char *buf, size_t len,
                                         int max_depth);

#endif
