#include "rt_internal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct IOMemoryDescriptor {
    OSObject object;
    int fd;
    uint64_t options;
    uint64_t length; /* valid length */
    uint64_t size;   /* file size (sealed) */
};

struct IOBufferMemoryDescriptor {
    IOMemoryDescriptor md;
    void *addr; /* local read/write mapping of the whole file */
    uint64_t capacity;
};

struct IOMemoryMap {
    OSObject object;
    IOMemoryDescriptor *md;
    void *base;         /* page-aligned mmap base */
    size_t map_len;     /* bytes mapped from base */
    uint64_t address;   /* base + offset within the page */
    uint64_t length, offset;
};

static bool md_init(OSObject *o)
{
    ((IOMemoryDescriptor *)o)->fd = -1;
    return OSObject_SuperInit(&IOMemoryDescriptor_Class, o);
}

static void md_free(OSObject *o)
{
    IOMemoryDescriptor *md = (IOMemoryDescriptor *)o;
    if (md->fd >= 0)
        close(md->fd);
    OSObject_SuperFree(&IOMemoryDescriptor_Class, o);
}

static void bmd_free(OSObject *o)
{
    IOBufferMemoryDescriptor *b = (IOBufferMemoryDescriptor *)o;
    if (b->addr)
        munmap(b->addr, (size_t)b->md.size);
    OSObject_SuperFree(&IOBufferMemoryDescriptor_Class, o);
}

static void map_free(OSObject *o)
{
    IOMemoryMap *m = (IOMemoryMap *)o;
    if (m->base)
        munmap(m->base, m->map_len);
    OSObject_Release((OSObject *)m->md);
    OSObject_SuperFree(&IOMemoryMap_Class, o);
}

const OSClass IOMemoryDescriptor_Class = {
    .name = "IOMemoryDescriptor", .superClass = &OSObject_Class,
    .instanceSize = sizeof(IOMemoryDescriptor), .init = md_init, .free = md_free,
};
const OSClass IOBufferMemoryDescriptor_Class = {
    .name = "IOBufferMemoryDescriptor", .superClass = &IOMemoryDescriptor_Class,
    .instanceSize = sizeof(IOBufferMemoryDescriptor), .free = bmd_free,
};
const OSClass IOMemoryMap_Class = {
    .name = "IOMemoryMap", .superClass = &OSObject_Class,
    .instanceSize = sizeof(IOMemoryMap), .free = map_free,
};

static uint64_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (uint64_t)p : 4096;
}

kern_return_t IOBufferMemoryDescriptor_Create(uint64_t options, uint64_t capacity, uint64_t alignment,
                                              IOBufferMemoryDescriptor **memory)
{
    if (!memory || capacity == 0 || (options & ~(kIOMemoryDirectionInOut | kIOMemoryDisableCopyOnWrite)))
        return kIOReturnBadArgument;
    if (alignment & (alignment - 1))
        return kIOReturnBadArgument;
    const uint64_t page = page_size();
    if (alignment > page)
        return kIOReturnUnsupported;
    uint64_t size;
    if (DK_ADD_OVERFLOW(capacity, page - 1, &size) || size > (uint64_t)SIZE_MAX || size > (uint64_t)INT64_MAX)
        return kIOReturnBadArgument;
    size &= ~(page - 1);

    OSObject *o = NULL;
    kern_return_t r = OSObject_Alloc(&IOBufferMemoryDescriptor_Class, &o);
    if (r != kIOReturnSuccess)
        return r;
    IOBufferMemoryDescriptor *b = (IOBufferMemoryDescriptor *)o;
    b->md.fd = memfd_create("IOBufferMemoryDescriptor", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (b->md.fd < 0) {
        OSObject_Release(o);
        return kIOReturnNoResources;
    }
    if (ftruncate(b->md.fd, (off_t)size) != 0 ||
        fcntl(b->md.fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        OSObject_Release(o);
        return kIOReturnNoMemory;
    }
    void *addr = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, b->md.fd, 0);
    if (addr == MAP_FAILED) {
        OSObject_Release(o);
        return kIOReturnVMError;
    }
    b->md.size = size;
    b->addr = addr;
    b->md.options = options;
    b->md.length = 0;
    b->capacity = capacity;
    *memory = b;
    return kIOReturnSuccess;
}

static bool is_bmd(IOBufferMemoryDescriptor *b)
{
    return b && OSObject_IsKindOf(&b->md.object, &IOBufferMemoryDescriptor_Class);
}

static bool is_md(IOMemoryDescriptor *md)
{
    return md && OSObject_IsKindOf(&md->object, &IOMemoryDescriptor_Class);
}

kern_return_t IOBufferMemoryDescriptor_SetLength(IOBufferMemoryDescriptor *b, uint64_t length)
{
    if (!is_bmd(b) || length > b->capacity)
        return kIOReturnBadArgument;
    __atomic_store_n(&b->md.length, length, __ATOMIC_RELAXED);
    return kIOReturnSuccess;
}

kern_return_t IOBufferMemoryDescriptor_GetAddressRange(IOBufferMemoryDescriptor *b, IOAddressSegment *range)
{
    if (!is_bmd(b) || !range)
        return kIOReturnBadArgument;
    range->address = (uint64_t)(uintptr_t)b->addr;
    range->length = __atomic_load_n(&b->md.length, __ATOMIC_RELAXED);
    return kIOReturnSuccess;
}

uint64_t IOBufferMemoryDescriptor_GetCapacity(IOBufferMemoryDescriptor *b)
{
    return is_bmd(b) ? b->capacity : 0;
}

kern_return_t IOMemoryDescriptor_CreateFromFD(int fd, uint64_t options, uint64_t length, IOMemoryDescriptor **memory)
{
    if (fd < 0 || !memory || (options & ~(kIOMemoryDirectionInOut | kIOMemoryDisableCopyOnWrite)))
        return kIOReturnBadArgument;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
        return kIOReturnBadArgument;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK))
        return kIOReturnNotPermitted;
    uint64_t size = (uint64_t)st.st_size;
    if (length == 0)
        length = size;
    if (length > size)
        return kIOReturnBadArgument;
    OSObject *o = NULL;
    kern_return_t r = OSObject_Alloc(&IOMemoryDescriptor_Class, &o);
    if (r != kIOReturnSuccess)
        return r;
    IOMemoryDescriptor *md = (IOMemoryDescriptor *)o;
    md->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (md->fd < 0) {
        OSObject_Release(o);
        return kIOReturnNoResources;
    }
    md->options = options;
    md->length = length;
    md->size = size;
    *memory = md;
    return kIOReturnSuccess;
}

kern_return_t IOMemoryDescriptor_GetLength(IOMemoryDescriptor *md, uint64_t *length)
{
    if (!is_md(md) || !length)
        return kIOReturnBadArgument;
    *length = __atomic_load_n(&md->length, __ATOMIC_RELAXED);
    return kIOReturnSuccess;
}

int IOMemoryDescriptor_GetFD(IOMemoryDescriptor *md)
{
    return is_md(md) ? md->fd : -1;
}

uint64_t IOMemoryDescriptor_GetOptions(IOMemoryDescriptor *md)
{
    return is_md(md) ? md->options : 0;
}

kern_return_t IOMemoryDescriptor_CreateMapping(IOMemoryDescriptor *md, uint64_t options, uint64_t address,
                                               uint64_t offset, uint64_t length, uint64_t alignment,
                                               IOMemoryMap **map)
{
    if (!is_md(md) || !map || address != 0 || alignment != 0)
        return kIOReturnBadArgument;
    if (options & kIOMemoryMapFixedAddress)
        return kIOReturnUnsupported;
    if (options & ~(uint64_t)(kIOMemoryMapReadOnly | 0x1Cu | 0xF00u)) /* guard and cache bits: accepted */
        return kIOReturnBadArgument;
    uint64_t valid = __atomic_load_n(&md->length, __ATOMIC_RELAXED), end;
    if (offset > valid)
        return kIOReturnBadArgument;
    if (length == 0)
        length = valid - offset;
    if (length == 0 || DK_ADD_OVERFLOW(offset, length, &end) || end > valid || end > md->size)
        return kIOReturnBadArgument;
    const uint64_t page = page_size();
    uint64_t map_off = offset & ~(page - 1), map_len = end - map_off;
    if (map_len > (uint64_t)SIZE_MAX || map_off > (uint64_t)INT64_MAX)
        return kIOReturnBadArgument;
    OSObject *o = NULL;
    kern_return_t r = OSObject_Alloc(&IOMemoryMap_Class, &o);
    if (r != kIOReturnSuccess)
        return r;
    IOMemoryMap *m = (IOMemoryMap *)o;
    int prot = (options & kIOMemoryMapReadOnly) ? PROT_READ : PROT_READ | PROT_WRITE;
    void *base = mmap(NULL, (size_t)map_len, prot, MAP_SHARED, md->fd, (off_t)map_off);
    if (base == MAP_FAILED) {
        OSObject_Release(o);
        return kIOReturnVMError;
    }
    m->base = base;
    m->map_len = (size_t)map_len;
    m->address = (uint64_t)(uintptr_t)base + (offset - map_off);
    m->length = length;
    m->offset = offset;
    m->md = (IOMemoryDescriptor *)OSObject_Retain(&md->object);
    *map = m;
    return kIOReturnSuccess;
}

uint64_t IOMemoryMap_GetAddress(IOMemoryMap *map)
{
    return map ? map->address : 0;
}
uint64_t IOMemoryMap_GetLength(IOMemoryMap *map)
{
    return map ? map->length : 0;
}
uint64_t IOMemoryMap_GetOffset(IOMemoryMap *map)
{
    return map ? map->offset : 0;
}
