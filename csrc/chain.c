/* The chain of requests on the fetch thread; see chain.h. */
#include "chain.h"
#include "link.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
swap_buf(cl_buf *a, cl_buf *b)
{
    cl_buf t = *a;
    *a = *b;
    *b = t;
}

void
cl_result_collect(cl_result *r, cl_worker *w)
{
    cl_http *h = &w->http;
    char *ct = NULL;
    swap_buf(&r->http.body, &h->body);
    swap_buf(&r->http.headers, &h->headers);
    r->http.shape = h->shape;
    r->http.status = h->status;
    r->http.retry_after_ms = h->retry_after_ms;
    r->http.too_large = h->too_large;
    r->http.code = h->code;
    r->http.trusted = h->trusted;          /* borrowed: lives as long as the worker */
    memcpy(r->http.errbuf, h->errbuf, sizeof r->http.errbuf);
    r->content_type[0] = '\0';
    if (h->easy != NULL && curl_easy_getinfo(h->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK
        && ct != NULL) {
        strncpy(r->content_type, ct, sizeof r->content_type - 1);
        r->content_type[sizeof r->content_type - 1] = '\0';
    }
    r->attempts = w->attempts;
    memcpy(r->log, w->log, sizeof r->log);
    free(r->next);
    r->next = NULL;
}

void
cl_result_free(cl_result *r)
{
    free(r->http.body.data);
    free(r->http.headers.data);
    free(r->next);
    memset(r, 0, sizeof *r);
}

/* `href` resolved against `base` (may be NULL), malloc'd; NULL when
 * unparsable or on another origin than the client's. */
static char *
same_origin_url(const cl_chain *c, const char *base, const char *href)
{
    cl_pos_origin o;
    char *full = cl_pos_resolve(base, href, &o), *res = NULL;
    if (full != NULL && cl_pos_same_origin(&o, c->origin))
        res = strdup(full);
    curl_free(full);
    cl_pos_origin_free(&o);
    return res;
}

/* base_url + ("?" or "&") + param=percent-encoded cursor, as the pager
 * builds it, resolved and held to the origin. */
static char *
cursor_url(const cl_chain *c, const char *cursor, size_t n)
{
    char *enc = cl_pos_encode(cursor, n), *url = NULL, *res = NULL;
    if (enc == NULL)
        return NULL;
    size_t len = strlen(c->base_url) + strlen(c->cursor_param) + strlen(enc) + 3;
    if ((url = malloc(len)) != NULL) {
        snprintf(url, len, "%s%c%s=%s", c->base_url, strchr(c->base_url, '?') ? '&' : '?',
                 c->cursor_param, enc);
        res = same_origin_url(c, NULL, url);
    }
    free(enc);
    free(url);
    return res;
}

/* The URL as requested: with the page size the pager asks for, if any. */
static char *
sized(const cl_chain *c, char *url)
{
    if (url == NULL || c->mode != CL_CHAIN_CURSOR || c->size_param == NULL || c->page_size < 1)
        return url;
    size_t len = strlen(url) + strlen(c->size_param) + 24;
    char *s = malloc(len);
    if (s != NULL)
        snprintf(s, len, "%s%c%s=%lld", url, strchr(url, '?') ? '&' : '?', c->size_param,
                 c->page_size);
    free(url);
    return s;
}

char *
cl_chain_plan(cl_worker *w, char **key, size_t *keylen, int *empty)
{
    cl_chain *c = w->chain;
    cl_http *h = &w->http;
    cl_pos_page pg;
    char *url = NULL, *target = NULL;
    const char *why = NULL;
    *key = NULL;
    *keylen = 0;
    *empty = -1;
    if (__atomic_load_n(&w->cancel, __ATOMIC_ACQUIRE) || h->code != CURLE_OK
        || h->status < 200 || h->status >= 300 || w->url == NULL)
        return NULL;
    if (cl_pos_read(&c->paths, h->body.data, h->body.len, &h->shape, &pg) < 0
        || !pg.found[CL_POS_ITEMS])
        goto done;
    *empty = pg.empty;
    if (c->mode == CL_CHAIN_CURSOR) {
        char mk = pg.found[CL_POS_HAS_MORE] ? pg.kind[CL_POS_HAS_MORE] : 'n';
        char ck = pg.found[CL_POS_CURSOR] ? pg.kind[CL_POS_CURSOR] : 'n';
        if ((mk != 't' && mk != 'f' && mk != 'n') || (ck != 's' && ck != 'n'))
            goto done;
        int c_empty = ck == 'n' || pg.len[CL_POS_CURSOR] == 0;
        int more = mk == 'n' ? !c_empty : mk == 't';
        if (!more || c_empty)
            goto done;                 /* the end, or the pager's error to raise */
        url = cursor_url(c, pg.str[CL_POS_CURSOR], pg.len[CL_POS_CURSOR]);
        if (url != NULL) {
            *key = pg.str[CL_POS_CURSOR];
            *keylen = pg.len[CL_POS_CURSOR];
            pg.str[CL_POS_CURSOR] = NULL;
        }
    }
    else if (c->mode == CL_CHAIN_HREF) {
        if (!pg.found[CL_POS_NEXT] || pg.kind[CL_POS_NEXT] != 's' || pg.len[CL_POS_NEXT] == 0)
            goto done;
        url = same_origin_url(c, w->url, pg.str[CL_POS_NEXT]);
    }
    else {
        if (cl_link_next(h->headers.data ? h->headers.data : "", h->headers.len, &target,
                         &why) <= 0)
            goto done;
        url = same_origin_url(c, w->url, target);
        free(target);
    }
    if (url != NULL && *key == NULL) {
        *keylen = strlen(url);
        if ((*key = strdup(url)) == NULL) {
            free(url);
            url = NULL;
        }
    }
    url = sized(c, url);
    if (url == NULL) {
        free(*key);
        *key = NULL;
    }
done:
    cl_pos_page_free(&pg);
    return url;
}

static void
start_locked(cl_worker *w, char *url)
{
    free(w->url);
    w->url = url;
    w->attempts = 0;
    w->state = CL_W_QUEUED;            /* the fetch thread's loop runs it next */
}

void
cl_chain_finish_locked(cl_worker *w, char *next, char *key, size_t keylen, int empty)
{
    cl_chain *c = w->chain;
    cl_http *h = &w->http;
    int ok = h->code == CURLE_OK && h->status >= 200 && h->status < 300;
    w->state = CL_W_IDLE;
    if (c->halt) {                     /* dropped: nobody takes it */
        free(next);
        free(key);
        return;
    }
    cl_result *r = &c->ring[(c->head + c->count) % CL_CHAIN_AHEAD];
    cl_result_collect(r, w);
    c->count++;
    if (ok)
        c->pages++;
    c->empty_run = empty < 0 ? c->max_empty_run + 1 : empty ? c->empty_run + 1 : 0;
    int go = next != NULL && !w->quit && !__atomic_load_n(&w->cancel, __ATOMIC_ACQUIRE)
        && (c->max_pages <= 0 || c->pages < c->max_pages) && c->empty_run <= c->max_empty_run
        && cl_pos_set_add(&c->seen, key, keylen) == 0 && (r->next = strdup(next)) != NULL;
    free(key);
    if (!go) {
        free(next);
        return;
    }
    if (c->count < CL_CHAIN_AHEAD)
        start_locked(w, next);
    else
        c->parked = next;              /* started once the consumer takes a page */
}

static void
deadline(struct timespec *ts, long ms)
{
    clock_gettime(CL_WAIT_CLOCK, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int
cl_chain_take(cl_worker *w, cl_result *r, long timeout_ms)
{
    cl_chain *c = w->chain;
    struct timespec ts;
    int start = 0;
    deadline(&ts, timeout_ms);
    pthread_mutex_lock(&w->mu);
    while (c->count == 0 && !w->quit) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    /* stopped (interpreter exit): pages fetched ahead are not handed out,
     * as no page is once the worker is stopped */
    int res = w->quit ? -1 : c->count > 0 ? 1 : 0;
    if (res == 1) {
        cl_result *from = &c->ring[c->head], old = *r;
        *r = *from;
        /* the buffers the consumer held go back to the slot as spares */
        from->http.body = old.http.body;
        from->http.headers = old.http.headers;
        from->next = NULL;
        free(old.next);
        c->head = (c->head + 1) % CL_CHAIN_AHEAD;
        c->count--;
        if (c->parked != NULL && w->state == CL_W_IDLE && !w->quit
            && !__atomic_load_n(&w->cancel, __ATOMIC_ACQUIRE)) {
            start_locked(w, c->parked);
            c->parked = NULL;
            start = 1;
        }
    }
    pthread_mutex_unlock(&w->mu);
    if (start)
        pthread_cond_signal(&w->job_cv);
    return res;
}

void
cl_chain_drop(cl_worker *w)
{
    cl_chain *c = w->chain;
    pthread_mutex_lock(&w->mu);
    c->halt = 1;
    free(c->parked);
    c->parked = NULL;
    if (w->state == CL_W_QUEUED)
        w->state = CL_W_IDLE;          /* not picked up yet: never sent */
    while (w->state == CL_W_RUNNING && !w->quit)
        pthread_cond_wait(&w->cv, &w->mu);
    for (int i = 0; i < CL_CHAIN_AHEAD; i++) {
        free(c->ring[i].next);
        c->ring[i].next = NULL;
    }
    c->head = c->count = 0;
    c->halt = 0;
    free(w->url);
    curl_slist_free_all(w->headers);
    w->url = NULL;
    w->headers = NULL;
    pthread_mutex_unlock(&w->mu);
}

void
cl_chain_note(cl_worker *w, const char *key, size_t keylen, long long pages)
{
    cl_chain *c = w->chain;
    pthread_mutex_lock(&w->mu);
    if (key != NULL)
        (void)cl_pos_set_add(&c->seen, key, keylen);   /* out of memory: a guard less */
    c->pages = pages;
    pthread_mutex_unlock(&w->mu);
}

void
cl_chain_free(cl_chain *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < CL_CHAIN_AHEAD; i++)
        cl_result_free(&c->ring[i]);
    cl_pos_paths_free(&c->paths);
    cl_pos_set_free(&c->seen);
    free(c->base_url);
    free(c->cursor_param);
    free(c->size_param);
    free(c->parked);
    free(c);
}
