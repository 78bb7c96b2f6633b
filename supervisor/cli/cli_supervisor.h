#pragma once
/* aidp-supervisor's command line: run, gc, version. */
int aidp_supervisor_main(int argc, char **argv);
