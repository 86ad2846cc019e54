/* The daemon's driver host: configuration from sysextd's options. */
#include "util/common.h"

#include <pwd.h>
#include <unistd.h>

#include "sysextd/daemon.h"
#include "sysextd/services.h"

int sxd_host_start_daemon(sxd_daemon *d)
{
    sxd_host_config hc;
    memset(&hc, 0, sizeof(hc));
    _sx_cleanup_free_ char *rt = NULL;
    if (!d->cfg.runtime_dir) {
        if (asprintf(&rt, "%s/run", d->cfg.state_dir) < 0) {
            rt = NULL;
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        }
    }
    hc.runtime_dir = d->cfg.runtime_dir ? d->cfg.runtime_dir : rt;
    hc.sandbox = d->cfg.sandbox;
    hc.on_state = sxd_services_driver_state; /* registry nubs and bindings follow the drivers */
    hc.ctx = d;
    if (geteuid() == 0) {
        const char *user = d->cfg.driver_user ? d->cfg.driver_user : "nobody";
        struct passwd *pw = getpwnam(user);
        if (!pw)
            return sx_err(SYSEXT_ENOTFOUND, "--driver-user: no user '%s'", user);
        if (pw->pw_uid == 0)
            return sx_err(SYSEXT_EINVAL, "--driver-user: '%s' is root; drivers must not run as root", user);
        hc.driver_uid = pw->pw_uid;
        hc.driver_gid = pw->pw_gid;
    } else if (d->cfg.sandbox == SXD_SANDBOX_UID) {
        return sx_err(SYSEXT_EPERM, "--sandbox uid needs root");
    }
    return sxd_host_new(&hc, &d->host);
}
