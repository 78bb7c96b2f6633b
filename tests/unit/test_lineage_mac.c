/* The lineage's HMAC with keyed contexts kept per key (codec/lineage_mac.h) gives
 * EVP_Q_mac's result for every key, more keys than it keeps, from several threads
 * at once; and an append in the background still reports a security event at its
 * commit after the caller dropped the event (the pending keeps only those). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/hex.h"
#include "runner.h"
#include "supervisor/lineage/codec/lineage_mac.h"
#include "supervisor/lineage/lineage.h"

static void reference(const unsigned char *key, const char *msg, char out[65])
{
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t n = 0;
        cr_assert_not_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, AIDP_LINEAGE_KEY_LEN,
                                     (const unsigned char *)msg, strlen(msg), mac, sizeof mac, &n));
        cr_assert_eq(n, 32);
        aidp_hex_encode(mac, 32, out);
}

static void key_of(int i, unsigned char key[AIDP_LINEAGE_KEY_LEN])
{
        for (size_t k = 0; k < AIDP_LINEAGE_KEY_LEN; k++)
                key[k] = (unsigned char)(i * 37 + k);
}

Test(lineage_mac, kept_contexts_give_the_reference_mac_for_more_keys_than_are_kept)
{
        static const char *const msgs[] = {"", "aidp-lineage-anchor-v2:x:1:abc", "a longer one"};
        for (int round = 0; round < 3; round++)
                for (int i = 0; i < 9; i++) {
                        unsigned char key[AIDP_LINEAGE_KEY_LEN];
                        key_of(i, key);
                        for (size_t m = 0; m < sizeof msgs / sizeof *msgs; m++) {
                                char want[65], got[65];
                                reference(key, msgs[m], want);
                                cr_assert_eq(
                                        aidp_lineage_hmac_hex(key, msgs[m], strlen(msgs[m]), got),
                                        0);
                                cr_assert_str_eq(got, want, "key %d, message %zu, round %d", i, m,
                                                 round);
                        }
                }
}

Test(lineage_mac, reused_contexts_of_a_kept_key_give_the_reference_mac)
{
        unsigned char key[AIDP_LINEAGE_KEY_LEN];
        key_of(40, key);
        char want[65], got[65];
        reference(key, "ab", want);
        /* Filled, given back, taken again: each time a message of its own. */
        for (int i = 0; i < 4; i++) {
                struct aidp_lineage_mac *m = aidp_lineage_mac_new(key);
                cr_assert_not_null(m);
                cr_assert_eq(aidp_lineage_mac_hex(m, "a", 1, "b", 1, got), 0);
                cr_assert_str_eq(got, want, "round %d", i);
                cr_assert_eq(aidp_lineage_mac_hex(m, "ab", 2, NULL, 0, got), 0);
                cr_assert_str_eq(got, want, "round %d, second message", i);
                cr_assert_eq(aidp_lineage_hmac_hex(key, "ab", 2, got), 0);
                cr_assert_str_eq(got, want, "round %d, while a context is out", i);
                aidp_lineage_mac_free(m);
        }
}

static void *hammer(void *arg)
{
        int base = (int)(intptr_t)arg;
        for (int n = 0; n < 300; n++) {
                unsigned char key[AIDP_LINEAGE_KEY_LEN];
                key_of(20 + (base + n) % 6, key);
                char msg[32], want[65], got[65];
                snprintf(msg, sizeof msg, "record %d", n);
                reference(key, msg, want);
                if (aidp_lineage_hmac_hex(key, msg, strlen(msg), got) < 0 || strcmp(got, want))
                        return (void *)1;
        }
        return NULL;
}

Test(lineage_mac, threads_filling_and_using_the_kept_contexts_at_once_agree_with_the_reference)
{
        pthread_t t[6];
        for (int i = 0; i < 6; i++)
                cr_assert_eq(pthread_create(&t[i], NULL, hammer, (void *)(intptr_t)i), 0);
        for (int i = 0; i < 6; i++) {
                void *bad = NULL;
                pthread_join(t[i], &bad);
                cr_assert_null(bad, "thread %d got a wrong MAC", i);
        }
}

/* ---- the syslog report of a background append ------------------------------------ */

static char dir[256];

static int bind_syslog(char *path, size_t len)
{
        snprintf(path, len, "%s/log", dir);
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        cr_assert_lt(strlen(path), sizeof a.sun_path);
        memcpy(a.sun_path, path, strlen(path) + 1);
        cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
        return s;
}

/* Appends ev in the background, dropping the caller's reference before the
 * commit as a run does with its START. */
static void append_dropping(struct aidp_lineage *lg, json_object *ev)
{
        struct aidp_lineage_pending *p = NULL;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_append_begin(lg, ev, &p, &e), 0, "%s", e.msg);
        json_object_put(ev);
        cr_assert_eq(aidp_lineage_append_commit(p, &e), 0, "%s", e.msg);
}

Test(lineage_mac, a_background_append_reports_an_abort_at_commit_and_a_start_not_at_all)
{
        snprintf(dir, sizeof dir, "/var/tmp/aidp-lineage-mac.XXXXXX");
        cr_assert_not_null(aidp_test_mkdtemp(dir));
        char sock[300], log_path[300], key_path[300];
        int s = bind_syslog(sock, sizeof sock);
        snprintf(log_path, sizeof log_path, "%s/lineage.jsonl", dir);
        snprintf(key_path, sizeof key_path, "%s/lineage.key", dir);
        struct aidp_lineage_options o = {
                .path = log_path, .key_path = key_path, .syslog_socket = sock, .create_key = true};
        struct aidp_lineage *lg = NULL;
        aidp_error e = {0};
        cr_assert_eq(aidp_lineage_open(&lg, &o, &e), 0, "%s", e.msg);
        char id[AIDP_LINEAGE_RUN_ID_LEN + 1];
        aidp_lineage_run_id_new(id);
        append_dropping(lg, aidp_lineage_event_new(AIDP_LINEAGE_START, id, NULL, "job-start"));
        char buf[4096];
        cr_assert_lt(recv(s, buf, sizeof buf, 0), 0, "a START is no security event");
        append_dropping(lg, aidp_lineage_event_new(AIDP_LINEAGE_ABORT, id, NULL, "job-abort"));
        ssize_t n = recv(s, buf, sizeof buf - 1, 0);
        cr_assert_gt(n, 0, "the ABORT was not reported");
        buf[n] = '\0';
        cr_assert_not_null(strstr(buf, "ABORT"), "%s", buf);
        cr_assert_not_null(strstr(buf, id), "%s", buf);
        cr_assert_not_null(strstr(buf, "job-abort"), "%s", buf);
        aidp_lineage_free(lg);
        close(s);
        aidp_test_rm_tree(dir);
}
