/* Token keys (keys.yaml purpose tokenize) for column views: see keys.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/sealed/keys.h"
#include "views/view.h"

/* A token key: declared in keys.yaml with purpose tokenize, its 32 bytes from
 * the provider. Only the file provider keeps key material aidp may read; an
 * exec provider only wraps and unwraps. */
int aidp_keys_read_token(const struct aidp_keys *k, const char *id, struct aidp_token_key *out,
                         aidp_error *err)
{
        const struct aidp_key_decl *decl = aidp_keys_find(k, id);
        if (!decl)
                return aidp_error_set(err, AIDP_EXIT_DATA, ENOKEY,
                                      "token key %s is not declared in %s (a view tokenizes "
                                      "with it; declare it with `aidp keygen %s --purpose "
                                      "tokenize`)",
                                      id, k->config[0] ? k->config : "keys.yaml", id);
        if (decl->purpose != AIDP_KEY_PURPOSE_TOKENIZE)
                return aidp_error_set(err, AIDP_EXIT_DATA, EPERM,
                                      "token key %s has purpose %s in %s, not tokenize: a key "
                                      "has one purpose",
                                      id, aidp_key_purpose_name(decl->purpose), k->config);
        if (k->kind != AIDP_KEYS_FILE)
                return aidp_error_set(
                        err, AIDP_EXIT_DATA, ENOKEY,
                        "token key %s: token keys come from the file provider "
                        "(%s holds no key material aidp may read)",
                        id, k->kind == AIDP_KEYS_EXEC ? "the exec provider" : "this provider");
        _cleanup_secret_ struct aidp_secret s = {0};
        int r = aidp_keys_read_kek(k->dir, id, &s, err);
        if (r < 0)
                return aidp_error_wrap(err, "token key %s", id);
        if (s.len != sizeof out->key)
                return aidp_error_set(err, AIDP_EXIT_DATA, EBADMSG,
                                      "token key %s: %zu bytes, expected %zu", id, s.len,
                                      sizeof out->key);
        snprintf(out->key_id, sizeof out->key_id, "%s", id);
        memcpy(out->key, s.p, sizeof out->key);
        return 0;
}
