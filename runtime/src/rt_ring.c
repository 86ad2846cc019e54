#include "rt_internal.h"
#include "rt_ring.h"

/* Sequentially consistent on purpose: with the waiter flags (also seq_cst) this is Dekker's
 * pattern -- "publish my offset, then look at your flag" against "raise my flag, then look at
 * your offset" -- so a wake-up can never be lost. (On x86 the store is one xchg, the price of
 * the fence it replaces; the load is a plain mov.) */
static inline uint32_t ld(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static inline void st(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static inline uint32_t rd_len(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void wr_len(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

void rt_ring_format(void *mem, uint32_t data_size)
{
    struct rt_ring_header *h = mem;
    memset(h, 0, sizeof(*h));
    h->magic = RT_RING_MAGIC;
    h->version = RT_RING_VERSION;
    h->data_size = data_size;
    h->header_size = RT_RING_HEADER_SIZE;
}

static bool offset_ok(const struct rt_ring *r, uint32_t off)
{
    return off < r->size && (off & 3u) == 0;
}

kern_return_t rt_ring_attach(struct rt_ring *r, void *mem, size_t mem_size)
{
    if (!mem || mem_size < RT_RING_HEADER_SIZE)
        return kIOReturnError;
    struct rt_ring_header *h = mem;
    uint32_t size = ld(&h->data_size);
    if (ld(&h->magic) != RT_RING_MAGIC || ld(&h->version) != RT_RING_VERSION ||
        ld(&h->header_size) != RT_RING_HEADER_SIZE || size < RT_RING_MIN_SIZE || size > RT_RING_MAX_SIZE ||
        (size & 3u) || (size_t)size > mem_size - RT_RING_HEADER_SIZE)
        return kIOReturnError;
    r->hdr = h;
    r->data = (uint8_t *)mem + RT_RING_HEADER_SIZE;
    r->size = size;
    r->head = ld(&h->head);
    r->tail = ld(&h->tail);
    if (!offset_ok(r, r->head) || !offset_ok(r, r->tail))
        return kIOReturnError;
    return kIOReturnSuccess;
}

uint32_t rt_ring_max_entry(const struct rt_ring *r)
{
    /* An entry must fit an EMPTY ring wherever head == tail happens to be: either before the end
     * or, wrapped, below head. Half the area minus the prefix and the gap always does. */
    return ((r->size / 2u) - 8u) & ~3u;
}

/* Where an entry of total `need` bytes goes, or UINT32_MAX when it does not fit now. */
static kern_return_t place(struct rt_ring *r, uint32_t need, uint32_t *pos, bool *wrap)
{
    uint32_t head = ld(&r->hdr->head), tail = r->tail;
    if (!offset_ok(r, head))
        return kIOReturnError;
    *wrap = false;
    if (tail >= head) {
        uint32_t end_room = r->size - tail;
        if (end_room > need || (end_room == need && head != 0)) {
            *pos = tail;
            return kIOReturnSuccess;
        }
        if (head > need) {
            *pos = 0;
            *wrap = true;
            return kIOReturnSuccess;
        }
        return kIOReturnOverrun;
    }
    if (head - tail > need) {
        *pos = tail;
        return kIOReturnSuccess;
    }
    return kIOReturnOverrun;
}

static bool entry_need(uint32_t len, uint32_t *need)
{
    uint64_t n = 4ull + (((uint64_t)len + 3u) & ~3ull);
    if (n > UINT32_MAX)
        return false;
    *need = (uint32_t)n;
    return true;
}

kern_return_t rt_ring_enqueue(struct rt_ring *r, uint32_t size, rt_ring_fill_fn fn, void *ctx)
{
    uint32_t need, pos;
    bool wrap;
    if (size == 0 || size > rt_ring_max_entry(r) || !entry_need(size, &need))
        return kIOReturnBadArgument;
    kern_return_t ret = place(r, need, &pos, &wrap);
    if (ret != kIOReturnSuccess)
        return ret;
    if (wrap)
        wr_len(r->data + r->tail, RT_RING_WRAP);
    wr_len(r->data + pos, size);
    if (fn)
        fn(r->data + pos + 4, size, ctx);
    uint32_t nt = pos + need;
    if (nt == r->size)
        nt = 0;
    r->tail = nt;
    st(&r->hdr->tail, nt);
    return kIOReturnSuccess;
}

bool rt_ring_can_enqueue(struct rt_ring *r, uint32_t size, kern_return_t *err)
{
    uint32_t need, pos;
    bool wrap;
    *err = kIOReturnSuccess;
    if (size == 0 || size > rt_ring_max_entry(r) || !entry_need(size, &need))
        return false;
    kern_return_t ret = place(r, need, &pos, &wrap);
    if (ret == kIOReturnError)
        *err = ret;
    return ret == kIOReturnSuccess;
}

bool rt_ring_has_data(struct rt_ring *r, kern_return_t *err)
{
    uint32_t tail = ld(&r->hdr->tail);
    *err = offset_ok(r, tail) ? kIOReturnSuccess : kIOReturnError;
    return *err == kIOReturnSuccess && tail != r->head;
}

kern_return_t rt_ring_dequeue(struct rt_ring *r, rt_ring_read_fn fn, void *ctx, bool remove)
{
    uint32_t tail = ld(&r->hdr->tail), head = r->head;
    if (!offset_ok(r, tail))
        return kIOReturnError;
    if (head == tail)
        return kIOReturnUnderrun;
    uint32_t len = rd_len(r->data + head); /* head < size and 4-aligned: 4 bytes are inside */
    if (len == RT_RING_WRAP) {
        if (tail > head) /* the live bytes are [head, tail): no room for a wrap */
            return kIOReturnError;
        head = 0;
        if (head == tail)
            return kIOReturnError;
        len = rd_len(r->data);
    }
    uint32_t need, avail = tail > head ? tail - head : r->size - head;
    if (len == 0 || len == RT_RING_WRAP || !entry_need(len, &need) || need > avail)
        return kIOReturnError;
    if (fn)
        fn(r->data + head + 4, len, ctx);
    if (remove) {
        uint32_t nh = head + need;
        if (nh == r->size)
            nh = 0;
        r->head = nh;
        st(&r->hdr->head, nh);
    }
    return kIOReturnSuccess;
}
