/* sync_chan.c - MPSC (bounded, unbounded) and MPMC (bounded) channels
 * (wisp/sync.h).
 *
 * Owns: struct chan (one allocation: the header and, when bounded, the
 * ring of messages), its handles (the same pointer, counted) and the send
 * and receive futures.  Touches: its waiters' nodes, under its lock.
 *
 * Protocol.  Everything is under the channel's lock; a send or receive is
 * one short critical section (wakers woken after it).  Slots and messages
 * are handed out in FIFO order by reservation, never by a race:
 *   - Senders (bounded).  A sender may put a message in when len +
 *     reserved < capacity and no sender is queued; otherwise it queues.  A
 *     receive that frees a slot while senders are queued grants it to the
 *     head sender (reserved++, NOTIFIED); that sender's next poll puts its
 *     message into the reserved slot (reserved--, len++).  Dropped before
 *     that, its reservation passes to the next queued sender (or is
 *     returned).  So a message is in the channel exactly when its send
 *     future returned READY 0: a dropped send never sent.
 *   - Receivers.  A message put in while receivers are queued wakes the
 *     head receiver (NOTIFIED, claimed++): the message is reserved for it;
 *     a newcomer takes a message only if len > claimed.  The notified
 *     receiver's next poll takes one (claimed--); dropped before that, its
 *     claim passes to the next queued receiver (or is returned).  A
 *     receive that returned READY took exactly one message; one dropped
 *     before took none.
 *   - The receiver's batch (bounded MPSC: one receiver, a ring that never
 *     moves).  Under the lock the receiver notes how many messages are
 *     queued (rx_batch); it then delivers them one per receive without the
 *     lock, reading the slots in place (written before our lock acquire),
 *     counting them in rx_taken and publishing that count in rx_done
 *     (release).  Senders count the slots of delivered messages free (a
 *     sender's capacity check is len - rx_done + reserved < capacity, its
 *     acquire load pairing with that release), and may write into them:
 *     a push lands at head + len, which is past the undelivered messages
 *     as long as fewer than capacity are undelivered.  When the batch runs
 *     out, or before anything else done under the lock, the receiver
 *     commits (head and len move past the delivered ones, rx_done back to
 *     0) and grants the slots freed to queued senders.  A consumer that
 *     keeps up with its producers takes the lock once per batch.
 *     No sender may wait for a slot the receiver has freed without a
 *     commit: a sender about to queue sets send_waiting, then (seq_cst
 *     fence) reads rx_done again; the receiver publishes rx_done, then
 *     (seq_cst fence) reads send_waiting and, if set, commits at once
 *     (under the lock, granting the slot).  Store-buffer pattern with both
 *     fences seq_cst: at least one of the two sees the other's store, so
 *     either the sender finds the slot or the receiver commits and grants
 *     it.  (ThreadSanitizer does not model the fences; this is the proof.)
 *   - Closing.  The last sender dropped: receivers take what is queued,
 *     then get -EPIPE; every queued receiver is woken.  The last receiver
 *     dropped, or wisp_chan_close: closed; sends fail with -EPIPE; queued
 *     senders are woken (a granted reservation is returned).
 * The channel is freed with its last handle (futures use the handle they
 * were made with, so they are gone by then); messages still queued go to
 * drop_msg.  A drop that wakes many waiters unlocks between batches
 * (waitq.h): it counts itself busy meanwhile, and whoever leaves the
 * channel with no handle and nobody busy frees it. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/sync.h>

#include "alloc.h"
#include "spin.h"
#include "waitq.h"

enum { CHAN_MPSC = 0, CHAN_MPMC = 1 };

struct chan {
    struct spin lock;
    bool unbounded;
    bool mpmc;
    bool closed;         /* no more sends: closed, or every receiver gone */
    size_t cap;          /* bounded: capacity */
    size_t head, len;    /* the ring: buf[head..head+len) modulo bufcap */
    size_t bufcap;
    size_t reserved;     /* slots granted to queued senders, not yet filled */
    size_t claimed;      /* messages reserved for notified receivers */
    bool batching;
    size_t senders, receivers;
    unsigned busy;       /* droppers inside an unlocked window (see below) */
    struct waitq sendq, recvq;
    wisp_drop_fn drop_msg;
    void **buf;          /* bounded: ring[] below */
    /* The receiver's batch (bounded MPSC only: below), its own line:
     * rx_taken messages from rx_head are delivered and not yet committed,
     * the rx_batch after them it may deliver without the lock; rx_head
     * is head as of its last commit (only it moves head). */
    _Alignas(WISP_CACHE_LINE) size_t rx_taken, rx_batch, rx_head, rx_cap;
    /* rx_taken as the senders see it (they count those slots free): the
     * receiver writes it per message, so a line of its own. */
    _Alignas(WISP_CACHE_LINE) _Atomic size_t rx_done;
    /* A sender is about to queue (the receiver then commits at once): the
     * handshake in rx_from_batch.  Read per message, written rarely. */
    _Alignas(WISP_CACHE_LINE) _Atomic uint32_t send_waiting;
    _Alignas(WISP_CACHE_LINE) void *ring[];
};

struct send_fut {
    struct waiter node;
    struct chan *ch;
    void *msg;
    int status;
};

struct recv_fut {
    struct waiter node;
    struct chan *ch;
    int status;
};

_Static_assert(sizeof(struct send_fut) <= sizeof(wisp_chan_send_t), "wisp_chan_send_t too small");
_Static_assert(sizeof(struct recv_fut) <= sizeof(wisp_chan_recv_t), "wisp_chan_recv_t too small");

#define CHAN_MAX_CAP ((size_t)1 << 31)

static int chan_create(wisp_chan_tx_t **tx, wisp_chan_rx_t **rx, size_t cap, bool unbounded,
                       bool mpmc, wisp_drop_fn drop_msg)
{
    if (!tx || !rx)
        return -EINVAL;
    *tx = NULL;
    *rx = NULL;
    if (!unbounded && (cap == 0 || cap > CHAN_MAX_CAP))
        return -EINVAL;
    size_t ring = unbounded ? 0 : cap;
    struct chan *ch = alloc_zeroed(1, sizeof(*ch) + ring * sizeof(void *), 0);
    if (!ch)
        return -ENOMEM;
    memset(ch, 0, sizeof(*ch));
    spin_init(&ch->lock);
    ch->unbounded = unbounded;
    ch->mpmc = mpmc;
    ch->cap = cap;
    ch->bufcap = ring;
    ch->buf = unbounded ? NULL : ch->ring;
    ch->batching = !unbounded && !mpmc;
    ch->rx_cap = cap;
    ch->senders = 1;
    ch->receivers = 1;
    ch->drop_msg = drop_msg;
    *tx = (wisp_chan_tx_t *)ch;
    *rx = (wisp_chan_rx_t *)ch;
    return 0;
}

int wisp_mpsc_new(wisp_chan_tx_t **tx, wisp_chan_rx_t **rx, size_t capacity, wisp_drop_fn drop_msg)
{
    return chan_create(tx, rx, capacity, false, false, drop_msg);
}

int wisp_mpsc_unbounded_new(wisp_chan_tx_t **tx, wisp_chan_rx_t **rx, wisp_drop_fn drop_msg)
{
    return chan_create(tx, rx, 0, true, false, drop_msg);
}

int wisp_mpmc_new(wisp_chan_tx_t **tx, wisp_chan_rx_t **rx, size_t capacity, wisp_drop_fn drop_msg)
{
    return chan_create(tx, rx, capacity, false, true, drop_msg);
}

/* ---- the ring ---- */

/* The slot i places after head (i may pass bufcap by rx_done: see above). */
static inline void **ring_slot(struct chan *ch, size_t i)
{
    size_t k = ch->head + i;
    while (k >= ch->bufcap)
        k -= ch->bufcap;
    return &ch->buf[k];
}

static void chan_free(struct chan *ch)
{
    if (ch->drop_msg)
        for (size_t i = 0; i < ch->len; i++)
            ch->drop_msg(*ring_slot(ch, i));
    if (ch->unbounded)
        alloc_free(ch->buf);
    alloc_free(ch);
}

/* Unbounded: makes room for one more; false when out of memory. */
static bool chan_grow(struct chan *ch)
{
    if (ch->len < ch->bufcap)
        return true;
    size_t ncap = ch->bufcap ? ch->bufcap * 2 : 16;
    if (ncap < ch->bufcap || ncap > SIZE_MAX / sizeof(void *))
        return false;
    void **nb = alloc_zeroed(1, ncap * sizeof(void *), 0);
    if (!nb)
        return false;
    for (size_t i = 0; i < ch->len; i++)
        nb[i] = *ring_slot(ch, i);
    alloc_free(ch->buf);
    ch->buf = nb;
    ch->bufcap = ncap;
    ch->head = 0;
    return true;
}

static inline void ring_push(struct chan *ch, void *msg)
{
    *ring_slot(ch, ch->len) = msg;
    ch->len++;
}

/* Under the lock: the messages that hold a slot (not delivered). */
static inline size_t chan_used(const struct chan *ch)
{
    /* acquire: pairs with the receiver's release store in rx_from_batch:
     * the slots of the messages it counts were read before. */
    return ch->len - atomic_load_explicit(&((struct chan *)ch)->rx_done, memory_order_acquire);
}

static inline void *ring_pop(struct chan *ch)
{
    void *m = ch->buf[ch->head];
    if (++ch->head == ch->bufcap)
        ch->head = 0;
    ch->len--;
    return m;
}

/* ---- hand-offs, under the lock ---- */

/* A message went in: reserve it for the head receiver, if one waits. */
static inline void wake_receiver(struct chan *ch, struct wake_list *wl)
{
    if (ch->recvq.head && ch->len > ch->claimed) {
        waitq_notify_head(&ch->recvq, wl, 0);
        ch->claimed++;
    }
}

/* Slots are free: grant them to the queued senders, in order.  A full
 * wake list is woken with the lock dropped (waitq.h) before each grant. */
static void grant_senders(struct chan *ch, struct wake_list *wl)
{
    for (;;) {
        wake_list_flush(wl, &ch->lock);
        if (ch->unbounded || !ch->sendq.head || ch->closed ||
            chan_used(ch) + ch->reserved >= ch->cap)
            return;
        waitq_notify_head(&ch->sendq, wl, 0);
        ch->reserved++;
    }
}

static void wake_all(struct chan *ch, struct waitq *q, struct wake_list *wl);

/* Takes one message (len > claimed, or a claim of ours).  The last one of
 * a channel nothing more can come into wakes the queued receivers: they
 * get -EPIPE. */
static inline void *take_msg(struct chan *ch, struct wake_list *wl)
{
    void *m = ring_pop(ch);
    grant_senders(ch, wl);
    if (unlikely(ch->len == 0 && ch->recvq.head && (ch->senders == 0 || ch->closed)))
        wake_all(ch, &ch->recvq, wl);
    return m;
}

/* The receiver, under the lock: commits the messages of its batch it has
 * delivered (frees their slots) and forgets the rest of the batch (they
 * stay queued). */
static inline void rx_commit(struct chan *ch, struct wake_list *wl)
{
    ch->rx_batch = 0;
    if (!ch->rx_taken)
        return;
    for (; ch->rx_taken; ch->rx_taken--)
        ring_pop(ch);
    /* relaxed: under the lock, which orders it for the senders. */
    atomic_store_explicit(&ch->rx_done, 0, memory_order_relaxed);
    if (!ch->sendq.head)
        atomic_store_explicit(&ch->send_waiting, 0, memory_order_relaxed);
    grant_senders(ch, wl);
}

/* The receiver, under the lock, after taking a message: the queued ones
 * (not claimed by another receive) make its next batch. */
static inline void rx_refill(struct chan *ch)
{
    if (ch->batching) {
        ch->rx_batch = ch->len - ch->claimed;
        ch->rx_head = ch->head;
    }
}

/* The receiver without the lock: the next message of its batch, if any
 * (then true).  The batch's last one is committed at once (one lock), so
 * that its slots are free and the next batch noted. */
static bool rx_from_batch(struct chan *ch, void **msg)
{
    if (ch->rx_batch == 0) /* never set unless batching */
        return false;
    size_t k = ch->rx_head + ch->rx_taken; /* rx_cap: cap == bufcap, bounded */
    *msg = ch->ring[k >= ch->rx_cap ? k - ch->rx_cap : k];
    ch->rx_taken++;
    /* release: the slot was read before; pairs with chan_used's acquire. */
    atomic_store_explicit(&ch->rx_done, ch->rx_taken, memory_order_release);
    /* seq_cst fence: the store above before the load below (the
     * handshake with a queueing sender, in the protocol above). */
    atomic_thread_fence(memory_order_seq_cst);
    bool waiting = atomic_load_explicit(&ch->send_waiting, memory_order_relaxed);
    if (--ch->rx_batch == 0 || waiting) {
        struct wake_list wl;
        wake_list_init(&wl);
        spin_acquire(&ch->lock);
        rx_commit(ch, &wl);
        if (unlikely(ch->len == 0 && ch->recvq.head && (ch->senders == 0 || ch->closed)))
            wake_all(ch, &ch->recvq, &wl);
        rx_refill(ch);
        spin_release(&ch->lock);
        wake_list_wake(&wl);
    }
    return true;
}

/* Receive possible now without queueing: 1 took *msg, -EPIPE finished, 0 no. */
static inline int recv_ready(struct chan *ch)
{
    if (ch->len > ch->claimed)
        return 1;
    if (ch->len == 0 && (ch->senders == 0 || ch->closed))
        return -EPIPE;
    return 0;
}

/* Wakes every queued sender / receiver (closing). */
static void wake_all(struct chan *ch, struct waitq *q, struct wake_list *wl)
{
    while (q->head) {
        wake_list_flush(wl, &ch->lock);
        if (!q->head)
            break;
        waitq_notify_head(q, wl, 1); /* tag 1: woken by a close */
    }
}

/* ---- handles ---- */

wisp_chan_tx_t *wisp_chan_tx_clone(wisp_chan_tx_t *tx)
{
    struct chan *ch = (struct chan *)tx;
    if (!ch)
        return NULL;
    spin_acquire(&ch->lock);
    ch->senders++;
    spin_release(&ch->lock);
    return tx;
}

wisp_chan_rx_t *wisp_chan_rx_clone(wisp_chan_rx_t *rx)
{
    struct chan *ch = (struct chan *)rx;
    if (!ch || !ch->mpmc)
        return NULL;
    spin_acquire(&ch->lock);
    ch->receivers++;
    spin_release(&ch->lock);
    return rx;
}

void wisp_chan_tx_drop(wisp_chan_tx_t *tx)
{
    struct chan *ch = (struct chan *)tx;
    if (!ch)
        return;
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&ch->lock);
    WISP_CHECK_USE(ch->senders > 0, "wisp_chan_tx_drop: no sender left");
    bool last = --ch->senders == 0;
    ch->busy++;
    if (last && ch->len == 0)
        wake_all(ch, &ch->recvq, &wl); /* nothing more can come */
    bool free_it = --ch->busy == 0 && ch->senders == 0 && ch->receivers == 0;
    spin_release(&ch->lock);
    wake_list_wake(&wl);
    if (free_it)
        chan_free(ch);
}

static void chan_close_locked(struct chan *ch, struct wake_list *wl)
{
    if (ch->closed)
        return;
    ch->closed = true;
    wake_all(ch, &ch->sendq, wl);
    if (ch->len == 0)
        wake_all(ch, &ch->recvq, wl);
}

void wisp_chan_rx_drop(wisp_chan_rx_t *rx)
{
    struct chan *ch = (struct chan *)rx;
    if (!ch)
        return;
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&ch->lock);
    WISP_CHECK_USE(ch->receivers > 0, "wisp_chan_rx_drop: no receiver left");
    ch->busy++; /* before anything that may drop the lock for a while */
    if (ch->batching)
        rx_commit(ch, &wl);
    bool last = --ch->receivers == 0;
    if (last)
        chan_close_locked(ch, &wl);
    bool free_it = --ch->busy == 0 && ch->senders == 0 && ch->receivers == 0;
    spin_release(&ch->lock);
    wake_list_wake(&wl);
    if (free_it)
        chan_free(ch);
}

void wisp_chan_close(wisp_chan_rx_t *rx)
{
    struct chan *ch = (struct chan *)rx;
    if (!ch)
        return;
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&ch->lock);
    if (ch->batching)
        rx_commit(ch, &wl);
    chan_close_locked(ch, &wl);
    spin_release(&ch->lock);
    wake_list_wake(&wl);
}

bool wisp_chan_is_closed(const wisp_chan_tx_t *tx)
{
    struct chan *ch = (struct chan *)tx;
    if (!ch)
        return true;
    spin_acquire(&ch->lock);
    bool c = ch->closed;
    spin_release(&ch->lock);
    return c;
}

size_t wisp_chan_len(const wisp_chan_rx_t *rx)
{
    struct chan *ch = (struct chan *)rx;
    if (!ch)
        return 0;
    spin_acquire(&ch->lock);
    size_t n = chan_used(ch);
    spin_release(&ch->lock);
    return n;
}

/* ---- send ---- */

/* Under the lock, a sender not queued: 0 sent, -EAGAIN, -EPIPE, -ENOMEM. */
static inline int send_now(struct chan *ch, void *msg, struct wake_list *wl)
{
    if (ch->closed)
        return -EPIPE;
    if (ch->unbounded) {
        if (!chan_grow(ch))
            return -ENOMEM;
    } else if (ch->sendq.head || chan_used(ch) + ch->reserved >= ch->cap) {
        return -EAGAIN;
    }
    ring_push(ch, msg);
    wake_receiver(ch, wl);
    return 0;
}

int wisp_chan_try_send(wisp_chan_tx_t *tx, void *msg)
{
    struct chan *ch = (struct chan *)tx;
    if (!ch)
        return -EINVAL;
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&ch->lock);
    int r = send_now(ch, msg, &wl);
    spin_release(&ch->lock);
    wake_list_wake(&wl);
    return r;
}

void wisp_chan_send_init(wisp_chan_send_t *pf, wisp_chan_tx_t *tx, void *msg)
{
    struct send_fut *f = (struct send_fut *)pf;
    waiter_init(&f->node);
    f->ch = (struct chan *)tx;
    f->msg = msg;
    f->status = 0;
}

static inline wisp_poll_t send_done(struct send_fut *f, int status, void **output)
{
    f->status = status;
    waiter_set_state(&f->node, WAITER_DONE);
    if (output)
        *output = (void *)(intptr_t)status;
    return WISP_READY;
}

wisp_poll_t wisp_chan_send_poll(void *pf, wisp_context_t *cx, void **output)
{
    struct send_fut *f = pf;
    struct chan *ch = f->ch;
    if (waiter_state(&f->node) == WAITER_DONE)
        return send_done(f, f->status, output);
    if (!ch)
        return send_done(f, -EINVAL, output);
    struct wake_list wl;
    wake_list_init(&wl);
    int r;
    spin_acquire(&ch->lock);
    switch (waiter_state(&f->node)) {
    case WAITER_NONE:
        r = send_now(ch, f->msg, &wl);
        if (r == -EAGAIN && ch->batching && !ch->sendq.head) {
            /* About to queue behind a receiver's batch: the handshake of
             * the protocol above, then look again. */
            atomic_store_explicit(&ch->send_waiting, 1, memory_order_relaxed);
            atomic_thread_fence(memory_order_seq_cst);
            r = send_now(ch, f->msg, &wl);
        }
        if (r == -EAGAIN) {
            waiter_set_waker(&f->node, cx);
            waitq_push_back(&ch->sendq, &f->node);
            spin_release(&ch->lock);
            return WISP_PENDING;
        }
        break;
    case WAITER_NOTIFIED:
        if (f->node.tag == 0) { /* granted a slot */
            ch->reserved--;
            if (ch->closed) {
                r = -EPIPE;
            } else {
                ring_push(ch, f->msg);
                wake_receiver(ch, &wl);
                r = 0;
            }
        } else {
            r = -EPIPE; /* woken by a close */
        }
        break;
    default: /* QUEUED: still waiting */
        waiter_set_waker(&f->node, cx);
        spin_release(&ch->lock);
        return WISP_PENDING;
    }
    spin_release(&ch->lock);
    wake_list_wake(&wl);
    wisp_waker_drop(&f->node.waker);
    return send_done(f, r, output);
}

void wisp_chan_send_drop(void *pf)
{
    struct send_fut *f = pf;
    struct chan *ch = f->ch;
    if (ch && (waiter_state(&f->node) == WAITER_QUEUED || waiter_state(&f->node) == WAITER_NOTIFIED)) {
        struct wake_list wl;
        wake_list_init(&wl);
        spin_acquire(&ch->lock);
        if (waiter_state(&f->node) == WAITER_QUEUED) {
            waitq_remove(&ch->sendq, &f->node);
        } else if (f->node.tag == 0) { /* a granted slot passes on */
            ch->reserved--;
            grant_senders(ch, &wl);
        }
        spin_release(&ch->lock);
        wake_list_wake(&wl);
    }
    waiter_set_state(&f->node, WAITER_DONE);
    wisp_waker_drop(&f->node.waker);
}

/* ---- receive ---- */

int wisp_chan_try_recv(wisp_chan_rx_t *rx, void **msg)
{
    struct chan *ch = (struct chan *)rx;
    if (!ch || !msg)
        return -EINVAL;
    if (rx_from_batch(ch, msg))
        return 0;
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&ch->lock);
    rx_commit(ch, &wl);
    int r = recv_ready(ch);
    if (r == 1) {
        *msg = take_msg(ch, &wl);
        rx_refill(ch);
    }
    spin_release(&ch->lock);
    wake_list_wake(&wl);
    return r == 1 ? 0 : r == 0 ? -EAGAIN : r;
}

void wisp_chan_recv_init(wisp_chan_recv_t *pf, wisp_chan_rx_t *rx)
{
    struct recv_fut *f = (struct recv_fut *)pf;
    waiter_init(&f->node);
    f->ch = (struct chan *)rx;
    f->status = 0;
}

int wisp_chan_recv_status(const wisp_chan_recv_t *pf)
{
    return pf ? ((const struct recv_fut *)pf)->status : -EINVAL;
}

wisp_poll_t wisp_chan_recv_poll(void *pf, wisp_context_t *cx, void **output)
{
    struct recv_fut *f = pf;
    struct chan *ch = f->ch;
    void *msg = NULL;
    if (waiter_state(&f->node) == WAITER_DONE)
        goto out; /* polled again after READY: the same status, no message */
    if (!ch) {
        f->status = -EINVAL;
        waiter_set_state(&f->node, WAITER_DONE);
        goto out;
    }
    if (waiter_state(&f->node) == WAITER_NONE && rx_from_batch(ch, &msg)) {
        f->status = 0;
        waiter_set_state(&f->node, WAITER_DONE);
        if (output)
            *output = msg;
        return WISP_READY;
    }
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&ch->lock);
    if (ch->batching)
        rx_commit(ch, &wl);
    int r;
    if (waiter_state(&f->node) == WAITER_NOTIFIED) {
        if (f->node.tag == 0) /* a message was reserved for us */
            ch->claimed--;
        r = recv_ready(ch);
    } else if (waiter_state(&f->node) == WAITER_QUEUED) {
        waiter_set_waker(&f->node, cx);
        spin_release(&ch->lock);
        return WISP_PENDING;
    } else {
        r = recv_ready(ch);
    }
    if (r == 0) { /* nothing for us (yet): queue, first in line if we were woken */
        waiter_set_waker(&f->node, cx);
        if (waiter_state(&f->node) == WAITER_NOTIFIED) {
            waiter_set_state(&f->node, WAITER_NONE);
            waitq_push_front(&ch->recvq, &f->node);
        } else {
            waitq_push_back(&ch->recvq, &f->node);
        }
        spin_release(&ch->lock);
        return WISP_PENDING;
    }
    if (r == 1) {
        msg = take_msg(ch, &wl);
        rx_refill(ch);
    }
    spin_release(&ch->lock);
    wake_list_wake(&wl);
    wisp_waker_drop(&f->node.waker);
    f->status = r == 1 ? 0 : r;
    waiter_set_state(&f->node, WAITER_DONE);
    if (output)
        *output = msg;
    return WISP_READY;
out:
    if (output)
        *output = NULL;
    return WISP_READY;
}

void wisp_chan_recv_drop(void *pf)
{
    struct recv_fut *f = pf;
    struct chan *ch = f->ch;
    if (ch && (waiter_state(&f->node) == WAITER_QUEUED || waiter_state(&f->node) == WAITER_NOTIFIED)) {
        struct wake_list wl;
        wake_list_init(&wl);
        spin_acquire(&ch->lock);
        if (waiter_state(&f->node) == WAITER_QUEUED) {
            waitq_remove(&ch->recvq, &f->node);
        } else if (f->node.tag == 0) { /* the reserved message goes to the next */
            ch->claimed--;
            wake_receiver(ch, &wl);
        }
        spin_release(&ch->lock);
        wake_list_wake(&wl);
    }
    waiter_set_state(&f->node, WAITER_DONE);
    wisp_waker_drop(&f->node.waker);
}
