/* The app side's decoder of driver messages (libsysext/src/ioconnect_wire.c): a driver is not
 * trusted by the app. Byte 0 says how many descriptors "arrived" (0..3); the rest is the
 * datagram. Checks: every accepted payload byte is readable (ASan); the runtime's decoder
 * (DKIPCMessage_Decode, no object table) accepts exactly the same datagrams; an accepted
 * message with only U64/BYTES arguments, no descriptors and status 0 re-encodes to the same
 * bytes with the app's builder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>

#include "libsysext/src/ioconnect_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t nfds = data[0] % 4;
    data++;
    size--;
    sx_uc_msg m;
    bool ok = sx_uc_decode(data, size, nfds, &m) == 0;

    int fds[4];
    for (size_t i = 0; i < nfds; i++)
        fds[i] = dup(0);
    DKIPCMessage dm;
    DKIPCError e;
    bool rt_ok = DKIPCMessage_Decode(data, size, fds, nfds, NULL, &dm, &e) == kIOReturnSuccess;
    DKIPCMessage_Clear(&dm); /* closes the fds */
    if (ok != rt_ok)
        abort(); /* the two decoders of one format disagree */
    if (!ok)
        return 0;

    volatile uint8_t acc = 0;
    bool simple = nfds == 0 && m.status == 0;
    for (uint32_t i = 0; i < m.nargs; i++) {
        for (uint32_t k = 0; m.args[i].data && k < m.args[i].len; k++)
            acc ^= m.args[i].data[k];
        if (m.args[i].type != SX_UC_ARG_U64 && m.args[i].type != SX_UC_ARG_BYTES)
            simple = false;
    }
    (void)acc;
    if (simple) {
        sx_uc_builder b;
        sx_uc_begin(&b, m.type, m.object, m.method, m.seq);
        for (uint32_t i = 0; i < m.nargs; i++) {
            if (m.args[i].type == SX_UC_ARG_U64)
                sx_uc_add_u64(&b, m.args[i].value);
            else
                sx_uc_add_bytes(&b, m.args[i].data, m.args[i].len);
        }
        if (sx_uc_finish(&b) != 0 || b.buf.len != size || memcmp(b.buf.data, data, size) != 0)
            abort(); /* decode and encode disagree */
        sx_buf_free(&b.buf);
    }
    return 0;
}
