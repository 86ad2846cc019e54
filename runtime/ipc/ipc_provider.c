/* Provider factories: the host's nubs (IOUserResources, USB devices and interfaces, ...)
 * recreated inside the driver process from a Create message. The built-in "IOService" and
 * "IOUserResources" factories make a plain IOService carrying the nub's properties, so a
 * virtual driver can be started without hardware. */
#include "rt_internal.h"

#include <sysext/driverkit/DKIPC.h>

#include "usb/usb_host.h"

#define MAX_FACTORIES 64
#define MAX_CLASS_NAME 128

static pthread_mutex_t fac_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[MAX_CLASS_NAME];
    DKIPCProviderFactory fn;
} fac[MAX_FACTORIES];
static size_t nfac;
static bool builtins_done;

static kern_return_t generic_factory(const char *className, DKIPCMessage *create, IOService **out);

static kern_return_t add_locked(const char *className, DKIPCProviderFactory fn)
{
    for (size_t i = 0; i < nfac; i++)
        if (!strcmp(fac[i].name, className))
            return fac[i].fn == fn ? kIOReturnSuccess : kIOReturnPortExists;
    if (nfac == MAX_FACTORIES)
        return kIOReturnNoResources;
    if (!rt_copy_name(fac[nfac].name, sizeof(fac[nfac].name), className))
        return kIOReturnBadArgument;
    fac[nfac].fn = fn;
    nfac++;
    return kIOReturnSuccess;
}

/* Built-ins are added lazily (not from a constructor), so a static link keeps them. */
static void builtins_locked(void)
{
    if (builtins_done)
        return;
    builtins_done = true;
    (void)add_locked("IOService", generic_factory);
    (void)add_locked("IOUserResources", generic_factory);
    /* referenced here, so a driver linked against the static runtime gets the USB family */
    (void)add_locked("IOUSBHostDevice", rt_usb_provider_create);
    (void)add_locked("IOUSBHostInterface", rt_usb_provider_create);
}

kern_return_t DKIPC_RegisterProviderFactory(const char *className, DKIPCProviderFactory fn)
{
    if (!className || !*className || !fn)
        return kIOReturnBadArgument;
    pthread_mutex_lock(&fac_lock);
    builtins_locked();
    kern_return_t r = add_locked(className, fn);
    pthread_mutex_unlock(&fac_lock);
    return r;
}

DKIPCProviderFactory DKIPC_FindProviderFactory(const char *className)
{
    DKIPCProviderFactory fn = NULL;
    if (!className)
        return NULL;
    pthread_mutex_lock(&fac_lock);
    builtins_locked();
    for (size_t i = 0; i < nfac && !fn; i++)
        if (!strcmp(fac[i].name, className))
            fn = fac[i].fn;
    pthread_mutex_unlock(&fac_lock);
    return fn;
}

kern_return_t DKIPC_CopyProviderProperties(const DKIPCMessage *create, OSDictionary **out)
{
    if (!create || !out)
        return kIOReturnBadArgument;
    OSDictionary *d = OSDictionary_WithCapacity(8);
    if (!d)
        return kIOReturnNoMemory;
    kern_return_t r = kIOReturnSuccess;
    uint32_t i = 1;
    /* pairs STRING key + U64|STRING|BYTES value, then only FD arguments */
    while (i < create->argCount && create->args[i].type != kDKIPCArgFD) {
        const char *key = NULL;
        if (i + 1 >= create->argCount || DKIPCMessage_GetString(create, i, &key) != kIOReturnSuccess) {
            r = kIOReturnBadArgument;
            break;
        }
        const DKIPCArg *v = &create->args[i + 1];
        OSObject *obj = NULL;
        if (v->type == kDKIPCArgU64)
            obj = (OSObject *)OSNumber_WithNumber(v->value, 64);
        else if (v->type == kDKIPCArgString)
            obj = (OSObject *)OSString_WithCString((const char *)v->data);
        else if (v->type == kDKIPCArgBytes)
            obj = (OSObject *)OSData_WithBytes(v->data, v->length);
        else {
            r = kIOReturnBadArgument;
            break;
        }
        if (!obj) {
            r = kIOReturnNoMemory;
            break;
        }
        /* "Parent/Key": a value of the nested dictionary Parent (one level, see DKIPC.h) */
        const char *slash = strchr(key, '/');
        bool ok;
        if (slash && slash != key && slash[1] && !strchr(slash + 1, '/')) {
            char parent[128];
            size_t plen = (size_t)(slash - key);
            OSDictionary *sub = NULL;
            ok = plen < sizeof(parent);
            if (ok) {
                memcpy(parent, key, plen);
                parent[plen] = '\0';
                sub = OSDynamicCast(OSDictionary, OSDictionary_GetObject(d, parent));
                if (!sub && OSDictionary_GetObject(d, parent))
                    ok = false; /* Parent is already a value of another kind */
            }
            if (ok && !sub) {
                OSDictionary *fresh = OSDictionary_WithCapacity(4);
                ok = fresh && OSDictionary_SetObject(d, parent, (OSObject *)fresh);
                if (fresh)
                    OSObject_Release((OSObject *)fresh);
                sub = ok ? OSDynamicCast(OSDictionary, OSDictionary_GetObject(d, parent)) : NULL;
                ok = sub != NULL;
            }
            ok = ok && OSDictionary_SetObject(sub, slash + 1, obj);
            if (!ok && plen >= sizeof(parent)) {
                OSObject_Release(obj);
                r = kIOReturnBadArgument;
                break;
            }
        } else {
            ok = OSDictionary_SetObject(d, key, obj);
        }
        OSObject_Release(obj);
        if (!ok) {
            r = kIOReturnNoMemory;
            break;
        }
        i += 2;
    }
    for (; r == kIOReturnSuccess && i < create->argCount; i++)
        if (create->args[i].type != kDKIPCArgFD)
            r = kIOReturnBadArgument;
    if (r != kIOReturnSuccess) {
        OSObject_Release((OSObject *)d);
        return r;
    }
    *out = d;
    return kIOReturnSuccess;
}

static kern_return_t generic_factory(const char *className, DKIPCMessage *create, IOService **out)
{
    (void)className;
    OSDictionary *props = NULL;
    kern_return_t r = DKIPC_CopyProviderProperties(create, &props);
    if (r != kIOReturnSuccess)
        return r;
    r = IOService_Instantiate("IOService", props, out);
    OSObject_Release((OSObject *)props);
    return r;
}
