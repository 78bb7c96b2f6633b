/* A policy denial as a lineage record: an OTHER event whose aidp_policy facet holds
 * every reason and the whole decision, appended durably and reported to syslog as
 * DENIED with the failing reason. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "residency/decide.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/run/run_policy.h"
#include "lineage_util.h"

static char dir[64];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
        (void)st;
        (void)flag;
        (void)f;
        return remove(p);
}

static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/aidp-denial.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
        nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(run_lineage_policy, .init = setup, .fini = teardown, .timeout = 60);

Test(run_lineage_policy, denial_is_an_other_record_with_reasons_and_a_syslog_event)
{
        char sock_path[128], logp[128], keyp[128];
        snprintf(sock_path, sizeof sock_path, "%s/log.sock", dir);
        snprintf(logp, sizeof logp, "%s/lineage.jsonl", dir);
        snprintf(keyp, sizeof keyp, "%s/lineage.key", dir);
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strcpy(sa.sun_path, sock_path);
        cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);

        struct aidp_reason reasons[] = {
                {.result = AIDP_REASON_PASS,
                 .check = AIDP_CHECK_ACCESS,
                 .rule = "roles.trainer",
                 .source = "access.yaml:4",
                 .message = "alice holds role trainer"},
                {.result = AIDP_REASON_FAIL,
                 .check = AIDP_CHECK_RESIDENCY,
                 .rule = "residency.eu",
                 .source = "residency.yaml:2",
                 .dataset = "patients",
                 .attribute = "region",
                 .message = "host region us-east-1 is not in eu-*"},
        };
        struct aidp_decision d = {.allow = false,
                                  .user = "alice",
                                  .uid = 1000,
                                  .host_region = "us-east-1",
                                  .reasons = reasons,
                                  .n_reasons = 2};
        struct aidp_host_identity host = {.region = "us-east-1"};
        struct aidp_run_policy pol = {.enforced = true, .decided = true, .decision = d};
        pol.set.host = &host;
        struct aidp_lineage_options o = {
                .path = logp, .key_path = keyp, .syslog_socket = sock_path, .create_key = true};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_open(&lg, &o, &e), 0, "%s", e.msg);
        json_object *ev = aidp_lineage_event_new(
                AIDP_LINEAGE_OTHER, "3f1c2b1e-8f0a-4c1d-9e2f-0123456789ab", NULL, "train");
        aidp_run_policy_annotate(&pol, ev);
        cr_assert_eq(aidp_lineage_append(lg, ev, &e), 0, "%s", e.msg);

        json_object *dec = aidp_test_json_at(ev, "run.facets.aidp_policy.decisions");
        /* the verdict for the run, then one entry per checked rule */
        cr_assert_eq(json_object_array_length(dec), 3);
        cr_assert_str_eq(json_object_get_string(
                                 aidp_test_json_at(json_object_array_get_idx(dec, 0), "decision")),
                         "deny");
        json_object *deny = json_object_array_get_idx(dec, 2);
        cr_assert_str_eq(json_object_get_string(aidp_test_json_at(deny, "decision")), "deny");
        cr_assert_str_eq(json_object_get_string(aidp_test_json_at(deny, "subject")),
                         "dataset patients");
        cr_assert_str_eq(json_object_get_string(aidp_test_json_at(deny, "rule")),
                         "residency.eu (residency.yaml:2)");
        cr_assert_eq(
                json_object_get_boolean(aidp_test_json_at(ev, "run.facets.aidp_policy.enforced")),
                1);
        cr_assert_str_eq(json_object_get_string(
                                 aidp_test_json_at(ev, "run.facets.aidp_policy.trail.decision")),
                         "deny");
        cr_assert_str_eq(
                json_object_get_string(aidp_test_json_at(ev, "run.facets.aidp_host.region")),
                "us-east-1");
        json_object_put(ev);

        struct pollfd pf = {.fd = s, .events = POLLIN};
        cr_assert_eq(poll(&pf, 1, 2000), 1, "no syslog message");
        char msg[4096];
        ssize_t n = recv(s, msg, sizeof msg - 1, 0);
        msg[n > 0 ? n : 0] = '\0';
        close(s);
        cr_assert(strstr(msg, " DENIED [aidp@32473 ") &&
                          strstr(msg, "reason=\"host region us-east-1 is not in eu-*\""),
                  "%s", msg);

        struct aidp_lineage_verify v;
        cr_assert_eq(aidp_lineage_verify_file(logp, NULL, true, aidp_lineage_key(lg), &v, &e), 0);
        cr_assert_eq(v.bad_line, 0, "%s", v.reason);
        cr_assert_eq(v.records, 1);
        aidp_lineage_free(lg);
}
