#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum {
    OPT_TYPE = 't',
    OPT_INFO = 'i',
    OPT_EXE = 'e',
    OPT_OUTPUT = 'o',
    OPT_ID = 256,
    OPT_VERSION,
    OPT_SHORT,
    OPT_NAME,
    OPT_ICON,
    OPT_EMBED,
    OPT_BINARY,
    OPT_FORCE,
};

const struct sx_opt cmd_build_opts[] = {
    {OPT_TYPE, "type", "dext|sysext|app", "kind of bundle to build (required)"},
    {OPT_INFO, "info", "FILE", "Info.plist template, XML or binary (required)"},
    {OPT_EXE, "executable", "FILE", "the main executable, copied with its mode (required)"},
    {OPT_OUTPUT, "output", "PATH", "the bundle to create, ending in .dext/.systemextension/.app"},
    {OPT_ID, "id", "ID", "set CFBundleIdentifier"},
    {OPT_VERSION, "version", "V", "set CFBundleVersion"},
    {OPT_SHORT, "short-version", "S", "set CFBundleShortVersionString"},
    {OPT_NAME, "name", "DISPLAY_NAME", "set CFBundleDisplayName"},
    {OPT_ICON, "icon", "FILE", "copy an icon into Resources and set CFBundleIconFile"},
    {OPT_EMBED, "embed", "EXT_BUNDLE", "app only: embed an extension (repeatable)"},
    {OPT_BINARY, "binary-plist", NULL, "write Info.plist as a binary plist"},
    {OPT_FORCE, "force", NULL, "replace an existing output"},
    {0, NULL, NULL, NULL},
};

int cmd_build(const struct sx_cmd *self, int argc, char **argv)
{
    sysext_build_options o = SYSEXT_BUILD_OPTIONS_INIT;
    struct sx_optstate st = {0};
    const char **embeds = NULL;
    size_t n_embeds = 0;
    int c, rc = SX_EXIT_ERROR;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1) {
        switch (c) {
        case OPT_TYPE:
            o.type = sysext_bundle_kind_parse(st.arg);
            if (o.type == SYSEXT_BUNDLE_UNKNOWN) {
                rc = sx_usage_error(self, "unknown type '%s': expected dext, sysext or app",
                                    st.arg);
                goto out;
            }
            break;
        case OPT_INFO:
            o.info = st.arg;
            break;
        case OPT_EXE:
            o.executable = st.arg;
            break;
        case OPT_OUTPUT:
            o.output = st.arg;
            break;
        case OPT_ID:
            o.identifier = st.arg;
            break;
        case OPT_VERSION:
            o.bundle_version = st.arg;
            break;
        case OPT_SHORT:
            o.short_version = st.arg;
            break;
        case OPT_NAME:
            o.display_name = st.arg;
            break;
        case OPT_ICON:
            o.icon = st.arg;
            break;
        case OPT_EMBED: {
            const char **p = realloc(embeds, (n_embeds + 1) * sizeof(*embeds));
            if (!p) {
                fprintf(stderr, "sysextctl build: out of memory\n");
                goto out;
            }
            embeds = p;
            embeds[n_embeds++] = st.arg;
            break;
        }
        case OPT_BINARY:
            o.binary_plist = 1;
            break;
        case OPT_FORCE:
            o.force = 1;
            break;
        default:
            goto out; /* usage error already printed */
        }
    }
    if (st.ind < argc) {
        rc = sx_usage_error(self, "unexpected argument '%s'", argv[st.ind]);
        goto out;
    }
    if (o.type == SYSEXT_BUNDLE_UNKNOWN || !o.info || !o.executable || !o.output) {
        rc = sx_usage_error(self, "--type, --info, --executable and --output are required");
        goto out;
    }
    if (n_embeds && o.type != SYSEXT_BUNDLE_APP) {
        rc = sx_usage_error(self, "--embed is only for --type app");
        goto out;
    }
    o.embeds = embeds;
    o.n_embeds = n_embeds;
    int r = sysext_bundle_build(&o);
    if (r < 0) {
        /* A malformed template is an input error of the build, not a checked-invalid thing. */
        fprintf(stderr, "sysextctl build: %s\n", sysext_last_error());
        rc = SX_EXIT_ERROR;
        goto out;
    }
    if (isatty(1))
        printf("built %s\n", o.output);
    rc = SX_EXIT_OK;
out:
    free(embeds);
    return rc;
}
