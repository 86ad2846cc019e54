/* Placeholder executable for the sample driver extension: the real DriverKit-style driver
 * replaces it once runtime/ exists. */
#include <stdio.h>

int main(void)
{
    puts("usbsample driver placeholder");
    return 0;
}
