#ifndef SX_CS_SIGN_INTERNAL_H
#define SX_CS_SIGN_INTERNAL_H

#include "sysext/codesign.h"

int sx_sign_bundle(const char *path, const sysext_sign_options *o);

#endif
