#pragma once
/* Exit statuses of aidp-supervisor and aidp. The job's own status passes through
 * (0-255, 128+N when it died of signal N); the supervisor's own outcomes use a
 * block just below the shell's 126/127 so they never look like a signal death.
 * Documented in README.md ("Exit statuses"); keep the two in step. */
enum aidp_exit {
        AIDP_EXIT_OK = 0,
        AIDP_EXIT_FAILED = 1,        /* aidp tools: check/verify found problems */
        AIDP_EXIT_LINEAGE = 116,     /* lineage cannot be written or is corrupt */
        AIDP_EXIT_DATA = 117,        /* sealed data: tampered, wrong key, unreadable */
        AIDP_EXIT_OOM = 118,         /* job killed by the memory limit */
        AIDP_EXIT_CONFIG = 119,      /* bad profile, policy or config file */
        AIDP_EXIT_USAGE = 120,       /* bad command line */
        AIDP_EXIT_DENIED = 121,      /* access or residency policy denied the run */
        AIDP_EXIT_TIMEOUT = 124,     /* wall time exceeded (as timeout(1)) */
        AIDP_EXIT_INTERNAL = 125,    /* supervisor failure (as docker/podman) */
        AIDP_EXIT_CANNOT_EXEC = 126, /* command found but not executable */
        AIDP_EXIT_NOT_FOUND = 127,   /* command not found */
        AIDP_EXIT_MAX
};
