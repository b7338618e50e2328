/* kind.h - interning of (runtime, poll, drop) triples into task kinds, so a
 * task header stores one pointer for all three.
 *
 * Owns: the per-runtime hash table of kinds and a one-entry per-thread cache.
 * Touches nothing else.  Kinds live until the runtime is freed; finished
 * tasks never read their kind, so wakers outliving the runtime stay safe. */
#ifndef WISP_KIND_H
#define WISP_KIND_H

#include <stdatomic.h>

#include <wisp/future.h>

struct task_kind;
struct wisp_runtime;

#define KIND_BUCKETS 256

struct kind_table {
    struct task_kind *_Atomic buckets[KIND_BUCKETS];
};

void wisp__kind_table_init(struct kind_table *kt);
void wisp__kind_table_destroy(struct kind_table *kt);

/* The kind for (rt, poll, drop), created on first use; NULL: out of memory. */
const struct task_kind *wisp__kind_get(struct wisp_runtime *rt, wisp_poll_fn poll, wisp_drop_fn drop);

#endif /* WISP_KIND_H */
