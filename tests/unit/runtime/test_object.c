#include <criterion/criterion.h>
#include <string.h>

#include "rt_test.h"

/* A two-level class hierarchy recording init/free order. */
typedef struct Base {
    OSObject object;
    int base_ivar;
} Base;
typedef struct Derived {
    Base base;
    int derived_ivar;
} Derived;

static char order[64];
static int frees;

static void note(const char *s)
{
    strncat(order, s, sizeof(order) - strlen(order) - 1);
}

static const OSClass Base_Class;
static const OSClass Derived_Class;

static bool base_init(OSObject *o)
{
    if (!OSObject_SuperInit(&Base_Class, o))
        return false;
    note("Bi");
    ((Base *)o)->base_ivar = 7;
    return true;
}
static void base_free(OSObject *o)
{
    note("Bf");
    frees++;
    OSObject_SuperFree(&Base_Class, o);
}
static bool derived_init(OSObject *o)
{
    if (!OSObject_SuperInit(&Derived_Class, o))
        return false;
    note("Di");
    return ((Base *)o)->base_ivar == 7;
}
static void derived_free(OSObject *o)
{
    note("Df");
    OSObject_SuperFree(&Derived_Class, o);
}
static bool failing_init(OSObject *o)
{
    (void)o;
    note("X");
    return false;
}

#define M1_ID 0x1111ull
#define M2_ID 0x2222ull
static int m_base(void)
{
    return 1;
}
static int m_derived(void)
{
    return 2;
}
static const OSMethod base_methods[] = { OS_METHOD(M1_ID, m_base), OS_METHOD(M2_ID, m_base) };
static const OSMethod derived_methods[] = { OS_METHOD(M1_ID, m_derived) };

static const OSClass Base_Class = { "TestBase", &OSObject_Class, sizeof(Base), base_init, base_free, base_methods, 2 };
static const OSClass Derived_Class = { "TestDerived", &Base_Class, sizeof(Derived), derived_init, derived_free,
                                       derived_methods, 1 };
static const OSClass Failing_Class = { "TestFailing", &Base_Class, sizeof(Derived), failing_init, NULL, NULL, 0 };
static const OSClass Small_Class = { "TestSmall", &Base_Class, sizeof(OSObject), NULL, NULL, NULL, 0 };
static const OSClass Dup_Class = { "TestBase", &OSObject_Class, sizeof(Base), NULL, NULL, NULL, 0 };

static void setup(void)
{
    order[0] = '\0';
    frees = 0;
}

TestSuite(runtime_object, .init = setup, .timeout = 30);

Test(runtime_object, init_and_free_chains_run_in_order_once)
{
    OSObject *o = NULL;
    cr_assert_eq(OSObject_Alloc(&Derived_Class, &o), kIOReturnSuccess);
    cr_assert_str_eq(order, "BiDi");
    cr_assert_eq(OSObject_GetRetainCount(o), 1);
    cr_assert_str_eq(OSObject_GetClassName(o), "TestDerived");
    OSObject_Retain(o);
    OSObject_Release(o);
    cr_assert_str_eq(order, "BiDi");
    OSObject_Release(o);
    cr_assert_str_eq(order, "BiDiDfBf");
    cr_assert_eq(frees, 1);
}

Test(runtime_object, failed_init_frees_and_reports)
{
    OSObject *o = (OSObject *)0x1;
    cr_assert_eq(OSObject_Alloc(&Failing_Class, &o), kIOReturnError);
    cr_assert_eq(o, (OSObject *)0x1, "out untouched on failure");
    cr_assert_str_eq(order, "XBf");
    cr_assert_eq(frees, 1);
}

Test(runtime_object, inconsistent_class_refused)
{
    OSObject *o = NULL;
    cr_assert_eq(OSObject_Alloc(&Small_Class, &o), kIOReturnBadArgument);
    cr_assert_eq(OSObject_Alloc(NULL, &o), kIOReturnBadArgument);
}

Test(runtime_object, virtual_and_super_lookup)
{
    const OSMethod *m = OSClass_FindMethod(&Derived_Class, M1_ID);
    cr_assert_not_null(m);
    cr_assert_eq(((int (*)(void))m->function)(), 2);
    m = OSClass_FindSuperMethod(&Derived_Class, M1_ID);
    cr_assert_eq(((int (*)(void))m->function)(), 1);
    m = OSClass_FindMethod(&Derived_Class, M2_ID); /* inherited */
    cr_assert_eq(((int (*)(void))m->function)(), 1);
    cr_assert_null(OSClass_FindMethod(&Derived_Class, 0x3333));
    cr_assert_null(OSClass_FindSuperMethod(&Base_Class, M1_ID));
}

Test(runtime_object, dynamic_cast)
{
    OSObject *o = NULL;
    cr_assert_eq(OSObject_Alloc(&Derived_Class, &o), kIOReturnSuccess);
    cr_assert(OSObject_IsKindOf(o, &Base_Class));
    cr_assert(OSObject_IsKindOf(o, &OSObject_Class));
    cr_assert_not(OSObject_IsKindOf(o, &IOService_Class));
    cr_assert_null(OSDynamicCast(OSString, o));
    cr_assert_eq(OSObject_DynamicCast(o, &Base_Class), o);
    cr_assert_null(OSObject_DynamicCast(NULL, &Base_Class));
    OSObject_Release(o);
}

Test(runtime_object, ids_are_unique)
{
    OSObject *a = NULL, *b = NULL;
    cr_assert_eq(OSObject_Alloc(&Base_Class, &a), kIOReturnSuccess);
    cr_assert_eq(OSObject_Alloc(&Base_Class, &b), kIOReturnSuccess);
    cr_assert_neq(OSObject_GetID(a), 0);
    cr_assert_neq(OSObject_GetID(a), OSObject_GetID(b));
    OSObject_Release(a);
    OSObject_Release(b);
}

Test(runtime_object, class_registry)
{
    cr_assert_eq(OSClass_Find("IOService"), &IOService_Class);
    cr_assert_null(OSClass_Find("TestDerived"));
    cr_assert_eq(OSClass_Register(&Base_Class), kIOReturnSuccess);
    cr_assert_eq(OSClass_Register(&Derived_Class), kIOReturnSuccess);
    cr_assert_eq(OSClass_Register(&Derived_Class), kIOReturnSuccess, "same descriptor twice is a no-op");
    cr_assert_eq(OSClass_Find("TestDerived"), &Derived_Class);
    cr_assert_eq(OSClass_Register(&Dup_Class), kIOReturnExclusiveAccess);
    cr_assert_eq(OSClass_Register(&Small_Class), kIOReturnBadArgument);
    static const OSClass Builtin_Dup = { "IOService", &OSObject_Class, sizeof(OSObject), NULL, NULL, NULL, 0 };
    cr_assert_eq(OSClass_Register(&Builtin_Dup), kIOReturnExclusiveAccess);
}

struct hammer {
    OSObject *o;
    int rounds;
};

static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < h->rounds; i++) {
        OSObject_Retain(h->o);
        OSObject_Release(h->o);
    }
    OSObject_Release(h->o); /* each thread owns one reference */
    return NULL;
}

Test(runtime_object, retain_release_across_threads_frees_once)
{
    OSObject *o = NULL;
    cr_assert_eq(OSObject_Alloc(&Derived_Class, &o), kIOReturnSuccess);
    enum { N = 8 };
    pthread_t t[N];
    struct hammer h = { o, 50000 };
    for (int i = 0; i < N; i++)
        OSObject_Retain(o);
    for (int i = 0; i < N; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, hammer_thread, &h), 0);
    OSObject_Release(o); /* ours: the last thread to finish frees it */
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(frees, 1);
    cr_assert_str_eq(order, "BiDiDfBf");
}

Test(runtime_object, ioreturn_numbers_and_names)
{
    cr_assert_eq(kIOReturnSuccess, 0);
    cr_assert_eq((uint32_t)kIOReturnError, 0xe00002bcu);
    cr_assert_eq(kIOReturnError, -536870212);
    cr_assert_eq((uint32_t)kIOReturnNoMemory, 0xe00002bdu);
    cr_assert_eq((uint32_t)kIOReturnBadArgument, 0xe00002c2u);
    cr_assert_eq((uint32_t)kIOReturnExclusiveAccess, 0xe00002c5u);
    cr_assert_eq((uint32_t)kIOReturnUnsupported, 0xe00002c7u);
    cr_assert_eq((uint32_t)kIOReturnNotOpen, 0xe00002cdu);
    cr_assert_eq((uint32_t)kIOReturnTimeout, 0xe00002d6u);
    cr_assert_eq((uint32_t)kIOReturnOffline, 0xe00002d7u);
    cr_assert_eq((uint32_t)kIOReturnNotReady, 0xe00002d8u);
    cr_assert_eq((uint32_t)kIOReturnUnderrun, 0xe00002e7u);
    cr_assert_eq((uint32_t)kIOReturnOverrun, 0xe00002e8u);
    cr_assert_eq((uint32_t)kIOReturnAborted, 0xe00002ebu);
    cr_assert_eq(kIOReturnAborted, -536870165);
    cr_assert_eq((uint32_t)kIOReturnNotFound, 0xe00002f0u);
    cr_assert_eq((uint32_t)kIOReturnInvalid, 0xe0000001u);
    cr_assert_str_eq(IOReturn_Name(kIOReturnAborted), "kIOReturnAborted");
    cr_assert_str_eq(IOReturn_Name(kIOReturnSuccess), "kIOReturnSuccess");
    cr_assert_str_eq(IOReturn_Name(kIOReturnNoResources), "kIOReturnNoResources");
    cr_assert_str_eq(IOReturn_Name(kIOReturnUnderrun), "kIOReturnUnderrun");
    cr_assert_str_eq(IOReturn_Name((kern_return_t)0xe000404fu), "kIOUSBPipeStalled");
    cr_assert_str_eq(IOReturn_Name(0x1234), "kIOReturnUnknown");
}

Test(runtime_object, dictionary_and_containers)
{
    OSDictionary *d = OSDictionary_WithCapacity(0);
    cr_assert_not_null(d);
    cr_assert(OSDictionary_SetStringValue(d, "IOUserClass", "MyDriver"));
    cr_assert(OSDictionary_SetNumberValue(d, "idVendor", 0x5ac));
    cr_assert(OSDictionary_SetObject(d, "flag", (OSObject *)kOSBooleanTrue));
    cr_assert_eq(OSDictionary_GetCount(d), 3);
    cr_assert(OSString_IsEqualToCString(OSDictionary_GetString(d, "IOUserClass"), "MyDriver"));
    uint64_t v = 0;
    cr_assert(OSDictionary_GetNumberValue(d, "idVendor", &v));
    cr_assert_eq(v, 0x5ac);
    cr_assert_not(OSDictionary_GetNumberValue(d, "IOUserClass", &v), "type-checked getter");
    cr_assert(OSBoolean_GetValue(OSDynamicCast(OSBoolean, OSDictionary_GetObject(d, "flag"))));
    cr_assert(OSDictionary_SetStringValue(d, "IOUserClass", "Other")); /* replace */
    cr_assert_eq(OSDictionary_GetCount(d), 3);
    cr_assert_str_eq(OSString_GetCStringNoCopy(OSDictionary_GetString(d, "IOUserClass")), "Other");
    cr_assert_str_eq(OSDictionary_GetKeyAtIndex(d, 1), "idVendor");
    cr_assert_null(OSDictionary_GetKeyAtIndex(d, 3));

    OSDictionary *c = OSDictionary_Copy(d);
    cr_assert(OSDictionary_RemoveObject(d, "idVendor"));
    cr_assert_not(OSDictionary_RemoveObject(d, "idVendor"));
    cr_assert_eq(OSDictionary_GetCount(d), 2);
    cr_assert_eq(OSDictionary_GetCount(c), 3, "copy is independent");

    OSArray *a = OSArray_WithCapacity(1);
    OSData *data = OSData_WithBytes("\x01\x02\x03", 3);
    OSNumber *n = OSNumber_WithNumber(0x1ff, 8);
    cr_assert_eq(OSNumber_UnsignedValue(n), 0xff, "truncated to its width");
    cr_assert_null(OSNumber_WithNumber(1, 12));
    for (int i = 0; i < 10; i++)
        cr_assert(OSArray_SetObject(a, (OSObject *)data));
    cr_assert_eq(OSArray_GetCount(a), 10);
    cr_assert_eq(OSObject_GetRetainCount((OSObject *)data), 11);
    cr_assert(OSDictionary_SetObject(c, "array", (OSObject *)a));
    cr_assert_eq(OSData_GetLength(OSDynamicCast(OSData, OSArray_GetObject(a, 9))), 3);
    cr_assert_null(OSArray_GetObject(a, 10));
    OSObject_Release((OSObject *)n);
    OSObject_Release((OSObject *)data);
    OSObject_Release((OSObject *)a);
    OSObject_Release((OSObject *)c);
    OSObject_Release((OSObject *)d);
    OSObject_Release((OSObject *)kOSBooleanTrue); /* immortal: no effect */
    cr_assert(OSBoolean_GetValue(kOSBooleanTrue));
}
