/* sysextctl identity create --ca DIR --team TEAMID --name NAME --kind KIND --output ID.p12
 * [--password-file F]: a code-signing leaf from a development CA, saved as PKCS#12. */
#include <stdio.h>
#include <string.h>

#include "sysext/sysext.h"
#include "sysextctl/commands.h"

enum { OPT_CA = 256, OPT_TEAM, OPT_NAME, OPT_KIND, OPT_OUTPUT, OPT_PASSWORD_FILE };

const struct sx_opt cmd_identity_opts[] = {
    {OPT_CA, "ca", "DIR", "the CA directory made by 'sysextctl ca init'"},
    {OPT_TEAM, "team", "TEAMID", "team ID: 10 upper-case letters or digits (subject OU)"},
    {OPT_NAME, "name", "NAME", "the certificate's common name"},
    {OPT_KIND, "kind", "KIND", "development or developer-id"},
    {OPT_OUTPUT, "output", "ID.p12", "the PKCS#12 file to write (must not exist)"},
    {OPT_PASSWORD_FILE, "password-file", "F", "PKCS#12 password: the first line of F (default empty)"},
    {0, NULL, NULL, NULL},
};

static int parse_opts(const struct sx_cmd *self, int argc, char **argv, sysext_identity_options *o,
                      const char **kind, int *ind)
{
    struct sx_optstate st = {0};
    int c;
    while ((c = sx_opt_next(self, &st, argc, argv)) != -1) {
        switch (c) {
        case OPT_CA:
            o->ca_dir = st.arg;
            break;
        case OPT_TEAM:
            o->team_id = st.arg;
            break;
        case OPT_NAME:
            o->common_name = st.arg;
            break;
        case OPT_KIND:
            *kind = st.arg;
            break;
        case OPT_OUTPUT:
            o->output = st.arg;
            break;
        case OPT_PASSWORD_FILE:
            o->password_file = st.arg;
            break;
        default:
            return -1;
        }
    }
    *ind = st.ind;
    return 0;
}

int cmd_identity(const struct sx_cmd *self, int argc, char **argv)
{
    sysext_identity_options o = SYSEXT_IDENTITY_OPTIONS_INIT;
    const char *kind = NULL;
    int ind;
    /* Options may come before the verb too; then the verb's own options follow it. */
    if (parse_opts(self, argc, argv, &o, &kind, &ind) < 0)
        return SX_EXIT_ERROR;
    if (ind >= argc)
        return sx_usage_error(self, "missing verb (expected 'create')");
    if (strcmp(argv[ind], "create") != 0)
        return sx_usage_error(self, "unknown verb '%s' (expected 'create')", argv[ind]);
    int ind2;
    if (parse_opts(self, argc - ind, argv + ind, &o, &kind, &ind2) < 0)
        return SX_EXIT_ERROR;
    if (ind + ind2 < argc)
        return sx_usage_error(self, "unexpected argument '%s'", argv[ind + ind2]);
    if (!o.ca_dir || !o.team_id || !o.common_name || !kind || !o.output)
        return sx_usage_error(self, "--ca, --team, --name, --kind and --output are required");
    int rc = sysext_identity_kind_parse(kind, &o.kind);
    if (rc < 0) {
        fprintf(stderr, "sysextctl %s: %s\n", self->name, sysext_last_error());
        return SX_EXIT_ERROR;
    }
    rc = sysext_identity_create(&o);
    if (rc < 0)
        return sx_fail(self, rc);
    printf("created %s: %s identity \"%s\", team %s\n", o.output, kind, o.common_name, o.team_id);
    return SX_EXIT_OK;
}
