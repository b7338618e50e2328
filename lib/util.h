/* util.h - small helpers shared by every file of lib/: cache-line size,
 * the CPU relax hint, branch hints.  No state. */
#ifndef WISP_UTIL_H
#define WISP_UTIL_H

#define WISP_CACHE_LINE 64

/* Thread-locals on the hot path: initial-exec avoids __tls_get_addr calls
 * in the shared library (wisp is linked at start-up, not dlopen'ed late). */
#define WISP_TLS _Thread_local __attribute__((tls_model("initial-exec")))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif /* WISP_UTIL_H */
