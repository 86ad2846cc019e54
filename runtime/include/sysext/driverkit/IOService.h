/* IOService: a driver's service object, and the host-side calls that drive its lifecycle.
 *
 * A driver subclasses IOService in C: its struct embeds `IOService` first, and its class
 * descriptor names IOService_Class as superclass and overrides methods by ID:
 *
 *     typedef struct MyDriver { IOService service; struct MyDriver_IVars *ivars; } MyDriver;
 *     static kern_return_t MyDriver_Start(IOService *self, IOService *provider)
 *     {
 *         kern_return_t r = IOService_Start_Super(&MyDriver_Class, self, provider); // SUPERDISPATCH
 *         if (r != kIOReturnSuccess)
 *             return r;
 *         ...
 *         return IOService_RegisterService(self);
 *     }
 *     static const OSMethod MyDriver_methods[] = { OS_METHOD(IOService_Start_ID, MyDriver_Start), ... };
 *     const OSClass MyDriver_Class = { "MyDriver", &IOService_Class, sizeof(MyDriver),
 *                                      MyDriver_init, MyDriver_free, MyDriver_methods, 2 };
 *     OS_CLASS_REGISTER(MyDriver_Class)
 *
 * Lifecycle: Instantiate (alloc + init: every service gets its own default serial queue) ->
 * HostStart (Start runs on the default queue; the provider is retained from the base Start until
 * Stop) -> RegisterService -> ... -> Terminate (asynchronous: clients are terminated first, then
 * Stop runs on the service's queue; the base Stop completes termination; a Stop override that
 * never calls IOService_Stop_Super leaves the service "stuck terminating", as on macOS) -> the
 * provider drops its reference -> free on the last release. */
#ifndef SYSEXT_DRIVERKIT_IOSERVICE_H
#define SYSEXT_DRIVERKIT_IOSERVICE_H

#include <sysext/driverkit/IODispatchQueue.h>
#include <sysext/driverkit/OSCollections.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct IOService IOService;
typedef struct IOUserClient IOUserClient;

struct IOService {
    OSObject object;
    struct IOServicePrivate *_priv; /* runtime-private */
};

DK_API extern const OSClass IOService_Class;

#define IOService_Start_ID 0x62be0f59961061d0ULL
#define IOService_Stop_ID 0xdbd926add09aaf14ULL
#define IOService_NewUserClient_ID 0x39d25186bcf86c26ULL

typedef kern_return_t (*IOService_Start_Fn)(IOService *self, IOService *provider);
typedef kern_return_t (*IOService_Stop_Fn)(IOService *self, IOService *provider);
typedef kern_return_t (*IOService_NewUserClient_Fn)(IOService *self, uint32_t type, IOUserClient **userClient);

/** Lifecycle states (IOService_GetState). */
typedef enum IOServiceState {
    kIOServiceStateInitialized = 0, /* instantiated, not started */
    kIOServiceStateStarted = 1,     /* Start succeeded */
    kIOServiceStateStartFailed = 2, /* Start returned an error; the service is detached */
    kIOServiceStateTerminating = 3, /* Terminate requested; Stop pending or not completed */
    kIOServiceStateStopped = 4,     /* Stop completed through the base Stop */
} IOServiceState;

/* ---- virtual methods: the call goes to the most-derived override, on the caller's thread;
 * X_Super(cls, ...) calls the implementation above class `cls` (DriverKit's SUPERDISPATCH). ---- */

/** Base: retains `provider` as this service's provider and returns kIOReturnSuccess. */
DK_API kern_return_t IOService_Start(IOService *self, IOService *provider);
DK_API kern_return_t IOService_Start_Super(const OSClass *cls, IOService *self, IOService *provider);
/** Base: completes termination (DriverKit's serviceDidStop). Overrides must call it last. */
DK_API kern_return_t IOService_Stop(IOService *self, IOService *provider);
DK_API kern_return_t IOService_Stop_Super(const OSClass *cls, IOService *self, IOService *provider);
/**
 * Base: the usual DriverKit body: IOService_Create(self, self, "UserClientProperties", ...) and
 * check the result is an IOUserClient; kIOReturnError when the service has no such property
 * (Apple's default). `*userClient` is +1.
 */
DK_API kern_return_t IOService_NewUserClient(IOService *self, uint32_t type, IOUserClient **userClient);
DK_API kern_return_t IOService_NewUserClient_Super(const OSClass *cls, IOService *self, uint32_t type,
                                                   IOUserClient **userClient);

/* ---- driver-facing calls ---- */

/** Start matching on this service (recorded; the host sees it through IOService_IsRegistered). */
DK_API kern_return_t IOService_RegisterService(IOService *self);
DK_API bool IOService_IsRegistered(IOService *self);
/**
 * Merge `properties` into the service's own properties (DriverKit's IOUserServiceProperties).
 * @return kIOReturnSuccess; kIOReturnBadArgument for NULL; kIOReturnNoMemory
 */
DK_API kern_return_t IOService_SetProperties(IOService *self, OSDictionary *properties);
/** A new dictionary (+1): the registry properties with the ones set by SetProperties flattened in. */
DK_API kern_return_t IOService_CopyProperties(IOService *self, OSDictionary **properties);
/**
 * Instantiate the class named by "IOUserClass" in the dictionary stored under `propertiesKey`
 * in this service's properties, attach it to this service and Start it.
 *
 * @param provider must be `self`
 * @param[out] result the new started service, +1 (the provider holds another reference until
 *                    the new service is terminated)
 * @return kIOReturnSuccess; kIOReturnUnsupported when provider != self; kIOReturnBadArgument when
 *         the key is missing or not a dictionary, has no IOUserClass string, or names a class that
 *         is not an IOService; kIOReturnNotFound for an unregistered class; the error of Start
 */
DK_API kern_return_t IOService_Create(IOService *self, IOService *provider, const char *propertiesKey,
                                      IOService **result);
/**
 * Terminate the service asynchronously: its clients (services it created) first, then Stop on
 * its queue. `options` must be 0.
 * @return kIOReturnSuccess (queued, or already terminating); kIOReturnBadArgument for options;
 *         kIOReturnNotReady when the service was never started
 */
DK_API kern_return_t IOService_Terminate(IOService *self, uint64_t options);
/** The provider given to Start, +0; NULL before Start and after Stop. */
DK_API IOService *IOService_GetProvider(IOService *self);
/** The default queue, +0 (valid while the service holds it). */
DK_API IODispatchQueue *IOService_GetDispatchQueue(IOService *self);
/** OSObject_SetDispatchQueue: "Default" or a QUEUENAME queue. */
DK_API kern_return_t IOService_SetDispatchQueue(IOService *self, const char *name, IODispatchQueue *queue);
DK_API kern_return_t IOService_CopyDispatchQueue(IOService *self, const char *name, IODispatchQueue **queue);
DK_API IOServiceState IOService_GetState(IOService *self);

/* ---- host side: what the driver host (standing in for the kernel) calls ---- */

/**
 * Instantiate the registered IOService subclass `className` (alloc + init, which creates its
 * default queue) with a copy of `properties` (may be NULL). Does not start it.
 *
 * @param[out] result +1
 * @return kIOReturnSuccess; kIOReturnNotFound for an unknown class; kIOReturnBadArgument when it
 *         is not an IOService; kIOReturnNoMemory; kIOReturnError when init failed
 */
DK_API kern_return_t IOService_Instantiate(const char *className, OSDictionary *properties,
                                           IOService **result);
/**
 * Run Start(provider) on the service's default queue and wait. On success the service is
 * attached to `provider` (may be NULL for a root). On failure it is left detached in state
 * kIOServiceStateStartFailed.
 */
DK_API kern_return_t IOService_HostStart(IOService *service, IOService *provider);
/** Run NewUserClient(type) on the service's queue and wait. `*userClient` is +1. */
DK_API kern_return_t IOService_HostNewUserClient(IOService *service, uint32_t type,
                                                 IOUserClient **userClient);

#ifdef __cplusplus
}
#endif

#endif
