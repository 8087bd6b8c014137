/* The scanning layer both sinks share: the record decoder (decode*.c, Python
 * objects) and the Arrow builder (arrow*.c, column buffers) read a page's
 * JSON through it, and only turn what it found into their own values.
 *
 * Below it is json.h, the tokenizer (strings located and validated, numbers
 * delimited, literals, skipping, object and array steps).  Here:
 *   - key words and key maps: the compiled keys of a record, matched by
 *     length and their first sixteen bytes, with a hash index and the key
 *     map's memory of the last object (which key came after which), and the
 *     object step that uses that memory (cl_key_next);
 *   - the discriminator look-ahead of a tagged union (cl_find_tag);
 *   - typed value scans with the errors both sinks give: a string, an
 *     integer (and its int64), a decimal text, a boolean, ISO-8601 and unix
 *     timestamps (to fields or epoch microseconds).
 * What runs once per key or value is static inline here, so each sink's hot
 * loop compiles it in place; scan.c holds the rest.  Nothing here calls
 * Python unless a scan fails with the GIL held (cl_dec_error), so the Arrow
 * builder runs all of it without the GIL. */
#ifndef CL_SCAN_H
#define CL_SCAN_H

#include "json.h"
#include <stdint.h>
#include <string.h>

#define CL_INTERNAL __attribute__((visibility("hidden")))
#define CL_NOINLINE __attribute__((noinline))

typedef struct cl_node cl_node;   /* decode_internal.h: the record decoder's schema node */

/* ---- key words and key maps -------------------------------------------- */

typedef struct {              /* a wire string matched by bytes */
    const char *s;
    Py_ssize_t len;
    uint64_t head, head2;     /* bytes 0-7 and 8-15, zero-padded: see word_head */
    PyObject *obj;            /* borrowed from cl_schema.refs */
    cl_node *node;            /* union variants */
} cl_word;

typedef struct cl_keymap cl_keymap;

/* One key of a key map.  `slot` is where the sink puts the key's value (a
 * record's slot, a struct's child column); a group (-1) is a nested wire
 * object whose own keys fill the same record or row. */
typedef struct {
    cl_word key;
    Py_ssize_t slot;          /* -1 for a group */
    cl_node *value;           /* the record decoder's value schema (NULL for Arrow) */
    cl_keymap *group;         /* nested object flattened into the same record */
    uint64_t seen;            /* Arrow: the object a group was last met in */
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

/* Set a word's bytes (s, len), which stay where they are. */
static inline void
cl_word_set(cl_word *w, const char *s, Py_ssize_t len)
{
    w->s = s;
    w->len = len;
    w->head = word_head(s, len, s + len);
    w->head2 = len > 8 ? word_head(s + 8, len - 8, s + len) : 0;
}

static inline int
type_error(cl_dec *d, const char *expected)
{
    cl_dec_error(d, "expected %s", expected);
    return -1;
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


/* The hash index and the memory of a key map (and of its groups), built once
 * all its keys are in; with the GIL (MemoryError).  Freed with
 * cl_keymap_drop_index, with or without the GIL. */
CL_INTERNAL int cl_keymap_index(cl_keymap *km);
CL_INTERNAL void cl_keymap_drop_index(cl_keymap *km);

/* The key map's entry for the key (b, len) by its hash index; -1 if it
 * holds none. */
static inline Py_ssize_t
keymap_lookup(const cl_keymap *km, const char *b, Py_ssize_t len, uint64_t head, uint64_t head2)
{
    if (km->index == NULL)
        return -1;
    size_t h = key_hash(len, head, head2) & km->mask;
    for (int32_t j; (j = km->index[h]) != 0; h = (h + 1) & km->mask)
        if (KEY_IS(&km->ents[j - 1].key, b, len, head, head2))
            return j - 1;
    return -1;
}

/* Remember that the key after place `at` was the key (len, head, head2),
 * entry `ent` (-1: a key the map does not hold); returns the place after
 * it. */
static inline Py_ssize_t
keymap_learn(cl_keymap *km, Py_ssize_t at, Py_ssize_t ent, Py_ssize_t len, uint64_t head,
             uint64_t head2, int raw)
{
    cl_pred *pr = &km->preds[at];
    Py_ssize_t next = ent >= 0 ? ent + 1 : km->n + 1;
    if (!pred_write_begin(km))     /* another thread is writing: learn nothing */
        return next;
    if (ent >= 0) {
        const cl_word *w = &km->ents[ent].key;
        int plain = w->len <= 16;
        for (Py_ssize_t i = 0; i < w->len && plain; i++)
            plain = (unsigned char)w->s[i] >= 0x20 && w->s[i] != '"' && w->s[i] != '\\';
        len = w->len;
        PRED_STORE(pr->head, w->head);
        PRED_STORE(pr->head2, w->head2);
        PRED_STORE(pr->s, w->s);
        PRED_STORE(pr->ent, &km->ents[ent]);
        PRED_STORE(pr->raw, plain);
    }
    else if (len <= 16) {          /* an unknown key: its bytes fit the two words */
        PRED_STORE(pr->head, head);
        PRED_STORE(pr->head2, head2);
        PRED_STORE(pr->s, (const char *)NULL);
        PRED_STORE(pr->ent, (cl_keyent *)NULL);
        PRED_STORE(pr->raw, raw);  /* bytes the string scan accepted once */
    }
    else {
        PRED_STORE(pr->len, (Py_ssize_t)-1);
        PRED_STORE(pr->raw, 0);
        pred_write_end(km);
        return next;
    }
    PRED_STORE(pr->len, len);
    PRED_STORE(pr->next, next);
    PRED_STORE(pr->mask, head_mask(len));
    PRED_STORE(pr->mask2, len > 8 ? head_mask(len - 8) : 0);
    pred_write_end(km);
    return next;
}

#ifdef Py_GIL_DISABLED
/* Whether the key (b, len, head, head2) is the prediction whose fields were
 * copied as (plen, phead, phead2, ps). */
static inline int
pred_is(Py_ssize_t plen, uint64_t phead, uint64_t phead2, const char *ps, const char *b,
        Py_ssize_t len, uint64_t head, uint64_t head2)
{
    return key_is(plen, phead, phead2, ps, b, len, head, head2);
}
#endif

/* The entry for the located key `key` (*out NULL for a key the map does
 * not hold); 0, or -1 on error.  `*at`: the place in the key map's memory
 * of the last object (0 at the start).  Records of a page mostly hold the
 * same keys in the same order, known and unknown alike: the key that came
 * next last time is tried first (length and first sixteen bytes, one
 * compare each), then the one after it (a key this object lacks); else the
 * hash index answers, and the memory learns the key.  `tag` (may be NULL):
 * a union's discriminator key, counted in *tags; its second copy is a
 * DecodeError ("discriminator repeated"). */
static inline __attribute__((always_inline)) int
cl_key_match(cl_dec *d, cl_keymap *km, const cl_str *key, Py_ssize_t *at, const cl_word *tag,
             int *tags, cl_keyent **out)
{
    const char *b = key->s, *limit = d->end;
    Py_ssize_t len = key->len;
    uint64_t head, head2;
    if (key->escaped) {
        if (cl_unescape(d, key, &len) < 0)
            return -1;
        b = d->scratch;
        limit = d->scratch + d->scratch_cap;
    }
    key_words(b, len, limit, &head, &head2);
    if (tag != NULL && KEY_IS(tag, b, len, head, head2) && ++*tags > 1) {
        cl_dec_error(d, "discriminator repeated");
        return -1;
    }
#ifndef Py_GIL_DISABLED
    const cl_pred *pr = &km->preds[*at];
    if (KEY_IS(pr, b, len, head, head2)) {
        *at = pr->next;
        *out = pr->ent;
        return 0;
    }
    if (pr->len >= 0) {
        const cl_pred *after = &km->preds[pr->next];
        if (KEY_IS(after, b, len, head, head2)) {
            *at = after->next;
            *out = after->ent;
            return 0;
        }
    }
#else
    /* the prediction and the one after it, copied, then checked */
    uint32_t seq = pred_read_begin(km);
    const cl_pred *pr = &km->preds[*at];
    Py_ssize_t plen = PRED_LOAD(pr->len), pnext = PRED_LOAD(pr->next);
    uint64_t phead = PRED_LOAD(pr->head), phead2 = PRED_LOAD(pr->head2);
    const char *ps = PRED_LOAD(pr->s);
    cl_keyent *pent = PRED_LOAD(pr->ent);
    const cl_pred *after = plen >= 0 ? &km->preds[pnext] : NULL;
    Py_ssize_t alen = -1, anext = 0;
    uint64_t ahead = 0, ahead2 = 0;
    const char *as = NULL;
    cl_keyent *aent = NULL;
    if (after != NULL) {
        alen = PRED_LOAD(after->len);
        anext = PRED_LOAD(after->next);
        ahead = PRED_LOAD(after->head);
        ahead2 = PRED_LOAD(after->head2);
        as = PRED_LOAD(after->s);
        aent = PRED_LOAD(after->ent);
    }
    if (pred_read_ok(km, seq)) {
        if (pred_is(plen, phead, phead2, ps, b, len, head, head2)) {
            *at = pnext;
            *out = pent;
            return 0;
        }
        if (after != NULL && pred_is(alen, ahead, ahead2, as, b, len, head, head2)) {
            *at = anext;
            *out = aent;
            return 0;
        }
    }
#endif
    Py_ssize_t ent = keymap_lookup(km, b, len, head, head2);
    *at = keymap_learn(km, *at, ent, len, head, head2, !key->escaped);
    *out = ent < 0 ? NULL : &km->ents[ent];
    return 0;
}

/* The object step through a key map: after '{' (first = 1, at = 0, tags =
 * 0), each call finds the next key and its entry (*e, NULL for a key the
 * map does not hold) and leaves the cursor at its value: 1; 0 at '}'; -1 on
 * error.  The key remembered next, spelt plainly and followed by ':' and
 * the value in compact JSON, is matched on its bytes in place, which is the
 * whole key scan (the string scan would stop at the same quote and accept
 * the same bytes); anything else takes cl_obj_next and cl_key_match. */
static inline __attribute__((always_inline)) int
cl_key_next(cl_dec *d, cl_keymap *km, int *first, Py_ssize_t *at, const cl_word *tag, int *tags,
            cl_keyent **e)
{
    const cl_pred *pr = &km->preds[*at];
    uint32_t seq = pred_read_begin(km);
    Py_ssize_t len = PRED_LOAD(pr->len);  /* read once: every read below stays in 25 bytes */
    if (PRED_LOAD(pr->raw) && (size_t)len <= 16 && d->end - d->p >= 25 && d->p[!*first] == '"'
        && (*first || *d->p == ',')) {
        uint64_t a, b;
        const char *k = d->p + !*first + 1;
        memcpy(&a, k, 8);
        memcpy(&b, k + 8, 8);
        a &= PRED_LOAD(pr->mask);
        b &= PRED_LOAD(pr->mask2);
        if (a == PRED_LOAD(pr->head) && b == PRED_LOAD(pr->head2)
            && k[len] == '"' && k[len + 1] == ':' && (unsigned char)k[len + 2] > ' ') {
            Py_ssize_t pnext = PRED_LOAD(pr->next);
            cl_keyent *pent = PRED_LOAD(pr->ent);
            if (pred_read_ok(km, seq)) {
                *first = 0;
                d->p = k + len + 2;
                *at = pnext;
                *e = pent;
                if (tag != NULL && tag->len == len && tag->head == a && tag->head2 == b
                    && ++*tags > 1) {
                    cl_dec_error(d, "discriminator repeated");
                    return -1;
                }
                return 1;
            }
        }
    }
    cl_str key;
    int rc = cl_obj_next(d, first, &key);
    if (rc == 1 && cl_key_match(d, km, &key, at, tag, tags, e) < 0)
        rc = -1;
    return rc;
}

/* Look ahead in the object at the cursor for the discriminator key (tag,
 * taglen), without building anything; the cursor is restored.  An escaped
 * spelling of the key is the key.  With `first_only` the look-ahead stops at
 * the first occurrence; else it reads the whole object and, like json.loads,
 * the last occurrence counts.  Other values are skipped: by their brackets
 * only when the sink validates them afterwards (`validate` 0), else in full.
 * Returns 1 if the key is there (out->s is NULL unless its value is a
 * string), 0 if not, -1 on error. */
CL_INTERNAL int cl_find_tag(cl_dec *d, const char *tag, Py_ssize_t taglen, int first_only,
                            int validate, cl_str *out);

/* ---- typed value scans --------------------------------------------------
 *
 * Each starts at the value (the cursor past any whitespace, not at null),
 * leaves the cursor past it, and fails with the DecodeError both sinks
 * give (at the value's start where the token was read whole). */

/* A string value, located (and validated). */
static inline int
cl_scan_str_value(cl_dec *d, cl_str *s)
{
    if (*d->p != '"')
        return type_error(d, "a string");
    return cl_scan_string(d, s);
}

/* A number, delimited; "expected <expected>" if the value is not one. */
static inline int
cl_scan_number_as(cl_dec *d, cl_str *num, int *is_int, const char *expected)
{
    char c = *d->p;
    if (c != '-' && (c < '0' || c > '9'))
        return type_error(d, expected);
    return cl_scan_number(d, num, is_int);
}

/* An integer: a number without fraction or exponent. */
static inline int
cl_scan_integer(cl_dec *d, cl_str *num)
{
    int is_int;
    const char *at = d->p;
    if (cl_scan_number_as(d, num, &is_int, "an integer") < 0)
        return -1;
    if (!is_int) {
        d->p = at;
        return type_error(d, "an integer");
    }
    return 0;
}

/* The int64 of an integer token: 0, or -1 if it lies beyond int64. */
static inline int
cl_int64_of(const cl_str *num, int64_t *out)
{
    int neg = num->s[0] == '-';
    if (num->len <= 18) {                  /* at most 18 digits: no overflow */
        long long v = 0;
        for (Py_ssize_t i = neg; i < num->len; i++)
            v = v * 10 + (num->s[i] - '0');
        *out = neg ? -v : v;
        return 0;
    }
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (Py_ssize_t i = neg; i < num->len; i++) {
        unsigned dg = (unsigned)(num->s[i] - '0');
        if (v > (limit - dg) / 10)
            return -1;
        v = v * 10 + dg;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* true or false: 1 or 0, -1 on error. */
static inline int
cl_scan_bool(cl_dec *d)
{
    if (*d->p == 't')
        return cl_scan_literal(d, "true", 4) < 0 ? -1 : 1;
    if (*d->p == 'f')
        return cl_scan_literal(d, "false", 5) < 0 ? -1 : 0;
    return type_error(d, "a boolean");
}

/* A money amount's text: a JSON number, or a string holding a plain decimal
 * ("9500.00"), which the sinks read exactly. */
static inline int
cl_plain_decimal(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = (n > 0 && s[0] == '-') ? 1 : 0, digits = 0, dots = 0;
    for (; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digits++;
        else if (s[i] == '.' && dots++ == 0 && digits > 0)
            ;
        else
            return 0;
    }
    return digits > 0 && s[n - 1] != '.';
}

static inline int
cl_scan_decimal_text(cl_dec *d, cl_str *tok)
{
    const char *at = d->p;
    int is_int;
    if (*d->p == '"') {
        if (cl_scan_string(d, tok) < 0)
            return -1;
        if (tok->escaped || !cl_plain_decimal(tok->s, tok->len)) {
            d->p = at;
            return type_error(d, "a decimal amount");
        }
        return 0;
    }
    return cl_scan_number_as(d, tok, &is_int, "a decimal amount");
}

/* ---- timestamps --------------------------------------------------------- */

/* Epoch microseconds of years 1 to 9999, the range both sinks accept. */
#define CL_EPOCH_US_MIN (-62135596800LL * 1000000LL)
#define CL_EPOCH_US_MAX (253402300799LL * 1000000LL + 999999LL)

/* The fields of an ISO-8601 timestamp (cl_parse_iso_fields). */
typedef struct {
    int y, m, day, hh, mi, ss, us;
    int off;                  /* seconds east of UTC */
} cl_iso;

/* Parse "YYYY-MM-DD[Thh:mm[:ss[.f]]][Z|+hh:mm|+hhmm|+hh]" into fields.  No
 * offset means UTC (what every API documented here sends).  A leap second
 * (ss = 60, in the last minute of a UTC day, where leap seconds go) reads as
 * 23:59:59.999999 UTC: Python's datetime has no 60th second, and clamping
 * keeps the order of timestamps.  A fraction right after the minutes (ISO
 * 8601's fraction of a minute) is refused rather than misread as seconds.
 * Returns 0, or -1 if malformed. */
CL_INTERNAL int cl_parse_iso_fields(const char *s, Py_ssize_t n, cl_iso *f);

static inline long long
cl_days_from_civil(long long y, int m, int day)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + day - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static inline long long
cl_iso_epoch_us(const cl_iso *f)
{
    long long secs = cl_days_from_civil(f->y, f->m, f->day) * 86400 + f->hh * 3600 + f->mi * 60
                   + f->ss - f->off;
    return secs * 1000000 + f->us;
}

/* An ISO-8601 timestamp string at the cursor (at '"'), into its fields;
 * "invalid ISO-8601 timestamp" at the value otherwise. */
static inline int
cl_scan_iso(cl_dec *d, cl_iso *f)
{
    const char *at = d->p;
    cl_str s;
    if (cl_scan_string(d, &s) < 0)
        return -1;
    if (s.escaped || cl_parse_iso_fields(s.s, s.len, f) < 0) {
        d->p = at;
        cl_dec_error(d, "invalid ISO-8601 timestamp");
        return -1;
    }
    return 0;
}

/* An integer timestamp, scanned and converted in one pass: '-'?, then 1 to
 * 18 digits, the first not 0, with no fraction or exponent after them.
 * Returns where it ends (its value in *t), or NULL for anything else ("0",
 * a fraction, an exponent, 19 digits or more, not a number), which the
 * general number scan then reads or refuses.  The first eight digits at
 * once where the body has eight bytes to read: a byte is a digit when its
 * high nibble is 3 and adding 6 keeps it so. */
static inline const char *
cl_timestamp_digits(const char *p, const char *end, long long *t)
{
    int neg = p < end && *p == '-';
    const char *s = p + neg, *q = s;
    uint64_t v = 0;
    if (q >= end || *q < '1' || *q > '9')
        return NULL;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (end - q >= 8) {
        const uint64_t nib = 0xF0F0F0F0F0F0F0F0ULL, zeros = 0x3030303030303030ULL;
        uint64_t w;
        memcpy(&w, q, 8);
        if ((w & nib) == zeros && ((w + 0x0606060606060606ULL) & nib) == zeros) {
            w -= zeros;                                  /* digit i in byte i */
            w = (w * 10 + (w >> 8)) & 0x00FF00FF00FF00FFULL;     /* pairs */
            w = (w * 100 + (w >> 16)) & 0x0000FFFF0000FFFFULL;   /* fours */
            v = (w & 0xFFFF) * 10000 + (w >> 32);
            q += 8;
        }
    }
#endif
    while (q < end && q - s <= 18 && (unsigned char)(*q - '0') < 10) {
        v = v * 10 + (uint64_t)(*q - '0');
        q++;
    }
    if (q - s > 18 || (q < end && (*q == '.' || *q == 'e' || *q == 'E')))
        return NULL;
    *t = neg ? -(long long)v : (long long)v;
    return q;
}

/* A unix timestamp number at the cursor (seconds, or milliseconds with
 * `ms`), to epoch microseconds within years 1 to 9999; errors at the
 * value: "expected a timestamp" (not a number), "expected an integer
 * timestamp" (a fraction or exponent), "timestamp out of range". */
static inline int
cl_scan_unix(cl_dec *d, int ms, long long *us)
{
    const char *at = d->p;
    long long t = 0;
    const char *after = cl_timestamp_digits(d->p, d->end, &t);
    if (after == NULL) {
        cl_str num;
        int is_int;
        if (cl_scan_number_as(d, &num, &is_int, "a timestamp") < 0)
            return -1;
        d->p = at;
        if (!is_int || num.len > 18) {
            if (is_int)
                cl_dec_error(d, "timestamp out of range");
            else
                type_error(d, "an integer timestamp");
            return -1;
        }
        t = 0;                             /* at most 18 digits: no overflow */
        for (Py_ssize_t i = num.s[0] == '-'; i < num.len; i++)
            t = t * 10 + (num.s[i] - '0');
        if (num.s[0] == '-')
            t = -t;
        after = num.s + num.len;
    }
    /* years 1 to 9999 in the value's own unit, so multiplying cannot overflow */
    long long lo = ms ? CL_EPOCH_US_MIN / 1000 : CL_EPOCH_US_MIN / 1000000;
    long long hi = ms ? CL_EPOCH_US_MAX / 1000 : CL_EPOCH_US_MAX / 1000000;
    if (t < lo || t > hi) {
        cl_dec_error(d, "timestamp out of range");
        return -1;
    }
    *us = ms ? t * 1000 : t * 1000000;
    d->p = after;
    return 0;
}

#endif
