#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "rt_test.h"

/* The event log, written from the services' queues. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char event_log[1024];

static void note(const char *who, const char *what)
{
    pthread_mutex_lock(&log_lock);
    size_t n = strlen(event_log);
    snprintf(event_log + n, sizeof(event_log) - n, "%s.%s,", who, what);
    pthread_mutex_unlock(&log_lock);
}

static bool log_is(const char *expect)
{
    pthread_mutex_lock(&log_lock);
    bool eq = strcmp(event_log, expect) == 0;
    pthread_mutex_unlock(&log_lock);
    return eq;
}

static bool wait_state(IOService *s, IOServiceState st)
{
    for (int i = 0; i < 1000; i++) {
        if (IOService_GetState(s) == st)
            return true;
        rt_sleep_ms(5);
    }
    return false;
}

/* A driver written in C: ivars, init/free, Start/Stop overrides calling super. */
struct MyDriver_IVars {
    int starts;
    bool start_on_queue;
    IOService *provider_seen;
};
typedef struct MyDriver {
    IOService service;
    struct MyDriver_IVars *ivars;
} MyDriver;

static const OSClass MyDriver_Class, Stuck_Class, Failing_Class, Child_Class;

static const char *short_name(IOService *s)
{
    return OSObject_GetClassName((OSObject *)s) + 4; /* "Test" prefix */
}

static bool MyDriver_init(OSObject *o)
{
    if (!OSObject_SuperInit(&MyDriver_Class, o))
        return false;
    MyDriver *d = (MyDriver *)o;
    d->ivars = calloc(1, sizeof(*d->ivars));
    note(short_name((IOService *)o), "init");
    return d->ivars != NULL;
}

static void MyDriver_free(OSObject *o)
{
    MyDriver *d = (MyDriver *)o;
    note(short_name((IOService *)o), "free");
    free(d->ivars);
    OSObject_SuperFree(&MyDriver_Class, o);
}

static kern_return_t MyDriver_Start(IOService *self, IOService *provider)
{
    MyDriver *d = (MyDriver *)self;
    d->ivars->start_on_queue = IODispatchQueue_OnQueue(IOService_GetDispatchQueue(self));
    kern_return_t r = IOService_Start_Super(&MyDriver_Class, self, provider);
    if (r != kIOReturnSuccess)
        return r;
    d->ivars->starts++;
    d->ivars->provider_seen = IOService_GetProvider(self);
    note(short_name(self), "start");
    return IOService_RegisterService(self);
}

static kern_return_t MyDriver_Stop(IOService *self, IOService *provider)
{
    note(short_name(self), IODispatchQueue_OnQueue(IOService_GetDispatchQueue(self)) ? "stop" : "stop-offqueue");
    return IOService_Stop_Super(&MyDriver_Class, self, provider);
}

static kern_return_t Stuck_Stop(IOService *self, IOService *provider)
{
    (void)provider;
    note(short_name(self), "stop-without-super");
    return kIOReturnSuccess;
}

static kern_return_t Failing_Start(IOService *self, IOService *provider)
{
    kern_return_t r = IOService_Start_Super(&Failing_Class, self, provider); /* MyDriver's Start */
    if (r != kIOReturnSuccess)
        return r;
    return kIOReturnNoResources;
}

static const OSMethod MyDriver_methods[] = {
    OS_METHOD(IOService_Start_ID, MyDriver_Start),
    OS_METHOD(IOService_Stop_ID, MyDriver_Stop),
};
static const OSMethod Stuck_methods[] = { OS_METHOD(IOService_Stop_ID, Stuck_Stop) };
static const OSMethod Failing_methods[] = { OS_METHOD(IOService_Start_ID, Failing_Start) };

static const OSClass MyDriver_Class = { "TestMyDriver", &IOService_Class, sizeof(MyDriver), MyDriver_init,
                                        MyDriver_free, MyDriver_methods, 2 };
static const OSClass Stuck_Class = { "TestStuck", &MyDriver_Class, sizeof(MyDriver), NULL, NULL, Stuck_methods, 1 };
static const OSClass Failing_Class = { "TestFailing", &MyDriver_Class, sizeof(MyDriver), NULL, NULL,
                                       Failing_methods, 1 };
static const OSClass Child_Class = { "TestChild", &MyDriver_Class, sizeof(MyDriver), NULL, NULL, NULL, 0 };
static const OSClass NotService_Class = { "TestNotService", &OSObject_Class, sizeof(OSObject), NULL, NULL, NULL, 0 };

OS_CLASS_REGISTER(MyDriver_Class)
OS_CLASS_REGISTER(Stuck_Class)
OS_CLASS_REGISTER(Failing_Class)
OS_CLASS_REGISTER(Child_Class)
OS_CLASS_REGISTER(NotService_Class)

static IOService *root;

static void setup(void)
{
    event_log[0] = '\0';
    cr_assert_eq(IOService_Instantiate("IOService", NULL, &root), kIOReturnSuccess);
    cr_assert_eq(IOService_HostStart(root, NULL), kIOReturnSuccess);
}

static void teardown(void)
{
    OSObject_Release((OSObject *)root);
}

TestSuite(runtime_service, .init = setup, .fini = teardown, .timeout = 30);

Test(runtime_service, start_stop_terminate_sequence)
{
    OSDictionary *props = OSDictionary_WithCapacity(2);
    OSDictionary_SetStringValue(props, "CFBundleIdentifier", "com.example.driver");
    IOService *drv = NULL;
    uint32_t root_rc = OSObject_GetRetainCount((OSObject *)root);
    cr_assert_eq(IOService_Instantiate("TestMyDriver", props, &drv), kIOReturnSuccess);
    OSObject_Release((OSObject *)props);
    cr_assert_eq(IOService_GetState(drv), kIOServiceStateInitialized);
    cr_assert_not_null(IOService_GetDispatchQueue(drv), "every service has its own default queue");
    cr_assert_neq(IOService_GetDispatchQueue(drv), IOService_GetDispatchQueue(root));
    cr_assert_eq(IOService_Terminate(drv, 0), kIOReturnNotReady, "never started");

    cr_assert_eq(IOService_HostStart(drv, root), kIOReturnSuccess);
    MyDriver *d = (MyDriver *)drv;
    cr_assert_eq(IOService_GetState(drv), kIOServiceStateStarted);
    cr_assert(d->ivars->start_on_queue, "Start runs on the default queue");
    cr_assert_eq(d->ivars->provider_seen, root);
    cr_assert_eq(IOService_GetProvider(drv), root);
    cr_assert(IOService_IsRegistered(drv));
    cr_assert_eq(OSObject_GetRetainCount((OSObject *)root), root_rc + 1, "provider retained from Start");
    cr_assert_eq(IOService_HostStart(drv, root), kIOReturnBadArgument, "started twice");

    cr_assert_eq(IOService_Terminate(drv, 1), kIOReturnBadArgument, "options must be 0");
    cr_assert_eq(IOService_Terminate(drv, 0), kIOReturnSuccess);
    cr_assert_eq(IOService_Terminate(drv, 0), kIOReturnSuccess, "already terminating");
    cr_assert(wait_state(drv, kIOServiceStateStopped));
    cr_assert_null(IOService_GetProvider(drv));
    cr_assert_eq(OSObject_GetRetainCount((OSObject *)root), root_rc, "provider released after Stop");
    cr_assert_eq(OSObject_GetRetainCount((OSObject *)drv), 1, "detached from the provider");
    cr_assert(log_is("MyDriver.init,MyDriver.start,MyDriver.stop,"), "log: %s", event_log);
    OSObject_Release((OSObject *)drv);
    cr_assert(log_is("MyDriver.init,MyDriver.start,MyDriver.stop,MyDriver.free,"), "log: %s", event_log);
}

Test(runtime_service, stop_without_super_stays_terminating)
{
    IOService *drv = NULL;
    cr_assert_eq(IOService_Instantiate("TestStuck", NULL, &drv), kIOReturnSuccess);
    /* no provider: a stuck service attached to one would keep it alive (by design) */
    cr_assert_eq(IOService_HostStart(drv, NULL), kIOReturnSuccess);
    cr_assert_eq(IOService_Terminate(drv, 0), kIOReturnSuccess);
    rt_sleep_ms(100);
    cr_assert(log_is("Stuck.init,Stuck.start,Stuck.stop-without-super,"), "log: %s", event_log);
    cr_assert_eq(IOService_GetState(drv), kIOServiceStateTerminating, "stuck terminating, as on macOS");
    OSObject_Release((OSObject *)drv);
}

Test(runtime_service, start_failure_detaches)
{
    IOService *drv = NULL;
    uint32_t root_rc = OSObject_GetRetainCount((OSObject *)root);
    cr_assert_eq(IOService_Instantiate("TestFailing", NULL, &drv), kIOReturnSuccess);
    cr_assert_eq(IOService_HostStart(drv, root), kIOReturnNoResources);
    cr_assert_eq(IOService_GetState(drv), kIOServiceStateStartFailed);
    cr_assert_null(IOService_GetProvider(drv));
    cr_assert_eq(OSObject_GetRetainCount((OSObject *)root), root_rc);
    cr_assert_eq(OSObject_GetRetainCount((OSObject *)drv), 1);
    OSObject_Release((OSObject *)drv);
    cr_assert(log_is("Failing.init,Failing.start,Failing.free,"), "log: %s", event_log);
}

Test(runtime_service, instantiate_checks_the_class)
{
    IOService *s = NULL;
    cr_assert_eq(IOService_Instantiate("NoSuchDriver", NULL, &s), kIOReturnNotFound);
    cr_assert_eq(IOService_Instantiate("TestNotService", NULL, &s), kIOReturnBadArgument);
    cr_assert_eq(IOService_Instantiate("OSString", NULL, &s), kIOReturnBadArgument);
    cr_assert_null(s);
}

Test(runtime_service, properties_merge_and_flatten)
{
    OSDictionary *props = OSDictionary_WithCapacity(2);
    OSDictionary_SetStringValue(props, "IOClass", "IOUserService");
    OSDictionary_SetNumberValue(props, "idVendor", 0x5ac);
    IOService *drv = NULL;
    cr_assert_eq(IOService_Instantiate("TestMyDriver", props, &drv), kIOReturnSuccess);
    OSObject_Release((OSObject *)props);
    OSDictionary *mine = OSDictionary_WithCapacity(1);
    OSDictionary_SetNumberValue(mine, "MyCounter", 3);
    OSDictionary_SetNumberValue(mine, "idVendor", 1); /* the driver's value wins in the flat view */
    cr_assert_eq(IOService_SetProperties(drv, mine), kIOReturnSuccess);
    cr_assert_eq(IOService_SetProperties(drv, NULL), kIOReturnBadArgument);
    OSObject_Release((OSObject *)mine);
    OSDictionary *all = NULL;
    cr_assert_eq(IOService_CopyProperties(drv, &all), kIOReturnSuccess);
    uint64_t v = 0;
    cr_assert(OSString_IsEqualToCString(OSDictionary_GetString(all, "IOClass"), "IOUserService"));
    cr_assert(OSDictionary_GetNumberValue(all, "MyCounter", &v) && v == 3);
    cr_assert(OSDictionary_GetNumberValue(all, "idVendor", &v) && v == 1);
    OSObject_Release((OSObject *)all);
    OSObject_Release((OSObject *)drv);
}

Test(runtime_service, create_instantiates_attaches_and_terminates_children_first)
{
    OSDictionary *props = OSDictionary_WithCapacity(4), *child = OSDictionary_WithCapacity(1),
                 *noclass = OSDictionary_WithCapacity(1), *unknown = OSDictionary_WithCapacity(1);
    OSDictionary_SetStringValue(props, "CFBundleIdentifier", "com.example.driver");
    OSDictionary_SetStringValue(child, "IOUserClass", "TestChild");
    OSDictionary_SetStringValue(noclass, "Other", "x");
    OSDictionary_SetStringValue(unknown, "IOUserClass", "Nope");
    OSDictionary_SetObject(props, "ChildProperties", (OSObject *)child);
    OSDictionary_SetObject(props, "NoClass", (OSObject *)noclass);
    OSDictionary_SetObject(props, "Unknown", (OSObject *)unknown);
    OSDictionary_SetStringValue(props, "NotADict", "x");
    IOService *drv = NULL, *c = NULL;
    cr_assert_eq(IOService_Instantiate("TestMyDriver", props, &drv), kIOReturnSuccess);
    OSObject_Release((OSObject *)props);
    OSObject_Release((OSObject *)child);
    OSObject_Release((OSObject *)noclass);
    OSObject_Release((OSObject *)unknown);
    cr_assert_eq(IOService_HostStart(drv, root), kIOReturnSuccess);

    cr_assert_eq(IOService_Create(drv, root, "ChildProperties", &c), kIOReturnUnsupported, "provider must be self");
    cr_assert_eq(IOService_Create(drv, drv, "Missing", &c), kIOReturnBadArgument);
    cr_assert_eq(IOService_Create(drv, drv, "NotADict", &c), kIOReturnBadArgument);
    cr_assert_eq(IOService_Create(drv, drv, "NoClass", &c), kIOReturnBadArgument);
    cr_assert_eq(IOService_Create(drv, drv, "Unknown", &c), kIOReturnNotFound);
    cr_assert_null(c);
    cr_assert_eq(IOService_Create(drv, drv, "ChildProperties", &c), kIOReturnSuccess);
    cr_assert_eq(IOService_GetState(c), kIOServiceStateStarted);
    cr_assert_eq(IOService_GetProvider(c), drv);
    OSDictionary *cp = NULL;
    IOService_CopyProperties(c, &cp);
    cr_assert(OSString_IsEqualToCString(OSDictionary_GetString(cp, "CFBundleIdentifier"), "com.example.driver"),
              "CFBundleIdentifier is passed down");
    OSObject_Release((OSObject *)cp);

    /* a named queue of the provider is found from the child */
    IODispatchQueue *pq = NULL, *got = NULL;
    cr_assert_eq(IODispatchQueue_Create("ProviderQ", 0, 0, &pq), kIOReturnSuccess);
    cr_assert_eq(IOService_SetDispatchQueue(drv, "ProviderQ", pq), kIOReturnSuccess);
    cr_assert_eq(IOService_CopyDispatchQueue(c, "ProviderQ", &got), kIOReturnSuccess);
    cr_assert_eq(got, pq);
    OSObject_Release((OSObject *)got);
    OSObject_Release((OSObject *)pq);
    cr_assert_eq(IOService_CopyDispatchQueue(c, "Nope", &got), kIOReturnNotFound);

    cr_assert_eq(IOService_Terminate(drv, 0), kIOReturnSuccess);
    cr_assert(wait_state(drv, kIOServiceStateStopped));
    cr_assert_eq(IOService_GetState(c), kIOServiceStateStopped);
    cr_assert(log_is("MyDriver.init,MyDriver.start,Child.init,Child.start,Child.stop,MyDriver.stop,"),
              "clients stop first: %s", event_log);
    OSObject_Release((OSObject *)c);
    OSObject_Release((OSObject *)drv);
    cr_assert(log_is("MyDriver.init,MyDriver.start,Child.init,Child.start,Child.stop,MyDriver.stop,Child.free,"
                     "MyDriver.free,"),
              "log: %s", event_log);
}
