/* A fixed pool of worker threads with a bounded queue; finished jobs go to a list the loop
 * drains when the eventfd says so. */
#include "util/common.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "sysextd/jobs.h"
#include "util/error.h"

#define MAX_WORKERS 8

typedef struct job {
    struct job *next;
    sxd_job_work work;
    sxd_job_done done;
    void *arg;
    bool ran;
} job;

struct sxd_jobs {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    job *queue, **queue_tail; /* waiting, FIFO */
    size_t queued;
    job *finished, **finished_tail;
    bool stopping;
    int efd;
    pthread_t threads[MAX_WORKERS];
    unsigned nthreads;
};

static void push(job ***tail, job *jb)
{
    jb->next = NULL;
    **tail = jb;
    *tail = &jb->next;
}

/* Tests hold every job this long (SYSEXTD_TEST_JOB_DELAY_MS) to show the loop stays live. */
static unsigned test_delay_ms(void)
{
    const char *v = getenv("SYSEXTD_TEST_JOB_DELAY_MS");
    long ms = v ? atol(v) : 0;
    return ms > 0 && ms < 60000 ? (unsigned)ms : 0;
}

static void *worker(void *p)
{
    sxd_jobs *j = p;
    unsigned delay = test_delay_ms();
    pthread_mutex_lock(&j->lock);
    for (;;) {
        while (!j->queue && !j->stopping)
            pthread_cond_wait(&j->wake, &j->lock);
        if (!j->queue)
            break; /* stopping and nothing left to start */
        job *jb = j->queue;
        j->queue = jb->next;
        if (!j->queue)
            j->queue_tail = &j->queue;
        j->queued--;
        bool run = !j->stopping;
        pthread_mutex_unlock(&j->lock);
        if (run) {
            if (delay) {
                struct timespec ts = {delay / 1000, (long)(delay % 1000) * 1000000L};
                nanosleep(&ts, NULL);
            }
            jb->work(jb->arg);
            jb->ran = true;
        }
        pthread_mutex_lock(&j->lock);
        push(&j->finished_tail, jb);
        uint64_t one = 1;
        if (write(j->efd, &one, sizeof(one)) < 0) {
            /* the counter cannot overflow at our rates; a failed wakeup only delays */
        }
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

int sxd_jobs_new(unsigned workers, sxd_jobs **out)
{
    sxd_jobs *j = calloc(1, sizeof(*j));
    if (!j)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->wake, NULL);
    j->queue_tail = &j->queue;
    j->finished_tail = &j->finished;
    j->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (j->efd < 0) {
        int e = errno;
        free(j);
        return sx_err_errno(SYSEXT_EIO, e, "sysextd: eventfd for the job queue");
    }
    if (workers == 0)
        workers = 1;
    if (workers > MAX_WORKERS)
        workers = MAX_WORKERS;
    /* Workers take no signals: the loop's signalfd must see SIGHUP/SIGTERM, and a worker
     * started before the loop blocks them would otherwise die of SIGHUP's default action. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < workers; i++) {
        int e = pthread_create(&j->threads[i], NULL, worker, j);
        if (e) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            sxd_jobs_free(j, NULL);
            return sx_err_errno(SYSEXT_EIO, e, "sysextd: starting worker thread %u", i);
        }
        j->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    *out = j;
    return 0;
}

int sxd_jobs_fd(const sxd_jobs *j)
{
    return j->efd;
}

int sxd_jobs_submit(sxd_jobs *j, sxd_job_work work, sxd_job_done done, void *arg)
{
    job *jb = calloc(1, sizeof(*jb));
    if (!jb)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    jb->work = work;
    jb->done = done;
    jb->arg = arg;
    pthread_mutex_lock(&j->lock);
    if (j->queued >= SXD_JOBS_MAX_QUEUED || j->stopping) {
        pthread_mutex_unlock(&j->lock);
        free(jb);
        return sx_err(SYSEXT_EBUSY, "sysextd is busy: %u requests are waiting to be checked",
                      (unsigned)SXD_JOBS_MAX_QUEUED);
    }
    push(&j->queue_tail, jb);
    j->queued++;
    pthread_cond_signal(&j->wake);
    pthread_mutex_unlock(&j->lock);
    return 0;
}

static job *take_finished(sxd_jobs *j)
{
    pthread_mutex_lock(&j->lock);
    job *list = j->finished;
    j->finished = NULL;
    j->finished_tail = &j->finished;
    pthread_mutex_unlock(&j->lock);
    return list;
}

static void run_done(job *list, struct sxd_daemon *d, bool cancelled)
{
    while (list) {
        job *next = list->next;
        list->done(d, list->arg, cancelled || !list->ran);
        free(list);
        list = next;
    }
}

void sxd_jobs_dispatch(sxd_jobs *j, struct sxd_daemon *d)
{
    uint64_t n;
    while (read(j->efd, &n, sizeof(n)) == (ssize_t)sizeof(n)) {
    }
    run_done(take_finished(j), d, false);
}

void sxd_jobs_free(sxd_jobs *j, struct sxd_daemon *d)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->lock);
    j->stopping = true;
    pthread_cond_broadcast(&j->wake);
    pthread_mutex_unlock(&j->lock);
    for (unsigned i = 0; i < j->nthreads; i++)
        pthread_join(j->threads[i], NULL);
    /* workers drain the queue (without running it) before they exit */
    run_done(take_finished(j), d, true);
    close(j->efd);
    pthread_cond_destroy(&j->wake);
    pthread_mutex_destroy(&j->lock);
    free(j);
}
