/* RFC 5424 security events: the exact formatted string, escaping, limits, and
 * delivery to a syslog socket (a test listener on a temporary unix socket). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "supervisor/lineage/lineage.h"
#include "supervisor/lineage/seclog.h"

#define T0 1714566896789000000LL /* 2024-05-01T12:34:56.789Z */

Test(seclog, formats_header_and_structured_data_exactly)
{
        struct aidp_seclog_param p[] = {{"runId", "3f1c2b1e-8f0a-4c1d-9e2f-0123456789ab"},
                                        {"reason", "region us-east not in [eu-*]"}};
        struct aidp_seclog_msg m = {.severity = LOG_WARNING,
                                    .time_ns = T0,
                                    .hostname = "node1",
                                    .procid = 4242,
                                    .msgid = "DENIED",
                                    .params = p,
                                    .nparams = 2,
                                    .text = "run denied by policy"};
        char buf[1024];
        int n = aidp_seclog_format(buf, sizeof buf, &m);
        cr_assert_gt(n, 0);
        /* PRI = authpriv(10) * 8 + warning(4) = 84; VERSION 1; ']' escaped in values. */
        cr_assert_str_eq(buf, "<84>1 2024-05-01T12:34:56.789Z node1 aidp 4242 DENIED "
                              "[aidp@32473 runId=\"3f1c2b1e-8f0a-4c1d-9e2f-0123456789ab\" "
                              "reason=\"region us-east not in [eu-*\\]\"] run denied by policy");
        cr_assert_eq((size_t)n, strlen(buf));
}

Test(seclog, escapes_quote_backslash_bracket_and_flattens_newlines)
{
        struct aidp_seclog_param p[] = {{"file", "a\"b\\c]d"}};
        struct aidp_seclog_msg m = {.severity = LOG_CRIT,
                                    .time_ns = T0,
                                    .hostname = "h",
                                    .procid = 1,
                                    .msgid = "TAMPER",
                                    .params = p,
                                    .nparams = 1,
                                    .text = "two\nlines"};
        char buf[512];
        cr_assert_gt(aidp_seclog_format(buf, sizeof buf, &m), 0);
        cr_assert_str_eq(buf, "<82>1 2024-05-01T12:34:56.789Z h aidp 1 TAMPER "
                              "[aidp@32473 file=\"a\\\"b\\\\c\\]d\"] two lines");
}

Test(seclog, nil_values_for_missing_or_invalid_header_fields)
{
        struct aidp_seclog_msg m = {.severity = LOG_NOTICE,
                                    .time_ns = T0,
                                    .hostname = "bad host",
                                    .app_name = "",
                                    .procid = 0,
                                    .msgid = NULL};
        char buf[256];
        cr_assert_gt(aidp_seclog_format(buf, sizeof buf, &m), 0);
        cr_assert_str_eq(buf, "<85>1 2024-05-01T12:34:56.789Z - - - - -");
}

Test(seclog, rejects_bad_param_names_and_severity_and_small_buffers)
{
        char buf[512];
        static const char *const bad[] = {
                "", "has space", "eq=", "quo\"te", "br]", "a234567890123456789012345678901234"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct aidp_seclog_param p[] = {{bad[i], "v"}};
                struct aidp_seclog_msg m = {
                        .severity = 4, .time_ns = T0, .msgid = "X", .params = p, .nparams = 1};
                cr_assert_eq(aidp_seclog_format(buf, sizeof buf, &m), -EINVAL, "name '%s' accepted",
                             bad[i]);
        }
        struct aidp_seclog_msg m = {.severity = 8, .time_ns = T0};
        cr_assert_eq(aidp_seclog_format(buf, sizeof buf, &m), -EINVAL);
        m.severity = 3;
        m.text = "a message that does not fit";
        cr_assert_eq(aidp_seclog_format(buf, 40, &m), -ENOSPC);
}

/* ---- delivery -------------------------------------------------------------------------- */

static char sdir[128], sock_path[160];
static int sock = -1;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
        (void)st;
        (void)flag;
        (void)f;
        return remove(p);
}

static void listen_setup(void)
{
        snprintf(sdir, sizeof sdir, "/tmp/aidp-seclog.XXXXXX");
        cr_assert_not_null(mkdtemp(sdir));
        snprintf(sock_path, sizeof sock_path, "%s/log", sdir);
        sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(sock, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strcpy(sa.sun_path, sock_path);
        cr_assert_eq(bind(sock, (struct sockaddr *)&sa, sizeof sa), 0);
}

static void listen_teardown(void)
{
        if (sock >= 0)
                close(sock);
        nftw(sdir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* Next datagram, or "" after a second. */
static void receive(char *buf, size_t size)
{
        struct pollfd p = {.fd = sock, .events = POLLIN};
        buf[0] = '\0';
        if (poll(&p, 1, 1000) != 1)
                return;
        ssize_t n = recv(sock, buf, size - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
}

TestSuite(seclog_socket, .init = listen_setup, .fini = listen_teardown, .timeout = 60);

Test(seclog_socket, send_delivers_one_rfc5424_datagram)
{
        struct aidp_seclog_param p[] = {{"k", "v"}};
        struct aidp_seclog_msg m = {.severity = LOG_CRIT,
                                    .msgid = "TAMPER",
                                    .params = p,
                                    .nparams = 1,
                                    .text = "hello"};
        cr_assert_eq(aidp_seclog_send(sock_path, &m), 0);
        char buf[4096];
        receive(buf, sizeof buf);
        char want[64];
        snprintf(want, sizeof want, " aidp %ld TAMPER [aidp@32473 k=\"v\"] hello", (long)getpid());
        cr_assert(!strncmp(buf, "<82>1 20", 8), "%s", buf);
        cr_assert(strstr(buf, want), "'%s' lacks '%s'", buf, want);
}

Test(seclog_socket, send_without_a_listener_fails_quietly)
{
        struct aidp_seclog_msg m = {.severity = LOG_CRIT, .msgid = "X"};
        char missing[200];
        snprintf(missing, sizeof missing, "%s/none", sdir);
        cr_assert_lt(aidp_seclog_send(missing, &m), 0);
}

static char ldir[200], llog[260], lkey[260];

Test(seclog_socket, lineage_denials_and_aborts_go_to_syslog_but_not_starts)
{
        snprintf(ldir, sizeof ldir, "%s/lineage", sdir);
        snprintf(llog, sizeof llog, "%s/l.jsonl", ldir);
        snprintf(lkey, sizeof lkey, "%s/l.key", ldir);
        struct aidp_lineage_options o = {
                .path = llog, .key_path = lkey, .syslog_socket = sock_path, .create_key = true};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_open(&lg, &o, &e), 0, "%s", e.msg);
        const char *id = "3f1c2b1e-8f0a-4c1d-9e2f-0123456789ab";
        char buf[4096];

        json_object *ev = aidp_lineage_event_new(AIDP_LINEAGE_START, id, NULL, "train");
        cr_assert_eq(aidp_lineage_append(lg, ev, &e), 0, "%s", e.msg);
        json_object_put(ev);
        receive(buf, sizeof buf);
        cr_assert_str_eq(buf, "", "START is not a security event: %s", buf);

        ev = aidp_lineage_event_new(AIDP_LINEAGE_OTHER, id, NULL, "train");
        aidp_lineage_add_decision(ev, "dataset imagenet", "deny", "eu-only", "host region us-east");
        cr_assert_eq(aidp_lineage_append(lg, ev, &e), 0, "%s", e.msg);
        json_object_put(ev);
        receive(buf, sizeof buf);
        cr_assert(!strncmp(buf, "<84>1 ", 6), "%s", buf);
        cr_assert(strstr(buf,
                         " DENIED [aidp@32473 runId=\"3f1c2b1e-8f0a-4c1d-9e2f-0123456789ab\" "
                         "job=\"train\" eventType=\"OTHER\" lineageSeq=\"2\" egressDenied=\"0\" "
                         "reason=\"host region us-east\"] run denied by policy"),
                  "%s", buf);

        ev = aidp_lineage_event_new(AIDP_LINEAGE_ABORT, id, NULL, "train");
        aidp_lineage_set_exit(ev, -1, 0, 125, "supervisor died; cleaned by gc");
        cr_assert_eq(aidp_lineage_append(lg, ev, &e), 0, "%s", e.msg);
        json_object_put(ev);
        receive(buf, sizeof buf);
        cr_assert(!strncmp(buf, "<85>1 ", 6), "%s", buf);
        cr_assert(strstr(buf, " ABORT [aidp@32473 ") && strstr(buf, "lineageSeq=\"3\"") &&
                          strstr(buf, "reason=\"supervisor died; cleaned by gc\"] run aborted"),
                  "%s", buf);

        ev = aidp_lineage_event_new(AIDP_LINEAGE_COMPLETE, id, NULL, "train");
        aidp_lineage_add_network_denial(ev, "tcp", "203.0.113.9", 443, 4);
        cr_assert_eq(aidp_lineage_append(lg, ev, &e), 0, "%s", e.msg);
        json_object_put(ev);
        receive(buf, sizeof buf);
        cr_assert(strstr(buf, " EGRESS_DENIED [") && strstr(buf, "egressDenied=\"4\""), "%s", buf);

        /* In the background, as a run appends: the caller drops its event
         * before the commit, which still reports an ABORT, and a START not. */
        static const enum aidp_lineage_event_type bg[] = {AIDP_LINEAGE_START, AIDP_LINEAGE_ABORT};
        for (size_t i = 0; i < 2; i++) {
                struct aidp_lineage_pending *pnd = NULL;
                ev = aidp_lineage_event_new(bg[i], id, NULL, "train");
                cr_assert_eq(aidp_lineage_append_begin(lg, ev, &pnd, &e), 0, "%s", e.msg);
                json_object_put(ev);
                cr_assert_eq(aidp_lineage_append_commit(pnd, &e), 0, "%s", e.msg);
                receive(buf, sizeof buf);
                if (i == 0)
                        cr_assert_str_eq(buf, "", "a background START was reported: %s", buf);
        }
        cr_assert(strstr(buf, " ABORT [aidp@32473 ") && strstr(buf, "lineageSeq=\"6\""), "%s", buf);
        aidp_lineage_free(lg);
}
