/* Rendering registry snapshots: text like ioreg, JSON, malformed snapshots, sysextctl ioreg. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sysext/ioreg.h"
#include "util/common.h"
#include "util/fs.h"
#include "tests/unit/registry/registry_fixture.h"

static char tmp[64];

static void setup(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/sx-ioreg-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
}

static void teardown(void)
{
    sx_rm_rf(tmp);
}

TestSuite(ioreg, .init = setup, .fini = teardown);

/* A registry with one configured device whose interface is driven. */
static sx_registry *sample(void)
{
    sx_registry *reg = NULL;
    cr_assert_eq(sx_registry_new(&reg), 0);
    sx_usb_device_descriptor dd = fx_device(0x1209, 0x0001, 0x0100, 0, 0, 0);
    uint8_t cfg[128];
    const fx_iface ifs[] = {{0, 0xff, 0x5d, 0x01, 0}};
    size_t cl = fx_config(cfg, sizeof(cfg), 1, ifs, 1);
    sx_usb_device_info info = {.device = &dd, .config = cfg, .config_len = cl,
                               .location_id = 0x14100000, .address = 2,
                               .speed = SX_USB_SPEED_HIGH, .product = "Sensor \"A\""};
    cr_assert_eq(sx_registry_add_usb_device(reg, &info, NULL), 0);
    sx_personality_set set;
    sx_personality_set_init(&set);
    plist_t ps = plist_new_dict();
    plist_dict_set_item(ps, "Sensor", fx_dict("s:IOProviderClass", "IOUSBHostInterface",
                                              "u:idVendor", 0x1209, "u:bInterfaceSubClass", 0x5d,
                                              "s:IOClass", "IOUserService", "s:IOUserClass",
                                              "SensorDriver", "s:IOUserServerName",
                                              "com.example.sensor", NULL));
    cr_assert_eq(sx_personality_set_add_bundle(&set, "com.example.sensor", "1.2", ps), 0);
    plist_free(ps);
    cr_assert_eq(sx_registry_rematch(reg, &set, NULL, NULL), 0);
    sx_personality_set_free(&set);
    return reg;
}

static char *render(sx_registry *reg, unsigned flags)
{
    uint8_t *bin = NULL;
    size_t len = 0;
    cr_assert_eq(sx_registry_snapshot_bin(reg, &bin, &len), 0);
    char *text = NULL;
    cr_assert_eq(sysext_ioreg_render(bin, len, flags, &text), 0, "%s", sx_errmsg());
    free(bin);
    return text;
}

Test(ioreg, text_tree)
{
    sx_registry *reg = sample();
    char *t = render(reg, SYSEXT_IOREG_NO_PROPERTIES);
    const char *want =
        "+-o Root  <class IORegistryEntry, id 0x100000100, registered, !matched, active, busy 0>\n"
        "  +-o IOResources  <class IOResources, id 0x100000101, registered, !matched, active, busy 0>\n"
        "  +-o IOUserResources  <class IOUserResources, id 0x100000102, registered, !matched, active, busy 0>\n"
        "  +-o Sensor \"A\"@14100000  <class IOUSBHostDevice, id 0x100000103, registered, !matched, active, busy 0>\n"
        "    +-o IOUSBHostInterface@0  <class IOUSBHostInterface, id 0x100000104, registered, matched, active, busy 0>\n"
        "      +-o SensorDriver  <class IOUserService, driver com.example.sensor 1.2, personality \"Sensor\", category IODefaultMatchCategory, server com.example.sensor, score 70000, state matched>\n";
    cr_assert_str_eq(t, want);
    free(t);
    t = render(reg, 0);
    cr_assert(strstr(t, "  +-o IOResources  <class IOResources, id 0x100000101, registered, !matched, active, "
                        "busy 0>\n  |   {\n  |     \"IOKit\" = \"IOKit\"\n  |   }\n  |\n"), "%s", t);
    cr_assert(strstr(t, "    |   \"idVendor\" = 4617\n"), "%s", t);
    cr_assert(strstr(t, "    |   \"USB Product Name\" = \"Sensor \\\"A\\\"\"\n"), "%s", t);
    cr_assert(strstr(t, "      |   \"bInterfaceSubClass\" = 93\n"), "%s", t);
    cr_assert(strstr(t, "      |   \"idVendor\" = 4617\n      | }\n      |\n      +-o SensorDriver"), "%s", t);
    free(t);
    sx_registry_free(reg);
}

Test(ioreg, json)
{
    sx_registry *reg = sample();
    char *t = render(reg, SYSEXT_OUTPUT_JSON);
    json_object *j = json_tokener_parse(t);
    cr_assert_not_null(j, "%s", t);
    json_object *root, *kids, *dev, *ifc, *drv, *v;
    cr_assert(json_object_object_get_ex(j, "IORegistryRoot", &root));
    cr_assert(json_object_object_get_ex(root, "IORegistryEntryChildren", &kids));
    dev = json_object_array_get_idx(kids, 2);
    cr_assert(json_object_object_get_ex(dev, "IORegistryEntryID", &v));
    cr_assert_eq(json_object_get_int64(v), 0x100000103);
    cr_assert(json_object_object_get_ex(dev, "IORegistryEntryChildren", &kids));
    ifc = json_object_array_get_idx(kids, 0);
    cr_assert(json_object_object_get_ex(ifc, "IORegistryEntryDrivers", &drv));
    cr_assert(json_object_object_get_ex(json_object_array_get_idx(drv, 0), "CFBundleIdentifier", &v));
    cr_assert_str_eq(json_object_get_string(v), "com.example.sensor");
    json_object_put(j);
    free(t);
    sx_registry_free(reg);
}

static int render_xml(const char *xml)
{
    char *t = NULL;
    int rc = sysext_ioreg_render(xml, strlen(xml), 0, &t);
    cr_assert_null(t);
    return rc;
}

#define HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><dict>"
#define TAIL "</dict></plist>"

Test(ioreg, malformed_snapshots)
{
    char *t = NULL;
    cr_assert_eq(sysext_ioreg_render("garbage!", 8, 0, &t), SYSEXT_EFORMAT);
    cr_assert_eq(sysext_ioreg_render("", 0, 0, &t), SYSEXT_EFORMAT);
    cr_assert_eq(render_xml(HEAD TAIL), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "(top): missing key SXRegistrySnapshotVersion"), "%s",
              sx_errmsg());
    cr_assert_eq(render_xml(HEAD "<key>SXRegistrySnapshotVersion</key><integer>2</integer>" TAIL),
                 SYSEXT_EUNSUPPORTED);
    cr_assert_eq(render_xml(HEAD "<key>SXRegistrySnapshotVersion</key><integer>1</integer>"
                                 "<key>IORegistryRoot</key><dict>"
                                 "<key>IORegistryEntryName</key><string>Root</string>"
                                 "<key>IOObjectClass</key><string>IORegistryEntry</string>"
                                 "<key>IORegistryEntryID</key><integer>1</integer>"
                                 "<key>IORegistryEntryChildren</key><array><dict>"
                                 "<key>IORegistryEntryName</key><string>X</string>"
                                 "<key>IOObjectClass</key><integer>1</integer>"
                                 "</dict></array></dict>" TAIL),
                 SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "IORegistryRoot/IORegistryEntryChildren[0]/IOObjectClass: wrong "
                                  "type, expected a string"), "%s", sx_errmsg());
    /* a minimal valid one renders */
    const char *ok = HEAD "<key>SXRegistrySnapshotVersion</key><integer>1</integer>"
                          "<key>IORegistryRoot</key><dict>"
                          "<key>IORegistryEntryName</key><string>Root</string>"
                          "<key>IOObjectClass</key><string>IORegistryEntry</string>"
                          "<key>IORegistryEntryID</key><integer>1</integer></dict>" TAIL;
    cr_assert_eq(sysext_ioreg_render(ok, strlen(ok), 0, &t), 0, "%s", sx_errmsg());
    cr_assert_str_eq(t, "+-o Root  <class IORegistryEntry, id 0x1, !registered, !matched, active, "
                        "busy 0>\n");
    free(t);
}

static int run_cli(const char *const *args, char *out, size_t cap)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(SYSEXT_BINARY_DIR "/sysextctl/sysextctl", (char *const *)args);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(p[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = 0;
    close(p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(ioreg, sysextctl_ioreg)
{
    sx_registry *reg = sample();
    uint8_t *bin = NULL;
    size_t len = 0;
    cr_assert_eq(sx_registry_snapshot_bin(reg, &bin, &len), 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/snap.plist", tmp);
    cr_assert_eq(sx_write_file_atomic(path, bin, len, 0644), 0);
    free(bin);
    sx_registry_free(reg);
    static char out[65536];
    const char *a1[] = {"sysextctl", "ioreg", "--snapshot", path, "--brief", NULL};
    cr_assert_eq(run_cli(a1, out, sizeof(out)), 0);
    cr_assert(strstr(out, "+-o SensorDriver  <class IOUserService, driver com.example.sensor 1.2"),
              "%s", out);
    const char *a2[] = {"sysextctl", "ioreg", "--snapshot", path, "--json", NULL};
    cr_assert_eq(run_cli(a2, out, sizeof(out)), 0);
    json_object *j = json_tokener_parse(out);
    cr_assert_not_null(j);
    json_object_put(j);
    const char *a3[] = {"sysextctl", "ioreg", NULL};
    cr_assert_eq(run_cli(a3, out, sizeof(out)), 2, "no snapshot: usage error");
    snprintf(path, sizeof(path), "%s/missing", tmp);
    const char *a4[] = {"sysextctl", "ioreg", "--snapshot", path, NULL};
    cr_assert_eq(run_cli(a4, out, sizeof(out)), 2);
}

Test(ioreg, string_with_nul_is_refused)
{
    /* found by fuzz_registry_snapshot: libplist asserts on such strings in JSON conversion */
    static const char xml[] = HEAD "<key>SXRegistrySnapshotVersion</key><integer>1</integer>"
                                   "<key>IORegistryRoot</key><dict>"
                                   "<key>IORegistryEntryName</key><string>Ro\0ot</string>"
                                   "<key>IOObjectClass</key><string>IORegistryEntry</string>"
                                   "<key>IORegistryEntryID</key><integer>1</integer></dict>" TAIL;
    char *t = NULL;
    int rc = sysext_ioreg_render(xml, sizeof(xml) - 1, SYSEXT_OUTPUT_JSON, &t);
    cr_assert(rc == SYSEXT_EFORMAT, "rc %d: %s", rc, sx_errmsg());
    cr_assert(strstr(sx_errmsg(), "XML with a NUL byte at offset 192"), "%s", sx_errmsg());
    cr_assert_null(t);
    static const char ref[] = HEAD "<key>SXRegistrySnapshotVersion</key><integer>1</integer>"
                                   "<key>a&#x00;b</key><string>x</string>" TAIL;
    cr_assert_eq(sysext_ioreg_render(ref, sizeof(ref) - 1, 0, &t), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "character reference to U+0000"), "%s", sx_errmsg());
    /* a binary plist whose dictionary key holds a NUL (libplist would abort reading it) */
    uint8_t *bin = NULL;
    size_t len = 0;
    cr_assert_eq(sx_read_file(SYSEXT_SOURCE_DIR "/fuzz/corpus/fuzz_registry_snapshot/"
                              "crash_key_with_nul", 1 << 20, &bin, &len), 0);
    cr_assert_eq(sysext_ioreg_render(bin, len, 0, &t), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "contains a NUL"), "%s", sx_errmsg());
    free(bin);
}
