/* sysextctl device attach usbip://HOST[:PORT]/BUSID | detach ID | list [--remote HOST[:PORT]]
 * [--json]: USB/IP devices through sysextd. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { O_JSON = 256, O_REMOTE };

const struct sx_opt cmd_device_opts[] = {
    {O_REMOTE, "remote", "HOST[:PORT]",
     "list: the devices a USB/IP server exports (default port 3240)"},
    {O_JSON, "json", NULL, "list, attach: print JSON"},
    {0, NULL, NULL, NULL},
};

int cmd_device(const struct sx_cmd *self, int argc, char **argv)
{
    unsigned flags = 0;
    const char *remote = NULL;
    struct sx_optstate st = {0};
    int c;
    /* Options before the verb, then (a second pass, the verb as argv[0]) after it. */
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1) {
        switch (c) {
        case O_JSON: flags |= SYSEXT_OUTPUT_JSON; break;
        case O_REMOTE: remote = st.arg; break;
        default: return SX_EXIT_ERROR;
        }
    }
    if (st.ind >= argc)
        return sx_usage_error(self, "expected attach, detach or list");
    const char *verb = argv[st.ind];
    int sub_argc = argc - st.ind;
    char **sub_argv = argv + st.ind;
    struct sx_optstate st2 = {0};
    while ((c = sx_opt_next(self, &st2, sub_argc, sub_argv)) != -1) {
        switch (c) {
        case O_JSON: flags |= SYSEXT_OUTPUT_JSON; break;
        case O_REMOTE: remote = st2.arg; break;
        default: return SX_EXIT_ERROR;
        }
    }
    int nargs = sub_argc - st2.ind;
    char **args = sub_argv + st2.ind;
    if (!strcmp(verb, "list")) {
        if (nargs)
            return sx_usage_error(self, "list: unexpected argument '%s'", args[0]);
        char *text = NULL;
        int rc = sysext_device_list(sx_global_socket, remote, flags, &text);
        if (rc < 0)
            return sx_fail(self, rc);
        sx_print(text);
        free(text);
        return SX_EXIT_OK;
    }
    if (remote)
        return sx_usage_error(self, "--remote goes with list");
    if (!strcmp(verb, "attach")) {
        if (nargs != 1)
            return sx_usage_error(self, "attach: expected one usbip://HOST[:PORT]/BUSID");
        uint64_t id = 0;
        int rc = sysext_device_attach(sx_global_socket, args[0], &id);
        if (rc < 0)
            return sx_fail(self, rc);
        if (flags & SYSEXT_OUTPUT_JSON)
            printf("{ \"id\": %" PRIu64 " }\n", id);
        else
            printf("attached %s as %#" PRIx64 "\n", args[0], id);
        return SX_EXIT_OK;
    }
    if (!strcmp(verb, "detach")) {
        if (nargs != 1)
            return sx_usage_error(self, "detach: expected one device ID");
        char *end = NULL;
        errno = 0;
        unsigned long long id = strtoull(args[0], &end, 0);
        if (errno || !end || *end || end == args[0] || args[0][0] == '-')
            return sx_usage_error(self, "detach: '%s' is not a device ID", args[0]);
        int rc = sysext_device_detach(sx_global_socket, (uint64_t)id);
        if (rc < 0)
            return sx_fail(self, rc);
        printf("detached %#llx\n", id);
        return SX_EXIT_OK;
    }
    return sx_usage_error(self, "unknown verb '%s' (attach, detach or list)", verb);
}
