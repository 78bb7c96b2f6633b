/* The binaries' entry to keymem.h (cli/bin may only use the cli layer). */
#include "supervisor/cli/cli.h"
#include "supervisor/sealed/keymem.h"

void aidp_cli_keymem_init(void)
{
        aidp_keymem_process_init();
}

void aidp_cli_keymem_enable(void)
{
        aidp_keymem_enable();
}
