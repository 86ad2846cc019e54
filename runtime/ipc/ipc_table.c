/* The table of object ids a peer may name: open addressing on the id (linear probing,
 * tombstones), guarded by a mutex because the IPC reader and the method queues both use it. */
#include "rt_internal.h"

#include <sysext/driverkit/DKIPC.h>

#define TOMBSTONE ((OSObject *)(uintptr_t)1)

struct DKIPCObjectTable {
    pthread_mutex_t lock;
    uint64_t *ids;
    OSObject **objs; /* NULL: empty slot, TOMBSTONE: removed */
    size_t cap;      /* power of two */
    size_t count, used; /* live entries; live + tombstones */
};

static size_t slot_of(uint64_t id, size_t cap)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdull;
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

DKIPCObjectTable *DKIPCObjectTable_Create(void)
{
    DKIPCObjectTable *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cap = 16;
    t->ids = calloc(t->cap, sizeof(*t->ids));
    t->objs = calloc(t->cap, sizeof(*t->objs));
    if (!t->ids || !t->objs) {
        free(t->ids);
        free(t->objs);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void DKIPCObjectTable_Free(DKIPCObjectTable *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->cap; i++)
        if (t->objs[i] && t->objs[i] != TOMBSTONE)
            OSObject_Release(t->objs[i]);
    free(t->ids);
    free(t->objs);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* Index of `id`, or SIZE_MAX. Lock held. */
static size_t find_locked(const DKIPCObjectTable *t, uint64_t id)
{
    size_t i = slot_of(id, t->cap);
    for (size_t n = 0; n < t->cap; n++, i = (i + 1) & (t->cap - 1)) {
        if (!t->objs[i])
            return SIZE_MAX;
        if (t->objs[i] != TOMBSTONE && t->ids[i] == id)
            return i;
    }
    return SIZE_MAX;
}

static void put_locked(DKIPCObjectTable *t, uint64_t id, OSObject *obj)
{
    size_t i = slot_of(id, t->cap);
    while (t->objs[i] && t->objs[i] != TOMBSTONE)
        i = (i + 1) & (t->cap - 1);
    if (!t->objs[i])
        t->used++;
    t->ids[i] = id;
    t->objs[i] = obj;
    t->count++;
}

static kern_return_t grow_locked(DKIPCObjectTable *t)
{
    size_t ncap = t->cap;
    if ((t->count + 1) * 2 > t->cap) {
        if (DK_MUL_OVERFLOW(t->cap, (size_t)2, &ncap))
            return kIOReturnNoMemory;
    }
    uint64_t *ids = calloc(ncap, sizeof(*ids));
    OSObject **objs = calloc(ncap, sizeof(*objs));
    if (!ids || !objs) {
        free(ids);
        free(objs);
        return kIOReturnNoMemory;
    }
    uint64_t *oids = t->ids;
    OSObject **oobjs = t->objs;
    size_t ocap = t->cap;
    t->ids = ids;
    t->objs = objs;
    t->cap = ncap;
    t->count = t->used = 0;
    for (size_t i = 0; i < ocap; i++)
        if (oobjs[i] && oobjs[i] != TOMBSTONE)
            put_locked(t, oids[i], oobjs[i]);
    free(oids);
    free(oobjs);
    return kIOReturnSuccess;
}

kern_return_t DKIPCObjectTable_Add(DKIPCObjectTable *t, uint64_t id, OSObject *obj)
{
    if (!t || !obj || id == 0)
        return kIOReturnBadArgument;
    kern_return_t r = kIOReturnSuccess;
    pthread_mutex_lock(&t->lock);
    if (find_locked(t, id) != SIZE_MAX) {
        r = kIOReturnPortExists;
        goto out;
    }
    if ((t->used + 1) * 4 > t->cap * 3) { /* keep load (with tombstones) under 3/4 */
        r = grow_locked(t);
        if (r != kIOReturnSuccess)
            goto out;
    }
    put_locked(t, id, OSObject_Retain(obj));
out:
    pthread_mutex_unlock(&t->lock);
    return r;
}

kern_return_t DKIPCObjectTable_Remove(DKIPCObjectTable *t, uint64_t id)
{
    if (!t)
        return kIOReturnBadArgument;
    OSObject *obj = NULL;
    pthread_mutex_lock(&t->lock);
    size_t i = find_locked(t, id);
    if (i != SIZE_MAX) {
        obj = t->objs[i];
        t->objs[i] = TOMBSTONE;
        t->count--;
    }
    pthread_mutex_unlock(&t->lock);
    if (!obj)
        return kIOReturnNotFound;
    OSObject_Release(obj);
    return kIOReturnSuccess;
}

OSObject *DKIPCObjectTable_Lookup(DKIPCObjectTable *t, uint64_t id)
{
    if (!t || id == 0)
        return NULL;
    pthread_mutex_lock(&t->lock);
    size_t i = find_locked(t, id);
    OSObject *obj = i == SIZE_MAX ? NULL : t->objs[i];
    pthread_mutex_unlock(&t->lock);
    return obj;
}

size_t DKIPCObjectTable_GetCount(DKIPCObjectTable *t)
{
    if (!t)
        return 0;
    pthread_mutex_lock(&t->lock);
    size_t n = t->count;
    pthread_mutex_unlock(&t->lock);
    return n;
}
