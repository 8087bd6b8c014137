/* libcurl transfers for the pager; see http.h. */
#include "http.h"
#include <ctype.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CL_MAX_HEADER_BYTES (64 * 1024)
/* libcurl's receive buffer (its default is 16 KiB): a typical page of a
 * few tens of KiB arrives in one or two reads and body callbacks instead of
 * several, each with its poll.  Bounded: every easy handle keeps one. */
#define CL_RECV_BUFFER (64 * 1024)
/* A Retry-After beyond this (about 31 years) counts as this: the value in
 * milliseconds stays far from overflow and is over any retry_after_max. */
#define CL_RETRY_AFTER_MAX_S 1000000000LL

/* Capacity for at least `need` bytes: doubling, but never past limit + 1
 * (the terminating NUL), so a buffer holds at most one max_body. */
static int
buf_reserve(cl_buf *b, size_t need, size_t limit)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < need)
        cap = cap > (limit + 1) / 2 ? limit + 1 : cap * 2;
    if (cap > limit + 1)
        cap = limit + 1;
    char *d = realloc(b->data, cap);
    if (d == NULL)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

static int
buf_append(cl_buf *b, const char *p, size_t n, size_t limit)
{
    if (b->len + n > limit || buf_reserve(b, b->len + n + 1, limit) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
    cl_http *h = arg;
    size_t bytes = size * n;
    if (h->body.len + bytes > h->max_body) {
        h->too_large = 1;
        return 0;                          /* aborts with CURLE_WRITE_ERROR */
    }
    if (h->body.len == 0) {
        /* the first bytes: size the buffer for the whole body at once when
         * the server says how long it is (a starting size when the body is
         * compressed) */
        curl_off_t length = -1;
        if (curl_easy_getinfo(h->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK
            && length > 0 && (curl_off_t)h->max_body >= length
            && buf_reserve(&h->body, (size_t)length + 1, h->max_body) < 0)
            return 0;
    }
    if (buf_append(&h->body, p, bytes, h->max_body) < 0)
        return 0;
    if (h->shape_on)            /* while the bytes are in this core's cache */
        cl_shape_feed(&h->shape, h->body.data, h->body.len, 0);
    return bytes;
}

static int
header_is(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n > k && line[k] == ':' && strncasecmp(line, name, k) == 0;
}

/* Retry-After: delay-seconds or an HTTP-date (RFC 9110 10.2.3). */
static long long
parse_retry_after(const char *v, size_t n)
{
    char tmp[128];
    while (n > 0 && isspace((unsigned char)*v))
        v++, n--;
    while (n > 0 && isspace((unsigned char)v[n - 1]))
        n--;
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    char *end;
    long long secs = strtoll(tmp, &end, 10);       /* saturates on overflow */
    if (*end == '\0' && end != tmp && tmp[0] != '-' && tmp[0] != '+')
        return secs > CL_RETRY_AFTER_MAX_S ? CL_RETRY_AFTER_MAX_S * 1000 : secs * 1000;
    time_t when = curl_getdate(tmp, NULL);
    if (when < 0)
        return -1;
    long long delta = (long long)when - (long long)time(NULL);
    if (delta > CL_RETRY_AFTER_MAX_S)
        delta = CL_RETRY_AFTER_MAX_S;
    return delta < 0 ? 0 : delta * 1000;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
    cl_http *h = arg;
    size_t bytes = size * n;
    if (bytes >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        h->headers.len = 0;                /* a new response (after 100-continue) */
        h->retry_after_ms = -1;
    }
    else if (header_is(p, bytes, "retry-after"))
        h->retry_after_ms = parse_retry_after(p + 12, bytes - 12);
    if (buf_append(&h->headers, p, bytes, CL_MAX_HEADER_BYTES) < 0)
        return 0;
    return bytes;
}

static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    cl_http *h = arg;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return __atomic_load_n(h->cancel, __ATOMIC_ACQUIRE) ? 1 : 0;
}

static int
set_protocols(CURL *e)
{
#if LIBCURL_VERSION_NUM >= 0x075500
    return curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK
        || curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
    return curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK;
#endif
}

/* Loopback destinations never go through a proxy. */
#if LIBCURL_VERSION_NUM >= 0x075600
#define CL_NOPROXY "localhost,127.0.0.0/8,::1"
#else
#define CL_NOPROXY "localhost,127.0.0.1,::1"
#endif

/* Proxy and trust: explicit, never from libcurl's own environment lookup,
 * and TLS verification never off. */
static int
set_network(cl_http *h, CURL *e, const cl_http_opts *o)
{
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_PROXY, o->proxy ? o->proxy : "") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOPROXY, CL_NOPROXY) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    if (o->ca_file != NULL || o->ca_path != NULL) {
        bad |= (h->trusted = strdup(o->ca_file ? o->ca_file : o->ca_path)) == NULL;
        bad |= curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_CAPATH, o->ca_path) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, o->ca_file) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_PROXY_CAPATH, o->ca_path) != CURLE_OK;
    }
    return bad;
}

int
cl_http_init(cl_http *h, const cl_http_opts *o, volatile int *cancel)
{
    memset(h, 0, sizeof *h);
    h->cancel = cancel;
    h->max_body = o->max_body;
    h->retry_after_ms = -1;
    CURL *e = h->easy = curl_easy_init();
    if (e == NULL || (!o->driven && (h->multi = curl_multi_init()) == NULL))
        return -1;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, h) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, h) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_XFERINFODATA, h) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)CL_RECV_BUFFER) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, o->low_speed_limit) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, o->low_speed_time) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, o->user_agent) != CURLE_OK;
    bad |= set_protocols(e);
    bad |= set_network(h, e, o);
    return bad ? -1 : 0;
}

/* curl_easy_perform, but through the multi interface so that
 * cl_http_wakeup can interrupt the wait for the network immediately. */
static CURLcode
perform(cl_http *h)
{
    CURLcode res = CURLE_OK;
    int running = 1;
    if (h->multi == NULL || curl_multi_add_handle(h->multi, h->easy) != CURLM_OK)
        return CURLE_FAILED_INIT;
    while (running) {
        if (curl_multi_perform(h->multi, &running) != CURLM_OK) {
            res = CURLE_RECV_ERROR;
            break;
        }
        if (!running)
            break;
        if (__atomic_load_n(h->cancel, __ATOMIC_ACQUIRE)) {
            res = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        if (curl_multi_poll(h->multi, NULL, 0, 1000, NULL) != CURLM_OK) {
            res = CURLE_RECV_ERROR;
            break;
        }
    }
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == h->easy)
            res = msg->data.result;
    curl_multi_remove_handle(h->multi, h->easy);
    return res;
}

void
cl_http_wakeup(cl_http *h)
{
    if (h->multi != NULL)
        curl_multi_wakeup(h->multi);
}

CURLcode
cl_http_get(cl_http *h, const char *url, struct curl_slist *headers)
{
    return cl_http_send(h, url, headers, NULL, 0);
}

void
cl_http_begin(cl_http *h, const char *url, struct curl_slist *headers, const char *post,
              size_t post_len)
{
    h->body.len = 0;
    cl_shape_reset(&h->shape);
    h->headers.len = 0;
    h->status = 0;
    h->retry_after_ms = -1;
    h->too_large = 0;
    h->errbuf[0] = '\0';
    curl_easy_setopt(h->easy, CURLOPT_URL, url);
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, headers);
    if (post != NULL) {
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)post_len);
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, post);
    }
    else
        curl_easy_setopt(h->easy, CURLOPT_HTTPGET, 1L);
}

void
cl_http_end(cl_http *h, CURLcode code)
{
    h->code = code;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &h->status);
    if (h->code == CURLE_FILESIZE_EXCEEDED)
        h->too_large = 1;
    if (h->code == CURLE_OK && h->body.data == NULL)
        buf_append(&h->body, "", 0, 1);    /* an empty body is still a buffer */
    if (h->code == CURLE_OK && h->shape_on)
        cl_shape_feed(&h->shape, h->body.data, h->body.len, 1);
}

CURLcode
cl_http_send(cl_http *h, const char *url, struct curl_slist *headers, const char *post,
             size_t post_len)
{
    cl_http_begin(h, url, headers, post, post_len);
    cl_http_end(h, perform(h));
    return h->code;
}

void
cl_http_cleanup(cl_http *h)
{
    if (h->multi != NULL)
        curl_multi_cleanup(h->multi);
    if (h->easy != NULL)
        curl_easy_cleanup(h->easy);
    h->easy = NULL;
    h->multi = NULL;
    free(h->body.data);
    free(h->headers.data);
    free(h->trusted);
    h->trusted = NULL;
    memset(&h->body, 0, sizeof h->body);
    memset(&h->headers, 0, sizeof h->headers);
}

/* ---- failures ------------------------------------------------------------ */

/* Retried: what a busy or restarting server, a dropped connection or a
 * flaky network produce, including a TLS handshake cut short (SSL_CONNECT
 * _ERROR is mostly a reset mid-handshake).  Not retried: a host name that
 * does not resolve (the system resolver has already retried; a typo should
 * fail at once), certificate problems, bad URLs and settings, oversized
 * responses, and a cancel. */
static const struct {
    CURLcode code;
    unsigned char kind, retry;
} failures[] = {
    {CURLE_COULDNT_CONNECT, CL_FAIL_TRANSPORT, 1},
    {CURLE_OPERATION_TIMEDOUT, CL_FAIL_TIMEOUT, 1},
    {CURLE_SEND_ERROR, CL_FAIL_TRANSPORT, 1},
    {CURLE_RECV_ERROR, CL_FAIL_TRANSPORT, 1},
    {CURLE_GOT_NOTHING, CL_FAIL_TRANSPORT, 1},
    {CURLE_PARTIAL_FILE, CL_FAIL_TRANSPORT, 1},
    {CURLE_BAD_CONTENT_ENCODING, CL_FAIL_TRANSPORT, 1},
    {CURLE_HTTP2, CL_FAIL_TRANSPORT, 1},
    {CURLE_HTTP2_STREAM, CL_FAIL_TRANSPORT, 1},
    {CURLE_SSL_CONNECT_ERROR, CL_FAIL_TRANSPORT, 1},
    {CURLE_COULDNT_RESOLVE_HOST, CL_FAIL_TRANSPORT, 0},
    {CURLE_COULDNT_RESOLVE_PROXY, CL_FAIL_TRANSPORT, 0},
    {CURLE_PEER_FAILED_VERIFICATION, CL_FAIL_TRANSPORT, 0},
    {CURLE_SSL_CACERT_BADFILE, CL_FAIL_TRANSPORT, 0},
    {CURLE_FILESIZE_EXCEEDED, CL_FAIL_TOO_LARGE, 0},
    {CURLE_ABORTED_BY_CALLBACK, CL_FAIL_CANCELLED, 0},
};

cl_fail
cl_http_failure(CURLcode code, int too_large)
{
    cl_fail f = {CL_FAIL_TRANSPORT, 0};
    if (too_large)                         /* the body callback refused it */
        return (cl_fail){CL_FAIL_TOO_LARGE, 0};
    for (size_t i = 0; i < sizeof failures / sizeof failures[0]; i++)
        if (failures[i].code == code)
            return (cl_fail){(cl_fail_kind)failures[i].kind, failures[i].retry};
    return f;
}
