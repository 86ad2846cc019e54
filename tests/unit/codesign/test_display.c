#include <criterion/criterion.h>
#include <stdio.h>

#include "tests/support/signfixture.h"
#include "sysext/codesign.h"
#include "util/common.h"

TestSuite(codesign_display, .init = sx_fx_setup, .fini = sx_fx_teardown, .timeout = 120);

static char *display(const char *path, unsigned flags)
{
    char *text = NULL;
    int rc = sysext_display(path, flags, &text);
    cr_assert_eq(rc, 0, "%s", sx_errmsg());
    return text;
}

Test(codesign_display, our_signature)
{
    sx_fx_make_bundles();
    sx_fx_sign_all("a.p12");
    char *t = display(sx_fx_path("Host.app"), SYSEXT_DISPLAY_ENTITLEMENTS | SYSEXT_DISPLAY_REQUIREMENTS);
    cr_assert(strstr(t, "Identifier=com.example.host\n"), "%s", t);
    cr_assert(strstr(t, "Format=app bundle with generic\n"), "%s", t);
    cr_assert(strstr(t, "TeamIdentifier=TEAMAAAAAA\n"), "%s", t);
    cr_assert(strstr(t, "Hash type=sha256 size=32\n"), "%s", t);
    cr_assert(strstr(t, "Page size=none\n"), "%s", t);
    cr_assert(strstr(t, "Authority="), "%s", t);
    cr_assert(strstr(t, "Signed Time="), "%s", t);
    cr_assert(strstr(t, "designated => identifier \"com.example.host\" and anchor apple generic"), "%s", t);
    cr_assert(strstr(t, "com.apple.developer.system-extension.install"), "%s", t);
    free(t);
    t = display(sx_fx_path("Host.app"), SYSEXT_OUTPUT_JSON);
    cr_assert(strstr(t, "\"team_id\": \"TEAMAAAAAA\""), "%s", t);
    cr_assert(strstr(t, "\"hash_type\": \"sha256\""), "%s", t);
    free(t);
}

Test(codesign_display, apple_sstest)
{
    char *t = display(SYSEXT_SHARED_DIR "/samples/apple/sstest.app", SYSEXT_DISPLAY_REQUIREMENTS);
    cr_assert(strstr(t, "Identifier=com.example.myapp\n"), "%s", t);
    cr_assert(strstr(t, "CodeDirectory v=20100 size=146 flags=0x0(none) hashes=1+3"), "%s", t);
    cr_assert(strstr(t, "CandidateCDHash sha1=ece6fd5bd4b96238f8db9ad9dcbe2866070220ff\n"), "%s", t);
    /* The best CD is the SHA-256 one. */
    cr_assert(strstr(t, "CDHash=9def50e6fd3b263b093809813d2f11c86e899015\n"), "%s", t);
    cr_assert(strstr(t, "Signature size=1755\n"), "%s", t);
    cr_assert(strstr(t, "Signed Time=2025-02-10 07:13:35 +0000\n"), "%s", t);
    cr_assert(strstr(t, "MySelfSignedCert"), "%s", t);
    cr_assert(strstr(t, "designated => identifier \"com.example.myapp\" and certificate leaf = H\"b16a4f0b85342e3769478bfb9e48a590790de8f0\""), "%s", t);
    free(t);
}

Test(codesign_display, apple_wzc_framework_adhoc)
{
    char *t = display(SYSEXT_SHARED_DIR "/samples/apple/wzccustombutton.framework", 0);
    cr_assert(strstr(t, "flags=0x2(adhoc)"), "%s", t);
    cr_assert(strstr(t, "CandidateCDHash sha1=a835b13ea882e7abe10d5e4d2f083dae255dfbd9\n"), "%s", t);
    cr_assert(strstr(t, "Signature=adhoc\n"), "%s", t);
    free(t);
}

Test(codesign_display, apple_macho_libexpat)
{
    char *t = display(SYSEXT_SHARED_DIR "/samples/apple/macho/libexpat.1.dylib", SYSEXT_DISPLAY_REQUIREMENTS);
    cr_assert(strstr(t, "Identifier=libexpat.1\n"), "%s", t);
    cr_assert(strstr(t, "TeamIdentifier=EG7KH642X6\n"), "%s", t);
    cr_assert(strstr(t, "CandidateCDHash sha1=23c61d92cddfd21dffe0cb05dedf76fe73c1b66e\n"), "%s", t);
    cr_assert(strstr(t, "Developer ID Application: VMware, Inc."), "%s", t);
    cr_assert(strstr(t, "certificate leaf[subject.OU] = EG7KH642X6"), "%s", t);
    free(t);
}
