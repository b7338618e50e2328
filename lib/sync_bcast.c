/* sync_bcast.c - broadcast and watch channels (wisp/sync.h): one message
 * seen by many receivers.
 *
 * Owns: struct bcast (a ring of the last capacity messages), struct
 * watch (one value and its version), their receiver handles and futures.
 * Touches: waiter nodes (waitq.h), under each channel's lock.
 *
 * Protocol.  Everything is under the channel's lock.  Broadcast: message
 * number k (counting from 0) lives in slot k % capacity until message k +
 * capacity overwrites it; a receiver's cursor is the number of the next
 * message it reads, so it reads slot cursor % capacity if cursor < tail,
 * and a cursor more than capacity behind has missed (tail - capacity -
 * cursor) messages.  A send notifies every receive queued before it (by
 * generation: waitq.h); a receive future that finds nothing queues again.
 * Watch: a send replaces the value and bumps the version; a receiver
 * remembers the version it saw, and "changed" waits for a different one.
 * Clones (clone_msg) are made under the lock, so a message being
 * overwritten is never cloned after its drop; drops (drop_msg) run after
 * the unlock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/sync.h>

#include "debug.h"
#include "alloc.h"
#include "spin.h"
#include "waitq.h"

struct bcast {
    struct spin lock;
    size_t cap;
    uint64_t tail;          /* messages sent so far */
    size_t senders, receivers;
    unsigned busy;          /* droppers inside an unlocked window (sync_chan.c) */
    struct waitq q;
    wisp_clone_fn clone_msg;
    wisp_drop_fn drop_msg;
    void *slots[];
};

struct wisp_bcast_rx {
    struct bcast *ch;
    uint64_t next;          /* the next message's number */
    uint64_t missed;
};

struct bcast_fut {
    struct waiter node;
    struct wisp_bcast_rx *rx;
    int status;
};
_Static_assert(sizeof(struct bcast_fut) <= sizeof(wisp_bcast_recv_t), "wisp_bcast_recv_t too small");

#define BCAST_MAX_CAP ((size_t)1 << 31)

static void bcast_free(struct bcast *ch)
{
    if (ch->drop_msg) {
        uint64_t first = ch->tail > ch->cap ? ch->tail - ch->cap : 0;
        for (uint64_t k = first; k < ch->tail; k++)
            ch->drop_msg(ch->slots[k % ch->cap]);
    }
    alloc_free(ch);
}

static int bcast_rx_new(struct bcast *ch, wisp_bcast_rx_t **out)
{
    struct wisp_bcast_rx *rx = alloc_zeroed(1, sizeof(*rx), 0);
    if (!rx)
        return -ENOMEM;
    rx->ch = ch;
    rx->missed = 0;
    spin_acquire(&ch->lock);
    rx->next = ch->tail;
    ch->receivers++;
    spin_release(&ch->lock);
    *out = rx;
    return 0;
}

int wisp_bcast_new(wisp_bcast_tx_t **tx, wisp_bcast_rx_t **rx, size_t capacity,
                   wisp_clone_fn clone_msg, wisp_drop_fn drop_msg)
{
    if (!tx)
        return -EINVAL;
    *tx = NULL;
    if (rx)
        *rx = NULL;
    if (capacity == 0 || capacity > BCAST_MAX_CAP)
        return -EINVAL;
    struct bcast *ch = alloc_zeroed(1, sizeof(*ch) + capacity * sizeof(void *), 0);
    if (!ch)
        return -ENOMEM;
    memset(ch, 0, sizeof(*ch));
    spin_init(&ch->lock);
    ch->cap = capacity;
    ch->senders = 1;
    ch->clone_msg = clone_msg;
    ch->drop_msg = drop_msg;
    if (rx && bcast_rx_new(ch, rx) != 0) {
        alloc_free(ch);
        return -ENOMEM;
    }
    *tx = (wisp_bcast_tx_t *)ch;
    return 0;
}

int wisp_bcast_subscribe(wisp_bcast_tx_t *tx, wisp_bcast_rx_t **rx)
{
    if (!tx || !rx)
        return -EINVAL;
    return bcast_rx_new((struct bcast *)tx, rx);
}

wisp_bcast_tx_t *wisp_bcast_tx_clone(wisp_bcast_tx_t *tx)
{
    struct bcast *ch = (struct bcast *)tx;
    if (!ch)
        return NULL;
    spin_acquire(&ch->lock);
    ch->senders++;
    spin_release(&ch->lock);
    return tx;
}

static void wake_everyone(struct bcast *ch, struct wake_list *wl)
{
    waitq_notify_before(&ch->q, wl, &ch->lock, UINT64_MAX, 0);
}

void wisp_bcast_tx_drop(wisp_bcast_tx_t *tx)
{
    struct bcast *ch = (struct bcast *)tx;
    if (!ch)
        return;
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&ch->lock);
    bool last = --ch->senders == 0;
    ch->busy++;
    if (last)
        wake_everyone(ch, &wl);
    bool free_it = --ch->busy == 0 && ch->senders == 0 && ch->receivers == 0;
    spin_release(&ch->lock);
    wake_list_wake(&wl);
    if (free_it)
        bcast_free(ch);
}

void wisp_bcast_rx_drop(wisp_bcast_rx_t *rx)
{
    if (!rx)
        return;
    struct bcast *ch = rx->ch;
    spin_acquire(&ch->lock);
    bool free_it = --ch->receivers == 0 && ch->senders == 0 && ch->busy == 0;
    spin_release(&ch->lock);
    alloc_free(rx);
    if (free_it)
        bcast_free(ch);
}

int wisp_bcast_send(wisp_bcast_tx_t *tx, void *msg, size_t *receivers)
{
    struct bcast *ch = (struct bcast *)tx;
    if (!ch)
        return -EINVAL;
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&ch->lock);
    if (ch->receivers == 0) {
        spin_release(&ch->lock);
        return -EPIPE;
    }
    size_t slot = ch->tail % ch->cap;
    bool overwrite = ch->tail >= ch->cap;
    void *old = overwrite ? ch->slots[slot] : NULL;
    ch->slots[slot] = msg;
    uint64_t gen = ++ch->tail;
    if (receivers)
        *receivers = ch->receivers;
    waitq_notify_before(&ch->q, &wl, &ch->lock, gen, 0);
    spin_release(&ch->lock);
    wake_list_wake(&wl);
    if (overwrite && ch->drop_msg)
        ch->drop_msg(old);
    return 0;
}

/* Under the lock: 0 and *msg, -EOVERFLOW, -EPIPE, -EAGAIN. */
static int bcast_take(struct wisp_bcast_rx *rx, void **msg)
{
    struct bcast *ch = rx->ch;
    if (rx->next < ch->tail) {
        if (ch->tail - rx->next > ch->cap) {
            uint64_t oldest = ch->tail - ch->cap;
            rx->missed = oldest - rx->next;
            rx->next = oldest;
            return -EOVERFLOW;
        }
        void *m = ch->slots[rx->next % ch->cap];
        rx->next++;
        *msg = ch->clone_msg ? ch->clone_msg(m) : m;
        return 0;
    }
    return ch->senders == 0 ? -EPIPE : -EAGAIN;
}

int wisp_bcast_try_recv(wisp_bcast_rx_t *rx, void **msg)
{
    if (!rx || !msg)
        return -EINVAL;
    spin_acquire(&rx->ch->lock);
    int r = bcast_take(rx, msg);
    spin_release(&rx->ch->lock);
    return r;
}

uint64_t wisp_bcast_recv_missed(const wisp_bcast_rx_t *rx)
{
    return rx ? rx->missed : 0;
}

void wisp_bcast_recv_init(wisp_bcast_recv_t *pf, wisp_bcast_rx_t *rx)
{
    struct bcast_fut *f = (struct bcast_fut *)pf;
    waiter_init(&f->node);
    f->rx = rx;
    f->status = 0;
}

int wisp_bcast_recv_status(const wisp_bcast_recv_t *pf)
{
    return pf ? ((const struct bcast_fut *)pf)->status : -EINVAL;
}

wisp_poll_t wisp_bcast_recv_poll(void *pf, wisp_context_t *cx, void **output)
{
    struct bcast_fut *f = pf;
    void *msg = NULL;
    if (waiter_state(&f->node) != WAITER_DONE) {
        if (!f->rx) {
            f->status = -EINVAL;
        } else {
            struct bcast *ch = f->rx->ch;
            spin_acquire(&ch->lock);
            if (waiter_state(&f->node) == WAITER_QUEUED)
                waitq_remove(&ch->q, &f->node);
            int r = bcast_take(f->rx, &msg);
            if (r == -EAGAIN) {
                waiter_set_waker(&f->node, cx);
                f->node.gen = ch->tail;
                waitq_push_back(&ch->q, &f->node);
                spin_release(&ch->lock);
                return WISP_PENDING;
            }
            spin_release(&ch->lock);
            f->status = r;
        }
        waiter_set_state(&f->node, WAITER_DONE);
        wisp_waker_drop(&f->node.waker);
    }
    if (output)
        *output = msg;
    return WISP_READY;
}

void wisp_bcast_recv_drop(void *pf)
{
    struct bcast_fut *f = pf;
    if (f->rx)
        waiter_leave(&f->rx->ch->q, &f->rx->ch->lock, &f->node);
    else
        waiter_set_state(&f->node, WAITER_DONE);
}

/* ==== watch ==== */

struct watch {
    struct spin lock;
    void *value;
    uint64_t version;
    bool tx_gone;
    size_t receivers;
    unsigned busy;          /* the sender's drop inside an unlocked window */
    struct waitq q;
    wisp_clone_fn clone_msg;
    wisp_drop_fn drop_msg;
};

struct wisp_watch_rx {
    struct watch *ch;
    uint64_t seen;
};

struct watch_fut {
    struct waiter node;
    struct wisp_watch_rx *rx;
    int status;
};
_Static_assert(sizeof(struct watch_fut) <= sizeof(wisp_watch_changed_t), "too small");

static void watch_free(struct watch *ch)
{
    if (ch->drop_msg)
        ch->drop_msg(ch->value);
    alloc_free(ch);
}

static int watch_rx_new(struct watch *ch, uint64_t seen, bool set_seen, wisp_watch_rx_t **out)
{
    struct wisp_watch_rx *rx = alloc_zeroed(1, sizeof(*rx), 0);
    if (!rx)
        return -ENOMEM;
    rx->ch = ch;
    spin_acquire(&ch->lock);
    rx->seen = set_seen ? seen : ch->version;
    ch->receivers++;
    spin_release(&ch->lock);
    *out = rx;
    return 0;
}

int wisp_watch_new(wisp_watch_tx_t **tx, wisp_watch_rx_t **rx, void *initial,
                   wisp_clone_fn clone_msg, wisp_drop_fn drop_msg)
{
    if (!tx || !rx)
        return -EINVAL;
    *tx = NULL;
    *rx = NULL;
    struct watch *ch = alloc_zeroed(1, sizeof(*ch), 0);
    if (!ch)
        return -ENOMEM;
    memset(ch, 0, sizeof(*ch));
    spin_init(&ch->lock);
    ch->value = initial;
    ch->clone_msg = clone_msg;
    ch->drop_msg = drop_msg;
    if (watch_rx_new(ch, 0, false, rx) != 0) {
        alloc_free(ch);
        return -ENOMEM;
    }
    *tx = (wisp_watch_tx_t *)ch;
    return 0;
}

int wisp_watch_subscribe(wisp_watch_tx_t *tx, wisp_watch_rx_t **rx)
{
    if (!tx || !rx)
        return -EINVAL;
    return watch_rx_new((struct watch *)tx, 0, false, rx);
}

int wisp_watch_rx_clone(wisp_watch_rx_t *rx, wisp_watch_rx_t **out)
{
    if (!rx || !out)
        return -EINVAL;
    spin_acquire(&rx->ch->lock);
    uint64_t seen = rx->seen;
    spin_release(&rx->ch->lock);
    return watch_rx_new(rx->ch, seen, true, out);
}

int wisp_watch_send(wisp_watch_tx_t *tx, void *value)
{
    struct watch *ch = (struct watch *)tx;
    if (!ch)
        return -EINVAL;
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&ch->lock);
    if (ch->receivers == 0) {
        spin_release(&ch->lock);
        return -EPIPE;
    }
    void *old = ch->value;
    ch->value = value;
    uint64_t gen = ++ch->version;
    waitq_notify_before(&ch->q, &wl, &ch->lock, gen, 0);
    spin_release(&ch->lock);
    wake_list_wake(&wl);
    if (ch->drop_msg)
        ch->drop_msg(old);
    return 0;
}

void wisp_watch_tx_drop(wisp_watch_tx_t *tx)
{
    struct watch *ch = (struct watch *)tx;
    if (!ch)
        return;
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&ch->lock);
    ch->tx_gone = true;
    ch->busy++;
    waitq_notify_before(&ch->q, &wl, &ch->lock, UINT64_MAX, 0);
    bool free_it = --ch->busy == 0 && ch->receivers == 0;
    spin_release(&ch->lock);
    wake_list_wake(&wl);
    if (free_it)
        watch_free(ch);
}

void wisp_watch_rx_drop(wisp_watch_rx_t *rx)
{
    if (!rx)
        return;
    struct watch *ch = rx->ch;
    spin_acquire(&ch->lock);
    bool free_it = --ch->receivers == 0 && ch->tx_gone && ch->busy == 0;
    spin_release(&ch->lock);
    alloc_free(rx);
    if (free_it)
        watch_free(ch);
}

void *wisp_watch_borrow(wisp_watch_rx_t *rx)
{
    if (!rx)
        return NULL;
    struct watch *ch = rx->ch;
    spin_acquire(&ch->lock);
    void *v = ch->clone_msg ? ch->clone_msg(ch->value) : ch->value;
    rx->seen = ch->version;
    spin_release(&ch->lock);
    return v;
}

bool wisp_watch_has_changed(const wisp_watch_rx_t *rx)
{
    if (!rx)
        return false;
    struct watch *ch = rx->ch;
    spin_acquire(&ch->lock);
    bool c = rx->seen != ch->version;
    spin_release(&ch->lock);
    return c;
}

void wisp_watch_changed_init(wisp_watch_changed_t *pf, wisp_watch_rx_t *rx)
{
    struct watch_fut *f = (struct watch_fut *)pf;
    waiter_init(&f->node);
    f->rx = rx;
    f->status = 0;
}

wisp_poll_t wisp_watch_changed_poll(void *pf, wisp_context_t *cx, void **output)
{
    struct watch_fut *f = pf;
    if (waiter_state(&f->node) != WAITER_DONE) {
        if (!f->rx) {
            f->status = -EINVAL;
        } else {
            struct watch *ch = f->rx->ch;
            spin_acquire(&ch->lock);
            if (waiter_state(&f->node) == WAITER_QUEUED)
                waitq_remove(&ch->q, &f->node);
            if (f->rx->seen != ch->version) {
                f->status = 0;
            } else if (ch->tx_gone) {
                f->status = -EPIPE;
            } else {
                waiter_set_waker(&f->node, cx);
                f->node.gen = ch->version;
                waitq_push_back(&ch->q, &f->node);
                spin_release(&ch->lock);
                return WISP_PENDING;
            }
            spin_release(&ch->lock);
        }
        waiter_set_state(&f->node, WAITER_DONE);
        wisp_waker_drop(&f->node.waker);
    }
    if (output)
        *output = (void *)(intptr_t)f->status;
    return WISP_READY;
}

void wisp_watch_changed_drop(void *pf)
{
    struct watch_fut *f = pf;
    if (f->rx)
        waiter_leave(&f->rx->ch->q, &f->rx->ch->lock, &f->node);
    else
        waiter_set_state(&f->node, WAITER_DONE);
}
