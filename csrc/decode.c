/* Schema-directed decoding: a JSON body to records, straight from the scan.
 *
 * The structure of a document: the dispatch by a node's kind, lists, generic
 * values (dicts and lists), records (the key matching that learns each
 * object's key order, flattened groups, required fields, deferred items
 * arrays) and tagged unions; the scalar values are decode_values.c's, the
 * compiled nodes decode_schema.c's.  The entry points are the engine's:
 * pager.c decodes each page's envelope with cl_decode_page_shaped and its
 * items with cl_decode_items, Schema.decode a whole document
 * (cl_decode_document). */
#include "decode_internal.h"
#include "where.h"

/* ======================================================================
 * Values
 * ====================================================================== */

static PyObject *decode_value(cl_dec *d, cl_node *n);

/* ---- lists, generic values ---------------------------------------------- */

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
        PyObject *o = strs && *d->p == '"' ? cl_decode_str(d, elem) : decode_value(d, elem);
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
        PyObject *key = cl_make_str(d, &k, NULL);
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
        return cl_decode_str(d, NULL);
    case 't': case 'f':
        return cl_decode_bool(d);
    case '{': case '[':
        if (cl_enter(d) < 0)
            return NULL;
        res = *d->p == '{' ? decode_any_object(d) : decode_any_array(d);
        cl_leave(d);
        return res;
    default:
        if (cl_scan_number(d, &num, &is_int) < 0)
            return NULL;
        return is_int ? cl_int_from_token(d, &num) : cl_float_from_token(d, &num);
    }
}

/* ---- records and unions ------------------------------------------------ */

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
    int first = 1, rc, tags = 0;
    Py_ssize_t at = 0;         /* the place in the key map's memory of keys */
    uint64_t groups_seen = 0;  /* by key map index; past 64 counts as seen */
    if (cl_enter(d) < 0)
        return -1;
    d->p++;
    for (;;) {
        cl_keyent *e;
        if ((rc = cl_key_next(d, km, &first, &at, tag, &tags, &e)) != 1)
            break;
        if (e == NULL) {
            if (cl_skip_value(d) < 0)
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
    if (cl_find_tag(d, n->tag.s, n->tag.len, 0, 0, &tag) < 0 || union_target(d, n, &tag, &target) < 0)
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
    int found = cl_find_tag(d, n->tag.s, n->tag.len, 1, 0, &tag);
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
 * for the registers and stack its own kind needs (the scalar ones are
 * decode_values.c's, declared CL_NOINLINE too). */
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
    case K_STR: return cl_decode_str(d, n);
    case K_INT: return cl_decode_int(d);
    case K_FLOAT: return cl_decode_float(d);
    case K_BOOL: return cl_decode_bool(d);
    case K_DECIMAL: return cl_decode_decimal(d, n);
    case K_DATETIME: case K_UNIX_S: case K_UNIX_MS: return cl_decode_datetime(d, n->kind);
    case K_ENUM: return cl_decode_enum(d, n);
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
    cl_vc_begin(&d, &vc);
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
    cl_vc_end(&d);
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
    cl_vc_begin(&d, &vc);
    d.budget = max_items;
    d.p += offset;
    d.depth = 1;                           /* inside the envelope */
    PyObject *res = decode_value(&d, items->root);
    cl_vc_end(&d);
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

PyObject *
cl_decode_document(cl_schema *sc, const char *buf, size_t len, int max_depth)
{
    if (cl_check_max_depth(max_depth) < 0)
        return NULL;
    cl_dec d;
    cl_vcache vc;
    PyObject *res = NULL;
    cl_dec_init(&d, sc->st, buf, len, max_depth);
    cl_vc_begin(&d, &vc);
    cl_skip_ws(&d);
    if (d.p >= d.end)
        cl_dec_error(&d, "unexpected end of body, expected a value");
    else
        res = decode_value(&d, sc->root);
    if (res != NULL && check_trailing(&d) < 0)
        Py_CLEAR(res);
    cl_vc_end(&d);
    cl_dec_free(&d);
    return res;
}
