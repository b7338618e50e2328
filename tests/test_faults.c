/* test_faults.c - the fault-injection sweep.  A realistic run of the
 * public API (runtime, tracing, fork-join from workers, outside spawns and
 * wakes, an abort, block_on, joins, tasks left pending at shutdown,
 * metrics) is repeated in a forked child with, in turn, every allocation
 * of lib/ failing (the Nth one only, and the Nth and all after it, for
 * every N the run reaches), every pthread_create and pthread_mutex_init
 * failing the same way, and futex waits returning as if a signal came.
 * Each run must end: with the documented error where a call failed, the
 * right results where calls succeeded, no crash, no hang, and no
 * allocation of the library left alive after wisp_runtime_free.  It links
 * wisp_faulty, the library built with WISP_FAULT_INJECTION (fault.h). */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <wisp/io.h>

#include "fault.h"

#define RUN_TIMEOUT_S 60
#define MAX_SWEEP 20000

/* Exit codes of a child run. */
#define RUN_OK 0
#define RUN_NO_FAULT 10 /* finished, but the planned call was never reached */

static void bad(const char *what, int code)
{
    fprintf(stderr, "fault run: %s (%d)\n", what, code);
    _exit(1);
}

/* ---- the workload ----------------------------------------------------------------- */

struct fib {
    wisp_runtime_t *rt;
    int n, phase;
    long a;
    wisp_join_t *ja, *jb;
};

static long fib_seq(int n)
{
    return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2);
}

/* Fork-join on the workers; a spawn refused for lack of memory computes
 * that half inline instead (what a careful user does). */
static wisp_poll_t fib_poll(void *f, wisp_context_t *cx, void **out)
{
    struct fib *fb = f;
    int st;
    void *v;
    if (fb->phase == 0) {
        if (fb->n < 2) {
            *out = (void *)(long)fb->n;
            return WISP_READY;
        }
        struct fib a = { fb->rt, fb->n - 1, 0, 0, NULL, NULL };
        struct fib b = { fb->rt, fb->n - 2, 0, 0, NULL, NULL };
        int err = wisp_spawn(fb->rt, fib_poll, &a, sizeof(a), NULL, &fb->ja);
        if (err && err != -ENOMEM)
            bad("spawn from a worker", err);
        err = wisp_spawn(fb->rt, fib_poll, &b, sizeof(b), NULL, &fb->jb);
        if (err && err != -ENOMEM)
            bad("spawn from a worker", err);
        fb->phase = 1;
    }
    if (fb->phase == 1) {
        if (fb->ja) {
            if (wisp_join_poll(fb->ja, cx, &st, &v) == WISP_PENDING)
                return WISP_PENDING;
            if (st)
                bad("join_poll", st);
            fb->a = (long)v;
        } else {
            fb->a = fib_seq(fb->n - 1);
        }
        fb->phase = 2;
    }
    long b;
    if (fb->jb) {
        if (wisp_join_poll(fb->jb, cx, &st, &v) == WISP_PENDING)
            return WISP_PENDING;
        if (st)
            bad("join_poll", st);
        b = (long)v;
    } else {
        b = fib_seq(fb->n - 2);
    }
    *out = (void *)(fb->a + b);
    return WISP_READY;
}

/* Pending until its signal is raised from outside. */
static wisp_poll_t waiting_poll(void *f, wisp_context_t *cx, void **out)
{
    struct signal_future *sf = f;
    return signal_future_poll(sf, cx, out);
}

static _Atomic long pending_drops;

static wisp_poll_t forever_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)f, (void)cx, (void)out;
    return WISP_PENDING;
}

static void count_drop(void *f)
{
    (void)f;
    atomic_fetch_add(&pending_drops, 1);
}

static wisp_poll_t yield_poll(void *f, wisp_context_t *cx, void **out)
{
    int *left = f;
    if ((*left)--)
        return wisp_yield(cx);
    *out = (void *)1;
    return WISP_READY;
}

/* Spawns onto the runtime from block_on, then joins what it spawned. */
struct spawner {
    wisp_runtime_t *rt;
    wisp_join_t *j;
    int state;
};

static wisp_poll_t spawner_poll(void *f, wisp_context_t *cx, void **out)
{
    struct spawner *s = f;
    if (s->state == 0) {
        int left = 3;
        int err = wisp_spawn(s->rt, yield_poll, &left, sizeof(left), NULL, &s->j);
        if (err && err != -ENOMEM)
            bad("spawn from block_on", err);
        s->state = 1;
    }
    if (s->j) {
        int st;
        void *v;
        if (wisp_join_poll(s->j, cx, &st, &v) == WISP_PENDING)
            return WISP_PENDING;
        if (st || v != (void *)1)
            bad("join_poll from block_on", st);
    }
    *out = NULL;
    return WISP_READY;
}

/* I/O: an operation in a task, or left in flight at shutdown.  A buffer
 * is wisp's from the first poll until READY, so the drop frees it only if
 * the operation never started or has ended. */
struct io_job {
    wisp_io_t io;
    wisp_buf_t *buf;
    bool started, ended;
};

static wisp_poll_t io_job_poll(void *f, wisp_context_t *cx, void **out)
{
    struct io_job *j = f;
    j->started = true;
    if (wisp_io_poll(&j->io, cx, NULL) == WISP_PENDING)
        return WISP_PENDING;
    *out = (void *)(intptr_t)wisp_io_result(&j->io);
    wisp_io_drop(&j->io);
    j->ended = true;
    return WISP_READY;
}

static void io_job_drop(void *f)
{
    struct io_job *j = f;
    wisp_io_drop(&j->io);
    if (!j->started || j->ended)
        wisp_buf_free(j->buf);
}

/* A recv in a task that a send from block_on satisfies, a file read from
 * block_on, and a recv still waiting when the runtime is freed. */
static void io_workload(wisp_runtime_t *rt, const int sv[2], const int quiet[2])
{
    wisp_buf_t *rb = wisp_buf_new(16), *sb = wisp_buf_new(16), *pb = wisp_buf_new(16);
    if (!rb || !sb || !pb) {
        wisp_buf_free(rb);
        wisp_buf_free(sb);
        wisp_buf_free(pb);
        return;
    }
    struct io_job rj = { .buf = rb };
    wisp_io_recv(&rj.io, sv[1], rb, 0);
    wisp_join_t *jr;
    int err = wisp_spawn(rt, io_job_poll, &rj, sizeof(rj), NULL, &jr);
    if (err && err != -ENOMEM)
        bad("spawn recv", err);
    memcpy(sb->data, "abc", 3);
    sb->len = 3;
    wisp_io_t sio;
    wisp_io_send(&sio, sv[0], sb, 0);
    void *v;
    err = wisp_block_on(rt, wisp_io_poll, &sio, &v);
    if (err && err != -ENOMEM)
        bad("block_on send", err);
    if (!err && (intptr_t)v != 3 && (intptr_t)v != -ENOMEM)
        bad("send", (int)(intptr_t)v);
    if (err || (intptr_t)v != 3) /* not sent: the recv still waits for it */
        if (write(sv[0], "abc", 3) != 3)
            bad("write", errno);
    wisp_io_drop(&sio);
    if (!jr) {
    } else if ((err = wisp_join(jr, &v)) != 0) {
        bad("join recv", err);
    } else if ((intptr_t)v != 3 && (intptr_t)v != -ENOMEM) {
        bad("recv", (int)(intptr_t)v);
    }
    /* a file, read from block_on: this program's first bytes */
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bad("open", errno);
    rb->len = 0;
    wisp_io_t fio;
    wisp_io_read(&fio, fd, rb, 0);
    err = wisp_block_on(rt, wisp_io_poll, &fio, &v);
    if (err && err != -ENOMEM)
        bad("block_on read", err);
    if (!err && (intptr_t)v != 16 && (intptr_t)v != -ENOMEM)
        bad("read", (int)(intptr_t)v);
    if (!err && (intptr_t)v == 16 && memcmp(rb->data, "\x7f" "ELF", 4))
        bad("read bytes", 0);
    wisp_io_drop(&fio);
    close(fd);
    wisp_buf_free(rb);
    wisp_buf_free(sb);
    /* left waiting: shutdown cancels it and releases pb */
    struct io_job pj = { .buf = pb };
    wisp_io_recv(&pj.io, quiet[1], pb, 0);
    err = wisp_spawn(rt, io_job_poll, &pj, sizeof(pj), io_job_drop, NULL);
    if (err && err != -ENOMEM)
        bad("spawn pending recv", err);
    if (err)
        wisp_buf_free(pb);
}

static void workload_on(unsigned io)
{
    wisp_runtime_t *rt;
    int err = wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .workers = 2, .io = io });
    if (err) {
        if (err != -ENOMEM && err != -EAGAIN)
            bad("wisp_runtime_new", err);
        return;
    }
    err = wisp_trace_start(rt, 256);
    if (err && err != -ENOMEM && err != -ENOTSUP)
        bad("wisp_trace_start", err);

    /* fork-join from the workers */
    struct fib root = { rt, 10, 0, 0, NULL, NULL };
    wisp_join_t *jf;
    err = wisp_spawn(rt, fib_poll, &root, sizeof(root), NULL, &jf);
    if (err && err != -ENOMEM)
        bad("spawn fib", err);

    /* outside spawns that yield */
    wisp_join_t *jy[16];
    for (int i = 0; i < 16; i++) {
        int left = i % 4;
        err = wisp_spawn(rt, yield_poll, &left, sizeof(left), NULL, &jy[i]);
        if (err && err != -ENOMEM)
            bad("spawn yielder", err);
    }

    /* a task woken from outside, and one aborted */
    struct signal sig;
    signal_init(&sig);
    struct signal_future sf = { &sig, (void *)3 };
    wisp_join_t *jw, *ja;
    err = wisp_spawn(rt, waiting_poll, &sf, sizeof(sf), NULL, &jw);
    if (err && err != -ENOMEM)
        bad("spawn waiter", err);
    struct signal never;
    signal_init(&never);
    struct signal_future nf = { &never, NULL };
    err = wisp_spawn(rt, waiting_poll, &nf, sizeof(nf), NULL, &ja);
    if (err && err != -ENOMEM)
        bad("spawn victim", err);

    /* detached tasks left pending: shutdown closes them */
    long detached = 0;
    atomic_store(&pending_drops, 0);
    for (int i = 0; i < 4; i++) {
        err = wisp_spawn(rt, forever_poll, NULL, 0, count_drop, NULL);
        if (err && err != -ENOMEM)
            bad("spawn pending", err);
        detached += !err;
    }

    /* block_on, spawning onto the runtime */
    struct spawner sp = { rt, NULL, 0 };
    err = wisp_block_on(rt, spawner_poll, &sp, NULL);
    if (err && err != -ENOMEM)
        bad("wisp_block_on", err);

    /* joins */
    void *v;
    if (jf) {
        if ((err = wisp_join(jf, &v)) != 0)
            bad("join fib", err);
        if ((long)v != fib_seq(10))
            bad("fib result", (int)(long)v);
    }
    for (int i = 0; i < 16; i++)
        if (jy[i] && ((err = wisp_join(jy[i], &v)) != 0 || v != (void *)1))
            bad("join yielder", err);
    if (jw) {
        usleep(1000);
        signal_raise(&sig);
        if ((err = wisp_join(jw, &v)) != 0 || v != (void *)3)
            bad("join waiter", err);
    }
    if (ja) {
        wisp_join_abort(ja);
        if ((err = wisp_join(ja, &v)) != -ECANCELED || v)
            bad("join aborted", err);
    }

    int sv[2], quiet[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, quiet))
        bad("socketpair", errno);
    io_workload(rt, sv, quiet);

    wisp_runtime_metrics_t m = { .size = sizeof(m) };
    err = wisp_runtime_metrics(rt, &m);
    if (err && err != -ENOTSUP)
        bad("metrics", err);
    if ((err = wisp_trace_write(rt, "/dev/null")) && err != -ENODATA && err != -ENOTSUP)
        bad("wisp_trace_write", err);
    if ((err = wisp_runtime_free(rt)) != 0)
        bad("wisp_runtime_free", err);
    if (atomic_load(&pending_drops) != detached)
        bad("pending tasks dropped", (int)atomic_load(&pending_drops));
    close(sv[0]);
    close(sv[1]);
    close(quiet[0]);
    close(quiet[1]);
    signal_destroy(&sig);
    signal_destroy(&never);
}

/* Once with the automatic backend (io_uring here, or epoll after a failed
 * ring setup), once on epoll. */
static void workload(void)
{
    workload_on(WISP_IO_AUTO);
    workload_on(WISP_IO_EPOLL);
}

/* ---- the sweep -------------------------------------------------------------------- */

static int run_child(enum fault_site site, uint64_t nth, bool persist)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(RUN_TIMEOUT_S); /* a hang ends as a signal */
        wisp__fault_plan(site, nth, persist);
        workload();
        uint64_t hits = wisp__fault_hits(site);
        wisp__fault_plan(site, 0, false);
        if (wisp__fault_live() != 0)
            bad("allocations left alive", (int)wisp__fault_live());
        _exit(hits ? RUN_OK : RUN_NO_FAULT);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "site %d, call %lu%s: killed by signal %d", site,
                  (unsigned long)nth, persist ? " onwards" : "", WTERMSIG(status));
    int code = WEXITSTATUS(status);
    ck_assert_msg(code == RUN_OK || code == RUN_NO_FAULT, "site %d, call %lu%s: exit %d", site,
                  (unsigned long)nth, persist ? " onwards" : "", code);
    return code;
}

/* Every N until a run no longer reaches the Nth call; returns the count. */
static uint64_t sweep(enum fault_site site, bool persist)
{
    uint64_t n;
    for (n = 1; n <= MAX_SWEEP; n++) {
        if (run_child(site, n, persist) == RUN_NO_FAULT)
            break;
    }
    ck_assert_msg(n <= MAX_SWEEP, "the run makes more than %d calls at site %d", MAX_SWEEP, site);
    return n - 1;
}

START_TEST(baseline_run_is_clean)
{
    ck_assert_int_eq(run_child(FAULT_ALLOC, 0, false), RUN_NO_FAULT);
}
END_TEST

START_TEST(every_allocation_failing_once)
{
    uint64_t n = sweep(FAULT_ALLOC, false);
    printf("allocations failed once: %lu sites of the run\n", (unsigned long)n);
    ck_assert_uint_gt(n, 10);
}
END_TEST

START_TEST(every_allocation_failing_from_then_on)
{
    ck_assert_uint_gt(sweep(FAULT_ALLOC, true), 10);
}
END_TEST

START_TEST(thread_creation_failing)
{
    ck_assert_uint_ge(sweep(FAULT_THREAD, false), 2);
    ck_assert_uint_ge(sweep(FAULT_THREAD, true), 2);
}
END_TEST

START_TEST(mutex_init_failing)
{
    ck_assert_uint_ge(sweep(FAULT_MUTEX, false), 1);
    ck_assert_uint_ge(sweep(FAULT_MUTEX, true), 1);
}
END_TEST

START_TEST(futex_waits_interrupted)
{
    /* every wait, and single ones */
    ck_assert_int_eq(run_child(FAULT_FUTEX_EINTR, 1, true), RUN_OK);
    for (uint64_t n = 1; n <= 40; n++)
        run_child(FAULT_FUTEX_EINTR, n, false);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, baseline_run_is_clean);
    tcase_add_test(tc, every_allocation_failing_once);
    tcase_add_test(tc, every_allocation_failing_from_then_on);
    tcase_add_test(tc, thread_creation_failing);
    tcase_add_test(tc, mutex_init_failing);
    tcase_add_test(tc, futex_waits_interrupted);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
