/* sysext-sample-app: a host app's main executable that asks sysextd to activate, deactivate
 * or describe one of its extensions, printing each delegate callback as one line.
 *
 *   X.app/Contents/MacOS/<exe> activate|deactivate|properties EXT_ID [--socket PATH]
 *                              [--on-replace replace|cancel]
 *
 * Exits 0 when the request finished, 1 when it failed, 2 on a usage or connection error. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysext/sysext.h"

struct state {
    sysext_replacement_action on_replace;
    int done; /* 1 finished, 2 failed */
};

static void on_approval(sysext_request *r, void *ctx)
{
    (void)r;
    (void)ctx;
    puts("needs-user-approval");
    fflush(stdout);
}

static sysext_replacement_action on_replacing(sysext_request *r,
                                              const sysext_extension_properties *old,
                                              const sysext_extension_properties *nw, void *ctx)
{
    (void)r;
    struct state *s = ctx;
    printf("replacing %s/%s with %s/%s: %s\n", old->short_version ? old->short_version : "?",
           old->version ? old->version : "?", nw->short_version ? nw->short_version : "?",
           nw->version ? nw->version : "?",
           s->on_replace == SYSEXT_REPLACEMENT_REPLACE ? "replace" : "cancel");
    fflush(stdout);
    return s->on_replace;
}

static void on_finished(sysext_request *r, sysext_request_result res, void *ctx)
{
    (void)r;
    struct state *s = ctx;
    printf("finished %s\n", res == SYSEXT_REQUEST_COMPLETED ? "completed" : "will-complete-after-reboot");
    fflush(stdout);
    s->done = 1;
}

static void on_failed(sysext_request *r, int code, const char *name, const char *msg, void *ctx)
{
    (void)r;
    struct state *s = ctx;
    printf("failed %d %s\n", code, name);
    fflush(stdout);
    if (msg && *msg)
        fprintf(stderr, "sysext-sample-app: %s\n", msg);
    s->done = 2;
}

static void on_props(sysext_request *r, const sysext_extension_properties *p, size_t n, void *ctx)
{
    (void)ctx;
    if (n == 0)
        printf("properties %s none\n", sysext_request_identifier(r));
    for (size_t i = 0; i < n; i++)
        printf("properties %s %s/%s state=%s enabled=%d awaiting-approval=%d uninstalling=%d "
               "path=%s\n",
               p[i].identifier ? p[i].identifier : "?", p[i].short_version ? p[i].short_version : "?",
               p[i].version ? p[i].version : "?", p[i].state ? p[i].state : "?", p[i].enabled,
               p[i].awaiting_user_approval, p[i].uninstalling, p[i].path ? p[i].path : "?");
    fflush(stdout);
}

static int usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s activate|deactivate|properties EXT_ID [--socket PATH] "
            "[--on-replace replace|cancel]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"on-replace", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *sock = NULL;
    struct state st = {SYSEXT_REPLACEMENT_REPLACE, 0};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 's') {
            sock = optarg;
        } else if (c == 'r') {
            if (!strcmp(optarg, "replace"))
                st.on_replace = SYSEXT_REPLACEMENT_REPLACE;
            else if (!strcmp(optarg, "cancel"))
                st.on_replace = SYSEXT_REPLACEMENT_CANCEL;
            else
                return usage(stderr, argv[0]);
        } else if (c == 'h') {
            usage(stdout, argv[0]);
            return 0;
        } else {
            return usage(stderr, argv[0]);
        }
    }
    if (argc - optind != 2)
        return usage(stderr, argv[0]);
    const char *verb = argv[optind], *ext = argv[optind + 1];
    sysext_request_kind kind;
    if (!strcmp(verb, "activate"))
        kind = SYSEXT_REQUEST_ACTIVATE;
    else if (!strcmp(verb, "deactivate"))
        kind = SYSEXT_REQUEST_DEACTIVATE;
    else if (!strcmp(verb, "properties"))
        kind = SYSEXT_REQUEST_PROPERTIES;
    else
        return usage(stderr, argv[0]);

    sysext_client *cl = NULL;
    int rc = sysext_client_open(sock, &cl);
    if (rc < 0) {
        fprintf(stderr, "sysext-sample-app: %s\n", sysext_last_error());
        return 2;
    }
    sysext_request_delegate d = {&st, on_approval, on_replacing, on_finished, on_failed, on_props};
    rc = sysext_client_submit(cl, kind, ext, &d, NULL);
    if (rc == 0)
        rc = sysext_client_wait(cl, -1);
    sysext_client_free(cl);
    if (st.done == 1)
        return 0;
    if (st.done == 2)
        return 1;
    fprintf(stderr, "sysext-sample-app: %s\n", sysext_last_error());
    return 2;
}
