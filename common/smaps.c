/* smaps.h */
#include "common/smaps.h"

#include <stdio.h>
#include <string.h>

bool aidp_smaps_line(struct aidp_smaps_map *m, const char *line)
{
        /* The previous call ended a block: the next one needs its header. */
        if (m->vmflags) {
                m->lo = m->hi = 0;
                m->vmflags = NULL;
        }
        unsigned long a, b;
        char p[5];
        if (sscanf(line, "%lx-%lx %4s", &a, &b, p) == 3) {
                m->lo = a;
                m->hi = b;
                memcpy(m->perms, p, sizeof m->perms);
                return false;
        }
        if (strncmp(line, "VmFlags:", 8) || m->hi <= m->lo)
                return false;
        m->vmflags = line + 8;
        return true;
}
