/* sysextd: the activation daemon.
 *
 *   sysextd --state-dir DIR --socket PATH [--trust ROOT.pem]... [--notary-cert CERT]
 *           [--policy FILE] [--grace-period S] [--developer-mode] [--allowed-location DIR]...
 *           [--admin-group GROUP]
 *           [--driver-user NAME] [--sandbox auto|uid|userns] [--runtime-dir DIR] [--usb]
 *
 * --usb: publish real USB devices (libusb hot-plug) for drivers to match; off by default.
 *
 * Production: started by systemd with socket activation (sd_listen_fds), reports READY=1.
 * Defaults: --state-dir /var/lib/sysextd, --socket /run/sysextd.sock, --policy
 * /etc/sysext/policy.plist, grace period 3 s, allowed locations /Applications and
 * /opt/applications, driver runtime directory <state-dir>/run, sandbox auto (root: setuid to
 * --driver-user, default nobody; otherwise a user namespace). Admin requests are accepted from root and from the daemon's own uid. */
#include "util/common.h"

#include <getopt.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "sysextd/daemon.h"
#include "sysextd/proto.h"

static void usage(FILE *f)
{
    fputs("usage: sysextd [--state-dir DIR] [--socket PATH] [--trust ROOT.pem]...\n"
          "               [--notary-cert CERT] [--policy FILE] [--grace-period S]\n"
          "               [--developer-mode] [--allowed-location DIR]... [--admin-group GROUP]\n"
          "               [--driver-user NAME] [--sandbox auto|uid|userns] [--runtime-dir DIR] [--usb]\n",
          f);
}

static int listen_on(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "sysextd: socket path too long: %s\n", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
        fprintf(stderr, "sysextd: %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* Anyone may connect; what a caller may do is decided from its credentials. */
    chmod(path, 0666);
    return fd;
}

static int push(const char ***v, size_t *n, const char *s)
{
    const char **nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return -1;
    nv[(*n)++] = s;
    *v = nv;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"socket", required_argument, NULL, 'S'},
        {"trust", required_argument, NULL, 't'},
        {"notary-cert", required_argument, NULL, 'n'},
        {"policy", required_argument, NULL, 'p'},
        {"grace-period", required_argument, NULL, 'g'},
        {"developer-mode", no_argument, NULL, 'D'},
        {"allowed-location", required_argument, NULL, 'a'},
        {"admin-group", required_argument, NULL, 'G'},
        {"driver-user", required_argument, NULL, 'u'},
        {"sandbox", required_argument, NULL, 'x'},
        {"runtime-dir", required_argument, NULL, 'r'},
        {"usb", no_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sxd_daemon d;
    memset(&d, 0, sizeof(d));
    d.cfg.state_dir = "/var/lib/sysextd";
    d.cfg.socket_path = NULL;
    d.cfg.policy_path = "/etc/sysext/policy.plist";
    d.cfg.grace_period = 3.0;
    d.listen_fd = -1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 's': d.cfg.state_dir = optarg; break;
        case 'S': d.cfg.socket_path = optarg; break;
        case 'n': d.cfg.notary_cert = optarg; break;
        case 'p': d.cfg.policy_path = optarg; break;
        case 'D': d.cfg.developer_mode = true; break;
        case 'G': d.cfg.admin_group = optarg; break;
        case 'U': d.usb_hotplug = true; break;
        case 't':
            if (push(&d.cfg.trust, &d.cfg.n_trust, optarg) < 0)
                return 2;
            break;
        case 'a':
            if (push(&d.cfg.allowed, &d.cfg.n_allowed, optarg) < 0)
                return 2;
            break;
        case 'g':
            d.cfg.grace_period = strtod(optarg, &end);
            if (!end || *end || d.cfg.grace_period < 0 || d.cfg.grace_period > 86400) {
                fprintf(stderr, "sysextd: --grace-period: '%s' is not a number of seconds\n",
                        optarg);
                return 2;
            }
            break;
        case 'u': d.cfg.driver_user = optarg; break;
        case 'r': d.cfg.runtime_dir = optarg; break;
        case 'x':
            if (!strcmp(optarg, "auto"))
                d.cfg.sandbox = SXD_SANDBOX_AUTO;
            else if (!strcmp(optarg, "uid"))
                d.cfg.sandbox = SXD_SANDBOX_UID;
            else if (!strcmp(optarg, "userns"))
                d.cfg.sandbox = SXD_SANDBOX_USERNS;
            else {
                fprintf(stderr, "sysextd: --sandbox: '%s' is not auto, uid or userns\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    int rc = sxd_daemon_start(&d);
    if (rc < 0) {
        fprintf(stderr, "sysextd: %s\n", sx_errmsg());
        return 2;
    }
    int nfds = d.cfg.socket_path ? 0 : sd_listen_fds(1);
    if (nfds >= 1) {
        d.listen_fd = SD_LISTEN_FDS_START;
    } else {
        if (!d.cfg.socket_path)
            d.cfg.socket_path = SXD_DEFAULT_SOCKET;
        d.listen_fd = listen_on(d.cfg.socket_path);
        if (d.listen_fd < 0) {
            sxd_daemon_stop(&d);
            return 2;
        }
    }
    sd_notify(0, "READY=1");
    fprintf(stderr, "sysextd: ready on %s (state %s%s)\n",
            d.cfg.socket_path ? d.cfg.socket_path : "systemd socket", d.cfg.state_dir,
            d.developer_mode ? ", developer mode" : "");
    rc = sxd_run(&d);
    if (rc < 0)
        fprintf(stderr, "sysextd: %s\n", sx_errmsg());
    sd_notify(0, "STOPPING=1");
    close(d.listen_fd);
    if (d.cfg.socket_path && nfds < 1)
        unlink(d.cfg.socket_path);
    sxd_daemon_stop(&d);
    free(d.cfg.trust);
    free(d.cfg.allowed);
    return rc < 0 ? 2 : 0;
}
