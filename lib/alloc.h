/* alloc.h - every heap allocation of lib/ goes through here: tasks through
 * jemalloc's mallocx/sdallocx when WISP_JEMALLOC (sized free skips the size
 * lookup), everything else through libc.  In the fault-injection build each
 * allocation first asks fault.h whether to fail.  No state. */
#ifndef WISP_ALLOC_H
#define WISP_ALLOC_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <wisp/config.h>

#if WISP_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "fault.h"

/* Tasks.  size must be non-zero. */
static inline void *alloc_task(size_t size)
{
    if (fault_alloc())
        return NULL;
#if WISP_JEMALLOC
    void *p = mallocx(size, 0);
#else
    void *p = malloc(size);
#endif
    fault_count_alloc(p);
    return p;
}

/* size is the size passed to alloc_task, or 0 if unknown. */
static inline void free_task(void *p, size_t size)
{
    fault_count_free(p);
#if WISP_JEMALLOC
    if (size)
        sdallocx(p, size, 0);
    else
        dallocx(p, 0);
#else
    (void)size;
    free(p);
#endif
}

/* Everything else: libc, zeroed, optionally aligned (align a power of two
 * no larger than what aligned_alloc accepts; 0: malloc's). */
static inline void *alloc_zeroed(size_t n, size_t size, size_t align)
{
    if (fault_alloc())
        return NULL;
    void *p;
    if (!align) {
        p = calloc(n, size);
    } else {
        if (size && n > SIZE_MAX / size)
            return NULL;
        size_t bytes = (n * size + align - 1) / align * align;
        p = aligned_alloc(align, bytes ? bytes : align);
        if (p)
            memset(p, 0, bytes);
    }
    fault_count_alloc(p);
    return p;
}

static inline void alloc_free(void *p)
{
    fault_count_free(p);
    free(p);
}

#endif /* WISP_ALLOC_H */
