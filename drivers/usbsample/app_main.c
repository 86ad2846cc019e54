/* Placeholder executable for the sample host app: the real app (activation request, user
 * client) replaces it later. */
#include <stdio.h>

int main(void)
{
    puts("usbsample app placeholder");
    return 0;
}
