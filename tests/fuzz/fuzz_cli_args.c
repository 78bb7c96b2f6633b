/* libFuzzer harness for the command-line parser on run's table, as aidp-run
 * uses it (supervisor/cli/cli_client.c): the input is argv after "run", its
 * tokens separated by NUL bytes. Where it parses, aidp_cli_parse_at must
 * account for every token the way aidp-run relies on when it passes the
 * options on: each token before the job's command is an option's name, its
 * value or the one "--" just before the command; none after it is. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/cli/cli_supervisor.h"
#include "supervisor/cli/options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TOKENS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *buf = malloc(size + 1);
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        buf[size] = '\0';
        char *argv[MAX_TOKENS + 1] = {"run"};
        int argc = 1;
        for (size_t i = 0; i < size && argc < MAX_TOKENS; argc++) {
                argv[argc] = buf + i;
                i += strlen(buf + i) + 1;
        }
        argv[argc] = NULL;
        /* the parser splits SRC:DST in place: it parses copies */
        char *copy[MAX_TOKENS + 1] = {0};
        for (int k = 0; k < argc; k++)
                copy[k] = strdup(argv[k]);
        struct aidp_cli_run *c = calloc(1, sizeof *c);
        struct aidp_cli_parsed p;
        int at[MAX_TOKENS];
        aidp_error err = {0};
        if (c && aidp_cli_parse_at(&aidp_cli_run_spec, argc, copy, c, &p, at, &err) == 0) {
                if (p.first_arg < 1 || p.first_arg > argc || p.first_arg + p.n_args != argc)
                        abort();
                for (int k = 1; k < argc; k++) {
                        int w = at[k];
                        if (k >= p.first_arg && w != AIDP_CLI_AT_OPERAND)
                                abort();
                        if (k >= p.first_arg)
                                continue;
                        if (w == AIDP_CLI_AT_OPERAND)
                                abort(); /* a token before the command nobody took */
                        if (w == AIDP_CLI_AT_END && (k != p.first_arg - 1 || strcmp(argv[k], "--")))
                                abort();
                        if (w == AIDP_CLI_AT_VALUE && at[k - 1] < 0)
                                abort(); /* a value follows its option's name */
                        if (w >= 0 && argv[k][0] != '-')
                                abort();
                }
        }
        if (c) {
                aidp_cli_list_free(&c->env);
                aidp_cli_list_free(&c->data);
        }
        free(c);
        for (int k = 0; k < argc; k++)
                free(copy[k]);
        free(buf);
        return 0;
}
