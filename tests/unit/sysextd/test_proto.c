#include "util/common.h"

#include <criterion/criterion.h>

#include "sysextd/proto.h"

static sx_buf frame_of(plist_t m)
{
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sxd_msg_encode(m, &b), 0);
    plist_free(m);
    return b;
}

Test(proto, roundtrip_and_partial)
{
    plist_t m = sxd_msg_new("activate");
    sxd_dict_set_uint(m, "id", 7);
    sxd_dict_set_str(m, "ext", "com.example.driver");
    sx_buf b = frame_of(m);
    /* Every strict prefix asks for more bytes. */
    for (size_t i = 0; i < b.len; i++) {
        plist_t out = NULL;
        size_t used = 99;
        cr_assert_eq(sxd_msg_decode(b.data, i, SXD_PROTO_MAX, &out, &used), 0, "prefix %zu", i);
        cr_assert_null(out);
    }
    plist_t out = NULL;
    size_t used = 0;
    cr_assert_eq(sxd_msg_decode(b.data, b.len, SXD_PROTO_MAX, &out, &used), 1);
    cr_assert_eq(used, b.len);
    cr_assert_str_eq(sxd_dict_str(out, "type"), "activate");
    cr_assert_str_eq(sxd_dict_str(out, "ext"), "com.example.driver");
    cr_assert_eq(sxd_dict_uint(out, "id", 0), 7);
    cr_assert_eq(sxd_dict_uint(out, "missing", 42), 42);
    cr_assert_null(sxd_dict_str(out, "id")); /* wrong type */
    plist_free(out);
    sx_buf_free(&b);
}

Test(proto, two_frames_back_to_back)
{
    sx_buf a = frame_of(sxd_msg_new("list"));
    sx_buf b = frame_of(sxd_msg_new("gc"));
    sx_buf_append(&a, b.data, b.len);
    plist_t m = NULL;
    size_t used = 0;
    cr_assert_eq(sxd_msg_decode(a.data, a.len, SXD_PROTO_MAX, &m, &used), 1);
    cr_assert_str_eq(sxd_dict_str(m, "type"), "list");
    plist_free(m);
    size_t used2 = 0;
    cr_assert_eq(sxd_msg_decode(a.data + used, a.len - used, SXD_PROTO_MAX, &m, &used2), 1);
    cr_assert_str_eq(sxd_dict_str(m, "type"), "gc");
    cr_assert_eq(used + used2, a.len);
    plist_free(m);
    sx_buf_free(&a);
    sx_buf_free(&b);
}

Test(proto, oversized_length_is_refused_before_the_body)
{
    uint8_t hdr[4] = {0x00, 0x04, 0x00, 0x01}; /* 256 KiB + 1 */
    plist_t m = NULL;
    size_t used = 0;
    cr_assert_eq(sxd_msg_decode(hdr, 4, SXD_PROTO_MAX, &m, &used), SYSEXT_ELIMIT);
    cr_assert(strstr(sx_errmsg(), "262145"), "%s", sx_errmsg());
    uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(sxd_msg_decode(huge, 4, SXD_PROTO_MAX, &m, &used), SYSEXT_ELIMIT);
}

Test(proto, encode_refuses_oversized)
{
    plist_t m = sxd_msg_new("x");
    char *big = malloc(SXD_PROTO_MAX + 10);
    memset(big, 'a', SXD_PROTO_MAX + 9);
    big[SXD_PROTO_MAX + 9] = '\0';
    sxd_dict_set_str(m, "blob", big);
    free(big);
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sxd_msg_encode(m, &b), SYSEXT_ELIMIT);
    cr_assert_eq(b.len, 0);
    plist_free(m);
    sx_buf_free(&b);
}

static int decode_body(const void *body, uint32_t n, plist_t *m)
{
    sx_buf b = SX_BUF_INIT;
    sx_buf_put_u32be(&b, n);
    sx_buf_append(&b, body, n);
    size_t used = 0;
    int rc = sxd_msg_decode(b.data, b.len, SXD_PROTO_MAX, m, &used);
    if (rc != 0)
        cr_assert_eq(used, b.len);
    sx_buf_free(&b);
    return rc;
}

static int decode_plist(plist_t p, plist_t *m)
{
    char *bin = NULL;
    uint32_t n = 0;
    plist_to_bin(p, &bin, &n);
    plist_free(p);
    int rc = decode_body(bin, n, m);
    plist_to_bin_free(bin);
    return rc;
}

Test(proto, malformed_bodies)
{
    plist_t m = NULL;
    cr_assert_eq(decode_body("hello world", 11, &m), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "not a binary plist"), "%s", sx_errmsg());
    cr_assert_eq(decode_body("bplist00\xff\xff\xff", 11, &m), SYSEXT_EFORMAT);
    cr_assert_eq(decode_body("", 0, &m), SYSEXT_EFORMAT);
    /* XML plists are not accepted on the wire. */
    const char *xml = "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict/></plist>";
    cr_assert_eq(decode_body(xml, (uint32_t)strlen(xml), &m), SYSEXT_EFORMAT);
    /* Root not a dict. */
    cr_assert_eq(decode_plist(plist_new_array(), &m), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "root is not a dictionary"), "%s", sx_errmsg());
    /* No version. */
    plist_t d = plist_new_dict();
    plist_dict_set_item(d, "type", plist_new_string("list"));
    cr_assert_eq(decode_plist(d, &m), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "'v'"), "%s", sx_errmsg());
    /* Version of the wrong type. */
    d = plist_new_dict();
    plist_dict_set_item(d, "v", plist_new_string("1"));
    plist_dict_set_item(d, "type", plist_new_string("list"));
    cr_assert_eq(decode_plist(d, &m), SYSEXT_EFORMAT);
    /* Wrong version. */
    d = plist_new_dict();
    plist_dict_set_item(d, "v", plist_new_uint(2));
    plist_dict_set_item(d, "type", plist_new_string("list"));
    cr_assert_eq(decode_plist(d, &m), SYSEXT_EUNSUPPORTED);
    cr_assert(strstr(sx_errmsg(), "version 2, expected 1"), "%s", sx_errmsg());
    /* No type / empty type. */
    d = plist_new_dict();
    plist_dict_set_item(d, "v", plist_new_uint(1));
    cr_assert_eq(decode_plist(d, &m), SYSEXT_EFORMAT);
    d = sxd_msg_new("");
    cr_assert_eq(decode_plist(d, &m), SYSEXT_EFORMAT);
    cr_assert_null(m);
}
