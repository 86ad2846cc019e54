/* Unpack arbitrary bytes from memory into a scratch directory, then check that nothing was
 * written beside the target directory and that a failure left the target empty. */
#include "util/common.h"

#include <dirent.h>
#include <unistd.h>

#include "bundle/zip.h"
#include "util/fs.h"

static char base[] = "/tmp/sx-fuzz-zip-XXXXXX";
static bool ready;

static void cleanup(void)
{
    sx_rm_rf(base);
}

/* Entries in `dir` other than `allow` (NULL: any entry counts). */
static size_t others(const char *dir, const char *allow)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && (!allow || strcmp(e->d_name, allow)))
            n++;
    if (d)
        closedir(d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        if (!mkdtemp(base))
            abort();
        atexit(cleanup);
        ready = true;
    }
    char out[sizeof(base) + 8];
    snprintf(out, sizeof(out), "%s/out", base);
    sysext_unpack_limits lim = {.max_total_bytes = 4u << 20, .max_entries = 512, .max_ratio = 200};
    sx_zip_items items = {0};
    int r = sx_zip_unpack_mem(data, size, "fuzz", out, &lim, &items);
    if (others(base, "out") != 0)
        abort(); /* something was written outside the target */
    if (r < 0 && sx_path_exists(out))
        abort(); /* a failed unpack left its (new) target behind */
    if (r == 0 && others(out, NULL) != items.n)
        abort();
    sx_zip_items_free(&items);
    sx_rm_rf(out);
    return 0;
}
