/* alloc.h - the allocator wisp uses for tasks: jemalloc's mallocx/sdallocx
 * (sized free skips the size lookup) when WISP_JEMALLOC, else libc. */
#ifndef WISP_ALLOC_H
#define WISP_ALLOC_H

#include <stddef.h>
#include <stdlib.h>

#include <wisp/config.h>

#if WISP_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

/* size must be non-zero. */
static inline void *wisp_alloc(size_t size)
{
#if WISP_JEMALLOC
    return mallocx(size, 0);
#else
    return malloc(size);
#endif
}

/* size is the size passed to wisp_alloc, or 0 if unknown. */
static inline void wisp_free_sized(void *p, size_t size)
{
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

#endif /* WISP_ALLOC_H */
