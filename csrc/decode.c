/* Schema compilation and schema-directed decoding.
 *
 * A schema is a tree of nodes compiled from nested tuples such as
 *   ("record", Customer, 3, ((("customerReference",), 0, ("str",)), ...))
 * Record fields may sit at a path of keys ("attributes", "status"); fields
 * sharing a prefix share a key map, so nested wire objects flatten into one
 * record without intermediate dicts.  Several paths may target one slot
 * (aliases: "line1" and "address_line_1"). */
#include "decode.h"
#include "json.h"
#include "where.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

enum {
    K_ANY, K_STR, K_INT, K_FLOAT, K_BOOL, K_DECIMAL,
    K_DATETIME, K_UNIX_S, K_UNIX_MS, K_ENUM, K_LIST, K_RECORD, K_UNION, K_DEFER,
};

static const char *kind_names[] = {
    "any", "str", "int", "float", "bool", "decimal",
    "datetime", "unix_s", "unix_ms", "enum", "list", "record", "union", "defer", NULL,
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
};

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

/* ======================================================================
 * Compilation
 * ====================================================================== */

static void
keymap_free(cl_keymap *km);

static void
node_free(cl_node *n)
{
    if (n == NULL)
        return;
    node_free(n->elem);
    node_free(n->fallback);
    for (Py_ssize_t i = 0; i < n->nwords; i++)
        node_free(n->words[i].node);
    PyMem_Free(n->words);
    PyMem_Free(n->atomic);
    PyMem_Free(n->req);
    keymap_free(&n->keys);
    PyMem_Free(n);
}

static void
keymap_free(cl_keymap *km)
{
    for (Py_ssize_t i = 0; i < km->n; i++) {
        node_free(km->ents[i].value);
        if (km->ents[i].group != NULL) {
            keymap_free(km->ents[i].group);
            PyMem_Free(km->ents[i].group);
        }
    }
    PyMem_Free(km->ents);
    PyMem_Free(km->index);
    PyMem_Free(km->preds);
    km->ents = NULL;
    km->index = NULL;
    km->preds = NULL;
    km->n = km->cap = 0;
    km->mask = 0;
}

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

/* Keep `obj` alive in refs and point `w` at its UTF-8 bytes. */
static int
word_set(cl_schema *sc, cl_word *w, PyObject *obj)
{
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "schema key must be str, not %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyList_Append(sc->refs, obj) < 0)
        return -1;
    w->s = PyUnicode_AsUTF8AndSize(obj, &w->len);
    w->obj = obj;
    if (w->s == NULL)
        return -1;
    w->head = word_head(w->s, w->len, w->s + w->len);
    w->head2 = w->len > 8 ? word_head(w->s + 8, w->len - 8, w->s + w->len) : 0;
    return 0;
}

static inline size_t
key_hash(Py_ssize_t len, uint64_t head, uint64_t head2)
{
    uint64_t h = (head ^ (head2 * 0x9E3779B97F4A7C15ULL) ^ (uint64_t)len) * 0xFF51AFD7ED558CCDULL;
    return (size_t)(h >> 29);
}

/* The hash index of a key map and of its groups, once all keys are in. */
static int
keymap_index(cl_keymap *km)
{
    size_t size = 8;
    while (size < (size_t)km->n * 2)
        size *= 2;
    PyMem_Free(km->index);
    if ((km->index = PyMem_Calloc(size, sizeof(int32_t))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    km->mask = size - 1;
    PyMem_Free(km->preds);
    if ((km->preds = PyMem_Calloc((size_t)km->n + 2, sizeof(cl_pred))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < km->n + 2; i++)
        km->preds[i].len = -1;
    for (Py_ssize_t i = 0; i < km->n; i++) {
        const cl_word *w = &km->ents[i].key;
        size_t h = key_hash(w->len, w->head, w->head2) & km->mask;
        while (km->index[h] != 0)
            h = (h + 1) & km->mask;
        km->index[h] = (int32_t)(i + 1);
        if (km->ents[i].group != NULL && keymap_index(km->ents[i].group) < 0)
            return -1;
    }
    return 0;
}

static cl_node *compile_node(cl_schema *sc, PyObject *spec);

static cl_keyent *
keymap_add(cl_keymap *km)
{
    if (km->n == km->cap) {
        Py_ssize_t cap = km->cap ? km->cap * 2 : 8;
        cl_keyent *e = PyMem_Realloc(km->ents, cap * sizeof *e);
        if (e == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        km->ents = e;
        km->cap = cap;
    }
    cl_keyent *e = &km->ents[km->n++];
    memset(e, 0, sizeof *e);
    e->slot = -1;
    return e;
}

static cl_keyent *
keymap_find(cl_keymap *km, PyObject *key)
{
    for (Py_ssize_t i = 0; i < km->n; i++) {
        int eq = PyUnicode_Compare(km->ents[i].key.obj, key);
        if (eq == 0)
            return &km->ents[i];
    }
    return NULL;
}

/* Descend to the key map that holds the last key of `path`, creating
 * groups on the way. */
static cl_keymap *
keymap_descend(cl_schema *sc, cl_keymap *km, PyObject *path)
{
    for (Py_ssize_t i = 0; i + 1 < PyTuple_GET_SIZE(path); i++) {
        PyObject *k = PyTuple_GET_ITEM(path, i);
        cl_keyent *e = keymap_find(km, k);
        if (e == NULL) {
            if ((e = keymap_add(km)) == NULL || word_set(sc, &e->key, k) < 0)
                return NULL;
            if ((e->group = PyMem_Calloc(1, sizeof(cl_keymap))) == NULL) {
                PyErr_NoMemory();
                return NULL;
            }
        }
        else if (e->group == NULL) {
            PyErr_Format(PyExc_ValueError, "key %R is both a field and a group", k);
            return NULL;
        }
        km = e->group;
    }
    return km;
}

static int
compile_field(cl_schema *sc, cl_node *n, PyObject *field)
{
    PyObject *path, *spec;
    Py_ssize_t slot;
    if (!PyArg_ParseTuple(field, "O!nO;record field must be (path, slot, spec)",
                          &PyTuple_Type, &path, &slot, &spec))
        return -1;
    if (PyTuple_GET_SIZE(path) == 0 || slot < 0 || slot >= n->nslots) {
        PyErr_SetString(PyExc_ValueError, "record field needs a non-empty path and a valid slot");
        return -1;
    }
    cl_keymap *km = keymap_descend(sc, &n->keys, path);
    if (km == NULL)
        return -1;
    PyObject *last = PyTuple_GET_ITEM(path, PyTuple_GET_SIZE(path) - 1);
    if (keymap_find(km, last) != NULL) {
        PyErr_Format(PyExc_ValueError, "duplicate key %R in record schema", last);
        return -1;
    }
    cl_keyent *e = keymap_add(km);
    if (e == NULL || word_set(sc, &e->key, last) < 0)
        return -1;
    e->slot = slot;
    e->value = compile_node(sc, spec);
    return e->value == NULL ? -1 : 0;
}

/* Clear atomic[slot] for every slot some path fills with a possible container. */
static void
mark_atomic_slots(cl_keymap *km, unsigned char *atomic)
{
    for (Py_ssize_t i = 0; i < km->n; i++) {
        cl_keyent *e = &km->ents[i];
        if (e->group != NULL)
            mark_atomic_slots(e->group, atomic);
        else if (!e->value->atoms_only)
            atomic[e->slot] = 0;
    }
}

/* Whether every value the (compiled) node decodes to is an atom for the
 * GC's purposes: a str, number, decimal, datetime, enum member or None, or
 * a tuple or record built only of those, which the decoder leaves
 * untracked (decode_list, cl_record_finish).  Then containers holding them
 * need not look at them at all. */
static int
node_atoms_only(cl_node *n)
{
    switch (n->kind) {
    case K_ANY: case K_DEFER:
        return 0;
    case K_LIST:
        return n->elem->atoms_only;
    case K_RECORD:
        for (Py_ssize_t i = 0; i < n->nslots; i++)
            if (!n->atomic[i])
                return 0;
        return 1;
    case K_UNION:
        for (Py_ssize_t i = 0; i < n->nwords; i++)
            if (!n->words[i].node->atoms_only)
                return 0;
        return n->fallback == NULL || n->fallback->atoms_only;
    default:
        return 1;
    }
}

/* The slots the record class says are always there (its __required__). */
static int
compile_required(cl_node *n)
{
    PyObject *req = PyObject_GetAttrString((PyObject *)n->cls, "__required__");
    if (req == NULL) {
        PyErr_Clear();          /* a class without it requires nothing */
        return 0;
    }
    int rc = -1;
    if (!PyTuple_Check(req)) {
        PyErr_SetString(PyExc_TypeError, "__required__ must be a tuple of slot numbers");
        goto done;
    }
    n->nreq = PyTuple_GET_SIZE(req);
    if (n->nreq > 0 && (n->req = PyMem_Calloc(n->nreq, sizeof *n->req)) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n->nreq; i++) {
        n->req[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(req, i));
        if (n->req[i] < 0 || n->req[i] >= n->nslots) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "__required__ names a slot out of range");
            goto done;
        }
    }
    rc = 0;
done:
    Py_DECREF(req);
    return rc;
}

static int
compile_record(cl_schema *sc, cl_node *n, PyObject *spec)
{
    PyObject *kind, *cls, *fields;
    if (!PyArg_ParseTuple(spec, "OOnO!;record spec must be ('record', cls, nslots, fields)",
                          &kind, &cls, &n->nslots, &PyTuple_Type, &fields))
        return -1;
    if (cls != Py_None) {
        if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, sc->st->RecordType)) {
            PyErr_SetString(PyExc_TypeError, "record class must subclass custlist._core.Record");
            return -1;
        }
        if (PyList_Append(sc->refs, cls) < 0)
            return -1;
        n->cls = (PyTypeObject *)cls;
    }
    if (n->nslots < 0 || n->nslots > 4096) {
        PyErr_SetString(PyExc_ValueError, "record slot count out of range");
        return -1;
    }
    if (PyTuple_GET_SIZE(fields) > 65536) {
        PyErr_SetString(PyExc_ValueError, "record has too many fields");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++)
        if (compile_field(sc, n, PyTuple_GET_ITEM(fields, i)) < 0)
            return -1;
    if ((n->atomic = PyMem_Malloc(n->nslots + 1)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(n->atomic, 1, n->nslots + 1);
    mark_atomic_slots(&n->keys, n->atomic);
    if (n->cls != NULL && compile_required(n) < 0)
        return -1;
    return keymap_index(&n->keys);
}

/* ("enum", {wire: member}) or ("union", tag, {wire: record spec}, fallback) */
static int
compile_words(cl_schema *sc, cl_node *n, PyObject *mapping, int nodes)
{
    if (!PyDict_Check(mapping)) {
        PyErr_SetString(PyExc_TypeError, "enum/union spec needs a dict");
        return -1;
    }
    Py_ssize_t pos = 0, i = 0;
    PyObject *k, *v;
    n->words = PyMem_Calloc(PyDict_GET_SIZE(mapping) + 1, sizeof(cl_word));
    if (n->words == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    while (PyDict_Next(mapping, &pos, &k, &v)) {
        cl_word *w = &n->words[i++];
        n->nwords = i;
        if (word_set(sc, w, k) < 0)
            return -1;
        if (nodes) {
            if ((w->node = compile_node(sc, v)) == NULL)
                return -1;
        }
        else {
            if (PyList_Append(sc->refs, v) < 0)
                return -1;
            w->obj = v;          /* the member to return for this wire value */
        }
    }
    return 0;
}

static int
compile_union(cl_schema *sc, cl_node *n, PyObject *spec)
{
    PyObject *kind, *tag, *variants, *fallback;
    if (!PyArg_ParseTuple(spec, "OUOO;union spec must be ('union', tag, variants, fallback)",
                          &kind, &tag, &variants, &fallback))
        return -1;
    if (word_set(sc, &n->tag, tag) < 0 || compile_words(sc, n, variants, 1) < 0)
        return -1;
    if (fallback != Py_None && (n->fallback = compile_node(sc, fallback)) == NULL)
        return -1;
    return 0;
}

static cl_node *
compile_node(cl_schema *sc, PyObject *spec)
{
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 1 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(spec, 0))) {
        PyErr_Format(PyExc_TypeError, "invalid schema node %R", spec);
        return NULL;
    }
    cl_node *n = PyMem_Calloc(1, sizeof *n);
    if (n == NULL)
        return (cl_node *)PyErr_NoMemory();
    const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(spec, 0));
    n->kind = -1;
    for (int i = 0; name != NULL && kind_names[i] != NULL; i++)
        if (strcmp(kind_names[i], name) == 0)
            n->kind = i;
    int rc = 0;
    switch (n->kind) {
    case K_ENUM:
        rc = PyTuple_GET_SIZE(spec) == 2 ? compile_words(sc, n, PyTuple_GET_ITEM(spec, 1), 0)
                                         : (PyErr_SetString(PyExc_TypeError, "enum spec"), -1);
        break;
    case K_LIST:
        if (PyTuple_GET_SIZE(spec) != 2) {
            PyErr_SetString(PyExc_TypeError, "list spec must be ('list', elem)");
            rc = -1;
        }
        else
            rc = (n->elem = compile_node(sc, PyTuple_GET_ITEM(spec, 1))) == NULL ? -1 : 0;
        break;
    case K_RECORD:
        rc = compile_record(sc, n, spec);
        break;
    case K_UNION:
        rc = compile_union(sc, n, spec);
        break;
    case -1:
        PyErr_Format(PyExc_ValueError, "unknown schema kind %R", PyTuple_GET_ITEM(spec, 0));
        rc = -1;
        break;
    default:
        break;
    }
    if (rc < 0) {
        node_free(n);
        return NULL;
    }
    n->atoms_only = node_atoms_only(n);
    return n;
}

/* ======================================================================
 * Values
 * ====================================================================== */

static PyObject *decode_value(cl_dec *d, cl_node *n);

static int
type_error(cl_dec *d, const char *expected)
{
    return cl_dec_error(d, "expected %s", expected);
}

/* ---- repeated values ---------------------------------------------------
 *
 * Short strings and decimal texts repeat within a page (statuses, currency
 * and country codes, enum text a schema does not know, the keys of generic
 * objects): each decode call keeps the last object built for each short
 * text in a small direct-mapped table and hands out the same object again.
 * The table belongs to the call (on the decoding thread's stack):
 * no other thread ever sees it, with the GIL or without it, and nothing of
 * it is in module or static state, so sub-interpreters share nothing.  A
 * decode without one (d->vcache NULL) builds every value.
 *
 * Whether a field's values repeat enough to pay for the look-up is learnt
 * per schema node (vc_policy), across calls: a node starts with the cache
 * on and keeps it while at least half of a window of VC_WINDOW look-ups
 * hit (a miss costs about what a hit saves on a short ASCII str); below
 * that (names, e-mails, ids) it skips the cache for the next VC_OFF_SPAN
 * values, then tries a window again.  Schemas are shared
 * between threads, so the policy word is read and written with relaxed
 * atomic loads and stores: a racing update is lost at worst, which moves a
 * heuristic and never a value. */
#define CL_VCACHE_SIZE 128        /* entries: h >> 57 picks one */
#define CL_VCACHE_MAXLEN 16       /* longer texts are not cached */
#define VC_WINDOW 64
#define VC_MIN_HITS (VC_WINDOW / 2)
#define VC_OFF_SPAN 1024
#define VC_OFF 0x80000000u       /* policy: off; low 16 bits count skipped values */

enum { VC_STR = 1, VC_DECIMAL = 2 };

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

/* The entry points (cl_decode_page, cl_decode_items, Schema.decode) keep
 * the table on their stack: no allocation, and entries are cleared only
 * once a value wants them. */
static void
vc_begin(cl_dec *d, cl_vcache *c)
{
    c->used = 0;
    c->dec_args = NULL;
    d->vcache = c;
}

static void
vc_end(cl_dec *d)
{
    cl_vcache *c = d->vcache;
    d->vcache = NULL;
    if (c == NULL)
        return;
    Py_CLEAR(c->dec_args);
    if (!c->used)
        return;
    for (int i = 0; i < CL_VCACHE_SIZE; i++)
        Py_XDECREF(c->ents[i].obj);
}

/* Whether the node's next value goes through the cache (a NULL node, a
 * generic value: always). */
static inline int
vc_wanted(cl_node *n)
{
    if (n == NULL)
        return 1;
    uint32_t s = __atomic_load_n(&n->vc_policy, __ATOMIC_RELAXED);
    if (!(s & VC_OFF))
        return 1;
    uint32_t skipped = (s & 0xFFFF) + 1;
    __atomic_store_n(&n->vc_policy, skipped >= VC_OFF_SPAN ? 0 : VC_OFF | skipped,
                     __ATOMIC_RELAXED);
    return 0;
}

/* Count one look-up of the node's window (bits 0-15 look-ups, 16-23 hits). */
static inline void
vc_count(cl_node *n, int hit)
{
    if (n == NULL)
        return;
    uint32_t s = __atomic_load_n(&n->vc_policy, __ATOMIC_RELAXED);
    uint32_t probes = (s & 0xFFFF) + 1, hits = ((s >> 16) & 0xFF) + (hit != 0);
    if (probes >= VC_WINDOW)
        s = hits >= VC_MIN_HITS ? 0 : VC_OFF;
    else
        s = (hits << 16) | probes;
    __atomic_store_n(&n->vc_policy, s, __ATOMIC_RELAXED);
}

/* The entry for text b[0..len) (len <= CL_VCACHE_MAXLEN) of kind `tag`
 * in the call's table (d->vcache, not NULL);
 * `limit`: where readable memory ends (word_head).  *hit says whether it
 * holds that text's object already; if not, vc_fill stores one there. */
static inline cl_vent *
vc_entry(cl_dec *d, int tag, const char *b, Py_ssize_t len, const char *limit, int *hit)
{
    if (!d->vcache->used) {
        memset(d->vcache->ents, 0, sizeof d->vcache->ents);
        d->vcache->used = 1;
    }
    uint64_t w0 = word_head(b, len, limit);
    uint64_t w1 = len > 8 ? word_head(b + 8, len - 8, limit) : 0;
    uint64_t h = (w0 + w1 * 31 + (uint64_t)(len * 4 + tag)) * 0x9E3779B97F4A7C15ULL;
    cl_vent *e = &d->vcache->ents[h >> 57];
    *hit = e->tag == tag && e->len == len && e->w0 == w0 && e->w1 == w1;
    if (!*hit) {
        Py_CLEAR(e->obj);
        e->tag = 0;
        e->w0 = w0;
        e->w1 = w1;
        e->len = (int32_t)len;
    }
    return e;
}

/* Keep `o` (may be NULL: an error) in the entry vc_entry missed on. */
static PyObject *
vc_fill(cl_vent *e, int tag, PyObject *o)
{
    if (o != NULL) {
        e->obj = Py_NewRef(o);
        e->tag = tag;
    }
    return o;
}

/* The code point of the sequence at *pp, stepping past it.  Only for
 * UTF-8 already validated (see str_from_utf8). */
static inline Py_UCS4
utf8_next(const unsigned char **pp)
{
    const unsigned char *p = *pp;
    Py_UCS4 c = p[0];
    if (c < 0x80)
        *pp = p + 1;
    else if (c < 0xE0) {
        c = ((c & 0x1F) << 6) | (p[1] & 0x3F);
        *pp = p + 2;
    }
    else if (c < 0xF0) {
        c = ((c & 0x0F) << 12) | ((Py_UCS4)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        *pp = p + 3;
    }
    else {
        c = ((c & 0x07) << 18) | ((Py_UCS4)(p[1] & 0x3F) << 12)
          | ((Py_UCS4)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        *pp = p + 4;
    }
    return c;
}

/* Eight bytes at p, as one word (any alignment). */
static inline uint64_t
load8(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* A str from UTF-8 that is known valid: cl_scan_string refused overlong
 * forms, surrogates and anything past U+10FFFF, and cl_unescape writes only
 * code points its escapes were checked to be.  One pass counts the
 * characters (bytes that are not continuation bytes 10xxxxxx) and finds
 * whether a lead byte of C4 or more (a character above U+FF) or of F0 or
 * more (one above U+FFFF) occurs: that gives the narrowest kind, the one
 * CPython itself would pick, so the str compares and hashes like any other.
 * The pass looks at eight bytes at a time: in each byte, bit 7 of w << k is
 * the byte's own bit 7 - k.  One allocation; one pass writes the characters,
 * copying runs of eight ASCII bytes whole into a 1-byte str. */
static PyObject *
str_from_utf8(const char *s, Py_ssize_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    Py_ssize_t cont = 0, i = 0;
    uint64_t wide = 0, astral = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = load8(p + i);
        uint64_t lead = w & (w << 1);                 /* 11xxxxxx */
        cont += (Py_ssize_t)((((w & ~(w << 1) & CL_HIGHS) >> 7) * CL_ONES) >> 56);
        wide |= lead & ((w << 2) | (w << 3) | (w << 4) | (w << 5));
        astral |= lead & (w << 2) & (w << 3);
    }
    for (; i < n; i++) {
        unsigned c = p[i];
        cont += (c & 0xC0) == 0x80;
        wide |= c >= 0xC4 ? 0x80 : 0;
        astral |= c >= 0xF0 ? 0x80 : 0;
    }
    Py_UCS4 maxchar = (astral & CL_HIGHS) ? 0x10FFFF : (wide & CL_HIGHS) ? 0xFFFF
                    : cont ? 0xFF : 0x7F;
    PyObject *o = PyUnicode_New(n - cont, maxchar);
    if (o == NULL)
        return NULL;
    void *data = PyUnicode_DATA(o);
    if (maxchar == 0x7F) {
        memcpy(data, s, (size_t)n);
        return o;
    }
    switch (PyUnicode_KIND(o)) {
    case PyUnicode_1BYTE_KIND:
        for (Py_UCS1 *out = data; p < e;) {
            if (e - p >= 8 && !(load8(p) & CL_HIGHS)) {
                memcpy(out, p, 8);
                out += 8;
                p += 8;
            }
            else
                *out++ = (Py_UCS1)utf8_next(&p);
        }
        break;
    case PyUnicode_2BYTE_KIND:
        for (Py_UCS2 *out = data; p < e;)
            *out++ = (Py_UCS2)utf8_next(&p);
        break;
    default:
        for (Py_UCS4 *out = data; p < e;)
            *out++ = utf8_next(&p);
        break;
    }
    return o;
}

static PyObject *
build_str(const char *b, Py_ssize_t len, int ascii)
{
    if (!ascii)
        return str_from_utf8(b, len);
    PyObject *o = PyUnicode_New(len, 127);
    if (o != NULL)
        memcpy(PyUnicode_DATA(o), b, (size_t)len);
    return o;
}

/* The str of a located string; a short one through the cache when the
 * field's node wants it (`n` NULL: a generic value, always). */
static PyObject *
make_str(cl_dec *d, const cl_str *s, cl_node *n)
{
    const char *b = s->s, *limit = d->end;
    Py_ssize_t len = s->len;
    int ascii = s->ascii && !s->escaped, hit;
    if (s->escaped) {
        if (cl_unescape(d, s, &len) < 0)
            return NULL;
        b = d->scratch;
        limit = d->scratch + d->scratch_cap;
    }
    if (len > CL_VCACHE_MAXLEN || d->vcache == NULL || !vc_wanted(n))
        return build_str(b, len, ascii);
    cl_vent *e = vc_entry(d, VC_STR, b, len, limit, &hit);
    vc_count(n, hit);
    if (hit)
        return Py_NewRef(e->obj);
    return vc_fill(e, VC_STR, build_str(b, len, ascii));
}

/* The wire bytes of a string, unescaped if needed (may live in scratch). */
static int
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

static int
scan_str_value(cl_dec *d, cl_str *s, const char *expected)
{
    if (*d->p != '"')
        return type_error(d, expected);
    return cl_scan_string(d, s);
}

/* `n`: the field's node (its cache policy), NULL for a generic value. */
static PyObject *
decode_str(cl_dec *d, cl_node *n)
{
    cl_str s;
    if (scan_str_value(d, &s, "a string") < 0)
        return NULL;
    return make_str(d, &s, n);
}

/* Copy a delimited token into scratch as a NUL-terminated C string. */
static const char *
token_cstr(cl_dec *d, const cl_str *num)
{
    cl_str copy = *num;
    copy.escaped = 1;          /* cl_unescape copies plain bytes verbatim */
    Py_ssize_t n;
    if (cl_unescape(d, &copy, &n) < 0)
        return NULL;
    d->scratch[n] = '\0';
    return d->scratch;
}

static PyObject *
int_from_token(cl_dec *d, const cl_str *num)
{
    if (num->len <= 18) {
        long long v = 0;
        int neg = num->s[0] == '-';
        for (Py_ssize_t i = neg; i < num->len; i++)
            v = v * 10 + (num->s[i] - '0');
        return PyLong_FromLongLong(neg ? -v : v);
    }
    const char *c = token_cstr(d, num);
    if (c == NULL)
        return NULL;
    PyObject *v = PyLong_FromString(c, NULL, 10);
    if (v == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        /* beyond sys.get_int_max_str_digits(): converting it would take
         * quadratic time, which is what that limit is there to prevent */
        PyErr_Clear();
        const char *after = d->p;
        d->p = num->s;
        cl_dec_error(d, "integer of %zd digits exceeds the interpreter's limit on int digits",
                     num->len - (num->s[0] == '-'));
        d->p = after;
    }
    return v;
}

static PyObject *
float_from_token(cl_dec *d, const cl_str *num)
{
    const char *c = token_cstr(d, num);
    if (c == NULL)
        return NULL;
    double v = PyOS_string_to_double(c, NULL, NULL);
    if (v == -1.0 && PyErr_Occurred())
        return NULL;
    if (isinf(v)) {
        cl_dec_error(d, "number out of range");
        return NULL;
    }
    return PyFloat_FromDouble(v);
}

static int
scan_number_value(cl_dec *d, cl_str *num, int *is_int, const char *expected)
{
    char c = *d->p;
    if (c != '-' && (c < '0' || c > '9'))
        return type_error(d, expected);
    return cl_scan_number(d, num, is_int);
}

static PyObject *
decode_int(cl_dec *d)
{
    cl_str num;
    int is_int;
    const char *at = d->p;
    if (scan_number_value(d, &num, &is_int, "an integer") < 0)
        return NULL;
    if (!is_int) {
        d->p = at;
        type_error(d, "an integer");
        return NULL;
    }
    return int_from_token(d, &num);
}

static PyObject *
decode_float(cl_dec *d)
{
    cl_str num;
    int is_int;
    if (scan_number_value(d, &num, &is_int, "a number") < 0)
        return NULL;
    return float_from_token(d, &num);
}

static PyObject *
decode_bool(cl_dec *d)
{
    if (*d->p == 't')
        return cl_scan_literal(d, "true", 4) < 0 ? NULL : Py_NewRef(Py_True);
    if (*d->p == 'f')
        return cl_scan_literal(d, "false", 5) < 0 ? NULL : Py_NewRef(Py_False);
    type_error(d, "a boolean");
    return NULL;
}

/* A money amount: a JSON number, or a string holding a plain decimal
 * ("9500.00").  Exact: the text goes to decimal.Decimal unchanged. */
static int
plain_decimal(const char *s, Py_ssize_t n)
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

/* Decimal(text), exact; `at`: where the value starts, for the error. */
static PyObject *
build_decimal(cl_dec *d, const char *s, Py_ssize_t len, const char *at)
{
    PyObject *text = build_str(s, len, 1);  /* digits, sign, '.', exponent: ASCII */
    if (text == NULL)
        return NULL;
    /* Decimal's own constructor, without type.__call__ around it: its
     * __init__ is object's, which does nothing when __new__ is overridden.
     * Its argument tuple is made once per call of the decoder and kept in
     * the call's value table (d->vcache, on the entry point's stack, seen
     * by this thread alone): it goes in again only while nothing else holds
     * a reference to it, its item emptied in between.  It is untracked, so
     * gc.get_objects() (from a gc callback, say) never hands it out. */
    PyTypeObject *tp = (PyTypeObject *)d->st->Decimal;
    cl_vcache *c = d->vcache;
    PyObject *args = NULL, *v = NULL;
    if (c != NULL && c->dec_args != NULL) {
        args = c->dec_args;
        c->dec_args = NULL;
    }
    else if ((args = PyTuple_New(1)) == NULL) {
        Py_DECREF(text);
        return NULL;
    }
    else
        PyObject_GC_UnTrack(args);
    PyTuple_SET_ITEM(args, 0, text);
    v = tp->tp_new(tp, args, NULL);
    if (c != NULL && Py_REFCNT(args) == 1) {
        PyTuple_SET_ITEM(args, 0, NULL);
        Py_DECREF(text);
        c->dec_args = args;
    }
    else
        Py_DECREF(args);
    if (v == NULL && (PyErr_ExceptionMatches(PyExc_ArithmeticError)
                      || PyErr_ExceptionMatches(PyExc_ValueError))) {
        /* decimal.InvalidOperation: an exponent beyond the context's limits */
        PyErr_Clear();
        const char *after = d->p;
        d->p = at;
        cl_dec_error(d, "decimal amount out of range");
        d->p = after;
    }
    return v;
}

/* Decimal is immutable: a repeated amount text gets the same object (the
 * text is the key, so "1.0", "1.00" and "-0" stay what they are). */
static PyObject *
decode_decimal(cl_dec *d, cl_node *n)
{
    cl_str tok;
    int is_int;
    const char *at = d->p;
    if (*d->p == '"') {
        if (cl_scan_string(d, &tok) < 0)
            return NULL;
        if (tok.escaped || !plain_decimal(tok.s, tok.len)) {
            d->p = at;
            type_error(d, "a decimal amount");
            return NULL;
        }
    }
    else if (scan_number_value(d, &tok, &is_int, "a decimal amount") < 0)
        return NULL;
    if (tok.len > CL_VCACHE_MAXLEN || d->vcache == NULL || !vc_wanted(n))
        return build_decimal(d, tok.s, tok.len, at);
    int hit;
    cl_vent *e = vc_entry(d, VC_DECIMAL, tok.s, tok.len, d->end, &hit);
    vc_count(n, hit);
    if (hit)
        return Py_NewRef(e->obj);
    return vc_fill(e, VC_DECIMAL, build_decimal(d, tok.s, tok.len, at));
}

/* ---- datetimes ---------------------------------------------------------- */

static long long
days_from_civil(long long y, int m, int day)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + day - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
civil_from_days(long long z, long long *y, int *m, int *day)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static PyObject *
datetime_from_epoch_us(cl_dec *d, long long us)
{
    /* year 1 .. 9999 */
    const long long lo = -62135596800LL * 1000000LL, hi = 253402300799LL * 1000000LL + 999999LL;
    if (us < lo || us > hi) {
        cl_dec_error(d, "timestamp out of range");
        return NULL;
    }
    long long secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    long long days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    long long y;
    int m, day;
    civil_from_days(days, &y, &m, &day);
    PyDateTime_CAPI *api = d->st->dt;
    return api->DateTime_FromDateAndTime((int)y, m, day, (int)(sod / 3600), (int)(sod / 60 % 60),
                                         (int)(sod % 60), (int)frac, d->st->utc,
                                         api->DateTimeType);
}

static int
fixed_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int
days_in_month(long long y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return dm[m - 1] + (m == 2 && leap);
}

/* Parse "YYYY-MM-DD[Thh:mm[:ss[.f]]][Z|+hh:mm|+hhmm|+hh]" into epoch
 * microseconds.  No offset means UTC (what every API documented here sends).
 * A leap second (ss = 60, in the last minute of a UTC day, where leap seconds
 * go) reads as 23:59:59.999999 UTC: Python's datetime has no 60th second, and
 * clamping keeps the order of timestamps.  A fraction
 * right after the minutes (ISO 8601's fraction of a minute) is refused
 * rather than misread as seconds.  Returns 0, or -1 if malformed. */
typedef struct {
    int y, m, day, hh, mi, ss, us;
    int off;                  /* seconds east of UTC */
} cl_iso;

static int
parse_iso_fields(const char *s, Py_ssize_t n, cl_iso *f)
{
    const char *e = s + n;
    int hh = 0, mi = 0, ss = 0, us = 0, off = 0, leap = 0;
    if (n < 10 || s[4] != '-' || s[7] != '-')
        return -1;
    int y = fixed_digits(s, 4), m = fixed_digits(s + 5, 2), day = fixed_digits(s + 8, 2);
    if (y < 1 || m < 1 || m > 12 || day < 1 || day > days_in_month(y, m))
        return -1;
    s += 10;
    if (s < e) {
        if ((*s != 'T' && *s != 't' && *s != ' ') || e - s < 6 || s[3] != ':')
            return -1;
        hh = fixed_digits(s + 1, 2);
        mi = fixed_digits(s + 4, 2);
        s += 6;
        if (s < e && *s == ':') {
            if (e - s < 3 || (ss = fixed_digits(s + 1, 2)) < 0)
                return -1;
            s += 3;
        }
        else if (s < e && (*s == '.' || *s == ','))
            return -1;                     /* a fraction of a minute */
        if (hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss > 60)
            return -1;
        if (s < e && (*s == '.' || *s == ',')) {
            int nd = 0;
            for (s++; s < e && *s >= '0' && *s <= '9'; s++, nd++)
                if (nd < 6)
                    us = us * 10 + (*s - '0');
            if (nd == 0)
                return -1;
            for (; nd < 6; nd++)
                us *= 10;
        }
        if (ss == 60) {                    /* leap second: clamp */
            ss = 59;
            us = 999999;
            leap = 1;
        }
        if (s < e && (*s == 'Z' || *s == 'z'))
            s++;
        else if (s < e && (*s == '+' || *s == '-')) {
            int sign = *s == '-' ? -1 : 1, oh, om;
            if (e - s == 6 && s[3] == ':')
                oh = fixed_digits(s + 1, 2), om = fixed_digits(s + 4, 2);
            else if (e - s == 5)
                oh = fixed_digits(s + 1, 2), om = fixed_digits(s + 3, 2);
            else if (e - s == 3)
                oh = fixed_digits(s + 1, 2), om = 0;
            else
                return -1;
            if (oh < 0 || oh > 23 || om < 0 || om > 59)
                return -1;
            off = sign * (oh * 3600 + om * 60);
            s = e;
        }
        if (s != e)
            return -1;
        if (leap && ((hh * 60 + mi - off / 60) % 1440 + 1440) % 1440 != 1439)
            return -1;                     /* not 23:59 UTC: no leap second there */
    }
    *f = (cl_iso){y, m, day, hh, mi, ss, us, off};
    return 0;
}

static long long
iso_epoch_us(const cl_iso *f)
{
    long long secs = days_from_civil(f->y, f->m, f->day) * 86400 + f->hh * 3600 + f->mi * 60
                   + f->ss - f->off;
    return secs * 1000000 + f->us;
}

static int
parse_iso(const char *s, Py_ssize_t n, long long *out)
{
    cl_iso f;
    if (parse_iso_fields(s, n, &f) < 0)
        return -1;
    *out = iso_epoch_us(&f);
    return 0;
}

/* Timestamps: ISO-8601 strings always; numbers as unix seconds or
 * milliseconds when the field says so. */
static PyObject *
decode_datetime(cl_dec *d, int kind)
{
    const char *at = d->p;
    long long us;
    if (*d->p == '"') {
        cl_str s;
        if (cl_scan_string(d, &s) < 0)
            return NULL;
        const char *after = d->p;
        d->p = at;                         /* errors point at the value */
        cl_iso f;
        if (s.escaped || parse_iso_fields(s.s, s.len, &f) < 0) {
            cl_dec_error(d, "invalid ISO-8601 timestamp");
            return NULL;
        }
        PyObject *dt;
        if (f.off == 0) {                  /* UTC already: the fields are the datetime's */
            PyDateTime_CAPI *api = d->st->dt;
            dt = api->DateTime_FromDateAndTime(f.y, f.m, f.day, f.hh, f.mi, f.ss, f.us,
                                               d->st->utc, api->DateTimeType);
        }
        else
            dt = datetime_from_epoch_us(d, iso_epoch_us(&f));
        d->p = after;
        return dt;
    }
    cl_str num;
    int is_int;
    if (kind == K_DATETIME) {
        type_error(d, "an ISO-8601 timestamp string");
        return NULL;
    }
    if (scan_number_value(d, &num, &is_int, "a timestamp") < 0)
        return NULL;
    if (!is_int || num.len > 18) {
        d->p = at;
        if (is_int)
            cl_dec_error(d, "timestamp out of range");
        else
            type_error(d, "an integer timestamp");
        return NULL;
    }
    long long t = 0;                       /* at most 18 digits: no overflow */
    for (Py_ssize_t i = num.s[0] == '-'; i < num.len; i++)
        t = t * 10 + (num.s[i] - '0');
    if (num.s[0] == '-')
        t = -t;
    d->p = at;                 /* report range errors at the value */
    long long limit = kind == K_UNIX_S ? 253402300799LL : 253402300799999LL;
    if (t > limit || t < -limit) {
        cl_dec_error(d, "timestamp out of range");
        return NULL;
    }
    us = kind == K_UNIX_S ? t * 1000000 : t * 1000;
    PyObject *dt = datetime_from_epoch_us(d, us);
    d->p = num.s + num.len;
    return dt;
}

/* ---- enums, lists, generic values -------------------------------------- */

/* The word that is (s, len), which lies in the body or in d->scratch. */
static cl_word *
match_word(cl_dec *d, cl_word *words, Py_ssize_t n, const char *s, Py_ssize_t len)
{
    uint64_t head, head2;
    key_words(s, len, s == d->scratch ? d->scratch + d->scratch_cap : d->end, &head, &head2);
    for (Py_ssize_t i = 0; i < n; i++)
        if (KEY_IS(&words[i], s, len, head, head2))
            return &words[i];
    return NULL;
}

/* Known values become enum members; an unknown value stays a plain str,
 * since vendors add values without notice. */
static PyObject *
decode_enum(cl_dec *d, cl_node *n)
{
    cl_str s;
    const char *b;
    Py_ssize_t len;
    if (scan_str_value(d, &s, "a string") < 0 || str_bytes(d, &s, &b, &len) < 0)
        return NULL;
    cl_word *w = match_word(d, n->words, n->nwords, b, len);
    if (w != NULL)
        return Py_NewRef(w->obj);
    return make_str(d, &s, n);
}

/* Before each array element or generic object member is built: spend one
 * unit of the page's item budget (a body of 3-byte "{}," items must not
 * turn into 64x its size in objects), and every CL_SIGNAL_EVERY values let
 * signal handlers run, so Ctrl-C interrupts a huge page promptly. */
#define CL_SIGNAL_EVERY 4096

static int
spend_item(cl_dec *d)
{
    if (d->budget-- <= 0) {
        d->budget = 0;
        return cl_dec_error(d, "page holds more values than max_items_per_page allows");
    }
    if (++d->signal_tick % CL_SIGNAL_EVERY == 0 && PyErr_CheckSignals() < 0)
        return -1;
    return 0;
}

typedef struct {
    PyObject **items;
    Py_ssize_t n, cap;
    PyObject *inline_items[16];
} cl_vec;

static int
vec_push(cl_vec *v, PyObject *o)
{
    if (v->n == v->cap) {
        Py_ssize_t cap = v->cap * 2;
        PyObject **items;
        if (v->items == v->inline_items) {
            items = PyMem_Malloc(cap * sizeof *items);
            if (items != NULL)
                memcpy(items, v->inline_items, v->n * sizeof *items);
        }
        else
            items = PyMem_Realloc(v->items, cap * sizeof *items);
        if (items == NULL) {
            Py_DECREF(o);
            PyErr_NoMemory();
            return -1;
        }
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = o;
    return 0;
}

static void
vec_release(cl_vec *v)
{
    for (Py_ssize_t i = 0; i < v->n; i++)
        Py_XDECREF(v->items[i]);
    if (v->items != v->inline_items)
        PyMem_Free(v->items);
}

/* Steals the items. */
static PyObject *
vec_to_tuple(cl_vec *v)
{
    PyObject *t = PyTuple_New(v->n);
    if (t != NULL) {
        for (Py_ssize_t i = 0; i < v->n; i++)
            PyTuple_SET_ITEM(t, i, v->items[i]);
        v->n = 0;
    }
    vec_release(v);
    return t;
}

/* Whether a decoded tuple of `elem` values needs the GC.  Built bottom-up
 * and immutable, a tuple of strs, numbers, decimals, datetimes, enum members,
 * None, untracked records and untracked tuples cannot be part of a cycle,
 * so the collector need not scan it (CPython itself untracks such tuples,
 * but only once they have survived a collection). */
static int
elems_may_cycle(cl_node *elem, PyObject *t)
{
    if (elem->atoms_only)
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t); i++)
        if (cl_may_cycle(PyTuple_GET_ITEM(t, i)))
            return 1;
    return 0;
}

static PyObject *
decode_list(cl_dec *d, cl_node *elem)
{
    if (*d->p != '[') {
        type_error(d, "an array");
        return NULL;
    }
    if (cl_enter(d) < 0)
        return NULL;
    d->p++;
    cl_vec v = {.items = v.inline_items, .n = 0, .cap = 16};
    int first = 1, rc;
    int strs = elem->kind == K_STR;
    while ((rc = cl_arr_next(d, &first)) == 1) {
        if (spend_item(d) < 0) {
            rc = -1;
            break;
        }
        PyObject *o = strs && *d->p == '"' ? decode_str(d, elem) : decode_value(d, elem);
        if (o == NULL)
            cl_where_index(d->st, v.n);
        if (o == NULL || vec_push(&v, o) < 0) {
            rc = -1;
            break;
        }
    }
    cl_leave(d);
    if (rc < 0) {
        vec_release(&v);
        return NULL;
    }
    PyObject *t = vec_to_tuple(&v);
    if (t != NULL && PyObject_GC_IsTracked(t) && !elems_may_cycle(elem, t))
        PyObject_GC_UnTrack(t);
    return t;
}

static PyObject *
decode_any_object(cl_dec *d)
{
    PyObject *dict = PyDict_New();
    cl_str k;
    int first = 1, rc;
    if (dict == NULL)
        return NULL;
    d->p++;
    while ((rc = cl_obj_next(d, &first, &k)) == 1) {
        if (spend_item(d) < 0) {
            rc = -1;
            break;
        }
        PyObject *key = make_str(d, &k, NULL);
        PyObject *val = key ? decode_value(d, NULL) : NULL;
        if (val == NULL || PyDict_SetItem(dict, key, val) < 0)
            rc = -1;
        Py_XDECREF(key);
        Py_XDECREF(val);
        if (rc < 0)
            break;
    }
    if (rc < 0)
        Py_CLEAR(dict);
    return dict;
}

static PyObject *
decode_any_array(cl_dec *d)
{
    PyObject *list = PyList_New(0);
    int first = 1, rc;
    if (list == NULL)
        return NULL;
    d->p++;
    while ((rc = cl_arr_next(d, &first)) == 1) {
        if (spend_item(d) < 0) {
            rc = -1;
            break;
        }
        PyObject *val = decode_value(d, NULL);
        if (val == NULL || PyList_Append(list, val) < 0)
            rc = -1;
        Py_XDECREF(val);
        if (rc < 0)
            break;
    }
    if (rc < 0)
        Py_CLEAR(list);
    return list;
}

/* Generic JSON -> dict / list / str / int / float / bool / None. */
static PyObject *
decode_any(cl_dec *d)
{
    cl_str num;
    int is_int;
    PyObject *res;
    switch (*d->p) {
    case '"':
        return decode_str(d, NULL);
    case 't': case 'f':
        return decode_bool(d);
    case '{': case '[':
        if (cl_enter(d) < 0)
            return NULL;
        res = *d->p == '{' ? decode_any_object(d) : decode_any_array(d);
        cl_leave(d);
        return res;
    default:
        if (cl_scan_number(d, &num, &is_int) < 0)
            return NULL;
        return is_int ? int_from_token(d, &num) : float_from_token(d, &num);
    }
}

/* ---- records and unions ------------------------------------------------ */

/* The key map's entry for the key (b, len) by its hash index; -1 if it
 * holds none. */
static Py_ssize_t
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
static Py_ssize_t
keymap_learn(cl_keymap *km, Py_ssize_t at, Py_ssize_t ent, Py_ssize_t len, uint64_t head,
             uint64_t head2, int raw)
{
    cl_pred *pr = &km->preds[at];
    if (ent >= 0) {
        const cl_word *w = &km->ents[ent].key;
        pr->len = w->len;
        pr->head = w->head;
        pr->head2 = w->head2;
        pr->s = w->s;
        pr->ent = &km->ents[ent];
        pr->next = ent + 1;
        pr->raw = w->len <= 16;
        for (Py_ssize_t i = 0; i < w->len && pr->raw; i++)
            pr->raw = (unsigned char)w->s[i] >= 0x20 && w->s[i] != '"' && w->s[i] != '\\';
    }
    else if (len <= 16) {          /* an unknown key: its bytes fit the two words */
        pr->len = len;
        pr->head = head;
        pr->head2 = head2;
        pr->s = NULL;
        pr->ent = NULL;
        pr->next = km->n + 1;
        pr->raw = raw;             /* bytes the string scan accepted once */
    }
    else {
        pr->len = -1;
        pr->raw = 0;
        return km->n + 1;
    }
    pr->mask = head_mask(pr->len);
    pr->mask2 = pr->len > 8 ? head_mask(pr->len - 8) : 0;
    return pr->next;
}

/* The entry for the object's next key (NULL for a key the map does not
 * hold, or on error with an exception set).  `*at`: the place in the key
 * map's memory of the last object (0 at the start).  Records of a page
 * mostly hold the same keys in the same order, known and unknown alike: the
 * key that came next last time is tried first (length and first sixteen
 * bytes, one compare each), then the one after it (a key this object
 * lacks); else the hash index answers, and the memory learns the key. */
static cl_keyent *
match_key(cl_dec *d, cl_keymap *km, const cl_str *key, Py_ssize_t *at,
          const cl_word *tag, int *tags)
{
    const char *b = key->s, *limit = d->end;
    Py_ssize_t len = key->len;
    uint64_t head, head2;
    if (key->escaped) {
        if (cl_unescape(d, key, &len) < 0)
            return NULL;
        b = d->scratch;
        limit = d->scratch + d->scratch_cap;
    }
    key_words(b, len, limit, &head, &head2);
    if (tag != NULL && KEY_IS(tag, b, len, head, head2) && ++*tags > 1) {
        cl_dec_error(d, "discriminator repeated");
        return NULL;
    }
    const cl_pred *pr = &km->preds[*at];
    if (KEY_IS(pr, b, len, head, head2)) {
        *at = pr->next;
        return pr->ent;
    }
    if (pr->len >= 0) {
        const cl_pred *after = &km->preds[pr->next];
        if (KEY_IS(after, b, len, head, head2)) {
            *at = after->next;
            return after->ent;
        }
    }
    Py_ssize_t ent = keymap_lookup(km, b, len, head, head2);
    *at = keymap_learn(km, *at, ent, len, head, head2, !key->escaped);
    return ent < 0 ? NULL : &km->ents[ent];
}

static int decode_object_into(cl_dec *d, cl_keymap *km, PyObject **slots, const cl_word *tag);

static int check_replaced_items(cl_dec *d, PyObject *previous);

/* A key repeated in an object replaces the earlier value whole (as in
 * json.loads): a repeated group first forgets what its first copy set
 * (checking a deferred items array it drops, see defer_items). */
static int
clear_group(cl_dec *d, cl_keymap *km, PyObject **slots)
{
    for (Py_ssize_t i = 0; i < km->n; i++) {
        cl_keyent *e = &km->ents[i];
        if (e->group != NULL) {
            if (clear_group(d, e->group, slots) < 0)
                return -1;
            continue;
        }
        if (e->value->kind == K_DEFER && check_replaced_items(d, slots[e->slot]) < 0)
            return -1;
        Py_CLEAR(slots[e->slot]);
    }
    return 0;
}

/* A deferred items array (the Pager's two-pass decode): only located here,
 * decoded by cl_decode_items once the next request is queued.  null means
 * no items; anything but an array is refused here, as the one-pass decode
 * would.  An earlier copy that a repeated key replaces is decoded (and
 * dropped) now, so both passes accept and refuse the same bodies. */
static int
check_replaced_items(cl_dec *d, PyObject *previous)
{
    if (previous == NULL || !PyLong_Check(previous) || d->defer_items == NULL)
        return 0;
    PyObject *old = cl_decode_items((cl_schema *)d->defer_items, d->start, d->end - d->start,
                                    PyLong_AsSsize_t(previous), d->max_depth, d->budget);
    Py_XDECREF(old);
    return old == NULL ? -1 : 0;
}

static PyObject *
defer_items(cl_dec *d, PyObject *previous)
{
    if (check_replaced_items(d, previous) < 0)
        return NULL;
    if (*d->p == 'n')
        return cl_scan_literal(d, "null", 4) < 0 ? NULL : Py_NewRef(Py_None);
    if (*d->p != '[') {
        type_error(d, "an array");
        return NULL;
    }
    PyObject *v = PyLong_FromSsize_t(d->p - d->start);
    if (v != NULL && cl_skip_structure(d) < 0)
        Py_CLEAR(v);
    return v;
}

static int
decode_entry(cl_dec *d, cl_keyent *e, PyObject **slots, int repeated)
{
    if (e->group == NULL) {
        PyObject *v = e->value->kind == K_DEFER ? defer_items(d, slots[e->slot])
                                                : decode_value(d, e->value);
        if (v == NULL)
            return -1;
        Py_XSETREF(slots[e->slot], v);
        return 0;
    }
    if (repeated && clear_group(d, e->group, slots) < 0)
        return -1;
    if (*d->p == 'n')
        return cl_scan_literal(d, "null", 4);
    if (*d->p != '{')
        return type_error(d, "an object");
    return decode_object_into(d, e->group, slots, NULL);
}

/* `tag` (may be NULL): a union's discriminator; its second copy in the
 * object is a DecodeError, on which the union decodes it again exactly. */
static int
decode_object_into(cl_dec *d, cl_keymap *km, PyObject **slots, const cl_word *tag)
{
    cl_str key;
    int first = 1, rc, tags = 0;
    Py_ssize_t at = 0;         /* the place in the key map's memory of keys */
    uint64_t groups_seen = 0;  /* by key map index; past 64 counts as seen */
    if (cl_enter(d) < 0)
        return -1;
    d->p++;
    for (;;) {
        cl_keyent *e;
        const cl_pred *pr = &km->preds[at];
        /* The key remembered next, spelt plainly and followed by ':' and
         * the value in compact JSON: its bytes in place are the whole key
         * scan (the string scan would stop at the same quote and accept the
         * same bytes). */
        Py_ssize_t len = pr->len;  /* read once: every read below stays in 25 bytes */
        if (pr->raw && (size_t)len <= 16 && d->end - d->p >= 25 && d->p[!first] == '"'
            && (first || *d->p == ',')) {
            uint64_t a, b;
            const char *k = d->p + !first + 1;
            memcpy(&a, k, 8);
            memcpy(&b, k + 8, 8);
            if ((a & pr->mask) == pr->head && (b & pr->mask2) == pr->head2 && k[len] == '"'
                && k[len + 1] == ':' && (unsigned char)k[len + 2] > ' ') {
                first = 0;
                d->p = k + len + 2;
                at = pr->next;
                e = pr->ent;
                if (tag != NULL && tag->len == len && tag->head == pr->head
                    && tag->head2 == pr->head2 && ++tags > 1)
                    return cl_dec_error(d, "discriminator repeated");
                goto matched;
            }
        }
        if ((rc = cl_obj_next(d, &first, &key)) != 1)
            break;
        e = match_key(d, km, &key, &at, tag, &tags);
    matched:
        if (e == NULL) {
            if (PyErr_Occurred() || cl_skip_value(d) < 0)
                return -1;
            continue;
        }
        int repeated = 0;
        if (e->group != NULL) {
            Py_ssize_t i = e - km->ents;
            uint64_t bit = i < 64 ? (uint64_t)1 << i : 0;
            repeated = bit == 0 || (groups_seen & bit) != 0;
            groups_seen |= bit;
        }
        if (decode_entry(d, e, slots, repeated) < 0) {
            cl_where_key(d->st, e->key.obj, e->group == NULL ? e->slot : -1);
            return -1;
        }
    }
    cl_leave(d);
    return rc;
}

/* A required slot absent or null: DecodeError at the record's start. */
static int
check_required(cl_dec *d, cl_node *n, PyObject **slots, const char *at)
{
    for (Py_ssize_t i = 0; i < n->nreq; i++) {
        PyObject *v = slots[n->req[i]];
        if (v == NULL || v == Py_None) {
            const char *after = d->p;
            d->p = at;
            cl_dec_error(d, v == NULL ? "a required field is missing" : "a required field is null");
            d->p = after;
            cl_where_missing(d->st, n->req[i]);
            return -1;
        }
    }
    return 0;
}

/* `tag`: a union's discriminator key, met once already (see decode_union). */
static PyObject *
decode_record(cl_dec *d, cl_node *n, const cl_word *tag)
{
    if (*d->p != '{') {
        type_error(d, "an object");
        return NULL;
    }
    if (n->cls == NULL) {
        PyErr_SetString(PyExc_TypeError, "a record schema without a class decodes only as a page");
        return NULL;
    }
    PyObject *rec = cl_record_alloc(n->cls, n->nslots);
    const char *at = d->p;
    if (rec == NULL)
        return NULL;
    if (decode_object_into(d, &n->keys, ((cl_record *)rec)->ob_item, tag) < 0
        || (n->nreq > 0 && check_required(d, n, ((cl_record *)rec)->ob_item, at) < 0)) {
        Py_DECREF(rec);
        cl_where_record(d->st, n->cls);
        return NULL;
    }
    cl_record_finish(rec, n->atomic);
    return rec;
}

/* Look ahead in the object at the cursor for the discriminator's value,
 * without building anything; the cursor is restored.  An escaped spelling of
 * the key is the key.  With `first_only` the look-ahead stops at the first
 * occurrence; else it reads the whole object and, like json.loads, the last
 * occurrence counts.  Nested values are skipped by their brackets only: the
 * decode that follows validates them.  Returns 1 if the key is there (out->s
 * is NULL unless its value is a string), 0 if not, -1 on error. */
static int
find_tag(cl_dec *d, const cl_word *tag, int first_only, cl_str *out)
{
    const char *at = d->p, *b;
    int depth = d->depth, first = 1, found = 0, rc;
    Py_ssize_t len;
    cl_str key;
    out->s = NULL;
    d->p++;
    while ((rc = cl_obj_next(d, &first, &key)) == 1) {
        if (key.escaped ? str_bytes(d, &key, &b, &len) < 0 : (b = key.s, len = key.len, 0))
            return -1;
        int is_tag = len == tag->len && memcmp(b, tag->s, len) == 0;
        if (is_tag) {
            found = 1;
            out->s = NULL;
        }
        if (is_tag && *d->p == '"')
            rc = cl_scan_string(d, out);
        else if (is_tag && first_only)
            rc = 0;
        else
            rc = *d->p == '[' || *d->p == '{' ? cl_skip_structure(d) : cl_skip_value(d);
        if (rc < 0)
            return -1;
        if (is_tag && first_only)
            break;
    }
    d->p = at;
    d->depth = depth;
    return rc < 0 ? -1 : found;
}

/* The variant a discriminator value (NULL: absent or not a string) picks. */
static int
union_target(cl_dec *d, cl_node *n, const cl_str *tag, cl_node **target)
{
    const char *b;
    Py_ssize_t len;
    cl_word *w = NULL;
    if (tag->s != NULL) {
        if (str_bytes(d, tag, &b, &len) < 0)
            return -1;
        w = match_word(d, n->words, n->nwords, b, len);
    }
    *target = w != NULL ? w->node : n->fallback;
    return 0;
}

/* The union read as the contract states it: the whole object looked ahead
 * for the last discriminator, then decoded as that variant. */
static PyObject *
decode_union_exact(cl_dec *d, cl_node *n)
{
    cl_str tag;
    cl_node *target;
    if (find_tag(d, &n->tag, 0, &tag) < 0 || union_target(d, n, &tag, &target) < 0)
        return NULL;
    if (target == NULL) {
        cl_dec_error(d, "unknown or missing \"%s\" discriminator", n->tag.s);
        return NULL;
    }
    return decode_value(d, target);
}

/* The fast mode: look ahead only to the first discriminator (usually the
 * first key), then decode the variant it names, watching the object's keys
 * for the discriminator again.  That gives what the full look-ahead gives
 * unless the key repeats (its last value counts) or the object is refused
 * (the look-ahead's errors come first, at their own offsets).  Both end in a
 * DecodeError, on which the outermost union in the fast mode decodes its
 * object again in the exact mode, nested unions included: the result and
 * the error are then the exact mode's, at no more than twice its cost. */
static PyObject *
decode_union(cl_dec *d, cl_node *n)
{
    cl_str tag;
    cl_node *target;
    if (*d->p != '{') {
        type_error(d, "an object");
        return NULL;
    }
    if (d->exact_unions > 0)
        return decode_union_exact(d, n);
    const char *at = d->p;
    int depth = d->depth, guarded = d->guarded;
    Py_ssize_t budget = d->budget;
    unsigned tick = d->signal_tick;
    int found = find_tag(d, &n->tag, 1, &tag);
    if (found < 0 || union_target(d, n, &tag, &target) < 0)
        return NULL;                       /* the full look-ahead fails there too */
    if (found == 0 && target == NULL) {
        /* no discriminator at all: the look-ahead read the whole object */
        cl_dec_error(d, "unknown or missing \"%s\" discriminator", n->tag.s);
        return NULL;
    }
    if (target == NULL || target->kind != K_RECORD)
        return decode_union_exact(d, n);   /* a later copy may name a variant */
    d->unions++;
    PyObject *res = decode_record(d, target, found ? &n->tag : NULL);
    d->unions--;
    if (res != NULL || d->unions > 0 || !PyErr_ExceptionMatches(d->st->DecodeError))
        return res;
    PyErr_Clear();
    for (; d->guarded > guarded; d->guarded--)      /* levels the error left early */
        Py_LeaveRecursiveCall();
    d->depth = depth;
    d->budget = budget;
    d->signal_tick = tick;
    d->p = at;
    d->exact_unions++;
    res = decode_union_exact(d, n);
    d->exact_unions--;
    return res;
}

/* decode_value is a dispatch and no more: each kind's decoder stays a
 * function of its own, which decode_value jumps to, so a value pays only
 * for the registers and stack its own kind needs. */
#define CL_NOINLINE __attribute__((noinline))
static PyObject *decode_str(cl_dec *d, cl_node *n) CL_NOINLINE;
static PyObject *decode_int(cl_dec *d) CL_NOINLINE;
static PyObject *decode_float(cl_dec *d) CL_NOINLINE;
static PyObject *decode_bool(cl_dec *d) CL_NOINLINE;
static PyObject *decode_decimal(cl_dec *d, cl_node *n) CL_NOINLINE;
static PyObject *decode_datetime(cl_dec *d, int kind) CL_NOINLINE;
static PyObject *decode_enum(cl_dec *d, cl_node *n) CL_NOINLINE;
static PyObject *decode_list(cl_dec *d, cl_node *elem) CL_NOINLINE;
static PyObject *decode_record(cl_dec *d, cl_node *n, const cl_word *tag) CL_NOINLINE;
static PyObject *decode_union(cl_dec *d, cl_node *n) CL_NOINLINE;

/* The cursor is at the value: inside the body, past any whitespace (as
 * cl_obj_next and cl_arr_next leave it). */
static PyObject *
decode_value(cl_dec *d, cl_node *n)
{
    if (*d->p == 'n')
        return cl_scan_literal(d, "null", 4) < 0 ? NULL : Py_NewRef(Py_None);
    switch (n == NULL ? K_ANY : n->kind) {
    case K_STR: return decode_str(d, n);
    case K_INT: return decode_int(d);
    case K_FLOAT: return decode_float(d);
    case K_BOOL: return decode_bool(d);
    case K_DECIMAL: return decode_decimal(d, n);
    case K_DATETIME: case K_UNIX_S: case K_UNIX_MS: return decode_datetime(d, n->kind);
    case K_ENUM: return decode_enum(d, n);
    case K_LIST: return decode_list(d, n->elem);
    case K_RECORD: return decode_record(d, n, NULL);
    case K_UNION: return decode_union(d, n);
    default: return decode_any(d);
    }
}

/* ======================================================================
 * Entry points
 * ====================================================================== */

static int
check_trailing(cl_dec *d)
{
    cl_skip_ws(d);
    if (d->p != d->end)
        return cl_dec_error(d, "unexpected data after the JSON document");
    return 0;
}

int
cl_check_max_depth(int max_depth)
{
    if (max_depth < 2 || max_depth > CL_MAX_DEPTH) {
        PyErr_Format(PyExc_ValueError, "max_depth must be between 2 and %d, not %d",
                     CL_MAX_DEPTH, max_depth);
        return -1;
    }
    return 0;
}

int
cl_decode_page(cl_schema *page, cl_schema *items, const char *buf, size_t len, int max_depth,
               Py_ssize_t max_items, PyObject **slots)
{
    return cl_decode_page_shaped(page, items, buf, len, max_depth, max_items, slots, NULL);
}

int
cl_decode_page_shaped(cl_schema *page, cl_schema *items, const char *buf, size_t len,
                      int max_depth, Py_ssize_t max_items, PyObject **slots,
                      const cl_shape *shape)
{
    cl_dec d;
    int rc = -1;
    if (cl_check_max_depth(max_depth) < 0)
        return -1;
    cl_vcache vc;
    cl_dec_init(&d, page->st, buf, len, max_depth);
    vc_begin(&d, &vc);
    d.shape = shape;
    d.budget = max_items;
    d.defer_items = items;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        d.p += 3;                          /* tolerate a UTF-8 byte order mark */
    cl_skip_ws(&d);
    if (d.p >= d.end)
        cl_dec_error(&d, "empty body");
    else if (*d.p != '{')
        type_error(&d, "a JSON object");
    else if (decode_object_into(&d, &page->root->keys, slots, NULL) == 0)
        rc = check_trailing(&d);
    vc_end(&d);
    cl_dec_free(&d);
    return rc;
}

PyObject *
cl_decode_items(cl_schema *items, const char *buf, size_t len, Py_ssize_t offset, int max_depth,
                Py_ssize_t max_items)
{
    cl_dec d;
    if (cl_check_max_depth(max_depth) < 0)
        return NULL;
    if (offset < 0 || (size_t)offset >= len || buf[offset] != '[') {
        PyErr_SetString(PyExc_ValueError, "deferred items offset does not point at an array");
        return NULL;
    }
    cl_vcache vc;
    cl_dec_init(&d, items->st, buf, len, max_depth);
    vc_begin(&d, &vc);
    d.budget = max_items;
    d.p += offset;
    d.depth = 1;                           /* inside the envelope */
    PyObject *res = decode_value(&d, items->root);
    vc_end(&d);
    cl_dec_free(&d);
    return res;
}

Py_ssize_t
cl_count_items(cl_state *st, const char *buf, size_t len, Py_ssize_t offset, int max_depth)
{
    cl_dec d;
    int first = 1, rc;
    Py_ssize_t n = 0;
    cl_dec_init(&d, st, buf, len, max_depth);
    d.p += offset;
    d.depth = 1;                           /* inside the envelope */
    cl_skip_ws(&d);
    if (d.p >= d.end)
        rc = cl_dec_error(&d, "unexpected end of body, expected a value");
    else if (*d.p == 'n')
        rc = cl_scan_literal(&d, "null", 4);
    else if (*d.p != '[')
        rc = type_error(&d, "an array");
    else if ((rc = cl_enter(&d)) == 0) {
        d.p++;
        while ((rc = cl_arr_next(&d, &first)) == 1) {
            if (cl_skip_structure(&d) < 0) {
                rc = -1;
                break;
            }
            n++;
        }
        cl_leave(&d);
    }
    cl_dec_free(&d);
    return rc < 0 ? -1 : n;
}

int
cl_parse_iso(const char *s, Py_ssize_t n, long long *us)
{
    return parse_iso(s, n, us);
}

int
cl_plain_decimal(const char *s, Py_ssize_t n)
{
    return plain_decimal(s, n);
}

/* ======================================================================
 * The Schema type
 * ====================================================================== */

static PyObject *
schema_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"spec", NULL};
    PyObject *spec;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!:Schema", kwlist, &PyTuple_Type, &spec))
        return NULL;
    cl_schema *sc = (cl_schema *)tp->tp_alloc(tp, 0);
    if (sc == NULL)
        return NULL;
    sc->st = PyType_GetModuleState(tp);
    sc->refs = PyList_New(0);
    sc->spec = Py_NewRef(spec);
    if (sc->refs == NULL || (sc->root = compile_node(sc, spec)) == NULL) {
        Py_DECREF(sc);
        return NULL;
    }
    sc->nslots = sc->root->nslots;
    return (PyObject *)sc;
}

/* The nodes borrow UTF-8 and objects owned by refs: they go together. */
static int
schema_clear(cl_schema *sc)
{
    node_free(sc->root);
    sc->root = NULL;
    Py_CLEAR(sc->refs);
    Py_CLEAR(sc->spec);
    return 0;
}

static void
schema_dealloc(cl_schema *sc)
{
    PyTypeObject *tp = Py_TYPE(sc);
    PyObject_GC_UnTrack(sc);
    schema_clear(sc);
    tp->tp_free((PyObject *)sc);
    Py_DECREF(tp);
}

static int
schema_traverse(cl_schema *sc, visitproc visit, void *arg)
{
    Py_VISIT(sc->refs);
    Py_VISIT(sc->spec);
    Py_VISIT(Py_TYPE(sc));
    return 0;
}

/* Schema.decode(body, max_depth=64): decode a whole document with this
 * schema as its root (one record, a list of records, any value). */
static PyObject *
schema_decode(cl_schema *sc, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"body", "max_depth", NULL};
    Py_buffer buf;
    int max_depth = CL_DEFAULT_MAX_DEPTH;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*|i:decode", kwlist, &buf, &max_depth))
        return NULL;
    if (sc->root == NULL) {              /* cleared by the GC (a cycle) */
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "this schema was cleared");
        return NULL;
    }
    if (cl_check_max_depth(max_depth) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    cl_dec d;
    cl_vcache vc;
    PyObject *res = NULL;
    cl_dec_init(&d, sc->st, buf.buf, buf.len, max_depth);
    vc_begin(&d, &vc);
    cl_skip_ws(&d);
    if (d.p >= d.end)
        cl_dec_error(&d, "unexpected end of body, expected a value");
    else
        res = decode_value(&d, sc->root);
    if (res != NULL && check_trailing(&d) < 0)
        Py_CLEAR(res);
    vc_end(&d);
    cl_dec_free(&d);
    PyBuffer_Release(&buf);
    return res;
}

static PyMethodDef schema_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))schema_decode, METH_VARARGS | METH_KEYWORDS,
     "Decode a JSON document whose root matches this schema."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot schema_slots[] = {
    {Py_tp_doc, "A compiled decoding schema."},
    {Py_tp_new, schema_new},
    {Py_tp_dealloc, schema_dealloc},
    {Py_tp_traverse, schema_traverse},
    {Py_tp_clear, schema_clear},
    {Py_tp_methods, schema_methods},
    {0, NULL},
};

static PyType_Spec schema_spec = {
    .name = "custlist._core.Schema",
    .basicsize = sizeof(cl_schema),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = schema_slots,
};

int
cl_schema_check(cl_state *st, PyObject *obj)
{
    return PyObject_TypeCheck(obj, st->SchemaType);
}

int
cl_schema_register(PyObject *module, cl_state *st)
{
    st->SchemaType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &schema_spec, NULL);
    if (st->SchemaType == NULL || PyModule_AddType(module, st->SchemaType) < 0)
        return -1;
    return 0;
}
