/* Stand-in main of the sample driver executables until the runtime's sysext_runtime_main
 * (whose main() is `return DKDriverMain(argc, argv);`) lands: then the lead links that and
 * drops this file. It only checks that the driver's classes are registered. */
#include <stdio.h>

#include <sysext/driverkit/DriverKit.h>

#include "usbsample_protocol.h"

int main(void)
{
    const char *classes[] = { "MyUserUSBInterfaceDriver", "MyUserUSBInterfaceDriverUserClient" };
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        if (!OSClass_Find(classes[i])) {
            fprintf(stderr, "usbsample-driver: class %s is not registered\n", classes[i]);
            return 1;
        }
    }
    printf("usbsample driver v%d: classes registered; waiting for the runtime's DKDriverMain\n", USBSAMPLE_VERSION);
    return 0;
}
