/* Work that must not stall the event loop (copying and verifying a bundle can take seconds):
 * a small pool of worker threads runs `work`, then the loop thread runs `done` with the
 * result. Workers see only what the job carries and the daemon's immutable configuration. */
#ifndef SXD_JOBS_H
#define SXD_JOBS_H

#include <stdbool.h>

struct sxd_daemon;
typedef struct sxd_jobs sxd_jobs;

/* On a worker thread. */
typedef void (*sxd_job_work)(void *arg);
/* On the loop thread, after `work` returned; `cancelled` when the daemon is shutting down
 * (then `work` may not have run): release `arg` without answering anyone. */
typedef void (*sxd_job_done)(struct sxd_daemon *d, void *arg, bool cancelled);

#define SXD_JOBS_MAX_QUEUED 64

int sxd_jobs_new(unsigned workers, sxd_jobs **out);
/* Readable when finished jobs wait for sxd_jobs_dispatch. */
int sxd_jobs_fd(const sxd_jobs *j);
/* Queue a job. SYSEXT_EBUSY past SXD_JOBS_MAX_QUEUED waiting jobs (nothing queued then). */
int sxd_jobs_submit(sxd_jobs *j, sxd_job_work work, sxd_job_done done, void *arg);
/* Run the `done` of every finished job. */
void sxd_jobs_dispatch(sxd_jobs *j, struct sxd_daemon *d);
/* Stop: jobs not started are cancelled, running ones are waited for, then every `done` runs
 * with cancelled = true. NULL ok. */
void sxd_jobs_free(sxd_jobs *j, struct sxd_daemon *d);

#endif
