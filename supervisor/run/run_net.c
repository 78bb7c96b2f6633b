/* A run's egress network (run_net.h). */
#include "supervisor/run/run_net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "supervisor/run/policy_load.h"

int aidp_run_net_resolve(struct aidp_run_net *n, const struct aidp_profile *p,
                         const char *hostnet_path, aidp_error *err)
{
        memset(n, 0, sizeof *n);
        if (p->network.mode != AIDP_NET_EGRESS)
                return 0;
        n->egress = true;
        const char *path = hostnet_path ? hostnet_path : AIDP_HOSTNET_PATH;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        /* The pools decide which addresses root puts on links: only root's file. */
        int rc = aidp_policy_read_file(path, true, &buf, &len, err);
        if (rc < 0)
                return aidp_error_wrap(err, "profile %s asks for egress; network configuration",
                                       p->name);
        if ((rc = aidp_hostnet_parse(path, buf, len, &n->host, err)) < 0)
                return rc;
        if ((rc = aidp_netpolicy_compile(&p->network, &n->plan, err)) < 0)
                return aidp_error_wrap(err, "profile %s", p->name);
        return 0;
}

int aidp_run_net_prepare(struct aidp_run_net *n, struct aidp_journal *j, const char *run_base,
                         const char *run_id, pid_t pid, aidp_error *err)
{
        if (!n->egress)
                return 0;
        aidp_journal_add(j, "network", "egress");
        int rc = aidp_journal_sync(j, err);
        if (rc < 0)
                return rc;
        char lease_dir[PATH_MAX], ns[64];
        snprintf(lease_dir, sizeof lease_dir, "%s/" AIDP_RUN_LEASE_DIR, run_base);
        snprintf(ns, sizeof ns, "/proc/%d/ns/net", (int)pid);
        /* pid is our own unreaped child, blocked on its sync socket: the path
         * cannot name another process's namespace. */
        _cleanup_close_ int fd = open(ns, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return aidp_error_errno(err, AIDP_EXIT_INTERNAL, errno, "%s", ns);
        return aidp_netpolicy_apply(n->plan, &n->host, lease_dir, run_id, fd, &n->applied, err);
}

int aidp_run_net_fd(const struct aidp_run_net *n)
{
        return n->applied ? aidp_netpolicy_nflog_fd(n->applied) : -1;
}

void aidp_run_net_drain(struct aidp_run_net *n)
{
        if (n->applied)
                aidp_netpolicy_drain(n->applied);
}

int aidp_run_net_teardown(struct aidp_run_net *n, aidp_error *err)
{
        if (!n->applied)
                return 0;
        aidp_netpolicy_drain(n->applied);
        n->denials = *aidp_netpolicy_denials(n->applied);
        int rc = aidp_netpolicy_teardown(n->applied, err);
        n->applied = NULL;
        return rc;
}

void aidp_run_net_free(struct aidp_run_net *n)
{
        if (n->applied)
                aidp_run_net_teardown(n, NULL);
        aidp_netpolicy_free(n->plan);
        aidp_hostnet_free(&n->host);
        memset(n, 0, sizeof *n);
}

int aidp_run_net_gc(const char *run_base, const char *run_id, aidp_error *err)
{
        char lease_dir[PATH_MAX];
        snprintf(lease_dir, sizeof lease_dir, "%s/" AIDP_RUN_LEASE_DIR, run_base);
        return aidp_netpolicy_gc(lease_dir, run_id, err);
}
