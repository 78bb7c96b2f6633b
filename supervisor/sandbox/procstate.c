/* Process state the caller cannot cripple (procstate.h). */
#define _GNU_SOURCE
#include "supervisor/sandbox/procstate.h"

#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* What a root daemon would get from init, not from a user's shell; hard
 * limits generous, so a profile may still set the job's own (sandbox.c). */
static const struct {
        int resource;
        rlim_t soft, hard;
        const char *name;
        rlim_t need; /* the supervisor cannot work below this soft value; 0: any */
} limits[] = {
        {RLIMIT_CPU, RLIM_INFINITY, RLIM_INFINITY, "RLIMIT_CPU", RLIM_INFINITY},
        {RLIMIT_FSIZE, RLIM_INFINITY, RLIM_INFINITY, "RLIMIT_FSIZE", RLIM_INFINITY},
        {RLIMIT_DATA, RLIM_INFINITY, RLIM_INFINITY, NULL, 0},
        {RLIMIT_STACK, 8u << 20, RLIM_INFINITY, NULL, 0},
        /* Root's memory holds keys and plaintext: no core (soft 0; the process
         * is also not dumpable, keymem.c). The hard limit is left as it is
         * (raising it fails without CAP_SYS_RESOURCE anyway), so the test build
         * can still take a core to search for key bytes. */
        {RLIMIT_CORE, 0, RLIM_INFINITY, NULL, 0},
        {RLIMIT_RSS, RLIM_INFINITY, RLIM_INFINITY, NULL, 0},
        {RLIMIT_NPROC, RLIM_INFINITY, RLIM_INFINITY, NULL, 0},
        {RLIMIT_NOFILE, 65536, 1048576, "RLIMIT_NOFILE", 1024},
        {RLIMIT_MEMLOCK, 8u << 20, RLIM_INFINITY, NULL, 0},
        {RLIMIT_AS, RLIM_INFINITY, RLIM_INFINITY, NULL, 0},
        {RLIMIT_LOCKS, RLIM_INFINITY, RLIM_INFINITY, NULL, 0},
        {RLIMIT_SIGPENDING, RLIM_INFINITY, RLIM_INFINITY, NULL, 0},
        {RLIMIT_MSGQUEUE, 819200, RLIM_INFINITY, NULL, 0},
        {RLIMIT_NICE, 0, 0, NULL, 0},
        {RLIMIT_RTPRIO, 0, 0, NULL, 0},
        {RLIMIT_RTTIME, RLIM_INFINITY, RLIM_INFINITY, NULL, 0},
};

int aidp_procstate_reset(char *why, size_t why_len)
{
        int rc = 0;
        /* Each limit on its own: without CAP_SYS_RESOURCE a hard limit cannot
         * be raised, and then the soft one goes as high as the hard allows. */
        for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
                struct rlimit rl = {limits[i].soft, limits[i].hard}, cur;
                if (setrlimit(limits[i].resource, &rl) < 0 &&
                    getrlimit(limits[i].resource, &cur) == 0) {
                        rl.rlim_max = cur.rlim_max;
                        if (rl.rlim_cur > rl.rlim_max)
                                rl.rlim_cur = rl.rlim_max;
                        setrlimit(limits[i].resource, &rl);
                }
                if (limits[i].need && getrlimit(limits[i].resource, &cur) == 0 &&
                    cur.rlim_cur != RLIM_INFINITY &&
                    (limits[i].need == RLIM_INFINITY || cur.rlim_cur < limits[i].need) && rc == 0) {
                        snprintf(why, why_len,
                                 "%s is limited to %llu by the caller and cannot be raised "
                                 "(root here lacks CAP_SYS_RESOURCE); the supervisor needs %s "
                                 "to shred and record a run reliably",
                                 limits[i].name, (unsigned long long)cur.rlim_cur,
                                 limits[i].need == RLIM_INFINITY ? "it unlimited"
                                                                 : "at least 1024");
                        rc = -1;
                }
        }
        struct sigaction sa = {.sa_handler = SIG_DFL};
        sigemptyset(&sa.sa_mask);
        for (int s = 1; s < NSIG; s++)
                if (s != SIGKILL && s != SIGSTOP)
                        sigaction(s, &sa, NULL);
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
        sigaction(SIGXFSZ, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        umask(022);
        setpriority(PRIO_PROCESS, 0, 0);
        return rc;
}

void aidp_procstate_for_job(void)
{
        struct sigaction sa = {.sa_handler = SIG_DFL};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
        sigaction(SIGXFSZ, &sa, NULL);
}
