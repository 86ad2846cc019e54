/* The notary's HTTP API (docs/notary-api.md) on libmicrohttpd, with the asynchronous worker
 * threads that process uploaded submissions. */
#ifndef SX_NOTARY_HTTP_H
#define SX_NOTARY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "notary/store.h"

#define SX_NOTARY_DEFAULT_MAX_UPLOAD (2ull << 30) /* 2 GiB */

typedef struct sx_notary_server_opts {
    const char *listen;            /* "IPv4:PORT"; PORT 0 = ephemeral; NULL = 127.0.0.1:0 */
    const char *const *trust;      /* trusted developer roots for the checks */
    size_t n_trust;
    uint64_t max_upload;           /* 0 = SX_NOTARY_DEFAULT_MAX_UPLOAD */
    unsigned workers;              /* 0 = 2 */
} sx_notary_server_opts;

typedef struct sx_notary_server sx_notary_server;

/* Bind, start serving and start the workers (which first pick up submissions left In
 * Progress by a previous run). The store stays owned by the caller and must outlive the
 * server. */
int sx_notary_server_start(sx_store *store, const sx_notary_server_opts *o, sx_notary_server **out);
/* The bound port (useful with PORT 0). */
uint16_t sx_notary_server_port(const sx_notary_server *srv);
/* Stop accepting, finish the running checks, join every thread, free. NULL is fine. */
void sx_notary_server_stop(sx_notary_server *srv);

#endif
