/* aidp-supervisor: builds the sandbox, runs one job, shreds everything. */
#include "supervisor/cli_supervisor.h"

int main(int argc, char **argv)
{
        return aidp_supervisor_main(argc, argv);
}
