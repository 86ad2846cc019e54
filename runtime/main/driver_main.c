/* main() of a driver executable (static library sysext_runtime_main): a driver is a set of
 * classes; the process is the runtime's host-message loop. */
#include <sysext/driverkit/DKIPC.h>

int main(int argc, char **argv);

int main(int argc, char **argv)
{
    return DKDriverMain(argc, argv);
}
