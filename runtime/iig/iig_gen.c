/* The C generator: the header (types, IDs, prototypes) and the implementation (class
 * descriptor, method table, IPC dispatch stubs, marshalling, typed OSAction invoke). */
#include "iig.h"

#include <stdlib.h>
#include <string.h>

static bool is_lifecycle(const struct iig_method *m)
{
    return strcmp(m->name, "init") == 0 || strcmp(m->name, "free") == 0;
}

/* A method that crosses the boundary: has an ID, a table entry (unless KERNEL) and a stub. */
static bool is_ipc(const struct iig_method *m)
{
    return !m->localonly && !is_lifecycle(m);
}

static bool returns_void(const struct iig_method *m)
{
    return strcmp(m->ret, "void") == 0;
}

/* "uint64_t *" -> "uint64_t" (owned). */
static char *pointee(const char *type)
{
    size_t n = strlen(type);
    while (n > 0 && (type[n - 1] == '*' || type[n - 1] == ' '))
        n--;
    return strndup(type, n);
}

static void param_decl(FILE *f, const struct iig_param *p)
{
    size_t n = strlen(p->type);
    bool star = n > 0 && p->type[n - 1] == '*';
    fprintf(f, "%s%s%s%s", p->type, star ? "" : " ", p->name, p->array ? p->array : "");
}

static void params_decl(FILE *f, const struct iig_method *m, size_t from)
{
    for (size_t i = from; i < m->nparams; i++) {
        fputs(", ", f);
        param_decl(f, &m->params[i]);
    }
}

static void args_list(FILE *f, const struct iig_method *m, size_t from, const char *prefix)
{
    for (size_t i = from; i < m->nparams; i++)
        fprintf(f, ", %s%s", prefix, m->params[i].name);
}

/* First parameter is an OSAction *: the method is a callback shape with a typed invoke. */
static bool is_action_shape(const struct iig_method *m)
{
    if (m->nparams == 0 || m->params[0].kind != P_OBJECT || strcmp(m->params[0].cls, "OSAction") != 0)
        return false;
    for (size_t i = 1; i < m->nparams; i++)
        if (m->params[i].kind != P_SCALAR && m->params[i].kind != P_BYTES && m->params[i].kind != P_OBJECT)
            return false;
    return true;
}

static void gen_header_class(FILE *h, const struct iig_class *c)
{
    const char *C = c->name;
    fprintf(h, "\n/* ---- class %s : %s%s ---- */\n", C, c->super, c->kernel ? " (KERNEL)" : "");
    fprintf(h, "struct %s_IVars; /* defined by the driver's implementation */\n", C);
    fprintf(h, "typedef struct %s {\n    %s super;\n    struct %s_IVars *ivars;\n} %s;\n", C, c->super, C, C);
    fprintf(h, "DK_API extern const OSClass %s_Class;\n", C);
    fprintf(h, "/* The IPC server entry of this class: decode a Call on obj, run it on its queue, fill reply\n"
               " * (always initialised; the caller clears it). kIOReturnUnsupported for a method this class\n"
               " * does not declare. */\n");
    fprintf(h, "kern_return_t %s_Dispatch(OSObject *obj, const DKIPCMessage *msg, DKIPCMessage *reply);\n", C);
    for (size_t i = 0; i < c->nmethods; i++) {
        const struct iig_method *m = &c->methods[i];
        const char *M = m->name;
        fputc('\n', h);
        if (is_lifecycle(m)) {
            if (strcmp(M, "init") == 0)
                fprintf(h, "/* Runs after the superclass init (done by the generated code); false = failure. */\n"
                           "bool %s_init_Impl(%s *self);\n", C, C);
            else
                fprintf(h, "/* Runs before the superclass free (done by the generated code); also after a\n"
                           " * failed init, so ivars may be NULL. */\n"
                           "void %s_free_Impl(%s *self);\n", C, C);
            continue;
        }
        if (m->localOverride) {
            fprintf(h, "/* Override of %s::%s, local only (its parameters cannot cross): you write\n"
                       " * %s_%s_Impl; call the base with %s_%s_Super. */\n#define %s_%s_ID %s_%s_ID\n",
                    c->super, M, C, M, c->super, M, C, M, c->super, M);
            fprintf(h, "%s %s_%s_Impl(%s *self", m->ret, C, M, C);
            params_decl(h, m, 0);
            fputs(");\n", h);
            continue;
        }
        if (m->localonly) {
            fprintf(h, "/* LOCALONLY: a plain call, implemented by the driver. */\n%s %s_%s(%s *self", m->ret, C, M, C);
            params_decl(h, m, 0);
            fputs(");\n", h);
            continue;
        }
        if (m->override)
            fprintf(h, "#define %s_%s_ID %s_%s_ID\n", C, M, c->super, M);
        else {
            char key[512];
            snprintf(key, sizeof(key), "%s::%s", C, M);
            fprintf(h, "#define %s_%s_ID 0x%016llxULL /* FNV-1a 64 of \"%s\" */\n", C, M,
                    (unsigned long long)iig_fnv1a64(key), key);
        }
        fprintf(h, "typedef %s (*%s_%s_Fn)(%s *self", m->ret, C, M, C);
        params_decl(h, m, 0);
        fputs(");\n", h);
        if (!m->kernel || c->kernel) {
            if (m->kernel)
                fprintf(h, "/* KERNEL: implemented by the host; this is the host-side implementation. */\n");
            fprintf(h, "%s %s_%s_Impl(%s *self", m->ret, C, M, C);
            params_decl(h, m, 0);
            fprintf(h, ");%s\n", m->queue ? "" : "");
            if (m->queue)
                fprintf(h, "/* %s_%s runs on the queue named \"%s\" (OSObject_SetDispatchQueue). */\n", C, M,
                        m->queue);
        }
        if (!m->override) {
            fprintf(h, "/* Call %s::%s: %s. */\n", C, M,
                    m->kernel ? "sent to the host over the IPC connection (DKIPC_HostCall)"
                              : "the most-derived implementation, in this process");
            fprintf(h, "%s %s_%s(%s *self", m->ret, C, M, C);
            params_decl(h, m, 0);
            fputs(");\n", h);
        }
        fprintf(h, "/* Build the Call message of %s::%s (the in-arguments; objects by their ids). */\n", C, M);
        fprintf(h, "kern_return_t %s_%s_Marshal(DKIPCMessage *msg, uint64_t objectID, uint64_t sequence", C, M);
        for (size_t k = 0; k < m->nparams; k++)
            if (m->params[k].kind != P_SCALAR_OUT) {
                fputs(", ", h);
                param_decl(h, &m->params[k]);
            }
        fputs(");\n", h);
        if (is_action_shape(m) && !m->override) {
            fprintf(h, "/* Handler of TYPE(%s::%s) and its typed invoke: an action of another type is refused\n"
                       " * with kIOReturnBadArgument by the runtime before anything runs. */\n", C, M);
            fprintf(h, "typedef %s (*%s_%s_Handler)(OSObject *target, OSAction *action", m->ret, C, M);
            params_decl(h, m, 1);
            fputs(");\n", h);
            fprintf(h, "kern_return_t %s_%s_Invoke(OSAction *action", C, M);
            params_decl(h, m, 1);
            fputs(");\n", h);
        }
        if (m->typeOf) {
            fprintf(h, "/* An OSAction of TYPE(%s) that runs %s_%s on self (+1 on success). */\n", m->typeOf, C, M);
            fprintf(h, "kern_return_t %s_CreateAction%s(%s *self, size_t referenceSize, OSAction **action);\n", C, M,
                    C);
        }
    }
}

static void gen_marshal_arg(FILE *f, const struct iig_param *p)
{
    switch (p->kind) {
    case P_SCALAR:
        fprintf(f, "    if (r == kIOReturnSuccess)\n        r = DKIPCMessage_AddU64(msg, (uint64_t)(%s));\n", p->name);
        break;
    case P_STRING:
        fprintf(f, "    if (r == kIOReturnSuccess)\n        r = DKIPCMessage_AddString(msg, %s);\n", p->name);
        break;
    case P_OBJECT:
        fprintf(f, "    if (r == kIOReturnSuccess)\n        r = DKIPCMessage_AddObject(msg, %s ? "
                   "OSObject_GetID((OSObject *)%s) : 0);\n", p->name, p->name);
        break;
    case P_BYTES:
        if (p->array)
            fprintf(f, "    if (r == kIOReturnSuccess)\n        r = DKIPCMessage_AddBytes(msg, %s, sizeof(%s%s));\n",
                    p->name, p->type, p->array);
        else
            fprintf(f, "    if (r == kIOReturnSuccess)\n        r = DKIPCMessage_AddBytes(msg, &%s, sizeof(%s));\n",
                    p->name, p->name);
        break;
    case P_SCALAR_OUT:
        break;
    }
}

static void gen_impl_method(FILE *f, const struct iig_class *c, const struct iig_method *m)
{
    const char *C = c->name, *M = m->name;
    bool isVoid = returns_void(m);
    size_t nin = 0;
    for (size_t k = 0; k < m->nparams; k++)
        nin += m->params[k].kind != P_SCALAR_OUT;

    fprintf(f, "\n/* ---- %s::%s ---- */\n", C, M);
    /* marshal */
    fprintf(f, "kern_return_t %s_%s_Marshal(DKIPCMessage *msg, uint64_t objectID, uint64_t sequence", C, M);
    for (size_t k = 0; k < m->nparams; k++)
        if (m->params[k].kind != P_SCALAR_OUT) {
            fputs(", ", f);
            param_decl(f, &m->params[k]);
        }
    fprintf(f, ")\n{\n    DKIPCMessage_Init(msg, kDKIPCCall, objectID, %s_%s_ID, sequence);\n"
               "    kern_return_t r = kIOReturnSuccess;\n", C, M);
    for (size_t k = 0; k < m->nparams; k++)
        gen_marshal_arg(f, &m->params[k]);
    fprintf(f, "    if (r != kIOReturnSuccess)\n        DKIPCMessage_Clear(msg);\n    return r;\n}\n");

    if (!m->kernel || c->kernel) {
        /* dispatch: context, caller, unmarshal */
        fprintf(f, "\nstruct %s_%s_Ctx {\n", C, M);
        for (size_t k = 0; k < m->nparams; k++) {
            const struct iig_param *p = &m->params[k];
            if (p->kind == P_SCALAR_OUT) {
                char *pt = pointee(p->type);
                fprintf(f, "    %s %s_out;\n", pt ? pt : "uint64_t", p->name);
                free(pt);
            }
            fputs("    ", f);
            param_decl(f, p);
            fputs(";\n", f);
        }
        if (!isVoid)
            fprintf(f, "    %s ret;\n", m->ret);
        fprintf(f, "    char unused;\n};\n\n");
        fprintf(f, "static void %s_%s_Caller(OSObject *obj, OSMethodFunction impl, void *context)\n{\n"
                   "    struct %s_%s_Ctx *c = context;\n    %s((%s_%s_Fn)impl)((%s *)obj",
                C, M, C, M, isVoid ? "" : "c->ret = ", C, M, C);
        args_list(f, m, 0, "c->");
        fprintf(f, ");\n}\n\n");
        fprintf(f, "static kern_return_t %s_%s_DispatchIPC(OSObject *obj, const DKIPCMessage *msg, DKIPCMessage *reply)\n"
                   "{\n    struct %s_%s_Ctx c;\n    memset(&c, 0, sizeof(c));\n"
                   "    DKIPCMessage_Init(reply, kDKIPCReply, msg->objectID, msg->methodID, msg->sequence);\n"
                   "    reply->status = kIOReturnBadArgument;\n"
                   "    if (msg->argCount != %zu)\n        return kIOReturnBadArgument;\n",
                C, M, C, M, nin);
        size_t ai = 0;
        for (size_t k = 0; k < m->nparams; k++) {
            const struct iig_param *p = &m->params[k];
            switch (p->kind) {
            case P_SCALAR:
                fprintf(f, "    {\n        uint64_t v;\n        if (DKIPCMessage_GetU64(msg, %zu, &v) != kIOReturnSuccess)\n"
                           "            return kIOReturnBadArgument;\n        c.%s = (%s)v;\n"
                           "        if ((uint64_t)c.%s != v) /* out of range for %s */\n"
                           "            return kIOReturnBadArgument;\n    }\n",
                        ai++, p->name, p->type, p->name, p->type);
                break;
            case P_STRING:
                fprintf(f, "    if (DKIPCMessage_GetString(msg, %zu, &c.%s) != kIOReturnSuccess)\n"
                           "        return kIOReturnBadArgument;\n", ai++, p->name);
                break;
            case P_OBJECT:
                fprintf(f, "    {\n        OSObject *o = NULL;\n"
                           "        if (DKIPCMessage_GetObject(msg, %zu, &o) != kIOReturnSuccess)\n"
                           "            return kIOReturnBadArgument;\n"
                           "        c.%s = OSDynamicCast(%s, o); /* an object of another class is refused */\n"
                           "        if (!c.%s)\n            return kIOReturnBadArgument;\n    }\n",
                        ai++, p->name, p->cls, p->name);
                if (p->typeAttr && strcmp(p->cls, "OSAction") == 0)
                    fprintf(f, "    if (OSAction_GetTypeID(c.%s) != %s_ID) /* TYPE(...) on the parameter */\n"
                               "        return kIOReturnBadArgument;\n", p->name, p->typeAttr);
                break;
            case P_BYTES:
                fprintf(f, "    {\n        const void *d = NULL;\n        size_t n = 0;\n"
                           "        if (DKIPCMessage_GetBytes(msg, %zu, &d, &n) != kIOReturnSuccess || n != sizeof(c.%s))\n"
                           "            return kIOReturnBadArgument;\n        if (n)\n"
                           "            memcpy(&c.%s, d, n);\n    }\n",
                        ai++, p->name, p->name);
                break;
            case P_SCALAR_OUT:
                fprintf(f, "    c.%s = &c.%s_out;\n", p->name, p->name);
                break;
            }
        }
        fprintf(f, "    kern_return_t r = OSObject_DispatchMethod(obj, %s_%s_ID, %s_%s_Caller, &c);\n"
                   "    if (r != kIOReturnSuccess) {\n        reply->status = r;\n        return r;\n    }\n"
                   "    reply->status = %s;\n",
                C, M, C, M, isVoid ? "kIOReturnSuccess" : "c.ret");
        fprintf(f, "    if (reply->status == kIOReturnSuccess) {\n");
        for (size_t k = 0; k < m->nparams; k++)
            if (m->params[k].kind == P_SCALAR_OUT)
                fprintf(f, "        if (r == kIOReturnSuccess)\n            r = DKIPCMessage_AddU64(reply, (uint64_t)c.%s_out);\n",
                        m->params[k].name);
        fprintf(f, "    }\n    if (r != kIOReturnSuccess) {\n        DKIPCMessage_Clear(reply);\n"
                   "        DKIPCMessage_Init(reply, kDKIPCReply, msg->objectID, msg->methodID, msg->sequence);\n"
                   "        reply->status = r;\n    }\n    return r;\n}\n");
    }

    if (!m->override) {
        fprintf(f, "\n%s %s_%s(%s *self", m->ret, C, M, C);
        params_decl(f, m, 0);
        fprintf(f, ")\n{\n");
        if (m->kernel && !c->kernel) {
            fprintf(f, "    DKIPCMessage msg, reply;\n"
                       "    kern_return_t r = %s_%s_Marshal(&msg, self ? OSObject_GetID((OSObject *)self) : 0, 0",
                    C, M);
            for (size_t k = 0; k < m->nparams; k++)
                if (m->params[k].kind != P_SCALAR_OUT)
                    fprintf(f, ", %s", m->params[k].name);
            fprintf(f, ");\n    if (r != kIOReturnSuccess)\n        %s;\n"
                       "    r = DKIPC_HostCall(&msg, &reply, NULL);\n    DKIPCMessage_Clear(&msg);\n"
                       "    if (r == kIOReturnSuccess)\n        r = reply.status;\n",
                    isVoid ? "return" : "return r");
            size_t oi = 0;
            for (size_t k = 0; k < m->nparams; k++) {
                const struct iig_param *p = &m->params[k];
                if (p->kind != P_SCALAR_OUT)
                    continue;
                char *pt = pointee(p->type);
                fprintf(f, "    if (r == kIOReturnSuccess) {\n        uint64_t v;\n"
                           "        if (DKIPCMessage_GetU64(&reply, %zu, &v) != kIOReturnSuccess || (uint64_t)(%s)v != v)\n"
                           "            r = kIOReturnIPCError;\n        else if (%s)\n            *%s = (%s)v;\n    }\n",
                        oi++, pt ? pt : "uint64_t", p->name, p->name, pt ? pt : "uint64_t");
                free(pt);
            }
            fprintf(f, "    DKIPCMessage_Clear(&reply);\n%s}\n", isVoid ? "    (void)r;\n" : "    return r;\n");
        } else {
            fprintf(f, "    const OSMethod *m = self ? OSClass_FindMethod(OSObject_GetClass((OSObject *)self), %s_%s_ID) : NULL;\n"
                       "    if (!m)\n        %s;\n    %s((%s_%s_Fn)m->function)(self",
                    C, M, isVoid ? "return" : "return kIOReturnUnsupported", isVoid ? "" : "return ", C, M);
            args_list(f, m, 0, "");
            fprintf(f, ");\n}\n");
        }
    }

    if (is_action_shape(m) && !m->override) {
        fprintf(f, "\nstruct %s_%s_InvokeArgs {\n", C, M);
        for (size_t k = 1; k < m->nparams; k++) {
            fputs("    ", f);
            param_decl(f, &m->params[k]);
            fputs(";\n", f);
        }
        fprintf(f, "    char unused;\n};\n\n");
        fprintf(f, "static void %s_%s_Invoker(OSAction *action, OSObject *target, OSMethodFunction fn, void *args)\n{\n"
                   "    struct %s_%s_InvokeArgs *a = args;\n    (void)a;\n    ((%s_%s_Handler)fn)(target, action",
                C, M, C, M, C, M);
        args_list(f, m, 1, "a->");
        fprintf(f, ");\n}\n\nkern_return_t %s_%s_Invoke(OSAction *action", C, M);
        params_decl(f, m, 1);
        fprintf(f, ")\n{\n    struct %s_%s_InvokeArgs a;\n    memset(&a, 0, sizeof(a));\n", C, M);
        for (size_t k = 1; k < m->nparams; k++)
            fprintf(f, "    memcpy(&a.%s, %s%s, sizeof(a.%s));\n", m->params[k].name, m->params[k].array ? "" : "&",
                    m->params[k].name, m->params[k].name);
        fprintf(f, "    return OSAction_Invoke(action, %s_%s_ID, %s_%s_Invoker, &a, sizeof(a));\n}\n", C, M, C, M);
    }
    if (m->typeOf)
        fprintf(f, "\nkern_return_t %s_CreateAction%s(%s *self, size_t referenceSize, OSAction **action)\n{\n"
                   "    return OSAction_Create((OSObject *)self, %s_%s_ID, %s_ID, NULL, referenceSize, action);\n}\n",
                C, M, C, C, M, m->typeOf);
}

static void gen_impl_class(FILE *f, const struct iig_class *c)
{
    const char *C = c->name;
    bool hasInit = false, hasFree = false;
    for (size_t i = 0; i < c->nmethods; i++) {
        const struct iig_method *m = &c->methods[i];
        hasInit |= strcmp(m->name, "init") == 0;
        hasFree |= strcmp(m->name, "free") == 0;
        if (is_ipc(m))
            gen_impl_method(f, c, m);
    }
    fprintf(f, "\n/* ---- class %s ---- */\n", C);
    if (hasInit)
        fprintf(f, "static bool %s_init_thunk(OSObject *self)\n{\n    if (!OSObject_SuperInit(&%s_Class, self))\n"
                   "        return false;\n    return %s_init_Impl((%s *)self);\n}\n\n", C, C, C, C);
    if (hasFree)
        fprintf(f, "static void %s_free_thunk(OSObject *self)\n{\n    %s_free_Impl((%s *)self);\n"
                   "    OSObject_SuperFree(&%s_Class, self);\n}\n\n", C, C, C, C);
    size_t n = 0;
    fprintf(f, "static const OSMethod %s_methods[] = {\n", C);
    for (size_t i = 0; i < c->nmethods; i++) {
        const struct iig_method *m = &c->methods[i];
        if ((!is_ipc(m) && !m->localOverride) || (m->kernel && !c->kernel))
            continue;
        if (m->queue)
            fprintf(f, "    OS_METHOD_QUEUE(%s_%s_ID, %s_%s_Impl, \"%s\"),\n", C, m->name, C, m->name, m->queue);
        else
            fprintf(f, "    OS_METHOD(%s_%s_ID, %s_%s_Impl),\n", C, m->name, C, m->name);
        n++;
    }
    if (n == 0)
        fprintf(f, "    { 0, NULL, NULL },\n");
    fprintf(f, "};\n\nconst OSClass %s_Class = {\n    .name = \"%s\",\n    .superClass = &%s_Class,\n"
               "    .instanceSize = sizeof(%s),\n    .init = %s%s,\n    .free = %s%s,\n"
               "    .methods = %s_methods,\n    .methodCount = %zu,\n};\nOS_CLASS_REGISTER(%s_Class)\n\n",
            C, C, c->super, C, hasInit ? C : "NULL", hasInit ? "_init_thunk" : "", hasFree ? C : "NULL",
            hasFree ? "_free_thunk" : "", C, n, C);
    fprintf(f, "kern_return_t %s_Dispatch(OSObject *obj, const DKIPCMessage *msg, DKIPCMessage *reply)\n{\n"
               "    if (!obj || !msg || msg->type != kDKIPCCall || !OSObject_IsKindOf(obj, &%s_Class)) {\n"
               "        DKIPCMessage_Init(reply, kDKIPCReply, msg ? msg->objectID : 0, msg ? msg->methodID : 0,\n"
               "                          msg ? msg->sequence : 0);\n"
               "        reply->status = kIOReturnBadArgument;\n        return kIOReturnBadArgument;\n    }\n"
               "    switch (msg->methodID) {\n", C, C);
    for (size_t i = 0; i < c->nmethods; i++) {
        const struct iig_method *m = &c->methods[i];
        if (is_ipc(m) && (!m->kernel || c->kernel))
            fprintf(f, "    case %s_%s_ID:\n        return %s_%s_DispatchIPC(obj, msg, reply);\n", C, m->name, C,
                    m->name);
    }
    fprintf(f, "    default:\n        DKIPCMessage_Init(reply, kDKIPCReply, msg->objectID, msg->methodID, msg->sequence);\n"
               "        reply->status = kIOReturnUnsupported;\n        return kIOReturnUnsupported;\n    }\n}\n"
               "DKIPC_DISPATCH_REGISTER(%s_Class, %s_Dispatch)\n", C, C);
}

/* "Foo.iig" -> "Foo.h"; other names unchanged. Owned. */
static char *map_include(const char *inc)
{
    size_t n = strlen(inc);
    if (n > 6 && strncmp(inc + n - 5, ".iig", 4) == 0) {
        if (strncmp(inc + 1, "DriverKit/", 10) == 0)
            return NULL; /* the runtime's classes: covered by DriverKit.h */
        char *s = NULL;
        const char *base = strrchr(inc, '/');
        base = base ? base + 1 : inc + 1;
        if (asprintf(&s, "\"%.*s.h\"", (int)(inc + n - 5 - base), base) < 0)
            return NULL;
        return s;
    }
    return strdup(inc);
}

bool iig_generate(const struct iig_unit *u, const char *srcPath, const char *headerName, FILE *h, FILE *c)
{
    char guard[256];
    size_t g = 0;
    const char *base = strrchr(headerName, '/');
    base = base ? base + 1 : headerName;
    g += (size_t)snprintf(guard, sizeof(guard), "IIG_GENERATED_");
    for (const char *p = base; *p && g + 3 < sizeof(guard); p++)
        guard[g++] = (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : ((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) ? *p : '_');
    guard[g] = 0;
    fprintf(h, "/* Generated by sysext-iig from %s: do not edit. */\n#ifndef %s\n#define %s\n\n"
               "#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n\n"
               "#include <sysext/driverkit/DKIPC.h>\n#include <sysext/driverkit/DriverKit.h>\n",
            srcPath, guard, guard);
    fprintf(c, "/* Generated by sysext-iig from %s: do not edit. */\n#include \"%s\"\n\n#include <string.h>\n",
            srcPath, base);
    for (size_t i = 0; i < u->nitems; i++) {
        const struct iig_item *it = &u->items[i];
        switch (it->kind) {
        case ITEM_INCLUDE: {
            char *inc = map_include(it->text);
            if (inc)
                fprintf(h, "#include %s\n", inc);
            free(inc);
            break;
        }
        case ITEM_DEFINE:
            fprintf(h, "%s\n", it->text);
            break;
        case ITEM_RAW:
            fprintf(h, "%s\n", it->text);
            if (it->typedefName)
                fprintf(h, "typedef %s %s %s;\n", it->isEnum ? "enum" : "struct", it->typedefName, it->typedefName);
            break;
        case ITEM_CLASS:
            gen_header_class(h, it->cls);
            gen_impl_class(c, it->cls);
            break;
        }
    }
    fprintf(h, "\n#endif\n");
    return !ferror(h) && !ferror(c);
}
