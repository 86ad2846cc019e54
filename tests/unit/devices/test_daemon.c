/* Devices through a real sysextd: USB/IP attach / detach / list against sysext-vusb, the
 * registry over the socket, and matching that starts and stops real driver processes: the
 * test dexts carry the sample driver (drivers/usbsample), which the daemon runs sandboxed on
 * the sensor's interface. */
#include "e2e.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <plist/plist.h>

#include <json-c/json.h>

#include "sysext/device.h"
#include "sysext/ioreg.h"
#include "sysextd/proto.h"
#include "vusb_fixture.h"

static char v_env[512];

#define SENSOR_IFACE_PERSONALITY                                                                  \
    "<key>OSBundleUsageDescription</key><string>Reads the sensor</string>"                        \
    "<key>IOKitPersonalities</key><dict><key>Sensor</key><dict>"                                 \
    "<key>CFBundleIdentifier</key><string>" EXT1 "</string>"                                      \
    "<key>IOClass</key><string>IOUserService</string>"                                            \
    "<key>IOProviderClass</key><string>IOUSBHostInterface</string>"                               \
    "<key>IOUserClass</key><string>MyUserUSBInterfaceDriver</string>"                             \
    "<key>IOUserServerName</key><string>" EXT1 "</string>"                                        \
    "<key>idVendor</key><integer>4617</integer><key>idProduct</key><integer>1</integer>"          \
    "<key>bInterfaceNumber</key><integer>0</integer>"                                             \
    "<key>bConfigurationValue</key><integer>1</integer>"                                          \
    "<key>UserClientProperties</key><dict><key>IOClass</key><string>IOUserUserClient</string>"    \
    "<key>IOUserClass</key><string>MyUserUSBInterfaceDriverUserClient</string></dict>"             \
    "</dict></dict>"
#define DRIVER_CLASS "MyUserUSBInterfaceDriver"
#define DRIVER_V1 SYSEXT_BINARY_DIR "/drivers/usbsample-driver"
#define DRIVER_V2 SYSEXT_BINARY_DIR "/drivers/usbsample-driver-v2"

static void d_setup(void)
{
    e_setup();
    snprintf(v_env, sizeof(v_env), "SYSEXTD_UNUSED=1");
    e_write(P("policy.plist"),
            "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>AllowedTeamIdentifiers</key>"
            "<array><string>" TEAM_A "</string></array></dict></plist>",
            0644);
}

static void d_teardown(void)
{
    vusb_stop();
    e_teardown();
}

TestSuite(devices, .init = d_setup, .fini = d_teardown, .timeout = 120);

static void d_start(void)
{
    const char *extra[] = {"--policy", P("policy.plist"), NULL};
    e_start(v_env, extra);
    cr_assert_gt(e_pid, 0);
}

static const char *url(const char *busid)
{
    static char u[128];
    snprintf(u, sizeof(u), "usbip://127.0.0.1:%d/%s", v_port, busid);
    return u;
}

#define USB_ENTS(vendor)                                                                           \
    "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>"                                        \
    "<key>com.apple.developer.driverkit</key><true/>"                                              \
    "<key>com.apple.developer.driverkit.transport.usb</key><array><dict><key>idVendor</key>"       \
    vendor "</dict></array></dict></plist>"

static const char *g_ents = NULL; /* the dext's entitlements; NULL: the sensor's vendor */

/* A signed dext (version sv/v) with `personalities` in its Info.plist and the sample driver
 * of that version as its executable, in its own app. */
static const char *app_with_dext(const char *sv, const char *v, const char *personalities)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "src/%s-%s/%s.dext", EXT1, v, EXT1);
    const char *dext = P(rel);
    char f[1200];
    snprintf(f, sizeof(f), "%s/Info.plist", dext);
    e_info(f, EXT1, "drv", "DEXT", sv, v, personalities);
    snprintf(f, sizeof(f), "%s/drv", dext);
    cr_assert_eq(sx_copy_tree(strcmp(v, "1") ? DRIVER_V2 : DRIVER_V1, f), 0, "%s", sx_errmsg());
    e_write(P("ents/usb.plist"), g_ents ? g_ents : USB_ENTS("<integer>4617</integer>"), 0644);
    cr_assert_eq(e_sign(dext, P("a.p12"), P("ents/usb.plist")), 0, "%s", sx_errmsg());
    const char *exts[] = {dext, NULL};
    return e_make_app("Applications/Host.app", "com.example.host", P("a.p12"),
                      P("ents/app.plist"), exts);
}

static void activate(const char *app, const char *on_replace)
{
    char out[4096];
    cr_assert_eq(e_app(app, "activate", EXT1, on_replace, out, sizeof(out)), 0, "%s", out);
    cr_assert(strstr(out, "finished completed"), "%s", out);
}

/* The daemon's registry snapshot. */
static plist_t registry(void)
{
    void *snap = NULL;
    size_t len = 0;
    cr_assert_eq(sysext_device_registry(e_sock, &snap, &len), 0, "%s", sysext_last_error());
    plist_t p = NULL;
    plist_from_bin(snap, (uint32_t)len, &p);
    free(snap);
    cr_assert_not_null(p);
    return p;
}

/* First entry (pre-order) of class `cls`, optionally with integer property key == val. */
static plist_t find_entry(plist_t e, const char *cls, const char *key, uint64_t val)
{
    const char *c = sxd_dict_str(e, "IOObjectClass");
    plist_t props = plist_dict_get_item(e, "IORegistryEntryProperties");
    if (c && !strcmp(c, cls) && !sxd_dict_bool(e, "Terminated", 0) &&
        (!key || sxd_dict_uint(props, key, UINT64_MAX) == val))
        return e;
    plist_t kids = plist_dict_get_item(e, "IORegistryEntryChildren");
    for (uint32_t i = 0; kids && i < plist_array_get_size(kids); i++) {
        plist_t r = find_entry(plist_array_get_item(kids, i), cls, key, val);
        if (r)
            return r;
    }
    return NULL;
}

static uint64_t entry_id(plist_t e)
{
    return sxd_dict_uint(e, "IORegistryEntryID", 0);
}

static const char *driver_state(plist_t e)
{
    plist_t drv = plist_dict_get_item(e, "IORegistryEntryDrivers");
    if (!drv || plist_array_get_size(drv) != 1)
        return NULL;
    return sxd_dict_str(plist_array_get_item(drv, 0), "State");
}

/* Wait until the interface's driver service nub of instance `inst` is there (running: a real
 * driver process answered Start) or, with `want` false, gone. */
static bool wait_service(uint64_t inst, bool want)
{
    for (int i = 0; i < 500; i++) {
        if (i == 499) {
            /* about to fail: show what the daemon said */
            uint8_t *log = NULL;
            size_t len = 0;
            if (sx_read_file(e_log, 1u << 20, &log, &len) == 0)
                fprintf(stderr, "--- sysextd log\n%.*s---\n", (int)len, (const char *)log);
            free(log);
        }
        plist_t reg = registry();
        bool have = find_entry(plist_dict_get_item(reg, "IORegistryRoot"), DRIVER_CLASS,
                               inst ? "DriverInstance" : NULL, inst) != NULL;
        plist_free(reg);
        if (have == want)
            return true;
        h_sleep_ms(10);
    }
    return false;
}

/* Driver processes the daemon reports in its list (the "drivers" array of the admin reply). */
static size_t running_drivers(void)
{
    char *json = NULL;
    cr_assert_eq(sysext_admin_list(e_sock, 1 /* JSON */, &json), 0, "%s", sysext_last_error());
    size_t n = 0;
    for (const char *p = json; (p = strstr(p, "\"running\"")); p++)
        n++;
    free(json);
    return n;
}

Test(devices, attach_publishes_device_and_interface_nubs_and_detach_removes_them)
{
    vusb_start(NULL);
    d_start();
    uint64_t id = 0;
    cr_assert_eq(sysext_device_attach(e_sock, url("1-1"), &id), 0, "%s", sysext_last_error());
    plist_t reg = registry();
    plist_t root = plist_dict_get_item(reg, "IORegistryRoot");
    plist_t dev = find_entry(root, "IOUSBHostDevice", "idVendor", 0x1209);
    cr_assert_not_null(dev);
    cr_assert_eq(entry_id(dev), id);
    plist_t props = plist_dict_get_item(dev, "IORegistryEntryProperties");
    cr_assert_eq(sxd_dict_uint(props, "idProduct", 0), 1);
    cr_assert_eq(sxd_dict_uint(props, "USBIPBusNum", 0), 1);
    cr_assert_gt(sxd_dict_uint(props, "USBIPDevNum", 0), 0);
    cr_assert_str_eq(sxd_dict_str(props, "USBIPBusID"), "1-1");
    plist_t ifc = find_entry(dev, "IOUSBHostInterface", "bInterfaceNumber", 0);
    cr_assert_not_null(ifc);
    plist_t iprops = plist_dict_get_item(ifc, "IORegistryEntryProperties");
    cr_assert_eq(sxd_dict_uint(iprops, "bInterfaceClass", 0), 0xff);
    cr_assert_eq(sxd_dict_uint(iprops, "bConfigurationValue", 0), 1);
    cr_assert_eq(sxd_dict_uint(iprops, "idProduct", 0), 1);
    cr_assert_eq(entry_id(ifc), id + 1);
    plist_free(reg);

    /* The same device twice: refused. The loopback: a second device. */
    cr_assert_eq(sysext_device_attach(e_sock, url("1-1"), NULL), SYSEXT_EEXISTS);
    uint64_t id2 = 0;
    cr_assert_eq(sysext_device_attach(e_sock, url("1-2"), &id2), 0, "%s", sysext_last_error());
    cr_assert_gt(id2, id + 1);
    char *text = NULL;
    cr_assert_eq(sysext_device_list(e_sock, NULL, 0, &text), 0);
    cr_assert(strstr(text, "1209:0001") && strstr(text, "1209:0002"), "%s", text);
    cr_assert(strstr(text, url("1-2")), "%s", text);
    free(text);

    cr_assert_eq(sysext_device_detach(e_sock, id), 0, "%s", sysext_last_error());
    cr_assert_eq(sysext_device_detach(e_sock, id), SYSEXT_ENOTFOUND);
    reg = registry();
    root = plist_dict_get_item(reg, "IORegistryRoot");
    cr_assert_null(find_entry(root, "IOUSBHostDevice", "idProduct", 1));
    cr_assert_not_null(find_entry(root, "IOUSBHostDevice", "idProduct", 2));
    plist_free(reg);
    /* An unknown bus id, a bad URL, a closed port: errors, the daemon goes on. */
    cr_assert_eq(sysext_device_attach(e_sock, url("9-9"), NULL), SYSEXT_EREJECTED);
    cr_assert_eq(sysext_device_attach(e_sock, "usbip://127.0.0.1:x/1-1", NULL), SYSEXT_EINVAL);
    cr_assert_eq(sysext_device_attach(e_sock, "http://127.0.0.1/1-1", NULL), SYSEXT_EINVAL);
    char closed[128];
    snprintf(closed, sizeof(closed), "usbip://127.0.0.1:%d/1-1", free_port());
    cr_assert_eq(sysext_device_attach(e_sock, closed, NULL), SYSEXT_ENETWORK, "%s",
                 sysext_last_error());
    cr_assert_eq(sysext_device_list(e_sock, NULL, 0, &text), 0);
    free(text);
}

Test(devices, matching_extension_starts_on_the_interface_and_detach_stops_it)
{
    vusb_start(NULL);
    d_start();
    activate(app_with_dext("1.0", "1", SENSOR_IFACE_PERSONALITY), NULL);
    cr_assert(wait_service(0, false), "nothing to match yet");

    uint64_t id = 0;
    cr_assert_eq(sysext_device_attach(e_sock, url("1-1"), &id), 0, "%s", sysext_last_error());
    cr_assert(wait_service(1, true), "the driver did not start on the interface");

    /* ioreg: the interface is matched, its driver running, the driver service below it. */
    plist_t reg = registry();
    plist_t ifc = find_entry(plist_dict_get_item(reg, "IORegistryRoot"), "IOUSBHostInterface",
                             "bInterfaceNumber", 0);
    cr_assert_not_null(ifc);
    cr_assert(sxd_dict_bool(ifc, "Matched", 0));
    cr_assert_str_eq(driver_state(ifc), "running");
    plist_t svc = find_entry(ifc, DRIVER_CLASS, "DriverInstance", 1);
    cr_assert_not_null(svc, "no driver service nub under the interface");
    plist_free(reg);
    /* The device nub itself matched nothing. */
    reg = registry();
    plist_t dev = find_entry(plist_dict_get_item(reg, "IORegistryRoot"), "IOUSBHostDevice", NULL, 0);
    cr_assert(!sxd_dict_bool(dev, "Matched", 1));
    plist_free(reg);

    cr_assert_eq(running_drivers(), 1);

    cr_assert_eq(sysext_device_detach(e_sock, id), 0, "%s", sysext_last_error());
    cr_assert(wait_service(0, false), "the driver service outlived its device");
    reg = registry();
    cr_assert_null(find_entry(plist_dict_get_item(reg, "IORegistryRoot"), DRIVER_CLASS, NULL, 0));
    cr_assert_null(find_entry(plist_dict_get_item(reg, "IORegistryRoot"), "IOUSBHostInterface",
                              NULL, 0));
    plist_free(reg);
}

Test(devices, upgrade_stops_the_old_driver_and_starts_the_new_and_uninstall_stops_it)
{
    vusb_start(NULL);
    d_start();
    /* Device first, extension second: the activation rematches. */
    uint64_t id = 0;
    cr_assert_eq(sysext_device_attach(e_sock, url("1-1"), &id), 0, "%s", sysext_last_error());
    activate(app_with_dext("1.0", "1", SENSOR_IFACE_PERSONALITY), NULL);
    cr_assert(wait_service(1, true), "v1 did not start");

    activate(app_with_dext("2.0", "2", SENSOR_IFACE_PERSONALITY), "replace");
    cr_assert(wait_service(2, true), "v2 did not start");
    cr_assert(wait_service(1, false), "v1 still runs");
    cr_assert_eq(running_drivers(), 1);
    plist_t reg = registry();
    plist_t ifc = find_entry(plist_dict_get_item(reg, "IORegistryRoot"), "IOUSBHostInterface",
                             NULL, 0);
    plist_t drv = plist_array_get_item(plist_dict_get_item(ifc, "IORegistryEntryDrivers"), 0);
    cr_assert_not_null(drv);
    cr_assert_str_eq(sxd_dict_str(drv, "CFBundleVersion"), "2");
    cr_assert_not_null(find_entry(ifc, DRIVER_CLASS, "DriverInstance", 2));
    cr_assert_null(find_entry(ifc, DRIVER_CLASS, "DriverInstance", 1));
    plist_free(reg);

    cr_assert_eq(sysext_admin_uninstall(e_sock, TEAM_A, EXT1), 0, "%s", sysext_last_error());
    cr_assert(wait_service(0, false), "the driver outlived its extension");
    cr_assert_eq(running_drivers(), 0);
    reg = registry();
    ifc = find_entry(plist_dict_get_item(reg, "IORegistryRoot"), "IOUSBHostInterface", NULL, 0);
    cr_assert_not_null(ifc);
    cr_assert(!sxd_dict_bool(ifc, "Matched", 1));
    cr_assert_null(find_entry(ifc, DRIVER_CLASS, NULL, 0));
    plist_free(reg);
}

Test(devices, connection_loss_stops_the_driver_and_ends_the_device)
{
    vusb_start(NULL);
    d_start();
    activate(app_with_dext("1.0", "1", SENSOR_IFACE_PERSONALITY), NULL);
    cr_assert_eq(sysext_device_attach(e_sock, url("1-1"), NULL), 0, "%s", sysext_last_error());
    cr_assert(wait_service(1, true), "the driver did not start");
    vusb_stop();
    bool gone = false;
    for (int i = 0; i < 200 && !gone; i++) {
        plist_t reg = registry();
        gone = !find_entry(plist_dict_get_item(reg, "IORegistryRoot"), "IOUSBHostDevice", NULL, 0);
        plist_free(reg);
        if (!gone)
            h_sleep_ms(10);
    }
    cr_assert(gone, "the device outlived its connection");
    cr_assert(wait_service(0, false), "the driver outlived its device");
    char *text = NULL;
    cr_assert_eq(sysext_device_list(e_sock, NULL, 0, &text), 0);
    cr_assert(strstr(text, "(no device attached)"), "%s", text);
    free(text);
}

Test(devices, a_lying_server_ends_the_device_not_the_daemon)
{
    /* The first URB of every connection gets a reply longer than asked for. */
    vusb_start("malformed@1");
    d_start();
    int rc = sysext_device_attach(e_sock, url("1-1"), NULL);
    cr_assert(rc == SYSEXT_EPROTO || rc == SYSEXT_EIO, "%d: %s", rc, sysext_last_error());
    plist_t reg = registry();
    cr_assert_null(find_entry(plist_dict_get_item(reg, "IORegistryRoot"), "IOUSBHostDevice", NULL, 0));
    plist_free(reg);
    char *text = NULL;
    cr_assert_eq(sysext_device_list(e_sock, NULL, 0, &text), 0);
    cr_assert(strstr(text, "(no device attached)"), "%s", text);
    free(text);
    cr_assert_eq(kill(e_pid, 0), 0);
}

Test(devices, cli_device_list_remote_attach_detach_and_ioreg)
{
    vusb_start(NULL);
    d_start();
    char remote[64], out[16384];
    snprintf(remote, sizeof(remote), "127.0.0.1:%d", v_port);
    const char *list[] = {SYSEXTCTL_BIN, "--socket", e_sock, "device", "list", "--remote", remote,
                          NULL};
    cr_assert_eq(h_run(out, sizeof(out), list), 0, "%s", out);
    cr_assert(strstr(out, "1-1        1209:0001 high"), "%s", out);
    cr_assert(strstr(out, "1-2        1209:0002 high"), "%s", out);
    const char *listj[] = {SYSEXTCTL_BIN, "--socket", e_sock, "device", "list", "--json",
                           "--remote", remote, NULL};
    cr_assert_eq(h_run(out, sizeof(out), listj), 0, "%s", out);
    cr_assert(strstr(out, "\"busid\": \"1-2\""), "%s", out);
    cr_assert(strstr(out, "\"idProduct\": 2"), "%s", out);

    const char *attach[] = {SYSEXTCTL_BIN, "--socket", e_sock, "device", "attach", url("1-2"), NULL};
    cr_assert_eq(h_run(out, sizeof(out), attach), 0, "%s", out);
    cr_assert(!strncmp(out, "attached usbip://", 17), "%s", out);
    char id[32] = "";
    const char *as = strstr(out, " as ");
    cr_assert_not_null(as);
    snprintf(id, sizeof(id), "%.*s", (int)strcspn(as + 4, "\n"), as + 4);

    const char *ioreg[] = {SYSEXTCTL_BIN, "--socket", e_sock, "ioreg", "--brief", NULL};
    cr_assert_eq(h_run(out, sizeof(out), ioreg), 0, "%s", out);
    cr_assert(strstr(out, "sysext virtual loopback@"), "%s", out);
    cr_assert(strstr(out, "<class IOUSBHostInterface, id "), "%s", out);
    const char *ioregj[] = {SYSEXTCTL_BIN, "--socket", e_sock, "ioreg", "--json", NULL};
    cr_assert_eq(h_run(out, sizeof(out), ioregj), 0, "%s", out);
    cr_assert(strstr(out, "\"IOObjectClass\":\"IOUSBHostDevice\"") ||
                  strstr(out, "\"IOObjectClass\": \"IOUSBHostDevice\""),
              "%s", out);

    const char *detach[] = {SYSEXTCTL_BIN, "--socket", e_sock, "device", "detach", id, NULL};
    cr_assert_eq(h_run(out, sizeof(out), detach), 0, "%s", out);
    cr_assert_eq(h_run(out, sizeof(out), detach), 2, "%s", out); /* ENOTFOUND */
    const char *bad[] = {SYSEXTCTL_BIN, "--socket", e_sock, "device", "detach", "xyz", NULL};
    cr_assert_eq(h_run(out, sizeof(out), bad), 2);
    const char *nov[] = {SYSEXTCTL_BIN, "--socket", e_sock, "device", NULL};
    cr_assert_eq(h_run(out, sizeof(out), nov), 2);
}

Test(devices, usb_hotplug_registers_and_the_daemon_keeps_serving)
{
    const char *extra[] = {"--policy", P("policy.plist"), "--usb", NULL};
    e_start(v_env, extra);
    cr_assert_gt(e_pid, 0);
    uint8_t *data = NULL;
    size_t len = 0;
    char *log = NULL;
    /* Registration, or the enumeration fallback, or no USB stack at all: all logged. */
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(sx_read_file(e_log, 1u << 20, &data, &len), 0);
        free(log);
        log = strndup((const char *)data, len);
        free(data);
        if (strstr(log, "sysextd: USB: "))
            break;
        h_sleep_ms(10);
    }
    cr_assert(strstr(log, "sysextd: USB: hot-plug registered") ||
                  strstr(log, "sysextd: USB: no hot-plug support") ||
                  strstr(log, "real USB devices will not be published"),
              "%s", log);
    free(log);
    /* The loop polls libusb's fd with the rest: requests are still answered. */
    char *text = NULL;
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(sysext_device_list(e_sock, NULL, 0, &text), 0, "%s", sysext_last_error());
        /* Whatever real hardware the machine has is published as usb:BUS-ADDR. */
        for (const char *p = strstr(text, "\n"); p && p[1]; p = strstr(p + 1, "\n"))
            cr_assert(strstr(p, " usb:") || strstr(p, "(no device attached)"), "%s", text);
        free(text);
    }
    cr_assert_eq(kill(e_pid, 0), 0);
}

/* The driver of a device, from `sysextctl list --json`: its pid, restarts and state. */
static bool driver_info(pid_t *pid, uint64_t *restarts, char *state, size_t statelen)
{
    char *text = NULL;
    cr_assert_eq(sysext_admin_list(e_sock, SYSEXT_OUTPUT_JSON, &text), 0, "%s", sysext_last_error());
    json_object *o = json_tokener_parse(text);
    free(text);
    json_object *drv = NULL;
    bool ok = o && json_object_object_get_ex(o, "drivers", &drv) && json_object_array_length(drv) == 1;
    if (ok) {
        json_object *e = json_object_array_get_idx(drv, 0), *v = NULL;
        json_object_object_get_ex(e, "pid", &v);
        *pid = (pid_t)json_object_get_int64(v);
        json_object_object_get_ex(e, "restarts", &v);
        *restarts = (uint64_t)json_object_get_int64(v);
        json_object_object_get_ex(e, "state", &v);
        snprintf(state, statelen, "%s", json_object_get_string(v) ? json_object_get_string(v) : "");
    }
    json_object_put(o);
    return ok;
}

/* A driver that crashes is relaunched on its device; the daemon serves on. */
Test(devices, a_crashed_driver_is_relaunched_and_the_daemon_serves_on)
{
    vusb_start(NULL);
    d_start();
    activate(app_with_dext("1.0", "1", SENSOR_IFACE_PERSONALITY), NULL);
    cr_assert_eq(sysext_device_attach(e_sock, url("1-1"), NULL), 0, "%s", sysext_last_error());
    cr_assert(wait_service(1, true), "the driver did not start");
    pid_t pid = 0;
    uint64_t restarts = 0;
    char state[32];
    cr_assert(driver_info(&pid, &restarts, state, sizeof(state)));
    cr_assert_str_eq(state, "running");
    cr_assert_eq(restarts, 0);
    cr_assert_gt(pid, 1);
    cr_assert_eq(kill(pid, SIGSEGV), 0);
    /* crashed, then relaunched by the host after its backoff: a new process, running */
    pid_t pid2 = pid;
    bool back = false;
    for (int i = 0; i < 500 && !back; i++) {
        h_sleep_ms(10);
        back = driver_info(&pid2, &restarts, state, sizeof(state)) && !strcmp(state, "running") &&
               pid2 != pid;
    }
    cr_assert(back, "not relaunched: state %s, pid %d (was %d)", state, (int)pid2, (int)pid);
    cr_assert_eq(restarts, 1);
    cr_assert(wait_service(1, true), "the relaunched driver has no service nub");
    uint8_t *log = NULL;
    size_t len = 0;
    cr_assert_eq(sx_read_file(e_log, 1u << 20, &log, &len), 0);
    /* "exited with signal 11"; under ASan its SEGV handler makes it "exited with status 1" */
    cr_assert(memmem(log, len, "crashed: exited with", 20), "%.*s", (int)len, (char *)log);
    free(log);
    cr_assert_eq(kill(e_pid, 0), 0);
    char *text = e_list();
    cr_assert(strstr(text, "activated enabled"), "%s", text);
    free(text);
}

/* transport.usb is a filter on the real device: a dext entitled for another vendor matches
 * by its personality but is not started ("Entitlements check failed"); "*" covers any. */
Test(devices, transport_entitlement_filters_the_device)
{
    vusb_start(NULL);
    d_start();
    g_ents = USB_ENTS("<integer>1234</integer>");
    activate(app_with_dext("1.0", "1", SENSOR_IFACE_PERSONALITY), NULL);
    cr_assert_eq(sysext_device_attach(e_sock, url("1-1"), NULL), 0, "%s", sysext_last_error());
    plist_t reg = registry();
    plist_t ifc = find_entry(plist_dict_get_item(reg, "IORegistryRoot"), "IOUSBHostInterface",
                             "bInterfaceNumber", 0);
    cr_assert_not_null(ifc);
    cr_assert_str_eq(driver_state(ifc), "start-failed");
    plist_free(reg);
    cr_assert_eq(running_drivers(), 0);
    uint8_t *log = NULL;
    size_t len = 0;
    cr_assert_eq(sx_read_file(e_log, 1u << 20, &log, &len), 0);
    cr_assert(memmem(log, len, "Entitlements check failed", 25), "%.*s", (int)len, (char *)log);
    free(log);

    /* the development wildcard: any device */
    g_ents = USB_ENTS("<string>*</string>");
    activate(app_with_dext("2.0", "2", SENSOR_IFACE_PERSONALITY), "replace");
    cr_assert(wait_service(0, true), "a dext with idVendor \"*\" did not start");
    g_ents = NULL;
}
