/* The whole story of issue 8, as scripts/demo tells it, with assertions on every step: the
 * sample driver and its app are built from drivers/usbsample and signed; sysextd activates the
 * driver after approval; a virtual sensor is attached; the driver, hosted and sandboxed by
 * sysextd, feeds the app samples through its user client; the app sets the rate; v2 replaces
 * v1 and samples come from v2; unplugging stops the driver; moving the app to a trash folder
 * uninstalls the extension. (Notarization is the demo's part: these identities are
 * development ones, which need no ticket.) */
#include "e2e.h"

#include "sysext/device.h"
#include "vusb_fixture.h"

#define SAMPLE_DIR SYSEXT_SOURCE_DIR "/drivers/usbsample"
#define APP_BIN SYSEXT_BINARY_DIR "/drivers/usbsample-app"
#define DRV_ID "com.example.usbsample.driver"

static void s_setup(void)
{
    e_setup();
}

static void s_teardown(void)
{
    vusb_stop();
    e_teardown();
}

TestSuite(story, .init = s_setup, .fini = s_teardown, .timeout = 180);

static void ctl(const char *const *args)
{
    const char *argv[24] = {SYSEXTCTL_BIN};
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char out[8192];
    int rc = h_run(out, sizeof(out), argv);
    cr_assert_eq(rc, 0, "sysextctl %s %s: %s", args[0], args[1] ? args[1] : "", out);
}

/* The signed USBSample.app of `version` (1 or 2) at `app_rel`, embedding the driver built
 * from the sample's Info.plist with that version's executable. Returns a static buffer. */
static const char *make_app(int version, const char *app_rel)
{
    char dir[64], info[1100], dext[1100], drv[1100];
    snprintf(dir, sizeof(dir), "v%d", version);
    snprintf(info, sizeof(info), "%s/Info.plist", P(dir));
    snprintf(dext, sizeof(dext), "%s/%s.dext", P(dir), DRV_ID);
    snprintf(drv, sizeof(drv), SYSEXT_BINARY_DIR "/drivers/usbsample-driver%s", version == 2 ? "-v2" : "");
    /* the sample's Info.plist, with the version strings of `version` */
    uint8_t *src = NULL;
    size_t len = 0;
    cr_assert_eq(sx_read_file(SAMPLE_DIR "/Info.plist", 1 << 20, &src, &len), 0);
    char *plist = calloc(1, len + 16);
    memcpy(plist, src, len);
    free(src);
    if (version == 2) {
        char *p = strstr(plist, "<string>1.0</string>");
        cr_assert_not_null(p);
        p[8] = '2';
        p = strstr(plist, "<key>CFBundleVersion</key>");
        cr_assert_not_null(p);
        p = strstr(p, "<string>1</string>");
        cr_assert_not_null(p);
        p[8] = '2';
    }
    cr_assert_eq(sx_mkdir_p(P(dir), 0755), 0);
    e_write(info, plist, 0644);
    free(plist);
    ctl((const char *[]){"build", "--type", "dext", "--info", info, "--executable", drv, "--output",
                         dext, NULL});
    ctl((const char *[]){"sign", "--identity", P("a.p12"), "--entitlements",
                         SAMPLE_DIR "/driver.entitlements", dext, NULL});
    static char app[1100];
    snprintf(app, sizeof(app), "%s", P(app_rel));
    ctl((const char *[]){"build", "--type", "app", "--info", SAMPLE_DIR "/app-Info.plist",
                         "--executable", APP_BIN, "--output", app, "--embed", dext, NULL});
    ctl((const char *[]){"sign", "--identity", P("a.p12"), "--entitlements",
                         SAMPLE_DIR "/app.entitlements", app, NULL});
    return app;
}

/* The app's executable with `verb` [arg]; stdout through *fd (stderr to the test's). */
static pid_t app_spawn(const char *app, const char *verb, const char *arg, int *fd)
{
    char exe[1200];
    snprintf(exe, sizeof(exe), "%s/Contents/MacOS/usbsample-app", app);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        if (arg)
            execl(exe, exe, verb, arg, "--socket", e_sock, (char *)NULL);
        else
            execl(exe, exe, verb, "--socket", e_sock, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    *fd = pfd[0];
    return pid;
}

static int app_run(const char *app, const char *verb, const char *arg, char *out, size_t outlen)
{
    char exe[1200];
    snprintf(exe, sizeof(exe), "%s/Contents/MacOS/usbsample-app", app);
    const char *argv[] = {exe, verb, arg ? arg : "--socket", arg ? "--socket" : e_sock,
                          arg ? e_sock : NULL, NULL};
    return h_run(out, outlen, argv);
}

/* Read lines until one starts with `prefix` (copied to line); false after 10 s. */
static bool read_until(int fd, const char *prefix, char *line, size_t len)
{
    for (int i = 0; i < 2000; i++) {
        e_read_line(fd, line, len);
        if (!strncmp(line, prefix, strlen(prefix)))
            return true;
        if (!*line)
            return false;
    }
    return false;
}

typedef struct samples {
    uint64_t n, first_counter, last_counter;
    double first_t, last_t;
    unsigned version;
    bool consecutive, one_version;
} samples;

/* Read `want` sample lines ("sample C device T.s vV"), checking order and version. */
static void read_samples(int fd, uint64_t want, samples *s)
{
    memset(s, 0, sizeof(*s));
    s->consecutive = s->one_version = true;
    char line[256];
    while (s->n < want) {
        cr_assert(read_until(fd, "sample ", line, sizeof(line)), "samples stopped after %llu",
                  (unsigned long long)s->n);
        unsigned long long c = 0;
        double t = 0;
        unsigned v = 0;
        cr_assert_eq(sscanf(line, "sample %llu device %lfs v%u", &c, &t, &v), 3, "%s", line);
        if (s->n == 0) {
            s->first_counter = c;
            s->first_t = t;
            s->version = v;
        } else {
            if (c != s->last_counter + 1 || t < s->last_t)
                s->consecutive = false;
            if (v != s->version)
                s->one_version = false;
        }
        s->last_counter = c;
        s->last_t = t;
        s->n++;
    }
}

static double rate_of(const samples *s)
{
    return s->last_t > s->first_t ? (double)(s->n - 1) / (s->last_t - s->first_t) : 0;
}

static bool list_has(const char *needle)
{
    char *l = e_list();
    bool has = strstr(l, needle) != NULL;
    free(l);
    return has;
}

static bool wait_list(const char *needle, bool want)
{
    for (int i = 0; i < 300; i++) {
        if (list_has(needle) == want)
            return true;
        h_sleep_ms(20);
    }
    return false;
}

Test(story, sensor_samples_rate_upgrade_unplug_uninstall)
{
    char app[1100];
    snprintf(app, sizeof(app), "%s", make_app(1, "Applications/USBSample.app"));
    e_start(NULL, NULL);
    cr_assert_gt(e_pid, 0);
    vusb_start(NULL);

    /* activation: waiting for the user, then approved */
    int afd;
    pid_t apid = app_spawn(app, "activate", NULL, &afd);
    char line[512];
    e_read_line(afd, line, sizeof(line));
    cr_assert_str_eq(line, "activation: needs user approval");
    cr_assert(list_has("[activated waiting for user]"));
    cr_assert_eq(sysext_admin_approve(e_sock, DRV_ID), 0, "%s", sysext_last_error());
    e_read_line(afd, line, sizeof(line));
    cr_assert_str_eq(line, "activation: finished completed");
    cr_assert_eq(e_wait(apid), 0);
    close(afd);

    /* the sensor arrives: sysextd matches the personality and starts the driver */
    char url[128];
    snprintf(url, sizeof(url), "usbip://127.0.0.1:%d/1-1", v_port);
    uint64_t dev = 0;
    cr_assert_eq(sysext_device_attach(e_sock, url, &dev), 0, "%s", sysext_last_error());
    cr_assert(wait_list("MyUserUSBInterfaceDriver\tIOUSBHostInterface", true));
    cr_assert(wait_list("[running]", true), "the driver is not running");

    /* live samples: consecutive counters, increasing device time, from v1 */
    int wfd;
    pid_t wpid = app_spawn(app, "watch", NULL, &wfd);
    cr_assert(read_until(wfd, "driver v1 attached", line, sizeof(line)), "%s", line);
    samples s;
    read_samples(wfd, 30, &s);
    cr_assert(s.consecutive, "counters %llu..%llu not consecutive", (unsigned long long)s.first_counter,
              (unsigned long long)s.last_counter);
    cr_assert(s.one_version && s.version == 1);

    /* set the rate: the watcher sees it and the samples follow within 25% */
    char out[1024];
    cr_assert_eq(app_run(app, "set-rate", "200", out, sizeof(out)), 0, "%s", out);
    cr_assert(read_until(wfd, "rate now 200 Hz", line, sizeof(line)), "%s", line);
    read_samples(wfd, 150, &s);
    cr_assert(s.consecutive);
    double r = rate_of(&s);
    cr_assert(r > 150 && r < 250, "measured %.1f samples/s at 200 Hz", r);
    /* a rate out of range is refused by the driver's argument check; nothing changes */
    cr_assert_eq(app_run(app, "set-rate", "0", out, sizeof(out)), 1, "%s", out);
    cr_assert_eq(app_run(app, "stats", NULL, out, sizeof(out)), 0, "%s", out);
    cr_assert(strstr(out, "rate 200 Hz") && strstr(out, "driver v1"), "%s", out);

    /* upgrade: v2 replaces v1 in place; the running app sees its driver go and survives */
    const char *app2 = make_app(2, "v2/USBSample.app");
    char old[1200];
    snprintf(old, sizeof(old), "%s.old", app);
    cr_assert_eq(rename(app, old), 0);
    cr_assert_eq(rename(app2, app), 0);
    sx_rm_rf(old);
    cr_assert_eq(app_run(app, "activate", NULL, out, sizeof(out)), 0, "%s", out);
    cr_assert(strstr(out, "activation: replacing 1.0 with 2.0: replace") &&
                  strstr(out, "activation: finished completed"),
              "%s", out);
    cr_assert(read_until(wfd, "driver gone", line, sizeof(line)), "%s", line);
    cr_assert_eq(kill(wpid, 0), 0, "the running app died when its driver was replaced");
    kill(wpid, SIGTERM);
    e_wait(wpid);
    close(wfd);
    /* the relaunched (updated) app reads v2 (on a fresh USB/IP session of the sensor) */
    wpid = app_spawn(app, "watch", NULL, &wfd);
    cr_assert(read_until(wfd, "driver v2 attached", line, sizeof(line)), "%s", line);
    read_samples(wfd, 30, &s);
    cr_assert(s.consecutive && s.one_version && s.version == 2, "v%u", s.version);
    cr_assert_eq(app_run(app, "stats", NULL, out, sizeof(out)), 0, "%s", out);
    cr_assert(strstr(out, "driver v2"), "%s", out);
    cr_assert(list_has(DRV_ID " (2.0/2)"));
    cr_assert(list_has("MyUserUSBInterfaceDriver\tIOUSBHostInterface"));

    /* unplug: the driver stops, the app waits for another */
    cr_assert_eq(sysext_device_detach(e_sock, dev), 0, "%s", sysext_last_error());
    cr_assert(wait_list("MyUserUSBInterfaceDriver", false), "the driver outlived its device");
    cr_assert(read_until(wfd, "waiting for the driver", line, sizeof(line)), "%s", line);
    cr_assert_eq(kill(wpid, 0), 0, "the app died when its device went away");
    kill(wpid, SIGTERM);
    e_wait(wpid);
    close(wfd);

    /* the app goes to the trash: its extension is uninstalled */
    cr_assert_eq(sx_mkdir_p(P("Trash"), 0755), 0);
    char trash[1200];
    snprintf(trash, sizeof(trash), "%s/USBSample.app", P("Trash"));
    cr_assert_eq(rename(app, trash), 0);
    cr_assert(wait_list(DRV_ID, false), "the extension outlived its app");
    cr_assert_eq(kill(e_pid, 0), 0, "sysextd is still up");
}
