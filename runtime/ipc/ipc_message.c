/* Building, encoding and decoding of IPC messages (format in DKIPC.h). The decoder trusts
 * nothing: every length is checked against what is left before it is used. */
#include "rt_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <unistd.h>

#include <sysext/driverkit/DKIPC.h>

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static size_t pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

const char *DKIPCMessageType_Name(unsigned type)
{
    static const char *const names[] = { NULL,   "Create", "Start", "Stop",      "Terminate",
                                         "Free", "Call",   "Reply", "Completion" };
    return type > 0 && type < DK_ARRAY_SIZE(names) ? names[type] : "?";
}

void DKIPCMessage_Init(DKIPCMessage *msg, DKIPCMessageType type, uint64_t objectID, uint64_t methodID,
                       uint64_t sequence)
{
    memset(msg, 0, sizeof(*msg));
    msg->type = (uint16_t)type;
    msg->objectID = objectID;
    msg->methodID = methodID;
    msg->sequence = sequence;
}

void DKIPCMessage_Clear(DKIPCMessage *msg)
{
    if (!msg)
        return;
    if (msg->ownsFDs)
        for (uint32_t i = 0; i < msg->fdCount; i++)
            if (msg->fds[i] >= 0)
                close(msg->fds[i]);
    free(msg->buf);
    memset(msg, 0, sizeof(*msg));
}

/* Size of the encoded message so far plus an argument of `length` bytes; false past the cap. */
static bool fits(const DKIPCMessage *msg, size_t length)
{
    size_t total = DK_IPC_HEADER_SIZE;
    for (uint32_t i = 0; i < msg->argCount; i++)
        total += 8 + pad8(msg->args[i].length);
    return length <= DK_IPC_MAX_MESSAGE && total + 8 + pad8(length) <= DK_IPC_MAX_MESSAGE;
}

static kern_return_t add_arg(DKIPCMessage *msg, uint32_t type, const void *data, size_t length, uint64_t value)
{
    if (msg->argCount >= DK_IPC_MAX_ARGS || !fits(msg, length))
        return kIOReturnNoSpace;
    if (length > 0) {
        if (msg->bufLen + length > msg->bufCap) {
            size_t ncap = msg->bufCap ? msg->bufCap : 256;
            while (ncap < msg->bufLen + length)
                ncap *= 2; /* bounded: bufLen + length <= args * DK_IPC_MAX_MESSAGE */
            uint8_t *nbuf = realloc(msg->buf, ncap);
            if (!nbuf)
                return kIOReturnNoMemory;
            /* re-point earlier args into the moved buffer */
            for (uint32_t i = 0; i < msg->argCount; i++)
                if (msg->args[i].data)
                    msg->args[i].data = nbuf + (msg->args[i].data - msg->buf);
            msg->buf = nbuf;
            msg->bufCap = ncap;
        }
        memcpy(msg->buf + msg->bufLen, data, length);
    }
    DKIPCArg *a = &msg->args[msg->argCount++];
    memset(a, 0, sizeof(*a));
    a->type = type;
    a->length = (uint32_t)length;
    a->data = length > 0 ? msg->buf + msg->bufLen : NULL;
    a->value = value;
    msg->bufLen += length;
    return kIOReturnSuccess;
}

kern_return_t DKIPCMessage_AddU64(DKIPCMessage *msg, uint64_t value)
{
    return add_arg(msg, kDKIPCArgU64, NULL, 0, value);
}

kern_return_t DKIPCMessage_AddBytes(DKIPCMessage *msg, const void *data, size_t length)
{
    if (!data && length > 0)
        return kIOReturnBadArgument;
    return add_arg(msg, kDKIPCArgBytes, data, length, 0);
}

kern_return_t DKIPCMessage_AddString(DKIPCMessage *msg, const char *s)
{
    if (!s)
        return kIOReturnBadArgument;
    return add_arg(msg, kDKIPCArgString, s, strlen(s) + 1, 0);
}

kern_return_t DKIPCMessage_AddObject(DKIPCMessage *msg, uint64_t objectID)
{
    if (objectID == 0)
        return kIOReturnBadArgument;
    return add_arg(msg, kDKIPCArgObject, NULL, 0, objectID);
}

kern_return_t DKIPCMessage_AddFD(DKIPCMessage *msg, int fd)
{
    if (fd < 0)
        return kIOReturnBadArgument;
    if (msg->fdCount >= DK_IPC_MAX_FDS)
        return kIOReturnNoSpace;
    kern_return_t r = add_arg(msg, kDKIPCArgFD, NULL, 0, msg->fdCount);
    if (r == kIOReturnSuccess)
        msg->fds[msg->fdCount++] = fd;
    return r;
}

/* Encoded payload length of an argument. */
static uint32_t wire_length(const DKIPCArg *a)
{
    switch (a->type) {
    case kDKIPCArgU64:
    case kDKIPCArgObject:
        return 8;
    case kDKIPCArgFD:
        return 4;
    default:
        return a->length;
    }
}

kern_return_t DKIPCMessage_Encode(const DKIPCMessage *msg, uint8_t **out, size_t *outLen)
{
    if (!msg || !out || !outLen || msg->argCount > DK_IPC_MAX_ARGS || msg->fdCount > DK_IPC_MAX_FDS)
        return kIOReturnBadArgument;
    size_t total = DK_IPC_HEADER_SIZE;
    for (uint32_t i = 0; i < msg->argCount; i++)
        total += 8 + pad8(wire_length(&msg->args[i]));
    if (total > DK_IPC_MAX_MESSAGE)
        return kIOReturnNoSpace;
    uint8_t *b = calloc(1, total);
    if (!b)
        return kIOReturnNoMemory;
    put32(b, DK_IPC_MAGIC);
    put16(b + 4, DK_IPC_VERSION);
    put16(b + 6, msg->type);
    put32(b + 8, (uint32_t)total);
    put16(b + 12, (uint16_t)msg->fdCount);
    put16(b + 14, (uint16_t)msg->argCount);
    put64(b + 16, msg->objectID);
    put64(b + 24, msg->methodID);
    put64(b + 32, msg->sequence);
    put32(b + 40, (uint32_t)msg->status);
    size_t off = DK_IPC_HEADER_SIZE;
    for (uint32_t i = 0; i < msg->argCount; i++) {
        const DKIPCArg *a = &msg->args[i];
        uint32_t len = wire_length(a);
        put32(b + off, a->type);
        put32(b + off + 4, len);
        off += 8;
        if (a->type == kDKIPCArgU64 || a->type == kDKIPCArgObject)
            put64(b + off, a->value);
        else if (a->type == kDKIPCArgFD)
            put32(b + off, (uint32_t)a->value);
        else if (len > 0)
            memcpy(b + off, a->data, len);
        off += pad8(len);
    }
    *out = b;
    *outLen = total;
    return kIOReturnSuccess;
}

__attribute__((format(printf, 4, 5))) static kern_return_t fail(DKIPCError *err, kern_return_t code, size_t off,
                                                                const char *fmt, ...)
{
    if (err) {
        err->code = code;
        err->offset = off;
        int n = snprintf(err->message, sizeof(err->message), "IPC message offset %zu: ", off);
        if (n > 0 && (size_t)n < sizeof(err->message)) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err->message + n, sizeof(err->message) - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

kern_return_t DKIPCMessage_Decode(const uint8_t *data, size_t len, const int *fds, size_t fdCount,
                                  DKIPCObjectTable *table, DKIPCMessage *out, DKIPCError *err)
{
    kern_return_t r;
    memset(out, 0, sizeof(*out));
    if (err)
        memset(err, 0, sizeof(*err));
    /* take the descriptors first so that every error path closes them */
    out->ownsFDs = true;
    if (!fds)
        fdCount = 0;
    size_t keep = fdCount < DK_IPC_MAX_FDS ? fdCount : DK_IPC_MAX_FDS;
    for (size_t i = 0; i < fdCount; i++) {
        if (i < keep)
            out->fds[i] = fds[i];
        else if (fds[i] >= 0)
            close(fds[i]);
    }
    out->fdCount = (uint32_t)keep;

    if (!data || len < DK_IPC_HEADER_SIZE) {
        r = fail(err, kIOReturnUnderrun, len, "truncated: %zu bytes, the header needs %u", len,
                 DK_IPC_HEADER_SIZE);
        goto bad;
    }
    if (get32(data) != DK_IPC_MAGIC) {
        r = fail(err, kIOReturnBadArgument, 0, "bad magic 0x%08x (expected 0x%08x)", get32(data), DK_IPC_MAGIC);
        goto bad;
    }
    if (get16(data + 4) != DK_IPC_VERSION) {
        r = fail(err, kIOReturnUnsupported, 4, "unsupported version %u (expected %u)", get16(data + 4),
                 DK_IPC_VERSION);
        goto bad;
    }
    uint16_t type = get16(data + 6);
    if (type < kDKIPCCreate || type > kDKIPCCompletion) {
        r = fail(err, kIOReturnBadArgument, 6, "unknown message type %u", type);
        goto bad;
    }
    uint32_t length = get32(data + 8);
    if (length != len) {
        r = fail(err, kIOReturnBadArgument, 8, "length field %u but %zu bytes received", length, len);
        goto bad;
    }
    if (length > DK_IPC_MAX_MESSAGE) {
        r = fail(err, kIOReturnNoSpace, 8, "length %u exceeds the limit %u", length, DK_IPC_MAX_MESSAGE);
        goto bad;
    }
    uint16_t nfds = get16(data + 12);
    if (nfds != fdCount) {
        r = fail(err, kIOReturnBadArgument, 12, "fdCount %u but %zu descriptors received", nfds, fdCount);
        goto bad;
    }
    uint16_t nargs = get16(data + 14);
    if (nargs > DK_IPC_MAX_ARGS) {
        r = fail(err, kIOReturnBadArgument, 14, "argCount %u exceeds the limit %u", nargs, DK_IPC_MAX_ARGS);
        goto bad;
    }
    if (get32(data + 44) != 0) {
        r = fail(err, kIOReturnBadArgument, 44, "reserved field is 0x%08x, must be 0", get32(data + 44));
        goto bad;
    }
    out->type = type;
    out->objectID = get64(data + 16);
    out->methodID = get64(data + 24);
    out->sequence = get64(data + 32);
    out->status = (int32_t)get32(data + 40);
    if (out->objectID == 0 && type != kDKIPCReply) {
        r = fail(err, kIOReturnBadArgument, 16, "objectID 0 in a %s message", DKIPCMessageType_Name(type));
        goto bad;
    }
    if (table && type != kDKIPCCreate && out->objectID != 0 && !DKIPCObjectTable_Lookup(table, out->objectID)) {
        r = fail(err, kIOReturnNotFound, 16, "unknown object id %" PRIu64, out->objectID);
        goto bad;
    }

    /* one copy of the payloads, which the args point into */
    size_t plen = len - DK_IPC_HEADER_SIZE;
    if (plen > 0) {
        out->buf = malloc(plen);
        if (!out->buf) {
            r = fail(err, kIOReturnNoMemory, DK_IPC_HEADER_SIZE, "out of memory");
            goto bad;
        }
        memcpy(out->buf, data + DK_IPC_HEADER_SIZE, plen);
        out->bufLen = out->bufCap = plen;
    }
    bool fdUsed[DK_IPC_MAX_FDS] = { false };
    size_t off = DK_IPC_HEADER_SIZE;
    for (uint32_t i = 0; i < nargs; i++) {
        if (len - off < 8) {
            r = fail(err, kIOReturnUnderrun, off, "argument %u: truncated header (%zu bytes left, need 8)", i,
                     len - off);
            goto bad;
        }
        uint32_t at = get32(data + off), alen = get32(data + off + 4);
        size_t aoff = off + 8;
        if (alen > len - aoff) {
            r = fail(err, kIOReturnUnderrun, off + 4, "argument %u: length %u but %zu bytes left", i, alen,
                     len - aoff);
            goto bad;
        }
        uint32_t want = at == kDKIPCArgU64 || at == kDKIPCArgObject ? 8 : at == kDKIPCArgFD ? 4 : UINT32_MAX;
        if (want != UINT32_MAX && alen != want) {
            r = fail(err, kIOReturnBadArgument, off + 4, "argument %u: length %u, %s has %u", i, alen,
                     at == kDKIPCArgU64 ? "a U64" : at == kDKIPCArgFD ? "an FD" : "an OBJECT", want);
            goto bad;
        }
        size_t padded = pad8(alen);
        if (padded > len - aoff) {
            r = fail(err, kIOReturnUnderrun, aoff + alen, "argument %u: padding truncated", i);
            goto bad;
        }
        for (size_t k = alen; k < padded; k++)
            if (data[aoff + k] != 0) {
                r = fail(err, kIOReturnBadArgument, aoff + k, "argument %u: nonzero padding byte", i);
                goto bad;
            }
        DKIPCArg *a = &out->args[i];
        a->type = at;
        a->length = alen;
        const uint8_t *p = data + aoff;
        switch (at) {
        case kDKIPCArgU64:
        case kDKIPCArgObject:
            a->value = get64(p);
            if (at == kDKIPCArgObject) {
                if (a->value == 0) {
                    r = fail(err, kIOReturnBadArgument, aoff, "argument %u: object id 0", i);
                    goto bad;
                }
                if (table) {
                    a->object = DKIPCObjectTable_Lookup(table, a->value);
                    if (!a->object) {
                        r = fail(err, kIOReturnNotFound, aoff, "argument %u: unknown object id %" PRIu64, i,
                                 a->value);
                        goto bad;
                    }
                }
            }
            break;
        case kDKIPCArgFD:
            a->value = get32(p);
            if (a->value >= nfds) {
                r = fail(err, kIOReturnBadArgument, aoff, "argument %u: fd index %" PRIu64 " but %u attached", i,
                         a->value, nfds);
                goto bad;
            }
            if (fdUsed[a->value]) {
                r = fail(err, kIOReturnBadArgument, aoff, "argument %u: fd index %" PRIu64 " used twice", i,
                         a->value);
                goto bad;
            }
            fdUsed[a->value] = true;
            break;
        case kDKIPCArgString:
            if (alen == 0 || p[alen - 1] != 0 || memchr(p, 0, alen) != p + alen - 1) {
                r = fail(err, kIOReturnBadArgument, aoff, "argument %u: string not NUL-terminated exactly at its end",
                         i);
                goto bad;
            }
            a->data = out->buf + (aoff - DK_IPC_HEADER_SIZE);
            break;
        case kDKIPCArgBytes:
            a->data = alen ? out->buf + (aoff - DK_IPC_HEADER_SIZE) : NULL;
            break;
        default:
            r = fail(err, kIOReturnBadArgument, off, "argument %u: unknown type %u", i, at);
            goto bad;
        }
        off = aoff + padded;
    }
    if (off != len) {
        r = fail(err, kIOReturnBadArgument, off, "%zu trailing bytes after %u arguments", len - off, nargs);
        goto bad;
    }
    for (uint32_t i = 0; i < nfds; i++)
        if (!fdUsed[i]) {
            r = fail(err, kIOReturnBadArgument, 12, "descriptor %u attached but no argument names it", i);
            goto bad;
        }
    out->argCount = nargs;
    return kIOReturnSuccess;
bad:
    DKIPCMessage_Clear(out);
    return r;
}

static const DKIPCArg *arg_of(const DKIPCMessage *msg, uint32_t index, uint32_t type)
{
    if (!msg || index >= msg->argCount || msg->args[index].type != type)
        return NULL;
    return &msg->args[index];
}

kern_return_t DKIPCMessage_GetU64(const DKIPCMessage *msg, uint32_t index, uint64_t *out)
{
    const DKIPCArg *a = arg_of(msg, index, kDKIPCArgU64);
    if (!a || !out)
        return kIOReturnBadArgument;
    *out = a->value;
    return kIOReturnSuccess;
}

kern_return_t DKIPCMessage_GetBytes(const DKIPCMessage *msg, uint32_t index, const void **data, size_t *length)
{
    const DKIPCArg *a = arg_of(msg, index, kDKIPCArgBytes);
    if (!a || !data || !length)
        return kIOReturnBadArgument;
    *data = a->data;
    *length = a->length;
    return kIOReturnSuccess;
}

kern_return_t DKIPCMessage_GetString(const DKIPCMessage *msg, uint32_t index, const char **out)
{
    const DKIPCArg *a = arg_of(msg, index, kDKIPCArgString);
    if (!a || !out)
        return kIOReturnBadArgument;
    *out = (const char *)a->data;
    return kIOReturnSuccess;
}

kern_return_t DKIPCMessage_GetObject(const DKIPCMessage *msg, uint32_t index, OSObject **out)
{
    const DKIPCArg *a = arg_of(msg, index, kDKIPCArgObject);
    if (!a || !out || !a->object)
        return kIOReturnBadArgument;
    *out = a->object;
    return kIOReturnSuccess;
}

kern_return_t DKIPCMessage_TakeFD(DKIPCMessage *msg, uint32_t index, int *out)
{
    const DKIPCArg *a = arg_of(msg, index, kDKIPCArgFD);
    if (!a || !out || !msg->ownsFDs || a->value >= msg->fdCount || msg->fds[a->value] < 0)
        return kIOReturnBadArgument;
    *out = msg->fds[a->value];
    msg->fds[a->value] = -1;
    return kIOReturnSuccess;
}
