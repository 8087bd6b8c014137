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
 * The key maps, the key matching that remembers each object's key order and
 * the typed value scans are scan.h's, which the Arrow builder shares.
 * decode.h is what the rest of the engine sees; this header is for those
 * files alone.  Functions declared here are hidden (never exported from the
 * extension), so a call between two of the files is a plain direct call and
 * one inside its own file may still be inlined. */
#ifndef CL_DECODE_INTERNAL_H
#define CL_DECODE_INTERNAL_H

#include "decode.h"
#include "scan.h"
#include <stdint.h>
#include <string.h>

enum {
    K_ANY, K_STR, K_INT, K_FLOAT, K_BOOL, K_DECIMAL,
    K_DATETIME, K_UNIX_S, K_UNIX_MS, K_ENUM, K_LIST, K_RECORD, K_UNION, K_DEFER,
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
