/* wisp/export.h - symbol visibility: the library is built with hidden
 * visibility and exports exactly the functions marked WISP_API. */
#ifndef WISP_EXPORT_H
#define WISP_EXPORT_H

#include <wisp/config.h>

#if defined(WISP_BUILDING_LIBRARY)
#define WISP_API __attribute__((visibility("default")))
#else
#define WISP_API
#endif

#endif /* WISP_EXPORT_H */
