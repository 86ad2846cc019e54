/* cmake --install into a DESTDIR, then use the installed library the way a developer would:
 * through pkg-config and through find_package(Sysext); and check what the library exports. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkgfixture.h"

static char dest[300], usr[320];

static void setup(void)
{
    pkg_setup();
    snprintf(dest, sizeof(dest), "%s/dest", pkg_tmp);
    snprintf(usr, sizeof(usr), "%s/usr", dest);
    cr_assert_eq(pkg_run("DESTDIR='%s' '%s' --install '%s' --prefix /usr", dest, SYSEXT_CMAKE_COMMAND,
                         SYSEXT_BINARY_DIR),
                 0, "cmake --install failed");
}

TestSuite(install, .init = setup, .fini = pkg_teardown);

/* The library directory GNUInstallDirs chose (lib or lib/<multiarch>). */
static const char *libdir(void)
{
    static char dir[400];
    int st;
    char *out = pkg_capture(&st, "cd '%s' && dirname \"$(find usr -name 'libsysext.so.0' | head -n1)\"", dest);
    cr_assert_eq(st, 0);
    out[strcspn(out, "\n")] = '\0';
    cr_assert(out[0] != '\0' && strcmp(out, "."), "no libsysext.so.0 installed");
    snprintf(dir, sizeof(dir), "%s/%s", dest, out);
    free(out);
    return dir;
}

Test(install, layout)
{
    static const char *const files[] = {
        "bin/sysextctl",
        "include/sysext/sysext.h",
        "include/sysext/version.h",
        "include/sysext/codesign.h",
        "include/sysext/driverkit/DriverKit.h",
        "share/sysext/schemas/dext.json",
        "share/sysext/schemas/verify-output.schema.json",
        "share/sysext/schemas/assess-output.schema.json",
        "share/man/man1/sysextctl.1",
        "share/man/man3/sysext-activation.3",
        "share/man/man1/sysext-vusb.1",
        "share/bash-completion/completions/sysextctl",
        "share/zsh/vendor-completions/_sysextctl",
    };
    char p[600];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", usr, files[i]);
        cr_expect(pkg_exists(p), "not installed: /usr/%s", files[i]);
    }
    const char *ld = libdir();
    static const char *const libs[] = {"libsysext.so", "libsysext.so.0", "libsysext-runtime.so",
                                       "libsysext-runtime.so.0", "pkgconfig/sysext.pc",
                                       "cmake/Sysext/SysextConfig.cmake",
                                       "cmake/Sysext/SysextConfigVersion.cmake",
                                       "cmake/Sysext/SysextTargets.cmake"};
    for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", ld, libs[i]);
        cr_expect(pkg_exists(p), "not installed: %s", p);
    }
}

/* Every installed program has its man page (lintian's no-manual-page), in section 1 or 8
 * (sysext-notaryd(8) is an administrator's command installed in bin/). */
Test(install, every_program_has_a_man_page)
{
    int st;
    char *out = pkg_capture(&st,
                            "cd '%s' && n=0 && for p in bin/* sbin/*; do [ -e \"$p\" ] || continue; "
                            "b=${p#*/}; n=$((n+1)); ls share/man/man[18]/$b.[18] >/dev/null 2>&1 || "
                            "echo \"missing: $p (share/man/man1 or man8/$b.1 or .8)\"; "
                            "done; echo \"programs: $n\"",
                            usr);
    cr_assert_eq(st, 0, "%s", out);
    cr_expect_null(strstr(out, "missing:"), "%s", out);
    cr_expect_null(strstr(out, "programs: 0\n"), "no program installed: %s", out);
    free(out);
}

Test(install, soname_and_exports)
{
    const char *ld = libdir();
    int st;
    char *out = pkg_capture(&st, "readelf -d '%s/libsysext.so.0' | grep SONAME", ld);
    cr_assert_eq(st, 0);
    cr_expect_not_null(strstr(out, "[libsysext.so.0]"), "SONAME: %s", out);
    free(out);

    out = pkg_capture(&st, "nm -D --defined-only '%s/libsysext.so.0' | awk '{print $3}'", ld);
    cr_assert_eq(st, 0);
    size_t n_sysext = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char *at = strchr(line, '@'); /* versioned: sysext_x@@SYSEXT_0.1 */
        if (at)
            *at = '\0';
        if (!strcmp(line, "SYSEXT_0.1"))
            continue; /* the version node */
        cr_expect(!strncmp(line, "sysext_", 7), "libsysext exports '%s'", line);
        n_sysext++;
    }
    free(out);
    cr_expect_gt(n_sysext, 20, "only %zu sysext_* symbols exported", n_sysext);

    out = pkg_capture(&st, "objdump -T '%s/libsysext.so.0' | grep -c ' SYSEXT_0.1 *sysext_version$'", ld);
    cr_expect_eq(st, 0, "sysext_version is not versioned SYSEXT_0.1: %s", out);
    free(out);
}

static const char program[] =
    "#include <sysext/sysext.h>\n"
    "#include <stdio.h>\n#include <string.h>\n"
    "int main(void)\n{\n"
    "    if (strcmp(sysext_version(), SYSEXT_VERSION)) return 3;\n"
    "    if (!SYSEXT_VERSION_CHECK(0, 1, 0)) return 4;\n"
    "    printf(\"libsysext %s: %s\\n\", sysext_version(), sysext_error_name(SYSEXT_EINVALID));\n"
    "    return 0;\n}\n";

Test(install, pkg_config_program)
{
    char src[400];
    snprintf(src, sizeof(src), "%s/prog.c", pkg_tmp);
    cr_assert(pkg_write(src, program));
    const char *ld = libdir();
    cr_assert_eq(pkg_run("cd '%s' && export PKG_CONFIG_SYSROOT_DIR='%s' PKG_CONFIG_PATH='%s/pkgconfig' && "
                         "'%s' %s -std=c11 -Wall -Werror prog.c -o prog $(pkg-config --cflags --libs sysext)",
                         pkg_tmp, dest, ld, SYSEXT_C_COMPILER, SYSEXT_SAN_FLAGS),
                 0, "compiling against the installed sysext.pc failed");
    int st;
    char *v = pkg_capture(&st, "PKG_CONFIG_SYSROOT_DIR='%s' PKG_CONFIG_PATH='%s/pkgconfig' "
                               "pkg-config --modversion --print-requires-private sysext",
                          dest, ld);
    cr_expect_eq(st, 0);
    cr_expect_not_null(strstr(v, "libplist-2.0"), "%s", v);
    cr_expect_not_null(strstr(v, "json-c"), "%s", v);
    free(v);
    char *out = pkg_capture(&st, "LD_LIBRARY_PATH='%s' '%s/prog'", ld, pkg_tmp);
    cr_expect_eq(st, 0, "program exited %d: %s", st, out);
    cr_expect_not_null(strstr(out, "libsysext 0."), "%s", out);
    /* it ran against the installed copy, not the build tree's */
    free(out);
    out = pkg_capture(&st, "LD_LIBRARY_PATH='%s' ldd '%s/prog' | grep libsysext.so.0", ld, pkg_tmp);
    cr_expect_not_null(strstr(out, dest), "not linked to the installed library: %s", out);
    free(out);
}

Test(install, find_package_program)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/proj", pkg_tmp);
    cr_assert_eq(pkg_run("mkdir -p '%s'", p), 0);
    snprintf(p, sizeof(p), "%s/proj/prog.c", pkg_tmp);
    cr_assert(pkg_write(p, program));
    snprintf(p, sizeof(p), "%s/proj/driver.c", pkg_tmp);
    cr_assert(pkg_write(p, "#include <sysext/driverkit/DriverKit.h>\nint driver_probe(void);\n"
                           "int driver_probe(void) { return kIOReturnSuccess; }\n"));
    snprintf(p, sizeof(p), "%s/proj/CMakeLists.txt", pkg_tmp);
    cr_assert(pkg_write(p, "cmake_minimum_required(VERSION 3.16)\nproject(consumer C)\n"
                           "find_package(Sysext 0.1 REQUIRED)\n"
                           "add_executable(prog prog.c)\n"
                           "target_link_libraries(prog PRIVATE sysext::sysext)\n"
                           "add_library(driver SHARED driver.c)\n"
                           "target_link_libraries(driver PRIVATE sysext::runtime)\n"));
    const char *ld = libdir();
    cr_assert_eq(pkg_run("cd '%s/proj' && '%s' -S . -B b -DCMAKE_PREFIX_PATH='%s' "
                         "'-DCMAKE_C_FLAGS=%s' -DCMAKE_C_COMPILER='%s' && '%s' --build b",
                         pkg_tmp, SYSEXT_CMAKE_COMMAND, usr, SYSEXT_SAN_FLAGS, SYSEXT_C_COMPILER,
                         SYSEXT_CMAKE_COMMAND),
                 0, "a CMake project using find_package(Sysext) did not build");
    int st;
    char *out = pkg_capture(&st, "LD_LIBRARY_PATH='%s' '%s/proj/b/prog'", ld, pkg_tmp);
    cr_expect_eq(st, 0, "program exited %d: %s", st, out);
    cr_expect_not_null(strstr(out, "libsysext 0."), "%s", out);
    free(out);
    /* the imported target points into the DESTDIR, not into the build tree */
    out = pkg_capture(&st, "grep -h 'INTERFACE_INCLUDE_DIRECTORIES' '%s/cmake/Sysext/SysextTargets.cmake'", ld);
    cr_expect_null(strstr(out, SYSEXT_BINARY_DIR), "%s", out);
    free(out);
}

Test(install, version_mismatch_refused)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/proj2", pkg_tmp);
    cr_assert_eq(pkg_run("mkdir -p '%s'", p), 0);
    snprintf(p, sizeof(p), "%s/proj2/CMakeLists.txt", pkg_tmp);
    cr_assert(pkg_write(p, "cmake_minimum_required(VERSION 3.16)\nproject(consumer C)\n"
                           "find_package(Sysext 1.0 REQUIRED)\n"));
    int st;
    char *out = pkg_capture(&st, "cd '%s/proj2' && '%s' -S . -B b -DCMAKE_PREFIX_PATH='%s'", pkg_tmp,
                            SYSEXT_CMAKE_COMMAND, usr);
    cr_expect_neq(st, 0, "find_package(Sysext 1.0) accepted 0.x");
    cr_expect_not_null(strstr(out, "SysextConfig.cmake"), "%s", out);
    free(out);
}
