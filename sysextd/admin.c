/* Who may administer: root, the daemon's own uid (tests run the daemon unprivileged), and
 * members of the admin group given with --admin-group. Membership is read from the caller's
 * live credentials (/proc/PID/status), not from the group database, so a process that dropped
 * the group is not an admin and one that was given it at login is. */
#include "util/common.h"

#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysextd/daemon.h"
#include "util/error.h"

int sxd_admin_group_resolve(const char *name, gid_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(name, &end, 10);
    if (*name && end && !*end && errno == 0 && v < (unsigned long)(gid_t)-1) {
        *out = (gid_t)v;
        return 0;
    }
    struct group *gr = getgrnam(name);
    if (!gr)
        return sx_err(SYSEXT_ENOTFOUND, "--admin-group: no group named '%s'", name);
    *out = gr->gr_gid;
    return 0;
}

/* Whether `gid` is among the supplementary groups of `pid` ("Groups:" in /proc/PID/status). */
static bool proc_has_group(pid_t pid, gid_t gid)
{
    char path[64];
    if (snprintf(path, sizeof(path), "/proc/%" PRIdMAX "/status", (intmax_t)pid) >= (int)sizeof(path))
        return false;
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "Groups:", 7))
            continue;
        for (char *p = line + 7, *end; *p; p = end) {
            errno = 0;
            unsigned long g = strtoul(p, &end, 10);
            if (end == p)
                break;
            if (errno == 0 && g == (unsigned long)gid)
                found = true;
        }
        break;
    }
    fclose(f);
    return found;
}

bool sxd_is_admin(const sxd_daemon *d, const sxd_peer *p)
{
    if (p->uid == 0 || p->uid == d->admin_uid)
        return true;
    if (!d->has_admin_gid)
        return false;
    if (p->gid == d->admin_gid)
        return true;
    /* the status file is read after SO_PEERCRED: make sure the pid still names the caller */
    return proc_has_group(p->pid, d->admin_gid) && sxd_peer_alive(p);
}
