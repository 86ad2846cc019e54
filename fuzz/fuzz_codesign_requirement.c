/* Requirement blobs (decompile, evaluate against a fixed context, set lookup) and requirement
 * text (compile; what compiles must print, and its text must be stable through a second
 * compile + print). */
#include "util/common.h"
#include "codesign/requirement.h"

#include <plist/plist.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static plist_t info, ents;

static void init_context(sx_req_context *ctx)
{
    static const uint8_t h1[20] = {0x0c, 0x81, 0x09, 0x28};
    static const uint8_t *const hashes[] = {h1};
    if (!info) {
        info = plist_new_dict();
        plist_dict_set_item(info, "CFBundleIdentifier", plist_new_string("com.example.app"));
        plist_dict_set_item(info, "CFBundleVersion", plist_new_uint(3));
        ents = plist_new_dict();
        plist_dict_set_item(ents, "com.apple.security.app-sandbox", plist_new_bool(1));
        plist_t a = plist_new_array();
        plist_array_append_item(a, plist_new_string("group.x"));
        plist_dict_set_item(ents, "groups", a);
    }
    *ctx = (sx_req_context){.identifier = "com.example.app",
                            .cdhashes = hashes,
                            .n_cdhashes = 1,
                            .info_plist = info,
                            .entitlements = ents};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sx_req_context ctx;
    init_context(&ctx);
    sx_buf t = SX_BUF_INIT;
    sx_req_to_text(data, size, &t);
    sx_req_evaluate(data, size, &ctx);
    for (uint32_t type = 1; type <= 5; type++) {
        const uint8_t *r;
        size_t rn;
        if (sx_reqset_find(data, size, type, &r, &rn) == 0)
            sx_req_evaluate(r, rn, &ctx);
    }
    t.len = 0;
    sx_reqset_to_text(data, size, &t);
    sx_buf_free(&t);

    if (size > 4096)
        return 0;
    char *text = strndup((const char *)data, size);
    if (!text)
        return 0;
    sx_buf b1 = SX_BUF_INIT, t1 = SX_BUF_INIT, b2 = SX_BUF_INIT, t2 = SX_BUF_INIT;
    if (sx_req_compile(text, &b1) == 0) {
        sx_req_evaluate(b1.data, b1.len, &ctx);
        if (sx_req_to_text(b1.data, b1.len, &t1) < 0)
            __builtin_trap(); /* what compiles must print */
        if (sx_req_compile((const char *)t1.data, &b2) < 0)
            __builtin_trap(); /* what prints must compile */
        if (sx_req_to_text(b2.data, b2.len, &t2) < 0 || t1.len != t2.len ||
            memcmp(t1.data, t2.data, t1.len) != 0)
            __builtin_trap(); /* and print the same again */
    }
    sx_buf_free(&b1);
    sx_buf_free(&t1);
    sx_buf_free(&b2);
    sx_buf_free(&t2);
    free(text);
    return 0;
}
