/* Private to the runtime: never installed. Every runtime .c includes this first. */
#ifndef SYSEXT_RUNTIME_INTERNAL_H
#define SYSEXT_RUNTIME_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sysext/driverkit/DriverKit.h>

#pragma GCC poison strcpy strcat sprintf vsprintf gets stpcpy

#define DK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define DK_ADD_OVERFLOW(a, b, out) __builtin_add_overflow((a), (b), (out))
#define DK_MUL_OVERFLOW(a, b, out) __builtin_mul_overflow((a), (b), (out))

/* OSObject._flags */
#define RT_OBJ_IMMORTAL 1u

/* Current time of `clock` in ns. */
uint64_t rt_now_ns(clockid_t clock);
/* Map a kIOTimerClock* value to a clockid; false for an unknown one. */
bool rt_clock_from_options(uint64_t options, clockid_t *out);

/* Copy a bounded name; false when it does not fit (truncation is an error). */
bool rt_copy_name(char *dst, size_t cap, const char *src);

/* Release the named-queue table of an object (OSObject's free). */
void rt_object_free_queues(OSObject *obj);
/* The queue method `methodID` of `obj` runs on, +1; NULL if the object has none. */
IODispatchQueue *rt_object_copy_queue_for_method(OSObject *obj, uint64_t methodID);

/* OSAction invocation, used by the typed *_Invoke stubs and the dispatch sources.
 * `invoker` runs on the target's queue with a private copy of `args` (argsSize bytes). */
typedef void (*rt_action_invoker)(OSAction *action, OSObject *target, OSMethodFunction fn, void *args);
#define RT_INVOKE_INLINE_IF_ON_QUEUE 1u /* already on the target queue: call now, not later */
#define RT_INVOKE_WAIT 2u               /* wait until the invocation has run (caller not on a queue) */
kern_return_t rt_action_invoke(OSAction *action, uint64_t typeID, rt_action_invoker invoker,
                               const void *args, size_t argsSize, unsigned flags);

/* Dispatch sources: run a cancel handler on `queue` after its queued work (inline if it is gone). */
kern_return_t rt_source_finish_cancel(IODispatchQueue *queue, OSObject *src, IODispatchSourceCancelHandler fn,
                                      void *ctx);

/* Dispatch sources: install `action`, which must be of `typeID`, as the handler in `*slot`
 * under `lock` unless the source is cancelled; the old handler is released outside the lock. */
kern_return_t rt_source_set_handler(pthread_mutex_t *lock, const bool *cancelled, OSAction **slot,
                                    OSAction *action, uint64_t typeID);

/* Dispatch sources: start the source's own thread and mark it running. The thread may read
 * `*thread` only under `lock`, which is held while pthread_create fills it in. */
kern_return_t rt_source_start_thread(pthread_mutex_t *lock, pthread_t *thread, bool *running,
                                     void *(*fn)(void *), void *arg, const char *name);

/* Run fn(ctx) on `q` and wait, like DispatchSync, for host-side entry points. */
kern_return_t rt_queue_run_sync(IODispatchQueue *q, void (*fn)(void *), void *ctx);

#endif
