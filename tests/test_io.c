/* test_io.c - the I/O futures (wisp/io.h), every test on both backends
 * (the loop index: 0 io_uring, 1 epoll), each operation both from a task
 * on a worker and from wisp_block_on.
 *
 * Run as `test_io --seccomp-child` (the seccomp test does, in a forked
 * child that refuses io_uring with a seccomp filter), the whole suite runs
 * with the automatic backend choice and checks that it is epoll. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <wisp/io.h>
#include <wisp/time.h>

#include "helpers.h"

#define MS 1000000ull

/* The backend under test: WISP_IO_URING, WISP_IO_EPOLL, or AUTO (the
 * seccomp child, which expects epoll). */
static unsigned backend;
static bool auto_expect_epoll;

/* Sets the backend for loop index i; false if it cannot run here. */
static bool use_backend(int i)
{
    if (auto_expect_epoll) {
        backend = WISP_IO_AUTO;
        return true;
    }
    backend = i == 0 ? WISP_IO_URING : WISP_IO_EPOLL;
    if (backend == WISP_IO_URING) {
        wisp_runtime_t *rt = NULL;
        wisp_runtime_config_t cfg = { .workers = 1, .io = WISP_IO_URING };
        int r = wisp_runtime_new(&rt, &cfg);
        if (r == -ENOSYS) {
            fprintf(stderr, "io_uring unavailable here: its half of the test is skipped\n");
            return false;
        }
        ck_assert_int_eq(r, 0);
        wisp_runtime_free(rt);
    }
    return true;
}

static wisp_runtime_t *io_rt(unsigned workers, unsigned ring_entries)
{
    wisp_runtime_t *rt = NULL;
    wisp_runtime_config_t cfg = { .workers = workers, .io = backend, .ring_entries = ring_entries };
    ck_assert_int_eq(wisp_runtime_new(&rt, &cfg), 0);
    if (auto_expect_epoll)
        ck_assert_uint_eq(wisp_io_backend(rt), WISP_IO_EPOLL);
    else
        ck_assert_uint_eq(wisp_io_backend(rt), backend);
    return rt;
}

/* ---- running one operation ------------------------------------------------------ */

struct op_task {
    wisp_io_t io;
    int64_t res;
};

static wisp_poll_t op_task_poll(void *f, wisp_context_t *cx, void **out)
{
    struct op_task *t = f;
    if (wisp_io_poll(&t->io, cx, NULL) == WISP_PENDING)
        return WISP_PENDING;
    t->res = wisp_io_result(&t->io);
    wisp_io_drop(&t->io);
    *out = (void *)(intptr_t)t->res;
    return WISP_READY;
}

static void op_task_drop(void *f)
{
    wisp_io_drop(&((struct op_task *)f)->io);
}

/* Runs the prepared (not started) operation in a task on a worker. */
static int64_t on_worker(wisp_runtime_t *rt, const wisp_io_t *io)
{
    struct op_task t = { .io = *io };
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, op_task_poll, &t, sizeof(t), op_task_drop, &j), 0);
    void *out;
    ck_assert_int_eq(wisp_join(j, &out), 0);
    return (intptr_t)out;
}

/* Runs it with wisp_block_on (submitted through a worker's remote queue). */
static int64_t on_block(wisp_runtime_t *rt, wisp_io_t *io)
{
    void *out;
    ck_assert_int_eq(wisp_block_on(rt, wisp_io_poll, io, &out), 0);
    int64_t r = wisp_io_result(io);
    ck_assert_int_eq((intptr_t)out, r);
    wisp_io_drop(io);
    return r;
}

static int64_t run(wisp_runtime_t *rt, wisp_io_t *io, int mode)
{
    return mode ? on_block(rt, io) : on_worker(rt, io);
}

static void buf_reset(wisp_buf_t *b)
{
    b->pos = b->len = 0;
}

/* Descriptors open in this process. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* ---- sockets -------------------------------------------------------------------- */

START_TEST(send_and_recv_on_a_socketpair)
{
    if (!use_backend(_i))
        return;
    wisp_runtime_t *rt = io_rt(2, 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    wisp_buf_t *out = wisp_buf_new(64), *in = wisp_buf_new(64);
    for (int mode = 0; mode < 2; mode++) {
        buf_reset(out);
        buf_reset(in);
        memcpy(out->data, "hello, wisp", 11);
        out->len = 11;
        wisp_io_t io;
        wisp_io_send(&io, sv[0], out, 0);
        ck_assert_int_eq(run(rt, &io, mode), 11);
        ck_assert_uint_eq(out->pos, 11);
        wisp_io_recv(&io, sv[1], in, 0);
        ck_assert_int_eq(run(rt, &io, mode), 11);
        ck_assert_uint_eq(in->len, 11);
        ck_assert(!memcmp(in->data, "hello, wisp", 11));
    }
    /* a recv that waits: the data comes later, from another thread */
    for (int mode = 0; mode < 2; mode++) {
        buf_reset(in);
        struct op_task t;
        wisp_io_recv(&t.io, sv[1], in, 0);
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, op_task_poll, &t, sizeof(t), op_task_drop, &j), 0);
        usleep(20000);
        ck_assert(!wisp_join_is_finished(j));
        ck_assert_int_eq(write(sv[0], "late", 4), 4);
        void *res;
        ck_assert_int_eq(wisp_join(j, &res), 0);
        ck_assert_int_eq((intptr_t)res, 4);
        ck_assert(!memcmp(in->data, "late", 4));
        (void)mode;
    }
    /* the end of the stream */
    close(sv[0]);
    buf_reset(in);
    wisp_io_t io;
    wisp_io_recv(&io, sv[1], in, 0);
    ck_assert_int_eq(run(rt, &io, 1), 0);
    close(sv[1]);
    wisp_buf_free(out);
    wisp_buf_free(in);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

START_TEST(sendmsg_and_recvmsg_scatter_gather)
{
    if (!use_backend(_i))
        return;
    wisp_runtime_t *rt = io_rt(2, 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    wisp_buf_t *a = wisp_buf_new(8), *b = wisp_buf_new(8), *c = wisp_buf_new(4), *d = wisp_buf_new(16);
    for (int mode = 0; mode < 2; mode++) {
        buf_reset(a);
        buf_reset(b);
        buf_reset(c);
        buf_reset(d);
        memcpy(a->data, "abcd", 4);
        a->len = 4;
        memcpy(b->data, "efghij", 6);
        b->len = 6;
        wisp_buf_t *out[2] = { a, b }, *in[2] = { c, d };
        wisp_io_t io;
        wisp_io_sendmsg(&io, sv[0], out, 2, NULL, 0, 0);
        ck_assert_int_eq(run(rt, &io, mode), 10);
        ck_assert_uint_eq(a->pos, 4);
        ck_assert_uint_eq(b->pos, 6);
        wisp_io_recvmsg(&io, sv[1], in, 2, NULL, NULL, 0);
        ck_assert_int_eq(run(rt, &io, mode), 10);
        ck_assert_uint_eq(c->len, 4);
        ck_assert_uint_eq(d->len, 6);
        ck_assert(!memcmp(c->data, "abcd", 4));
        ck_assert(!memcmp(d->data, "efghij", 6));
    }
    close(sv[0]);
    close(sv[1]);
    wisp_buf_free(a);
    wisp_buf_free(b);
    wisp_buf_free(c);
    wisp_buf_free(d);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

static int tcp_listener(struct sockaddr_in *addr)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l, 0);
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(l, (struct sockaddr *)addr, sizeof(*addr)), 0);
    socklen_t len = sizeof(*addr);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)addr, &len), 0);
    ck_assert_int_eq(listen(l, 1024), 0);
    return l;
}

START_TEST(accept_and_connect_over_tcp)
{
    if (!use_backend(_i))
        return;
    wisp_runtime_t *rt = io_rt(2, 0);
    struct sockaddr_in addr;
    int l = tcp_listener(&addr);
    for (int mode = 0; mode < 2; mode++) {
        /* the connect from a task, the accept from here */
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct op_task t;
        wisp_io_connect(&t.io, c, (struct sockaddr *)&addr, sizeof(addr));
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, op_task_poll, &t, sizeof(t), op_task_drop, &j), 0);
        struct sockaddr_in peer;
        socklen_t plen = sizeof(peer);
        wisp_io_t io;
        wisp_io_accept(&io, l, (struct sockaddr *)&peer, &plen);
        int s = (int)run(rt, &io, mode);
        ck_assert_int_ge(s, 0);
        ck_assert_uint_eq(plen, sizeof(peer));
        ck_assert_uint_eq(peer.sin_family, AF_INET);
        ck_assert_int_ne(fcntl(s, F_GETFD) & FD_CLOEXEC, 0);
        void *res;
        ck_assert_int_eq(wisp_join(j, &res), 0);
        ck_assert_int_eq((intptr_t)res, 0);
        /* bytes both ways */
        wisp_buf_t *b = wisp_buf_new(16);
        memcpy(b->data, "ping", 4);
        b->len = 4;
        wisp_io_send(&io, c, b, 0);
        ck_assert_int_eq(run(rt, &io, mode), 4);
        buf_reset(b);
        wisp_io_recv(&io, s, b, 0);
        ck_assert_int_eq(run(rt, &io, mode), 4);
        ck_assert(!memcmp(b->data, "ping", 4));
        wisp_buf_free(b);
        wisp_io_close(&io, s);
        ck_assert_int_eq(run(rt, &io, mode), 0);
        wisp_io_close(&io, c);
        ck_assert_int_eq(run(rt, &io, mode), 0);
        ck_assert_int_eq(fcntl(s, F_GETFD), -1);
    }
    /* a refused connection */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    close(l);
    wisp_io_t io;
    wisp_io_connect(&io, c, (struct sockaddr *)&addr, sizeof(addr));
    ck_assert_int_eq(run(rt, &io, 0), -ECONNREFUSED);
    close(c);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* accept_multi: connections made in bursts larger than the queue (the op
 * pauses and resumes); every one is delivered exactly once. */
struct acceptor {
    wisp_io_t io;
    int listener;
    long want;
    _Atomic long *got;
    int *fds;
};

static wisp_poll_t acceptor_poll(void *f, wisp_context_t *cx, void **out)
{
    struct acceptor *a = f;
    void *r;
    while (atomic_load(a->got) < a->want) {
        if (wisp_io_poll(&a->io, cx, &r) == WISP_PENDING)
            return WISP_PENDING;
        long fd = (intptr_t)r;
        ck_assert_int_eq(wisp_io_result(&a->io), fd); /* each result, both ways */
        if (fd < 0) {
            *out = r;
            return WISP_READY;
        }
        a->fds[atomic_load(a->got)] = (int)fd;
        atomic_fetch_add(a->got, 1);
    }
    wisp_io_drop(&a->io);
    *out = NULL;
    return WISP_READY;
}

static void acceptor_drop(void *f)
{
    wisp_io_drop(&((struct acceptor *)f)->io);
}

START_TEST(accept_multi_delivers_every_connection)
{
    if (!use_backend(_i))
        return;
    wisp_runtime_t *rt = io_rt(2, 0);
    struct sockaddr_in addr;
    int l = tcp_listener(&addr);
    enum { N = 700 };
    int *fds = calloc(N, sizeof(int)), *clients = calloc(N, sizeof(int));
    _Atomic long got = 0;
    struct acceptor a = { .listener = l, .want = N, .got = &got, .fds = fds };
    wisp_io_accept_multi(&a.io, l);
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, acceptor_poll, &a, sizeof(a), acceptor_drop, &j), 0);
    for (int i = 0; i < N; i++) {
        clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(clients[i], (struct sockaddr *)&addr, sizeof(addr)), 0);
    }
    void *res;
    ck_assert_int_eq(wisp_join(j, &res), 0);
    ck_assert_ptr_null(res);
    ck_assert_int_eq(atomic_load(&got), N);
    /* each accepted socket is a distinct live descriptor */
    for (int i = 0; i < N; i++) {
        ck_assert_int_ge(fcntl(fds[i], F_GETFD), 0);
        close(fds[i]);
        close(clients[i]);
    }
    close(l);
    free(fds);
    free(clients);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* The end of a stream that arrives with the last bytes (the peer sends,
 * then shuts down at once) is seen: the recv after the short one returns
 * 0.  On epoll that recv must not wait for an edge (the peer's close came
 * in the same event as the bytes): io_epoll.c, QUIET.  Many rounds, on
 * one accepted (trusted) socket each. */
struct eof_reader {
    wisp_io_t io;
    wisp_buf_t *buf;
    int fd;
    int *fd_out;
    bool accepted;
};

static wisp_poll_t eof_reader_poll(void *f, wisp_context_t *cx, void **out)
{
    struct eof_reader *e = f;
    for (;;) {
        if (wisp_io_poll(&e->io, cx, NULL) == WISP_PENDING)
            return WISP_PENDING;
        int64_t r = wisp_io_result(&e->io);
        wisp_io_drop(&e->io);
        if (!e->accepted) {
            ck_assert_int_ge(r, 0);
            e->fd = *e->fd_out = (int)r;
            e->accepted = true;
        } else if (r <= 0) {
            *out = (void *)(intptr_t)(r < 0 ? r : (int64_t)e->buf->len);
            return WISP_READY;
        }
        wisp_io_recv(&e->io, e->fd, e->buf, 0);
    }
}

START_TEST(end_of_stream_with_the_last_bytes)
{
    if (!use_backend(_i))
        return;
    wisp_runtime_t *rt = io_rt(2, 0);
    struct sockaddr_in addr;
    int l = tcp_listener(&addr);
    for (int round = 0; round < 200; round++) {
        int fd = -1;
        struct eof_reader e = { .buf = wisp_buf_new(4096), .fd = -1, .fd_out = &fd };
        wisp_io_accept(&e.io, l, NULL, NULL);
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, eof_reader_poll, &e, sizeof(e), NULL, &j), 0);
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(c, (struct sockaddr *)&addr, sizeof(addr)), 0);
        if (round % 2)
            usleep(200); /* let the reader wait first (registered), or not */
        ck_assert_int_eq(send(c, "0123456789", 10, 0), 10);
        shutdown(c, SHUT_WR);
        void *res;
        ck_assert_int_eq(wisp_join(j, &res), 0);
        ck_assert_int_eq((intptr_t)res, 10);
        close(c);
        /* The task is done: its socket and buffer are ours again.  The
         * socket closed with close(2): its number, accepted again in a
         * later round, must be recognised as new (io_epoll.c, STALE
         * REGISTRATIONS). */
        close(fd);
        wisp_buf_free(e.buf);
    }
    close(l);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* recv_multi: a stream far larger than the provided buffers, read by a slow
 * consumer, arrives whole and in order. */
struct streamer {
    wisp_io_t io;
    wisp_buf_t *buf;
    size_t want, got;
    uint64_t rng;
    int bad;
    long polls;
};

static wisp_poll_t streamer_poll(void *f, wisp_context_t *cx, void **out)
{
    struct streamer *s = f;
    void *r;
    while (s->got < s->want) {
        if (wisp_io_poll(&s->io, cx, &r) == WISP_PENDING)
            return WISP_PENDING;
        long n = (intptr_t)r;
        ck_assert_int_eq(wisp_io_result(&s->io), n);
        if (n <= 0) {
            *out = r;
            return WISP_READY;
        }
        for (size_t i = 0; i < s->buf->len; i++)
            if ((unsigned char)s->buf->data[i] != (unsigned char)((s->got + i) * 7 % 251))
                s->bad++;
        s->got += s->buf->len;
        s->buf->len = 0;
        if (++s->polls % 16 == 0) { /* slow now and then: the queue fills */
            wisp_waker_t w = wisp_waker_clone(wisp_context_waker(cx));
            wisp_waker_wake(&w);
            return WISP_PENDING;
        }
    }
    wisp_io_drop(&s->io);
    *out = (void *)(intptr_t)s->got;
    return WISP_READY;
}

static void streamer_drop(void *f)
{
    wisp_io_drop(&((struct streamer *)f)->io);
}

struct writer_arg {
    int fd;
    size_t total;
};

static void *writer_thread(void *p)
{
    struct writer_arg *w = p;
    char chunk[65536];
    size_t sent = 0;
    while (sent < w->total) {
        size_t n = w->total - sent < sizeof(chunk) ? w->total - sent : sizeof(chunk);
        for (size_t i = 0; i < n; i++)
            chunk[i] = (char)((sent + i) * 7 % 251);
        size_t off = 0;
        while (off < n) {
            ssize_t k = write(w->fd, chunk + off, n - off);
            if (k <= 0)
                return NULL;
            off += (size_t)k;
        }
        sent += n;
    }
    return NULL;
}

START_TEST(recv_multi_streams_in_order)
{
    if (!use_backend(_i))
        return;
    wisp_runtime_t *rt = io_rt(2, 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    size_t total = 8u << 20;
    struct streamer s = { .buf = wisp_buf_new(3000), .want = total };
    wisp_io_recv_multi(&s.io, sv[1], s.buf);
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, streamer_poll, &s, sizeof(s), streamer_drop, &j), 0);
    pthread_t th;
    struct writer_arg w = { sv[0], total };
    pthread_create(&th, NULL, writer_thread, &w);
    void *res;
    ck_assert_int_eq(wisp_join(j, &res), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq((intptr_t)res, (intptr_t)total);
    close(sv[0]);
    close(sv[1]);
    wisp_buf_free(s.buf);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

START_TEST(poll_fd_and_timeout)
{
    if (!use_backend(_i))
        return;
    wisp_runtime_t *rt = io_rt(2, 0);
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    for (int mode = 0; mode < 2; mode++) {
        struct op_task t;
        wisp_io_poll_fd(&t.io, p[0], POLLIN);
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, op_task_poll, &t, sizeof(t), op_task_drop, &j), 0);
        usleep(10000);
        ck_assert(!wisp_join_is_finished(j));
        ck_assert_int_eq(write(p[1], "x", 1), 1);
        void *res;
        ck_assert_int_eq(wisp_join(j, &res), 0);
        ck_assert_int_ne((intptr_t)res & POLLIN, 0);
        char c;
        ck_assert_int_eq(read(p[0], &c, 1), 1);
        wisp_io_t io;
        uint64_t t0 = wisp_now_ns();
        wisp_io_timeout(&io, 20 * MS);
        ck_assert_int_eq(run(rt, &io, mode), 0);
        ck_assert_uint_ge(wisp_now_ns() - t0, 20 * MS);
    }
    close(p[0]);
    close(p[1]);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- files ---------------------------------------------------------------------- */

START_TEST(file_operations)
{
    if (!use_backend(_i))
        return;
    wisp_runtime_t *rt = io_rt(2, 0);
    char dir[] = "/tmp/wisp-io-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    int dfd = open(dir, O_DIRECTORY | O_CLOEXEC);
    for (int mode = 0; mode < 2; mode++) {
        wisp_io_t io;
        wisp_io_openat(&io, dfd, "f", O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
        int fd = (int)run(rt, &io, mode);
        ck_assert_int_ge(fd, 0);
        wisp_buf_t *b = wisp_buf_new(8192);
        memset(b->data, 'a', 8192);
        b->len = 8192;
        wisp_io_write(&io, fd, b, 4096);
        ck_assert_int_eq(run(rt, &io, mode), 8192);
        ck_assert_uint_eq(b->pos, 8192);
        wisp_buf_t *v1 = wisp_buf_new(3), *v2 = wisp_buf_new(5);
        memcpy(v1->data, "xyz", 3);
        v1->len = 3;
        memcpy(v2->data, "12345", 5);
        v2->len = 5;
        wisp_buf_t *vs[2] = { v1, v2 };
        wisp_io_writev(&io, fd, vs, 2, 0);
        ck_assert_int_eq(run(rt, &io, mode), 8);
        wisp_io_fsync(&io, fd, mode);
        ck_assert_int_eq(run(rt, &io, mode), 0);
        struct statx st;
        wisp_io_statx(&io, dfd, "f", 0, STATX_SIZE, &st);
        ck_assert_int_eq(run(rt, &io, mode), 0);
        ck_assert_uint_eq(st.stx_size, 4096 + 8192);
        buf_reset(b);
        wisp_io_read(&io, fd, b, 4000);
        ck_assert_int_eq(run(rt, &io, mode), 8192);
        ck_assert_int_eq(b->data[0], 0);
        ck_assert_int_eq(b->data[96], 'a');
        buf_reset(v1);
        buf_reset(v2);
        wisp_io_readv(&io, fd, vs, 2, 0);
        ck_assert_int_eq(run(rt, &io, mode), 8);
        ck_assert(!memcmp(v1->data, "xyz", 3) && !memcmp(v2->data, "12345", 5));
        /* at the end of the file */
        buf_reset(b);
        wisp_io_read(&io, fd, b, 1 << 20);
        ck_assert_int_eq(run(rt, &io, mode), 0);
        wisp_io_close(&io, fd);
        ck_assert_int_eq(run(rt, &io, mode), 0);
        wisp_io_openat(&io, dfd, "missing", O_RDONLY, 0);
        ck_assert_int_eq(run(rt, &io, mode), -ENOENT);
        wisp_buf_free(b);
        wisp_buf_free(v1);
        wisp_buf_free(v2);
    }
    /* a pipe at the current position: a stream */
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    wisp_buf_t *b = wisp_buf_new(16);
    struct op_task t;
    wisp_io_read(&t.io, p[0], b, WISP_IO_CURRENT);
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, op_task_poll, &t, sizeof(t), op_task_drop, &j), 0);
    usleep(10000);
    ck_assert_int_eq(write(p[1], "pipe", 4), 4);
    void *res;
    ck_assert_int_eq(wisp_join(j, &res), 0);
    ck_assert_int_eq((intptr_t)res, 4);
    ck_assert(!memcmp(b->data, "pipe", 4));
    close(p[0]);
    close(p[1]);
    wisp_buf_free(b);
    unlinkat(dfd, "f", 0);
    close(dfd);
    rmdir(dir);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- a caller's SQE -------------------------------------------------------------- */

static void prep_nop(struct io_uring_sqe *sqe, void *arg)
{
    (void)arg;
    io_uring_prep_nop(sqe);
}

START_TEST(generic_sqe)
{
    if (!use_backend(_i))
        return;
    wisp_runtime_t *rt = io_rt(2, 0);
    for (int mode = 0; mode < 2; mode++) {
        wisp_io_t io;
        wisp_io_sqe(&io, prep_nop, NULL, NULL);
        int64_t r = run(rt, &io, mode);
        if (wisp_io_backend(rt) == WISP_IO_URING)
            ck_assert_int_eq(r, 0);
        else
            ck_assert_int_eq(r, -ENOTSUP);
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- bad input ------------------------------------------------------------------- */

START_TEST(bad_input_is_refused_before_submission)
{
    if (!use_backend(_i))
        return;
    wisp_runtime_t *rt = io_rt(1, 0);
    wisp_io_t io;
    wisp_buf_t *b = wisp_buf_new(16);
    wisp_buf_t empty = { 0 };
    for (int mode = 0; mode < 2; mode++) {
        wisp_io_recv(&io, 0, NULL, 0);
        ck_assert_int_eq(run(rt, &io, mode), -EINVAL);
        wisp_io_send(&io, 0, b, 0); /* nothing to send: len == pos */
        ck_assert_int_eq(run(rt, &io, mode), -EINVAL);
        wisp_io_recv(&io, 0, &empty, 0);
        ck_assert_int_eq(run(rt, &io, mode), -EINVAL);
        b->len = 16; /* full: no room to receive */
        wisp_io_read(&io, 0, b, 0);
        ck_assert_int_eq(run(rt, &io, mode), -EINVAL);
        b->len = 0;
        wisp_buf_t huge = { .data = b->data, .cap = (size_t)1 << 50 };
        wisp_io_recv(&io, 0, &huge, 0);
        ck_assert_int_eq(run(rt, &io, mode), -EINVAL);
        wisp_io_readv(&io, 0, NULL, 1, 0);
        ck_assert_int_eq(run(rt, &io, mode), -EINVAL);
        wisp_buf_t *many[17] = { 0 };
        wisp_io_writev(&io, 0, many, 17, 0);
        ck_assert_int_eq(run(rt, &io, mode), -EINVAL);
        wisp_io_openat(&io, AT_FDCWD, NULL, O_RDONLY, 0);
        ck_assert_int_eq(run(rt, &io, mode), -EINVAL);
        wisp_io_connect(&io, 0, NULL, 0);
        ck_assert_int_eq(run(rt, &io, mode), -EINVAL);
        /* a bad descriptor: the kernel's answer */
        wisp_io_recv(&io, 999999, b, 0);
        ck_assert_int_eq(run(rt, &io, mode), -EBADF);
        wisp_io_read(&io, 999999, b, 0);
        ck_assert_int_eq(run(rt, &io, mode), -EBADF);
    }
    /* no runtime */
    wisp_io_recv(&io, 0, b, 0);
    void *out;
    ck_assert_int_eq(wisp_block_on(NULL, wisp_io_poll, &io, &out), 0);
    ck_assert_int_eq((intptr_t)out, -ENXIO);
    wisp_io_drop(&io);
    wisp_buf_free(b);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- cancellation --------------------------------------------------------------- */

/* A buffer whose release is counted. */
static _Atomic long released;
static void counted_release(wisp_buf_t *b)
{
    atomic_fetch_add(&released, 1);
    free(b);
}

static wisp_buf_t *counted_buf(size_t cap)
{
    wisp_buf_t *b = calloc(1, sizeof(*b) + cap);
    b->data = (char *)(b + 1);
    b->cap = cap;
    b->release = counted_release;
    return b;
}

/* Starts its operation and waits (signals that it started); records the
 * result if it took it. */
struct start_state {
    _Atomic long started, took;
    int64_t res;
};

struct starter {
    wisp_io_t io;
    struct start_state *st;
};

static wisp_poll_t starter_poll(void *f, wisp_context_t *cx, void **out)
{
    struct starter *s = f;
    void *r;
    wisp_poll_t p = wisp_io_poll(&s->io, cx, &r);
    atomic_fetch_add(&s->st->started, 1);
    if (p == WISP_PENDING)
        return WISP_PENDING;
    s->st->res = (intptr_t)r;
    atomic_store(&s->st->took, 1);
    *out = r;
    wisp_io_drop(&s->io);
    return WISP_READY;
}

static void starter_drop(void *f)
{
    wisp_io_drop(&((struct starter *)f)->io);
}

/* 10,000 operations submitted and then aborted at once or a little later,
 * some racing data or a connection that arrives meanwhile.  Exactly one
 * completion each: a buffer is released by wisp exactly when the task did
 * not take it back (and never while the kernel may still write it: ASan);
 * a descriptor an aborted accept or openat got is closed by wisp, one the
 * task took by the test: /proc/self/fd counts the same at the end. */
START_TEST(submit_then_abort_races)
{
    if (!use_backend(_i))
        return;
    int fds_before = open_fds();
    wisp_runtime_t *rt = io_rt(2, 0);
    struct sockaddr_in addr;
    int l = tcp_listener(&addr);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    char dir[] = "/tmp/wisp-io-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    int dfd = open(dir, O_DIRECTORY | O_CLOEXEC);
    close(openat(dfd, "f", O_CREAT | O_RDWR | O_CLOEXEC, 0600));
    long n = stress(10000), recvs = 0, took = 0;
    uint64_t rng = 42;
    atomic_store(&released, 0);
    for (long i = 0; i < n; i++) {
        struct start_state st = { 0 };
        struct starter s = { .st = &st };
        unsigned kind = (unsigned)(rng_next(&rng) % 4);
        wisp_buf_t *b = NULL;
        if (kind <= 1) {
            b = counted_buf(64);
            wisp_io_recv(&s.io, sv[1], b, 0);
            recvs++;
        } else if (kind == 2) {
            wisp_io_accept(&s.io, l, NULL, NULL);
        } else {
            wisp_io_openat(&s.io, dfd, "f", O_RDONLY | O_CLOEXEC, 0);
        }
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, starter_poll, &s, sizeof(s), starter_drop, &j), 0);
        unsigned when = (unsigned)(rng_next(&rng) % 4);
        if (when >= 1)
            while (!atomic_load(&st.started))
                sched_yield();
        int client = -1;
        if (when == 2 && kind <= 1)
            ck_assert_int_eq(write(sv[0], "x", 1), 1); /* races the abort */
        if (when == 2 && kind == 2) {
            client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            connect(client, (struct sockaddr *)&addr, sizeof(addr));
        }
        if (when == 3)
            usleep(50);
        wisp_join_abort(j);
        wisp_join(j, NULL);
        if (atomic_load(&st.took)) {
            took++;
            if (b)
                wisp_buf_free(b); /* back in our hands: ours to free */
            else if (st.res >= 0)
                close((int)st.res);
        } else if (!atomic_load(&st.started) && b) {
            wisp_buf_free(b); /* aborted before its first poll: never handed over */
        }
        if (client >= 0) {
            close(client);
            /* a connection nobody accepted waits in the backlog: take it */
            int fl = fcntl(l, F_GETFL);
            fcntl(l, F_SETFL, fl | O_NONBLOCK);
            int c;
            while ((c = accept4(l, NULL, NULL, SOCK_CLOEXEC)) >= 0)
                close(c);
            fcntl(l, F_SETFL, fl);
        }
        char drain[64];
        while (recv(sv[1], drain, sizeof(drain), MSG_DONTWAIT) > 0)
            ;
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    ck_assert_int_eq(atomic_load(&released), recvs);
    ck_assert_int_gt(took, 0);
    close(l);
    close(sv[0]);
    close(sv[1]);
    unlinkat(dfd, "f", 0);
    close(dfd);
    rmdir(dir);
    ck_assert_int_eq(open_fds(), fds_before);
}
END_TEST

/* A runtime freed with operations in flight: they are cancelled and their
 * buffers released, once each. */
START_TEST(shutdown_cancels_operations_in_flight)
{
    if (!use_backend(_i))
        return;
    int fds_before = open_fds();
    wisp_runtime_t *rt = io_rt(2, 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    atomic_store(&released, 0);
    enum { N = 100 };
    struct start_state st = { 0 };
    for (int i = 0; i < N; i++) {
        struct starter s = { .st = &st };
        wisp_io_recv(&s.io, sv[1], counted_buf(64), 0);
        ck_assert_int_eq(wisp_spawn(rt, starter_poll, &s, sizeof(s), starter_drop, NULL), 0);
    }
    wait_for(&st.started, N, 10);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    ck_assert_int_eq(atomic_load(&released), N);
    close(sv[0]);
    close(sv[1]);
    ck_assert_int_eq(open_fds(), fds_before);
}
END_TEST

/* ---- a tiny ring, stolen tasks, shutdown ----------------------------------------- */

/* Polls an array of operations (all started in its first poll) until every
 * one is done; counts results. */
struct many_ops {
    wisp_io_t *ios;
    int n, done;
    int64_t *res;
};

static wisp_poll_t many_ops_poll(void *f, wisp_context_t *cx, void **out)
{
    struct many_ops *m = f;
    for (int i = 0; i < m->n; i++) {
        if (m->res[i] != INT64_MIN)
            continue;
        if (wisp_io_poll(&m->ios[i], cx, NULL) == WISP_READY) {
            m->res[i] = wisp_io_result(&m->ios[i]);
            wisp_io_drop(&m->ios[i]);
            m->done++;
        }
    }
    if (m->done < m->n)
        return WISP_PENDING;
    *out = NULL;
    return WISP_READY;
}

static void many_ops_drop(void *f)
{
    struct many_ops *m = f;
    for (int i = 0; i < m->n; i++)
        wisp_io_drop(&m->ios[i]);
}

/* A ring of 8 entries (16 CQEs): 300 operations submitted at once and 300
 * completions arriving together overflow both queues; every one arrives. */
START_TEST(tiny_ring_overflows_and_loses_nothing)
{
    if (!use_backend(_i))
        return;
    wisp_runtime_t *rt = io_rt(1, 8);
    enum { N = 300 };
    wisp_io_t *ios = calloc(N, sizeof(*ios));
    int64_t *res = malloc(N * sizeof(*res));
    int (*sv)[2] = calloc(N, sizeof(*sv));
    wisp_buf_t **bufs = calloc(N, sizeof(*bufs));
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]), 0);
        bufs[i] = wisp_buf_new(8);
        wisp_io_recv(&ios[i], sv[i][1], bufs[i], 0);
        res[i] = INT64_MIN;
    }
    struct many_ops m = { ios, N, 0, res };
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, many_ops_poll, &m, sizeof(m), many_ops_drop, &j), 0);
    usleep(50000); /* all submitted, the worker asleep in its ring */
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(write(sv[i][0], "abc", 3), 3);
    ck_assert_int_eq(wisp_join(j, NULL), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(res[i], 3);
        ck_assert(!memcmp(bufs[i]->data, "abc", 3));
        wisp_buf_free(bufs[i]);
        close(sv[i][0]);
        close(sv[i][1]);
    }
    /* and 300 that complete inline, all prepared in one poll */
    if (wisp_io_backend(rt) == WISP_IO_URING) {
        for (int i = 0; i < N; i++) {
            wisp_io_sqe(&ios[i], prep_nop, NULL, NULL);
            res[i] = INT64_MIN;
        }
        struct many_ops m2 = { ios, N, 0, res };
        ck_assert_int_eq(wisp_spawn(rt, many_ops_poll, &m2, sizeof(m2), many_ops_drop, &j), 0);
        ck_assert_int_eq(wisp_join(j, NULL), 0);
        for (int i = 0; i < N; i++)
            ck_assert_int_eq(res[i], 0);
    }
    free(ios);
    free(res);
    free(sv);
    free(bufs);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* A task that starts a recv on one worker, is then run by the other, and
 * there either drops it (the cancel goes to the first worker's ring through
 * its queue) or waits for the data (the completion on the first ring wakes
 * it where it is). */
struct migrant {
    wisp_io_t io;
    int phase;
    bool drop_it;
    _Atomic long first_worker, second_worker, parked;
    wisp_waker_t waker;
    int64_t res;
};

static wisp_poll_t migrant_poll(void *f, wisp_context_t *cx, void **out)
{
    struct migrant *m = *(struct migrant **)f;
    if (m->phase == 0) {
        m->phase = 1;
        atomic_store(&m->first_worker, wisp_worker_index());
        ck_assert(wisp_io_poll(&m->io, cx, NULL) == WISP_PENDING);
        m->waker = wisp_waker_clone(wisp_context_waker(cx));
        atomic_store(&m->parked, 1);
        return WISP_PENDING;
    }
    if (m->phase == 1) {
        m->phase = 2;
        atomic_store(&m->second_worker, wisp_worker_index());
        if (m->drop_it) {
            wisp_io_drop(&m->io);
            *out = NULL;
            return WISP_READY;
        }
    }
    if (wisp_io_poll(&m->io, cx, NULL) == WISP_PENDING)
        return WISP_PENDING;
    m->res = wisp_io_result(&m->io);
    wisp_io_drop(&m->io);
    *out = NULL;
    return WISP_READY;
}

/* Blocks the worker it runs on for a while if that is worker `which`. */
struct blocker {
    int which;
    _Atomic long *blocked;
};

static wisp_poll_t blocker_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    struct blocker *b = f;
    if (wisp_worker_index() == b->which && !atomic_exchange(b->blocked, 1))
        usleep(300000);
    else
        usleep(2000); /* busy here, so that the other worker is woken too */
    *out = NULL;
    return WISP_READY;
}

START_TEST(stolen_task_cancels_and_completes_on_its_ring)
{
    if (!use_backend(_i))
        return;
    for (int variant = 0; variant < 2; variant++) {
        wisp_runtime_t *rt = io_rt(2, 0);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        atomic_store(&released, 0);
        struct migrant *m = calloc(1, sizeof(*m));
        m->drop_it = variant == 0;
        wisp_buf_t *b = counted_buf(16);
        wisp_io_recv(&m->io, sv[1], b, 0);
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, migrant_poll, &m, sizeof(m), NULL, &j), 0);
        wait_for(&m->parked, 1, 10);
        int first = (int)atomic_load(&m->first_worker);
        /* block the first worker, then wake the task: the other runs it */
        _Atomic long blocked = 0;
        struct blocker bl = { first, &blocked };
        for (int k = 0; k < 1000 && !atomic_load(&blocked); k++) {
            for (int x = 0; x < 4; x++)
                ck_assert_int_eq(wisp_spawn(rt, blocker_poll, &bl, sizeof(bl), NULL, NULL), 0);
            usleep(10000);
        }
        ck_assert(atomic_load(&blocked));
        wisp_waker_wake(&m->waker);
        if (!m->drop_it)
            ck_assert_int_eq(write(sv[0], "data", 4), 4);
        ck_assert_int_eq(wisp_join(j, NULL), 0);
        ck_assert_int_ne(atomic_load(&m->second_worker), first);
        if (m->drop_it) {
            ck_assert_int_eq(wisp_runtime_free(rt), 0);
            ck_assert_int_eq(atomic_load(&released), 1); /* by wisp, once */
        } else {
            ck_assert_int_eq(m->res, 4);
            ck_assert(!memcmp(b->data, "data", 4));
            ck_assert_int_eq(wisp_runtime_free(rt), 0);
            ck_assert_int_eq(atomic_load(&released), 0);
            wisp_buf_free(b);
        }
        close(sv[0]);
        close(sv[1]);
        free(m);
    }
}
END_TEST

/* An operation started while the runtime is being freed: -ESHUTDOWN. */
struct late {
    _Atomic long *freeing;
    int fd;
    wisp_buf_t *buf;
    int64_t *res;
};

static wisp_poll_t late_poll(void *f, wisp_context_t *cx, void **out)
{
    struct late *l = f;
    while (!atomic_load(l->freeing))
        usleep(1000);
    usleep(50000); /* wisp_runtime_free has set its flag and waits for us */
    wisp_io_t io;
    wisp_io_recv(&io, l->fd, l->buf, 0);
    wisp_io_poll(&io, cx, NULL);
    *l->res = wisp_io_result(&io);
    wisp_io_drop(&io);
    *out = NULL;
    return WISP_READY;
}

START_TEST(operation_during_shutdown_gets_eshutdown)
{
    if (!use_backend(_i))
        return;
    wisp_runtime_t *rt = io_rt(2, 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    _Atomic long freeing = 0;
    int64_t res = 0;
    wisp_buf_t *b = wisp_buf_new(16);
    struct late l = { &freeing, sv[1], b, &res };
    ck_assert_int_eq(wisp_spawn(rt, late_poll, &l, sizeof(l), NULL, NULL), 0);
    usleep(10000);
    atomic_store(&freeing, 1);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    ck_assert_int_eq(res, -ESHUTDOWN);
    wisp_buf_free(b);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* ---- the seccomp child -------------------------------------------------------------- */

START_TEST(io_uring_refused_by_seccomp_falls_back_to_epoll)
{
    if (auto_expect_epoll)
        return; /* we are the child */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct sock_filter filter[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        };
        struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
            _exit(3);
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
            _exit(4);
        self[n] = 0;
        setenv("CK_RUN_CASE", "io", 1);
        unsetenv("WISP_IO");
        execl(self, self, "--seccomp-child", (char *)NULL);
        _exit(5);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--seccomp-child")) {
        auto_expect_epoll = true;
        /* io_uring must really be refused here */
        struct io_uring ring;
        if (io_uring_queue_init(8, &ring, 0) != -EPERM)
            return 6;
    }
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    int loops = auto_expect_epoll ? 1 : 2;
    tcase_add_loop_test(tc, send_and_recv_on_a_socketpair, 0, loops);
    tcase_add_loop_test(tc, sendmsg_and_recvmsg_scatter_gather, 0, loops);
    tcase_add_loop_test(tc, accept_and_connect_over_tcp, 0, loops);
    tcase_add_loop_test(tc, accept_multi_delivers_every_connection, 0, loops);
    tcase_add_loop_test(tc, recv_multi_streams_in_order, 0, loops);
    tcase_add_loop_test(tc, end_of_stream_with_the_last_bytes, 0, loops);
    tcase_add_loop_test(tc, poll_fd_and_timeout, 0, loops);
    tcase_add_loop_test(tc, file_operations, 0, loops);
    tcase_add_loop_test(tc, generic_sqe, 0, loops);
    tcase_add_loop_test(tc, bad_input_is_refused_before_submission, 0, loops);
    tcase_add_loop_test(tc, submit_then_abort_races, 0, loops);
    tcase_add_loop_test(tc, shutdown_cancels_operations_in_flight, 0, loops);
    tcase_add_loop_test(tc, tiny_ring_overflows_and_loses_nothing, 0, loops);
    tcase_add_loop_test(tc, stolen_task_cancels_and_completes_on_its_ring, 0, loops);
    tcase_add_loop_test(tc, operation_during_shutdown_gets_eshutdown, 0, loops);
    tcase_add_test(tc, io_uring_refused_by_seccomp_falls_back_to_epoll);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
