#include "rt_internal.h"

struct OSString {
    OSObject object;
    char *str;
    size_t len;
};
struct OSNumber {
    OSObject object;
    uint64_t value;
    size_t bits;
};
struct OSData {
    OSObject object;
    void *bytes;
    size_t len;
};
struct OSBoolean {
    OSObject object;
    bool value;
};
struct OSArray {
    OSObject object;
    OSObject **items;
    size_t count, cap;
};
struct dict_entry {
    char *key;
    OSObject *value;
};
struct OSDictionary {
    OSObject object;
    struct dict_entry *e;
    size_t count, cap;
};

static void string_free(OSObject *o)
{
    free(((OSString *)o)->str);
    OSObject_SuperFree(&OSString_Class, o);
}
static void data_free(OSObject *o)
{
    free(((OSData *)o)->bytes);
    OSObject_SuperFree(&OSData_Class, o);
}
static void array_free(OSObject *o)
{
    OSArray *a = (OSArray *)o;
    for (size_t i = 0; i < a->count; i++)
        OSObject_Release(a->items[i]);
    free(a->items);
    OSObject_SuperFree(&OSArray_Class, o);
}
static void dict_free(OSObject *o)
{
    OSDictionary *d = (OSDictionary *)o;
    for (size_t i = 0; i < d->count; i++) {
        free(d->e[i].key);
        OSObject_Release(d->e[i].value);
    }
    free(d->e);
    OSObject_SuperFree(&OSDictionary_Class, o);
}

const OSClass OSString_Class = { "OSString", &OSObject_Class, sizeof(OSString), NULL, string_free, NULL, 0 };
const OSClass OSNumber_Class = { "OSNumber", &OSObject_Class, sizeof(OSNumber), NULL, NULL, NULL, 0 };
const OSClass OSData_Class = { "OSData", &OSObject_Class, sizeof(OSData), NULL, data_free, NULL, 0 };
const OSClass OSBoolean_Class = { "OSBoolean", &OSObject_Class, sizeof(OSBoolean), NULL, NULL, NULL, 0 };
const OSClass OSArray_Class = { "OSArray", &OSObject_Class, sizeof(OSArray), NULL, array_free, NULL, 0 };
const OSClass OSDictionary_Class = { "OSDictionary", &OSObject_Class, sizeof(OSDictionary), NULL, dict_free, NULL, 0 };

static void *alloc_of(const OSClass *cls)
{
    OSObject *o = NULL;
    return OSObject_Alloc(cls, &o) == kIOReturnSuccess ? o : NULL;
}

OSString *OSString_WithCString(const char *cstr)
{
    if (!cstr)
        return NULL;
    OSString *s = alloc_of(&OSString_Class);
    if (!s)
        return NULL;
    s->len = strlen(cstr);
    s->str = strdup(cstr);
    if (!s->str) {
        OSObject_Release(&s->object);
        return NULL;
    }
    return s;
}
const char *OSString_GetCStringNoCopy(const OSString *s)
{
    return s ? s->str : NULL;
}
size_t OSString_GetLength(const OSString *s)
{
    return s ? s->len : 0;
}
bool OSString_IsEqualToCString(const OSString *s, const char *cstr)
{
    return s && cstr && strcmp(s->str, cstr) == 0;
}

OSNumber *OSNumber_WithNumber(uint64_t value, size_t numberOfBits)
{
    if (numberOfBits != 8 && numberOfBits != 16 && numberOfBits != 32 && numberOfBits != 64)
        return NULL;
    OSNumber *n = alloc_of(&OSNumber_Class);
    if (!n)
        return NULL;
    n->bits = numberOfBits;
    n->value = numberOfBits == 64 ? value : value & ((1ull << numberOfBits) - 1);
    return n;
}
uint64_t OSNumber_UnsignedValue(const OSNumber *n)
{
    return n ? n->value : 0;
}
size_t OSNumber_NumberOfBits(const OSNumber *n)
{
    return n ? n->bits : 0;
}

OSData *OSData_WithBytes(const void *bytes, size_t length)
{
    if (!bytes && length)
        return NULL;
    OSData *d = alloc_of(&OSData_Class);
    if (!d)
        return NULL;
    d->bytes = malloc(length ? length : 1);
    if (!d->bytes) {
        OSObject_Release(&d->object);
        return NULL;
    }
    if (length)
        memcpy(d->bytes, bytes, length);
    d->len = length;
    return d;
}
const void *OSData_GetBytesNoCopy(const OSData *d)
{
    return d ? d->bytes : NULL;
}
size_t OSData_GetLength(const OSData *d)
{
    return d ? d->len : 0;
}

static struct OSBoolean bool_true = { { &OSBoolean_Class, 1, RT_OBJ_IMMORTAL, 0, NULL }, true };
static struct OSBoolean bool_false = { { &OSBoolean_Class, 1, RT_OBJ_IMMORTAL, 0, NULL }, false };
OSBoolean *const kOSBooleanTrue = &bool_true;
OSBoolean *const kOSBooleanFalse = &bool_false;
bool OSBoolean_GetValue(const OSBoolean *b)
{
    return b && b->value;
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap : 4, bytes;
    while (ncap < need)
        if (DK_MUL_OVERFLOW(ncap, (size_t)2, &ncap))
            return false;
    if (DK_MUL_OVERFLOW(ncap, elem, &bytes))
        return false;
    void *p = realloc(*arr, bytes);
    if (!p)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

OSArray *OSArray_WithCapacity(size_t capacity)
{
    OSArray *a = alloc_of(&OSArray_Class);
    if (a && !grow((void **)&a->items, &a->cap, capacity, sizeof(OSObject *))) {
        OSObject_Release(&a->object);
        return NULL;
    }
    return a;
}
bool OSArray_SetObject(OSArray *a, OSObject *obj)
{
    if (!a || !obj || !grow((void **)&a->items, &a->cap, a->count + 1, sizeof(OSObject *)))
        return false;
    a->items[a->count++] = OSObject_Retain(obj);
    return true;
}
OSObject *OSArray_GetObject(const OSArray *a, size_t index)
{
    return a && index < a->count ? a->items[index] : NULL;
}
size_t OSArray_GetCount(const OSArray *a)
{
    return a ? a->count : 0;
}

OSDictionary *OSDictionary_WithCapacity(size_t capacity)
{
    OSDictionary *d = alloc_of(&OSDictionary_Class);
    if (d && !grow((void **)&d->e, &d->cap, capacity, sizeof(struct dict_entry))) {
        OSObject_Release(&d->object);
        return NULL;
    }
    return d;
}

static ptrdiff_t dict_find(const OSDictionary *d, const char *key)
{
    for (size_t i = 0; i < d->count; i++)
        if (strcmp(d->e[i].key, key) == 0)
            return (ptrdiff_t)i;
    return -1;
}

bool OSDictionary_SetObject(OSDictionary *d, const char *key, OSObject *obj)
{
    if (!d || !key || !obj)
        return false;
    ptrdiff_t i = dict_find(d, key);
    if (i >= 0) {
        OSObject *old = d->e[i].value;
        d->e[i].value = OSObject_Retain(obj);
        OSObject_Release(old);
        return true;
    }
    if (!grow((void **)&d->e, &d->cap, d->count + 1, sizeof(struct dict_entry)))
        return false;
    char *k = strdup(key);
    if (!k)
        return false;
    d->e[d->count].key = k;
    d->e[d->count].value = OSObject_Retain(obj);
    d->count++;
    return true;
}
OSObject *OSDictionary_GetObject(const OSDictionary *d, const char *key)
{
    if (!d || !key)
        return NULL;
    ptrdiff_t i = dict_find(d, key);
    return i >= 0 ? d->e[i].value : NULL;
}
bool OSDictionary_RemoveObject(OSDictionary *d, const char *key)
{
    if (!d || !key)
        return false;
    ptrdiff_t i = dict_find(d, key);
    if (i < 0)
        return false;
    free(d->e[i].key);
    OSObject_Release(d->e[i].value);
    memmove(&d->e[i], &d->e[i + 1], (d->count - (size_t)i - 1) * sizeof(d->e[0]));
    d->count--;
    return true;
}
size_t OSDictionary_GetCount(const OSDictionary *d)
{
    return d ? d->count : 0;
}
const char *OSDictionary_GetKeyAtIndex(const OSDictionary *d, size_t index)
{
    return d && index < d->count ? d->e[index].key : NULL;
}
OSObject *OSDictionary_GetObjectAtIndex(const OSDictionary *d, size_t index)
{
    return d && index < d->count ? d->e[index].value : NULL;
}
bool OSDictionary_Merge(OSDictionary *d, const OSDictionary *from)
{
    if (!d || !from)
        return false;
    for (size_t i = 0; i < from->count; i++)
        if (!OSDictionary_SetObject(d, from->e[i].key, from->e[i].value))
            return false;
    return true;
}
OSDictionary *OSDictionary_Copy(const OSDictionary *d)
{
    if (!d)
        return NULL;
    OSDictionary *c = OSDictionary_WithCapacity(d->count);
    if (c && !OSDictionary_Merge(c, d))
        OSSafeReleaseNULL(c);
    return c;
}
OSString *OSDictionary_GetString(const OSDictionary *d, const char *key)
{
    return OSDynamicCast(OSString, OSDictionary_GetObject(d, key));
}
OSDictionary *OSDictionary_GetDictionary(const OSDictionary *d, const char *key)
{
    return OSDynamicCast(OSDictionary, OSDictionary_GetObject(d, key));
}
bool OSDictionary_GetNumberValue(const OSDictionary *d, const char *key, uint64_t *value)
{
    OSNumber *n = OSDynamicCast(OSNumber, OSDictionary_GetObject(d, key));
    if (!n || !value)
        return false;
    *value = n->value;
    return true;
}
bool OSDictionary_SetStringValue(OSDictionary *d, const char *key, const char *value)
{
    OSString *s = OSString_WithCString(value);
    bool ok = s && OSDictionary_SetObject(d, key, &s->object);
    OSObject_Release((OSObject *)s);
    return ok;
}
bool OSDictionary_SetNumberValue(OSDictionary *d, const char *key, uint64_t value)
{
    OSNumber *n = OSNumber_WithNumber(value, 64);
    bool ok = n && OSDictionary_SetObject(d, key, &n->object);
    OSObject_Release((OSObject *)n);
    return ok;
}
