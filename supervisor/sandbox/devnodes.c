/* The minimal /dev's two views, generated from the one table in devnodes.h. */
#include "supervisor/sandbox/devnodes.h"

#define NODE(n, ma, mi) {n, ma, mi},
const struct aidp_devnode aidp_devnodes[AIDP_DEVNODES_N] = {AIDP_DEVNODES_MADE(NODE)};
#undef NODE

#define RULE(n, ma, mi) "c " #ma ":" #mi " rwm",
const char *const aidp_devnodes_allow[AIDP_DEVNODES_ALLOW_N + 1] = {
        AIDP_DEVNODES_MADE(RULE) AIDP_DEVNODES_DEVPTS(RULE) NULL};
#undef RULE
