/* wisp/wisp.h - umbrella header: everything public in wisp. */
#ifndef WISP_WISP_H
#define WISP_WISP_H

/* errno.h: every failing function returns a negative errno value. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wisp/future.h>
#include <wisp/runtime.h>
#include <wisp/task.h>
#include <wisp/metrics.h>
#include <wisp/time.h>
#include <wisp/io.h>
#include <wisp/sync.h>

#endif /* WISP_WISP_H */
