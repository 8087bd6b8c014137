/* The exceptions the faces and the listing raise: see errors.h. */
#include "errors.h"
#include <stdarg.h>
#include <string.h>

PyObject *
cl_raise(PyObject *cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (msg != NULL) {
        PyErr_SetObject(cls, msg);
        Py_DECREF(msg);
    }
    return NULL;
}

/* What may be shown of a URL in a message or a log line: scheme, host,
 * port and path; never user info, query (tokens, signatures) or fragment. */
PyObject *
cl_public_url(PyObject *url)
{
    const char *s = PyUnicode_AsUTF8(url);
    if (s == NULL)
        return NULL;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    PyObject *res = NULL;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, s, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &port, 0);    /* absent: the default */
        res = PyUnicode_FromFormat("%s://%s%s%s%s", scheme, host, port ? ":" : "",
                                   port ? port : "", path);
    }
    else
        res = PyUnicode_FromString("(unparsable URL)");
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return res;
}

int
cl_raise_transport(cl_state *st, const cl_http *h, PyObject *url, const char *method,
                   int attempts)
{
    cl_fail f = cl_http_failure(h->code, h->too_large);
    PyObject *cls = f.kind == CL_FAIL_TOO_LARGE ? st->TooLargeError
                  : f.kind == CL_FAIL_TIMEOUT ? st->TimeoutError
                  : st->TransportError;
    PyObject *why = NULL, *where = NULL, *msg = NULL, *exc = NULL, *code = NULL, *att = NULL;
    if (f.kind == CL_FAIL_TOO_LARGE)
        why = PyUnicode_FromString("response body exceeds the size limit");
    else if (h->errbuf[0])
        why = PyUnicode_DecodeUTF8(h->errbuf, (Py_ssize_t)strnlen(h->errbuf, CURL_ERROR_SIZE),
                                   "replace");
    else
        why = PyUnicode_FromString(curl_easy_strerror(h->code));
    if (why == NULL || (where = cl_public_url(url)) == NULL)
        goto fail;
    /* a certificate that does not verify: say which CAs were trusted */
    int tls = h->code == CURLE_PEER_FAILED_VERIFICATION || h->code == CURLE_SSL_CACERT_BADFILE;
    msg = PyUnicode_FromFormat("%U (%s %U, %d attempt%s)%s%s", why, method, where, attempts,
                               attempts == 1 ? "" : "s", tls ? "; trusted CAs: " : "",
                               !tls ? "" : h->trusted ? h->trusted : "libcurl's default");
    if (msg == NULL || (exc = PyObject_CallOneArg(cls, msg)) == NULL)
        goto fail;
    code = PyLong_FromLong((long)h->code);
    att = PyLong_FromLong(attempts);
    if (code != NULL && att != NULL && PyObject_SetAttrString(exc, "curl_code", code) == 0
        && PyObject_SetAttrString(exc, "url", url) == 0
        && PyObject_SetAttrString(exc, "attempts", att) == 0)
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
fail:
    Py_XDECREF(why);
    Py_XDECREF(where);
    Py_XDECREF(msg);
    Py_XDECREF(exc);
    Py_XDECREF(code);
    Py_XDECREF(att);
    return -1;
}
