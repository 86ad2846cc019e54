/* IOMemoryDescriptor / IOBufferMemoryDescriptor / IOMemoryMap: memfd-backed memory.
 *
 * A buffer lives in a sealed memfd (it can never shrink, so a process it is shared with cannot
 * make our mapping fault), mapped shared in this process. The fd (IOMemoryDescriptor_GetFD) is
 * what the host or an app receives; IOMemoryDescriptor_CreateFromFD wraps a received one, and
 * CreateMapping maps (part of) any descriptor. */
#ifndef SYSEXT_DRIVERKIT_IOMEMORYDESCRIPTOR_H
#define SYSEXT_DRIVERKIT_IOMEMORYDESCRIPTOR_H

#include <sysext/driverkit/OSObject.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct IOMemoryDescriptor IOMemoryDescriptor;
typedef struct IOBufferMemoryDescriptor IOBufferMemoryDescriptor;
typedef struct IOMemoryMap IOMemoryMap;

DK_API extern const OSClass IOMemoryDescriptor_Class, IOBufferMemoryDescriptor_Class, IOMemoryMap_Class;

typedef struct IOAddressSegment {
    uint64_t address;
    uint64_t length;
} IOAddressSegment;

/* Direction options */
#define kIOMemoryDirectionNone 0ull
#define kIOMemoryDirectionIn 1ull  /* the device writes into memory */
#define kIOMemoryDirectionOut 2ull /* the device reads from memory */
#define kIOMemoryDirectionOutIn 3ull
#define kIOMemoryDirectionInOut 3ull
#define kIOMemoryDisableCopyOnWrite 0x10ull

/* CreateMapping options */
#define kIOMemoryMapFixedAddress 1ull
#define kIOMemoryMapReadOnly 2ull

/**
 * Allocate a buffer of `capacity` bytes (memfd-backed, zero-filled, mapped read/write).
 * Its length starts at 0: call SetLength.
 *
 * @param options   direction flags (kIOMemoryDirection*)
 * @param alignment 0, or a power of two up to the page size (mappings are page-aligned)
 * @param[out] memory +1
 * @return kIOReturnSuccess; kIOReturnBadArgument for capacity 0, unknown option bits or a bad
 *         alignment; kIOReturnUnsupported for an alignment above the page size;
 *         kIOReturnNoMemory / kIOReturnVMError when the memfd or mapping fails
 */
DK_API kern_return_t IOBufferMemoryDescriptor_Create(uint64_t options, uint64_t capacity, uint64_t alignment,
                                                     IOBufferMemoryDescriptor **memory);
/** Set the valid length; kIOReturnBadArgument above the capacity. */
DK_API kern_return_t IOBufferMemoryDescriptor_SetLength(IOBufferMemoryDescriptor *memory, uint64_t length);
/** The local address and the valid length. */
DK_API kern_return_t IOBufferMemoryDescriptor_GetAddressRange(IOBufferMemoryDescriptor *memory,
                                                              IOAddressSegment *range);
DK_API uint64_t IOBufferMemoryDescriptor_GetCapacity(IOBufferMemoryDescriptor *memory);

/**
 * Wrap a memfd received from another process. The fd is duplicated (the caller keeps its own).
 * The memfd must be sealed against shrinking (F_SEAL_SHRINK), as our buffers are.
 *
 * @param length valid length, 0 = the whole file; must not exceed the file size
 * @param[out] memory +1
 * @return kIOReturnSuccess; kIOReturnBadArgument for a bad fd or length; kIOReturnNotPermitted
 *         for an fd that can shrink; kIOReturnNoResources when it cannot be duplicated
 */
DK_API kern_return_t IOMemoryDescriptor_CreateFromFD(int fd, uint64_t options, uint64_t length,
                                                     IOMemoryDescriptor **memory);
DK_API kern_return_t IOMemoryDescriptor_GetLength(IOMemoryDescriptor *memory, uint64_t *length);
/** The backing memfd, borrowed: valid while the descriptor lives. dup() it to hand it out. */
DK_API int IOMemoryDescriptor_GetFD(IOMemoryDescriptor *memory);
/** The direction options given at creation. */
DK_API uint64_t IOMemoryDescriptor_GetOptions(IOMemoryDescriptor *memory);

/**
 * Map `length` bytes at `offset` of the descriptor into this process.
 *
 * @param options   kIOMemoryMapReadOnly or 0 (kIOMemoryMapFixedAddress is unsupported)
 * @param address   must be 0
 * @param length    0 = from offset to the end of the valid length
 * @param alignment must be 0
 * @param[out] map  +1; the mapping holds a reference on the descriptor
 * @return kIOReturnSuccess; kIOReturnBadArgument for a range outside the descriptor or bad
 *         arguments; kIOReturnUnsupported for FixedAddress; kIOReturnVMError when mmap fails
 */
DK_API kern_return_t IOMemoryDescriptor_CreateMapping(IOMemoryDescriptor *memory, uint64_t options,
                                                      uint64_t address, uint64_t offset, uint64_t length,
                                                      uint64_t alignment, IOMemoryMap **map);
DK_API uint64_t IOMemoryMap_GetAddress(IOMemoryMap *map);
DK_API uint64_t IOMemoryMap_GetLength(IOMemoryMap *map);
DK_API uint64_t IOMemoryMap_GetOffset(IOMemoryMap *map);

#ifdef __cplusplus
}
#endif

#endif
