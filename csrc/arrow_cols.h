/* Arrow output, inside: the column tree that arrow_compile.c builds from
 * an item description, arrow.c fills from the JSON of each page, and
 * arrow_export.c hands over through the Arrow C Data interface. */
#ifndef CL_ARROW_COLS_H
#define CL_ARROW_COLS_H

#include "arrow.h"
#include "scan.h"
#include <stddef.h>
#include <stdint.h>

/* A growable buffer (malloc/free only: consumers may free what it held
 * from any thread, without the GIL). */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} abuf;

enum { A_STR, A_INT, A_FLOAT, A_BOOL, A_DEC, A_DECSTR, A_TS, A_ENUM, A_LIST, A_STRUCT, A_ANY };
enum { TS_ISO, TS_UNIX_S, TS_UNIX_MS };

/* Where each wire key of a record goes: scan.h's key map (with its memory
 * of the last object's key order), each entry's slot the child column it
 * fills (-1 for a group: a nested wire object flattened into the same
 * struct, whose entry's `seen` is the object it was last met in); the key
 * bytes are the map's own (malloc). */
typedef struct {
    cl_keymap keys;
    int nreq, *req;           /* children the record requires (its __required__) */
    char *rec;                /* the record class's name, for errors */
} akeymap;

typedef struct {
    char *s;
    size_t len;
    akeymap keys;
} avariant;

typedef struct acol acol;

struct acol {
    int kind;
    int ts;                   /* A_TS: how numbers are read */
    int precision, scale;     /* A_DEC */
    char *name;
    int64_t length;
    int64_t mark;             /* parent row that last set this column */
    abuf valid, offs, data;
    int nchild;
    acol **child;             /* struct fields; list element (one) */
    /* struct: where each wire key goes */
    akeymap keys;
    /* union struct */
    char *tag;
    size_t taglen;
    cl_word tagword;          /* the tag as the key scan watches for it */
    int nvar;
    avariant *var;
    int has_fallback;
    akeymap fallback;
    int tag_col;              /* child filled from the discriminator, or -1 */
    /* enum: members first, then unknown values met in this batch */
    int nwords;
    char **words;
    size_t *wlens;
    acol *dict;
    int32_t *ht;
    size_t htcap;
    /* root: objects read so far, which tells a group met twice in one object */
    uint64_t objects;
};

/* arrow_compile.c */
int cl_acol_is_kind(PyObject *spec, const char *kind);
acol *cl_acol_compile(PyObject *spec, const char *name);
void cl_acol_free(acol *c);

/* arrow_export.c: move the builder's buffers into `out` (a releasable
 * array even when this fails part-way: the caller releases it); and the
 * schema, without Python (0 or ENOMEM). */
int cl_acol_export_array(acol *c, struct ArrowArray *out, int top);
int cl_acol_export_schema(const acol *c, struct ArrowSchema *out, int top);

#endif
