#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt_test.h"

TestSuite(runtime_memory, .timeout = 30);

Test(runtime_memory, buffer_length_starts_at_zero_and_is_bounded)
{
    IOBufferMemoryDescriptor *b = NULL;
    cr_assert_eq(IOBufferMemoryDescriptor_Create(kIOMemoryDirectionInOut, 10000, 0, &b), kIOReturnSuccess);
    IOAddressSegment r = { 1, 1 };
    cr_assert_eq(IOBufferMemoryDescriptor_GetAddressRange(b, &r), kIOReturnSuccess);
    cr_assert_neq(r.address, 0);
    cr_assert_eq(r.length, 0);
    cr_assert_eq(IOBufferMemoryDescriptor_GetCapacity(b), 10000);
    cr_assert_eq(IOBufferMemoryDescriptor_SetLength(b, 10001), kIOReturnBadArgument);
    cr_assert_eq(IOBufferMemoryDescriptor_SetLength(b, 10000), kIOReturnSuccess);
    uint64_t len = 0;
    cr_assert_eq(IOMemoryDescriptor_GetLength((IOMemoryDescriptor *)b, &len), kIOReturnSuccess);
    cr_assert_eq(len, 10000);
    uint8_t *p = (uint8_t *)(uintptr_t)r.address;
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(p[i], 0, "zero-filled");
    memset(p, 0x5a, 10000);
    cr_assert_eq(IOMemoryDescriptor_GetOptions((IOMemoryDescriptor *)b), kIOMemoryDirectionInOut);
    OSObject_Release((OSObject *)b);
}

Test(runtime_memory, create_arguments)
{
    IOBufferMemoryDescriptor *b = NULL;
    cr_assert_eq(IOBufferMemoryDescriptor_Create(0, 0, 0, &b), kIOReturnBadArgument);
    cr_assert_eq(IOBufferMemoryDescriptor_Create(0, 100, 3, &b), kIOReturnBadArgument);
    cr_assert_eq(IOBufferMemoryDescriptor_Create(0, 100, 1u << 20, &b), kIOReturnUnsupported);
    cr_assert_eq(IOBufferMemoryDescriptor_Create(0x100, 100, 0, &b), kIOReturnBadArgument);
    cr_assert_eq(IOBufferMemoryDescriptor_Create(0, UINT64_MAX, 0, &b), kIOReturnBadArgument);
    cr_assert_null(b);
    cr_assert_eq(IOBufferMemoryDescriptor_Create(0, 100, 64, &b), kIOReturnSuccess);
    IOAddressSegment r;
    IOBufferMemoryDescriptor_GetAddressRange(b, &r);
    cr_assert_eq(r.address % 64, 0);
    OSObject_Release((OSObject *)b);
}

Test(runtime_memory, mapping_shares_bytes_and_checks_range)
{
    IOBufferMemoryDescriptor *b = NULL;
    cr_assert_eq(IOBufferMemoryDescriptor_Create(kIOMemoryDirectionOut, 3 * 4096, 0, &b), kIOReturnSuccess);
    IOBufferMemoryDescriptor_SetLength(b, 3 * 4096);
    IOAddressSegment r;
    IOBufferMemoryDescriptor_GetAddressRange(b, &r);
    uint8_t *p = (uint8_t *)(uintptr_t)r.address;
    for (int i = 0; i < 3 * 4096; i++)
        p[i] = (uint8_t)(i * 7);
    IOMemoryDescriptor *md = (IOMemoryDescriptor *)b;
    IOMemoryMap *m = NULL;
    cr_assert_eq(IOMemoryDescriptor_CreateMapping(md, 0, 0, 5000, 100, 0, &m), kIOReturnSuccess);
    cr_assert_eq(IOMemoryMap_GetLength(m), 100);
    cr_assert_eq(IOMemoryMap_GetOffset(m), 5000);
    uint8_t *q = (uint8_t *)(uintptr_t)IOMemoryMap_GetAddress(m);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(q[i], (uint8_t)((5000 + i) * 7));
    q[0] = 0xee; /* shared, not a copy */
    cr_assert_eq(p[5000], 0xee);
    OSObject_Release((OSObject *)m);

    cr_assert_eq(IOMemoryDescriptor_CreateMapping(md, 0, 0, 0, 0, 0, &m), kIOReturnSuccess, "length 0 = all");
    cr_assert_eq(IOMemoryMap_GetLength(m), 3 * 4096);
    OSObject_Release((OSObject *)m);
    m = NULL;
    cr_assert_eq(IOMemoryDescriptor_CreateMapping(md, 0, 0, 3 * 4096 - 10, 11, 0, &m), kIOReturnBadArgument);
    cr_assert_eq(IOMemoryDescriptor_CreateMapping(md, 0, 0, 3 * 4096 + 1, 0, 0, &m), kIOReturnBadArgument);
    cr_assert_eq(IOMemoryDescriptor_CreateMapping(md, 0, 0, 8, UINT64_MAX, 0, &m), kIOReturnBadArgument);
    cr_assert_eq(IOMemoryDescriptor_CreateMapping(md, 0, 0x1000, 0, 0, 0, &m), kIOReturnBadArgument);
    cr_assert_eq(IOMemoryDescriptor_CreateMapping(md, kIOMemoryMapFixedAddress, 0, 0, 0, 0, &m), kIOReturnUnsupported);
    cr_assert_null(m);
    IOBufferMemoryDescriptor_SetLength(b, 100);
    cr_assert_eq(IOMemoryDescriptor_CreateMapping(md, 0, 0, 0, 101, 0, &m), kIOReturnBadArgument,
                 "only the valid length can be mapped");
    OSObject_Release((OSObject *)b);
}

Test(runtime_memory, mapping_outlives_the_descriptor_reference)
{
    IOBufferMemoryDescriptor *b = NULL;
    cr_assert_eq(IOBufferMemoryDescriptor_Create(0, 64, 0, &b), kIOReturnSuccess);
    IOBufferMemoryDescriptor_SetLength(b, 64);
    IOMemoryMap *m = NULL;
    cr_assert_eq(IOMemoryDescriptor_CreateMapping((IOMemoryDescriptor *)b, kIOMemoryMapReadOnly, 0, 0, 0, 0, &m),
                 kIOReturnSuccess);
    OSObject_Release((OSObject *)b);
    volatile uint8_t *q = (uint8_t *)(uintptr_t)IOMemoryMap_GetAddress(m);
    cr_assert_eq(q[63], 0);
    OSObject_Release((OSObject *)m);
}

Test(runtime_memory, shared_through_fd_with_another_process)
{
    IOBufferMemoryDescriptor *b = NULL;
    cr_assert_eq(IOBufferMemoryDescriptor_Create(kIOMemoryDirectionInOut, 8192, 0, &b), kIOReturnSuccess);
    IOBufferMemoryDescriptor_SetLength(b, 8192);
    IOAddressSegment r;
    IOBufferMemoryDescriptor_GetAddressRange(b, &r);
    uint8_t *p = (uint8_t *)(uintptr_t)r.address;
    memcpy(p, "from parent", 12);
    int fd = IOMemoryDescriptor_GetFD((IOMemoryDescriptor *)b);
    cr_assert_geq(fd, 0);

    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* The child plays the host/app: it gets only the fd and maps it. */
        IOMemoryDescriptor *md = NULL;
        if (IOMemoryDescriptor_CreateFromFD(fd, kIOMemoryDirectionInOut, 0, &md) != kIOReturnSuccess)
            _exit(10);
        uint64_t len = 0;
        IOMemoryDescriptor_GetLength(md, &len);
        if (len < 8192)
            _exit(11);
        IOMemoryMap *m = NULL;
        if (IOMemoryDescriptor_CreateMapping(md, 0, 0, 0, 8192, 0, &m) != kIOReturnSuccess)
            _exit(12);
        uint8_t *q = (uint8_t *)(uintptr_t)IOMemoryMap_GetAddress(m);
        if (memcmp(q, "from parent", 12) != 0)
            _exit(13);
        for (int i = 0; i < 4096; i++)
            q[4096 + i] = (uint8_t)(i ^ 0x5a);
        /* the memfd is sealed: the other side cannot shrink it under us */
        if (ftruncate(IOMemoryDescriptor_GetFD(md), 0) == 0)
            _exit(14);
        OSObject_Release((OSObject *)m);
        OSObject_Release((OSObject *)md);
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    cr_assert_eq(WEXITSTATUS(status), 0, "child failed at step %d", WEXITSTATUS(status));
    for (int i = 0; i < 4096; i++)
        cr_assert_eq(p[4096 + i], (uint8_t)(i ^ 0x5a));
    OSObject_Release((OSObject *)b);
}

Test(runtime_memory, create_from_fd_checks)
{
    IOMemoryDescriptor *md = NULL;
    cr_assert_eq(IOMemoryDescriptor_CreateFromFD(-1, 0, 0, &md), kIOReturnBadArgument);
    int fd = memfd_create("unsealed", MFD_CLOEXEC);
    cr_assert_eq(ftruncate(fd, 4096), 0);
    cr_assert_eq(IOMemoryDescriptor_CreateFromFD(fd, 0, 0, &md), kIOReturnNotPermitted, "a shrinkable fd is refused");
    close(fd);
    fd = memfd_create("sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    cr_assert_eq(ftruncate(fd, 4096), 0);
    cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    cr_assert_eq(IOMemoryDescriptor_CreateFromFD(fd, 0, 4097, &md), kIOReturnBadArgument);
    cr_assert_null(md);
    cr_assert_eq(IOMemoryDescriptor_CreateFromFD(fd, 0, 100, &md), kIOReturnSuccess);
    uint64_t len = 0;
    IOMemoryDescriptor_GetLength(md, &len);
    cr_assert_eq(len, 100);
    cr_assert_neq(IOMemoryDescriptor_GetFD(md), fd, "duplicated");
    close(fd);
    IOMemoryMap *m = NULL;
    cr_assert_eq(IOMemoryDescriptor_CreateMapping(md, 0, 0, 0, 0, 0, &m), kIOReturnSuccess, "works after our fd closed");
    OSObject_Release((OSObject *)m);
    OSObject_Release((OSObject *)md);
}
