#include "util/common.h"

#include <criterion/criterion.h>

#include "sysextd/policy.h"

static int parse(const char *xml, sxd_policy *p)
{
    return sxd_policy_parse(xml, strlen(xml), "policy.plist", p);
}

#define HEAD "<?xml version=\"1.0\"?><plist version=\"1.0\">"

Test(policy, single_payload)
{
    sxd_policy p;
    cr_assert_eq(parse(HEAD "<dict>"
                            "<key>AllowedTeamIdentifiers</key><array><string>AAAAA11111</string></array>"
                            "<key>AllowedSystemExtensions</key><dict><key>BBBBB22222</key>"
                            "<array><string>com.b.drv</string></array></dict>"
                            "<key>AllowedSystemExtensionTypes</key><dict><key>CCCCC33333</key>"
                            "<array><string>NetworkExtension</string></array></dict>"
                            "<key>RemovableSystemExtensions</key><dict><key>AAAAA11111</key>"
                            "<array><string>com.a.drv</string></array></dict>"
                            "<key>NonRemovableSystemExtensions</key><dict><key>BBBBB22222</key>"
                            "<array><string>com.b.drv</string></array></dict>"
                            "</dict></plist>",
                       &p),
                 0, "%s", sx_errmsg());
    cr_assert(p.allow_user_overrides);
    cr_assert(sxd_policy_allows(&p, "AAAAA11111", "com.anything"));
    cr_assert(sxd_policy_allows(&p, "BBBBB22222", "com.b.drv"));
    cr_assert_not(sxd_policy_allows(&p, "BBBBB22222", "com.b.other"));
    cr_assert_not(sxd_policy_allows(&p, "", "com.b.drv"));
    cr_assert_not(sxd_policy_allows(&p, "CCCCC33333", "x"));
    cr_assert(sxd_policy_type_allowed(&p, "AAAAA11111", "DriverExtension"), "no entry: any");
    cr_assert_not(sxd_policy_type_allowed(&p, "CCCCC33333", "DriverExtension"));
    cr_assert(sxd_policy_type_allowed(&p, "CCCCC33333", "NetworkExtension"));
    cr_assert(sxd_policy_removable(&p, "AAAAA11111", "com.a.drv"));
    cr_assert_not(sxd_policy_removable(&p, "BBBBB22222", "com.b.drv"));
    cr_assert(sxd_policy_non_removable(&p, "BBBBB22222", "com.b.drv"));
    plist_t out = sxd_policy_to_plist(&p);
    cr_assert_not_null(plist_dict_get_item(out, "AllowedTeamIdentifiers"));
    plist_free(out);
    sxd_policy_free(&p);
}

Test(policy, profiles_merge)
{
    sxd_policy p;
    cr_assert_eq(parse(HEAD "<dict><key>PayloadContent</key><array>"
                            "<dict><key>AllowedTeamIdentifiers</key><array><string>A</string></array></dict>"
                            "<dict><key>AllowUserOverrides</key><false/>"
                            "<key>AllowedTeamIdentifiers</key><array><string>B</string><string>A</string></array></dict>"
                            "<dict><key>AllowUserOverrides</key><true/></dict>"
                            "</array></dict></plist>",
                       &p),
                 0, "%s", sx_errmsg());
    cr_assert_not(p.allow_user_overrides, "false if any payload says false");
    cr_assert_eq(plist_array_get_size(p.allowed_teams), 2, "union without duplicates");
    cr_assert(sxd_policy_allows(&p, "B", "x"));
    sxd_policy_free(&p);
}

Test(policy, errors_name_the_key)
{
    sxd_policy p;
    cr_assert_eq(parse("garbage that is no plist", &p), SYSEXT_EFORMAT);
    cr_assert_eq(parse(HEAD "<dict><key>AllowUserOverrides</key><string>no</string></dict></plist>",
                       &p),
                 SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "AllowUserOverrides"), "%s", sx_errmsg());
    cr_assert_eq(parse(HEAD "<dict><key>AllowedTeamIdentifiers</key><array><integer>1</integer>"
                            "</array></dict></plist>",
                       &p),
                 SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "AllowedTeamIdentifiers[0]"), "%s", sx_errmsg());
    cr_assert_eq(parse(HEAD "<dict><key>AllowedSystemExtensions</key><dict><key>T</key>"
                            "<string>x</string></dict></dict></plist>",
                       &p),
                 SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "AllowedSystemExtensions.T"), "%s", sx_errmsg());
    cr_assert_eq(parse(HEAD "<dict><key>AllowedSystemExtensionTypes</key><dict><key>T</key>"
                            "<array><string>Kext</string></array></dict></dict></plist>",
                       &p),
                 SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "AllowedSystemExtensionTypes.T[0]"), "%s", sx_errmsg());
    cr_assert_eq(parse(HEAD "<dict><key>PayloadContent</key><dict/></dict></plist>", &p),
                 SYSEXT_EFORMAT);
    cr_assert_eq(parse(HEAD "<array/></plist>", &p), SYSEXT_EFORMAT);
}

Test(policy, empty)
{
    sxd_policy p;
    cr_assert_eq(sxd_policy_init_empty(&p), 0);
    cr_assert(p.allow_user_overrides);
    cr_assert_not(sxd_policy_allows(&p, "A", "b"));
    cr_assert(sxd_policy_type_allowed(&p, "A", "DriverExtension"));
    sxd_policy_free(&p);
    cr_assert_lt(sxd_policy_load("/nonexistent/policy.plist", &p), 0);
}
