/* The sample app's executable. Its sample-printing loop (usbsample_print_loop in
 * sample_queue.c) runs over the data queue memory of the driver's user client; the lead wires
 * it once sysext/ioconnect.h lands:
 *
 *     sysext_ioservice_get_matching(...)  -> the MyUserUSBInterfaceDriver instance
 *     sysext_ioservice_open(id, USBSAMPLE_USER_CLIENT_TYPE, &c)
 *     sysext_ioconnect_map_memory(c, USBSAMPLE_MEMORY_DATA_QUEUE, &addr, &len)
 *     usbsample_queue_attach(&q, addr, len); usbsample_print_loop(&q, stdout, ...)
 *     set the rate: sysext_ioconnect_call_method(c, kUSBSampleSelectorSetRate, &hz, 1, ...)
 *
 * Until then `usbsample-app --ring FILE` prints the samples of a ring kept in a file (a memfd
 * exposed as /proc/PID/fd/N works), which is also how it can be tried by hand. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sample_queue.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "--ring") != 0) {
        fprintf(stderr, "usage: usbsample-app --ring FILE\n");
        return 2;
    }
    int fd = open(argv[2], O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
        perror(argv[2]);
        if (fd >= 0)
            close(fd);
        return 2;
    }
    void *mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (mem == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    usbsample_queue q;
    if (usbsample_queue_attach(&q, mem, (size_t)st.st_size) != 0) {
        fprintf(stderr, "usbsample-app: %s is not a data queue ring\n", argv[2]);
        munmap(mem, (size_t)st.st_size);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    usbsample_print_stats stats = { 0 };
    int r = usbsample_print_loop(&q, stdout, 0, 0, 1000, &g_stop, &stats);
    munmap(mem, (size_t)st.st_size);
    return r == 0 ? 0 : 1;
}
