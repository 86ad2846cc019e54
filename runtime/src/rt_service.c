#include "rt_internal.h"

struct IOServicePrivate {
    pthread_mutex_t lock;
    OSDictionary *props;      /* registry properties (from the personality) */
    OSDictionary *user_props; /* set by the driver (IOUserServiceProperties) */
    IOService *provider;      /* retained from base Start to the end of Stop */
    IOService *attached_to;   /* the provider we are attached to (holds us in its clients) */
    IOService **clients; /* services attached to us, retained */
    size_t nclients, capclients;
    IOServiceState state;
    bool registered, stop_called, terminate_requested;
};

static bool service_init(OSObject *o)
{
    if (!OSObject_SuperInit(&IOService_Class, o))
        return false;
    IOService *s = (IOService *)o;
    struct IOServicePrivate *p = calloc(1, sizeof(*p));
    if (!p)
        return false;
    pthread_mutex_init(&p->lock, NULL);
    s->_priv = p;
    p->props = OSDictionary_WithCapacity(4);
    p->user_props = OSDictionary_WithCapacity(4);
    if (!p->props || !p->user_props)
        return false;
    /* CreateDefaultDispatchQueue: every service gets its own serial queue. */
    IODispatchQueue *q = NULL;
    char name[kIODispatchQueueNameLength];
    (void)rt_copy_name(name, sizeof(name), o->meta->name);
    if (IODispatchQueue_Create(name, 0, 0, &q) != kIOReturnSuccess)
        return false;
    kern_return_t r = OSObject_SetDispatchQueue(o, kIOServiceDefaultQueueName, q);
    OSObject_Release((OSObject *)q);
    return r == kIOReturnSuccess;
}

static void service_free(OSObject *o)
{
    IOService *s = (IOService *)o;
    struct IOServicePrivate *p = s->_priv;
    if (p) {
        for (size_t i = 0; i < p->nclients; i++)
            OSObject_Release(&p->clients[i]->object);
        free(p->clients);
        OSObject_Release((OSObject *)p->provider);
        OSObject_Release((OSObject *)p->props);
        OSObject_Release((OSObject *)p->user_props);
        pthread_mutex_destroy(&p->lock);
        free(p);
    }
    OSObject_SuperFree(&IOService_Class, o);
}

static kern_return_t base_start(IOService *self, IOService *provider)
{
    struct IOServicePrivate *p = self->_priv;
    pthread_mutex_lock(&p->lock);
    IOService *old = p->provider;
    p->provider = provider ? (IOService *)OSObject_Retain(&provider->object) : NULL;
    pthread_mutex_unlock(&p->lock);
    if (old)
        OSObject_Release(&old->object);
    return kIOReturnSuccess;
}

static kern_return_t base_stop(IOService *self, IOService *provider)
{
    (void)provider;
    struct IOServicePrivate *p = self->_priv;
    pthread_mutex_lock(&p->lock);
    p->stop_called = true;
    pthread_mutex_unlock(&p->lock);
    return kIOReturnSuccess;
}

static kern_return_t base_new_user_client(IOService *self, uint32_t type, IOUserClient **userClient)
{
    (void)type;
    if (!userClient)
        return kIOReturnBadArgument;
    struct IOServicePrivate *p = self->_priv;
    pthread_mutex_lock(&p->lock);
    bool have = OSDictionary_GetObject(p->props, "UserClientProperties") ||
                OSDictionary_GetObject(p->user_props, "UserClientProperties");
    pthread_mutex_unlock(&p->lock);
    if (!have)
        return kIOReturnError;
    IOService *svc = NULL;
    kern_return_t r = IOService_Create(self, self, "UserClientProperties", &svc);
    if (r != kIOReturnSuccess)
        return r;
    IOUserClient *uc = OSDynamicCast(IOUserClient, svc);
    if (!uc) {
        (void)IOService_Terminate(svc, 0);
        OSObject_Release(&svc->object);
        return kIOReturnError;
    }
    *userClient = uc;
    return kIOReturnSuccess;
}

static const OSMethod service_methods[] = {
    OS_METHOD(IOService_Start_ID, base_start),
    OS_METHOD(IOService_Stop_ID, base_stop),
    OS_METHOD(IOService_NewUserClient_ID, base_new_user_client),
};

const OSClass IOService_Class = {
    .name = "IOService",
    .superClass = &OSObject_Class,
    .instanceSize = sizeof(IOService),
    .init = service_init,
    .free = service_free,
    .methods = service_methods,
    .methodCount = DK_ARRAY_SIZE(service_methods),
};

static bool is_service(IOService *s)
{
    return s && OSObject_IsKindOf(&s->object, &IOService_Class) && s->_priv;
}

/* ---- virtual call stubs ---- */

#define VCALL(cls, obj, id, Fn, ...)                                                               \
    do {                                                                                           \
        const OSMethod *m_ = OSClass_FindMethod((cls), (id));                                      \
        if (!m_)                                                                                   \
            return kIOReturnUnsupported;                                                           \
        return ((Fn)m_->function)(__VA_ARGS__);                                                    \
    } while (0)

kern_return_t IOService_Start(IOService *self, IOService *provider)
{
    if (!is_service(self))
        return kIOReturnBadArgument;
    VCALL(self->object.meta, self, IOService_Start_ID, IOService_Start_Fn, self, provider);
}
kern_return_t IOService_Start_Super(const OSClass *cls, IOService *self, IOService *provider)
{
    if (!is_service(self) || !cls)
        return kIOReturnBadArgument;
    VCALL(cls->superClass, self, IOService_Start_ID, IOService_Start_Fn, self, provider);
}
kern_return_t IOService_Stop(IOService *self, IOService *provider)
{
    if (!is_service(self))
        return kIOReturnBadArgument;
    VCALL(self->object.meta, self, IOService_Stop_ID, IOService_Stop_Fn, self, provider);
}
kern_return_t IOService_Stop_Super(const OSClass *cls, IOService *self, IOService *provider)
{
    if (!is_service(self) || !cls)
        return kIOReturnBadArgument;
    VCALL(cls->superClass, self, IOService_Stop_ID, IOService_Stop_Fn, self, provider);
}
kern_return_t IOService_NewUserClient(IOService *self, uint32_t type, IOUserClient **userClient)
{
    if (!is_service(self))
        return kIOReturnBadArgument;
    VCALL(self->object.meta, self, IOService_NewUserClient_ID, IOService_NewUserClient_Fn, self, type,
          userClient);
}
kern_return_t IOService_NewUserClient_Super(const OSClass *cls, IOService *self, uint32_t type,
                                            IOUserClient **userClient)
{
    if (!is_service(self) || !cls)
        return kIOReturnBadArgument;
    VCALL(cls->superClass, self, IOService_NewUserClient_ID, IOService_NewUserClient_Fn, self, type,
          userClient);
}

/* ---- plain calls ---- */

kern_return_t IOService_RegisterService(IOService *self)
{
    if (!is_service(self))
        return kIOReturnBadArgument;
    pthread_mutex_lock(&self->_priv->lock);
    self->_priv->registered = true;
    pthread_mutex_unlock(&self->_priv->lock);
    return kIOReturnSuccess;
}

bool IOService_IsRegistered(IOService *self)
{
    if (!is_service(self))
        return false;
    pthread_mutex_lock(&self->_priv->lock);
    bool r = self->_priv->registered;
    pthread_mutex_unlock(&self->_priv->lock);
    return r;
}

kern_return_t IOService_SetProperties(IOService *self, OSDictionary *properties)
{
    if (!is_service(self) || !properties)
        return kIOReturnBadArgument;
    pthread_mutex_lock(&self->_priv->lock);
    bool ok = OSDictionary_Merge(self->_priv->user_props, properties);
    pthread_mutex_unlock(&self->_priv->lock);
    return ok ? kIOReturnSuccess : kIOReturnNoMemory;
}

kern_return_t IOService_CopyProperties(IOService *self, OSDictionary **properties)
{
    if (!is_service(self) || !properties)
        return kIOReturnBadArgument;
    pthread_mutex_lock(&self->_priv->lock);
    OSDictionary *d = OSDictionary_Copy(self->_priv->props);
    bool ok = d && OSDictionary_Merge(d, self->_priv->user_props);
    pthread_mutex_unlock(&self->_priv->lock);
    if (!ok) {
        OSObject_Release((OSObject *)d);
        return kIOReturnNoMemory;
    }
    *properties = d;
    return kIOReturnSuccess;
}

IOService *IOService_GetProvider(IOService *self)
{
    if (!is_service(self))
        return NULL;
    pthread_mutex_lock(&self->_priv->lock);
    IOService *p = self->_priv->provider;
    pthread_mutex_unlock(&self->_priv->lock);
    return p;
}

IODispatchQueue *IOService_GetDispatchQueue(IOService *self)
{
    return self ? OSObject_GetQueueForMethod(&self->object, 0 /* no method: the default queue */) : NULL;
}

kern_return_t IOService_SetDispatchQueue(IOService *self, const char *name, IODispatchQueue *queue)
{
    if (!is_service(self))
        return kIOReturnBadArgument;
    return OSObject_SetDispatchQueue(&self->object, name, queue);
}

kern_return_t IOService_CopyDispatchQueue(IOService *self, const char *name, IODispatchQueue **queue)
{
    if (!is_service(self))
        return kIOReturnBadArgument;
    kern_return_t r = OSObject_CopyDispatchQueue(&self->object, name, queue);
    if (r == kIOReturnNotFound) { /* DriverKit falls back to the provider's queues */
        IOService *prov = IOService_GetProvider(self);
        if (prov && prov != self)
            r = OSObject_CopyDispatchQueue(&prov->object, name, queue);
    }
    return r;
}

IOServiceState IOService_GetState(IOService *self)
{
    if (!is_service(self))
        return kIOServiceStateInitialized;
    pthread_mutex_lock(&self->_priv->lock);
    IOServiceState s = self->_priv->state;
    pthread_mutex_unlock(&self->_priv->lock);
    return s;
}

/* ---- attach / detach ---- */

static kern_return_t attach(IOService *child, IOService *provider)
{
    struct IOServicePrivate *pp = provider->_priv;
    pthread_mutex_lock(&pp->lock);
    if (pp->nclients == pp->capclients) {
        size_t ncap = pp->capclients ? pp->capclients * 2 : 4;
        IOService **n = realloc(pp->clients, ncap * sizeof(*n));
        if (!n) {
            pthread_mutex_unlock(&pp->lock);
            return kIOReturnNoMemory;
        }
        pp->clients = n;
        pp->capclients = ncap;
    }
    pp->clients[pp->nclients++] = (IOService *)OSObject_Retain(&child->object);
    pthread_mutex_unlock(&pp->lock);
    pthread_mutex_lock(&child->_priv->lock);
    child->_priv->attached_to = provider; /* weak: the provider outlives its attached clients */
    pthread_mutex_unlock(&child->_priv->lock);
    return kIOReturnSuccess;
}

static void detach(IOService *child)
{
    pthread_mutex_lock(&child->_priv->lock);
    IOService *provider = child->_priv->attached_to;
    child->_priv->attached_to = NULL;
    pthread_mutex_unlock(&child->_priv->lock);
    if (!provider)
        return;
    struct IOServicePrivate *pp = provider->_priv;
    bool found = false;
    pthread_mutex_lock(&pp->lock);
    for (size_t i = 0; i < pp->nclients; i++)
        if (pp->clients[i] == child) {
            memmove(&pp->clients[i], &pp->clients[i + 1], (pp->nclients - i - 1) * sizeof(pp->clients[0]));
            pp->nclients--;
            found = true;
            break;
        }
    pthread_mutex_unlock(&pp->lock);
    if (found)
        OSObject_Release(&child->object);
}

/* ---- host side: instantiate, start ---- */

kern_return_t IOService_Instantiate(const char *className, OSDictionary *properties, IOService **result)
{
    if (!className || !result)
        return kIOReturnBadArgument;
    const OSClass *cls = OSClass_Find(className);
    if (!cls)
        return kIOReturnNotFound;
    for (const OSClass *c = cls; c != &IOService_Class; c = c->superClass)
        if (!c)
            return kIOReturnBadArgument;
    OSObject *o = NULL;
    kern_return_t r = OSObject_Alloc(cls, &o);
    if (r != kIOReturnSuccess)
        return r;
    IOService *s = (IOService *)o;
    if (properties && !OSDictionary_Merge(s->_priv->props, properties)) {
        OSObject_Release(o);
        return kIOReturnNoMemory;
    }
    *result = s;
    return kIOReturnSuccess;
}

struct start_call {
    IOService *service, *provider;
    kern_return_t ret;
};

static void start_on_queue(void *arg)
{
    struct start_call *c = arg;
    c->ret = IOService_Start(c->service, c->provider);
}

kern_return_t IOService_HostStart(IOService *service, IOService *provider)
{
    if (!is_service(service) || (provider && !is_service(provider)) || service == provider)
        return kIOReturnBadArgument;
    if (IOService_GetState(service) != kIOServiceStateInitialized)
        return kIOReturnBadArgument;
    IODispatchQueue *q = rt_object_copy_queue_for_method(&service->object, IOService_Start_ID);
    if (!q)
        return kIOReturnNotReady;
    kern_return_t r = kIOReturnSuccess;
    if (provider)
        r = attach(service, provider);
    struct start_call c = { service, provider, kIOReturnError };
    if (r == kIOReturnSuccess)
        r = rt_queue_run_sync(q, start_on_queue, &c);
    if (r == kIOReturnSuccess)
        r = c.ret;
    OSObject_Release((OSObject *)q);

    struct IOServicePrivate *p = service->_priv;
    IOService *drop = NULL;
    pthread_mutex_lock(&p->lock);
    if (r == kIOReturnSuccess) {
        p->state = kIOServiceStateStarted;
    } else {
        p->state = kIOServiceStateStartFailed;
        drop = p->provider;
        p->provider = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (r != kIOReturnSuccess) {
        OSObject_Release((OSObject *)drop);
        detach(service);
    }
    return r;
}

kern_return_t IOService_Create(IOService *self, IOService *provider, const char *propertiesKey,
                               IOService **result)
{
    if (!is_service(self) || !propertiesKey || !result)
        return kIOReturnBadArgument;
    if (provider != self)
        return kIOReturnUnsupported;
    OSDictionary *all = NULL;
    kern_return_t r = IOService_CopyProperties(self, &all);
    if (r != kIOReturnSuccess)
        return r;
    OSDictionary *tmpl = OSDictionary_GetDictionary(all, propertiesKey);
    OSString *cls = tmpl ? OSDictionary_GetString(tmpl, "IOUserClass") : NULL;
    OSDictionary *props = cls ? OSDictionary_Copy(tmpl) : NULL;
    IOService *svc = NULL;
    if (!cls) {
        r = kIOReturnBadArgument;
        goto out;
    }
    if (!props) {
        r = kIOReturnNoMemory;
        goto out;
    }
    static const char *const inherited[] = { "CFBundleIdentifier", "IOUserServerName" };
    for (size_t i = 0; i < DK_ARRAY_SIZE(inherited); i++) {
        OSObject *v = OSDictionary_GetObject(all, inherited[i]);
        if (v && !OSDictionary_GetObject(props, inherited[i]) && !OSDictionary_SetObject(props, inherited[i], v)) {
            r = kIOReturnNoMemory;
            goto out;
        }
    }
    r = IOService_Instantiate(OSString_GetCStringNoCopy(cls), props, &svc);
    if (r != kIOReturnSuccess)
        goto out;
    r = IOService_HostStart(svc, self);
    if (r != kIOReturnSuccess)
        goto out;
    *result = svc;
    svc = NULL;
out:
    OSObject_Release((OSObject *)svc);
    OSObject_Release((OSObject *)props);
    OSObject_Release((OSObject *)all);
    return r;
}

struct nuc_call {
    IOService *service;
    uint32_t type;
    IOUserClient *uc;
    kern_return_t ret;
};

static void nuc_on_queue(void *arg)
{
    struct nuc_call *c = arg;
    c->ret = IOService_NewUserClient(c->service, c->type, &c->uc);
}

kern_return_t IOService_HostNewUserClient(IOService *service, uint32_t type, IOUserClient **userClient)
{
    if (!is_service(service) || !userClient)
        return kIOReturnBadArgument;
    if (IOService_GetState(service) != kIOServiceStateStarted)
        return kIOReturnNotReady;
    IODispatchQueue *q = rt_object_copy_queue_for_method(&service->object, IOService_NewUserClient_ID);
    if (!q)
        return kIOReturnNotReady;
    struct nuc_call c = { service, type, NULL, kIOReturnError };
    kern_return_t r = rt_queue_run_sync(q, nuc_on_queue, &c);
    OSObject_Release((OSObject *)q);
    if (r == kIOReturnSuccess)
        r = c.ret;
    if (r == kIOReturnSuccess && !c.uc)
        r = kIOReturnError;
    if (r == kIOReturnSuccess)
        *userClient = c.uc;
    else
        OSObject_Release((OSObject *)c.uc);
    return r;
}

/* ---- termination ---- */

static void terminate_now(void *arg);

/* Terminate `s` and wait: its clients first (each on its own queue), then its own Stop. */
static void terminate_sync(IOService *s)
{
    IODispatchQueue *q = rt_object_copy_queue_for_method(&s->object, IOService_Stop_ID);
    if (!q || rt_queue_run_sync(q, terminate_now, s) != kIOReturnSuccess)
        terminate_now(s); /* the queue is gone: run the sequence here */
    OSObject_Release((OSObject *)q);
}

static void terminate_now(void *arg)
{
    IOService *s = arg;
    struct IOServicePrivate *p = s->_priv;
    for (;;) { /* clients first, newest first */
        pthread_mutex_lock(&p->lock);
        IOService *c = p->nclients ? (IOService *)OSObject_Retain(&p->clients[p->nclients - 1]->object) : NULL;
        pthread_mutex_unlock(&p->lock);
        if (!c)
            break;
        pthread_mutex_lock(&c->_priv->lock);
        bool started = c->_priv->state == kIOServiceStateStarted || c->_priv->state == kIOServiceStateTerminating;
        c->_priv->terminate_requested = true;
        if (started)
            c->_priv->state = kIOServiceStateTerminating;
        pthread_mutex_unlock(&c->_priv->lock);
        if (started)
            terminate_sync(c);
        detach(c); /* a client that did not finish Stop is still detached from us */
        OSObject_Release(&c->object);
    }
    pthread_mutex_lock(&p->lock);
    bool already = p->state == kIOServiceStateStopped;
    IOService *provider = p->provider;
    pthread_mutex_unlock(&p->lock);
    if (already)
        return;
    (void)IOService_Stop(s, provider);
    pthread_mutex_lock(&p->lock);
    bool done = p->stop_called;
    if (done) {
        p->state = kIOServiceStateStopped;
        p->provider = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (done) {
        OSObject_Release((OSObject *)provider);
        detach(s);
    }
}

static void terminate_async(void *arg)
{
    IOService *s = arg;
    terminate_now(s);
    OSObject_Release(&s->object);
}

kern_return_t IOService_Terminate(IOService *self, uint64_t options)
{
    if (!is_service(self) || options != 0)
        return kIOReturnBadArgument;
    struct IOServicePrivate *p = self->_priv;
    pthread_mutex_lock(&p->lock);
    if (p->terminate_requested) {
        pthread_mutex_unlock(&p->lock);
        return kIOReturnSuccess;
    }
    if (p->state != kIOServiceStateStarted) {
        pthread_mutex_unlock(&p->lock);
        return kIOReturnNotReady;
    }
    p->terminate_requested = true;
    p->state = kIOServiceStateTerminating;
    pthread_mutex_unlock(&p->lock);
    IODispatchQueue *q = rt_object_copy_queue_for_method(&self->object, IOService_Stop_ID);
    OSObject_Retain(&self->object);
    kern_return_t r = q ? IODispatchQueue_DispatchAsync(q, terminate_async, self) : kIOReturnNotReady;
    OSObject_Release((OSObject *)q);
    if (r != kIOReturnSuccess)
        terminate_async(self); /* no queue to run on: terminate here */
    return kIOReturnSuccess;
}
