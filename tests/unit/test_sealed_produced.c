#define _GNU_SOURCE
/* The produced-by record of a sealed output (TLV 15, format 4; issue 18,
 * docs/sealed-format.md section 3): canonical, shape-checked, only in
 * version 4 (which needs it), and chained from the inputs' own records. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/sealed/codec/sealed_format.h"

static const char REC[] =
        "{\"v\":1,\"steps\":[{\"output\":\"r1-out\",\"run\":\"r1\",\"inputs\":[{\"dataset\":"
        "\"patients\",\"digest\":\"hmac-sha256:00\",\"injected\":\"viewed\",\"views\":"
        "[\"research\"],\"files\":[{\"pattern\":\"*.csv\",\"format\":\"csv\",\"columns\":"
        "[{\"column\":\"email\",\"labels\":[\"pii.direct\"],\"transform\":\"tokenize(hmac, "
        "domain=patient, key=tok-1)\",\"keyId\":\"tok-1\",\"domain\":\"patient\"},{\"column\":"
        "\"age\",\"labels\":[],\"transform\":\"raw\"}]}]}]}]}";

static struct aidp_sealed_header sample(void)
{
        struct aidp_sealed_header h;
        memset(&h, 0, sizeof h);
        strcpy(h.meta.name, "r1-out");
        strcpy(h.meta.version, "1");
        strcpy(h.meta.owner, "nobody");
        h.meta.created_at = 1717243200;
        h.meta.classification = AIDP_CLASS_CONFIDENTIAL;
        strcpy(h.meta.key_id, "run-key");
        h.key_wrap = AIDP_WRAP_AES256_KWP;
        h.wrapped_key_len = 40;
        memset(h.wrapped_key, 0xAB, 40);
        h.segment_size = 1 << 20;
        h.payload_len = 100;
        return h;
}

static void with_record(struct aidp_sealed_header *h, const char *rec)
{
        memcpy(h->produced_by, rec, strlen(rec));
        h->produced_by_len = strlen(rec);
}

static void expect_refused(const char *rec, const char *needle)
{
        aidp_error err = {0};
        cr_assert_lt(aidp_sealed_produced_check((const uint8_t *)rec, strlen(rec), &err), 0,
                     "accepted: %s", rec);
        cr_assert_eq(err.status, AIDP_EXIT_DATA);
        cr_assert(strstr(err.msg, needle), "'%s' not in '%s'", needle, err.msg);
}

Test(sealed_produced, format4_round_trips_and_is_canonical)
{
        static struct aidp_sealed_header h, d;
        h = sample();
        with_record(&h, REC);
        static uint8_t buf[AIDP_SEALED_PREFIX_LEN + AIDP_SEALED_BODY_MAX], again[sizeof buf];
        aidp_error err = {0};
        int n = aidp_sealed_header_encode(&h, buf, sizeof buf, &err);
        cr_assert_gt(n, 0, "%s", err.msg);
        cr_assert_eq(buf[9], 4, "a header with a produced-by record is format 4");
        cr_assert_eq(aidp_sealed_header_decode(buf, (size_t)n, &d, &err), 0, "%s", err.msg);
        cr_assert_eq(d.produced_by_len, strlen(REC));
        cr_assert_eq(memcmp(d.produced_by, REC, d.produced_by_len), 0);
        cr_assert_eq(aidp_sealed_header_encode(&d, again, sizeof again, &err), n);
        cr_assert_eq(memcmp(buf, again, (size_t)n), 0);
        json_object *j = aidp_sealed_produced_json(&d);
        cr_assert_not_null(j);
        json_object *step = json_object_array_get_idx(json_object_object_get(j, "steps"), 0);
        cr_assert_str_eq(json_object_get_string(json_object_object_get(step, "run")), "r1");
        json_object_put(j);

        /* Only version 4 has one, and version 4 must. */
        buf[9] = 3;
        struct aidp_sealed_header *x = &d;
        cr_assert_lt(aidp_sealed_header_decode(buf, (size_t)n, x, &err), 0);
        cr_assert(strstr(err.msg, "a produced-by record in a version 3 header"), "%s", err.msg);
        h = sample();
        n = aidp_sealed_header_encode(&h, buf, sizeof buf, &err);
        cr_assert_eq(buf[9], 2, "without one a header stays format 2");
        buf[9] = 4;
        cr_assert_lt(aidp_sealed_header_decode(buf, (size_t)n, x, &err), 0);
        cr_assert(strstr(err.msg, "required field 15 (produced-by record) missing"), "%s", err.msg);
}

Test(sealed_produced, only_the_canonical_well_formed_record_is_read)
{
        aidp_error err = {0};
        cr_assert_eq(aidp_sealed_produced_check((const uint8_t *)REC, strlen(REC), &err), 0, "%s",
                     err.msg);
        /* Well formed but not as the writer writes it: a space. */
        char spaced[sizeof REC + 1];
        snprintf(spaced, sizeof spaced, "{\"v\": %s", REC + 5);
        expect_refused(spaced, "not the canonical encoding");
        expect_refused("{\"v\":2,\"steps\":[]}", "\"v\" is not 1");
        expect_refused("{\"v\":1,\"steps\":[]}", "no step");
        expect_refused("{\"steps\":[],\"v\":1}", "unexpected or misplaced member");
        expect_refused("{\"v\":1,\"steps\":[{\"output\":\"o\",\"run\":\"r\"}]}",
                       "a required member is missing");
        expect_refused("{\"v\":1,\"steps\":[{\"output\":\"o\",\"run\":\"r\",\"inputs\":[{"
                       "\"dataset\":\"d\",\"digest\":\"x\",\"injected\":\"viewed\",\"views\":"
                       "[]}]}]}",
                       "views without files");
        expect_refused("{\"v\":1,\"steps\":[{\"output\":\"o\",\"run\":\"\",\"inputs\":[]}]}",
                       "non-empty string");
        expect_refused("{\"v\":1,\"steps\":[{\"output\":\"o\",\"run\":\"r\",\"inputs\":[]}]}x",
                       "not one JSON value");
        expect_refused("{\"v\":1,\"steps\":[{\"output\":\"o\",\"run\":\"r\",\"inputs\":[],"
                       "\"extra\":1}]}",
                       "unexpected or misplaced member");
        /* A step is a run or a re-seal (aidp seal --derived-from), never
         * both or neither, and in the writer's key order. */
        static const char reseal[] = "{\"v\":1,\"steps\":[{\"output\":\"o\",\"sealedBy\":"
                                     "\"root (uid 0)\",\"inputs\":[{\"dataset\":\"d\",\"digest\":"
                                     "\"hmac-sha256:00\",\"injected\":\"derived\"}]}]}";
        cr_assert_eq(aidp_sealed_produced_check((const uint8_t *)reseal, strlen(reseal), &err), 0,
                     "%s", err.msg);
        expect_refused("{\"v\":1,\"steps\":[{\"output\":\"o\",\"inputs\":[]}]}",
                       "neither or both of run and sealedBy");
        expect_refused("{\"v\":1,\"steps\":[{\"output\":\"o\",\"run\":\"r\",\"sealedBy\":"
                       "\"x\",\"inputs\":[]}]}",
                       "neither or both of run and sealedBy");
        expect_refused("{\"v\":1,\"steps\":[{\"output\":\"o\",\"sealedBy\":\"x\",\"run\":"
                       "\"r\",\"inputs\":[]}]}",
                       "unexpected or misplaced member");
}

/* The chain of step over in[0..n), checked; its steps in *steps (owned by the
 * returned root). */
static json_object *chain_of(json_object *step, const struct aidp_sealed_header *const *in,
                             size_t n, json_object **steps)
{
        uint8_t *rec = NULL;
        size_t len = 0;
        aidp_error err = {0};
        cr_assert_eq(aidp_sealed_produced_chain(step, in, n, &rec, &len, &err), 0, "%s", err.msg);
        cr_assert_eq(aidp_sealed_produced_check(rec, len, &err), 0, "%s", err.msg);
        char *text = strndup((const char *)rec, len);
        json_object *root = json_tokener_parse(text);
        free(text);
        free(rec);
        cr_assert_not_null(root);
        *steps = json_object_object_get(root, "steps");
        return root;
}

static const char *step_member(json_object *steps, size_t i, const char *key)
{
        return json_object_get_string(
                json_object_object_get(json_object_array_get_idx(steps, i), key));
}

Test(sealed_produced, an_outputs_chain_keeps_its_inputs_steps_once)
{
        static struct aidp_sealed_header a, b;
        a = sample();
        with_record(&a, REC);
        b = sample();
        with_record(&b, REC); /* the same ancestor through a second input */
        static const struct aidp_sealed_header *in[3];
        static struct aidp_sealed_header plain;
        plain = sample();
        in[0] = &a;
        in[1] = &plain;
        in[2] = &b;
        json_object *step = json_tokener_parse(
                "{\"output\":\"r2-out\",\"run\":\"r2\",\"inputs\":[{\"dataset\":\"r1-out\","
                "\"digest\":\"hmac-sha256:11\",\"injected\":\"sealed (no schema)\"}]}");
        json_object *steps = NULL, *root = chain_of(step, in, 3, &steps);
        cr_assert_eq(json_object_array_length(steps), 2);
        cr_assert_str_eq(step_member(steps, 0, "output"), "r2-out");
        cr_assert_str_eq(step_member(steps, 1, "output"), "r1-out");
        json_object_put(root);
}

/* Two different steps that name the same output are both kept: a name alone
 * (a re-seal may keep its input's, or pick an ancestor's) never drops the
 * history of another step. */
Test(sealed_produced, a_step_is_never_hidden_by_another_with_the_same_output_name)
{
        static struct aidp_sealed_header a;
        a = sample();
        with_record(&a, REC);
        static const struct aidp_sealed_header *in[1];
        in[0] = &a;
        json_object *step = json_tokener_parse(
                "{\"output\":\"r1-out\",\"sealedBy\":\"root (uid 0)\",\"inputs\":[{"
                "\"dataset\":\"r1-out\",\"digest\":\"hmac-sha256:11\",\"injected\":\"derived\"}]}");
        json_object *steps = NULL, *root = chain_of(step, in, 1, &steps);
        cr_assert_eq(json_object_array_length(steps), 2);
        cr_assert_str_eq(step_member(steps, 1, "run"), "r1");
        json_object_put(root);
}
