/* io_op.c - the future side of I/O (wisp/io.h): buffers, preparing and
 * polling operations, and the lifecycle of an operation that outlives its
 * future.
 *
 * Owns: the layout behind wisp_io_t (struct io_future) and the lifecycle of
 * struct io_op.  Touches: the drivers (io_uring.c, io_epoll.c) through their
 * backend table and remote queues.
 *
 * THE OPERATION'S LIFECYCLE
 *
 * An io_op is allocated at its future's first poll and holds two
 * references, as bits of its state word: the future's (REF_FUTURE) and the
 * driver's (REF_DRIVER).  Whoever clears the last one frees it.
 *
 *   future side (any thread)              driver side (its owner thread)
 *   ------------------------------------  --------------------------------------
 *   start: on the owner's thread, submit  drain a SUBMIT: clear SUBMIT_QUEUED;
 *   directly; elsewhere set              if DROPPED was set, complete with
 *   SUBMIT_QUEUED and push a SUBMIT      -ECANCELED, else submit
 *   poll: register the waker, read the    complete (the last completion): store
 *   state (acquire); COMPLETE: take the  res, set COMPLETE (acq_rel), and then,
 *   result (DELIVERED), clear REF_FUTURE if not DROPPED, wake the waker; clear
 *   drop, not COMPLETE: set DROPPED;      REF_DRIVER unless CANCEL_QUEUED
 *   then, on the owner's thread, cancel  drain a CANCEL: clear CANCEL_QUEUED;
 *   directly; elsewhere, unless           COMPLETE: clear REF_DRIVER, else ask
 *   SUBMIT_QUEUED, set CANCEL_QUEUED and  the kernel to cancel
 *   push a CANCEL; clear REF_FUTURE
 *   drop, COMPLETE: clear REF_FUTURE
 *
 * Why no completion touches freed memory: the kernel's completion carries
 * the op's address, and the op lives until REF_DRIVER is cleared, which the
 * owner does only after the last completion and after any request for the
 * op has left its queue (CANCEL_QUEUED keeps it; a request is pushed only
 * while it is set, and SUBMIT_QUEUED covers the other).  The buffers the
 * kernel uses are the op's while it lives; they go back to the future only
 * when it takes the result (DELIVERED), else the last releaser releases
 * them, and closes a descriptor the operation created that nobody took.
 * The waker is woken before REF_DRIVER is cleared, so the op is alive while
 * it is; a poller that sees COMPLETE may clear REF_FUTURE meanwhile, but the
 * op is freed only by the second clear.
 *
 * The remote queue is a Treiber stack per driver (push: CAS on the head,
 * release; drain: exchange with NULL, acquire), linked through the op, which
 * is in it at most once: SUBMIT_QUEUED and CANCEL_QUEUED exclude each other
 * (a drop that finds SUBMIT_QUEUED only sets DROPPED, and the drain, which
 * clears SUBMIT_QUEUED atomically with reading DROPPED, then completes the
 * op instead of submitting it).
 *
 * Multishot operations queue their results in a single-producer (owner)
 * single-consumer (poller) ring in the op; COMPLETE then means no more will
 * come, and the queue still holds what the future has not taken. */
#include "io.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "debug.h"
#include "runtime.h"

#define OP_SUBMIT_QUEUED 8u
#define OP_REF_FUTURE 16u
#define OP_REF_DRIVER 32u
#define OP_DELIVERED 64u
#define OP_REFS (OP_REF_FUTURE | OP_REF_DRIVER)

/* Absurd sizes: a single operation moves less than this. */
#define IO_MAX_BYTES ((size_t)1 << 40)

/* ---- buffers ------------------------------------------------------------------ */

static void buf_release_self(wisp_buf_t *b)
{
    alloc_free(b);
}

wisp_buf_t *wisp_buf_new(size_t cap)
{
    if (!cap || cap > IO_MAX_BYTES)
        return NULL;
    wisp_buf_t *b = alloc_zeroed(1, sizeof(*b) + cap, 0);
    if (!b)
        return NULL;
    b->data = (char *)(b + 1);
    b->cap = cap;
    b->release = buf_release_self;
    return b;
}

void wisp_buf_free(wisp_buf_t *b)
{
    if (b && b->release)
        b->release(b);
}

/* ---- the future ------------------------------------------------------------------ */

static struct io_future *prepare(wisp_io_t *io, enum io_kind kind, int fd)
{
    struct io_future *f = (struct io_future *)io;
    memset(f, 0, sizeof(*f));
    f->kind = (uint8_t)kind;
    f->fd = fd;
    return f;
}

void wisp_io_accept(wisp_io_t *io, int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    struct io_future *f = prepare(io, IO_ACCEPT, fd);
    f->addr_out = addr;
    f->addrlen_out = addrlen;
}

void wisp_io_accept_multi(wisp_io_t *io, int fd)
{
    prepare(io, IO_ACCEPT_MULTI, fd);
}

void wisp_io_connect(wisp_io_t *io, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct io_future *f = prepare(io, IO_CONNECT, fd);
    f->addr_in = addr;
    f->addrlen_in = len;
}

void wisp_io_recv(wisp_io_t *io, int fd, wisp_buf_t *buf, int flags)
{
    struct io_future *f = prepare(io, IO_RECV, fd);
    f->buf = buf;
    f->flags = flags;
}

void wisp_io_recv_multi(wisp_io_t *io, int fd, wisp_buf_t *buf)
{
    struct io_future *f = prepare(io, IO_RECV_MULTI, fd);
    f->buf = buf;
}

void wisp_io_send(wisp_io_t *io, int fd, wisp_buf_t *buf, int flags)
{
    struct io_future *f = prepare(io, IO_SEND, fd);
    f->buf = buf;
    f->flags = flags;
}

void wisp_io_recvmsg(wisp_io_t *io, int fd, wisp_buf_t **bufs, unsigned nbufs,
                     struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    struct io_future *f = prepare(io, IO_RECVMSG, fd);
    f->bufs = bufs;
    f->n = nbufs;
    f->addr_out = addr;
    f->addrlen_out = addrlen;
    f->flags = flags;
}

void wisp_io_sendmsg(wisp_io_t *io, int fd, wisp_buf_t **bufs, unsigned nbufs,
                     const struct sockaddr *addr, socklen_t addrlen, int flags)
{
    struct io_future *f = prepare(io, IO_SENDMSG, fd);
    f->bufs = bufs;
    f->n = nbufs;
    f->addr_in = addr;
    f->addrlen_in = addrlen;
    f->flags = flags;
}

void wisp_io_read(wisp_io_t *io, int fd, wisp_buf_t *buf, uint64_t offset)
{
    struct io_future *f = prepare(io, IO_READ, fd);
    f->buf = buf;
    f->offset = offset;
}

void wisp_io_write(wisp_io_t *io, int fd, wisp_buf_t *buf, uint64_t offset)
{
    struct io_future *f = prepare(io, IO_WRITE, fd);
    f->buf = buf;
    f->offset = offset;
}

void wisp_io_readv(wisp_io_t *io, int fd, wisp_buf_t **bufs, unsigned nbufs, uint64_t offset)
{
    struct io_future *f = prepare(io, IO_READV, fd);
    f->bufs = bufs;
    f->n = nbufs;
    f->offset = offset;
}

void wisp_io_writev(wisp_io_t *io, int fd, wisp_buf_t **bufs, unsigned nbufs, uint64_t offset)
{
    struct io_future *f = prepare(io, IO_WRITEV, fd);
    f->bufs = bufs;
    f->n = nbufs;
    f->offset = offset;
}

void wisp_io_openat(wisp_io_t *io, int dirfd, const char *path, int flags, mode_t mode)
{
    struct io_future *f = prepare(io, IO_OPENAT, dirfd);
    f->path = path;
    f->flags = flags;
    f->mode = mode;
}

void wisp_io_close(wisp_io_t *io, int fd)
{
    prepare(io, IO_CLOSE, fd);
}

void wisp_io_fsync(wisp_io_t *io, int fd, int datasync)
{
    struct io_future *f = prepare(io, IO_FSYNC, fd);
    f->n = datasync != 0;
}

void wisp_io_statx(wisp_io_t *io, int dirfd, const char *path, int flags, unsigned mask,
                   struct statx *out)
{
    struct io_future *f = prepare(io, IO_STATX, dirfd);
    f->path = path;
    f->flags = flags;
    f->n = mask;
    f->stx_out = out;
}

void wisp_io_poll_fd(wisp_io_t *io, int fd, unsigned events)
{
    struct io_future *f = prepare(io, IO_POLL, fd);
    f->n = events;
}

void wisp_io_timeout(wisp_io_t *io, uint64_t duration_ns)
{
    struct io_future *f = prepare(io, IO_TIMEOUT, -1);
    f->offset = duration_ns;
}

void wisp_io_sqe(wisp_io_t *io, void (*prep)(struct io_uring_sqe *sqe, void *arg),
                 void (*release)(void *arg, int64_t res), void *arg)
{
    struct io_future *f = prepare(io, IO_SQE, -1);
    f->prep = prep;
    f->release = release;
    f->arg = arg;
}

/* ---- validation: -EINVAL before anything is submitted --------------------------- */

static bool buf_ok_in(const wisp_buf_t *b) /* room to receive into */
{
    return b && b->data && b->len <= b->cap && b->cap - b->len > 0 &&
           b->cap - b->len <= IO_MAX_BYTES;
}

static bool buf_ok_out(const wisp_buf_t *b) /* bytes to send */
{
    return b && b->data && b->pos < b->len && b->len <= b->cap && b->len - b->pos <= IO_MAX_BYTES;
}

static int validate(const struct io_future *f)
{
    switch ((enum io_kind)f->kind) {
    case IO_NONE:
        return -EINVAL;
    case IO_RECV:
    case IO_READ:
        return buf_ok_in(f->buf) ? 0 : -EINVAL;
    case IO_RECV_MULTI:
        return f->buf && f->buf->data && f->buf->len <= f->buf->cap ? 0 : -EINVAL;
    case IO_SEND:
    case IO_WRITE:
        return buf_ok_out(f->buf) ? 0 : -EINVAL;
    case IO_RECVMSG:
    case IO_READV:
    case IO_SENDMSG:
    case IO_WRITEV: {
        bool in = f->kind == IO_RECVMSG || f->kind == IO_READV;
        if (!f->bufs || f->n == 0 || f->n > IO_MAX_BUFS)
            return -EINVAL;
        for (unsigned i = 0; i < f->n; i++)
            if (in ? !buf_ok_in(f->bufs[i]) : !buf_ok_out(f->bufs[i]))
                return -EINVAL;
        if (f->kind == IO_SENDMSG && f->addr_in && f->addrlen_in > sizeof(struct sockaddr_storage))
            return -EINVAL;
        return 0;
    }
    case IO_CONNECT:
        return f->addr_in && f->addrlen_in && f->addrlen_in <= sizeof(struct sockaddr_storage)
                   ? 0
                   : -EINVAL;
    case IO_OPENAT:
    case IO_STATX:
        if (!f->path || (f->kind == IO_STATX && !f->stx_out))
            return -EINVAL;
        return strnlen(f->path, 4096) < 4096 ? 0 : -ENAMETOOLONG;
    case IO_ACCEPT:
        return f->addr_out && !f->addrlen_out ? -EINVAL : 0;
    case IO_SQE:
        return f->prep ? 0 : -EINVAL;
    case IO_ACCEPT_MULTI:
    case IO_CLOSE:
    case IO_FSYNC:
    case IO_POLL:
    case IO_TIMEOUT:
        return 0;
    }
    return -EINVAL;
}

static bool kind_makes_fd(enum io_kind k)
{
    return k == IO_ACCEPT || k == IO_ACCEPT_MULTI || k == IO_OPENAT;
}

/* ---- the op's memory ---------------------------------------------------------------- */

struct io_op *wisp__io_op_new(struct io_future *f, struct io_driver *d, int *err)
{
    enum io_kind k = (enum io_kind)f->kind;
    size_t pathlen = f->path ? strlen(f->path) + 1 : 0;
    uint32_t qsize = k == IO_ACCEPT_MULTI ? MULTI_QUEUE_ACCEPT : k == IO_RECV_MULTI ? MULTI_QUEUE_RECV : 0;
    /* One allocation: the op, its result queue, its path. */
    size_t qbytes = (size_t)qsize * 2 * sizeof(int32_t);
    struct io_op *op = alloc_zeroed(1, sizeof(*op) + qbytes + pathlen, 0);
    if (!op) {
        *err = -ENOMEM;
        return NULL;
    }
    char *tail = (char *)(op + 1);
    if (qsize) {
        op->qsize = qsize;
        op->mres = (int32_t *)tail;
        op->mbid = op->mres + qsize;
        tail += qbytes;
    }
    atomic_init(&op->state, OP_REFS);
    atomic_init(&op->mtail, 0);
    atomic_init(&op->mhead, 0);
    op->kind = (uint8_t)k;
    op->drv = d;
    atomic_waker_init(&op->waker);
    op->fd = f->fd;
    op->flags = f->flags;
    op->offset = f->offset;
    op->mask = f->n;
    op->mode = f->mode;
    if (f->path) {
        op->path = tail;
        memcpy(op->path, f->path, pathlen);
    }
    /* The buffers are the op's from here until DELIVERED (see above);
     * recv_multi's stays the caller's (written only inside a poll). */
    op->buf = k == IO_RECV_MULTI ? NULL : f->buf;
    if (f->bufs) {
        op->nbufs = f->n;
        for (unsigned i = 0; i < f->n; i++)
            op->bufs[i] = f->bufs[i];
    }
    if (f->addr_in) {
        memcpy(&op->addr, f->addr_in, f->addrlen_in);
        op->addrlen = f->addrlen_in;
    } else if (f->addr_out) {
        op->addrlen = sizeof(op->addr);
    }
    op->prep = f->prep;
    op->release = f->release;
    op->arg = f->arg;
    return op;
}

/* The last reference is gone: close a descriptor the operation created that
 * nobody took, release the buffers nobody took back, free. */
void wisp__io_op_free(struct io_op *op)
{
    /* relaxed: both references are gone; the clears were acq_rel. */
    uint32_t s = atomic_load_explicit(&op->state, memory_order_relaxed);
    bool delivered = s & OP_DELIVERED;
    if (!delivered) {
        if (kind_makes_fd((enum io_kind)op->kind) && op->kind != IO_ACCEPT_MULTI && op->res >= 0)
            close(op->res);
        wisp_buf_free(op->buf);
        for (unsigned i = 0; i < op->nbufs; i++)
            wisp_buf_free(op->bufs[i]);
        if (op->kind == IO_SQE && op->release)
            op->release(op->arg, op->res);
    }
    if (op->qsize) { /* results queued, never taken */
        uint32_t head = atomic_load_explicit(&op->mhead, memory_order_relaxed);
        uint32_t tail = atomic_load_explicit(&op->mtail, memory_order_relaxed);
        for (; head != tail; head++)
            wisp__io_multi_dispose(op, op->mres[head % op->qsize], op->mbid[head % op->qsize]);
    }
    WISP_ASSERT(!op->spill);
    wisp__atomic_waker_destroy(&op->waker);
    alloc_free(op);
}

static void op_release(struct io_op *op, uint32_t ref)
{
    /* acq_rel: release our use of the op; acquire the other side's before
     * freeing. */
    uint32_t prev = atomic_fetch_and_explicit(&op->state, ~ref, memory_order_acq_rel);
    if ((prev & OP_REFS) == ref)
        wisp__io_op_free(op);
}

/* ---- the driver side ------------------------------------------------------------------ */

void wisp__io_complete(struct io_op *op, int32_t res)
{
    op->res = res;
    /* acq_rel: release res (and the kernel's writes, which the completion
     * made ours) to the poller's acquire; acquire DROPPED's writer. */
    uint32_t prev = atomic_fetch_or_explicit(&op->state, OP_COMPLETE, memory_order_acq_rel);
    if (!(prev & OP_DROPPED))
        wisp__atomic_waker_wake(&op->waker);
    if (!(prev & OP_CANCEL_QUEUED))
        op_release(op, OP_REF_DRIVER);
}

uint32_t wisp__io_multi_queued(const struct io_op *op)
{
    /* relaxed: the owner's own tail; the poller's head may only grow. */
    return atomic_load_explicit(&op->mtail, memory_order_relaxed) -
           atomic_load_explicit(&op->mhead, memory_order_relaxed);
}

void wisp__io_multi_dispose(struct io_op *op, int32_t res, int32_t bid)
{
    if (res >= 0 && op->kind == IO_ACCEPT_MULTI)
        close(res);
    if (bid >= 0)
        op->drv->backend->recycle(op->drv, (unsigned)bid);
}

bool wisp__io_multi_push(struct io_op *op, int32_t res, int32_t bid)
{
    /* acquire: pairs with a drop's release; a dropped op's results are
     * disposed of here, not queued for nobody. */
    if (atomic_load_explicit(&op->state, memory_order_acquire) & OP_DROPPED) {
        wisp__io_multi_dispose(op, res, bid);
        return true;
    }
    uint32_t tail = atomic_load_explicit(&op->mtail, memory_order_relaxed);
    /* acquire: the poller's release of mhead: the slots it left are free. */
    uint32_t head = atomic_load_explicit(&op->mhead, memory_order_acquire);
    if (tail - head >= op->qsize)
        return false;
    op->mres[tail % op->qsize] = res;
    op->mbid[tail % op->qsize] = bid;
    /* release: the slot is written before the poller reads it. */
    atomic_store_explicit(&op->mtail, tail + 1, memory_order_release);
    wisp__atomic_waker_wake(&op->waker);
    return true;
}

/* The remote queue's head once the owner has shut down. */
#define REMOTE_CLOSED ((struct io_op *)(uintptr_t)1)

/* A request the owner will never see (its queue is closed): every op it
 * had has completed, so a submit is answered with -ESHUTDOWN and a cancel
 * only drops the owner's reference. */
static void remote_answer(struct io_op *op, uint8_t what)
{
    if (what == REMOTE_SUBMIT) {
        /* acq_rel: as the drain's. */
        uint32_t prev = atomic_fetch_and_explicit(&op->state, ~OP_SUBMIT_QUEUED, memory_order_acq_rel);
        wisp__io_complete(op, prev & OP_DROPPED ? -ECANCELED : -ESHUTDOWN);
    } else {
        uint32_t prev = atomic_fetch_and_explicit(&op->state, ~OP_CANCEL_QUEUED, memory_order_acq_rel);
        WISP_ASSERT(prev & OP_COMPLETE);
        (void)prev;
        op_release(op, OP_REF_DRIVER);
    }
}

/* Pushes a request for op to its driver's owner and unparks it. */
static void remote_push(struct io_op *op, uint8_t what)
{
    struct io_driver *d = op->drv;
    op->remote_what = what;
    /* acquire: a CLOSED head comes from the owner's release exchange, after
     * its last completion. */
    struct io_op *head = atomic_load_explicit(&d->remote, memory_order_acquire);
    do {
        if (head == REMOTE_CLOSED) {
            remote_answer(op, what);
            return;
        }
        op->remote_next = head;
    /* release: the op's fields are written before the owner's acquire
     * exchange takes it. */
    } while (!atomic_compare_exchange_weak_explicit(&d->remote, &head, op, memory_order_release,
                                                    memory_order_acquire));
    driver_unpark(&d->base);
}

/* Runs the requests of a taken stack (newest first) oldest first. */
static void remote_run(struct io_driver *d, struct io_op *op)
{
    struct io_op *rev = NULL;
    while (op) {
        struct io_op *next = op->remote_next;
        op->remote_next = rev;
        rev = op;
        op = next;
    }
    for (op = rev; op;) {
        struct io_op *next = op->remote_next;
        if (op->remote_what == REMOTE_SUBMIT) {
            /* acq_rel: reads DROPPED as set by a drop (its release). */
            uint32_t prev =
                atomic_fetch_and_explicit(&op->state, ~OP_SUBMIT_QUEUED, memory_order_acq_rel);
            int r = prev & OP_DROPPED ? -ECANCELED : d->backend->submit(d, op);
            if (r < 0)
                wisp__io_complete(op, r);
        } else {
            uint32_t prev =
                atomic_fetch_and_explicit(&op->state, ~OP_CANCEL_QUEUED, memory_order_acq_rel);
            if (prev & OP_COMPLETE) /* completed meanwhile: the queue held it */
                op_release(op, OP_REF_DRIVER);
            else
                d->backend->cancel(d, op);
        }
        op = next;
    }
}

void wisp__io_drain_remote(struct io_driver *d)
{
    /* relaxed: a hint; the exchange below acquires. */
    if (!atomic_load_explicit(&d->remote, memory_order_relaxed))
        return;
    /* acquire: pairs with the pushers' release CAS. */
    remote_run(d, atomic_exchange_explicit(&d->remote, NULL, memory_order_acquire));
}

void wisp__io_close_remote(struct io_driver *d)
{
    /* acq_rel: acquire the pushers' requests; release our completions to
     * the pushers that find CLOSED. */
    struct io_op *op = atomic_exchange_explicit(&d->remote, REMOTE_CLOSED, memory_order_acq_rel);
    if (op != REMOTE_CLOSED)
        remote_run(d, op);
}

/* ---- the future side ------------------------------------------------------------------- */

static void op_start(struct io_op *op);

/* The driver an operation polled here starts on: the polling worker's,
 * else (wisp_block_on) one of the block_on runtime's workers'. */
static struct io_driver *pick_driver(const void *key, int *err)
{
    struct worker *w = wisp__worker_current();
    struct wisp_runtime *rt = w ? w->rt : wisp_runtime_current();
    if (!rt) {
        *err = -ENXIO;
        return NULL;
    }
    if (runtime_is_shutdown(rt)) {
        *err = -ESHUTDOWN;
        return NULL;
    }
    if (!w)
        w = rt->workers[((uintptr_t)key >> 6) % rt->nworkers];
    if (!w->io) {
        *err = -ENOSYS;
        return NULL;
    }
    return w->io;
}

/* Whether the calling thread may call d's backend directly. */
static bool on_owner(const struct io_driver *d)
{
    if (d->backend->any_thread)
        return true;
    struct worker *w = wisp__worker_current();
    return w && w->io == d;
}

wisp_poll_t wisp__io_done(struct io_future *f, int64_t res, void **output)
{
    f->result = res;
    f->state = FUT_DONE;
    f->op = NULL;
    if (output)
        *output = (void *)(intptr_t)res;
    return WISP_READY;
}

/* Takes a completed oneshot op's result: copies the outputs out, takes the
 * buffers back (the kernel's writes are ours: the acquire that saw
 * COMPLETE), and updates their positions. */
static int64_t take_result(struct io_future *f, struct io_op *op)
{
    int64_t res = op->res;
    /* relaxed: only the op's last releaser reads it, after an acq_rel. */
    atomic_fetch_or_explicit(&op->state, OP_DELIVERED, memory_order_relaxed);
    if (res >= 0) {
        switch (op->kind) {
        case IO_RECV:
        case IO_READ:
            op->buf->len += (size_t)res;
            break;
        case IO_SEND:
        case IO_WRITE:
            op->buf->pos += (size_t)res;
            break;
        case IO_RECVMSG:
        case IO_READV:
            wisp__io_bufs_filled(op->bufs, op->nbufs, (size_t)res);
            break;
        case IO_SENDMSG:
        case IO_WRITEV:
            wisp__io_bufs_sent(op->bufs, op->nbufs, (size_t)res);
            break;
        case IO_STATX:
            memcpy(f->stx_out, &op->stx, sizeof(op->stx));
            break;
        default:
            break;
        }
        if ((op->kind == IO_ACCEPT || op->kind == IO_RECVMSG) && f->addr_out) {
            socklen_t n = op->addrlen < *f->addrlen_out ? op->addrlen : *f->addrlen_out;
            memcpy(f->addr_out, &op->addr, n);
            *f->addrlen_out = op->addrlen;
        }
    }
    return res;
}

void wisp__io_bufs_filled(wisp_buf_t **bufs, unsigned n, size_t bytes)
{
    for (unsigned i = 0; i < n && bytes; i++) {
        size_t room = bufs[i]->cap - bufs[i]->len;
        size_t k = bytes < room ? bytes : room;
        bufs[i]->len += k;
        bytes -= k;
    }
}

void wisp__io_bufs_sent(wisp_buf_t **bufs, unsigned n, size_t bytes)
{
    for (unsigned i = 0; i < n && bytes; i++) {
        size_t have = bufs[i]->len - bufs[i]->pos;
        size_t k = bytes < have ? bytes : have;
        bufs[i]->pos += k;
        bytes -= k;
    }
}

/* A multishot op: the next queued result, if any. */
static bool take_multi(struct io_future *f, struct io_op *op, int64_t *res)
{
    uint32_t head = atomic_load_explicit(&op->mhead, memory_order_relaxed);
    /* acquire: pairs with the owner's release of mtail (the slot). */
    if (head == atomic_load_explicit(&op->mtail, memory_order_acquire))
        return false;
    uint32_t slot = head % op->qsize;
    int32_t r = op->mres[slot];
    int32_t bid = op->mbid[slot];
    if (op->kind == IO_RECV_MULTI && bid >= 0) {
        /* The bytes are in one of the driver's provided buffers: copy what
         * fits (the rest stays for the next poll), then give it back. */
        const char *src = op->drv->backend->bufdata(op->drv, (unsigned)bid);
        wisp_buf_t *b = f->buf;
        size_t room = b->cap - b->len, n = (size_t)r < room ? (size_t)r : room;
        if (n == 0) { /* the caller's buffer is full */
            *res = -ENOBUFS;
            return true;
        }
        memcpy(b->data + b->len, src + f->offset, n);
        b->len += n;
        if (n < (size_t)r) { /* keep the rest for the next poll */
            op->mres[slot] = r - (int32_t)n;
            f->offset += n;
            *res = (int64_t)n;
            return true;
        }
        f->offset = 0;
        op->drv->backend->recycle(op->drv, (unsigned)bid);
        r = (int32_t)n;
    }
    /* seq_cst: release of the slot to the owner, and the store of the
     * paused handshake (io_uring.c): either the owner, checking after it
     * set PAUSED, sees the slot free, or we see PAUSED and nudge it. */
    atomic_store_explicit(&op->mhead, head + 1, memory_order_seq_cst);
    if (atomic_load_explicit(&op->state, memory_order_seq_cst) & OP_PAUSED)
        driver_unpark(&op->drv->base);
    *res = r;
    return true;
}

/* A multishot op's next result: READY, the op still running. */
static wisp_poll_t multi_result(struct io_future *f, int64_t res, void **output)
{
    f->result = res;
    if (output)
        *output = (void *)(intptr_t)res;
    return WISP_READY;
}

/* Where a started op stands: READY with its (next) result, or PENDING. */
static wisp_poll_t op_check(struct io_future *f, struct io_op *op, void **output)
{
    int64_t res;
    if (op->qsize) {
        /* Each result is also left in f->result, for wisp_io_result. */
        if (take_multi(f, op, &res))
            return multi_result(f, res, output);
        /* acquire: the owner's acq_rel setting COMPLETE (after its last
         * push to the queue, which we then see). */
        if (!(atomic_load_explicit(&op->state, memory_order_acquire) & OP_COMPLETE))
            return WISP_PENDING;
        if (take_multi(f, op, &res)) /* pushed just before COMPLETE */
            return multi_result(f, res, output);
        res = op->res;
        /* relaxed: as in take_result. */
        atomic_fetch_or_explicit(&op->state, OP_DELIVERED, memory_order_relaxed);
        op_release(op, OP_REF_FUTURE);
        return wisp__io_done(f, res, output);
    }
    /* acquire: pairs with the owner's acq_rel setting COMPLETE, so res and
     * what the kernel wrote into the buffers are visible. */
    if (!(atomic_load_explicit(&op->state, memory_order_acquire) & OP_COMPLETE))
        return WISP_PENDING;
    res = take_result(f, op);
    op_release(op, OP_REF_FUTURE);
    return wisp__io_done(f, res, output);
}

wisp_poll_t wisp__io_op_path(struct io_future *f, struct io_driver *d, wisp_context_t *cx,
                             void **output)
{
    int err;
    struct io_op *op = wisp__io_op_new(f, d, &err);
    if (!op)
        return wisp__io_done(f, err, output);
    const wisp_waker_t *waker = wisp_context_waker(cx);
    if (waker)
        wisp__atomic_waker_register(&op->waker, waker);
    f->op = op;
    f->state = FUT_STARTED;
    op_start(op);
    return op_check(f, op, output);
}

wisp_poll_t wisp_io_poll(void *p, wisp_context_t *cx, void **output)
{
    struct io_future *f = p;
    if (f->state == FUT_DONE)
        return wisp__io_done(f, f->result, output);
    if (f->state == FUT_IDLE) {
        int err = validate(f);
        struct io_driver *d = err ? NULL : pick_driver(f, &err);
        if (!d)
            return wisp__io_done(f, err, output);
        if (d->backend->id != WISP_IO_EPOLL)
            return wisp__io_op_path(f, d, cx, output);
        if (f->kind == IO_SQE)
            return wisp__io_done(f, -ENOTSUP, output);
        f->state = FUT_STARTED;
        f->drv = d;
        return wisp__io_epoll_poll(d, f, cx, output);
    }
    struct io_op *op = f->op;
    if (!op)
        return wisp__io_epoll_poll(f->drv, f, cx, output);
    const wisp_waker_t *waker = wisp_context_waker(cx);
    if (waker)
        wisp__atomic_waker_register(&op->waker, waker);
    return op_check(f, op, output);
}

/* Starts a new op: directly on its owner's thread, else through the
 * owner's remote queue (inside the runtime: see runtime.c's step 6). */
static void op_start(struct io_op *op)
{
    struct io_driver *d = op->drv;
    if (on_owner(d)) {
        int r = d->backend->submit(d, op);
        if (r < 0)
            wisp__io_complete(op, r);
        return;
    }
    bool outside = wisp__runtime_outside_enter(d->rt);
    /* relaxed: the op is not shared yet. */
    atomic_fetch_or_explicit(&op->state, OP_SUBMIT_QUEUED, memory_order_relaxed);
    remote_push(op, REMOTE_SUBMIT);
    if (outside)
        wisp__runtime_outside_exit(d->rt);
}

int64_t wisp_io_result(const wisp_io_t *io)
{
    return ((const struct io_future *)io)->result;
}

void wisp_io_drop(void *p)
{
    struct io_future *f = p;
    struct io_op *op = f->op;
    if (f->state == FUT_STARTED && op) {
        struct io_driver *d = op->drv;
        if (on_owner(d)) {
            /* acq_rel: release our writes to the finisher; acquire COMPLETE. */
            uint32_t prev = atomic_fetch_or_explicit(&op->state, OP_DROPPED, memory_order_acq_rel);
            if (!(prev & OP_COMPLETE) && !(prev & OP_SUBMIT_QUEUED))
                d->backend->cancel(d, op);
        } else {
            /* Set DROPPED, and CANCEL_QUEUED unless a submit is queued or
             * the op completed (then no request is needed).  acq_rel: as
             * the drain's. */
            uint32_t s = atomic_load_explicit(&op->state, memory_order_relaxed), next;
            do {
                next = s | OP_DROPPED;
                if (!(s & (OP_COMPLETE | OP_SUBMIT_QUEUED)))
                    next |= OP_CANCEL_QUEUED;
            } while (!atomic_compare_exchange_weak_explicit(&op->state, &s, next,
                                                            memory_order_acq_rel,
                                                            memory_order_relaxed));
            if (next & OP_CANCEL_QUEUED) {
                bool outside = wisp__runtime_outside_enter(d->rt);
                remote_push(op, REMOTE_CANCEL);
                if (outside)
                    wisp__runtime_outside_exit(d->rt);
            }
        }
        op_release(op, OP_REF_FUTURE);
    } else if (f->state == FUT_STARTED) {
        wisp__io_epoll_drop(f);
    }
    f->op = NULL;
    f->state = FUT_IDLE;
}

/* ---- queries --------------------------------------------------------------------------- */

unsigned wisp_io_backend(const wisp_runtime_t *rt)
{
    return rt ? rt->io_backend : 0;
}

const char *wisp_io_backend_name(const wisp_runtime_t *rt)
{
    switch (wisp_io_backend(rt)) {
    case WISP_IO_URING: return "io_uring";
    case WISP_IO_EPOLL: return "epoll";
    default: return "none";
    }
}
