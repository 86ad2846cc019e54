/* The sample app's consumer of the driver's data queue (drivers/usbsample/sample_queue.c)
 * against a hostile driver: the input is the ring memory as the driver left it, plus a script of
 * tail rewrites between reads. Nothing may be read or written outside the mapping, and the
 * consumer must always end (empty or error). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sample_queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4 || size > 70000)
        return 0;
    /* byte 0: flags (bit 0: force a valid header; bit 1: rewrite the tail from the script);
     * byte 1: script length in 4-byte tail values; then the script, then the memory */
    uint8_t flags = data[0];
    size_t nscript = data[1];
    data += 2;
    size -= 2;
    if (nscript * 4 > size)
        nscript = size / 4;
    const uint8_t *script = data;
    data += nscript * 4;
    size -= nscript * 4;
    size_t len = size < 256 + 32 ? 256 + 32 : size;
    uint32_t *mem = calloc(1, (len + 3) & ~(size_t)3); /* exactly the mapping: ASan sees overruns */
    if (!mem)
        return 0;
    memcpy(mem, data, size);
    if (flags & 1) {
        mem[0] = 0x314b5144u;
        mem[1] = 1;
        mem[2] = (uint32_t)((len - 256) & ~(size_t)3);
        mem[3] = 256;
        mem[16] &= mem[2] - 1; /* head somewhere inside (not always aligned) */
    }
    usbsample_queue q;
    if (usbsample_queue_attach(&q, mem, len) == 0) {
        usbsample_record r;
        size_t step = 0;
        for (unsigned i = 0; i < 100000; i++) {
            if ((flags & 2) && step < nscript) {
                uint32_t t;
                memcpy(&t, script + 4 * step++, 4);
                __atomic_store_n(&mem[32], t, __ATOMIC_SEQ_CST);
            }
            int got = usbsample_queue_next(&q, &r);
            if (got <= 0 && (!(flags & 2) || step >= nscript))
                break;
        }
    }
    free(mem);
    return 0;
}
