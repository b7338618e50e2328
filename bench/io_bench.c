/* io_bench.c - wisp-bench's I/O and timer workloads, each written the way
 * a user would, beside the same shape for Tokio in bench/peers/tokio:
 *
 *   socket_ping_pong  two tasks bounce 64 bytes n times over a Unix stream
 *                     socketpair; ns per round trip
 *   file_read         64 tasks read n 4 KiB blocks in all at random aligned
 *                     offsets of a 256 MiB file in the page cache
 *                     (WISP_BENCH_FILE, made if missing); ns per read
 *   timer_fire        n tasks, task i sleeps 1 + i % 10 ms; wall / n
 *   timer_cancel      one task arms n sleeps 1 to 10 s ahead, polls each
 *                     once, then drops them all; ns per timer
 *   idle_timers       n sleeps armed 60 s ahead, the runtime idle for 3 s;
 *                     CPU ms per second
 *   ring_wake         a worker asleep in its ring (a recv in flight that
 *                     never completes) woken n times by an outside spawn;
 *                     ns from the spawn to the task's poll (run it with
 *                     --threads 1; WISP_IO_WAKE=futex|eventfd picks how the
 *                     ring is woken, WISP_IO=epoll measures epoll's)
 *   park_wake         the same without the recv: the worker sleeps on its
 *                     futex (the reference) */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define MS 1000000ull
#define SEC 1000000000ull

/* ---- socket_ping_pong -------------------------------------------------------------- */

#define MSG 64

enum { PP_SEND, PP_SENDING, PP_RECV, PP_RECVING };

struct pp_side {
    wisp_io_t io;
    wisp_buf_t *buf;
    int fd;
    bool starts;       /* sends first */
    int state;
    long left;         /* round trips to go */
    struct countdown *done;
};

static wisp_poll_t pp_poll(void *f, wisp_context_t *cx, void **out)
{
    struct pp_side *p = f;
    for (;;) {
        switch (p->state) {
        case PP_SEND:
            p->buf->pos = 0;
            p->buf->len = MSG;
            wisp_io_send(&p->io, p->fd, p->buf, 0);
            p->state = PP_SENDING;
            /* fall through */
        case PP_SENDING: {
            if (wisp_io_poll(&p->io, cx, NULL) == WISP_PENDING)
                return WISP_PENDING;
            int64_t r = wisp_io_result(&p->io);
            wisp_io_drop(&p->io);
            if (r <= 0)
                die("send", r ? (int)r : -EPIPE);
            if (p->buf->pos < MSG) { /* the rest */
                wisp_io_send(&p->io, p->fd, p->buf, 0);
                continue;
            }
            if (!p->starts && --p->left == 0) {
                countdown_hit(p->done);
                *out = NULL;
                return WISP_READY;
            }
            p->state = PP_RECV;
            continue;
        }
        case PP_RECV:
            p->buf->pos = p->buf->len = 0;
            wisp_io_recv(&p->io, p->fd, p->buf, 0);
            p->state = PP_RECVING;
            /* fall through */
        case PP_RECVING: {
            if (wisp_io_poll(&p->io, cx, NULL) == WISP_PENDING)
                return WISP_PENDING;
            int64_t r = wisp_io_result(&p->io);
            wisp_io_drop(&p->io);
            if (r <= 0)
                die("recv", r ? (int)r : -EPIPE);
            if (p->buf->len < MSG) {
                wisp_io_recv(&p->io, p->fd, p->buf, 0);
                continue;
            }
            if (p->starts && --p->left == 0) {
                countdown_hit(p->done);
                *out = NULL;
                return WISP_READY;
            }
            p->state = PP_SEND;
            continue;
        }
        }
    }
}

struct pp_root {
    wisp_runtime_t *rt;
    struct pp_side *a, *b;
};

static wisp_poll_t pp_root_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    struct pp_root *r = f;
    int err;
    if ((err = wisp_spawn(r->rt, pp_poll, r->b, sizeof(*r->b), NULL, NULL)) ||
        (err = wisp_spawn(r->rt, pp_poll, r->a, sizeof(*r->a), NULL, NULL)))
        die("spawn", err);
    *out = NULL;
    return WISP_READY;
}

double bench_socket_ping_pong(wisp_runtime_t *rt, long n, long *ops)
{
    *ops = n;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        die("socketpair", -errno);
    struct countdown done = { .left = 2 };
    latch_init(&done.latch);
    struct pp_side a = { .buf = wisp_buf_new(MSG), .fd = sv[0], .starts = true, .left = n,
                         .done = &done };
    struct pp_side b = { .buf = wisp_buf_new(MSG), .fd = sv[1], .starts = false, .left = n,
                         .done = &done, .state = PP_RECV };
    if (!a.buf || !b.buf)
        die("buffer", -ENOMEM);
    /* Both spawned from a task on a worker, as a server spawns the tasks
     * of its connections. */
    struct pp_root root = { rt, &a, &b };
    double t0 = now();
    int err = wisp_spawn(rt, pp_root_poll, &root, sizeof(root), NULL, NULL);
    if (err)
        die("spawn", err);
    latch_wait(&done.latch);
    double t = now() - t0;
    latch_destroy(&done.latch);
    wisp_buf_free(a.buf);
    wisp_buf_free(b.buf);
    close(sv[0]);
    close(sv[1]);
    return t;
}

/* ---- file_read ------------------------------------------------------------------------ */

#define FILE_SIZE (256ull << 20)
#define BLOCK 4096
#define READERS 64

/* The file: WISP_BENCH_FILE, written (pseudo-random bytes) if it is missing
 * or short; then read once so that it is in the page cache. */
static int bench_file(void)
{
    const char *path = getenv("WISP_BENCH_FILE");
    char fallback[] = "/tmp/wisp-bench-file";
    if (!path)
        path = fallback;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        die("open WISP_BENCH_FILE", -errno);
    struct stat st;
    char *chunk = malloc(1 << 20);
    if (!chunk || fstat(fd, &st))
        die("file", -ENOMEM);
    if ((uint64_t)st.st_size < FILE_SIZE) {
        uint64_t x = 88172645463325252ull;
        for (uint64_t off = 0; off < FILE_SIZE; off += 1 << 20) {
            for (size_t i = 0; i < (1 << 20) / 8; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                memcpy(chunk + i * 8, &x, 8);
            }
            if (pwrite(fd, chunk, 1 << 20, (off_t)off) != 1 << 20)
                die("write WISP_BENCH_FILE", -errno);
        }
    }
    for (uint64_t off = 0; off < FILE_SIZE; off += 1 << 20)
        if (pread(fd, chunk, 1 << 20, (off_t)off) < 0)
            die("read WISP_BENCH_FILE", -errno);
    free(chunk);
    return fd;
}

struct reader {
    wisp_io_t io;
    wisp_buf_t *buf;
    int fd;
    bool started;
    long left;
    uint64_t rng;
    struct countdown *done;
};

static wisp_poll_t reader_poll(void *f, wisp_context_t *cx, void **out)
{
    struct reader *r = f;
    for (;;) {
        if (!r->started) {
            if (r->left == 0) {
                countdown_hit(r->done);
                *out = NULL;
                return WISP_READY;
            }
            r->rng ^= r->rng << 13, r->rng ^= r->rng >> 7, r->rng ^= r->rng << 17;
            uint64_t off = r->rng % (FILE_SIZE / BLOCK) * BLOCK;
            r->buf->len = 0;
            wisp_io_read(&r->io, r->fd, r->buf, off);
            r->started = true;
        }
        if (wisp_io_poll(&r->io, cx, NULL) == WISP_PENDING)
            return WISP_PENDING;
        int64_t n = wisp_io_result(&r->io);
        wisp_io_drop(&r->io);
        if (n != BLOCK)
            die("read", n < 0 ? (int)n : -EIO);
        r->started = false;
        r->left--;
    }
}

double bench_file_read(wisp_runtime_t *rt, long n, long *ops)
{
    *ops = n;
    int fd = bench_file();
    struct countdown done = { .left = READERS };
    latch_init(&done.latch);
    wisp_buf_t *bufs[READERS];
    double t0 = now();
    for (int i = 0; i < READERS; i++) {
        bufs[i] = wisp_buf_new(BLOCK);
        if (!bufs[i])
            die("buffer", -ENOMEM);
        struct reader r = { .buf = bufs[i], .fd = fd, .left = n / READERS + (i < n % READERS),
                            .rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1), .done = &done };
        int err = wisp_spawn(rt, reader_poll, &r, sizeof(r), NULL, NULL);
        if (err)
            die("spawn", err);
    }
    latch_wait(&done.latch);
    double t = now() - t0;
    latch_destroy(&done.latch);
    for (int i = 0; i < READERS; i++)
        wisp_buf_free(bufs[i]);
    close(fd);
    return t;
}

/* ---- timer_fire ------------------------------------------------------------------------- */

struct sleeper {
    wisp_sleep_t sleep;
    struct countdown *done;
};

static wisp_poll_t sleeper_poll(void *f, wisp_context_t *cx, void **out)
{
    struct sleeper *s = f;
    void *st;
    if (wisp_sleep_poll(&s->sleep, cx, &st) == WISP_PENDING)
        return WISP_PENDING;
    if (st)
        die("sleep", (int)(intptr_t)st);
    wisp_sleep_drop(&s->sleep);
    countdown_hit(s->done);
    *out = NULL;
    return WISP_READY;
}

static void sleeper_drop(void *f)
{
    wisp_sleep_drop(&((struct sleeper *)f)->sleep);
}

/* Spawns the sleepers from a task on a worker, as a server would. */
struct sleeper_spawner {
    wisp_runtime_t *rt;
    long n;
    struct countdown *done;
};

static wisp_poll_t sleeper_spawner_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    struct sleeper_spawner *sp = f;
    for (long i = 0; i < sp->n; i++) {
        struct sleeper s = { .done = sp->done };
        wisp_sleep_init(&s.sleep, (1 + (uint64_t)(i % 10)) * MS);
        int err = wisp_spawn(sp->rt, sleeper_poll, &s, sizeof(s), sleeper_drop, NULL);
        if (err)
            die("spawn", err);
    }
    *out = NULL;
    return WISP_READY;
}

double bench_timer_fire(wisp_runtime_t *rt, long n, long *ops)
{
    *ops = n;
    struct countdown done = { .left = n };
    latch_init(&done.latch);
    struct sleeper_spawner sp = { rt, n, &done };
    double t0 = now();
    int err = wisp_spawn(rt, sleeper_spawner_poll, &sp, sizeof(sp), NULL, NULL);
    if (err)
        die("spawn", err);
    latch_wait(&done.latch);
    double t = now() - t0;
    latch_destroy(&done.latch);
    return t;
}

/* ---- timer_cancel ------------------------------------------------------------------------- */

struct canceller {
    wisp_sleep_t *sleeps;
    long n;
    double seconds;
    struct latch *done;
};

static wisp_poll_t canceller_poll(void *f, wisp_context_t *cx, void **out)
{
    struct canceller *c = *(struct canceller **)f;
    double t0 = now();
    for (long i = 0; i < c->n; i++) {
        wisp_sleep_init(&c->sleeps[i], (1 + (uint64_t)(i % 10)) * SEC);
        if (wisp_sleep_poll(&c->sleeps[i], cx, NULL) != WISP_PENDING)
            die("sleep fired early", -EINVAL);
    }
    for (long i = 0; i < c->n; i++)
        wisp_sleep_drop(&c->sleeps[i]);
    c->seconds = now() - t0;
    latch_set(c->done);
    *out = NULL;
    return WISP_READY;
}

double bench_timer_cancel(wisp_runtime_t *rt, long n, long *ops)
{
    *ops = n;
    struct latch done;
    latch_init(&done);
    wisp_sleep_t *sleeps = malloc((size_t)n * sizeof(*sleeps));
    if (!sleeps)
        die("sleeps", -ENOMEM);
    struct canceller c = { sleeps, n, 0, &done }, *cp = &c;
    /* the task's future is a pointer to c: it writes its time there */
    int err = wisp_spawn(rt, canceller_poll, &cp, sizeof(cp), NULL, NULL);
    if (err)
        die("spawn", err);
    latch_wait(&done);
    latch_destroy(&done);
    free(sleeps);
    return c.seconds;
}

/* ---- idle_timers ---------------------------------------------------------------------------- */

static _Atomic long armed;

struct idle_sleeper {
    wisp_sleep_t sleep;
    bool polled;
};

static wisp_poll_t idle_sleeper_poll(void *f, wisp_context_t *cx, void **out)
{
    struct idle_sleeper *s = f;
    wisp_poll_t r = wisp_sleep_poll(&s->sleep, cx, out);
    if (!s->polled) {
        s->polled = true;
        atomic_fetch_add(&armed, 1);
    }
    return r;
}

static void idle_sleeper_drop(void *f)
{
    wisp_sleep_drop(&((struct idle_sleeper *)f)->sleep);
}

double bench_idle_timers(wisp_runtime_t *rt, long n, long *ops, double *extra)
{
    *ops = 1;
    atomic_store(&armed, 0);
    for (long i = 0; i < n; i++) {
        struct idle_sleeper s = { .polled = false };
        wisp_sleep_init(&s.sleep, 60 * SEC);
        int err = wisp_spawn(rt, idle_sleeper_poll, &s, sizeof(s), idle_sleeper_drop, NULL);
        if (err)
            die("spawn", err);
    }
    while (atomic_load(&armed) < n)
        usleep(1000);
    usleep(100000); /* settle: searching workers park */
    double c0 = cpu_seconds(), t0 = now();
    sleep(3);
    double cpu = cpu_seconds() - c0, t = now() - t0;
    *extra = cpu * 1e3 / t;
    return t;
}

/* ---- ring_wake ------------------------------------------------------------------------------ */

struct holder {
    wisp_io_t io;
    wisp_buf_t *buf;
    int fd;
    bool started;
};

/* Keeps an operation in flight, so an idle worker sleeps in its ring. */
static wisp_poll_t holder_poll(void *f, wisp_context_t *cx, void **out)
{
    struct holder *h = f;
    if (!h->started) {
        h->started = true;
        wisp_io_recv(&h->io, h->fd, h->buf, 0);
    }
    if (wisp_io_poll(&h->io, cx, NULL) == WISP_PENDING)
        return WISP_PENDING;
    *out = NULL;
    return WISP_READY; /* the socket closed: the end */
}

static void holder_drop(void *f)
{
    wisp_io_drop(&((struct holder *)f)->io);
}

static _Atomic double woke_at;

static wisp_poll_t stamp_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)f, (void)cx;
    atomic_store(&woke_at, now());
    *out = NULL;
    return WISP_READY;
}

static double wake_latency(wisp_runtime_t *rt, long n, long *ops, bool in_ring)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        die("socketpair", -errno);
    struct holder h = { .buf = wisp_buf_new(64), .fd = sv[0] };
    if (!h.buf)
        die("buf", -ENOMEM);
    wisp_join_t *hj = NULL;
    int err;
    if (in_ring && (err = wisp_spawn(rt, holder_poll, &h, sizeof(h), holder_drop, &hj)))
        die("spawn", err);
    double total = 0;
    for (long i = 0; i < n; i++) {
        usleep(300); /* past the worker's search: it sleeps */
        atomic_store(&woke_at, 0.0);
        double t0 = now();
        if ((err = wisp_spawn(rt, stamp_poll, NULL, 0, NULL, NULL)))
            die("spawn", err);
        double t1;
        while ((t1 = atomic_load(&woke_at)) == 0.0)
            ;
        total += t1 - t0;
    }
    close(sv[1]); /* the holder's recv ends */
    if (hj && (err = wisp_join(hj, NULL)))
        die("join", err);
    close(sv[0]);
    wisp_buf_free(h.buf);
    *ops = n;
    return total;
}

double bench_ring_wake(wisp_runtime_t *rt, long n, long *ops)
{
    return wake_latency(rt, n, ops, true);
}

double bench_park_wake(wisp_runtime_t *rt, long n, long *ops)
{
    return wake_latency(rt, n, ops, false);
}
