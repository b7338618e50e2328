/* io_uring.c - the io_uring backend: one ring per worker, owned by that
 * worker's thread and touched by no other.
 *
 * Owns: struct uring_driver (the ring, its park word, its owner-only lists
 * of operations, its provided-buffer pool) and the backend fields of every
 * io_op started on it (ustate, uflags, the list links, the spill list).
 * Touches: io_op.c's calls for completing and queueing results (io_op.c
 * owns the op's lifecycle and the remote queue), futex.h.
 *
 * THE RING
 *
 * Created by wisp_runtime_new on the creating thread, disabled
 * (IORING_SETUP_R_DISABLED), so that every failure shows there and the
 * runtime can fall back to epoll; enabled by the worker on its own thread
 * (which makes it the ring's single issuer), which also registers the ring
 * fd.  Setup flags, the first set the kernel accepts:
 *   SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG | SUBMIT_ALL   (6.1)
 *   COOP_TASKRUN | TASKRUN_FLAG | SUBMIT_ALL                    (5.19)
 *   none                                                        (5.10)
 * With DEFER_TASKRUN completion work runs only when the owner enters the
 * ring to wait, which is why an idle worker with operations in flight
 * sleeps in the ring (below).  No SQPOLL: it burns a core.  A ring the
 * kernel refuses for memory (RLIMIT_MEMLOCK on kernels before 5.12) is
 * retried at half the size down to 8 entries; then the runtime uses epoll.
 *
 * SUBMITTING AND REAPING
 *
 * A future polled on its worker prepares its SQE at once and the SQ is
 * flushed in batches: at the worker's fairness turn, when its queue runs
 * empty, and when it parks (one io_uring_enter submits and waits).  A full
 * SQ is flushed and retried; when io_uring_enter refuses (-EBUSY, -EAGAIN)
 * the op waits in the backlog, retried after the next reap; -EINTR is
 * retried.  Reaping reads the CQ without a system call; it enters the
 * kernel only when the ring says work is pending there
 * (IORING_SQ_TASKRUN) or the CQ overflowed (IORING_SQ_CQ_OVERFLOW: the
 * kernel holds the overflow, NODROP, and the enter flushes it), so an
 * overflow loses nothing.  The CQE's user_data is the op's address (or a
 * small tag: the park's wake-up, ignored cancels).
 *
 * WORK STEALING.  An op stays on the ring it was submitted to.  Its
 * completion wakes its task through the op's atomic waker, wherever the
 * task runs now; a drop on another thread sends the cancel to this ring's
 * owner through the driver's remote queue (io_op.c), never by touching the
 * ring.  wisp registers no files with its rings, so any descriptor works
 * on any ring; the provided-buffer ring of recv_multi is this ring's: an op
 * remembers its driver, its future reads the bytes from this driver's
 * pool, and gives a buffer back through a lock-free stack the owner drains
 * into the ring.  A wisp_io_sqe that names fixed files or buffers gets the
 * kernel's -EBADF/-EFAULT: this ring has none registered.
 *
 * PARKING (the driver's protocol, see driver.h)
 *
 * The park word is EMPTY, NOTIFIED, PARKED_FUTEX or PARKED_RING.
 *   unpark: exchange NOTIFIED (release); if the old value was PARKED_FUTEX,
 *     futex-wake the word; if PARKED_RING, wake the ring (below).
 *   park: consume NOTIFIED if present (acquire CAS).  With nothing in
 *     flight on the ring, CAS EMPTY -> PARKED_FUTEX and futex-wait on the
 *     word (nothing but an unpark or the deadline can concern us).  Else
 *     make sure a wake-up operation is armed in the ring, CAS EMPTY ->
 *     PARKED_RING, and enter the ring to submit and wait for one
 *     completion with the deadline as timeout.  Then exchange EMPTY back:
 *     NOTIFIED means an unpark came.
 * No lost unpark: the unparker's exchange and the parker's CAS are RMWs on
 * one word, so one is first.  If the exchange is, the CAS fails and park
 * returns.  If the CAS is, the unparker sees PARKED_*: a futex waiter is
 * woken by the kernel's futex check (it will not sleep once the word
 * changed); a ring waiter is woken by the wake-up operation's completion,
 * which the unparker causes whether the operation was issued before its
 * wake or after (then it completes at issue).
 * The ring's wake-up operation:
 *   - an IORING_OP_FUTEX_WAIT on the park word itself (kernel 6.7+): the
 *     unparker's futex wake completes it; the same wake serves both kinds
 *     of sleeper, so it wakes every waiter on the word (a ring waiter
 *     armed in an earlier park may still be queued there);
 *   - else a read of an eventfd the unparker writes to.
 * IORING_OP_MSG_RING is not an option: outside threads have no ring.
 * Measured (wisp-bench ring_wake --threads 1 --n 2000: an outside spawn
 * wakes the one worker asleep in its ring, ns from the spawn to the task's
 * poll; 5 runs each, interleaved, 2 vCPUs, kernel 6.18), min-max:
 *   futex in the ring   66.7-72.3 us      eventfd       65.2-73.9 us
 *   futex park (no I/O, park_wake)  64.8-73.1 us      epoll  70.3-84.0 us
 * and the unparker's spawn call took 54.6-61.9 us in every case: on this
 * VM a wakeup is the cost of waking an idle vCPU, whatever the method.
 * So the futex is chosen where the kernel has it for what it saves: no
 * eventfd (a descriptor per worker) and no write+read per wake, and one
 * unpark path for both kinds of sleeper.
 * WISP_IO_WAKE=eventfd|futex picks one for tests.  The wake-up operation
 * stays armed across parks until it completes.
 *
 * MULTISHOT (accept_multi, recv_multi)
 *
 * Each result goes to the op's queue for its future (io_op.c); results
 * that find it full wait in the op's spill list, in order.  At half full
 * the op is paused: a cancel is sent, and its last CQE then moves it to
 * the paused list instead of completing it.  The same happens when the
 * kernel ends it for its own reasons (no provided buffer left: -ENOBUFS,
 * then it is also "starved"; a CQ overflow) while its future still wants
 * results.  The owner checks the paused list after each reap: it moves
 * spilled results into the queue, and resubmits an op once its spill is
 * empty and its queue is down to a quarter (a starved one also needs a
 * free buffer); a final result (end of stream, an error) that came while
 * results were spilled is delivered once they are queued.  A future that
 * takes a result from a paused op, and a thread that gives a buffer back
 * while ops are starved, unpark the owner so it checks; both are
 * store-then-load handshakes with the owner's store-then-load (OP_PAUSED
 * or nstarved, then the queue or the returned stack), all seq_cst, so one
 * side sees the other.
 *
 * SHUTDOWN (on the worker's thread, after its loop; runtime.c step 2)
 *
 * Remote requests are drained (submits complete with -ESHUTDOWN), paused
 * and backlogged ops complete with -ECANCELED, every op in the kernel and
 * the wake-up operation are cancelled, and the owner reaps until every one
 * of them has completed (re-sending cancels every 100 ms for ops the
 * kernel could not cancel yet); then the remote queue is closed and the
 * ring freed.  The driver's memory (park word, eventfd, buffer pool) lives
 * until the runtime is freed: other threads may still unpark it or give
 * buffers back. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "debug.h"
#include "futex.h"
#include "runtime.h"

/* Newer than Debian's liburing 2.3. */
#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51
#endif
#define URING_FUTEX2_SIZE_U32 0x02
#define URING_FUTEX2_PRIVATE 128

/* user_data of what is not an op (ops are at least 8-aligned). */
#define TAG_WAKE 1u
#define TAG_IGNORE 2u

#define MIN_ENTRIES 8
#define REAP_BATCH 64
#define STOP_RETRY_NS (100 * 1000000ull)

/* Provided buffers of recv_multi: allocated at the first one. */
#define POOL_BUFS 256
#define POOL_BUF_SIZE 4096
#define POOL_BGID 0

/* io_op.ustate */
enum { U_IDLE, U_BACKLOG, U_KERNEL, U_PAUSED };
/* io_op.uflags */
#define UF_PAUSING 1u        /* a pause cancel was sent */
#define UF_STARVED 2u        /* paused for want of provided buffers */
#define UF_CANCEL_BACKLOG 4u /* in the backlog for its cancel */

/* The park word. */
enum { PARK_EMPTY, PARK_NOTIFIED, PARK_FUTEX, PARK_RING };
enum { WAKE_EVENTFD, WAKE_FUTEX };

struct buf_pool {
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    char *data;
    unsigned avail;                 /* owner: buffers the kernel may pick */
    /* Buffers given back by other threads: a stack of bid + 1 linked
     * through ret_next (push: release CAS; the owner takes it all with an
     * acquire exchange, so ABA cannot hurt). */
    _Atomic uint32_t returned;
    uint32_t ret_next[POOL_BUFS];
};

struct uring_driver {
    struct io_driver io;            /* first: io_driver and base convert */
    struct io_uring ring;
    bool ring_open, enabled, stopping;
    uint8_t wake_method;
    bool wake_armed;
    int efd;                        /* WAKE_EVENTFD */
    uint64_t efd_buf;
    struct io_op *inflight;         /* ops in the kernel (ustate KERNEL) */
    struct io_op *paused;           /* ustate PAUSED */
    struct io_op *backlog, *backlog_tail;
    struct buf_pool *pool;
    /* Starved ops: read by threads giving buffers back. */
    _Atomic uint32_t nstarved;
    /* Own line: written by every unparker. */
    _Alignas(WISP_CACHE_LINE) _Atomic uint32_t park;
};

static inline struct uring_driver *to_uring(struct io_driver *d)
{
    return (struct uring_driver *)d;
}

/* ---- owner-only lists ------------------------------------------------------------ */

static void list_add(struct io_op **head, struct io_op *op)
{
    op->lprev = NULL;
    op->lnext = *head;
    if (*head)
        (*head)->lprev = op;
    *head = op;
}

static void list_del(struct io_op **head, struct io_op *op)
{
    if (op->lprev)
        op->lprev->lnext = op->lnext;
    else
        *head = op->lnext;
    if (op->lnext)
        op->lnext->lprev = op->lprev;
    op->lprev = op->lnext = NULL;
}

static void backlog_remove(struct uring_driver *u, struct io_op *op)
{
    struct io_op **pp = &u->backlog, *prev = NULL;
    while (*pp != op) {
        prev = *pp;
        pp = &(*pp)->bnext;
    }
    *pp = op->bnext;
    if (u->backlog_tail == op)
        u->backlog_tail = prev;
    op->uflags &= (uint8_t)~UF_CANCEL_BACKLOG;
}

static void backlog_add(struct uring_driver *u, struct io_op *op)
{
    op->bnext = NULL;
    if (u->backlog_tail)
        u->backlog_tail->bnext = op;
    else
        u->backlog = op;
    u->backlog_tail = op;
}

/* ---- submission ------------------------------------------------------------------- */

/* Submits what the SQ holds: 0, or the -errno that stopped it (-EBUSY,
 * -EAGAIN: reap first). */
static int ring_flush(struct uring_driver *u)
{
    while (io_uring_sq_ready(&u->ring)) {
        int r = io_uring_submit(&u->ring);
        if (r == -EINTR)
            continue;
        if (r < 0)
            return r;
        if (r == 0)
            break;
    }
    return 0;
}

static struct io_uring_sqe *sqe_get(struct uring_driver *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe && ring_flush(u) == 0)
        sqe = io_uring_get_sqe(&u->ring);
    return sqe;
}

/* ---- the provided-buffer pool ------------------------------------------------------- */

static char *pool_buf(struct buf_pool *p, unsigned bid)
{
    return p->data + (size_t)bid * POOL_BUF_SIZE;
}

static void pool_put(struct buf_pool *p, unsigned bid, int offset)
{
    io_uring_buf_ring_add(p->br, pool_buf(p, bid), POOL_BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(POOL_BUFS), offset);
}

static void pool_free(struct buf_pool *p)
{
    if (!p)
        return;
    if (p->br)
        munmap(p->br, p->br_bytes);
    alloc_free(p->data);
    alloc_free(p);
}

/* The pool, set up at the first recv_multi: 0 or -errno. */
static int pool_get(struct uring_driver *u)
{
    if (u->pool)
        return 0;
    struct buf_pool *p = alloc_zeroed(1, sizeof(*p), 0);
    if (!p)
        return -ENOMEM;
    p->data = alloc_zeroed(POOL_BUFS, POOL_BUF_SIZE, 4096);
    p->br_bytes = POOL_BUFS * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, p->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    p->br = br == MAP_FAILED ? NULL : br;
    if (!p->data || !p->br) {
        pool_free(p);
        return -ENOMEM;
    }
    struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)p->br,
                                    .ring_entries = POOL_BUFS,
                                    .bgid = POOL_BGID };
    int r = fault_alloc() ? -ENOMEM : io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (r < 0) {
        pool_free(p);
        return r;
    }
    io_uring_buf_ring_init(p->br);
    for (unsigned i = 0; i < POOL_BUFS; i++)
        pool_put(p, i, (int)i);
    io_uring_buf_ring_advance(p->br, POOL_BUFS);
    p->avail = POOL_BUFS;
    atomic_init(&p->returned, 0);
    u->pool = p;
    return 0;
}

/* Owner: takes the buffers other threads gave back into the ring. */
static void pool_take_returned(struct uring_driver *u)
{
    struct buf_pool *p = u->pool;
    /* relaxed: a hint; the exchange acquires. */
    if (!p || !atomic_load_explicit(&p->returned, memory_order_relaxed))
        return;
    /* seq_cst: acquire for the pushers' ret_next writes, and the load side
     * of the starved handshake (top of file). */
    uint32_t top = atomic_exchange_explicit(&p->returned, 0, memory_order_seq_cst);
    int n = 0;
    for (; top; top = p->ret_next[top - 1], n++)
        pool_put(p, top - 1, n);
    io_uring_buf_ring_advance(p->br, n);
    p->avail += (unsigned)n;
}

static void uring_recycle(struct io_driver *d, unsigned bid)
{
    struct uring_driver *u = to_uring(d);
    struct buf_pool *p = u->pool;
    struct worker *w = wisp__worker_current();
    if (w && w->io == d && !u->stopping) { /* the owner: straight into the ring */
        pool_put(p, bid, 0);
        io_uring_buf_ring_advance(p->br, 1);
        p->avail++;
        return;
    }
    uint32_t top = atomic_load_explicit(&p->returned, memory_order_relaxed);
    do
        p->ret_next[bid] = top;
    /* seq_cst: release for ret_next, and the store side of the starved
     * handshake (top of file) against the load of nstarved below. */
    while (!atomic_compare_exchange_weak_explicit(&p->returned, &top, bid + 1,
                                                  memory_order_seq_cst, memory_order_relaxed));
    if (atomic_load_explicit(&u->nstarved, memory_order_seq_cst))
        driver_unpark(&d->base);
}

static const char *uring_bufdata(struct io_driver *d, unsigned bid)
{
    return pool_buf(to_uring(d)->pool, bid);
}

/* ---- preparing an op's SQE ------------------------------------------------------------ */

static void msg_setup(struct io_op *op, bool in)
{
    for (unsigned i = 0; i < op->nbufs; i++) {
        wisp_buf_t *b = op->bufs[i];
        op->iov[i] = in ? (struct iovec){ b->data + b->len, b->cap - b->len }
                        : (struct iovec){ b->data + b->pos, b->len - b->pos };
    }
    memset(&op->msg, 0, sizeof(op->msg));
    op->msg.msg_iov = op->iov;
    op->msg.msg_iovlen = op->nbufs;
    if (op->addrlen) {
        op->msg.msg_name = &op->addr;
        op->msg.msg_namelen = op->addrlen;
    }
}

static void op_prep(struct io_op *op, struct io_uring_sqe *sqe)
{
    wisp_buf_t *b = op->buf;
    switch ((enum io_kind)op->kind) {
    case IO_ACCEPT:
        io_uring_prep_accept(sqe, op->fd, op->addrlen ? (struct sockaddr *)&op->addr : NULL,
                             op->addrlen ? &op->addrlen : NULL, SOCK_CLOEXEC);
        break;
    case IO_ACCEPT_MULTI:
        io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, SOCK_CLOEXEC);
        break;
    case IO_CONNECT:
        io_uring_prep_connect(sqe, op->fd, (struct sockaddr *)&op->addr, op->addrlen);
        break;
    case IO_RECV:
        io_uring_prep_recv(sqe, op->fd, b->data + b->len, b->cap - b->len, op->flags);
        break;
    case IO_RECV_MULTI:
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = POOL_BGID;
        break;
    case IO_SEND:
        io_uring_prep_send(sqe, op->fd, b->data + b->pos, b->len - b->pos,
                           op->flags | MSG_NOSIGNAL);
        break;
    case IO_RECVMSG:
        msg_setup(op, true);
        io_uring_prep_recvmsg(sqe, op->fd, &op->msg, (unsigned)op->flags);
        break;
    case IO_SENDMSG:
        msg_setup(op, false);
        io_uring_prep_sendmsg(sqe, op->fd, &op->msg, (unsigned)op->flags | MSG_NOSIGNAL);
        break;
    case IO_READ:
        io_uring_prep_read(sqe, op->fd, b->data + b->len, (unsigned)(b->cap - b->len), op->offset);
        break;
    case IO_WRITE:
        io_uring_prep_write(sqe, op->fd, b->data + b->pos, (unsigned)(b->len - b->pos),
                            op->offset);
        break;
    case IO_READV:
    case IO_WRITEV:
        msg_setup(op, op->kind == IO_READV);
        if (op->kind == IO_READV)
            io_uring_prep_readv(sqe, op->fd, op->iov, op->nbufs, op->offset);
        else
            io_uring_prep_writev(sqe, op->fd, op->iov, op->nbufs, op->offset);
        break;
    case IO_OPENAT:
        io_uring_prep_openat(sqe, op->fd, op->path, op->flags, op->mode);
        break;
    case IO_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case IO_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, op->mask ? IORING_FSYNC_DATASYNC : 0);
        break;
    case IO_STATX:
        io_uring_prep_statx(sqe, op->fd, op->path, op->flags, op->mask, &op->stx);
        break;
    case IO_POLL:
        io_uring_prep_poll_add(sqe, op->fd, op->mask);
        break;
    case IO_TIMEOUT:
        op->ts[0] = op->offset / NS_PER_SEC;
        op->ts[1] = op->offset % NS_PER_SEC;
        io_uring_prep_timeout(sqe, (struct __kernel_timespec *)op->ts, 0, 0);
        break;
    case IO_SQE:
        op->prep(sqe, op->arg);
        /* Nothing may chain to wisp's own SQEs, and every op needs its
         * completion. */
        sqe->flags &= (uint8_t) ~(IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS);
        break;
    case IO_NONE:
        io_uring_prep_nop(sqe);
        break;
    }
    io_uring_sqe_set_data(sqe, op);
}

/* Puts op into the ring (or the backlog when the SQ cannot take it). */
static void op_start(struct uring_driver *u, struct io_op *op)
{
    struct io_uring_sqe *sqe = sqe_get(u);
    if (!sqe) {
        op->ustate = U_BACKLOG;
        backlog_add(u, op);
        return;
    }
    op_prep(op, sqe);
    op->ustate = U_KERNEL;
    list_add(&u->inflight, op);
    u->io.inflight++;
}

static void cancel_send(struct uring_driver *u, struct io_op *op)
{
    struct io_uring_sqe *sqe = sqe_get(u);
    if (!sqe) {
        if (!(op->uflags & UF_CANCEL_BACKLOG)) {
            op->uflags |= UF_CANCEL_BACKLOG;
            backlog_add(u, op);
        }
        return;
    }
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
}

static int uring_submit(struct io_driver *d, struct io_op *op)
{
    struct uring_driver *u = to_uring(d);
    if (u->stopping)
        return -ESHUTDOWN;
    if (!u->enabled)
        return -ENOSYS;
    if (op->kind == IO_RECV_MULTI) {
        int r = pool_get(u);
        if (r < 0)
            return r;
    }
    op->ustate = U_IDLE;
    op->uflags = 0;
    op_start(u, op);
    return 0;
}

/* ---- completing ------------------------------------------------------------------------ */

static void spill_discard(struct io_op *op)
{
    while (op->spill) {
        struct io_spill *s = op->spill;
        op->spill = s->next;
        wisp__io_multi_dispose(op, s->res, s->bid);
        alloc_free(s);
    }
    op->spill_tail = NULL;
}

/* The op leaves the driver for good with res. */
static void op_finish(struct uring_driver *u, struct io_op *op, int32_t res)
{
    (void)u;
    spill_discard(op);
    if (op->qsize)
        atomic_fetch_and_explicit(&op->state, ~OP_PAUSED, memory_order_relaxed);
    op->ustate = U_IDLE;
    wisp__io_complete(op, res);
}

static void op_pause(struct uring_driver *u, struct io_op *op)
{
    op->ustate = U_PAUSED;
    list_add(&u->paused, op);
    if (op->uflags & UF_STARVED)
        /* seq_cst: the owner's store of the starved handshake. */
        atomic_fetch_add_explicit(&u->nstarved, 1, memory_order_seq_cst);
    /* seq_cst: the owner's store of the paused handshake (top of file);
     * resume_check loads the queue after it. */
    atomic_fetch_or_explicit(&op->state, OP_PAUSED, memory_order_seq_cst);
}

/* A multishot result for the future: queued, or spilled behind the queue. */
static void multi_deliver(struct uring_driver *u, struct io_op *op, int32_t res, int32_t bid,
                          bool more)
{
    if (!op->spill && wisp__io_multi_push(op, res, bid)) {
        if (more && !(op->uflags & UF_PAUSING) && wisp__io_multi_queued(op) >= op->qsize / 2) {
            op->uflags |= UF_PAUSING;
            cancel_send(u, op);
        }
        return;
    }
    struct io_spill *s = alloc_zeroed(1, sizeof(*s), 0);
    if (!s) { /* out of memory: the one result that cannot be kept */
        wisp__io_multi_dispose(op, res, bid);
        return;
    }
    s->res = res;
    s->bid = bid;
    if (op->spill_tail)
        op->spill_tail->next = s;
    else
        op->spill = s;
    op->spill_tail = s;
    if (more && !(op->uflags & UF_PAUSING)) {
        op->uflags |= UF_PAUSING;
        cancel_send(u, op);
    }
}

static void multi_cqe(struct uring_driver *u, struct io_op *op, int32_t res, uint32_t flags)
{
    bool more = flags & IORING_CQE_F_MORE;
    int32_t bid = flags & IORING_CQE_F_BUFFER ? (int32_t)(flags >> IORING_CQE_BUFFER_SHIFT) : -1;
    if (bid >= 0)
        u->pool->avail--;
    bool data = op->kind == IO_ACCEPT_MULTI ? res >= 0 : res > 0 && bid >= 0;
    if (data)
        multi_deliver(u, op, res, bid, more);
    else if (bid >= 0) /* a buffer with no bytes in it */
        uring_recycle(&u->io, (unsigned)bid);
    if (more)
        return;
    /* The kernel is done with it. */
    list_del(&u->inflight, op);
    u->io.inflight--;
    if (op->uflags & UF_CANCEL_BACKLOG)
        backlog_remove(u, op);
    op->uflags &= (uint8_t)~UF_PAUSING;
    /* acquire: pairs with the drop's release. */
    if (u->stopping || atomic_load_explicit(&op->state, memory_order_acquire) & OP_DROPPED) {
        op_finish(u, op, -ECANCELED);
        return;
    }
    /* Ended with results still wanted: by our pause (-ECANCELED: nobody
     * else cancels an op its future still holds), for want of buffers, or
     * by the kernel with data (a CQ overflow ends multishots). */
    if (data || res == -ENOBUFS || res == -ECANCELED) {
        if (res == -ENOBUFS)
            op->uflags |= UF_STARVED;
        op_pause(u, op); /* resumed by resume_check */
        return;
    }
    /* The end of the stream, or an error: after the spilled results. */
    if (op->spill) {
        op->has_final = true;
        op->final_res = res;
        op_pause(u, op);
        return;
    }
    op_finish(u, op, res);
}

static void handle_cqe(struct uring_driver *u, const struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    if (ud == TAG_WAKE) {
        u->wake_armed = false;
        return;
    }
    if (ud == TAG_IGNORE || ud == LIBURING_UDATA_TIMEOUT)
        return;
    struct io_op *op = (struct io_op *)(uintptr_t)ud;
    if (op->qsize) {
        multi_cqe(u, op, cqe->res, cqe->flags);
        return;
    }
    /* A caller's multishot SQE: its final completion is the result. */
    if (op->kind == IO_SQE && (cqe->flags & IORING_CQE_F_MORE))
        return;
    int32_t res = cqe->res;
    if (op->kind == IO_TIMEOUT && res == -ETIME)
        res = 0;
    list_del(&u->inflight, op);
    u->io.inflight--;
    if (op->uflags & UF_CANCEL_BACKLOG)
        backlog_remove(u, op);
    op->ustate = U_IDLE;
    wisp__io_complete(op, res);
}

/* Enters the kernel only if it holds completion work or overflowed CQEs. */
static void ring_get_events(struct uring_driver *u)
{
    /* relaxed: a hint the kernel sets; the enter below synchronises. */
    unsigned f = IO_URING_READ_ONCE(*u->ring.sq.kflags);
    if (f & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) {
        int r;
        do
            r = io_uring_get_events(&u->ring);
        while (r == -EINTR);
    }
}

static unsigned ring_reap(struct uring_driver *u)
{
    unsigned total = 0;
    for (;;) {
        ring_get_events(u);
        struct io_uring_cqe *cqes[REAP_BATCH];
        unsigned n = io_uring_peek_batch_cqe(&u->ring, cqes, REAP_BATCH);
        if (!n)
            break;
        for (unsigned i = 0; i < n; i++)
            handle_cqe(u, cqes[i]);
        io_uring_cq_advance(&u->ring, n);
        total += n;
    }
    return total;
}

/* Completions to reap, or completion work the kernel holds for us. */
static bool ring_has_events(struct uring_driver *u)
{
    return io_uring_cq_ready(&u->ring) ||
           (IO_URING_READ_ONCE(*u->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW));
}

/* ---- paused ops and the backlog ------------------------------------------------------ */

static void resume_check(struct uring_driver *u)
{
    pool_take_returned(u);
    for (struct io_op *op = u->paused, *next; op; op = next) {
        next = op->lnext;
        /* acquire: pairs with the drop's release. */
        uint32_t s = atomic_load_explicit(&op->state, memory_order_acquire);
        bool starved = op->uflags & UF_STARVED;
        bool leave = false;
        int32_t res = 0;
        if (u->stopping || (s & OP_DROPPED)) {
            leave = true;
            res = -ECANCELED;
        } else {
            while (op->spill && wisp__io_multi_push(op, op->spill->res, op->spill->bid)) {
                struct io_spill *sp = op->spill;
                op->spill = sp->next;
                alloc_free(sp);
            }
            if (!op->spill)
                op->spill_tail = NULL;
            if (op->spill)
                continue;
            if (op->has_final) {
                leave = true;
                res = op->final_res;
            } else if (wisp__io_multi_queued(op) > op->qsize / 4 ||
                       (starved && u->pool->avail == 0)) {
                continue;
            }
        }
        list_del(&u->paused, op);
        if (starved)
            atomic_fetch_sub_explicit(&u->nstarved, 1, memory_order_relaxed);
        op->uflags &= (uint8_t)~UF_STARVED;
        if (leave) {
            op_finish(u, op, res);
        } else {
            atomic_fetch_and_explicit(&op->state, ~OP_PAUSED, memory_order_relaxed);
            op_start(u, op);
        }
    }
}

static void backlog_run(struct uring_driver *u)
{
    struct io_op *op = u->backlog;
    u->backlog = u->backlog_tail = NULL;
    while (op) {
        struct io_op *next = op->bnext;
        if (op->uflags & UF_CANCEL_BACKLOG) {
            op->uflags &= (uint8_t)~UF_CANCEL_BACKLOG;
            cancel_send(u, op);
        } else {
            op_start(u, op);
        }
        op = next;
    }
}

static void uring_cancel(struct io_driver *d, struct io_op *op)
{
    struct uring_driver *u = to_uring(d);
    switch (op->ustate) {
    case U_KERNEL:
        cancel_send(u, op);
        break;
    case U_PAUSED:
        list_del(&u->paused, op);
        if (op->uflags & UF_STARVED)
            atomic_fetch_sub_explicit(&u->nstarved, 1, memory_order_relaxed);
        op_finish(u, op, -ECANCELED);
        break;
    case U_BACKLOG: /* not in the kernel yet: unlink it and finish */
        backlog_remove(u, op);
        op_finish(u, op, -ECANCELED);
        break;
    default:
        break;
    }
}

static bool uring_ready(struct io_driver *d)
{
    struct uring_driver *u = to_uring(d);
    /* relaxed: a hint; the poll that follows synchronises. */
    return u->enabled && (ring_has_events(u) ||
                          atomic_load_explicit(&d->remote, memory_order_relaxed) != NULL);
}

static bool uring_expecting(struct io_driver *d)
{
    return to_uring(d)->enabled && d->inflight > 0;
}

static unsigned uring_poll(struct io_driver *d)
{
    struct uring_driver *u = to_uring(d);
    if (!u->enabled)
        return 0;
    wisp__io_drain_remote(d);
    if (u->backlog)
        backlog_run(u);
    if (io_uring_sq_ready(&u->ring)) {
        /* relaxed: a hint the kernel sets; the enter synchronises.  With
         * completion work waiting too, one enter submits and runs it
         * (wisp-httpd under wrk: 1.44 enters per request before). */
        if (IO_URING_READ_ONCE(*u->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) {
            int r;
            do
                r = io_uring_submit_and_get_events(&u->ring);
            while (r == -EINTR);
        }
        ring_flush(u); /* what is left, if anything (a full SQ, a refusal) */
    }
    unsigned n = 0;
    if (io_uring_cq_ready(&u->ring) ||
        (IO_URING_READ_ONCE(*u->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)))
        n = ring_reap(u);
    if (u->paused || (u->pool && atomic_load_explicit(&u->pool->returned, memory_order_relaxed)))
        resume_check(u);
    return n;
}

/* ---- parking ----------------------------------------------------------------------------- */

static bool arm_wake(struct uring_driver *u)
{
    if (u->wake_armed)
        return true;
    struct io_uring_sqe *sqe = sqe_get(u);
    if (!sqe)
        return false;
    if (u->wake_method == WAKE_FUTEX) {
        io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe, URING_FUTEX2_SIZE_U32 | URING_FUTEX2_PRIVATE,
                         (const void *)&u->park, 0, PARK_RING);
        sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
    } else {
        io_uring_prep_read(sqe, u->efd, &u->efd_buf, sizeof(u->efd_buf), 0);
    }
    io_uring_sqe_set_data64(sqe, TAG_WAKE);
    u->wake_armed = true;
    return true;
}

static int uring_park(struct wisp__driver *base, uint64_t deadline_ns)
{
    struct uring_driver *u = (struct uring_driver *)base;
    uint32_t s = PARK_NOTIFIED;
    /* acquire: pairs with the unparker's release exchange. */
    if (atomic_compare_exchange_strong_explicit(&u->park, &s, PARK_EMPTY, memory_order_acquire,
                                                memory_order_relaxed))
        return DRIVER_UNPARKED;
    bool in_ring = u->enabled && !u->stopping &&
                   (u->io.inflight || u->backlog || io_uring_sq_ready(&u->ring));
    if (u->enabled && ring_has_events(u))
        return DRIVER_EVENTS;
    if (in_ring && !arm_wake(u))
        in_ring = false; /* no SQE for the wake-up: sleep briefly instead */
    uint32_t mode = in_ring ? PARK_RING : PARK_FUTEX;
    /* s is EMPTY (only the owner leaves NOTIFIED).  acquire on failure:
     * NOTIFIED arrived meanwhile. */
    if (!atomic_compare_exchange_strong_explicit(&u->park, &s, mode, memory_order_acquire,
                                                 memory_order_acquire)) {
        atomic_store_explicit(&u->park, PARK_EMPTY, memory_order_relaxed);
        return DRIVER_UNPARKED;
    }
    int r;
    if (in_ring) {
        struct io_uring_cqe *cqe;
        if (deadline_ns == DRIVER_FOREVER) {
            r = io_uring_submit_and_wait(&u->ring, 1);
        } else {
            uint64_t now = clock_now_ns(), left = deadline_ns > now ? deadline_ns - now : 0;
            struct __kernel_timespec ts = { .tv_sec = (long long)(left / NS_PER_SEC),
                                            .tv_nsec = (long long)(left % NS_PER_SEC) };
            r = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        }
        if (r == -ETIME)
            r = -ETIMEDOUT;
    } else {
        uint64_t deadline = deadline_ns;
        if (u->backlog) { /* the SQ is stuck: retry soon */
            uint64_t soon = clock_now_ns() + 1000000;
            deadline = deadline < soon ? deadline : soon;
        }
        r = futex_wait_until(&u->park, PARK_FUTEX, deadline);
    }
    /* acquire: pairs with the unparker's release. */
    if (atomic_exchange_explicit(&u->park, PARK_EMPTY, memory_order_acquire) == PARK_NOTIFIED)
        return DRIVER_UNPARKED;
    if (u->enabled && ring_has_events(u))
        return DRIVER_EVENTS;
    return r == -ETIMEDOUT ? DRIVER_TIMEDOUT : DRIVER_UNPARKED;
}

static void uring_unpark(struct wisp__driver *base)
{
    struct uring_driver *u = (struct uring_driver *)base;
    int efd = u->efd;
    bool futex = u->wake_method == WAKE_FUTEX;
    /* release: pairs with park's acquire.  Our last access to the driver's
     * memory, but for the wake itself (a system call on the word's
     * address, or on the eventfd, both alive until the runtime is freed). */
    uint32_t prev = atomic_exchange_explicit(&u->park, PARK_NOTIFIED, memory_order_release);
    if (prev == PARK_FUTEX || (prev == PARK_RING && futex)) {
        futex_wake(&u->park, INT_MAX); /* both sleepers, see the top of file */
    } else if (prev == PARK_RING) {
        uint64_t one = 1;
        while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
    }
}

static const struct driver_ops uring_driver_ops = { uring_park, uring_unpark };

/* ---- shutdown ------------------------------------------------------------------------------ */

static void uring_shutdown(struct io_driver *d)
{
    struct uring_driver *u = to_uring(d);
    if (!u->enabled) {
        wisp__io_close_remote(d);
        return;
    }
    u->stopping = true;
    wisp__io_drain_remote(d);
    for (struct io_op *op = u->backlog, *next; op; op = next) {
        next = op->bnext;
        op->uflags &= (uint8_t)~UF_CANCEL_BACKLOG;
        if (op->ustate == U_BACKLOG)
            op_finish(u, op, -ECANCELED);
    }
    u->backlog = u->backlog_tail = NULL;
    resume_check(u); /* stopping: every paused op finishes */
    uint64_t last_cancel = 0;
    while (u->io.inflight || u->wake_armed) {
        uint64_t now = clock_now_ns();
        if (now - last_cancel >= STOP_RETRY_NS) {
            for (struct io_op *op = u->inflight; op; op = op->lnext)
                cancel_send(u, op);
            if (u->wake_armed) {
                struct io_uring_sqe *sqe = sqe_get(u);
                if (sqe) {
                    io_uring_prep_cancel64(sqe, TAG_WAKE, 0);
                    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
                }
            }
            last_cancel = now;
        }
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = (long long)STOP_RETRY_NS };
        io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        ring_reap(u);
        wisp__io_drain_remote(d);
        if (u->backlog)
            backlog_run(u);
    }
    wisp__io_close_remote(d);
    io_uring_queue_exit(&u->ring);
    u->ring_open = false;
    u->enabled = false;
}

/* ---- setup ---------------------------------------------------------------------------------- */

static const unsigned setup_flags[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_R_DISABLED,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL |
        IORING_SETUP_R_DISABLED,
    IORING_SETUP_R_DISABLED,
    0,
};

/* A ring of at most entries: 0 or -errno (-ENOMEM after halving down to
 * MIN_ENTRIES; what the kernel said when it refuses io_uring). */
static int ring_setup(struct io_uring *ring, unsigned entries, unsigned *flags_out)
{
    int r = -EINVAL;
    for (unsigned i = 0; i < sizeof(setup_flags) / sizeof(setup_flags[0]); i++) {
        for (unsigned n = entries; n >= MIN_ENTRIES; n /= 2) {
            struct io_uring_params p;
            memset(&p, 0, sizeof(p));
            p.flags = setup_flags[i];
            r = fault_alloc() ? -ENOMEM : io_uring_queue_init_params(n, ring, &p);
            if (r == 0) {
                *flags_out = setup_flags[i];
                return 0;
            }
            if (r != -ENOMEM)
                break;
        }
        if (r != -EINVAL)
            return r; /* EPERM, ENOSYS, ENOMEM: io_uring is not for us */
    }
    return r;
}

int wisp__io_uring_probe(unsigned entries)
{
    struct io_uring ring;
    unsigned flags;
    int r = ring_setup(&ring, entries < MIN_ENTRIES ? MIN_ENTRIES : entries, &flags);
    if (r == 0)
        io_uring_queue_exit(&ring);
    return r;
}

/* Whether this kernel's rings take IORING_OP_FUTEX_WAIT. */
static bool futex_wait_supported(struct io_uring *ring)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    if (!p)
        return false;
    bool ok = io_uring_opcode_supported(p, IORING_OP_FUTEX_WAIT);
    io_uring_free_probe(p);
    return ok;
}

static int wake_method_wanted(void)
{
    const char *e = getenv("WISP_IO_WAKE");
    if (e && !strcmp(e, "eventfd"))
        return WAKE_EVENTFD;
    if (e && !strcmp(e, "futex"))
        return WAKE_FUTEX;
    return -1;
}

static void uring_free(struct io_driver *d)
{
    struct uring_driver *u = to_uring(d);
    if (u->ring_open)
        io_uring_queue_exit(&u->ring);
    if (u->efd >= 0)
        close(u->efd);
    pool_free(u->pool);
    alloc_free(u);
}

static void uring_start(struct io_driver *d)
{
    struct uring_driver *u = to_uring(d);
    /* liburing 2.3 declares io_uring_enable_rings but does not export it:
     * the system call itself. */
    if ((u->ring.flags & IORING_SETUP_R_DISABLED) &&
        syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
        return; /* left disabled: ops on this worker get -ENOSYS */
    /* best effort: a registered ring fd saves a file lookup per enter */
    io_uring_register_ring_fd(&u->ring);
    u->enabled = true;
    /* Warm-up: the first submission from a thread sets up its io_uring
     * context in the kernel (hundreds of microseconds) and faults in the
     * rings' pages.  One NOP round trip here keeps that out of the first
     * task's poll, where it would stall the worker with tasks queued (and
     * invite a thief to take them: worker.c's lone rule).  Best effort. */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe) {
        struct io_uring_cqe *cqe;
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, TAG_IGNORE); /* if peek misses it, a reap will */
        if (io_uring_submit_and_wait(&u->ring, 1) == 1 && io_uring_peek_cqe(&u->ring, &cqe) == 0)
            io_uring_cqe_seen(&u->ring, cqe);
    }
}

static const struct io_backend uring_backend;

struct io_driver *wisp__io_uring_new(struct wisp_runtime *rt, struct worker *w, int *err)
{
    struct uring_driver *u = alloc_zeroed(1, sizeof(*u), _Alignof(struct uring_driver));
    if (!u) {
        *err = -ENOMEM;
        return NULL;
    }
    u->efd = -1;
    u->io.base.ops = &uring_driver_ops;
    u->io.backend = &uring_backend;
    u->io.owner = w;
    u->io.rt = rt;
    atomic_init(&u->io.remote, NULL);
    atomic_init(&u->park, PARK_EMPTY);
    atomic_init(&u->nstarved, 0);
    unsigned flags;
    int r = ring_setup(&u->ring, rt->config.ring_entries, &flags);
    if (r < 0) {
        alloc_free(u);
        *err = r;
        return NULL;
    }
    u->ring_open = true;
    int want = wake_method_wanted();
    bool futex_ok = futex_wait_supported(&u->ring);
    u->wake_method = (want == WAKE_EVENTFD || !futex_ok) ? WAKE_EVENTFD : WAKE_FUTEX;
    if (want == WAKE_FUTEX && !futex_ok) {
        uring_free(&u->io);
        *err = -EOPNOTSUPP;
        return NULL;
    }
    if (u->wake_method == WAKE_EVENTFD) {
        /* blocking: the ring polls it */
        int e = fault_alloc() ? ENOMEM : 0;
        if (!e && (u->efd = eventfd(0, EFD_CLOEXEC)) < 0)
            e = errno;
        if (e) {
            *err = -e;
            uring_free(&u->io);
            return NULL;
        }
    }
    return &u->io;
}

static const struct io_backend uring_backend = {
    .name = "io_uring",
    .id = WISP_IO_URING,
    .start = uring_start,
    .submit = uring_submit,
    .cancel = uring_cancel,
    .poll = uring_poll,
    .ready = uring_ready,
    .expecting = uring_expecting,
    .shutdown = uring_shutdown,
    .free = uring_free,
    .recycle = uring_recycle,
    .bufdata = uring_bufdata,
};
