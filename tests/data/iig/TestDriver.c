/* The C implementation of TestDriver.iig: what a driver author writes next to the generated
 * TestDriver.h / TestDriver.iig.c. */
#include <stdlib.h>
#include <string.h>

#include "TestDriver.h"

struct TestDriver_IVars {
    IODispatchQueue *special;
    char name[64];
    TestMode mode;
    TestFlags flags;
    TestPoint point;
    uint8_t tag[4];
    bool moveOnSpecial;
    uint32_t counter;
    uint64_t pinged;
    OSAction *action;
};

/* observable from the test */
uint64_t TestDriver_lastPing;
int TestDriver_pings;
int TestDriver_frees;

bool TestDriver_init_Impl(TestDriver *self)
{
    self->ivars = calloc(1, sizeof(*self->ivars));
    return self->ivars != NULL;
}

void TestDriver_free_Impl(TestDriver *self)
{
    if (self->ivars) {
        OSSafeReleaseNULL(self->ivars->action);
        OSSafeReleaseNULL(self->ivars->special);
        free(self->ivars);
        self->ivars = NULL;
    }
    TestDriver_frees++;
}

kern_return_t TestDriver_Start_Impl(TestDriver *self, IOService *provider)
{
    kern_return_t r = IOService_Start_Super(&TestDriver_Class, (IOService *)self, provider);
    if (r != kIOReturnSuccess)
        return r;
    r = IODispatchQueue_Create("Special", 0, 0, &self->ivars->special);
    if (r == kIOReturnSuccess)
        r = IOService_SetDispatchQueue((IOService *)self, "Special", self->ivars->special);
    if (r != kIOReturnSuccess)
        return r;
    return IOService_RegisterService((IOService *)self);
}

kern_return_t TestDriver_Stop_Impl(TestDriver *self, IOService *provider)
{
    if (self->ivars->action)
        OSAction_Cancel(self->ivars->action, NULL, NULL);
    return IOService_Stop_Super(&TestDriver_Class, (IOService *)self, provider);
}

kern_return_t TestDriver_Add_Impl(TestDriver *self, uint32_t a, uint32_t b, uint64_t *sum)
{
    self->ivars->counter++;
    *sum = (uint64_t)a + b;
    return kIOReturnSuccess;
}

kern_return_t TestDriver_SetName_Impl(TestDriver *self, const char *name, enum TestMode mode, TestFlags flags)
{
    size_t n = strlen(name);
    if (n >= sizeof(self->ivars->name))
        return kIOReturnNoSpace;
    memcpy(self->ivars->name, name, n + 1);
    self->ivars->mode = mode;
    self->ivars->flags = flags;
    return kIOReturnSuccess;
}

kern_return_t TestDriver_Move_Impl(TestDriver *self, struct TestPoint p, uint8_t tag[4])
{
    self->ivars->point = p;
    memcpy(self->ivars->tag, tag, 4);
    self->ivars->moveOnSpecial = IODispatchQueue_OnQueue(self->ivars->special);
    return kIOReturnSuccess;
}

kern_return_t TestDriver_Fail_Impl(TestDriver *self, int32_t code)
{
    return (kern_return_t)code;
}

void TestDriver_Ping_Impl(TestDriver *self, OSAction *action, uint64_t value)
{
}

void TestDriver_Pong_Impl(TestDriver *self, OSAction *action, uint64_t value)
{
}

void TestDriver_OnPing_Impl(TestDriver *self, OSAction *action, uint64_t value)
{
    TestDriver_lastPing = value;
    __atomic_add_fetch(&TestDriver_pings, 1, __ATOMIC_SEQ_CST);
}

kern_return_t TestDriver_ArmPing_Impl(TestDriver *self)
{
    if (self->ivars->action)
        return kIOReturnBusy;
    return TestDriver_CreateActionOnPing(self, 0, &self->ivars->action);
}

kern_return_t TestDriver_SetCallback_Impl(TestDriver *self, OSAction *cb)
{
    return OSAction_GetTypeID(cb) == TestDriver_Ping_ID ? kIOReturnSuccess : kIOReturnInternalError;
}

uint32_t TestDriver_Counter(TestDriver *self)
{
    return self->ivars->counter;
}

/* for the test: the action armed by ArmPing (+0) and the driver's state */
OSAction *TestDriver_GetAction(TestDriver *self);
OSAction *TestDriver_GetAction(TestDriver *self)
{
    return self->ivars->action;
}
const char *TestDriver_GetName(TestDriver *self);
const char *TestDriver_GetName(TestDriver *self)
{
    return self->ivars->name;
}
bool TestDriver_GetMove(TestDriver *self, TestPoint *p, uint8_t tag[4], bool *onSpecial);
bool TestDriver_GetMove(TestDriver *self, TestPoint *p, uint8_t tag[4], bool *onSpecial)
{
    *p = self->ivars->point;
    memcpy(tag, self->ivars->tag, 4);
    *onSpecial = self->ivars->moveOnSpecial;
    return true;
}
