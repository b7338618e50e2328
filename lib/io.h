/* io.h - the I/O layer's insides: the operation object that outlives its
 * future, the per-worker I/O driver both backends implement, and the calls
 * between the future side (io_op.c) and the backends (io_uring.c,
 * io_epoll.c).
 *
 * Owns: struct io_op's layout and lifecycle (the protocol is at the top of
 * io_op.c) and struct io_driver's common part. */
#ifndef WISP_IO_INTERNAL_H
#define WISP_IO_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <linux/stat.h>

#include <wisp/io.h>
#include <wisp/time.h>

#include "atomic_waker.h"
#include "driver.h"

struct io_uring_sqe;
struct worker;
struct wisp_runtime;

/* What an operation does. */
enum io_kind {
    IO_NONE,
    IO_ACCEPT,
    IO_ACCEPT_MULTI,
    IO_CONNECT,
    IO_RECV,
    IO_RECV_MULTI,
    IO_SEND,
    IO_RECVMSG,
    IO_SENDMSG,
    IO_READ,
    IO_WRITE,
    IO_READV,
    IO_WRITEV,
    IO_OPENAT,
    IO_CLOSE,
    IO_FSYNC,
    IO_STATX,
    IO_POLL,
    IO_TIMEOUT,
    IO_SQE,
};

/* io_op.state bits (io_op.c says who sets which). */
#define OP_COMPLETE 1u      /* the last completion arrived; res is final */
#define OP_DROPPED 2u       /* the future is gone: whoever finishes frees */
#define OP_CANCEL_QUEUED 4u /* a cancel request sits in the owner's queue */
#define OP_PAUSED 128u      /* multishot: stopped until its future takes results */

#define IO_MAX_BUFS 16      /* buffers of one vectored operation */

/* Multishot operations queue results for their future: accept_multi up to
 * 256, recv_multi up to 64 (each of those holds a provided buffer).  At
 * half full the owner pauses the operation (cancels it in the kernel) and
 * resumes it once the future has taken the queue down to a quarter; what
 * arrives while the queue is full waits in the owner's spill list. */
#define MULTI_QUEUE_ACCEPT 256
#define MULTI_QUEUE_RECV 64

/* A result waiting in an op's spill list (owner only). */
struct io_spill {
    struct io_spill *next;
    int32_t res;
    int32_t bid;
};

/* An operation in flight.  Allocated when its future is first polled,
 * freed when both its future and its driver are done with it. */
struct io_op {
    _Atomic uint32_t state;
    uint8_t kind;                  /* enum io_kind */
    uint8_t remote_what;           /* REMOTE_SUBMIT or REMOTE_CANCEL */
    /* The backend's, on its owner thread only. */
    uint8_t ustate;
    uint8_t uflags;
    struct io_driver *drv;         /* the driver (ring, epoll) that owns it */
    struct io_op *remote_next;     /* its driver's remote queue */
    struct io_op *lprev, *lnext;   /* backend: its in-flight or paused list */
    struct io_op *bnext;           /* backend: its backlog */
    struct atomic_waker waker;
    int32_t res;                   /* oneshot: the result */
    int fd;
    int flags;
    unsigned mask;                 /* statx mask, poll events, fsync datasync */
    mode_t mode;
    uint64_t offset;
    /* What the kernel may read or write until the completion: owned here
     * while in flight, whatever happens to the future. */
    wisp_buf_t *buf;
    unsigned nbufs;
    wisp_buf_t *bufs[IO_MAX_BUFS];
    union {
        struct {
            struct iovec iov[IO_MAX_BUFS];
            struct msghdr msg;
        };
        struct statx stx;
        uint64_t ts[2];            /* a __kernel_timespec for IO_TIMEOUT */
    };
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *path;
    void (*prep)(struct io_uring_sqe *sqe, void *arg);
    void (*release)(void *arg, int64_t res);
    void *arg;
    /* Multishot: results the future has not taken yet, a single-producer
     * (the owner) single-consumer (the poller) ring of qsize slots: mtail
     * written by the owner (release), mhead by the poller (release); each
     * reads the other's with acquire.  Allocated with the op. */
    _Atomic uint32_t mtail, mhead;
    uint32_t qsize;
    int32_t *mres;
    int32_t *mbid;                 /* recv_multi: the provided buffer id */
    /* Owner only: results that found the queue full, in order, and a final
     * result held back until they are queued. */
    struct io_spill *spill, *spill_tail;
    int32_t final_res;
    bool has_final;
};

/* ---- the future ---------------------------------------------------------------- */

/* The layout behind wisp_io_t: what was prepared, and where it stands. */
enum fut_state { FUT_IDLE, FUT_STARTED, FUT_DONE };

/* epoll: a future waiting for its descriptor's readiness, linked into the
 * descriptor's registration (io_epoll.c; under the registration's lock). */
struct io_waiter {
    struct io_waiter *next, *prev;
    wisp_waker_t waker;
    uint32_t events;               /* EPOLLIN and/or EPOLLOUT */
    bool linked;
};

struct io_future {
    struct io_op *op;              /* started as an op (io_uring; epoll's pool work) */
    struct io_driver *drv;         /* epoll: the driver it started on */
    void *reg;                     /* epoll: the descriptor's registration */
    int64_t result;
    uint8_t kind;                  /* enum io_kind */
    uint8_t state;                 /* enum fut_state */
    uint8_t eflags;                /* epoll: the readiness loop's progress */
    int fd;
    int flags;
    unsigned n;                    /* nbufs, mask, events, datasync */
    uint64_t offset;               /* offset, timeout */
    wisp_buf_t *buf;
    union {
        struct {
            wisp_buf_t **bufs;
            const char *path;
            struct sockaddr *addr_out;
            const struct sockaddr *addr_in;
            socklen_t *addrlen_out;
            socklen_t addrlen_in;
            mode_t mode;
            struct statx *stx_out;
            void (*prep)(struct io_uring_sqe *sqe, void *arg);
            void (*release)(void *arg, int64_t res);
            void *arg;
        };
        wisp_sleep_t sleep;        /* epoll: IO_TIMEOUT */
    };
    struct io_waiter waiter;       /* epoll */
};

_Static_assert(sizeof(struct io_future) <= sizeof(wisp_io_t), "wisp_io_t too small");
_Static_assert(_Alignof(struct io_future) <= _Alignof(wisp_io_t), "wisp_io_t alignment");

/* ---- the driver --------------------------------------------------------------- */

/* Requests from other threads to a driver's owner (io_op.c pushes them,
 * the backend drains them on its own thread). */
#define REMOTE_SUBMIT 1
#define REMOTE_CANCEL 2

struct io_backend;

/* A worker's I/O driver.  The owner is the worker's thread; other threads
 * reach it only through remote (an MPSC stack) and base.unpark. */
struct io_driver {
    struct wisp__driver base;      /* parking in the ring / epoll_wait */
    const struct io_backend *backend;
    struct worker *owner;
    struct wisp_runtime *rt;
    _Atomic(struct io_op *) remote; /* Treiber stack of requests */
    unsigned inflight;             /* owner only: ops submitted, not completed */
};

struct io_backend {
    const char *name;
    unsigned id;                   /* WISP_IO_URING or WISP_IO_EPOLL */
    /* submit and cancel may be called from any thread (no remote queue). */
    bool any_thread;
    /* Owner thread, before its loop. */
    void (*start)(struct io_driver *d);
    /* Owner thread: start op on this driver.  0, or a negative errno as the
     * op's immediate result (nothing in flight then). */
    int (*submit)(struct io_driver *d, struct io_op *op);
    /* Owner thread: ask the kernel to cancel op (in flight here). */
    void (*cancel)(struct io_driver *d, struct io_op *op);
    /* Owner thread: submit what is prepared, reap what completed, drain
     * the remote queue; never blocks.  Returns completions handled. */
    unsigned (*poll)(struct io_driver *d);
    /* Owner thread: whether poll has something to do, without a system
     * call (false when the backend cannot tell). */
    bool (*ready)(struct io_driver *d);
    /* Owner thread: whether completions are due (operations in flight)
     * that ready would notice. */
    bool (*expecting)(struct io_driver *d);
    /* Owner thread, after its loop: cancel everything in flight, wait for
     * every completion, close the remote queue (wisp__io_close_remote). */
    void (*shutdown)(struct io_driver *d);
    /* When the runtime is freed (no thread uses the driver any more). */
    void (*free)(struct io_driver *d);
    /* recv_multi: give provided buffer bid back to the ring (any thread). */
    void (*recycle)(struct io_driver *d, unsigned bid);
    /* The bytes of provided buffer bid (recv_multi). */
    const char *(*bufdata)(struct io_driver *d, unsigned bid);
};

/* ---- between io_op.c and the backends ---------------------------------------------- */

/* A backend reports an op's (last) completion: on the owner's thread, or,
 * for work the epoll backend hands to the blocking pool, on the pool's. */
void wisp__io_complete(struct io_op *op, int32_t res);
/* Multishot, owner: queues one result (bid: its provided buffer, or -1)
 * for the future and wakes it; false if the queue is full (the owner
 * spills it).  A dropped op's results are disposed of (true). */
bool wisp__io_multi_push(struct io_op *op, int32_t res, int32_t bid);
/* Results queued and not yet taken. */
uint32_t wisp__io_multi_queued(const struct io_op *op);
/* Disposes of a result nobody will take: closes an accepted descriptor,
 * gives a provided buffer back. */
void wisp__io_multi_dispose(struct io_op *op, int32_t res, int32_t bid);
/* The owner drains its remote queue: submits and cancels requested from
 * other threads. */
void wisp__io_drain_remote(struct io_driver *d);
/* The owner, at shutdown after its last drain: later requests are answered
 * by their senders (a submit completes with -ESHUTDOWN). */
void wisp__io_close_remote(struct io_driver *d);
/* A new op for future f's operation on d (both references held). */
struct io_op *wisp__io_op_new(struct io_future *f, struct io_driver *d, int *err);
/* A vectored transfer of bytes: the buffers' len (filled) or pos (sent)
 * advanced in order. */
void wisp__io_bufs_filled(wisp_buf_t **bufs, unsigned n, size_t bytes);
void wisp__io_bufs_sent(wisp_buf_t **bufs, unsigned n, size_t bytes);
/* Frees an op no one uses any more (closing an fd result nobody took). */
void wisp__io_op_free(struct io_op *op);

/* ---- the runtime's side ----------------------------------------------------------- */

/* Picks the backend for rt (config.io, WISP_IO, what the kernel allows)
 * and creates a driver for every worker (w->io, which also becomes the
 * worker's parking driver), before the workers start: 0 or -errno. */
int wisp__io_runtime_init(struct wisp_runtime *rt);
/* Frees the drivers (the runtime's last step). */
void wisp__io_runtime_destroy(struct wisp_runtime *rt);
/* On the worker's thread, before and after its loop. */
void wisp__io_worker_start(struct worker *w);
void wisp__io_worker_stop(struct worker *w);
/* The worker's chores: submit what is prepared, reap what completed (its
 * tasks are woken onto this worker), take remote requests.  No system call
 * when there is nothing to do.  Returns the completions handled. */
static inline unsigned io_worker_poll(struct io_driver *d)
{
    return d ? d->backend->poll(d) : 0;
}

/* Whether io_worker_poll would find completions or requests (cheap: a few
 * loads; a spinning worker asks between pauses). */
static inline bool io_worker_ready(struct io_driver *d)
{
    return d && d->backend->ready(d);
}

static inline bool io_worker_expecting(struct io_driver *d)
{
    return d && d->backend->expecting(d);
}

/* The backends' constructors (on the thread creating the runtime). */
struct io_driver *wisp__io_uring_new(struct wisp_runtime *rt, struct worker *w, int *err);
struct io_driver *wisp__io_epoll_new(struct wisp_runtime *rt, struct worker *w, int *err);
/* Whether io_uring can be set up here at all (a probe ring): 0 or -errno. */
int wisp__io_uring_probe(unsigned entries);

/* The future ends with res (READY; *output set if output). */
wisp_poll_t wisp__io_done(struct io_future *f, int64_t res, void **output);
/* Starts f's operation as an op on d and reports where it stands. */
wisp_poll_t wisp__io_op_path(struct io_future *f, struct io_driver *d, wisp_context_t *cx,
                             void **output);

/* epoll: socket operations are readiness loops run by the poller itself
 * (no op); file operations that would block run on the blocking pool (as
 * an op, through wisp__io_op_path). */
wisp_poll_t wisp__io_epoll_poll(struct io_driver *d, struct io_future *f, wisp_context_t *cx,
                                void **output);
void wisp__io_epoll_drop(struct io_future *f);

#endif /* WISP_IO_INTERNAL_H */
