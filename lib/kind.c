/* kind.c - per-runtime interning of task kinds (see kind.h).
 *
 * A lock-free insert-only hash table: lookups walk a bucket's chain with
 * acquire loads; inserts CAS a new node onto the chain's head.  Programs have
 * few distinct (poll, drop) pairs, and a per-thread one-entry cache makes the
 * common spawn (same kind as the last one) cost three compares. */
#include "kind.h"

#include <stdint.h>
#include <stdlib.h>

#include "alloc.h"
#include "runtime.h"
#include "task.h"

static WISP_TLS struct {
    uint64_t rt_id;
    wisp_poll_fn poll;
    wisp_drop_fn drop;
    const struct task_kind *kind;
} kind_cache;

void wisp__kind_table_init(struct kind_table *kt)
{
    for (size_t i = 0; i < KIND_BUCKETS; i++)
        atomic_init(&kt->buckets[i], NULL);
}

void wisp__kind_table_destroy(struct kind_table *kt)
{
    for (size_t i = 0; i < KIND_BUCKETS; i++) {
        /* relaxed: the runtime is quiescent; no other thread reads it. */
        struct task_kind *k = atomic_load_explicit(&kt->buckets[i], memory_order_relaxed);
        while (k) {
            struct task_kind *next = k->next;
            alloc_free(k);
            k = next;
        }
    }
}

static size_t kind_bucket(wisp_poll_fn poll, wisp_drop_fn drop)
{
    uint64_t h = (uint64_t)(uintptr_t)poll * UINT64_C(0x9E3779B97F4A7C15);
    h ^= (uint64_t)(uintptr_t)drop * UINT64_C(0xC2B2AE3D27D4EB4F);
    return (size_t)(h >> 56) % KIND_BUCKETS;
}

static const struct task_kind *kind_find(struct task_kind *k, const struct task_kind *stop,
                                         wisp_poll_fn poll, wisp_drop_fn drop)
{
    for (; k && k != stop; k = k->next)
        if (k->poll == poll && k->drop == drop)
            return k;
    return NULL;
}

static const struct task_kind *kind_lookup_or_insert(struct wisp_runtime *rt, wisp_poll_fn poll,
                                                     wisp_drop_fn drop)
{
    struct task_kind *_Atomic *bucket = &rt->kinds.buckets[kind_bucket(poll, drop)];
    /* acquire: pairs with the release CAS below, so the node's fields are
     * visible before we read them. */
    struct task_kind *head = atomic_load_explicit(bucket, memory_order_acquire);
    const struct task_kind *found = kind_find(head, NULL, poll, drop);
    if (found)
        return found;
    struct task_kind *node = alloc_zeroed(1, sizeof(*node), 0);
    if (!node)
        return NULL;
    node->rt = rt;
    node->poll = poll;
    node->drop = drop;
    for (;;) {
        node->next = head;
        /* release: publishes the node's fields; acquire on failure: we scan
         * the nodes that won the race. */
        if (atomic_compare_exchange_weak_explicit(bucket, &head, node, memory_order_release,
                                                  memory_order_acquire))
            return node;
        found = kind_find(head, node->next, poll, drop);
        if (found) {
            alloc_free(node);
            return found;
        }
    }
}

const struct task_kind *wisp__kind_get(struct wisp_runtime *rt, wisp_poll_fn poll, wisp_drop_fn drop)
{
    if (likely(kind_cache.rt_id == rt->id && kind_cache.poll == poll && kind_cache.drop == drop))
        return kind_cache.kind;
    const struct task_kind *k = kind_lookup_or_insert(rt, poll, drop);
    if (k) {
        kind_cache.rt_id = rt->id;
        kind_cache.poll = poll;
        kind_cache.drop = drop;
        kind_cache.kind = k;
    }
    return k;
}
