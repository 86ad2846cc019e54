#include "rt_internal.h"

static uint64_t next_object_id = 1;

static bool obj_init(OSObject *self)
{
    (void)self;
    return true;
}

static void obj_free(OSObject *self)
{
    rt_object_free_queues(self);
}

const OSClass OSObject_Class = {
    .name = "OSObject",
    .superClass = NULL,
    .instanceSize = sizeof(OSObject),
    .init = obj_init,
    .free = obj_free,
};

static bool class_is_rooted(const OSClass *cls)
{
    size_t depth = 0;
    for (const OSClass *c = cls; c; c = c->superClass) {
        if (++depth > 64)
            return false;
        if (c == &OSObject_Class)
            return true;
        if (!c->superClass || c->instanceSize < c->superClass->instanceSize)
            return false;
    }
    return false;
}

static bool (*find_init(const OSClass *from))(OSObject *)
{
    for (const OSClass *c = from; c; c = c->superClass)
        if (c->init)
            return c->init;
    return NULL;
}

static void (*find_free(const OSClass *from))(OSObject *)
{
    for (const OSClass *c = from; c; c = c->superClass)
        if (c->free)
            return c->free;
    return NULL;
}

kern_return_t OSObject_Alloc(const OSClass *cls, OSObject **out)
{
    if (!cls || !out || !class_is_rooted(cls))
        return kIOReturnBadArgument;
    OSObject *obj = calloc(1, cls->instanceSize);
    if (!obj)
        return kIOReturnNoMemory;
    obj->meta = cls;
    obj->_refcount = 1;
    obj->_id = __atomic_fetch_add(&next_object_id, 1, __ATOMIC_RELAXED);
    bool (*init)(OSObject *) = find_init(cls);
    if (init && !init(obj)) {
        OSObject_Release(obj);
        return kIOReturnError;
    }
    *out = obj;
    return kIOReturnSuccess;
}

OSObject *OSObject_Retain(OSObject *obj)
{
    if (obj && !(obj->_flags & RT_OBJ_IMMORTAL))
        __atomic_fetch_add(&obj->_refcount, 1, __ATOMIC_RELAXED);
    return obj;
}

void OSObject_Release(OSObject *obj)
{
    if (!obj || (obj->_flags & RT_OBJ_IMMORTAL))
        return;
    uint32_t old = __atomic_fetch_sub(&obj->_refcount, 1, __ATOMIC_ACQ_REL);
    if (old != 1)
        return;
    void (*fr)(OSObject *) = find_free(obj->meta);
    if (fr)
        fr(obj);
    free(obj);
}

uint32_t OSObject_GetRetainCount(const OSObject *obj)
{
    return obj ? __atomic_load_n(&obj->_refcount, __ATOMIC_RELAXED) : 0;
}

uint64_t OSObject_GetID(const OSObject *obj)
{
    return obj ? obj->_id : 0;
}

const OSClass *OSObject_GetClass(const OSObject *obj)
{
    return obj ? obj->meta : NULL;
}

const char *OSObject_GetClassName(const OSObject *obj)
{
    return obj ? obj->meta->name : "(null)";
}

bool OSObject_IsKindOf(const OSObject *obj, const OSClass *cls)
{
    if (!obj || !cls)
        return false;
    for (const OSClass *c = obj->meta; c; c = c->superClass)
        if (c == cls)
            return true;
    return false;
}

OSObject *OSObject_DynamicCast(OSObject *obj, const OSClass *cls)
{
    return OSObject_IsKindOf(obj, cls) ? obj : NULL;
}

bool OSObject_SuperInit(const OSClass *cls, OSObject *self)
{
    if (!cls || !self)
        return false;
    bool (*init)(OSObject *) = find_init(cls->superClass);
    return init ? init(self) : true;
}

void OSObject_SuperFree(const OSClass *cls, OSObject *self)
{
    if (!cls || !self)
        return;
    void (*fr)(OSObject *) = find_free(cls->superClass);
    if (fr)
        fr(self);
}

const OSMethod *OSClass_FindMethod(const OSClass *cls, uint64_t id)
{
    for (const OSClass *c = cls; c; c = c->superClass)
        for (size_t i = 0; c->methods && i < c->methodCount; i++)
            if (c->methods[i].id == id && c->methods[i].function)
                return &c->methods[i];
    return NULL;
}

const OSMethod *OSClass_FindSuperMethod(const OSClass *cls, uint64_t id)
{
    return cls ? OSClass_FindMethod(cls->superClass, id) : NULL;
}

/* ---- class registry ---- */

#define RT_MAX_CLASSES 256
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static const OSClass *registry[RT_MAX_CLASSES];
static size_t registry_count;

static const OSClass *const builtin_classes[] = {
    &OSObject_Class, &OSString_Class, &OSNumber_Class, &OSData_Class, &OSBoolean_Class,
    &OSArray_Class, &OSDictionary_Class, &IODispatchQueue_Class, &OSAction_Class,
    &IOService_Class, &IOUserClient_Class, &IOTimerDispatchSource_Class,
    &IOInterruptDispatchSource_Class, &IOMemoryDescriptor_Class, &IOBufferMemoryDescriptor_Class,
    &IOMemoryMap_Class, &IODataQueueDispatchSource_Class,
};

static const OSClass *find_locked(const char *name)
{
    for (size_t i = 0; i < DK_ARRAY_SIZE(builtin_classes); i++)
        if (strcmp(builtin_classes[i]->name, name) == 0)
            return builtin_classes[i];
    for (size_t i = 0; i < registry_count; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

kern_return_t OSClass_Register(const OSClass *cls)
{
    if (!cls || !cls->name || !cls->name[0] || !class_is_rooted(cls))
        return kIOReturnBadArgument;
    kern_return_t ret = kIOReturnSuccess;
    pthread_mutex_lock(&registry_lock);
    const OSClass *have = find_locked(cls->name);
    if (have)
        ret = have == cls ? kIOReturnSuccess : kIOReturnExclusiveAccess;
    else if (registry_count == RT_MAX_CLASSES)
        ret = kIOReturnNoResources;
    else
        registry[registry_count++] = cls;
    pthread_mutex_unlock(&registry_lock);
    return ret;
}

const OSClass *OSClass_Find(const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&registry_lock);
    const OSClass *c = find_locked(name);
    pthread_mutex_unlock(&registry_lock);
    return c;
}

/* ---- named queues ---- */

#define RT_MAX_NAMED_QUEUES 16
struct rt_named_queues {
    size_t count;
    struct {
        char name[kIODispatchQueueNameLength];
        IODispatchQueue *queue;
    } e[RT_MAX_NAMED_QUEUES];
};

/* One lock for every object's table: the tables change rarely (at init and Start). */
static pthread_mutex_t queues_lock = PTHREAD_MUTEX_INITIALIZER;

kern_return_t OSObject_SetDispatchQueue(OSObject *obj, const char *name, IODispatchQueue *queue)
{
    if (!obj || !name || !name[0] || strlen(name) >= kIODispatchQueueNameLength)
        return kIOReturnBadArgument;
    IODispatchQueue *old = NULL;
    kern_return_t ret = kIOReturnSuccess;
    pthread_mutex_lock(&queues_lock);
    struct rt_named_queues *t = obj->_queues;
    if (!t && queue) {
        t = calloc(1, sizeof(*t));
        if (!t) {
            ret = kIOReturnNoMemory;
            goto out;
        }
        obj->_queues = t;
    }
    if (!t)
        goto out;
    size_t i;
    for (i = 0; i < t->count; i++)
        if (strcmp(t->e[i].name, name) == 0)
            break;
    if (i < t->count) {
        old = t->e[i].queue;
        if (queue) {
            t->e[i].queue = (IODispatchQueue *)OSObject_Retain((OSObject *)queue);
        } else {
            t->e[i] = t->e[t->count - 1];
            t->count--;
        }
    } else if (queue) {
        if (t->count == RT_MAX_NAMED_QUEUES) {
            ret = kIOReturnNoResources;
            goto out;
        }
        (void)rt_copy_name(t->e[t->count].name, sizeof(t->e[t->count].name), name);
        t->e[t->count].queue = (IODispatchQueue *)OSObject_Retain((OSObject *)queue);
        t->count++;
    }
out:
    pthread_mutex_unlock(&queues_lock);
    OSObject_Release((OSObject *)old);
    return ret;
}

static IODispatchQueue *get_queue_locked(OSObject *obj, const char *name)
{
    struct rt_named_queues *t = obj->_queues;
    for (size_t i = 0; t && i < t->count; i++)
        if (strcmp(t->e[i].name, name) == 0)
            return t->e[i].queue;
    return NULL;
}

kern_return_t OSObject_CopyDispatchQueue(OSObject *obj, const char *name, IODispatchQueue **queue)
{
    if (!obj || !name || !queue)
        return kIOReturnBadArgument;
    pthread_mutex_lock(&queues_lock);
    IODispatchQueue *q = get_queue_locked(obj, name);
    OSObject_Retain((OSObject *)q);
    pthread_mutex_unlock(&queues_lock);
    if (!q)
        return kIOReturnNotFound;
    *queue = q;
    return kIOReturnSuccess;
}

IODispatchQueue *rt_object_copy_queue_for_method(OSObject *obj, uint64_t methodID)
{
    if (!obj)
        return NULL;
    /* QUEUENAME belongs to the method's declaration: an override without one inherits it. */
    const char *qname = NULL;
    for (const OSClass *c = obj->meta; c && !qname; c = c->superClass)
        for (size_t i = 0; c->methods && i < c->methodCount; i++)
            if (c->methods[i].id == methodID && c->methods[i].queueName) {
                qname = c->methods[i].queueName;
                break;
            }
    pthread_mutex_lock(&queues_lock);
    IODispatchQueue *q = NULL;
    if (qname)
        q = get_queue_locked(obj, qname);
    if (!q)
        q = get_queue_locked(obj, kIOServiceDefaultQueueName);
    OSObject_Retain((OSObject *)q);
    pthread_mutex_unlock(&queues_lock);
    return q;
}

IODispatchQueue *OSObject_GetQueueForMethod(OSObject *obj, uint64_t methodID)
{
    IODispatchQueue *q = rt_object_copy_queue_for_method(obj, methodID);
    OSObject_Release((OSObject *)q); /* +0: the object's table still holds it */
    return q;
}

struct method_call {
    OSObject *obj;
    OSMethodFunction impl;
    OSMethodCaller caller;
    void *ctx;
};

static void method_on_queue(void *arg)
{
    struct method_call *c = arg;
    c->caller(c->obj, c->impl, c->ctx);
}

kern_return_t OSObject_DispatchMethod(OSObject *obj, uint64_t methodID, OSMethodCaller caller, void *context)
{
    if (!obj || !caller)
        return kIOReturnBadArgument;
    const OSMethod *m = OSClass_FindMethod(obj->meta, methodID);
    if (!m)
        return kIOReturnUnsupported;
    IODispatchQueue *q = rt_object_copy_queue_for_method(obj, methodID);
    if (!q)
        return kIOReturnNotReady;
    struct method_call c = { obj, m->function, caller, context };
    kern_return_t r = IODispatchQueue_DispatchSync(q, method_on_queue, &c);
    OSObject_Release((OSObject *)q);
    return r;
}

void rt_object_free_queues(OSObject *obj)
{
    pthread_mutex_lock(&queues_lock);
    struct rt_named_queues *t = obj->_queues;
    obj->_queues = NULL;
    pthread_mutex_unlock(&queues_lock);
    for (size_t i = 0; t && i < t->count; i++)
        OSObject_Release((OSObject *)t->e[i].queue);
    free(t);
}

/* ---- small helpers ---- */

bool rt_copy_name(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        if (cap) {
            memcpy(dst, src, cap - 1);
            dst[cap - 1] = '\0';
        }
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}

uint64_t rt_now_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool rt_clock_from_options(uint64_t options, clockid_t *out)
{
    switch (options & 0xff) {
    case kIOTimerClockUptimeRaw:
    case kIOTimerClockMachAbsoluteTime:
        *out = CLOCK_MONOTONIC;
        return true;
    case kIOTimerClockMonotonicRaw:
    case kIOTimerClockMachContinuousTime:
        *out = CLOCK_BOOTTIME;
        return true;
    case kIOTimerClockRealTime:
        *out = CLOCK_REALTIME;
        return true;
    default:
        return false;
    }
}
