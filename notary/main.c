/* sysext-notaryd: the notary service.
 *   sysext-notaryd init --store DIR
 *   sysext-notaryd key create --store DIR --team TEAMID [--admin] --output KEYFILE
 *   sysext-notaryd serve --store DIR --listen 127.0.0.1:PORT --trust ROOT.pem [--trust ...]
 *   sysext-notaryd ticket revoke --store DIR --cdhash HEX
 * Exit codes: 0 ok, 1 not found (revoke of an unknown cdhash), 2 usage or error. */
#include "util/common.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "notary/http.h"
#include "notary/store.h"
#include "util/fs.h"
#include "util/hex.h"

#define MAX_TRUST 64

static void usage(FILE *f)
{
    fputs("usage:\n"
          "  sysext-notaryd init --store DIR\n"
          "  sysext-notaryd key create --store DIR --team TEAMID [--admin] --output KEYFILE\n"
          "  sysext-notaryd serve --store DIR --listen IPv4:PORT --trust ROOT.pem [--trust ...]\n"
          "                       [--workers N] [--max-upload BYTES]\n"
          "  sysext-notaryd ticket revoke --store DIR --cdhash HEX\n", f);
}

static int fail(const char *what)
{
    fprintf(stderr, "sysext-notaryd %s: %s\n", what, sx_errmsg());
    return 2;
}

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    int first = 2;
    char cmdname[32];
    if ((!strcmp(cmd, "key") || !strcmp(cmd, "ticket")) && argc >= 3) {
        snprintf(cmdname, sizeof cmdname, "%s %s", cmd, argv[2]);
        first = 3;
    } else {
        snprintf(cmdname, sizeof cmdname, "%s", cmd);
    }
    const char *store_dir = NULL, *team = NULL, *output = NULL, *listen_addr = NULL, *cdhash = NULL;
    const char *trust[MAX_TRUST];
    size_t n_trust = 0;
    bool admin = false;
    unsigned workers = 0;
    unsigned long long max_upload = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--admin")) {
            admin = true;
            continue;
        }
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "sysext-notaryd %s: %s needs an argument (or is unknown)\n", cmdname, a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--store"))
            store_dir = v;
        else if (!strcmp(a, "--team"))
            team = v;
        else if (!strcmp(a, "--output"))
            output = v;
        else if (!strcmp(a, "--listen"))
            listen_addr = v;
        else if (!strcmp(a, "--cdhash"))
            cdhash = v;
        else if (!strcmp(a, "--workers"))
            workers = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--max-upload"))
            max_upload = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--trust") && n_trust < MAX_TRUST)
            trust[n_trust++] = v;
        else {
            fprintf(stderr, "sysext-notaryd %s: unknown option %s\n", cmdname, a);
            return 2;
        }
    }
    if (!store_dir) {
        fprintf(stderr, "sysext-notaryd %s: --store DIR is required\n", cmdname);
        return 2;
    }
    if (!strcmp(cmdname, "init")) {
        if (sx_store_init(store_dir) < 0)
            return fail(cmdname);
        printf("notary store created in %s; clients trust %s/%s\n", store_dir, store_dir, SX_STORE_CERT);
        return 0;
    }
    sx_store *s = NULL;
    if (!strcmp(cmdname, "key create")) {
        if (!team || !output) {
            fprintf(stderr, "sysext-notaryd key create: --team TEAMID and --output KEYFILE are required\n");
            return 2;
        }
        char hex[65];
        if (sx_path_exists(output)) {
            fprintf(stderr, "sysext-notaryd key create: %s already exists\n", output);
            return 2;
        }
        if (sx_store_open(store_dir, &s) < 0 || sx_store_key_create(s, team, admin, hex) < 0) {
            sx_store_close(s);
            return fail(cmdname);
        }
        sx_store_close(s);
        char line[80];
        int n = snprintf(line, sizeof line, "%s\n", hex);
        if (sx_write_file_atomic(output, line, (size_t)n, 0600) < 0)
            return fail(cmdname);
        printf("API key for team %s%s written to %s\n", team, admin ? " (admin)" : "", output);
        return 0;
    }
    if (!strcmp(cmdname, "ticket revoke")) {
        uint8_t h[SX_CDHASH_LEN];
        if (!cdhash || strlen(cdhash) != 2 * SX_CDHASH_LEN || sx_hex_decode(cdhash, h, sizeof h) < 0) {
            fprintf(stderr, "sysext-notaryd ticket revoke: --cdhash needs %d hex digits\n",
                    2 * SX_CDHASH_LEN);
            return 2;
        }
        if (sx_store_open(store_dir, &s) < 0)
            return fail(cmdname);
        int rc = sx_store_ticket_revoke(s, h);
        sx_store_close(s);
        if (rc < 0) {
            fail(cmdname);
            return rc == SYSEXT_ENOTFOUND ? 1 : 2;
        }
        printf("revoked the ticket for cdhash %s\n", cdhash);
        return 0;
    }
    if (!strcmp(cmdname, "serve")) {
        if (!listen_addr || n_trust == 0) {
            fprintf(stderr, "sysext-notaryd serve: --listen IPv4:PORT and --trust ROOT.pem are required\n");
            return 2;
        }
        if (sx_store_open(store_dir, &s) < 0)
            return fail(cmdname);
        sx_notary_server_opts o = {.listen = listen_addr, .trust = trust, .n_trust = n_trust,
                                   .workers = workers, .max_upload = max_upload};
        sx_notary_server *srv = NULL;
        if (sx_notary_server_start(s, &o, &srv) < 0) {
            sx_store_close(s);
            return fail(cmdname);
        }
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        char host[64];
        const char *colon = strrchr(listen_addr, ':');
        snprintf(host, sizeof host, "%.*s", (int)(colon - listen_addr), listen_addr);
        printf("listening on http://%s:%u\n", host, sx_notary_server_port(srv));
        fflush(stdout);
        while (!stop_flag)
            pause();
        sx_notary_server_stop(srv);
        sx_store_close(s);
        return 0;
    }
    fprintf(stderr, "sysext-notaryd: unknown command '%s'\n", cmdname);
    usage(stderr);
    return 2;
}
