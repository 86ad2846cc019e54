/* Macros every public sysext header uses. */
#ifndef SYSEXT_COMMON_H
#define SYSEXT_COMMON_H

#if defined(SYSEXT_BUILDING_LIBRARY)
#define SYSEXT_API __attribute__((visibility("default")))
#else
#define SYSEXT_API
#endif

#ifdef __cplusplus
#define SYSEXT_BEGIN_DECLS extern "C" {
#define SYSEXT_END_DECLS }
#else
#define SYSEXT_BEGIN_DECLS
#define SYSEXT_END_DECLS
#endif

/* Flag for the reporting calls (validate, inspect, verify...): render JSON instead of text. */
#ifndef SYSEXT_OUTPUT_JSON
#define SYSEXT_OUTPUT_JSON 0x1u
#endif

#endif
