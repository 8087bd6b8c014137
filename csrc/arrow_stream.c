/* Arrow output: the Arrow C stream over a pager (Pager.__arrow_c_stream__,
 * and the stream behind to_arrow(), to_pandas() and to_polars()).
 *
 * Each batch holds one page, or pages coalesced up to a minimum row count,
 * built by arrow.c while the pager has already queued the next request.
 * The stream applies every bound and raises every error the record
 * iterator does, at the same page: a paging error found in a page's
 * envelope comes after that page's rows, as after its records.
 *
 * A read that fails hands out nothing.  Consumers (pyarrow.table, polars,
 * duckdb, to_arrow) drop the batches they had when the stream fails, so
 * the pager's checkpoint goes back to where the stream began: resuming
 * from it loses nothing and repeats nothing.  A stream released before its
 * end without a failure keeps what it handed out.  A consumer that keeps
 * each batch as it comes (custlist's file export) asks for a stream that
 * goes back to the start of the failed batch only.
 *
 * Ctrl-C (a signal handler's KeyboardInterrupt) while a library reads the
 * stream on the main thread ends the stream there and raises the same
 * exception again as soon as that thread runs Python code, so the caller of
 * pyarrow.table(pager) gets KeyboardInterrupt, never the library's own
 * error, and never the table. */
#include "arrow.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    PyObject *pager;
    cl_schema *envelope;      /* the pager's envelope with the items deferred */
    PyObject *errors;         /* list the errors are appended to, or None */
    cl_acols *cols;
    Py_ssize_t min_rows;      /* pages are coalesced into batches of at least this many */
    char *message;
    int finished;
    int failed;               /* the errno returned, once failed */
    int whole;                /* a failure goes back to the stream's start, else the batch's */
    int started;              /* `start` holds where the stream (or batch) began */
    int reading;              /* a get_next is converting (without the GIL) */
    cl_pager_mark start;
    unsigned long main_thread;  /* the interpreter's main thread, 0 if unknown */
} astream;


static PyObject *
take_exception(void)
{
    PyObject *exc;
#if PY_VERSION_HEX >= 0x030C0000
    exc = PyErr_GetRaisedException();
#else
    PyObject *type, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (exc != NULL && tb != NULL)
        PyException_SetTraceback(exc, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
#endif
    return exc;
}

/* A pending call: raise `arg` (a reference it takes) in the main thread. */
static int
raise_again(void *arg)
{
    PyObject *exc = arg;
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, tb);
    return -1;
}

/* The main thread's id (where signal handlers run and pending calls go),
 * 0 if it cannot be told. */
static unsigned long
main_thread_id(void)
{
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *main = threading != NULL ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
    PyObject *ident = main != NULL ? PyObject_GetAttrString(main, "ident") : NULL;
    unsigned long id = ident != NULL && PyLong_Check(ident) ? PyLong_AsUnsignedLong(ident) : 0;
    if (PyErr_Occurred()) {
        PyErr_Clear();
        id = 0;
    }
    Py_XDECREF(ident);
    Py_XDECREF(main);
    Py_XDECREF(threading);
    return id;
}

/* An interrupt (an exception that is no Exception: KeyboardInterrupt from a
 * signal handler) met while a library reads the stream: end the stream and
 * have the main thread raise it as soon as it runs Python code again.  1 if
 * so (the reference to exc moved), 0 if it must be reported as an error. */
static int
interrupt_caller(astream *s, PyObject *exc)
{
    if (s->errors != Py_None || PyErr_GivenExceptionMatches(exc, PyExc_Exception)
        || s->main_thread == 0 || PyThread_get_thread_ident() != s->main_thread)
        return 0;
    return Py_AddPendingCall(raise_again, exc) == 0;
}

/* Turn the Python exception set into the stream's end: 0 for an interrupt
 * raised again in the caller, else the stream's error `code`. */
static int
stream_fail(astream *s, int code)
{
    PyObject *exc = take_exception();
    if (exc != NULL && interrupt_caller(s, exc)) {
        s->finished = 1;
        return 0;
    }
    PyObject *text = exc != NULL ? PyUnicode_FromFormat("%s: %S", Py_TYPE(exc)->tp_name, exc) : NULL;
    const char *t = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
    free(s->message);
    s->message = strdup(t != NULL ? t : "custlist: the page could not be converted");
    PyErr_Clear();
    Py_XDECREF(text);
    if (exc != NULL && s->errors != Py_None && PyList_Append(s->errors, exc) < 0)
        PyErr_Clear();
    Py_XDECREF(exc);
    s->failed = code;
    return code;
}

static int
stream_get_schema(struct ArrowArrayStream *stream, struct ArrowSchema *out)
{
    astream *s = stream->private_data;
    return cl_acols_schema(s->cols, out);
}

/* Read pages into the builders until a batch is full or the listing ends:
 * 0, or -1 with an exception and the errno for the consumer in *code. */
static int
read_batch(astream *s, int *code)
{
    int room = -1;                            /* measured on the first page */
    int signals = s->main_thread != 0 && PyThread_get_thread_ident() == s->main_thread;
    while (cl_acols_rows(s->cols) < s->min_rows) {
        cl_page_body pb;
        int got = cl_pager_next_body(s->pager, s->envelope, &pb);
        if (got == 0) {
            s->finished = 1;
            return 0;
        }
        if (got < 0) {
            *code = EIO;
            return -1;
        }
        /* converted without the GIL: the pager stays entered (busy) until
         * cl_pager_body_done, so nobody fetches into the body meanwhile, and
         * close() from another thread only marks it closed */
        int64_t had = cl_acols_rows(s->cols);
        int rc = cl_acols_add_page(s->cols, s->envelope, &pb, &room, signals);
        if (rc < 0)
            cl_pager_page_failed(s->pager);     /* names the response; closes the pager */
        else if (cl_pager_body_read(s->pager, (Py_ssize_t)(cl_acols_rows(s->cols) - had)) < 0)
            rc = -2;                            /* settled by the pager, closed */
        cl_pager_body_done(s->pager);
        if (rc < 0) {
            *code = rc == -1 ? EINVAL : EIO;
            return -1;
        }
    }
    return 0;
}

static int
stream_get_next(struct ArrowArrayStream *stream, struct ArrowArray *out)
{
    astream *s = stream->private_data;
    out->release = NULL;
    if (s->failed)
        return s->failed;
    if (s->finished)
        return 0;
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = 0, code = 0;
    Py_BEGIN_CRITICAL_SECTION(s->pager);   /* as the pager's methods (pager.c) */
    if (s->reading) {
        /* a second consumer thread while the first converts without the
         * GIL: refused, the builders and the stream left to the first */
        free(s->message);
        s->message = strdup("RuntimeError: this Arrow stream is being read by another thread");
        rc = EBUSY;
        goto busy;
    }
    s->reading = 1;
    if (s->started && !s->whole) {
        cl_pager_mark_clear(&s->start);       /* the batches before were handed out */
        s->started = 0;
    }
    if (!s->started) {
        if (cl_pager_mark_set(s->pager, &s->start) < 0) {
            rc = stream_fail(s, EINVAL);
            goto done;
        }
        s->started = 1;
    }
    if (read_batch(s, &code) < 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (cl_acols_reset(s->cols) < 0)
            PyErr_Clear();
        cl_pager_mark_restore(s->pager, &s->start);   /* nothing was handed out */
        PyErr_Restore(type, value, tb);
        rc = stream_fail(s, code);
    }
    else if (cl_acols_rows(s->cols) > 0 && cl_acols_export(s->cols, out) < 0)
        rc = stream_fail(s, ENOMEM);
done:
    s->reading = 0;
busy:;
    Py_END_CRITICAL_SECTION();
    PyGILState_Release(g);
    return rc;
}

static const char *
stream_get_last_error(struct ArrowArrayStream *stream)
{
    astream *s = stream->private_data;
    return s->message;
}

static void
stream_release(struct ArrowArrayStream *stream)
{
    astream *s = stream->private_data;
    if (s != NULL) {
        if (Py_IsInitialized()) {
            PyGILState_STATE g = PyGILState_Ensure();
            if (s->started)
                cl_pager_mark_clear(&s->start);
            Py_XDECREF(s->pager);
            Py_XDECREF(s->envelope);
            Py_XDECREF(s->errors);
            PyGILState_Release(g);
        }
        cl_acols_free(s->cols);
        free(s->message);
        free(s);
    }
    stream->private_data = NULL;
    stream->release = NULL;
}

static void
capsule_free(PyObject *capsule)
{
    struct ArrowArrayStream *stream = PyCapsule_GetPointer(capsule, "arrow_array_stream");
    if (stream == NULL) {
        PyErr_Clear();
        return;
    }
    if (stream->release != NULL)              /* not moved to a consumer */
        stream->release(stream);
    free(stream);
}

/* The envelope description with the items only located ("defer"), so a
 * page is never built into records. */
static cl_schema *
deferred_envelope(PyObject *pager)
{
    cl_schema *page = cl_pager_schema(pager, 0);
    PyObject *kind, *cls, *fields, *out = NULL, *spec = NULL, *defer = NULL;
    Py_ssize_t nslots;
    if (page->spec == NULL || !PyTuple_Check(page->spec)) {
        PyErr_SetString(PyExc_ValueError, "this pager's schema was cleared");
        return NULL;
    }
    if (!PyArg_ParseTuple(page->spec, "OOnO!;page spec", &kind, &cls, &nslots, &PyTuple_Type, &fields))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    if ((out = PyTuple_New(n)) == NULL || (defer = Py_BuildValue("(s)", "defer")) == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyTuple_GET_ITEM(fields, i), *path, *fspec;
        Py_ssize_t slot;
        if (!PyArg_ParseTuple(f, "OnO;record field must be (path, slot, spec)", &path, &slot,
                              &fspec))
            goto done;
        PyObject *nf = slot == 0 ? Py_BuildValue("(OnO)", path, slot, defer) : Py_NewRef(f);
        if (nf == NULL)
            goto done;
        PyTuple_SET_ITEM(out, i, nf);
    }
    if ((spec = Py_BuildValue("(OOnO)", kind, cls, nslots, out)) != NULL) {
        PyObject *sc = PyObject_CallOneArg((PyObject *)Py_TYPE(page), spec);
        Py_SETREF(spec, sc);
    }
done:
    Py_XDECREF(out);
    Py_XDECREF(defer);
    return (cl_schema *)spec;
}

/* _arrow_stream(errors, min_rows=1, whole=False): an "arrow_array_stream"
 * capsule over the records still to come, one batch per page, or pages
 * coalesced into batches of at least min_rows.  Errors met while reading
 * are appended to `errors` (a list, or None) so that custlist's own
 * exception can be raised again.  When it fails, the pager goes back to the
 * start of the stream (whole) or of the failed batch.  A pager part-way
 * through a page is refused here, untouched. */
static PyObject *
make_stream(PyObject *pager, PyObject *errors, Py_ssize_t min_rows, int whole)
{
    cl_pager_mark here;
    int rc = -1;
    Py_BEGIN_CRITICAL_SECTION(pager);
    rc = cl_pager_mark_set(pager, &here);
    Py_END_CRITICAL_SECTION();
    if (rc < 0)
        return NULL;
    cl_pager_mark_clear(&here);
    astream *s = calloc(1, sizeof *s);
    struct ArrowArrayStream *stream = calloc(1, sizeof *stream);
    PyObject *capsule = NULL;
    if (s == NULL || stream == NULL) {
        free(s);
        free(stream);
        return PyErr_NoMemory();
    }
    stream->private_data = s;
    stream->release = stream_release;
    stream->get_schema = stream_get_schema;
    stream->get_next = stream_get_next;
    stream->get_last_error = stream_get_last_error;
    s->pager = Py_NewRef(pager);
    s->errors = Py_NewRef(errors);
    s->min_rows = min_rows;
    s->whole = whole;
    s->main_thread = main_thread_id();
    if ((s->cols = cl_acols_new(cl_pager_schema(pager, 1)->spec)) == NULL || (s->envelope = deferred_envelope(pager)) == NULL)
        goto fail;
    capsule = PyCapsule_New(stream, "arrow_array_stream", capsule_free);
    if (capsule != NULL)
        return capsule;
fail:
    stream->release(stream);
    free(stream);
    return NULL;
}

/* __arrow_c_stream__(requested_schema=None).  The schema is the one the
 * record description gives; a requested schema is left to the consumer to
 * cast to, as the interface allows. */
PyObject *
cl_arrow_c_stream(PyObject *pager, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"requested_schema", NULL};
    PyObject *requested = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:__arrow_c_stream__", kwlist, &requested))
        return NULL;
    return make_stream(pager, Py_None, 1, 1);
}

PyObject *
cl_arrow_stream(PyObject *pager, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"errors", "min_rows", "whole", NULL};
    PyObject *errors;
    Py_ssize_t min_rows = 1;
    int whole = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|np:_arrow_stream", kwlist, &errors,
                                     &min_rows, &whole))
        return NULL;
    if ((errors != Py_None && !PyList_Check(errors)) || min_rows < 1) {
        PyErr_SetString(PyExc_ValueError, "_arrow_stream() takes a list (or None) and min_rows >= 1");
        return NULL;
    }
    return make_stream(pager, errors, min_rows, whole);
}

/* to_arrow() and friends: thin Python faces in custlist._frames. */
static PyObject *
frames_call(PyObject *pager, const char *name)
{
    PyObject *mod = PyImport_ImportModule("custlist._frames");
    if (mod == NULL)
        return NULL;
    PyObject *res = PyObject_CallMethod(mod, name, "O", pager);
    Py_DECREF(mod);
    return res;
}

PyObject *
cl_arrow_to_arrow(PyObject *pager, PyObject *Py_UNUSED(ignored))
{
    return frames_call(pager, "to_arrow");
}

PyObject *
cl_arrow_to_pandas(PyObject *pager, PyObject *Py_UNUSED(ignored))
{
    return frames_call(pager, "to_pandas");
}

PyObject *
cl_arrow_to_polars(PyObject *pager, PyObject *Py_UNUSED(ignored))
{
    return frames_call(pager, "to_polars");
}
