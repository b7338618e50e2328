/* servers/http.h - wisp-httpd's HTTP/1.x request parsing and the skipping
 * of request bodies: pure functions on bytes, no I/O (http.c).
 *
 * Limits: the request line and header block together at most
 * HTTP_MAX_HEADER bytes (else 431), at most HTTP_MAX_FIELDS header fields
 * (else 431); a chunk-size or trailer line at most 4096 bytes (else the
 * body is malformed). */
#ifndef WISP_SERVERS_HTTP_H
#define WISP_SERVERS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADER 8192
#define HTTP_MAX_FIELDS 100

enum http_method { M_GET, M_HEAD, M_OTHER };
enum http_body { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };

struct http_req {
    enum http_method method;
    int minor;               /* HTTP/1.minor */
    bool keep_alive;         /* after the version's default and Connection */
    enum http_body body;
    uint64_t content_length; /* BODY_LENGTH */
    const char *target;      /* in the caller's bytes, not terminated */
    size_t target_len;
};

/* Parses the request at p[0..n).  Returns its header's length (the body,
 * if any, follows), 0 when more bytes are needed, or minus an HTTP status:
 * -400 malformed, -431 header too large, -505 a version other than 1.x,
 * -501 a transfer coding other than chunked. */
long http_parse(const char *p, size_t n, struct http_req *req);

/* Skipping a body. */
struct http_skip {
    enum http_body kind;
    enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER, SKIP_DONE } state;
    uint64_t left;           /* bytes of the length or the chunk */
    unsigned trailers;
};
void http_skip_start(struct http_skip *s, const struct http_req *req);
/* Consumes body bytes from p[0..n): returns how many (all of n, or up to
 * the body's end), or -1 for a malformed chunked body.  s->state is
 * SKIP_DONE once the body ended. */
long http_skip(struct http_skip *s, const char *p, size_t n);

/* Decodes the path of a request target (origin form "/a/b?q", or absolute
 * form "http://host/a/b") into out (size outsz) as a path relative to the
 * root, without a leading slash, "." and empty segments removed: "" for
 * the root.  -400 for a malformed target or escape (or a decoded NUL),
 * -403 for a ".." segment (also encoded), -414 when it does not fit. */
int http_path(const char *target, size_t len, char *out, size_t outsz);

#endif
