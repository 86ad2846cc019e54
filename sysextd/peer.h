/* Who is on the other end of a Unix socket: SO_PEERCRED (+ a pidfd where the kernel has one,
 * so a recycled pid is noticed) -> /proc/<pid>/exe -> the app bundle it is the main executable
 * of, whose signature must verify and whose signed executable must be the running file. */
#ifndef SXD_PEER_H
#define SXD_PEER_H

#include <stdbool.h>
#include <sys/types.h>

#include "sysextd/verify.h"

typedef struct sxd_peer {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    int pidfd;   /* -1 when the kernel has no pidfd */
    char *exe;   /* /proc/<pid>/exe at connect time, NULL if unreadable */
    dev_t dev;   /* identity of the running executable file */
    ino_t ino;
} sxd_peer;

int sxd_peer_from_fd(int fd, sxd_peer *p);
void sxd_peer_clear(sxd_peer *p);
/* Still the same process (pidfd) / still running. */
bool sxd_peer_alive(const sxd_peer *p);

/* Resolve the calling app. On refusal returns <0 with *oserr set to the
 * OSSystemExtensionError code (reference 1.5) and the message saying why. */
int sxd_peer_app(const sxd_peer *p, const char *const *trust, size_t n_trust, sxd_code *app,
                 int *oserr);

/* "X.app/Contents/MacOS/<exe>" -> "X.app" (newly allocated), NULL when not of that shape. */
char *sxd_app_path_of_exe(const char *exe);

#endif
