/* wisp-httpd - an HTTP/1.1 server on wisp: "Hello, World!" on /, and the
 * files under --root.
 *
 *   wisp-httpd [--host ADDR] [--port P] [--workers N] [--backend io_uring|epoll]
 *              [--idle-timeout-ms MS] [--max-conns N] [--root DIR]
 *
 * One task per connection (as wisp-echo, whose header argues it), a state
 * machine around one I/O operation at a time:
 *
 *   RECV  bytes into `in` (16 KiB).  Every complete request in it is
 *         answered into `out` (64 KiB) in order, so pipelined requests cost
 *         one recv and one send per batch; a request body (Content-Length
 *         or chunked) is read and skipped.
 *   SEND  `out`, when no complete request is left in `in` (or `out` is
 *         nearly full, or a file's bytes come next).
 *   READ  a file's next bytes into `out` behind its response header, from
 *         the I/O layer (io_uring, or on epoll RWF_NOWAIT and the blocking
 *         pool): the file is opened with openat2(RESOLVE_BENEATH |
 *         RESOLVE_NO_SYMLINKS) below --root after the path was decoded and
 *         ".." refused, so neither "..", an encoded escape nor a symlink
 *         leaves the root.  The open is a direct system call, as nginx's:
 *         a path lookup in the dentry cache takes microseconds.
 *   CLOSE through the I/O layer.
 *
 * Errors: 400 malformed, 431 header block over 8 KiB or 100 fields, 505 a
 * version other than HTTP/1.x, 501 a transfer coding other than chunked,
 * each followed by a close; 403/404/405/414 keep the connection.  HTTP/1.0
 * closes unless it asked for keep-alive; "Connection: close" closes after
 * the response.
 *
 * Timeouts: a connection gets --idle-timeout-ms (default 60 s) from its
 * start and again after each request it completes (and each send or body
 * bytes that make progress) to deliver its next request: an idle client,
 * or a slow one trickling a header, is closed when it runs out.  One sleep
 * per connection, moved lazily: when it fires before the deadline (which
 * moved on) it is re-armed, so a request costs no timer operation.
 *
 * --max-conns N: a connection over the limit gets a 503 (sent without
 * waiting) and is closed at once; the others are not slowed. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "http.h"

#define IN_SIZE 16384
#define OUT_SIZE 65536
#define OUT_LOW 1024 /* send before parsing on when less room than this is left */
#define HELLO "Hello, World!"

static wisp_runtime_t *rt;
static int root_fd = -1;
static uint64_t idle_ns = 60000ull * 1000000ull;
static struct srv_conns conns;

struct hconn {
    wisp_io_t io;
    wisp_sleep_t timer;
    wisp_buf_t *in, *out;
    int fd;
    int file_fd;                 /* a file being sent, or -1 */
    uint64_t file_off, file_left;
    uint64_t deadline;           /* the idle deadline; the timer may be earlier */
    struct http_skip skip;       /* a request body being skipped */
    bool timer_armed;
    bool io_busy;                /* io polled and not READY: it owns its buffer
                                    (wisp/io.h, BUFFERS) until it completes */
    bool close_after;            /* close once out is sent */
    enum { H_RECV, H_SEND, H_READ, H_CLOSE, H_DONE } state;
};

/* ---- responses ---- */

/* "Date: ...\r\n", cached per thread and second. */
static _Thread_local struct {
    time_t sec;
    char line[48];
    size_t len;
} date_cache;

static const char *date_line(size_t *len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != date_cache.sec || !date_cache.len) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        date_cache.len = strftime(date_cache.line, sizeof date_cache.line,
                                  "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        date_cache.sec = ts.tv_sec;
    }
    *len = date_cache.len;
    return date_cache.line;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* Appends a response header (and body, if given) to out; the caller made
 * sure OUT_LOW bytes are free.  conn: 0 nothing, 1 "close", 2 "keep-alive". */
static void put_response(wisp_buf_t *out, int status, const char *ctype, uint64_t clen,
                         const char *body, int conn, bool allow)
{
    size_t dlen;
    const char *date = date_line(&dlen);
    char *p = out->data + out->len;
    size_t room = out->cap - out->len;
    int n = snprintf(p, room, "HTTP/1.1 %d %s\r\nServer: wisp\r\n%.*sContent-Type: %s\r\n"
                     "Content-Length: %llu\r\n%s%s\r\n",
                     status, reason(status), (int)dlen, date, ctype, (unsigned long long)clen,
                     conn == 1 ? "Connection: close\r\n" : conn == 2 ? "Connection: keep-alive\r\n" : "",
                     allow ? "Allow: GET, HEAD\r\n" : "");
    out->len += (size_t)n;
    if (body) {
        memcpy(out->data + out->len, body, (size_t)clen);
        out->len += (size_t)clen;
    }
}

static void put_error(struct hconn *c, int status, bool keep_alive, int minor, bool head)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, reason(status));
    int conn = !keep_alive ? 1 : minor == 0 ? 2 : 0;
    put_response(c->out, status, "text/plain", (uint64_t)n, head ? NULL : body, conn, status == 405);
    if (!keep_alive)
        c->close_after = true;
}

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/'))
        return "application/octet-stream";
    static const char *const map[][2] = {
        { ".html", "text/html" }, { ".htm", "text/html" }, { ".txt", "text/plain" },
        { ".css", "text/css" }, { ".js", "text/javascript" }, { ".json", "application/json" },
        { ".png", "image/png" }, { ".jpg", "image/jpeg" }, { ".jpeg", "image/jpeg" },
        { ".gif", "image/gif" }, { ".svg", "image/svg+xml" }, { ".ico", "image/x-icon" },
        { ".wasm", "application/wasm" }, { ".pdf", "application/pdf" },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcasecmp(dot, map[i][0]))
            return map[i][1];
    return "application/octet-stream";
}

/* Opens rel below the root: refuses symlinks anywhere in the path and any
 * escape.  A file descriptor, or minus an HTTP status. */
static int open_below_root(const char *rel, struct stat *st)
{
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, /* a FIFO must not block the open */
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, root_fd, rel, &how, sizeof how);
    if (fd < 0) {
        switch (errno) {
        case ENOENT: case ENOTDIR: case ENAMETOOLONG: return -404;
        case EMFILE: case ENFILE: case ENOMEM: return -500;
        default: return -403; /* ELOOP (a symlink), EXDEV (an escape), EACCES, ... */
        }
    }
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -403; /* a directory, a device, a FIFO */
    }
    return fd;
}

/* Answers one parsed request into c->out. */
static void answer(struct hconn *c, const struct http_req *req)
{
    bool head = req->method == M_HEAD;
    int conn = !req->keep_alive ? 1 : req->minor == 0 ? 2 : 0;
    if (!req->keep_alive)
        c->close_after = true;
    if (req->method == M_OTHER) {
        put_error(c, 405, req->keep_alive, req->minor, false);
        return;
    }
    char path[4096];
    int r = http_path(req->target, req->target_len, path, sizeof path);
    if (r < 0) {
        put_error(c, -r, req->keep_alive && r != -400, req->minor, head);
        return;
    }
    if (path[0] == '\0') {
        put_response(c->out, 200, "text/plain", sizeof HELLO - 1, head ? NULL : HELLO, conn, false);
        return;
    }
    if (root_fd < 0) {
        put_error(c, 404, req->keep_alive, req->minor, head);
        return;
    }
    struct stat st;
    int fd = open_below_root(path, &st);
    if (fd < 0) {
        put_error(c, -fd, req->keep_alive, req->minor, head);
        return;
    }
    put_response(c->out, 200, content_type(path), (uint64_t)st.st_size, NULL, conn, false);
    if (head || st.st_size == 0) {
        close(fd);
        return;
    }
    c->file_fd = fd;
    c->file_off = 0;
    c->file_left = (uint64_t)st.st_size;
}

/* ---- the connection ---- */

static void start_recv(struct hconn *c)
{
    wisp_buf_t *in = c->in;
    if (in->pos == in->len) {
        in->pos = in->len = 0;
    } else if (in->pos > 0) { /* keep the unparsed bytes, at the front */
        memmove(in->data, in->data + in->pos, in->len - in->pos);
        in->len -= in->pos;
        in->pos = 0;
    }
    c->state = H_RECV;
    wisp_io_recv(&c->io, c->fd, in, 0);
}

static void start_send(struct hconn *c)
{
    c->state = H_SEND;
    wisp_io_send(&c->io, c->fd, c->out, MSG_NOSIGNAL);
}

/* Drops the current operation.  One that runs takes its buffer along
 * (wisp/io.h, BUFFERS: wisp frees it once the kernel is done with it). */
static void io_abandon(struct hconn *c)
{
    if (c->io_busy) {
        if (c->state == H_RECV)
            c->in = NULL;
        else if (c->state == H_SEND || c->state == H_READ)
            c->out = NULL;
        c->io_busy = false;
    }
    wisp_io_drop(&c->io);
}

static void start_close(struct hconn *c)
{
    c->state = H_CLOSE;
    srv_close_start(&c->io, &c->fd);
}

/* Decides the next operation from what is buffered, answering the complete
 * requests in `in` on the way. */
static void drive(struct hconn *c)
{
    wisp_buf_t *in = c->in, *out = c->out;
    for (;;) {
        if (c->file_fd >= 0) {
            size_t room = OUT_SIZE - out->len;
            if (room < 4096 && out->len > 0) {
                start_send(c);
                return;
            }
            uint64_t want = c->file_left < room ? c->file_left : room;
            out->cap = out->len + (size_t)want; /* read no more than the header announced */
            c->state = H_READ;
            wisp_io_read(&c->io, c->file_fd, out, c->file_off);
            return;
        }
        if (c->close_after) {
            if (out->len > out->pos)
                start_send(c);
            else
                start_close(c);
            return;
        }
        if (OUT_SIZE - out->len < OUT_LOW) {
            start_send(c);
            return;
        }
        const char *p = in->data + in->pos;
        size_t n = in->len - in->pos;
        if (c->skip.state != SKIP_DONE) {
            long k = http_skip(&c->skip, p, n);
            if (k < 0) {
                put_error(c, 400, false, 1, false);
                continue;
            }
            in->pos += (size_t)k;
            if (c->skip.state != SKIP_DONE) {
                if (out->len > out->pos)
                    start_send(c);
                else
                    start_recv(c);
                return;
            }
            continue;
        }
        struct http_req req;
        long h = n ? http_parse(p, n, &req) : 0;
        if (h == 0) {
            /* More bytes needed: the parser refuses a header over its limit
             * (431) before it could fill `in`, so there is room for them. */
            if (out->len > out->pos)
                start_send(c);
            else
                start_recv(c);
            return;
        }
        if (h < 0) {
            put_error(c, (int)-h, false, 1, false);
            continue;
        }
        in->pos += (size_t)h;
        c->deadline = wisp_now_ns() + idle_ns;
        http_skip_start(&c->skip, &req);
        answer(c, &req);
    }
}

static wisp_poll_t hconn_poll(void *p, wisp_context_t *cx, void **out)
{
    struct hconn *c = p;
    for (;;) {
        if (c->state == H_DONE) {
            *out = NULL;
            return WISP_READY;
        }
        if (wisp_io_poll(&c->io, cx, NULL) == WISP_PENDING) {
            c->io_busy = true;
            if (!idle_ns || c->state == H_CLOSE || c->state == H_READ)
                return WISP_PENDING;
            /* The idle deadline. */
            if (!c->timer_armed) {
                wisp_sleep_until_init(&c->timer, c->deadline);
                c->timer_armed = true;
            }
            while (wisp_sleep_poll(&c->timer, cx, NULL) == WISP_READY) {
                if (wisp_now_ns() >= c->deadline) {
                    io_abandon(c); /* cancels the recv or send */
                    start_close(c);
                    break;
                }
                wisp_sleep_reset(&c->timer, c->deadline); /* it moved on: re-arm */
            }
            if (c->state != H_CLOSE)
                return WISP_PENDING;
            continue;
        }
        c->io_busy = false;
        int64_t r = wisp_io_result(&c->io);
        wisp_io_drop(&c->io);
        switch (c->state) {
        case H_RECV:
            if (r <= 0) { /* the end of the stream (with nothing left to answer), or an error */
                start_close(c);
                continue;
            }
            if (c->skip.state != SKIP_DONE)
                c->deadline = wisp_now_ns() + idle_ns; /* a body arriving is progress */
            drive(c);
            continue;
        case H_SEND:
            if (r < 0) {
                start_close(c);
                continue;
            }
            c->deadline = wisp_now_ns() + idle_ns;
            if (c->out->pos < c->out->len) {
                start_send(c);
                continue;
            }
            c->out->pos = c->out->len = 0;
            drive(c);
            continue;
        case H_READ:
            c->out->cap = OUT_SIZE;
            if (r <= 0) { /* an error, or the file shrank: the response cannot be completed */
                close(c->file_fd);
                c->file_fd = -1;
                start_close(c);
                continue;
            }
            c->file_off += (uint64_t)r;
            c->file_left -= (uint64_t)r;
            if (c->file_left == 0) {
                close(c->file_fd);
                c->file_fd = -1;
            }
            start_send(c);
            continue;
        case H_CLOSE:
            c->state = H_DONE;
            continue;
        case H_DONE:
            break;
        }
    }
}

static void hconn_drop(void *p)
{
    struct hconn *c = p;
    io_abandon(c);
    if (c->timer_armed)
        wisp_sleep_drop(&c->timer);
    if (c->fd >= 0)
        close(c->fd);
    if (c->file_fd >= 0)
        close(c->file_fd);
    wisp_buf_free(c->in);
    wisp_buf_free(c->out);
    srv_conn_leave(&conns);
}

static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nServer: wisp\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 24\r\nConnection: close\r\n\r\n503 Service Unavailable\n";

static void on_conn(int fd, void *arg)
{
    (void)arg;
    if (!srv_conn_admit(&conns)) {
        /* Refused: one non-blocking send, then close.  No task, no wait. */
        ssize_t w = send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w;
        close(fd);
        return;
    }
    struct hconn c;
    memset(&c, 0, sizeof c);
    c.fd = fd;
    c.file_fd = -1;
    c.skip.state = SKIP_DONE;
    c.in = wisp_buf_new(IN_SIZE);
    c.out = wisp_buf_new(OUT_SIZE);
    if (!c.in || !c.out)
        goto fail;
    srv_nodelay(fd);
    c.deadline = wisp_now_ns() + idle_ns;
    start_recv(&c);
    if (wisp_spawn(rt, hconn_poll, &c, sizeof c, hconn_drop, NULL) == 0)
        return;
fail:
    wisp_buf_free(c.in);
    wisp_buf_free(c.out);
    close(fd);
    srv_conn_leave(&conns);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: wisp-httpd [--host ADDR] [--port P] [--workers N] [--backend io_uring|epoll]\n"
            "                  [--idle-timeout-ms MS] [--max-conns N] [--root DIR]\n"
            "An HTTP/1.1 server on wisp: GET and HEAD of \"Hello, World!\" on / and of the\n"
            "files under DIR; keep-alive, pipelining, HTTP/1.0.\n"
            "  --host ADDR          IPv4 or IPv6 address to listen on (default 127.0.0.1)\n"
            "  --port P             port (default 8080; 0: any free port)\n"
            "  --workers N          worker threads (default: one per CPU)\n"
            "  --backend B          io_uring or epoll (default: io_uring where allowed)\n"
            "  --idle-timeout-ms MS close a connection that takes longer than MS to send its\n"
            "                       next request (default 60000; 0: never)\n"
            "  --max-conns N        connections at most; more get 503 (default 0: no limit)\n"
            "  --root DIR           serve the files below DIR (no symlinks, no escapes)\n"
            "Prints 'listening ADDR:PORT backend=B workers=N' when ready; stops on SIGINT/SIGTERM.\n");
}

int main(int argc, char **argv)
{
    srv_prog = "wisp-httpd";
    struct srv_opts o = { .host = "127.0.0.1", .port = 8080 };
    const char *root = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (srv_common_opt(argc, argv, &i, &o)) {
            continue;
        } else if (!strcmp(a, "--idle-timeout-ms")) {
            idle_ns = srv_parse_u64(a, srv_optarg(argc, argv, &i), 0, 86400000ull) * 1000000ull;
        } else if (!strcmp(a, "--max-conns")) {
            conns.max = srv_parse_u64(a, srv_optarg(argc, argv, &i), 0, 10000000);
        } else if (!strcmp(a, "--root")) {
            root = srv_optarg(argc, argv, &i);
        } else {
            usage(stderr);
            srv_die(2, "unknown argument '%s'", a);
        }
    }
    if (root) {
        root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
            srv_die(2, "--root %s: %s", root, strerror(errno));
    }
    srv_serve(&o, on_conn, &rt);
    if (root_fd >= 0)
        close(root_fd);
    return 0;
}
