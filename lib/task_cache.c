/* task_cache.c - per-worker recycling of task allocations (task_cache.h). */
#include "task_cache.h"

#include "alloc.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TASK_CACHE_ENABLED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TASK_CACHE_ENABLED 0
#endif
#endif
#ifndef TASK_CACHE_ENABLED
#define TASK_CACHE_ENABLED 1
#endif

static int cache_class(size_t size)
{
    size_t units = size / 16;
    if (!TASK_CACHE_ENABLED || units < TASK_CACHE_MIN_UNITS ||
        units >= TASK_CACHE_MIN_UNITS + TASK_CACHE_CLASSES)
        return -1;
    return (int)(units - TASK_CACHE_MIN_UNITS);
}

void *wisp__task_cache_get(struct task_cache *c, size_t size)
{
    int k = cache_class(size);
    if (k < 0 || c->count[k] == 0)
        return NULL;
    return c->blocks[k][--c->count[k]];
}

_Bool wisp__task_cache_put(struct task_cache *c, void *block, size_t size)
{
    int k = cache_class(size);
    if (k < 0 || c->count[k] == TASK_CACHE_DEPTH)
        return 0;
    c->blocks[k][c->count[k]++] = block;
    return 1;
}

void wisp__task_cache_drain(struct task_cache *c)
{
    for (int k = 0; k < TASK_CACHE_CLASSES; k++) {
        size_t size = (size_t)(k + TASK_CACHE_MIN_UNITS) * 16;
        while (c->count[k])
            free_task(c->blocks[k][--c->count[k]], size);
    }
}
