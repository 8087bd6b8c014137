/* One request's transfer, on the calling thread without Python: see
 * send.h. */
#include "send.h"
#include <stdlib.h>
#include <string.h>

/* A credential may be in it: zeroed before it is freed. */
static void
wipe_free(char *s, size_t n)
{
    if (s == NULL)
        return;
    volatile char *v = s;
    for (size_t i = 0; i < n; i++)
        v[i] = '\0';
    free(s);
}

void
cl_request_spec_free(cl_request_spec *s)
{
    for (struct curl_slist *h = s->headers; h != NULL; h = h->next)
        if (h->data != NULL)
            memset(h->data, 0, strlen(h->data));
    curl_slist_free_all(s->headers);
    wipe_free(s->post, s->post_len);
    free(s->url);
    free((char *)s->opts.user_agent);
    free((char *)s->opts.proxy);
    free((char *)s->opts.ca_file);
    free((char *)s->opts.ca_path);
    memset(s, 0, sizeof *s);
}

int
cl_request_init(const cl_request_spec *s, cl_http *h, volatile int *cancel)
{
    return cl_http_init(h, &s->opts, cancel);
}

CURLcode
cl_request_perform(const cl_request_spec *s, cl_http *h)
{
    return cl_http_send(h, s->url, s->headers, s->post, s->post_len);
}
