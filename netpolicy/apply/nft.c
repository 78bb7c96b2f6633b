/* Loading rulesets through libnftables: one buffer is one netlink batch, so a
 * ruleset is in place whole or not at all. */
#include <errno.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "netpolicy/apply/apply.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct nft_ctx *, nft_ctx_free)

static int run(const char *text, bool quiet_enoent, aidp_error *err)
{
        _cleanup_(nft_ctx_freep) struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        if (!ctx)
                return aidp_error_set(err, AIDP_EXIT_INTERNAL, ENOMEM, "libnftables");
        nft_ctx_buffer_output(ctx);
        nft_ctx_buffer_error(ctx);
        if (nft_run_cmd_from_buffer(ctx, text) == 0)
                return 0;
        const char *msg = nft_ctx_get_error_buffer(ctx);
        if (quiet_enoent && msg && strstr(msg, "No such file or directory"))
                return 0;
        char first[512] = "";
        if (msg)
                snprintf(first, sizeof first, "%s", msg);
        first[strcspn(first, "\n")] = '\0';
        return aidp_error_set(err, AIDP_EXIT_INTERNAL, EINVAL, "loading the nftables ruleset: %s",
                              first[0] ? first : "refused");
}

struct load_ctx {
        const char *text;
};

static int load_here(void *p, aidp_error *err)
{
        const struct load_ctx *c = p;
        return run(c->text, false, err);
}

int aidp_np_nft_load(const char *text, int netns_fd, aidp_error *err)
{
        struct load_ctx c = {text};
        /* libnftables opens its netlink socket in the namespace of the thread
         * that makes the context, so context and load both happen inside. */
        if (netns_fd >= 0)
                return aidp_np_in_netns(netns_fd, load_here, &c, err);
        return run(text, false, err);
}

int aidp_np_nft_delete_host(const char *run_id, aidp_error *err)
{
        _cleanup_free_ char *text = NULL;
        int rc = aidp_netpolicy_render_host_delete(run_id, &text, err);
        if (rc < 0)
                return rc;
        /* Only this run's table, by its name: never a flush. */
        return run(text, true, err);
}
