/* The chain of requests on the fetch thread: the next request planned as a
 * page arrives, the page set aside, the request queued; the token renewed
 * for it.  What the consumer calls is in chain_take.c; see chain.h. */
#include "chain_internal.h"
#include "link.h"
#include "token.h"
#include <strings.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    r->auth_resent = r->auth_failed = 0;
    r->fail_seq = 0;
}

/* `href` resolved against `base` (may be NULL), malloc'd; NULL when
 * unparsable or on another origin than the client's. */
static char *
same_origin_url(const cl_chain *c, const char *base, const char *href)
{
    cl_pos_origin o;
    char *full, *res = cl_pos_resolve_plain(c->origin, base, href);
    if (res != NULL)                   /* on the client's origin as it stands */
        return res;
    full = cl_pos_resolve(base, href, &o);
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

/* The URL as requested: with the page size asked for, if any (as the
 * pager's sized_url: the page size, or under max_items no more than the
 * records still wanted). */
static char *
sized(const cl_chain *c, char *url, long long budget, long long *asked)
{
    long long want = c->page_size;
    *asked = c->page_size;
    if (url == NULL || c->size_param == NULL)
        return url;
    if (budget >= 0 && (want < 0 || budget < want))
        want = budget;
    if (want < 1)
        return url;
    *asked = want;
    size_t len = strlen(url) + strlen(c->size_param) + 24;
    char *s = malloc(len);
    if (s != NULL)
        snprintf(s, len, "%s%c%s=%lld", url, strchr(url, '?') ? '&' : '?', c->size_param, want);
    free(url);
    return s;
}

/* Under max_items: the records still wanted after this page of n (as the
 * pager's window); -1 when the page cannot be counted or does not fit. */
static long long
budget_after(const cl_chain *c, long long n)
{
    if (n < 0 || c->skip > n)
        return -1;
    long long take = n - c->skip;
    if (take > c->budget)
        take = c->budget;
    return c->budget - take;
}

/* An int slot as the pager reads it: -1 when absent or null. */
static int
slot_int(const cl_pos_page *pg, int slot, long long *v)
{
    *v = -1;
    if (!pg->found[slot] || pg->kind[slot] == 'n')
        return 0;
    if (pg->kind[slot] != 'i')
        return -1;
    *v = pg->num[slot];
    return 0;
}

/* Offset and page modes, as the pager's plan_numbered: the next position
 * into step->at, and the page's records fingerprinted into step->key (the
 * loop guard: a server that ignores the position sends them again); -1 at
 * the end or when not sure. */
static int
plan_numbered(const cl_chain *c, const cl_pos_page *pg, const char *body, cl_chain_step *step)
{
    long long n = pg->count, at = c->at, total, pages;
    char mk = pg->found[CL_POS_HAS_MORE] ? pg->kind[CL_POS_HAS_MORE] : 'n';
    if (n < 0 || at < 0 || slot_int(pg, CL_POS_TOTAL, &total) < 0
        || slot_int(pg, CL_POS_TOTAL_PAGES, &pages) < 0 || (mk != 't' && mk != 'f' && mk != 'n'))
        return -1;
    int more;
    if (n == 0)
        more = 0;
    else if (mk != 'n')
        more = mk == 't';
    else if (c->mode == CL_CHAIN_PAGE && pages >= 0)
        more = at - c->first_page + 1 < pages;
    else if (c->mode == CL_CHAIN_OFFSET && total >= 0)
        more = at + n < total;
    else
        more = c->asked < 1 || n >= c->asked;
    if (!more || pg->kind[CL_POS_ITEMS] != '[')
        return -1;
    long long next = c->mode == CL_CHAIN_OFFSET ? at + n : at + 1;
    if (next > CL_CHAIN_MAX_POSITION)
        return -1;
    uint64_t h1 = 14695981039346656037ULL, h2 = 0x9E3779B97F4A7C15ULL;
    for (const char *p = body + pg->items_at; p < body + pg->items_end; p++) {
        h1 = (h1 ^ (unsigned char)*p) * 1099511628211ULL;
        h2 = (h2 + (unsigned char)*p) * 0xBF58476D1CE4E5B9ULL;
        h2 ^= h2 >> 31;
    }
    if ((step->key = malloc(17)) == NULL)
        return -1;
    step->key[0] = 'I';                /* as the pager keys a page's records */
    memcpy(step->key + 1, &h1, 8);
    memcpy(step->key + 9, &h2, 8);
    step->keylen = 17;
    step->at = next;
    return 0;
}

void
cl_chain_plan(cl_worker *w, cl_chain_step *step)
{
    cl_chain *c = w->chain;
    cl_http *h = &w->http;
    cl_pos_page pg;
    char *url = NULL, *target = NULL;
    const char *why = NULL;
    *step = (cl_chain_step){.empty = -1, .budget = -1, .at = -1, .asked = -1};
    if (__atomic_load_n(&w->cancel, __ATOMIC_ACQUIRE) || h->code != CURLE_OK
        || h->status < 200 || h->status >= 300 || w->url == NULL)
        return;
    if (cl_pos_read(&c->paths, h->body.data, h->body.len, &h->shape, &pg) < 0
        || !pg.found[CL_POS_ITEMS])
        goto done;
    step->empty = pg.empty;
    if (c->max_items) {
        /* the budget is this thread's between the consumer's notes */
        step->budget = budget_after(c, pg.count);
        if (step->budget <= 0)
            goto done;                 /* max_items reached here, or not sure */
    }
    if (c->mode == CL_CHAIN_OFFSET || c->mode == CL_CHAIN_PAGE) {
        if (plan_numbered(c, &pg, h->body.data, step) < 0)
            goto done;
        char digits[24];
        int n = snprintf(digits, sizeof digits, "%lld", step->at);
        url = cursor_url(c, digits, (size_t)n);
    }
    else if (c->mode == CL_CHAIN_CURSOR) {
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
            step->key = pg.str[CL_POS_CURSOR];
            step->keylen = pg.len[CL_POS_CURSOR];
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
    if (url != NULL && step->key == NULL) {
        step->keylen = strlen(url);
        if ((step->key = strdup(url)) == NULL) {
            free(url);
            url = NULL;
        }
    }
    url = sized(c, url, step->budget, &step->asked);
    if (url == NULL) {
        free(step->key);
        step->key = NULL;
    }
    step->next = url;
done:
    cl_pos_page_free(&pg);
}

/* The worker's headers with the token's Authorization line in place of
 * any other; 0, 1 when there is no usable token (the job is queued with
 * need_token: the fetch thread renews before sending it), or -1 out of
 * memory.  `any`: a token just renewed, sent whatever its lifetime. */
static int
auth_with_locked(cl_worker *w, int any)
{
    cl_chain *c = w->chain;
    char *line = NULL;
    unsigned long long gen = 0;
    if (c->token == NULL)
        return 0;
    int rc = any ? cl_token_line_any(c->token, c->gen, &line, &gen)
                 : cl_token_line(c->token, c->gen, &line, &gen);
    if (rc < 0)
        return 1;
    if (rc == 0)
        return 0;
    struct curl_slist *list = NULL, *tmp = NULL;
    for (struct curl_slist *h = w->headers; h != NULL; h = h->next) {
        if (strncasecmp(h->data, "Authorization:", 14) == 0)
            continue;
        if ((tmp = curl_slist_append(list, h->data)) == NULL)
            goto fail;
        list = tmp;
    }
    if ((tmp = curl_slist_append(list, line)) == NULL)
        goto fail;
    memset(line, 0, strlen(line));
    free(line);
    for (struct curl_slist *h = w->headers; h != NULL; h = h->next)
        if (strncasecmp(h->data, "Authorization:", 14) == 0)
            memset(h->data, 0, strlen(h->data));
    curl_slist_free_all(w->headers);
    w->headers = tmp;
    c->gen = gen;
    return 0;
fail:
    memset(line, 0, strlen(line));
    free(line);
    curl_slist_free_all(list);
    return -1;
}

/* Before a job is queued: its token, or need_token set. */
int
cl_chain_auth_locked(cl_worker *w)
{
    int rc = auth_with_locked(w, 0);
    if (rc == 1)
        w->chain->need_token = 1;
    return rc < 0 ? -1 : 0;
}

int
cl_chain_needs_token(cl_worker *w)
{
    cl_chain *c = w->chain;
    if (c == NULL || c->token == NULL)
        return 0;
    pthread_mutex_lock(&w->mu);
    int need = c->need_token;
    pthread_mutex_unlock(&w->mu);
    return need;
}

int
cl_chain_step_needs_token(cl_worker *w, const cl_chain_step *step)
{
    cl_chain *c = w->chain;
    return step->next != NULL && c->token != NULL && !cl_token_usable(c->token);
}

void
cl_chain_ahead_drop(cl_chain_step *step)
{
    free(step->next);
    free(step->key);
    step->next = step->key = NULL;
    step->fail_seq = 0;
}

/* One look at the cell for the generation in the worker's headers. */
static int
poll_cell(cl_worker *w, unsigned long long accept, unsigned long long seq0, int may_claim,
          unsigned long long *seq, cl_token_req **req, const cl_request_spec **spec)
{
    cl_chain *c = w->chain;
    pthread_mutex_lock(&w->mu);
    unsigned long long refused = c->gen;
    pthread_mutex_unlock(&w->mu);
    return cl_token_poll(c->token, refused, accept, seq0, seq, may_claim, req, spec);
}

int
cl_chain_ahead_poll(cl_worker *w, cl_chain_step *step, unsigned long long accept,
                    unsigned long long seq0, int may_claim, cl_token_req **req,
                    const cl_request_spec **spec)
{
    unsigned long long seq = 0;
    int rc = poll_cell(w, accept, seq0, may_claim, &seq, req, spec);
    if (rc == CL_TOKEN_READY)
        step->renewed = 1;
    else if (rc == CL_TOKEN_FAILED || rc == CL_TOKEN_NO_REQUEST) {
        cl_chain_ahead_drop(step);
        step->fail_seq = rc == CL_TOKEN_FAILED ? seq : 0;
        rc = CL_TOKEN_FAILED;
    }
    return rc;
}

unsigned long long
cl_chain_token_seq(cl_worker *w)
{
    return cl_token_fail_seq(w->chain->token);
}

int
cl_chain_token_poll(cl_worker *w, unsigned long long accept, unsigned long long seq0,
                    int may_claim, cl_token_req **req, const cl_request_spec **spec)
{
    cl_chain *c = w->chain;
    unsigned long long seq = 0;
    int rc = poll_cell(w, accept, seq0, may_claim, &seq, req, spec);
    if (rc == CL_TOKEN_WAIT || rc == CL_TOKEN_CLAIMED)
        return rc;
    pthread_mutex_lock(&w->mu);
    c->need_token = 0;
    if (rc == CL_TOKEN_READY && auth_with_locked(w, 1) == 0) {
        pthread_mutex_unlock(&w->mu);
        return CL_TOKEN_READY;
    }
    /* not sent: set aside as a job that failed, for the consumer */
    c->auth_failed = 1;
    c->fail_seq = rc == CL_TOKEN_FAILED ? seq : 0;
    pthread_mutex_unlock(&w->mu);
    w->http.code = CURLE_LOGIN_DENIED;
    w->http.status = 0;
    w->http.too_large = 0;
    w->http.errbuf[0] = '\0';
    w->http.body.len = w->http.headers.len = 0;
    w->attempts = 0;
    return CL_TOKEN_FAILED;
}

void
cl_chain_start_locked(cl_worker *w, char *url)
{
    free(w->url);
    w->url = url;
    w->attempts = 0;
    w->state = CL_W_QUEUED;            /* the fetch thread's loop runs it next */
}

/* An event loop watching the worker's notify fd (cl_worker_notify) learns
 * of every job's end, a page set aside or one dropped: it takes the page
 * without waiting, or sends the request a drop held back.  The loop reads
 * the ring under w->mu, held here, so it never sees the fd before the page. */
static void
signal_locked(cl_worker *w)
{
    if (w->notify_fd >= 0) {
        uint64_t one = 1;
        ssize_t rc = write(w->notify_fd, &one, sizeof one);
        (void)rc;                      /* full counter: readable already */
    }
}

void
cl_chain_finish_locked(cl_worker *w, cl_chain_step *step)
{
    cl_chain *c = w->chain;
    cl_http *h = &w->http;
    char *next = step->next;
    int ok = h->code == CURLE_OK && h->status >= 200 && h->status < 300;
    w->state = CL_W_IDLE;
    signal_locked(w);
    if (c->halt) {                     /* dropped: nobody takes it */
        free(next);
        free(step->key);
        c->need_token = c->resent = c->auth_failed = 0;
        return;
    }
    char *again = NULL;
    if (c->token != NULL && h->code == CURLE_OK && h->status == 401 && !c->resent && !w->quit
        && !__atomic_load_n(&w->cancel, __ATOMIC_ACQUIRE) && (again = strdup(w->url)) != NULL) {
        /* refused: this thread renews the token (once for every listing of
         * the client: the generation sent tells) and sends it once more */
        free(next);
        free(step->key);
        c->need_token = 1;
        c->resent = 1;
        cl_chain_start_locked(w, again);
        return;
    }
    cl_result *r = &c->ring[(c->head + c->count) % CL_CHAIN_AHEAD];
    cl_result_collect(r, w);
    r->auth_gen = c->gen;
    r->auth_resent = c->resent;
    r->auth_failed = c->auth_failed;
    r->fail_seq = c->auth_failed ? c->fail_seq : step->fail_seq;
    c->resent = c->auth_failed = 0;
    c->fail_seq = 0;
    c->count++;
    if (ok)
        c->pages++;
    c->empty_run = step->empty < 0 ? c->max_empty_run + 1
                 : step->empty ? c->empty_run + 1 : 0;
    int go = next != NULL && !w->quit && !__atomic_load_n(&w->cancel, __ATOMIC_ACQUIRE)
        && (c->max_pages <= 0 || c->pages < c->max_pages) && c->empty_run <= c->max_empty_run
        && cl_pos_set_add(&c->seen, step->key, step->keylen) == 0
        && (c->count >= CL_CHAIN_AHEAD
            || (step->renewed ? auth_with_locked(w, 1) : cl_chain_auth_locked(w)) == 0)
        && (r->next = strdup(next)) != NULL;
    free(step->key);
    if (!go) {
        free(next);
        return;
    }
    if (c->max_items) {
        c->budget = step->budget;
        c->skip = 0;
    }
    c->at = step->at;
    c->asked = step->asked;
    if (c->count < CL_CHAIN_AHEAD)
        cl_chain_start_locked(w, next);
    else
        c->parked = next;              /* started once the consumer takes a page */
}
