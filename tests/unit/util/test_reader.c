#include <criterion/criterion.h>

#include "util/common.h"
#include "util/reader.h"

Test(util_reader, reads_in_order)
{
    const uint8_t d[] = {0xfa, 0xde, 0x0c, 0xc0, 0x01, 0x02, 0x03, 0x04};
    sx_reader r;
    uint32_t v;
    uint16_t h;
    sx_reader_init(&r, d, sizeof(d), "blob");
    cr_assert_eq(sx_rd_u32be(&r, &v), 0);
    cr_assert_eq(v, 0xfade0cc0);
    cr_assert_eq(sx_rd_u16le(&r, &h), 0);
    cr_assert_eq(h, 0x0201);
    cr_assert_eq(sx_reader_left(&r), 2);
}

Test(util_reader, truncation_names_input_and_offset)
{
    const uint8_t d[] = {1, 2, 3};
    sx_reader r;
    uint32_t v = 7;
    sx_reader_init(&r, d, sizeof(d), "CodeDirectory");
    cr_assert_eq(sx_rd_u32be(&r, &v), SYSEXT_EFORMAT);
    cr_assert_eq(v, 7, "out-parameter untouched on failure");
    cr_assert_eq(sx_reader_offset(&r), 0, "cursor does not move on failure");
    cr_assert_str_eq(sx_errmsg(), "CodeDirectory: truncated at offset 0: need 4 bytes, 3 left");
}

Test(util_reader, windows_stay_inside)
{
    uint8_t d[16] = {0};
    d[12] = 0xab;
    sx_reader r, w;
    uint8_t b;
    sx_reader_init(&r, d, sizeof(d), "superblob");
    cr_assert_eq(sx_rd_window(&r, 12, 4, &w, "slot"), 0);
    cr_assert_eq(sx_rd_u8(&w, &b), 0);
    cr_assert_eq(b, 0xab);
    cr_assert_eq(sx_reader_offset(&w), 13);
    cr_assert_eq(sx_rd_window(&r, 12, 5, &w, "slot"), SYSEXT_EFORMAT);
    cr_assert_eq(sx_rd_window(&r, SIZE_MAX, 2, &w, "slot"), SYSEXT_EFORMAT);
}
