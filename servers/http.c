/* servers/http.c - see http.h.  RFC 9112 (HTTP/1.1 message syntax), with
 * nginx's tolerance for a bare LF as line end and empty lines before a
 * request line; what could smuggle a second request (a Content-Length
 * beside a Transfer-Encoding, differing Content-Lengths, a space before a
 * field's colon, an obs-fold) is refused with 400. */
#include "http.h"

#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The end of the line starting at p (its '\n'), or NULL. */
static const char *line_end(const char *p, const char *end)
{
    return memchr(p, '\n', (size_t)(end - p));
}

/* [s, e) without the trailing CR and surrounding spaces/tabs. */
static void trim(const char **s, const char **e)
{
    if (*e > *s && (*e)[-1] == '\r')
        (*e)--;
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

static bool token_eq(const char *s, const char *e, const char *tok)
{
    size_t n = strlen(tok);
    return (size_t)(e - s) == n && strncasecmp(s, tok, n) == 0;
}

/* Connection: a comma list of tokens. */
static void parse_connection(const char *s, const char *e, bool *close, bool *keep)
{
    while (s < e) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        const char *te = c ? c : e;
        const char *ts = s;
        trim(&ts, &te);
        if (token_eq(ts, te, "close"))
            *close = true;
        else if (token_eq(ts, te, "keep-alive"))
            *keep = true;
        s = c ? c + 1 : e;
    }
}

long http_parse(const char *p, size_t n, struct http_req *req)
{
    const char *start = p, *end = p + n;
    /* Empty lines before the request line (RFC 9112 2.2). */
    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    if (p - start > 64)
        return -400;
    size_t limit = HTTP_MAX_HEADER + (size_t)(p - start);
    const char *scan_end = n > limit ? start + limit : end;

    /* The request line: METHOD SP TARGET SP HTTP/1.x */
    const char *le = line_end(p, scan_end);
    if (!le)
        return n > limit ? -431 : 0;
    const char *ls = p, *lend = le;
    if (lend > ls && lend[-1] == '\r')
        lend--;
    const char *m = ls;
    while (m < lend && is_tchar((unsigned char)*m))
        m++;
    if (m == ls || m >= lend || *m != ' ')
        return -400;
    size_t mlen = (size_t)(m - ls);
    if (mlen == 3 && !memcmp(ls, "GET", 3))
        req->method = M_GET;
    else if (mlen == 4 && !memcmp(ls, "HEAD", 4))
        req->method = M_HEAD;
    else
        req->method = M_OTHER;
    const char *t = m + 1, *te = t;
    while (te < lend && (unsigned char)*te > ' ' && *te != 0x7f)
        te++;
    if (te == t || te >= lend || *te != ' ')
        return -400;
    req->target = t;
    req->target_len = (size_t)(te - t);
    const char *v = te + 1;
    if (lend - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9')
        return -400;
    if (v[5] != '1')
        return -505;
    req->minor = v[7] - '0';

    /* Header fields. */
    bool close = false, keep = false, have_cl = false, have_te = false, chunked = false;
    unsigned hosts = 0, fields = 0;
    uint64_t cl = 0;
    p = le + 1;
    for (;;) {
        le = line_end(p, scan_end);
        if (!le)
            return n > limit ? -431 : 0;
        const char *fs = p, *fe = le;
        if (fe > fs && fe[-1] == '\r')
            fe--;
        p = le + 1;
        if (fe == fs)
            break; /* the empty line: the header's end */
        if (++fields > HTTP_MAX_FIELDS)
            return -431;
        if (*fs == ' ' || *fs == '\t')
            return -400; /* obs-fold */
        const char *c = fs;
        while (c < fe && is_tchar((unsigned char)*c))
            c++;
        if (c == fs || c >= fe || *c != ':')
            return -400;
        const char *vs = c + 1, *ve = fe;
        for (const char *q = vs; q < ve; q++)
            if ((unsigned char)*q < ' ' && *q != '\t')
                return -400; /* a control character (a bare CR, a NUL) in a value */
        trim(&vs, &ve);
        size_t nlen = (size_t)(c - fs);
        if (nlen == 4 && !strncasecmp(fs, "host", 4)) {
            hosts++;
        } else if (nlen == 14 && !strncasecmp(fs, "content-length", 14)) {
            if (vs == ve)
                return -400;
            uint64_t x = 0;
            for (const char *q = vs; q < ve; q++) {
                if (*q < '0' || *q > '9' || x > (UINT64_MAX - 9) / 10)
                    return -400;
                x = x * 10 + (uint64_t)(*q - '0');
            }
            if (have_cl && x != cl)
                return -400;
            have_cl = true;
            cl = x;
        } else if (nlen == 17 && !strncasecmp(fs, "transfer-encoding", 17)) {
            /* Only "chunked" as the last (here: only) coding. */
            have_te = true;
            if (!token_eq(vs, ve, "chunked"))
                return -501;
            if (chunked)
                return -400;
            chunked = true;
        } else if (nlen == 10 && !strncasecmp(fs, "connection", 10)) {
            parse_connection(vs, ve, &close, &keep);
        }
    }
    if (have_te && have_cl)
        return -400;
    if (req->minor >= 1 && hosts != 1)
        return -400; /* RFC 9112 3.2: exactly one Host in HTTP/1.1 */
    if (hosts > 1)
        return -400;
    if (have_te && req->minor == 0)
        return -400; /* chunked is HTTP/1.1's */
    req->keep_alive = req->minor >= 1 ? !close : (keep && !close);
    req->body = chunked ? BODY_CHUNKED : (have_cl && cl > 0) ? BODY_LENGTH : BODY_NONE;
    req->content_length = cl;
    return p - start;
}

void http_skip_start(struct http_skip *s, const struct http_req *req)
{
    s->kind = req->body;
    s->trailers = 0;
    if (req->body == BODY_LENGTH) {
        s->state = CH_DATA;
        s->left = req->content_length;
    } else if (req->body == BODY_CHUNKED) {
        s->state = CH_SIZE;
        s->left = 0;
    } else {
        s->state = SKIP_DONE;
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long http_skip(struct http_skip *s, const char *p, size_t n)
{
    const char *start = p, *end = p + n;
    while (s->state != SKIP_DONE && p < end) {
        if (s->state == CH_DATA) {
            size_t k = (size_t)(end - p);
            if (k > s->left)
                k = (size_t)s->left;
            p += k;
            s->left -= k;
            if (s->left == 0)
                s->state = s->kind == BODY_LENGTH ? SKIP_DONE : CH_DATA_END;
            continue;
        }
        /* The line-based states need a whole line. */
        const char *le = memchr(p, '\n', (size_t)(end - p));
        if (!le) {
            if (end - p > 4096)
                return -1;
            break;
        }
        const char *ls = p, *lend = le;
        if (lend > ls && lend[-1] == '\r')
            lend--;
        if (lend - ls > 4096)
            return -1;
        p = le + 1;
        switch (s->state) {
        case CH_SIZE: {
            uint64_t x = 0;
            const char *q = ls;
            int d;
            if (q == lend || hexval(*q) < 0)
                return -1;
            while (q < lend && (d = hexval(*q)) >= 0) {
                if (x >> 60)
                    return -1;
                x = x * 16 + (uint64_t)d;
                q++;
            }
            while (q < lend && (*q == ' ' || *q == '\t'))
                q++;
            if (q < lend && *q != ';')
                return -1; /* only a chunk extension may follow */
            s->left = x;
            s->state = x ? CH_DATA : CH_TRAILER;
            break;
        }
        case CH_DATA_END:
            if (lend != ls)
                return -1;
            s->state = CH_SIZE;
            break;
        case CH_TRAILER:
            if (lend == ls)
                s->state = SKIP_DONE;
            else if (++s->trailers > HTTP_MAX_FIELDS)
                return -1;
            break;
        default:
            return -1;
        }
    }
    return p - start;
}

int http_path(const char *t, size_t len, char *out, size_t outsz)
{
    const char *end = t + len;
    if (len >= 7 && !strncasecmp(t, "http://", 7)) {
        const char *slash = memchr(t + 7, '/', len - 7);
        if (!slash)
            return -400;
        t = slash;
    }
    if (t >= end || *t != '/')
        return -400;
    const char *q = memchr(t, '?', (size_t)(end - t));
    if (q)
        end = q;
    const char *h = memchr(t, '#', (size_t)(end - t));
    if (h)
        end = h;
    /* Decode, then split on '/': an escape cannot hide a ".." (it is
     * decoded first) and "%2F" is a separator like '/'. */
    size_t o = 0, seg = 0; /* seg: where the current segment starts in out */
    for (const char *c = t + 1;; c++) {
        char ch;
        if (c == end) {
            ch = '/';
        } else if (*c == '%') {
            if (end - c < 3 || hexval(c[1]) < 0 || hexval(c[2]) < 0)
                return -400;
            ch = (char)(hexval(c[1]) * 16 + hexval(c[2]));
            if (ch == 0)
                return -400;
            c += 2;
        } else {
            ch = *c;
        }
        if (ch == '/') {
            size_t sl = o - seg;
            if (sl == 2 && out[seg] == '.' && out[seg + 1] == '.')
                return -403;
            if (sl == 0 || (sl == 1 && out[seg] == '.')) {
                o = seg; /* drop "" and "." */
            } else {
                if (o + 1 >= outsz)
                    return -414;
                out[o++] = '/';
                seg = o;
            }
            if (c == end)
                break;
            continue;
        }
        if (o + 1 >= outsz)
            return -414;
        out[o++] = ch;
    }
    if (o > 0 && out[o - 1] == '/')
        o--;
    out[o] = '\0';
    return 0;
}
