/* The host<->driver IPC message decoder against a hostile peer: any bytes, with a few real
 * descriptors attached (byte 0 says how many), decoded with an object table that knows ids
 * 1..4. Every accepted message is re-encoded and must decode to the same thing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>
#include <sysext/driverkit/DriverKit.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static DKIPCObjectTable *table;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!table) {
        table = DKIPCObjectTable_Create();
        for (uint64_t id = 1; id <= 4; id++) {
            OSObject *o = NULL;
            if (OSObject_Alloc(&OSObject_Class, &o) != kIOReturnSuccess)
                abort();
            DKIPCObjectTable_Add(table, id, o);
            OSObject_Release(o);
        }
    }
    size_t nfds = data[0] % 4;
    data++;
    size--;
    int fds[4];
    for (size_t i = 0; i < nfds; i++)
        fds[i] = dup(0);
    DKIPCMessage m;
    DKIPCError e;
    if (DKIPCMessage_Decode(data, size, fds, nfds, table, &m, &e) == kIOReturnSuccess) {
        /* touch every payload byte: ASan checks the bounds */
        volatile uint8_t acc = 0;
        for (uint32_t i = 0; i < m.argCount; i++)
            for (uint32_t k = 0; m.args[i].data && k < m.args[i].length; k++)
                acc ^= m.args[i].data[k];
        (void)acc;
        uint8_t *buf = NULL;
        size_t len = 0;
        if (DKIPCMessage_Encode(&m, &buf, &len) != kIOReturnSuccess || len != size || memcmp(buf, data, size) != 0)
            abort();
        free(buf);
    } else if (e.message[0] == 0 || e.offset > size) {
        abort(); /* every refusal names where */
    }
    DKIPCMessage_Clear(&m);
    return 0;
}
