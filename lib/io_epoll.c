/* io_epoll.c - the epoll backend: where io_uring cannot be set up (a
 * seccomp filter, io_uring_disabled, an old kernel) or where the config or
 * WISP_IO asks for it.  Same API and results as io_uring.c.
 *
 * Owns: struct epoll_driver (a worker's epoll instance, its eventfd and park
 * word), the runtime's table of descriptor registrations (struct fd_reg),
 * and the readiness loops of the socket operations.  Touches: io_op.c's op
 * path for the work it hands to the blocking pool, the timer futures
 * (IO_TIMEOUT is a sleep).
 *
 * READINESS LOOPS.  A socket operation is tried at once, non-blocking
 * (MSG_DONTWAIT; accept and connect make their socket O_NONBLOCK); when
 * the kernel says EAGAIN the future links a waiter into the descriptor's
 * registration and arms it, and returns PENDING; its next poll tries
 * again.  No op and no allocation: the future's memory holds the waiter.
 *
 * REGISTRATIONS.  One per descriptor number per runtime, in a table
 * allocated in chunks on first use and freed with the runtime, so an event
 * never finds freed memory.  A descriptor is added once, at its first
 * wait, edge-triggered for input, output and hang-up, to the epoll
 * instance of the worker that waited (its home), and stays there until
 * wisp_io_close deletes it: a wait costs no epoll_ctl (Tokio's and Go's
 * design; the one-shot re-arm it replaces cost an epoll_ctl per wait, a
 * quarter of the system calls of an echo round trip).
 *
 * THE TICK PROTOCOL (no lost wakeup with edge triggers).  Each
 * registration counts the events handled per direction, tick[IN] and
 * tick[OUT]; the handler bumps them under the registration's lock.  An
 * operation reads the ticks (acquire) before its non-blocking attempt;
 * when the attempt says EAGAIN it takes the lock, makes sure the
 * descriptor is registered, and compares: a tick that moved means an
 * event was handled since the attempt began, so it retries instead of
 * waiting; else it links its waiter and returns PENDING.  Proof sketch:
 * readiness that the attempt missed came after the kernel checked the
 * socket, so its edge is queued after the attempt (or, if the descriptor
 * was not registered yet, the EPOLL_CTL_ADD made under the lock reports
 * it), and the handler that takes it bumps the tick after the attempt's
 * read of it.  The handler and the waiter meet under the lock: if the
 * handler is first, the waiter sees the tick moved and retries; if the
 * waiter is first, the handler finds it linked and wakes it.
 *
 * QUIET.  A recv on a stream socket that returned fewer bytes than asked
 * drained the receive queue; it records the input tick it read before the
 * attempt (fd_reg.quiet).  The next recv, finding the descriptor
 * registered and the tick unchanged, waits at once without the attempt
 * (which could only say EAGAIN): bytes that arrived since made an edge
 * that moves the tick, and the wait's comparison under the lock catches
 * it.  One recv per message instead of two (Tokio clears its readiness
 * the same way).  Datagram sockets are excluded: a short read there says
 * nothing of the next datagram.  So is a socket whose peer closed (an
 * event with RDHUP, HUP or ERR was handled: fd_reg.hup): the end of the
 * stream that came with the last bytes is still to be read (a recv
 * returns 0) and no edge will announce it again.  The handler sets hup
 * before its release bump of the tick, so a recv that read that tick
 * (acquire) sees hup; a later bump moves the tick and the shortcut is not
 * taken either.
 *
 * STALE REGISTRATIONS.  The kernel drops a closed file from every epoll
 * set, but the table would still say "registered" for its number, and a
 * new file under that number would wait for edges that never come.  So a
 * registration is trusted only when wisp saw its file made: a descriptor
 * its accept returned, or a socket its connect started on, marks the
 * number fresh (forgetting what the table held for it), and the
 * registration made next for it is trusted.  wisp_io_close deletes and
 * forgets.  A wait on an untrusted registration (a socketpair, a pipe, a
 * descriptor from elsewhere) revalidates it with EPOLL_CTL_MOD, which
 * says ENOENT when the kernel no longer knows the file (it was closed and
 * its number reused), and then adds it again: one epoll_ctl per wait, the
 * price of not knowing.  QUIET needs a trusted registration.  A trusted
 * descriptor closed with close(2) behind wisp's back and reused by
 * something wisp did not make keeps the stale registration and may never
 * be woken: wisp/io.h asks for wisp_io_close.
 *
 * The registration's lock covers its waiter list, its registered flag
 * and home, and the tick bumps.  When an event comes (on the home
 * worker's thread), the handler bumps the ticks and takes out and wakes
 * the waiters whose events came (all of them on an error or hang-up).
 * Wakes happen after the lock is dropped.
 *
 * FILES.  A read or write at an offset is tried inline with RWF_NOWAIT
 * (page-cache hits cost one system call, no thread hop); when the kernel
 * would block (EAGAIN, EOPNOTSUPP) it becomes an op run on the blocking
 * pool, as are openat, fsync and statx.  A read or write at the current
 * position is a stream (a pipe, a socket): RWF_NOWAIT, readiness on
 * EAGAIN, the pool where the descriptor cannot be polled (a regular file:
 * EPERM).  Close forgets the registration (waking its waiters, who then see
 * EBADF) and closes inline.  Pool ops live by io_op.c's lifecycle; they
 * complete on the pool's thread, and a drop only marks them (a running
 * read cannot be stopped; a queued one sees DROPPED and does not run).
 *
 * PARKING.  The park word is EMPTY, NOTIFIED or PARKED; unpark exchanges
 * NOTIFIED and writes the eventfd if it found PARKED; park consumes
 * NOTIFIED or CASes EMPTY -> PARKED and sleeps in epoll_wait, which the
 * eventfd (registered level-triggered) wakes: an unpark that comes before
 * the wait makes it return at once.  The same RMW argument as
 * driver_futex.c.  Events that come with the wake are handled before park
 * returns (DRIVER_EVENTS when they woke a task). */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "lock.h"
#include "runtime.h"

#define REG_CHUNK 1024
#define REG_DIR 4096 /* descriptors below 4 Mi */
#define EVENT_BATCH 64
#define WAKE_BATCH 16
/* The kernel's cap on one read or write (MAX_RW_COUNT). */
#define RW_MAX 0x7ffff000u

/* io_future.eflags */
#define EF_NONBLOCK 1u   /* the socket was made non-blocking */
#define EF_CONNECTING 2u /* connect returned EINPROGRESS */
#define EF_SLEEPING 4u   /* IO_TIMEOUT: the sleep is initialised */

struct epoll_driver;

enum { DIR_IN, DIR_OUT };

struct fd_reg {
    struct wisp__lock lock;
    int fd;                        /* its place in the table */
    /* In home's epoll set (edge-triggered).  Written under the lock;
     * relaxed reads outside it are hints (QUIET), rechecked under it. */
    _Atomic bool registered;
    bool trusted;                  /* registered while fresh (STALE REGISTRATIONS) */
    _Atomic bool fresh;            /* accepted or connected by wisp since it was last registered */
    bool stream;                   /* SOCK_STREAM */
    /* trusted and stream: QUIET applies.  Written under the lock, read
     * relaxed by recv (a hint: the registration it names is rechecked). */
    _Atomic bool quiet_ok;
    struct epoll_driver *home;     /* the epoll instance it is registered in */
    struct io_waiter *waiters;
    /* Events handled per direction (THE TICK PROTOCOL): bumped under the
     * lock with release, read with acquire before an attempt. */
    _Atomic uint32_t tick[2];
    /* QUIET: 1 << 32 | tick[IN] at the start of the short recv, 0: none.
     * Relaxed: a hint whose use the tick comparison makes safe. */
    _Atomic uint64_t quiet;
    /* The peer closed or the socket failed (QUIET): set by the handler
     * (relaxed, before its release bump of the ticks), cleared on forget. */
    _Atomic bool hup;
};

struct epoll_table {
    _Atomic(struct fd_reg *) dir[REG_DIR];
};

struct epoll_driver {
    struct io_driver io;           /* first */
    int epfd, efd;
    struct epoll_table *table;
    /* Registrations homed here: a hint that lets poll skip epoll_wait. */
    _Atomic int narmed;
    /* Owner only: when a non-blocking epoll_wait last found nothing. */
    uint64_t last_empty_ns;
    _Alignas(WISP_CACHE_LINE) _Atomic uint32_t park;
};

enum { PARK_EMPTY, PARK_NOTIFIED, PARK_PARKED };

static inline struct epoll_driver *to_epoll(struct io_driver *d)
{
    return (struct epoll_driver *)d;
}

/* ---- the registration table ------------------------------------------------------ */

static struct fd_reg *reg_get(struct epoll_table *t, int fd, int *err)
{
    if (fd < 0 || fd >= REG_DIR * REG_CHUNK) {
        *err = fd < 0 ? -EBADF : -EMFILE;
        return NULL;
    }
    _Atomic(struct fd_reg *) *slot = &t->dir[fd / REG_CHUNK];
    /* acquire: pairs with the release CAS that published the chunk. */
    struct fd_reg *chunk = atomic_load_explicit(slot, memory_order_acquire);
    if (!chunk) {
        struct fd_reg *fresh = alloc_zeroed(REG_CHUNK, sizeof(*fresh), 0);
        if (!fresh) {
            *err = -ENOMEM;
            return NULL;
        }
        for (unsigned i = 0; i < REG_CHUNK; i++) {
            lock_init(&fresh[i].lock);
            fresh[i].fd = (int)((unsigned)fd / REG_CHUNK * REG_CHUNK + i);
        }
        /* release: the chunk's initialisation before its publication. */
        if (atomic_compare_exchange_strong_explicit(slot, &chunk, fresh, memory_order_acq_rel,
                                                    memory_order_acquire))
            chunk = fresh;
        else
            alloc_free(fresh); /* another thread published one first */
    }
    return &chunk[fd % REG_CHUNK];
}

static struct fd_reg *reg_find(struct epoll_table *t, int fd)
{
    if (fd < 0 || fd >= REG_DIR * REG_CHUNK)
        return NULL;
    struct fd_reg *chunk = atomic_load_explicit(&t->dir[fd / REG_CHUNK], memory_order_acquire);
    return chunk ? &chunk[fd % REG_CHUNK] : NULL;
}

static void table_free(struct epoll_table *t)
{
    if (!t)
        return;
    for (unsigned i = 0; i < REG_DIR; i++) {
        struct fd_reg *chunk = atomic_load_explicit(&t->dir[i], memory_order_relaxed);
        alloc_free(chunk);
    }
    alloc_free(t);
}

/* ---- arming and waking ------------------------------------------------------------- */

static void waiter_unlink(struct fd_reg *r, struct io_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        r->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    w->linked = false;
}

/* Under r's lock: r is no longer registered (its descriptor was closed, or
 * its number is new: STALE REGISTRATIONS). */
static void reg_forget_locked(struct fd_reg *r)
{
    if (atomic_load_explicit(&r->registered, memory_order_relaxed)) {
        atomic_store_explicit(&r->registered, false, memory_order_relaxed);
        atomic_fetch_sub_explicit(&r->home->narmed, 1, memory_order_relaxed);
    }
    r->home = NULL;
    r->trusted = false;
    atomic_store_explicit(&r->quiet_ok, false, memory_order_relaxed);
    atomic_store_explicit(&r->hup, false, memory_order_relaxed);
    atomic_store_explicit(&r->quiet, 0, memory_order_relaxed);
}

/* Under r's lock: makes sure r is in an epoll set (ed's if it is in none).
 * 0 or -errno (EPERM: a descriptor epoll cannot watch, a regular file). */
static int reg_register_locked(struct epoll_driver *ed, struct fd_reg *r)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = r };
    if (atomic_load_explicit(&r->registered, memory_order_relaxed)) {
        if (r->trusted)
            return 0;
        /* Untrusted: is it still this file's?  ENOENT: closed, the number
         * reused (STALE REGISTRATIONS). */
        if (epoll_ctl(r->home->epfd, EPOLL_CTL_MOD, r->fd, &ev) == 0)
            return 0;
        if (errno != ENOENT)
            return -errno;
        reg_forget_locked(r);
    }
    int rc = epoll_ctl(ed->epfd, EPOLL_CTL_ADD, r->fd, &ev);
    if (rc < 0 && errno == EEXIST) /* left by a file closed behind our back, still open elsewhere */
        rc = epoll_ctl(ed->epfd, EPOLL_CTL_MOD, r->fd, &ev);
    if (rc < 0)
        return -errno;
    int type = 0;
    socklen_t len = sizeof(type);
    r->stream = getsockopt(r->fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
    r->home = ed;
    /* relaxed: set by accept/connect on this or another worker before the
     * descriptor's first wait, which the task's own ordering covers. */
    r->trusted = atomic_exchange_explicit(&r->fresh, false, memory_order_relaxed);
    atomic_store_explicit(&r->quiet_ok, r->trusted && r->stream, memory_order_relaxed);
    atomic_store_explicit(&r->registered, true, memory_order_relaxed);
    /* relaxed: a hint for the home's poll. */
    atomic_fetch_add_explicit(&ed->narmed, 1, memory_order_relaxed);
    return 0;
}

/* fd is a file wisp saw made (accepted, or being connected): forget what
 * the table held for its number and mark it fresh (STALE REGISTRATIONS). */
static void reg_fresh(struct epoll_table *t, int fd)
{
    int err;
    struct fd_reg *r = reg_get(t, fd, &err);
    if (!r)
        return; /* then its waits fail the same way */
    /* relaxed: only a descriptor number reused makes it true here. */
    if (atomic_load_explicit(&r->registered, memory_order_relaxed)) {
        lock_acquire(&r->lock);
        reg_forget_locked(r);
        lock_release(&r->lock);
    }
    atomic_store_explicit(&r->fresh, true, memory_order_relaxed);
}

/* The registration of f's descriptor and its ticks, read before an attempt
 * (THE TICK PROTOCOL).  -errno for a descriptor the table cannot hold. */
static int ticks_read(struct epoll_driver *ed, struct io_future *f, uint32_t t0[2])
{
    int err = 0;
    struct fd_reg *r = f->reg;
    if (!r && !(r = reg_get(ed->table, f->fd, &err)))
        return err;
    f->reg = r;
    /* acquire: pairs with the handler's release bump (what it saw of the
     * descriptor is then ours too); the attempt follows. */
    t0[DIR_IN] = atomic_load_explicit(&r->tick[DIR_IN], memory_order_acquire);
    t0[DIR_OUT] = atomic_load_explicit(&r->tick[DIR_OUT], memory_order_acquire);
    return 0;
}

#define WAIT_RETRY 1

/* The future waits for events on its descriptor, whose ticks were t0
 * before its attempt (ticks_read): registers the descriptor, then links
 * the waiter (with a clone of the context's waker) unless a tick moved.
 * 0 (wait: PENDING), WAIT_RETRY (try again now), or -errno. */
static int wait_for(struct epoll_driver *ed, struct io_future *f, wisp_context_t *cx,
                    uint32_t events, const uint32_t t0[2])
{
    int err = 0;
    struct fd_reg *r = f->reg;
    const wisp_waker_t *waker = wisp_context_waker(cx);
    struct io_waiter *w = &f->waiter;
    lock_acquire(&r->lock);
    err = reg_register_locked(ed, r);
    if (!err && (((events & EPOLLIN) &&
                  atomic_load_explicit(&r->tick[DIR_IN], memory_order_relaxed) != t0[DIR_IN]) ||
                 ((events & EPOLLOUT) &&
                  atomic_load_explicit(&r->tick[DIR_OUT], memory_order_relaxed) != t0[DIR_OUT])))
        err = WAIT_RETRY; /* relaxed: under the lock the handler bumps them with */
    if (err) {
        wisp_waker_t stale = WISP_WAKER_EMPTY;
        if (w->linked) {
            waiter_unlink(r, w);
            stale = w->waker;
            w->waker = WISP_WAKER_EMPTY;
        }
        lock_release(&r->lock);
        wisp_waker_drop(&stale);
        return err;
    }
    if (!w->linked) {
        w->prev = NULL;
        w->next = r->waiters;
        if (r->waiters)
            r->waiters->prev = w;
        r->waiters = w;
        w->linked = true;
        w->waker = WISP_WAKER_EMPTY;
    }
    w->events = events;
    wisp_waker_t old = WISP_WAKER_EMPTY;
    if (waker && !wisp_waker_will_wake(&w->waker, waker)) {
        old = w->waker;
        w->waker = wisp_waker_clone(waker);
    }
    lock_release(&r->lock);
    wisp_waker_drop(&old);
    return 0;
}

/* The future stops waiting (it is dropped or done). */
static void wait_end(struct io_future *f)
{
    struct fd_reg *r = f->reg;
    struct io_waiter *w = &f->waiter;
    if (!r)
        return;
    wisp_waker_t old = WISP_WAKER_EMPTY;
    lock_acquire(&r->lock);
    if (w->linked) {
        waiter_unlink(r, w);
        old = w->waker;
        w->waker = WISP_WAKER_EMPTY;
    }
    lock_release(&r->lock);
    wisp_waker_drop(&old);
}

/* An event for r (its home's thread): bump the ticks, wake the waiters it
 * concerns.  Returns how many were woken. */
static unsigned reg_fire(struct epoll_driver *ed, struct fd_reg *r, uint32_t events)
{
    uint32_t wake_all = events & (EPOLLERR | EPOLLHUP);
    uint32_t came = events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI);
    if (came & (EPOLLRDHUP | EPOLLPRI))
        came |= EPOLLIN;
    unsigned woken = 0;
    wisp_waker_t batch[WAKE_BATCH];
    (void)ed;
    lock_acquire(&r->lock);
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        atomic_store_explicit(&r->hup, true, memory_order_relaxed); /* before the bumps (QUIET) */
    /* release: pairs with ticks_read's acquire.  Under the lock: the
     * waiters compare under it (THE TICK PROTOCOL). */
    if (wake_all || (came & EPOLLIN))
        atomic_store_explicit(&r->tick[DIR_IN],
                              atomic_load_explicit(&r->tick[DIR_IN], memory_order_relaxed) + 1,
                              memory_order_release);
    if (wake_all || (came & EPOLLOUT))
        atomic_store_explicit(&r->tick[DIR_OUT],
                              atomic_load_explicit(&r->tick[DIR_OUT], memory_order_relaxed) + 1,
                              memory_order_release);
    for (;;) {
        unsigned n = 0;
        for (struct io_waiter *w = r->waiters, *next; w; w = next) {
            next = w->next;
            if (wake_all || (w->events & came)) {
                if (n == WAKE_BATCH)
                    break;
                batch[n++] = w->waker;
                w->waker = WISP_WAKER_EMPTY;
                waiter_unlink(r, w);
            }
        }
        bool more = false;
        for (struct io_waiter *w = r->waiters; w; w = w->next)
            if (wake_all || (w->events & came))
                more = true;
        lock_release(&r->lock);
        for (unsigned i = 0; i < n; i++)
            wisp_waker_wake(&batch[i]);
        woken += n;
        if (!more)
            return woken;
        lock_acquire(&r->lock);
    }
}

/* ---- events and parking ------------------------------------------------------------- */

static unsigned handle_events(struct epoll_driver *ed, struct epoll_event *evs, int n)
{
    unsigned woken = 0;
    for (int i = 0; i < n; i++) {
        struct fd_reg *r = evs[i].data.ptr;
        if (!r) { /* the eventfd: an unpark */
            uint64_t v;
            while (read(ed->efd, &v, sizeof(v)) < 0 && errno == EINTR)
                ;
            continue;
        }
        woken += reg_fire(ed, r, evs[i].events);
    }
    return woken;
}

/* A non-blocking look at the events: at most one that finds nothing per
 * POLL_GAP_NS.  Unlike a ring's, epoll's readiness costs a system call to
 * ask, and a worker asks whenever its queue runs empty and between the
 * pauses of its search: an echo server asked twice per message (measured,
 * 0.5 epoll_wait per round trip, against Tokio's 0.05).  An event that the
 * gap hides waits at most POLL_GAP_NS, or until the worker parks (its
 * blocking epoll_wait returns at once). */
#define POLL_GAP_NS 20000
static unsigned epoll_poll_events(struct io_driver *d)
{
    struct epoll_driver *ed = to_epoll(d);
    /* relaxed: a hint; park always waits in epoll. */
    if (atomic_load_explicit(&ed->narmed, memory_order_relaxed) <= 0)
        return 0;
    uint64_t now = clock_now_ns();
    if (now - ed->last_empty_ns < POLL_GAP_NS)
        return 0;
    struct epoll_event evs[EVENT_BATCH];
    int n = epoll_wait(ed->epfd, evs, EVENT_BATCH, 0);
    ed->last_empty_ns = n > 0 ? 0 : now;
    return n > 0 ? handle_events(ed, evs, n) : 0;
}

static bool epoll_ready(struct io_driver *d)
{
    (void)d;
    return false; /* only epoll_wait can tell */
}

static int epoll_park(struct wisp__driver *base, uint64_t deadline_ns)
{
    struct epoll_driver *ed = (struct epoll_driver *)base;
    uint32_t s = PARK_NOTIFIED;
    /* acquire: pairs with the unparker's release exchange. */
    if (atomic_compare_exchange_strong_explicit(&ed->park, &s, PARK_EMPTY, memory_order_acquire,
                                                memory_order_relaxed))
        return DRIVER_UNPARKED;
    if (!atomic_compare_exchange_strong_explicit(&ed->park, &s, PARK_PARKED, memory_order_acquire,
                                                 memory_order_acquire)) {
        atomic_store_explicit(&ed->park, PARK_EMPTY, memory_order_relaxed);
        return DRIVER_UNPARKED;
    }
    int timeout = -1;
    if (deadline_ns != DRIVER_FOREVER) {
        uint64_t now = clock_now_ns();
        uint64_t ms = deadline_ns > now ? (deadline_ns - now + 999999) / 1000000 : 0;
        timeout = ms > INT_MAX ? INT_MAX : (int)ms;
    }
    struct epoll_event evs[EVENT_BATCH];
    /* The fault sweep's "interrupted wait" returns before waiting. */
    int n = fault_futex_eintr() ? -1 : epoll_wait(ed->epfd, evs, EVENT_BATCH, timeout);
    /* acquire: pairs with the unparker's release. */
    uint32_t prev = atomic_exchange_explicit(&ed->park, PARK_EMPTY, memory_order_acquire);
    unsigned woken = n > 0 ? handle_events(ed, evs, n) : 0;
    if (prev == PARK_NOTIFIED)
        return DRIVER_UNPARKED;
    if (woken)
        return DRIVER_EVENTS;
    return n == 0 && timeout >= 0 ? DRIVER_TIMEDOUT : DRIVER_UNPARKED;
}

static void epoll_unpark(struct wisp__driver *base)
{
    struct epoll_driver *ed = (struct epoll_driver *)base;
    int efd = ed->efd;
    /* release: pairs with park's acquire; our last access to the driver's
     * memory but the eventfd, open until the runtime is freed. */
    if (atomic_exchange_explicit(&ed->park, PARK_NOTIFIED, memory_order_release) == PARK_PARKED) {
        uint64_t one = 1;
        while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
    }
}

static const struct driver_ops epoll_driver_ops = { epoll_park, epoll_unpark };

/* ---- the pool's work ------------------------------------------------------------------- */

static ssize_t rw_iov(struct io_op *op, struct iovec *iov, unsigned *n, bool in)
{
    if (op->kind == IO_READ || op->kind == IO_WRITE) {
        wisp_buf_t *b = op->buf;
        size_t len = in ? b->cap - b->len : b->len - b->pos;
        iov[0] = (struct iovec){ in ? b->data + b->len : b->data + b->pos,
                                 len > RW_MAX ? RW_MAX : len };
        *n = 1;
    } else {
        for (unsigned i = 0; i < op->nbufs; i++) {
            wisp_buf_t *b = op->bufs[i];
            iov[i] = in ? (struct iovec){ b->data + b->len, b->cap - b->len }
                        : (struct iovec){ b->data + b->pos, b->len - b->pos };
        }
        *n = op->nbufs;
    }
    return 0;
}

static int64_t pool_run(struct io_op *op)
{
    struct iovec iov[IO_MAX_BUFS];
    unsigned n;
    ssize_t r;
    switch ((enum io_kind)op->kind) {
    case IO_READ:
    case IO_READV:
        rw_iov(op, iov, &n, true);
        r = op->offset == WISP_IO_CURRENT ? readv(op->fd, iov, (int)n)
                                          : preadv(op->fd, iov, (int)n, (off_t)op->offset);
        break;
    case IO_WRITE:
    case IO_WRITEV:
        rw_iov(op, iov, &n, false);
        r = op->offset == WISP_IO_CURRENT ? writev(op->fd, iov, (int)n)
                                          : pwritev(op->fd, iov, (int)n, (off_t)op->offset);
        break;
    case IO_OPENAT:
        r = openat(op->fd, op->path, op->flags, op->mode);
        break;
    case IO_FSYNC:
        r = op->mask ? fdatasync(op->fd) : fsync(op->fd);
        break;
    case IO_STATX:
        r = statx(op->fd, op->path, op->flags, op->mask, &op->stx);
        break;
    default:
        return -EINVAL;
    }
    return r < 0 ? -errno : r;
}

static void *pool_job(void *arg)
{
    struct io_op *op = arg;
    /* acquire: pairs with the drop's release (a dropped op does not run). */
    int64_t res = atomic_load_explicit(&op->state, memory_order_acquire) & OP_DROPPED
                      ? -ECANCELED
                      : pool_run(op);
    wisp__io_complete(op, (int32_t)res);
    return NULL;
}

static void pool_job_drop(void *arg)
{
    wisp__io_complete(arg, -ECANCELED); /* the job never ran (shutdown) */
}

static int epoll_submit(struct io_driver *d, struct io_op *op)
{
    return wisp_spawn_blocking(d->rt, pool_job, op, pool_job_drop, NULL);
}

static void epoll_cancel(struct io_driver *d, struct io_op *op)
{
    (void)d, (void)op; /* a queued job sees DROPPED; a running one finishes */
}

static void epoll_shutdown(struct io_driver *d)
{
    wisp__io_close_remote(d); /* unused by this backend, closed for form */
}

static void epoll_recycle(struct io_driver *d, unsigned bid)
{
    (void)d, (void)bid; /* no provided buffers */
}

static const char *epoll_bufdata(struct io_driver *d, unsigned bid)
{
    (void)d, (void)bid;
    return NULL;
}

/* ---- the readiness loops ------------------------------------------------------------- */

/* Ends the future with res. */
static wisp_poll_t done(struct io_future *f, int64_t res, void **output)
{
    wait_end(f);
    return wisp__io_done(f, res, output);
}

/* Waits for events, or ends with the error arming met. */
/* Where an attempt said EAGAIN: PENDING, or (an event came meanwhile) go
 * round for another attempt, or READY with an error. */
#define WAIT_OR_RETRY(events)                                     \
    do {                                                          \
        int werr_ = wait_for(ed, f, cx, (events), t0);            \
        if (werr_ == WAIT_RETRY)                                  \
            goto again;                                           \
        return werr_ ? done(f, werr_, output) : WISP_PENDING;     \
    } while (0)

/* A multishot result: READY, the future stays started. */
static wisp_poll_t multi_ready(struct io_future *f, int64_t res, void **output)
{
    wait_end(f);
    f->result = res; /* wisp_io_result reads each result too */
    if (output)
        *output = (void *)(intptr_t)res;
    return WISP_READY;
}

static int make_nonblocking(struct io_future *f)
{
    if (f->eflags & EF_NONBLOCK)
        return 0;
    int fl = fcntl(f->fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(f->fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return -errno;
    f->eflags |= EF_NONBLOCK;
    return 0;
}

static void msg_iov(struct io_future *f, struct iovec *iov, bool in)
{
    for (unsigned i = 0; i < f->n; i++) {
        wisp_buf_t *b = f->bufs[i];
        iov[i] = in ? (struct iovec){ b->data + b->len, b->cap - b->len }
                    : (struct iovec){ b->data + b->pos, b->len - b->pos };
    }
}

/* read/write: a stream at the current position, or a file at an offset. */
static wisp_poll_t poll_rw(struct epoll_driver *ed, struct io_future *f, wisp_context_t *cx,
                           void **output)
{
    bool in = f->kind == IO_READ || f->kind == IO_READV;
    uint32_t t0[2];
    int terr;
again:
    if (f->offset == WISP_IO_CURRENT && (terr = ticks_read(ed, f, t0)))
        return done(f, terr, output);
    struct iovec iov[IO_MAX_BUFS];
    int n = 1;
    if (f->kind == IO_READ || f->kind == IO_WRITE) {
        wisp_buf_t *b = f->buf;
        size_t len = in ? b->cap - b->len : b->len - b->pos;
        iov[0] = (struct iovec){ in ? b->data + b->len : b->data + b->pos,
                                 len > RW_MAX ? RW_MAX : len };
    } else {
        msg_iov(f, iov, in);
        n = (int)f->n;
    }
    off_t off = f->offset == WISP_IO_CURRENT ? -1 : (off_t)f->offset;
    ssize_t r = in ? preadv2(f->fd, iov, n, off, RWF_NOWAIT)
                   : pwritev2(f->fd, iov, n, off, RWF_NOWAIT);
    if (r >= 0) {
        if (f->kind == IO_READ)
            f->buf->len += (size_t)r;
        else if (f->kind == IO_WRITE)
            f->buf->pos += (size_t)r;
        else if (in)
            wisp__io_bufs_filled(f->bufs, f->n, (size_t)r);
        else
            wisp__io_bufs_sent(f->bufs, f->n, (size_t)r);
        return done(f, r, output);
    }
    int e = errno;
    if (e == EAGAIN && off < 0) { /* a stream: wait for it, if it can be polled */
        int err = wait_for(ed, f, cx, in ? EPOLLIN : EPOLLOUT, t0);
        if (!err)
            return WISP_PENDING;
        if (err == WAIT_RETRY)
            goto again;
        if (err != -EPERM)
            return done(f, err, output);
    } else if (e != EAGAIN && e != EOPNOTSUPP) {
        return done(f, -e, output);
    }
    wait_end(f);
    return wisp__io_op_path(f, &ed->io, cx, output); /* it would block: the pool */
}

/* Forgets fd's registration (its waiters are woken and see EBADF) and
 * closes it. */
static wisp_poll_t poll_close(struct epoll_driver *ed, struct io_future *f, void **output)
{
    struct fd_reg *r = reg_find(ed->table, f->fd);
    if (r) {
        wisp_waker_t batch[WAKE_BATCH];
        bool more = true;
        lock_acquire(&r->lock);
        if (atomic_load_explicit(&r->registered, memory_order_relaxed))
            epoll_ctl(r->home->epfd, EPOLL_CTL_DEL, f->fd, NULL);
        reg_forget_locked(r);
        while (more) {
            unsigned n = 0;
            while (r->waiters && n < WAKE_BATCH) {
                struct io_waiter *w = r->waiters;
                batch[n++] = w->waker;
                w->waker = WISP_WAKER_EMPTY;
                waiter_unlink(r, w);
            }
            more = r->waiters != NULL;
            lock_release(&r->lock);
            for (unsigned i = 0; i < n; i++)
                wisp_waker_wake(&batch[i]);
            if (more)
                lock_acquire(&r->lock);
        }
    }
    return done(f, close(f->fd) < 0 ? -errno : 0, output);
}

wisp_poll_t wisp__io_epoll_poll(struct io_driver *d, struct io_future *f, wisp_context_t *cx,
                                void **output)
{
    struct epoll_driver *ed = to_epoll(d);
    ssize_t r;
    int err;
    uint32_t t0[2];
    switch ((enum io_kind)f->kind) {
    case IO_ACCEPT:
    case IO_ACCEPT_MULTI:
    case IO_CONNECT:
    case IO_RECV:
    case IO_RECV_MULTI:
    case IO_SEND:
    case IO_RECVMSG:
    case IO_SENDMSG:
    case IO_POLL:
        if (!(f->eflags & EF_NONBLOCK) && f->kind == IO_CONNECT)
            reg_fresh(ed->table, f->fd); /* a new socket (STALE REGISTRATIONS) */
    again:
        if ((err = ticks_read(ed, f, t0)))
            return done(f, err, output);
        break;
    default:
        break;
    }
    switch ((enum io_kind)f->kind) {
    case IO_ACCEPT:
    case IO_ACCEPT_MULTI:
        if ((err = make_nonblocking(f)))
            return done(f, err, output);
        r = accept4(f->fd, f->kind == IO_ACCEPT ? f->addr_out : NULL,
                    f->kind == IO_ACCEPT ? f->addrlen_out : NULL, SOCK_CLOEXEC);
        if (r < 0 && (errno == EAGAIN || errno == ECONNABORTED || errno == EINTR))
            WAIT_OR_RETRY(EPOLLIN);
        if (r >= 0)
            reg_fresh(ed->table, (int)r); /* a new descriptor (STALE REGISTRATIONS) */
        if (f->kind == IO_ACCEPT_MULTI && r >= 0)
            return multi_ready(f, r, output);
        return done(f, r < 0 ? -errno : r, output);
    case IO_CONNECT:
        if (!(f->eflags & EF_CONNECTING)) {
            if ((err = make_nonblocking(f)))
                return done(f, err, output);
            if (connect(f->fd, f->addr_in, f->addrlen_in) == 0)
                return done(f, 0, output);
            if (errno != EINPROGRESS && errno != EINTR)
                return done(f, -errno, output);
            f->eflags |= EF_CONNECTING;
            WAIT_OR_RETRY(EPOLLOUT);
        } else {
            struct pollfd p = { .fd = f->fd, .events = POLLOUT };
            if (poll(&p, 1, 0) == 0)
                WAIT_OR_RETRY(EPOLLOUT);
            int soerr = 0;
            socklen_t len = sizeof(soerr);
            if (getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
                soerr = errno;
            return done(f, -soerr, output);
        }
    case IO_RECV:
    case IO_RECV_MULTI: {
        wisp_buf_t *b = f->buf;
        if (b->len >= b->cap)
            return f->kind == IO_RECV_MULTI ? multi_ready(f, -ENOBUFS, output)
                                            : done(f, -EINVAL, output);
        struct fd_reg *reg = f->reg;
        /* QUIET: drained at this tick and registered since: only an edge
         * (which moves the tick) can bring bytes.  Relaxed: hints, checked
         * again under the lock by wait_for. */
        if (atomic_load_explicit(&reg->quiet, memory_order_relaxed) == (1ull << 32 | t0[DIR_IN]) &&
            !atomic_load_explicit(&reg->hup, memory_order_relaxed) &&
            atomic_load_explicit(&reg->registered, memory_order_relaxed))
            WAIT_OR_RETRY(EPOLLIN); /* quiet is only set on a trusted registration */
        size_t want = b->cap - b->len;
        r = recv(f->fd, b->data + b->len, want, f->flags | MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            WAIT_OR_RETRY(EPOLLIN);
        if (r > 0 && (size_t)r < want && !(f->flags & (MSG_PEEK | MSG_OOB)) &&
            atomic_load_explicit(&reg->quiet_ok, memory_order_relaxed))
            atomic_store_explicit(&reg->quiet, 1ull << 32 | t0[DIR_IN], memory_order_relaxed);
        if (r > 0)
            b->len += (size_t)r;
        if (f->kind == IO_RECV_MULTI && r > 0)
            return multi_ready(f, r, output);
        return done(f, r < 0 ? -errno : r, output);
    }
    case IO_SEND: {
        wisp_buf_t *b = f->buf;
        r = send(f->fd, b->data + b->pos, b->len - b->pos, f->flags | MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            WAIT_OR_RETRY(EPOLLOUT);
        if (r > 0)
            b->pos += (size_t)r;
        return done(f, r < 0 ? -errno : r, output);
    }
    case IO_RECVMSG:
    case IO_SENDMSG: {
        bool in = f->kind == IO_RECVMSG;
        struct iovec iov[IO_MAX_BUFS];
        msg_iov(f, iov, in);
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = f->n };
        if (in && f->addr_out) {
            msg.msg_name = f->addr_out;
            msg.msg_namelen = *f->addrlen_out;
        } else if (!in && f->addr_in) {
            msg.msg_name = (void *)f->addr_in;
            msg.msg_namelen = f->addrlen_in;
        }
        r = in ? recvmsg(f->fd, &msg, f->flags | MSG_DONTWAIT)
               : sendmsg(f->fd, &msg, f->flags | MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            WAIT_OR_RETRY(in ? EPOLLIN : EPOLLOUT);
        if (r >= 0) {
            if (in) {
                wisp__io_bufs_filled(f->bufs, f->n, (size_t)r);
                if (f->addr_out)
                    *f->addrlen_out = msg.msg_namelen;
            } else {
                wisp__io_bufs_sent(f->bufs, f->n, (size_t)r);
            }
        }
        return done(f, r < 0 ? -errno : r, output);
    }
    case IO_POLL: {
        struct pollfd p = { .fd = f->fd, .events = (short)f->n };
        int k = poll(&p, 1, 0);
        if (k < 0 && errno != EINTR)
            return done(f, -errno, output);
        if (k > 0)
            return done(f, (uint16_t)p.revents, output);
        uint32_t want = f->n & (POLLOUT | POLLWRNORM | POLLWRBAND) ? EPOLLOUT : 0;
        if (f->n & ~(unsigned)(POLLOUT | POLLWRNORM | POLLWRBAND))
            want |= EPOLLIN;
        WAIT_OR_RETRY(want ? want : EPOLLIN);
    }
    case IO_TIMEOUT: {
        if (!(f->eflags & EF_SLEEPING)) {
            wisp_sleep_init(&f->sleep, f->offset);
            f->eflags |= EF_SLEEPING;
        }
        void *out = NULL;
        if (wisp_sleep_poll(&f->sleep, cx, &out) == WISP_PENDING)
            return WISP_PENDING;
        wisp_sleep_drop(&f->sleep);
        f->eflags &= (uint8_t)~EF_SLEEPING;
        return done(f, (intptr_t)out, output);
    }
    case IO_READ:
    case IO_WRITE:
    case IO_READV:
    case IO_WRITEV:
        return poll_rw(ed, f, cx, output);
    case IO_CLOSE:
        return poll_close(ed, f, output);
    case IO_OPENAT:
    case IO_FSYNC:
    case IO_STATX:
        return wisp__io_op_path(f, d, cx, output);
    case IO_SQE:
    case IO_NONE:
        break;
    }
    return done(f, -ENOTSUP, output);
}

void wisp__io_epoll_drop(struct io_future *f)
{
    wait_end(f);
    if (f->kind == IO_TIMEOUT && (f->eflags & EF_SLEEPING))
        wisp_sleep_drop(&f->sleep);
    f->eflags = 0;
    f->reg = NULL;
    /* The buffers were handed over at the first poll (wisp/io.h). */
    switch ((enum io_kind)f->kind) {
    case IO_RECV:
    case IO_SEND:
    case IO_READ:
    case IO_WRITE:
        wisp_buf_free(f->buf);
        break;
    case IO_RECVMSG:
    case IO_SENDMSG:
    case IO_READV:
    case IO_WRITEV:
        for (unsigned i = 0; i < f->n; i++)
            wisp_buf_free(f->bufs[i]);
        break;
    default:
        break;
    }
}

/* ---- setup ------------------------------------------------------------------------------ */

static void epoll_start(struct io_driver *d)
{
    (void)d;
}

static void epoll_free(struct io_driver *d)
{
    struct epoll_driver *ed = to_epoll(d);
    if (ed->epfd >= 0)
        close(ed->epfd);
    if (ed->efd >= 0)
        close(ed->efd);
    alloc_free(ed);
}

static const struct io_backend epoll_backend;

struct io_driver *wisp__io_epoll_new(struct wisp_runtime *rt, struct worker *w, int *err)
{
    if (!rt->io_shared) {
        struct epoll_table *t = alloc_zeroed(1, sizeof(*t), 0);
        if (!t) {
            *err = -ENOMEM;
            return NULL;
        }
        rt->io_shared = t;
        rt->io_shared_free = (void (*)(void *))table_free;
    }
    struct epoll_driver *ed = alloc_zeroed(1, sizeof(*ed), _Alignof(struct epoll_driver));
    if (!ed) {
        *err = -ENOMEM;
        return NULL;
    }
    ed->io.base.ops = &epoll_driver_ops;
    ed->io.backend = &epoll_backend;
    ed->io.owner = w;
    ed->io.rt = rt;
    atomic_init(&ed->io.remote, NULL);
    atomic_init(&ed->park, PARK_EMPTY);
    atomic_init(&ed->narmed, 0);
    ed->table = rt->io_shared;
    ed->epfd = ed->efd = -1;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    int e = fault_alloc() ? ENOMEM : 0;
    if (!e && ((ed->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
               (ed->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
               epoll_ctl(ed->epfd, EPOLL_CTL_ADD, ed->efd, &ev) < 0))
        e = errno;
    if (e) {
        *err = -e;
        epoll_free(&ed->io);
        return NULL;
    }
    return &ed->io;
}

static const struct io_backend epoll_backend = {
    .name = "epoll",
    .id = WISP_IO_EPOLL,
    .any_thread = true,
    .start = epoll_start,
    .submit = epoll_submit,
    .cancel = epoll_cancel,
    .poll = epoll_poll_events,
    .ready = epoll_ready,
    .expecting = epoll_ready,
    .shutdown = epoll_shutdown,
    .free = epoll_free,
    .recycle = epoll_recycle,
    .bufdata = epoll_bufdata,
};
