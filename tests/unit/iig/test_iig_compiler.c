/* sysext-iig as a program: the generated header/impl of TestDriver.iig contain what a driver
 * needs (golden fragments), and every syntax error is reported as FILE:LINE:COL with exit 1. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/sysext-iig-test-XXXXXX";

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

TestSuite(iig_compiler, .init = setup, .fini = teardown, .timeout = 30);

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    return strdup(buf);
}

/* Run sysext-iig on `def`; returns the exit status, stderr in *err (malloc'd). */
static int run_iig(const char *def, char **err)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' --def '%s' --header '%s/out.h' --impl '%s/out.c' 2>'%s/err.txt'", IIG_EXE,
             def, dir, dir, dir);
    int st = system(cmd);
    cr_assert(WIFEXITED(st));
    char p[512];
    snprintf(p, sizeof(p), "%s/err.txt", dir);
    *err = slurp(p);
    return WEXITSTATUS(st);
}

static void write_file(const char *name, const char *text, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

#define HAS(hay, needle) cr_assert_not_null(strstr((hay), (needle)), "missing: %s", (needle))

Test(iig_compiler, golden_test_driver)
{
    char *err;
    cr_assert_eq(run_iig(SYSEXT_SOURCE_DIR "/tests/data/iig/TestDriver.iig", &err), 0, "%s", err);
    free(err);
    char p[512];
    snprintf(p, sizeof(p), "%s/out.h", dir);
    char *h = slurp(p);
    snprintf(p, sizeof(p), "%s/out.c", dir);
    char *c = slurp(p);
    /* header */
    HAS(h, "#include <sysext/driverkit/DriverKit.h>");
    HAS(h, "#define kTestDriverMagic 0x5a5a");
    HAS(h, "typedef struct TestPoint TestPoint;");
    HAS(h, "typedef enum TestMode TestMode;");
    HAS(h, "typedef struct TestDriver {\n    IOService super;\n    struct TestDriver_IVars *ivars;\n} TestDriver;");
    HAS(h, "#define TestDriver_Start_ID IOService_Start_ID");
    HAS(h, "#define TestDriver_Add_ID 0xdcf861ea6607e3daULL /* FNV-1a 64 of \"TestDriver::Add\" */");
    HAS(h, "kern_return_t TestDriver_Add_Impl(TestDriver *self, uint32_t a, uint32_t b, uint64_t *sum);");
    HAS(h, "kern_return_t TestDriver_Move_Impl(TestDriver *self, struct TestPoint p, uint8_t tag[4]);");
    HAS(h, "typedef void (*TestDriver_Ping_Handler)(OSObject *target, OSAction *action, uint64_t value);");
    HAS(h, "kern_return_t TestDriver_Ping_Invoke(OSAction *action, uint64_t value);");
    HAS(h, "kern_return_t TestDriver_CreateActionOnPing(TestDriver *self, size_t referenceSize, OSAction **action);");
    HAS(h, "kern_return_t TestDriver_HostLog(TestDriver *self, const char *text, uint32_t level, uint64_t *cookie);");
    cr_assert_null(strstr(h, "TestDriver_HostLog_Impl"), "a KERNEL method has no driver implementation");
    HAS(h, "uint32_t TestDriver_Counter(TestDriver *self);");
    cr_assert_null(strstr(h, "TestDriver_Counter_ID"), "LOCALONLY: no message ID");
    HAS(h, "kern_return_t TestDriver_Dispatch(OSObject *obj, const DKIPCMessage *msg, DKIPCMessage *reply);");
    /* implementation */
    HAS(c, "#include \"out.h\"");
    HAS(c, "OS_METHOD(TestDriver_Start_ID, TestDriver_Start_Impl),");
    HAS(c, "OS_METHOD_QUEUE(TestDriver_Move_ID, TestDriver_Move_Impl, \"Special\"),");
    cr_assert_null(strstr(c, "OS_METHOD(TestDriver_HostLog_ID"));
    HAS(c, ".superClass = &IOService_Class,");
    HAS(c, ".init = TestDriver_init_thunk,");
    HAS(c, "OS_CLASS_REGISTER(TestDriver_Class)");
    HAS(c, "DKIPC_DISPATCH_REGISTER(TestDriver_Class, TestDriver_Dispatch)");
    HAS(c, "return OSAction_Invoke(action, TestDriver_Ping_ID, TestDriver_Ping_Invoker, &a, sizeof(a));");
    HAS(c, "OSAction_Create((OSObject *)self, TestDriver_OnPing_ID, TestDriver_Ping_ID, NULL, referenceSize, action);");
    HAS(c, "r = DKIPC_HostCall(&msg, &reply, NULL);");
    HAS(c, "case TestDriver_Add_ID:\n        return TestDriver_Add_DispatchIPC(obj, msg, reply);");
    HAS(c, "c.provider = OSDynamicCast(IOService, o);");
    free(h);
    free(c);
}

struct bad_case {
    const char *name;
    const char *text;
    const char *expect; /* "LINE:COL: error: ..." prefix after the path */
};

static const struct bad_case bad_cases[] = {
    { "missing_semicolon", "class A : public IOService {\n    kern_return_t Foo(uint32_t x)\n};\n",
      "3:1: error: expected ';', found '}'" },
    { "unknown_class_attr", "class NATIVE A : public IOService {\n};\n",
      "1:7: error: unknown class attribute 'NATIVE'" },
    { "no_super", "class A {\n};\n", "1:9: error: class 'A' needs a superclass" },
    { "double_pointer", "class A : public IOService {\n  kern_return_t Get(OSObject ** out);\n};\n",
      "2:21: error: parameter 'out': type 'OSObject **' (pointer to pointer or array of pointers) cannot cross" },
    { "void_pointer", "class A : public IOService {\n  kern_return_t Get(void * p);\n};\n",
      "2:21: error: parameter 'p': type 'void *' (pointer to data)" },
    { "bad_return", "class A : public IOService {\n  uint32_t Count();\n};\n",
      "2:12: error: 'Count' returns 'uint32_t'" },
    { "unterminated_comment", "/* hello\nclass A : public IOService {};\n", "1:1: error: unterminated comment" },
    { "stray_char", "class A : public IOService {\n  kern_return_t Foo() @;\n};\n",
      "2:23: error: unexpected character '@'" },
    { "bad_type_attr", "class A : public IOService {\n  void Foo(OSAction * a) TYPE(Bar);\n};\n",
      "2:34: error: expected '::', found ')'" },
    { "toplevel_garbage", "int x;\n", "1:1: error: expected 'class', 'struct', 'enum', 'typedef'" },
    { "localonly_queue", "class A : public IOService {\n  void Foo() LOCALONLY QUEUENAME(Q);\n};\n",
      "2:8: error: 'Foo': LOCALONLY cannot be combined" },
    { "duplicate", "class A : public IOService {\n  void Foo();\n  void Foo();\n};\n",
      "3:8: error: method 'Foo' declared twice" },
    { "unclosed_class", "class A : public IOService {\n  void Foo();\n", "1:1: error: class 'A' is not closed" },
    { "enum_base", "enum E : uint32_t { a };\n", "1:8: error: an enum with a fixed underlying type" },
};

Test(iig_compiler, syntax_errors_report_file_line_col)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        char path[512], *err;
        char name[128];
        snprintf(name, sizeof(name), "%s.iig", bad_cases[i].name);
        write_file(name, bad_cases[i].text, path, sizeof(path));
        cr_assert_eq(run_iig(path, &err), 1, "%s: exit status (stderr: %s)", bad_cases[i].name, err);
        char want[1024];
        snprintf(want, sizeof(want), "%s:%s", path, bad_cases[i].expect);
        cr_assert_eq(strncmp(err, want, strlen(want)), 0, "%s:\n got: %s want: %s", bad_cases[i].name, err, want);
        free(err);
        char out[512];
        snprintf(out, sizeof(out), "%s/out.h", dir);
        cr_assert_neq(access(out, F_OK), 0, "%s: no output on error", bad_cases[i].name);
    }
}

Test(iig_compiler, localonly_may_take_pointers)
{
    char path[512], *err;
    write_file("ok.iig", "class A : public IOService {\n  void * Buf(void * p, OSObject ** o) LOCALONLY;\n};\n", path,
               sizeof(path));
    cr_assert_eq(run_iig(path, &err), 0, "%s", err);
    free(err);
}

/* DriverKit's NewUserClient / ExternalMethod / CopyClientMemoryForType take what cannot cross:
 * overriding them makes a local table entry under the base's ID, with no IPC stub. */
Test(iig_compiler, override_with_local_parameters_is_a_local_table_entry)
{
    char path[512], *err;
    write_file("uc.iig",
               "class U : public IOUserClient {\n"
               "  virtual kern_return_t CopyClientMemoryForType(uint64_t type, uint64_t * options,\n"
               "                                                IOMemoryDescriptor ** memory) override;\n"
               "  virtual kern_return_t NewUserClient(uint32_t type, IOUserClient ** userClient) override;\n"
               "};\n",
               path, sizeof(path));
    cr_assert_eq(run_iig(path, &err), 0, "%s", err);
    free(err);
    char p[512];
    snprintf(p, sizeof(p), "%s/out.h", dir);
    char *h = slurp(p);
    HAS(h, "#define U_CopyClientMemoryForType_ID IOUserClient_CopyClientMemoryForType_ID");
    HAS(h, "kern_return_t U_CopyClientMemoryForType_Impl(U *self, uint64_t type, uint64_t *options, "
           "IOMemoryDescriptor **memory);");
    HAS(h, "kern_return_t U_NewUserClient_Impl(U *self, uint32_t type, IOUserClient **userClient);");
    cr_assert_null(strstr(h, "U_NewUserClient_Marshal"), "no IPC stub");
    free(h);
    snprintf(p, sizeof(p), "%s/out.c", dir);
    char *c = slurp(p);
    HAS(c, "OS_METHOD(U_CopyClientMemoryForType_ID, U_CopyClientMemoryForType_Impl),");
    HAS(c, "OS_METHOD(U_NewUserClient_ID, U_NewUserClient_Impl),");
    HAS(c, ".methodCount = 2,");
    cr_assert_null(strstr(c, "case U_NewUserClient_ID"), "not dispatched over IPC");
    free(c);
    /* a new (non-override) method with such a parameter is still an error */
    write_file("bad.iig", "class V : public IOService {\n  kern_return_t Make(IOUserClient ** out);\n};\n", path,
               sizeof(path));
    cr_assert_eq(run_iig(path, &err), 1);
    HAS(err, "bad.iig:2:");
    HAS(err, "cannot cross the IPC boundary");
    free(err);
}

Test(iig_compiler, usage)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' --def x.iig 2>/dev/null", IIG_EXE);
    int st = system(cmd);
    cr_assert(WIFEXITED(st));
    cr_assert_eq(WEXITSTATUS(st), 2);
    snprintf(cmd, sizeof(cmd), "'%s' --def '%s/missing.iig' --header '%s/h' --impl '%s/c' 2>/dev/null", IIG_EXE, dir,
             dir, dir);
    st = system(cmd);
    cr_assert_eq(WEXITSTATUS(st), 2, "unreadable input is an I/O error");
}
