/* The DriverKit-style runtime: include this one header. See runtime/README.md. */
#ifndef SYSEXT_DRIVERKIT_DRIVERKIT_H
#define SYSEXT_DRIVERKIT_DRIVERKIT_H

#include <sysext/driverkit/IOReturn.h>
#include <sysext/driverkit/OSObject.h>
#include <sysext/driverkit/OSCollections.h>
#include <sysext/driverkit/IODispatchQueue.h>
#include <sysext/driverkit/OSAction.h>
#include <sysext/driverkit/IODispatchSource.h>
#include <sysext/driverkit/IOMemoryDescriptor.h>
#include <sysext/driverkit/IODataQueueDispatchSource.h>
#include <sysext/driverkit/IOService.h>
#include <sysext/driverkit/IOUserClient.h>

#endif
