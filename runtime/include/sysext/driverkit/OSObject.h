/* OSObject: the root of the runtime's object model.
 *
 * Naming scheme (see runtime/README.md): a DriverKit class `C` is the C type `C`, its method `M`
 * is the function `C_M(obj, ...)`, its class descriptor is `C_Class`, and a virtual method's
 * 64-bit message ID is `C_M_ID`. Apple's "Get returns +0, everything else that returns an object
 * returns +1" ownership rule holds for every function here.
 *
 * Objects are reference counted (atomic, any thread). The last OSObject_Release() calls the
 * most-derived class's `free`, which must end with OSObject_SuperFree(); then the memory goes.
 *
 * Classes: a class is a static `OSClass` descriptor naming its superclass, its instance size (the
 * C struct of the class, which embeds the superclass struct as its first member), optional
 * init/free overrides, and a table of virtual methods indexed by message ID. A virtual call looks
 * the ID up from the object's class towards OSObject; a "super" call (DriverKit's SUPERDISPATCH)
 * starts the lookup at the superclass of the class whose implementation is calling. The same ID
 * table is what a future IPC dispatcher uses to route an incoming message, and each entry can
 * name the queue (QUEUENAME) the method runs on. */
#ifndef SYSEXT_DRIVERKIT_OSOBJECT_H
#define SYSEXT_DRIVERKIT_OSOBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sysext/driverkit/IOReturn.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct OSClass OSClass;
typedef struct OSObject OSObject;
typedef struct IODispatchQueue IODispatchQueue;

/** A method implementation of any signature; callers cast it back to the method's type. */
typedef void (*OSMethodFunction)(void);

/** One entry of a class's virtual method table. */
typedef struct OSMethod {
    uint64_t id;               /**< `Class_Method_ID` of the method overridden */
    OSMethodFunction function; /**< the implementation, cast to OSMethodFunction */
    const char *queueName;     /**< QUEUENAME(): run on this named queue; NULL = as declared above
                                    (an override inherits its superclass's QUEUENAME), else default */
} OSMethod;

#define OS_METHOD(id, fn) { (id), (OSMethodFunction)(fn), NULL }
#define OS_METHOD_QUEUE(id, fn, queue) { (id), (OSMethodFunction)(fn), (queue) }

/** A class descriptor. Define one `static const` (or `const`) instance per class. */
struct OSClass {
    const char *name;          /**< unique class name, e.g. "MyUserUSBInterfaceDriver" */
    const OSClass *superClass; /**< NULL only for OSObject_Class */
    size_t instanceSize;       /**< sizeof the class's struct; >= the superclass's */
    /** Optional: set up ivars; must call OSObject_SuperInit() first. false = failure. */
    bool (*init)(OSObject *self);
    /** Optional: release ivars; must end with OSObject_SuperFree(). Also runs after a failed init. */
    void (*free)(OSObject *self);
    const OSMethod *methods; /**< virtual method overrides, may be NULL */
    size_t methodCount;
};

/** The instance header every object starts with. Fields are private to the runtime. */
struct OSObject {
    const OSClass *meta;
    uint32_t _refcount;
    uint32_t _flags;
    uint64_t _id;
    void *_queues;
};

/** Maximum length of a dispatch queue name, including the NUL (IODispatchQueueName). */
#define kIODispatchQueueNameLength 256
/** The name of every object's default queue. */
#define kIOServiceDefaultQueueName "Default"

DK_API extern const OSClass OSObject_Class;

/**
 * Allocate an instance of `cls` and run its init chain (OSTypeAlloc + init).
 *
 * @param[out] out the new object, +1; untouched on failure
 * @return kIOReturnSuccess; kIOReturnBadArgument for an inconsistent class (instance size smaller
 *         than its superclass's, or no OSObject root); kIOReturnNoMemory; kIOReturnError if init
 *         returned false (the object was freed)
 */
DK_API kern_return_t OSObject_Alloc(const OSClass *cls, OSObject **out);

/** Add a reference. NULL is a no-op. Thread-safe. Returns obj. */
DK_API OSObject *OSObject_Retain(OSObject *obj);
/** Drop a reference; the last one frees the object. NULL is a no-op. Thread-safe. */
DK_API void OSObject_Release(OSObject *obj);
/** The current reference count (for tests and diagnostics). */
DK_API uint32_t OSObject_GetRetainCount(const OSObject *obj);
/** A process-unique, never-reused object id (> 0), the future IPC handle. */
DK_API uint64_t OSObject_GetID(const OSObject *obj);
DK_API const OSClass *OSObject_GetClass(const OSObject *obj);
DK_API const char *OSObject_GetClassName(const OSObject *obj);

/** true if `obj` is an instance of `cls` or of a subclass. NULL obj gives false. */
DK_API bool OSObject_IsKindOf(const OSObject *obj, const OSClass *cls);
/** `obj` if it is a kind of `cls`, else NULL. +0. */
DK_API OSObject *OSObject_DynamicCast(OSObject *obj, const OSClass *cls);

#define OSDynamicCast(Type, obj) ((Type *)OSObject_DynamicCast((OSObject *)(obj), &Type##_Class))
#define OSSafeReleaseNULL(p)                                                                       \
    do {                                                                                           \
        OSObject_Release((OSObject *)(p));                                                         \
        (p) = NULL;                                                                                \
    } while (0)

/** Call the superclass init of `cls` (the class whose init is running). */
DK_API bool OSObject_SuperInit(const OSClass *cls, OSObject *self);
/** Call the superclass free of `cls` (the class whose free is running). */
DK_API void OSObject_SuperFree(const OSClass *cls, OSObject *self);

/** The implementation of method `id` for `cls`, searching up to OSObject. NULL if none. */
DK_API const OSMethod *OSClass_FindMethod(const OSClass *cls, uint64_t id);
/** The superclass implementation of `id` as seen from `cls` (for super calls). NULL if none. */
DK_API const OSMethod *OSClass_FindSuperMethod(const OSClass *cls, uint64_t id);

/**
 * Register `cls` in the process's class registry so IOService_Create and the host can
 * instantiate it by name. Registering the same descriptor twice is a no-op.
 *
 * @return kIOReturnSuccess; kIOReturnBadArgument for a class without a name or OSObject root or
 *         with an instance size smaller than its superclass's; kIOReturnExclusiveAccess when another
 *         descriptor already has that name; kIOReturnNoResources when the registry is full
 */
DK_API kern_return_t OSClass_Register(const OSClass *cls);
/** The registered class named `name` (the built-in classes are always there), or NULL. */
DK_API const OSClass *OSClass_Find(const char *name);
/** Register a class at load time: OS_CLASS_REGISTER(MyDriver_Class); at file scope. */
#define OS_CLASS_REGISTER(cls)                                                                     \
    __attribute__((constructor)) static void cls##_register_ctor(void)                             \
    {                                                                                              \
        (void)OSClass_Register(&cls);                                                              \
    }

/**
 * Set the queue named `name` of `obj` (QUEUENAME(name) methods run on it). "Default" replaces the
 * default queue. The object retains `queue`; NULL removes the name.
 *
 * @return kIOReturnSuccess; kIOReturnBadArgument for an empty or too long name;
 *         kIOReturnNoResources when the object already has 16 named queues
 */
DK_API kern_return_t OSObject_SetDispatchQueue(OSObject *obj, const char *name, IODispatchQueue *queue);
/**
 * The queue set under `name`, +1. kIOReturnNotFound when none is set.
 */
DK_API kern_return_t OSObject_CopyDispatchQueue(OSObject *obj, const char *name, IODispatchQueue **queue);
/**
 * The queue method `methodID` of `obj` runs on: its QUEUENAME queue if one is set, else the
 * default queue. +0 (valid while obj holds it). NULL when the object has no queue.
 */
DK_API IODispatchQueue *OSObject_GetQueueForMethod(OSObject *obj, uint64_t methodID);

/** Calls `impl` (cast to the method's type) with arguments the caller packed in `context`. */
typedef void (*OSMethodCaller)(OSObject *obj, OSMethodFunction impl, void *context);

/**
 * Dispatch by message ID, as the host side (and the future IPC server) does: find the
 * implementation of `methodID` for obj's class, then run `caller(obj, impl, context)` on the
 * method's queue (QUEUENAME queue if set, else the default queue) and wait for it.
 *
 * @return kIOReturnSuccess once caller has run; kIOReturnUnsupported when the class does not
 *         implement methodID (DriverKit's default _Dispatch answer); kIOReturnNotReady when the
 *         object has no queue; kIOReturnAborted when the queue was cancelled
 */
DK_API kern_return_t OSObject_DispatchMethod(OSObject *obj, uint64_t methodID, OSMethodCaller caller, void *context);

#ifdef __cplusplus
}
#endif

#endif
