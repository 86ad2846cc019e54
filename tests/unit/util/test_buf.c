#include <criterion/criterion.h>

#include "util/common.h"
#include "util/buf.h"

Test(util_buf, appends_and_terminates)
{
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_buf_puts(&b, "abc"), 0);
    cr_assert_eq(sx_buf_printf(&b, "-%d-", 42), 0);
    cr_assert_str_eq((char *)b.data, "abc-42-");
    cr_assert_eq(b.len, 7);
    sx_buf_free(&b);
}

Test(util_buf, refuses_growth_past_ceiling)
{
    sx_buf b;
    sx_buf_init(&b, 8);
    cr_assert_eq(sx_buf_append(&b, "12345678", 8), 0);
    cr_assert_eq(sx_buf_putc(&b, 'x'), SYSEXT_ELIMIT);
    cr_assert(strstr(sx_errmsg(), "limit of 8 bytes") != NULL);
    cr_assert_eq(b.len, 8, "a failed append leaves the content as it was");
    sx_buf_free(&b);
}

Test(util_buf, big_endian_words)
{
    sx_buf b = SX_BUF_INIT;
    sx_buf_put_u32be(&b, 0xfade0c02);
    sx_buf_put_u64be(&b, 0x0102030405060708ULL);
    const uint8_t want[] = {0xfa, 0xde, 0x0c, 0x02, 1, 2, 3, 4, 5, 6, 7, 8};
    cr_assert_eq(b.len, sizeof(want));
    cr_assert_arr_eq(b.data, want, sizeof(want));
    sx_buf_set_u32be(&b, 0, 0x11223344);
    cr_assert_eq(b.data[0], 0x11);
    sx_buf_free(&b);
}
