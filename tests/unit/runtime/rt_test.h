/* Helpers shared by the runtime tests: a counter to wait on with a deadline, so a lost
 * callback or a deadlock fails the test instead of hanging it. */
#ifndef RT_TEST_H
#define RT_TEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <sysext/driverkit/DriverKit.h>

struct rt_counter {
    pthread_mutex_t m;
    pthread_cond_t c;
    int n;
};

#define RT_COUNTER_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 }

static inline void rt_counter_add(struct rt_counter *k)
{
    pthread_mutex_lock(&k->m);
    k->n++;
    pthread_cond_broadcast(&k->c);
    pthread_mutex_unlock(&k->m);
}

static inline int rt_counter_get(struct rt_counter *k)
{
    pthread_mutex_lock(&k->m);
    int n = k->n;
    pthread_mutex_unlock(&k->m);
    return n;
}

static inline uint64_t rt_test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Wait until the counter reaches `target`; false after `ms` milliseconds. */
static inline bool rt_counter_wait(struct rt_counter *k, int target, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&k->m);
    while (k->n < target)
        if (pthread_cond_timedwait(&k->c, &k->m, &ts) != 0)
            break;
    bool ok = k->n >= target;
    pthread_mutex_unlock(&k->m);
    return ok;
}

static inline void rt_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

#endif
