#include <stdio.h>
#include <stdlib.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { O_JSON = 256, O_SNAPSHOT, O_BRIEF };

/* The registry comes from sysextd (the ioreg request, an admin call), or from a snapshot file
 * (the binary plist the daemon returns, docs/ioreg.md) with --snapshot. */
const struct sx_opt cmd_ioreg_opts[] = {
    {O_SNAPSHOT, "snapshot", "FILE", "render the registry snapshot in FILE (binary or XML plist)"},
    {O_JSON, "json", NULL, "print the registry as JSON"},
    {O_BRIEF, "brief", NULL, "leave out the property dictionaries (like ioreg without -l)"},
    {0, NULL, NULL, NULL},
};

int cmd_ioreg(const struct sx_cmd *self, int argc, char **argv)
{
    unsigned flags = 0;
    const char *snapshot = NULL;
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1) {
        switch (c) {
        case O_JSON: flags |= SYSEXT_OUTPUT_JSON; break;
        case O_BRIEF: flags |= SYSEXT_IOREG_NO_PROPERTIES; break;
        case O_SNAPSHOT: snapshot = st.arg; break;
        default: return SX_EXIT_ERROR;
        }
    }
    if (st.ind != argc)
        return sx_usage_error(self, "unexpected argument '%s'", argv[st.ind]);
    char *text = NULL;
    int r;
    if (snapshot) {
        r = sysext_ioreg_render_file(snapshot, flags, &text);
    } else {
        void *snap = NULL;
        size_t len = 0;
        r = sysext_device_registry(sx_global_socket, &snap, &len);
        if (r == 0)
            r = sysext_ioreg_render(snap, len, flags, &text);
        free(snap);
    }
    if (r < 0)
        return sx_fail(self, r);
    sx_print(text);
    free(text);
    return SX_EXIT_OK;
}
