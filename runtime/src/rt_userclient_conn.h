/* Private to the runtime: the driver side of user-client connections (protocol in
 * include/sysext/driverkit/DKUserClientProtocol.h). */
#ifndef SYSEXT_RT_USERCLIENT_CONN_H
#define SYSEXT_RT_USERCLIENT_CONN_H

#include <stdint.h>

#include <sysext/driverkit/DriverKit.h>

/* Run IOService::NewUserClient(type) on `service`'s queue and serve the new user client on
 * `fd` (a SOCK_SEQPACKET socket to the app) from a thread of its own until the app closes it;
 * then the user client is terminated and released. `fd` is consumed in every case (closed on
 * failure). Returns NewUserClient's result, kIOReturnBadArgument for a NULL service or bad fd,
 * kIOReturnNoResources when the thread cannot be started. */
kern_return_t rt_uc_conn_open(IOService *service, uint32_t type, int fd);

/* Connections being served right now (tests). */
size_t rt_uc_conn_count(void);

#endif
