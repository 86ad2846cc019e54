/* kill -9 at every transition step and fsync point of the activation flows (SYSEXTD_CRASH_AT=N
 * makes the daemon _exit at its Nth crash point): after a restart the store is consistent and
 * every step is atomic: the state is what it was before the step, or what it is after it. */
#include "e2e.h"

#include "codesign/verify_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define RECONCILE_IN_PROCESS 1
#else
#define RECONCILE_IN_PROCESS 0
#endif

/* Staged copies already verified (a copy never changes once its row exists). */
static char verified[256][37];
static size_t n_verified;

static bool was_verified(const char *uuid)
{
    for (size_t i = 0; i < n_verified; i++)
        if (!strcmp(verified[i], uuid))
            return true;
    if (n_verified < SX_ARRAY_SIZE(verified))
        snprintf(verified[n_verified++], sizeof(verified[0]), "%s", uuid);
    return false;
}

TestSuite(crash, .init = e_setup, .fini = e_teardown, .timeout = 300);

enum { APP_NONE, APP_V1, APP_V2 };
static int app_in_place = APP_NONE;

/* Put app v1 or v2 (prebuilt in "apps/") at Applications/Host.app, or remove it. */
static void place_app(int which)
{
    if (which == app_in_place)
        return;
    if (app_in_place == APP_V1)
        cr_assert_eq(rename(P("Applications/Host.app"), P("apps/v1/Host.app")), 0);
    else if (app_in_place == APP_V2)
        cr_assert_eq(rename(P("Applications/Host.app"), P("apps/v2/Host.app")), 0);
    if (which == APP_V1)
        cr_assert_eq(rename(P("apps/v1/Host.app"), P("Applications/Host.app")), 0);
    else if (which == APP_V2)
        cr_assert_eq(rename(P("apps/v2/Host.app"), P("Applications/Host.app")), 0);
    app_in_place = which;
}

static void build_apps(void)
{
    char e1[1024], e2[1024];
    const char *exts[] = {e1, e2, NULL};
    snprintf(e1, sizeof(e1), "%s", e_make_dext(EXT1, "1.0", "1", P("a.p12"), true));
    snprintf(e2, sizeof(e2), "%s", e_make_dext(EXT2, "1.0", "1", P("a.p12"), true));
    e_make_app("apps/v1/Host.app", "com.example.host", P("a.p12"), P("ents/app.plist"), exts);
    snprintf(e1, sizeof(e1), "%s", e_make_dext(EXT1, "2.0", "2", P("a.p12"), true));
    snprintf(e2, sizeof(e2), "%s", e_make_dext(EXT2, "2.0", "2", P("a.p12"), true));
    e_make_app("apps/v2/Host.app", "com.example.host", P("a.p12"), P("ents/app.plist"), exts);
    app_in_place = APP_NONE;
}

/* Steps of the flow. */
typedef enum {
    S_ACTIVATE_WAITING, /* activate; a "needs-user-approval" ends the app */
    S_APPROVE,
    S_ACTIVATE,         /* activate, replace when asked */
    S_ACTIVATE_CANCEL,  /* activate, cancel when asked */
    S_DEACTIVATE,
    S_REMOVE_APP,       /* move the app to a trash folder, wait for the grace period */
} step_kind;

typedef struct step {
    step_kind kind;
    int app;
    const char *ext;
    const char *after; /* expected store after the step: sorted "id version state" lines */
} step;

static void run_step(const step *s)
{
    char out[4096];
    switch (s->kind) {
    case S_ACTIVATE_WAITING: {
        int fd;
        pid_t pid = e_app_spawn(P("Applications/Host.app"), "activate", s->ext, &fd);
        char line[256];
        e_read_line(fd, line, sizeof(line));
        kill(pid, SIGKILL); /* the app goes away while waiting; the record stays */
        e_wait(pid);
        close(fd);
        break;
    }
    case S_APPROVE:
        sysext_admin_approve(e_sock, s->ext);
        break;
    case S_ACTIVATE:
        e_app(P("Applications/Host.app"), "activate", s->ext, "replace", out, sizeof(out));
        break;
    case S_ACTIVATE_CANCEL:
        e_app(P("Applications/Host.app"), "activate", s->ext, "cancel", out, sizeof(out));
        break;
    case S_DEACTIVATE:
        e_app(P("Applications/Host.app"), "deactivate", s->ext, NULL, out, sizeof(out));
        break;
    case S_REMOVE_APP:
        place_app(APP_NONE);
        for (int i = 0; i < 60 && e_pid > 0; i++) {
            char *text = NULL;
            if (sysext_admin_list(e_sock, 0, &text) < 0)
                break;
            bool empty = !strcmp(text, "0 extension(s)\n");
            free(text);
            if (empty)
                break;
            h_sleep_ms(25);
        }
        break;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* With the daemon stopped: check the store's invariants and return its snapshot. */
static char *check_store(void)
{
    sxd_store *st = NULL;
    cr_assert_eq(sxd_store_open(e_state, &st), 0, "%s", sx_errmsg());
    sxd_record *v = NULL;
    size_t n = 0;
    cr_assert_eq(sxd_store_list(st, NULL, &v, &n), 0);
    char **lines = calloc(n + 1, sizeof(char *));
    const char *trust[] = {P("ca/root.cert.pem")};
    for (size_t i = 0; i < n; i++) {
        cr_assert(!strcmp(v[i].state, SXD_ST_WAITING) || !strcmp(v[i].state, SXD_ST_ENABLED),
                  "record %s left in state %s", v[i].uuid, v[i].state);
        cr_assert(sx_is_dir(v[i].staged_path), "record %s without its copy", v[i].uuid);
        /* The staged copy is complete: it verifies. */
        if (was_verified(v[i].uuid)) {
            cr_assert_geq(asprintf(&lines[i], "%s %s %s\n", v[i].identifier, v[i].version,
                                   v[i].state),
                          0);
            continue;
        }
        sysext_verify_options o = SYSEXT_VERIFY_OPTIONS_INIT;
        o.strict = 1;
        o.deep = 1;
        o.trust = trust;
        o.n_trust = 1;
        sx_report rep;
        sx_vresult vr;
        memset(&vr, 0, sizeof(vr));
        sx_report_init(&rep);
        cr_assert_eq(sx_verify_path(v[i].staged_path, &o, &rep, &vr), 0, "%s: %s",
                     v[i].staged_path, rep.n ? rep.v[0].message : sx_errmsg());
        sx_vresult_free(&vr);
        sx_report_free(&rep);
        cr_assert_geq(asprintf(&lines[i], "%s %s %s\n", v[i].identifier, v[i].version,
                               v[i].state),
                      0);
    }
    cr_assert_eq(e_count_staged(), n, "staged folders without a record");
    qsort(lines, n, sizeof(char *), cmp_str);
    sx_buf b = SX_BUF_INIT;
    sx_buf_puts(&b, "");
    for (size_t i = 0; i < n; i++) {
        sx_buf_puts(&b, lines[i]);
        free(lines[i]);
    }
    free(lines);
    sxd_records_free(v, n);
    sxd_store_close(st);
    return sx_buf_steal_str(&b);
}

static void save_state(const char *name)
{
    sx_rm_rf(P(name));
    if (!sx_is_dir(e_state))
        return;
    cr_assert_eq(sx_copy_tree(e_state, P(name)), 0, "%s", sx_errmsg());
}

static void restore_state(const char *name)
{
    sx_rm_rf(e_state);
    if (sx_is_dir(P(name)))
        cr_assert_eq(sx_copy_tree(P(name), e_state), 0, "%s", sx_errmsg());
}

/* Run `steps`, crashing the daemon at every point of every step. Returns the points hit. */
static unsigned crash_everywhere(const step *steps, size_t nsteps, const char *const *flags)
{
    unsigned points = 0;
    const char *before = "";
    char *before_owned = NULL;
    sx_rm_rf(e_state);
    save_state("saved");
    for (size_t k = 0; k < nsteps; k++) {
        const step *s = &steps[k];
        for (int j = 1;; j++) {
            cr_assert_lt(j, 60, "step %zu never completes", k);
            restore_state("saved");
            place_app(s->app);
            char env[64];
            snprintf(env, sizeof(env), "SYSEXTD_CRASH_AT=%d", j);
            e_start(env, flags);
            cr_assert_gt(e_pid, 0, "daemon did not start at step %zu point %d", k, j);
            run_step(s);
            /* Stop it: a daemon that hit its crash point has exited 99 by now or soon. */
            int status = h_stop_daemon(e_pid);
            e_pid = -1;
            bool dead = WIFEXITED(status) && WEXITSTATUS(status) == 99;
            if (!dead) {
                cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                          "step %zu point %d: daemon ended with status %d", k, j, status);
                char *snap = check_store();
                cr_assert_str_eq(snap, s->after, "step %zu without a crash", k);
                free(snap);
                save_state("saved");
                break;
            }
            points++;
            /* Restart: reconciliation runs; the app removal finishes after its grace period.
             * Under ASan (slow process start) only the removal step restarts the daemon; the
             * others run the daemon's start-up reconciliation in this process. */
            if (!RECONCILE_IN_PROCESS || s->kind == S_REMOVE_APP) {
                e_start(NULL, flags);
                cr_assert_gt(e_pid, 0, "restart after step %zu point %d", k, j);
                if (s->kind == S_REMOVE_APP)
                    run_step(s);
                e_stop();
            } else {
                sxd_store *st = NULL;
                unsigned fixed = 0;
                cr_assert_eq(sxd_store_open(e_state, &st), 0, "%s", sx_errmsg());
                cr_assert_eq(sxd_store_reconcile(st, &fixed), 0, "%s", sx_errmsg());
                sxd_store_close(st);
            }
            char *snap = check_store();
            cr_assert(!strcmp(snap, before) || !strcmp(snap, s->after),
                      "step %zu point %d: store is neither before nor after the step:\n%s"
                      "--- before:\n%s--- after:\n%s",
                      k, j, snap, before, s->after);
            free(snap);
        }
        free(before_owned);
        before_owned = strdup(s->after);
        before = before_owned;
    }
    free(before_owned);
    return points;
}

#define W1 EXT1 " 1 activated_waiting_for_user\n"
#define E1 EXT1 " 1 activated_enabled\n"
#define E1V2 EXT1 " 2 activated_enabled\n"
#define E2 EXT2 " 1 activated_enabled\n"

static const step flow_approval[] = {
    {S_ACTIVATE_WAITING, APP_V1, EXT1, W1},
    {S_APPROVE, APP_V1, EXT1, E1},
    {S_ACTIVATE, APP_V1, EXT2, E1 E2},
    {S_ACTIVATE, APP_V2, EXT1, E1V2 E2},
    {S_ACTIVATE_CANCEL, APP_V2, EXT2, E1V2 E2},
    {S_ACTIVATE, APP_V2, EXT1, E1V2 E2},
    {S_DEACTIVATE, APP_V2, EXT1, E2},
    {S_REMOVE_APP, APP_V2, NULL, ""},
};

static void write_policy(const char *body)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>%s</dict></plist>",
             body);
    e_write(P("policy.plist"), buf, 0644);
}

Test(crash, approval_replace_cancel_deactivate_remove)
{
    build_apps();
    write_policy("<key>AllowedSystemExtensions</key><dict><key>" TEAM_A "</key><array><string>" EXT2
                 "</string></array></dict>");
    char pol[600];
    snprintf(pol, sizeof(pol), "%s", P("policy.plist"));
    const char *flags[] = {"--policy", pol, "--grace-period", "0.05", NULL};
    unsigned n = crash_everywhere(flow_approval, SX_ARRAY_SIZE(flow_approval), flags);
    fprintf(stderr, "crash: approval flow: %u crash points\n", n);
    cr_assert_geq(n, 30);
}

static const step flow_developer[] = {
    {S_ACTIVATE, APP_V1, EXT1, E1},
    {S_ACTIVATE, APP_V1, EXT2, E1 E2},
    {S_ACTIVATE, APP_V1, EXT1, E1 E2},          /* developer mode: asked even for 1 -> 1 */
    {S_ACTIVATE, APP_V2, EXT1, E1V2 E2},
    {S_ACTIVATE_CANCEL, APP_V2, EXT1, E1V2 E2}, /* 2 -> 2 canceled */
    {S_ACTIVATE_CANCEL, APP_V2, EXT2, E1V2 E2},
    {S_DEACTIVATE, APP_V2, EXT2, E1V2},
    {S_REMOVE_APP, APP_V2, NULL, ""},
};

/* Under ASan the release build's full run covers these; one flow is enough there. */
Test(crash, developer_mode_with_policy_auto_approval, .disabled = RECONCILE_IN_PROCESS)
{
    build_apps();
    write_policy("<key>AllowedTeamIdentifiers</key><array><string>" TEAM_A "</string></array>");
    char pol[600];
    snprintf(pol, sizeof(pol), "%s", P("policy.plist"));
    const char *flags[] = {"--policy", pol, "--grace-period", "0.05",
                           "--developer-mode", NULL};
    unsigned n = crash_everywhere(flow_developer, SX_ARRAY_SIZE(flow_developer), flags);
    fprintf(stderr, "crash: developer flow: %u crash points\n", n);
    cr_assert_geq(n, 40);
}

static const step flow_uninstall[] = {
    {S_ACTIVATE_WAITING, APP_V1, EXT1, W1},
    {S_ACTIVATE_WAITING, APP_V1, EXT1, W1}, /* same version, still waiting: no change */
    {S_ACTIVATE, APP_V1, EXT2, W1 E2},
    {S_APPROVE, APP_V1, EXT1, E1 E2},
    {S_ACTIVATE, APP_V2, EXT2, E1 EXT2 " 2 activated_enabled\n"},
    {S_DEACTIVATE, APP_V2, EXT1, EXT2 " 2 activated_enabled\n"},
    {S_DEACTIVATE, APP_V2, EXT2, ""},
};

Test(crash, waiting_twice_upgrade_and_deactivate_all, .disabled = RECONCILE_IN_PROCESS)
{
    build_apps();
    write_policy("<key>AllowedSystemExtensions</key><dict><key>" TEAM_A "</key><array><string>" EXT2
                 "</string></array></dict>");
    char pol[600];
    snprintf(pol, sizeof(pol), "%s", P("policy.plist"));
    const char *flags[] = {"--policy", pol, "--grace-period", "0.05", NULL};
    unsigned n = crash_everywhere(flow_uninstall, SX_ARRAY_SIZE(flow_uninstall), flags);
    fprintf(stderr, "crash: uninstall flow: %u crash points\n", n);
    cr_assert_geq(n, 25);
}
