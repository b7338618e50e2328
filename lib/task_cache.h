/* task_cache.h - a worker's cache of freed task allocations of the common
 * small sizes, so that spawn and free on a worker skip the allocator.
 *
 * Owns: the cached blocks of one worker (struct task_cache lives in struct
 * worker and is touched only by that worker's thread).  Blocks freed on any
 * other thread go straight back to the allocator.  Disabled in sanitizer
 * builds, where recycling would hide use-after-free from AddressSanitizer. */
#ifndef WISP_TASK_CACHE_H
#define WISP_TASK_CACHE_H

#include <stddef.h>

/* Sizes 64..128 bytes in 16-byte steps: a header plus up to 64 bytes of
 * future, which covers most tasks. */
#define TASK_CACHE_MIN_UNITS 4
#define TASK_CACHE_CLASSES 5
#define TASK_CACHE_DEPTH 64

struct task_cache {
    void *blocks[TASK_CACHE_CLASSES][TASK_CACHE_DEPTH];
    unsigned count[TASK_CACHE_CLASSES];
};

/* size: a multiple of 16.  NULL when the cache has no block of that size. */
void *wisp__task_cache_get(struct task_cache *c, size_t size);
/* false when the block does not fit (wrong size or class full). */
_Bool wisp__task_cache_put(struct task_cache *c, void *block, size_t size);
/* Returns every cached block to the allocator. */
void wisp__task_cache_drain(struct task_cache *c);

#endif /* WISP_TASK_CACHE_H */
