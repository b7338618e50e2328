/* wisp-load - a closed-loop load generator for wisp-echo, wisp-httpd and
 * their peers, on wisp: one task per connection.
 *
 *   wisp-load --port P [--proto http|echo] [--conns C] [--requests N]
 *             [--seconds S] [--pipeline K] [--size B] [--path PATH]
 *             [--workers W] [--backend io_uring|epoll] [--host ADDR]
 *
 * Each connection sends K requests at once (HTTP GETs of PATH, or echo
 * messages of B bytes), waits for the K responses, records each one's
 * latency (from the send of its batch to its arrival) and sends the next
 * batch, until N requests were sent in all or S seconds passed, whichever
 * comes first.  It prints one line:
 *
 *   load proto=P conns=C pipeline=K requests=R errors=E seconds=T rps=X
 *        p50_us=A p99_us=B p999_us=C max_us=D
 *
 * (one line; rps counts the responses received), from a log-linear
 * histogram (64 sub-buckets per power of two: 1.6 % resolution) each
 * connection keeps on its own and which are summed at the end.  An error
 * is a refused or reset connection, a wrong echo, an HTTP response that is
 * not 2xx or cannot be parsed; the connection then reconnects.
 *
 * It loads loopback addresses only (127.0.0.0/8, ::1, localhost), and
 * refuses any other: it is a benchmark tool, not a way to flood a host. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common.h"

/* ---- the histogram ---- */

#define H_SUB 64
#define H_MAX_EXP 40 /* values up to 2^41 ns (36 min) are kept apart */
#define H_BUCKETS ((H_MAX_EXP - 5) * H_SUB + H_SUB)

static unsigned h_index(uint64_t v)
{
    if (v < H_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    if (e > H_MAX_EXP)
        return H_BUCKETS - 1;
    return (e - 5) * H_SUB + (unsigned)((v >> (e - 6)) & (H_SUB - 1));
}

/* The middle of bucket i's range. */
static uint64_t h_value(unsigned i)
{
    if (i < H_SUB)
        return i;
    unsigned e = i / H_SUB + 5, sub = i % H_SUB;
    uint64_t width = 1ull << (e - 6);
    return ((uint64_t)(H_SUB + sub) << (e - 6)) + width / 2;
}

/* ---- the load ---- */

struct load {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool http;
    unsigned pipeline;
    size_t size;            /* echo message bytes */
    char *batch;            /* pipeline requests back to back */
    size_t req_len;         /* one request's bytes */
    uint64_t max_requests;  /* 0: no bound */
    uint64_t deadline;      /* srv_now_ns() */
    _Atomic uint64_t issued;
    pthread_mutex_t lock;   /* the totals below */
    uint64_t hist[H_BUCKETS];
    uint64_t done, errors, connect_errors;
    int last_connect_error;
};

static struct load L;

struct client {
    wisp_io_t io;
    wisp_sleep_t stop;  /* the load's deadline: an operation still waiting then is dropped */
    wisp_buf_t *out, *in;
    uint64_t *hist;
    uint64_t done, errors;
    int fd;
    unsigned batch, got; /* requests in the batch in flight; responses received */
    uint64_t t0;
    bool connected;
    bool stop_armed;
    bool io_busy;       /* io polled and not READY: it owns its buffer (wisp/io.h, BUFFERS) */
    enum { S_CONNECT, S_SEND, S_RECV, S_CLOSE, S_END } state;
    bool reconnect;     /* after S_CLOSE: connect again (an error), or end */
};

/* Claims the next batch: how many requests (0: the load is over). */
static unsigned claim(void)
{
    if (srv_now_ns() >= L.deadline)
        return 0;
    if (!L.max_requests)
        return L.pipeline;
    /* relaxed: a counter; every claim takes distinct numbers. */
    uint64_t old = atomic_fetch_add_explicit(&L.issued, L.pipeline, memory_order_relaxed);
    if (old >= L.max_requests)
        return 0;
    uint64_t left = L.max_requests - old;
    return left < L.pipeline ? (unsigned)left : L.pipeline;
}

static void record(struct client *c, uint64_t now)
{
    c->hist[h_index(now - c->t0)]++;
    c->done++;
    c->got++;
}

/* An HTTP response complete at p[0..n): its length, 0 if more is needed,
 * -1 if it cannot be parsed; *ok: a 2xx status. */
static long http_response(const char *p, size_t n, bool *ok)
{
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end)
        return n > 65536 ? -1 : 0;
    size_t hlen = (size_t)(end - p) + 4;
    if (hlen < 12 || memcmp(p, "HTTP/1.", 7) != 0)
        return -1;
    *ok = p[9] == '2';
    long clen = -1;
    for (const char *l = memchr(p, '\n', hlen) + 1; l < end; l = memchr(l, '\n', (size_t)(end - l) + 2) + 1) {
        if (strncasecmp(l, "content-length:", 15) == 0) {
            char *e;
            clen = strtol(l + 15, &e, 10);
            if (clen < 0)
                return -1;
        }
    }
    if (clen < 0)
        return -1; /* only framed responses: every server here sends Content-Length */
    if (n < hlen + (size_t)clen)
        return 0;
    return (long)(hlen + (size_t)clen);
}

/* Takes the complete responses in c->in; false on a bad one. */
static bool take_responses(struct client *c)
{
    wisp_buf_t *b = c->in;
    uint64_t now = srv_now_ns();
    size_t off = 0;
    while (c->got < c->batch) {
        const char *p = b->data + off;
        size_t n = b->len - off;
        if (L.http) {
            bool ok = false;
            long r = http_response(p, n, &ok);
            if (r < 0)
                return false;
            if (r == 0)
                break;
            if (!ok)
                c->errors++;
            off += (size_t)r;
        } else {
            if (n < L.size)
                break;
            if (memcmp(p, L.batch + (size_t)c->got * L.size, L.size) != 0)
                return false;
            off += L.size;
        }
        record(c, now);
    }
    memmove(b->data, b->data + off, b->len - off);
    b->len -= off;
    return c->got < c->batch || b->len == 0; /* nothing unasked for */
}

/* Drops the current operation.  One that runs takes its buffer along
 * (wisp/io.h, BUFFERS). */
static void io_abandon(struct client *c)
{
    if (c->io_busy) {
        if (c->state == S_SEND)
            c->out = NULL;
        else if (c->state == S_RECV)
            c->in = NULL;
        c->io_busy = false;
    }
    wisp_io_drop(&c->io);
}

static void start_close(struct client *c, bool reconnect)
{
    c->reconnect = reconnect;
    c->state = S_CLOSE;
    c->connected = false;
    srv_close_start(&c->io, &c->fd);
}

static bool start_connect(struct client *c)
{
    c->fd = socket(L.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return false;
    c->state = S_CONNECT;
    wisp_io_connect(&c->io, c->fd, (struct sockaddr *)&L.addr, L.addrlen);
    return true;
}

static void start_batch(struct client *c)
{
    c->batch = claim();
    if (!c->batch) {
        start_close(c, false);
        return;
    }
    c->got = 0;
    c->out->pos = 0;
    c->out->len = (size_t)c->batch * L.req_len;
    memcpy(c->out->data, L.batch, c->out->len);
    c->in->pos = c->in->len = 0;
    c->t0 = srv_now_ns();
    c->state = S_SEND;
    wisp_io_send(&c->io, c->fd, c->out, MSG_NOSIGNAL);
}

static wisp_poll_t client_poll(void *p, wisp_context_t *cx, void **out)
{
    struct client *c = p;
    for (;;) {
        if (c->state == S_END) {
            *out = NULL;
            return WISP_READY;
        }
        if (wisp_io_poll(&c->io, cx, NULL) == WISP_PENDING) {
            c->io_busy = true;
            if (c->state == S_CLOSE)
                return WISP_PENDING;
            /* A server that stops answering does not hold the load past its
             * deadline: the batch in flight is abandoned (not counted). */
            if (!c->stop_armed) {
                wisp_sleep_until_init(&c->stop, L.deadline);
                c->stop_armed = true;
            }
            if (wisp_sleep_poll(&c->stop, cx, NULL) == WISP_PENDING)
                return WISP_PENDING;
            io_abandon(c);
            start_close(c, false);
            continue;
        }
        c->io_busy = false;
        int64_t r = wisp_io_result(&c->io);
        wisp_io_drop(&c->io);
        switch (c->state) {
        case S_CONNECT:
            if (r < 0) {
                pthread_mutex_lock(&L.lock);
                L.connect_errors++;
                L.last_connect_error = (int)-r;
                pthread_mutex_unlock(&L.lock);
                c->errors++;
                start_close(c, false); /* a refused connection ends this client */
                continue;
            }
            c->connected = true;
            srv_nodelay(c->fd);
            start_batch(c);
            continue;
        case S_SEND:
            if (r < 0) {
                c->errors++;
                start_close(c, true);
                continue;
            }
            if (c->out->pos < c->out->len) {
                wisp_io_send(&c->io, c->fd, c->out, MSG_NOSIGNAL);
                continue;
            }
            c->state = S_RECV;
            wisp_io_recv(&c->io, c->fd, c->in, 0);
            continue;
        case S_RECV:
            if (r <= 0 || !take_responses(c)) {
                c->errors++;
                start_close(c, true);
                continue;
            }
            if (c->got == c->batch) {
                start_batch(c);
                continue;
            }
            if (c->in->len == c->in->cap) { /* a response larger than the buffer */
                c->errors++;
                start_close(c, true);
                continue;
            }
            wisp_io_recv(&c->io, c->fd, c->in, 0);
            continue;
        case S_CLOSE:
            if (c->reconnect && srv_now_ns() < L.deadline && start_connect(c))
                continue;
            c->state = S_END;
            continue;
        case S_END:
            break;
        }
    }
}

static void client_drop(void *p)
{
    struct client *c = p;
    io_abandon(c);
    if (c->stop_armed)
        wisp_sleep_drop(&c->stop);
    if (c->fd >= 0)
        close(c->fd);
    pthread_mutex_lock(&L.lock);
    for (unsigned i = 0; i < H_BUCKETS; i++)
        L.hist[i] += c->hist[i];
    L.done += c->done;
    L.errors += c->errors;
    pthread_mutex_unlock(&L.lock);
    free(c->hist);
    wisp_buf_free(c->out);
    wisp_buf_free(c->in);
}

static double percentile_us(double q)
{
    uint64_t target = (uint64_t)ceil(q * (double)L.done), seen = 0;
    if (target == 0)
        target = 1;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += L.hist[i];
        if (seen >= target)
            return (double)h_value(i) / 1000.0;
    }
    return 0;
}

static double max_us(void)
{
    for (unsigned i = H_BUCKETS; i-- > 0;)
        if (L.hist[i])
            return (double)h_value(i) / 1000.0;
    return 0;
}

/* ---- arguments ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: wisp-load --port P [options]\n"
            "A closed-loop load generator for loopback servers (HTTP/1.1 or echo).\n"
            "  --host ADDR     loopback address of the server (default 127.0.0.1;\n"
            "                  any other address is refused)\n"
            "  --port P        the server's port (required)\n"
            "  --proto P       http (GET requests) or echo (default http)\n"
            "  --conns C       connections (default 64)\n"
            "  --requests N    stop after N requests in all (default: no bound)\n"
            "  --seconds S     stop after S seconds, decimals allowed (default 10)\n"
            "  --pipeline K    requests sent at once on a connection (default 1)\n"
            "  --size B        echo message bytes (default 64)\n"
            "  --path PATH     HTTP request path (default /)\n"
            "  --workers W     wisp worker threads (default 1)\n"
            "  --backend B     io_uring or epoll (default: io_uring where allowed)\n"
            "Prints: load proto= conns= pipeline= requests= errors= seconds= rps= p50_us= p99_us=\n"
            "p999_us= max_us= (latency of each request from its batch's send to its response).\n"
            "Exit 0, or 1 when no request completed (the server could not be reached).\n");
}

static void set_loopback(const char *host, unsigned port)
{
    memset(&L.addr, 0, sizeof L.addr);
    struct sockaddr_in *in4 = (struct sockaddr_in *)&L.addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&L.addr;
    if (!strcmp(host, "localhost"))
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        if ((ntohl(in4->sin_addr.s_addr) >> 24) != 127)
            srv_die(2, "refusing %s: wisp-load loads loopback addresses only", host);
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        L.addrlen = sizeof *in4;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            srv_die(2, "refusing %s: wisp-load loads loopback addresses only", host);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        L.addrlen = sizeof *in6;
    } else {
        srv_die(2, "refusing '%s': not a loopback address (127.x.y.z, ::1, localhost)", host);
    }
}

int main(int argc, char **argv)
{
    srv_prog = "wisp-load";
    struct srv_opts o = { .host = "127.0.0.1", .workers = 1 };
    const char *path = "/", *proto = "http";
    unsigned conns = 64;
    double seconds = 10;
    L.pipeline = 1;
    L.size = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (srv_common_opt(argc, argv, &i, &o)) {
            continue;
        } else if (!strcmp(a, "--proto")) {
            proto = srv_optarg(argc, argv, &i);
            if (strcmp(proto, "http") && strcmp(proto, "echo"))
                srv_die(2, "--proto: '%s' is not http or echo", proto);
        } else if (!strcmp(a, "--conns")) {
            conns = (unsigned)srv_parse_u64(a, srv_optarg(argc, argv, &i), 1, 100000);
        } else if (!strcmp(a, "--requests")) {
            L.max_requests = srv_parse_u64(a, srv_optarg(argc, argv, &i), 1, UINT64_MAX / 2);
        } else if (!strcmp(a, "--seconds")) {
            const char *v = srv_optarg(argc, argv, &i);
            char *e;
            seconds = strtod(v, &e);
            if (*e || !(seconds > 0 && seconds <= 86400))
                srv_die(2, "--seconds: '%s' is not a number of seconds in (0, 86400]", v);
        } else if (!strcmp(a, "--pipeline")) {
            L.pipeline = (unsigned)srv_parse_u64(a, srv_optarg(argc, argv, &i), 1, 1024);
        } else if (!strcmp(a, "--size")) {
            L.size = srv_parse_u64(a, srv_optarg(argc, argv, &i), 1, 1 << 20);
        } else if (!strcmp(a, "--path")) {
            path = srv_optarg(argc, argv, &i);
            if (path[0] != '/' || strpbrk(path, " \r\n") || strlen(path) > 4096)
                srv_die(2, "--path: '%s' is not an absolute path without spaces", path);
        } else {
            usage(stderr);
            srv_die(2, "unknown argument '%s'", a);
        }
    }
    if (o.port == 0) {
        usage(stderr);
        srv_die(2, "--port is required (1..65535)");
    }
    set_loopback(o.host, o.port);
    L.http = !strcmp(proto, "http");

    /* The batch: pipeline requests back to back. */
    char req[4200];
    if (L.http)
        L.req_len = (size_t)snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%u\r\n\r\n", path,
                                     o.host, o.port);
    else
        L.req_len = L.size;
    L.batch = malloc(L.req_len * L.pipeline);
    if (!L.batch)
        srv_die(1, "out of memory");
    for (unsigned k = 0; k < L.pipeline; k++) {
        char *dst = L.batch + (size_t)k * L.req_len;
        if (L.http)
            memcpy(dst, req, L.req_len);
        else
            for (size_t j = 0; j < L.size; j++)
                dst[j] = (char)('a' + (k * 7 + j) % 26);
    }
    pthread_mutex_init(&L.lock, NULL);

    signal(SIGPIPE, SIG_IGN);
    wisp_runtime_t *rt = srv_runtime(o.workers, o.backend);
    size_t in_cap = L.http ? 65536 : L.size * L.pipeline + 4096;
    wisp_join_t **joins = calloc(conns, sizeof *joins);
    if (!joins)
        srv_die(1, "out of memory");
    uint64_t t_start = srv_now_ns();
    L.deadline = t_start + (uint64_t)(seconds * 1e9);
    unsigned started = 0;
    for (unsigned i = 0; i < conns; i++) {
        struct client c;
        memset(&c, 0, sizeof c);
        c.fd = -1;
        c.out = wisp_buf_new(L.req_len * L.pipeline);
        c.in = wisp_buf_new(in_cap);
        c.hist = calloc(H_BUCKETS, sizeof *c.hist);
        if (!c.out || !c.in || !c.hist || !start_connect(&c)) {
            wisp_buf_free(c.out);
            wisp_buf_free(c.in);
            free(c.hist);
            if (c.fd >= 0)
                close(c.fd);
            srv_die(1, "cannot set up connection %u: %s", i, strerror(errno ? errno : ENOMEM));
        }
        int r = wisp_spawn(rt, client_poll, &c, sizeof c, client_drop, &joins[i]);
        if (r < 0) {
            client_drop(&c);
            srv_die(1, "cannot spawn: %s", strerror(-r));
        }
        started++;
    }
    for (unsigned i = 0; i < started; i++)
        wisp_join(joins[i], NULL);
    uint64_t t_end = srv_now_ns();
    wisp_runtime_free(rt);
    free(joins);

    double secs = (double)(t_end - t_start) / 1e9;
    printf("load proto=%s conns=%u pipeline=%u requests=%" PRIu64 " errors=%" PRIu64
           " seconds=%.3f rps=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n",
           proto, conns, L.pipeline, L.done, L.errors, secs, (double)L.done / secs,
           percentile_us(0.50), percentile_us(0.99), percentile_us(0.999), max_us());
    if (L.done == 0) {
        if (L.connect_errors)
            srv_die(1, "cannot connect to %s port %u: %s", o.host, o.port, strerror(L.last_connect_error));
        srv_die(1, "no request completed");
    }
    free(L.batch);
    return 0;
}
