/* The app library against the driver runtime over a socketpair, the driver in a forked child
 * (no daemon): calls, argument checks, completions, shared memory, both ends closing. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sysext/errors.h"
#include "sysext/ioconnect.h"
#include "uc_driver.h"

#define KR_BAD_ARGUMENT ((int32_t)0xe00002c2)

static pid_t child;
static sysext_ioconnect *conn;

static void setup(void)
{
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test: the library must not raise it */
    int fd = -1;
    child = uc_driver_spawn(&fd);
    cr_assert(child > 0);
    cr_assert_eq(sysext_ioconnect_open_fd(fd, &conn), 0, "%s", sysext_last_error());
}

/* Close the app's end and collect the driver's exit status. */
static int finish(void)
{
    sysext_ioconnect_close(conn);
    conn = NULL;
    int st = 0;
    if (child > 0 && waitpid(child, &st, 0) == child) {
        child = 0;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return -1;
}

static void teardown(void)
{
    if (conn || child > 0) {
        if (child > 0)
            kill(child, SIGKILL);
        finish();
    }
}

TestSuite(ioconnect, .init = setup, .fini = teardown, .timeout = 60);

Test(ioconnect, scalar_call_and_close_stops_the_user_client)
{
    uint64_t in[2] = { 20, 22 }, out[4] = { 0 };
    uint32_t nout = 1;
    cr_assert_eq(sysext_ioconnect_call_method(conn, 0, in, 2, NULL, 0, out, &nout, NULL, NULL), 0, "%s",
                 sysext_last_error());
    cr_assert_eq(nout, 1u);
    cr_assert_eq(out[0], 42u);
    cr_assert_eq(sysext_ioconnect_last_return(conn), 0);
    /* the driver exits 0 only after it saw the close and stopped the user client */
    cr_assert_eq(finish(), 0);
}

Test(ioconnect, struct_in_and_out)
{
    char out[16] = { 0 };
    size_t outlen = sizeof(out);
    cr_assert_eq(sysext_ioconnect_call_method(conn, 1, NULL, 0, "abcdef", 6, NULL, NULL, out, &outlen), 0, "%s",
                 sysext_last_error());
    cr_assert_eq(outlen, 6u);
    cr_assert_arr_eq(out, "fedcba", 6);
    /* no structure input at all */
    outlen = sizeof(out);
    cr_assert_eq(sysext_ioconnect_call_method(conn, 1, NULL, 0, NULL, 0, NULL, NULL, out, &outlen), 0);
    cr_assert_eq(outlen, 0u);
    /* the driver's output does not fit the room given: kIOReturnNoSpace from the driver */
    outlen = 3;
    int rc = sysext_ioconnect_call_method(conn, 1, NULL, 0, "abcdef", 6, NULL, NULL, out, &outlen);
    cr_assert_eq(rc, SYSEXT_ELIMIT, "%d %s", rc, sysext_last_error());
    cr_assert_eq((uint32_t)sysext_ioconnect_last_return(conn), 0xe00002dbu);
    cr_assert_eq(finish(), 0);
}

Test(ioconnect, wrong_counts_and_sizes_are_refused_before_the_driver_runs)
{
    uint64_t in[3] = { 1, 2, 3 }, out[4] = { 0 };
    uint32_t nout = 1;
    /* one scalar too few */
    cr_assert_eq(sysext_ioconnect_call_method(conn, 0, in, 1, NULL, 0, out, &nout, NULL, NULL), SYSEXT_EINVAL);
    cr_assert_eq(sysext_ioconnect_last_return(conn), KR_BAD_ARGUMENT);
    cr_assert(strstr(sysext_last_error(), "kIOReturnBadArgument"), "%s", sysext_last_error());
    /* one too many */
    nout = 1;
    cr_assert_eq(sysext_ioconnect_call_method(conn, 0, in, 3, NULL, 0, out, &nout, NULL, NULL), SYSEXT_EINVAL);
    /* a structure input where none is expected */
    nout = 1;
    cr_assert_eq(sysext_ioconnect_call_method(conn, 0, in, 2, "x", 1, out, &nout, NULL, NULL), SYSEXT_EINVAL);
    /* room for two scalar outputs where the table says one */
    nout = 2;
    cr_assert_eq(sysext_ioconnect_call_method(conn, 0, in, 2, NULL, 0, out, &nout, NULL, NULL), SYSEXT_EINVAL);
    /* a structure output where none is produced */
    char so[8];
    size_t solen = sizeof(so);
    nout = 1;
    cr_assert_eq(sysext_ioconnect_call_method(conn, 0, in, 2, NULL, 0, out, &nout, so, &solen), SYSEXT_EINVAL);
    /* a completion where none is allowed */
    nout = 1;
    cr_assert_eq(sysext_ioconnect_call_async(conn, 0, in, 2, NULL, 0, (sysext_ioconnect_async_fn)abort, NULL, out,
                                             &nout, NULL, NULL),
                 SYSEXT_EINVAL);
    /* an unknown selector */
    cr_assert_eq(sysext_ioconnect_call_method(conn, 99, NULL, 0, NULL, 0, NULL, NULL, NULL, NULL), SYSEXT_EINVAL);
    /* none of those reached selector 0's function */
    nout = 1;
    cr_assert_eq(sysext_ioconnect_call_method(conn, 3, NULL, 0, NULL, 0, out, &nout, NULL, NULL), 0);
    cr_assert_eq(out[0], 0u, "selector 0 ran %llu times", (unsigned long long)out[0]);
    nout = 1;
    cr_assert_eq(sysext_ioconnect_call_method(conn, 0, in, 2, NULL, 0, out, &nout, NULL, NULL), 0);
    nout = 1;
    cr_assert_eq(sysext_ioconnect_call_method(conn, 3, NULL, 0, NULL, 0, out, &nout, NULL, NULL), 0);
    cr_assert_eq(out[0], 1u);
    /* limits checked in the library before anything is sent */
    uint64_t many[17] = { 0 };
    cr_assert_eq(sysext_ioconnect_call_method(conn, 0, many, 17, NULL, 0, NULL, NULL, NULL, NULL), SYSEXT_EINVAL);
    /* no async callback was ever called (abort above would have killed the test) */
    cr_assert_eq(sysext_ioconnect_dispatch(conn, 0), 0);
    cr_assert_eq(finish(), 0);
}

struct got {
    int calls;
    int32_t result;
    uint64_t args[16];
    uint32_t n;
};

static void on_done(void *ctx, int32_t result, const uint64_t *args, uint32_t nargs)
{
    struct got *g = ctx;
    g->calls++;
    g->result = result;
    g->n = nargs;
    if (nargs)
        memcpy(g->args, args, nargs * sizeof(uint64_t));
}

Test(ioconnect, async_completion_through_dispatch)
{
    struct got g = { 0 };
    uint64_t in = 21;
    cr_assert_eq(sysext_ioconnect_call_async(conn, 2, &in, 1, NULL, 0, on_done, &g, NULL, NULL, NULL, NULL), 0,
                 "%s", sysext_last_error());
    cr_assert_eq(g.calls, 0, "callbacks run only from dispatch");
    int ran = 0;
    for (int i = 0; i < 50 && !ran; i++)
        ran = sysext_ioconnect_dispatch(conn, 100);
    cr_assert_eq(ran, 1);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.result, 0);
    cr_assert_eq(g.n, 2u);
    cr_assert_eq(g.args[0], 42u);
    cr_assert_eq(g.args[1], 7u);
    cr_assert_eq(sysext_ioconnect_dispatch(conn, 50), 0, "exactly one completion");
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(finish(), 0);
}

Test(ioconnect, shared_memory_both_sides)
{
    void *addr = NULL;
    size_t len = 0;
    cr_assert_eq(sysext_ioconnect_map_memory(conn, 0, &addr, &len), 0, "%s", sysext_last_error());
    cr_assert_eq(len, 4096u);
    cr_assert_str_eq((const char *)addr, "hello from driver", "written by the driver");
    uint64_t v = 0x1122334455667788ull, out = 0;
    memcpy((uint8_t *)addr + 64, &v, sizeof(v));
    uint32_t nout = 1;
    cr_assert_eq(sysext_ioconnect_call_method(conn, 5, NULL, 0, NULL, 0, &out, &nout, NULL, NULL), 0);
    cr_assert_eq(out, v, "the driver reads what the app wrote");
    /* the same memory again: one more mapping of the same pages */
    void *addr2 = NULL;
    size_t len2 = 0;
    cr_assert_eq(sysext_ioconnect_map_memory(conn, 0, &addr2, &len2), 0);
    cr_assert_eq(memcmp((uint8_t *)addr2 + 64, &v, sizeof(v)), 0);
    cr_assert_eq(sysext_ioconnect_unmap_memory(conn, addr2), 0);
    cr_assert_eq(sysext_ioconnect_unmap_memory(conn, addr2), SYSEXT_ENOTFOUND);
    /* a type the driver does not have */
    cr_assert_eq(sysext_ioconnect_map_memory(conn, 9, &addr2, &len2), SYSEXT_EINVAL);
    cr_assert_eq(sysext_ioconnect_last_return(conn), KR_BAD_ARGUMENT);
    cr_assert_eq(finish(), 0); /* close unmaps the first one */
}

Test(ioconnect, driver_exit_fails_calls_cleanly)
{
    struct got g = { 0 };
    /* an async call the driver holds and never completes */
    cr_assert_eq(sysext_ioconnect_call_async(conn, 6, NULL, 0, NULL, 0, on_done, &g, NULL, NULL, NULL, NULL), 0,
                 "%s", sysext_last_error());
    /* the driver dies inside this call */
    cr_assert_eq(sysext_ioconnect_call_method(conn, 4, NULL, 0, NULL, 0, NULL, NULL, NULL, NULL), SYSEXT_EIO);
    cr_assert_str_eq(sysext_last_error(), "driver connection closed");
    int st = 0;
    cr_assert_eq(waitpid(child, &st, 0), child);
    child = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* every later call fails the same way, without SIGPIPE */
    uint64_t in[2] = { 1, 2 }, out = 0;
    uint32_t nout = 1;
    cr_assert_eq(sysext_ioconnect_call_method(conn, 0, in, 2, NULL, 0, &out, &nout, NULL, NULL), SYSEXT_EIO);
    void *addr;
    size_t len;
    cr_assert_eq(sysext_ioconnect_map_memory(conn, 0, &addr, &len), SYSEXT_EIO);
    /* the held completion is reported aborted, once */
    cr_assert_eq(sysext_ioconnect_dispatch(conn, 0), 1);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.result, SYSEXT_IORETURN_ABORTED);
    cr_assert_eq(sysext_ioconnect_dispatch(conn, 0), SYSEXT_EIO);
    cr_assert_eq(g.calls, 1);
}

Test(ioconnect, open_fd_refuses_other_sockets)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    sysext_ioconnect *c = NULL;
    cr_assert_eq(sysext_ioconnect_open_fd(sv[0], &c), SYSEXT_EINVAL);
    cr_assert_null(c);
    close(sv[1]);
    cr_assert_eq(sysext_ioconnect_open_fd(-1, &c), SYSEXT_EINVAL);
    cr_assert_eq(finish(), 0);
}

Test(ioconnect, completion_after_the_app_left_goes_nowhere)
{
    struct got g = { 0 };
    cr_assert_eq(sysext_ioconnect_call_async(conn, 6, NULL, 0, NULL, 0, on_done, &g, NULL, NULL, NULL, NULL), 0);
    /* the driver completes the held action in Stop, after the close: it must survive that */
    cr_assert_eq(finish(), 0);
    cr_assert_eq(g.calls, 0, "dropped callbacks never run");
}

Test(ioconnect, malformed_call_ends_only_that_connection)
{
    static const uint8_t junk[64] = { 'D', 'K', 'I', 'P', 9, 9 };
    cr_assert_eq(send(sysext_ioconnect_fd(conn), junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
    uint64_t in[2] = { 1, 2 }, out = 0;
    uint32_t nout = 1;
    cr_assert_eq(sysext_ioconnect_call_method(conn, 0, in, 2, NULL, 0, &out, &nout, NULL, NULL), SYSEXT_EIO);
    cr_assert_str_eq(sysext_last_error(), "driver connection closed");
    /* the driver process is fine: it stopped the user client and exits normally */
    cr_assert_eq(finish(), 0);
}
