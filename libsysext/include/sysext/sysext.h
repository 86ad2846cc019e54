/* The umbrella header: everything libsysext offers. */
#ifndef SYSEXT_SYSEXT_H
#define SYSEXT_SYSEXT_H

#include "sysext/common.h"
#include "sysext/errors.h"
#include "sysext/archive.h"
#include "sysext/identity.h"
#include "sysext/version.h"
#include "sysext/codesign.h"
#include "sysext/bundle.h"
#include "sysext/ioreg.h"
#include "sysext/device.h"
#include "sysext/activation.h"
#include "sysext/ioconnect.h"
#include "sysext/notary.h"

#endif
