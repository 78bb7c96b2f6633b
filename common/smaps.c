/* smaps.h */
#include "common/smaps.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

bool aidp_smaps_line(struct aidp_smaps_map *m, const char *line)
{
        /* The previous call ended a block: the next one needs its header. */
        if (m->vmflags) {
                m->lo = m->hi = 0;
                m->vmflags = NULL;
        }
        unsigned long a, b, ino = 0;
        char p[5];
        int name = 0;
        int got = sscanf(line, "%lx-%lx %4s %*x %*x:%*x %lu %n", &a, &b, p, &ino, &name);
        if (got >= 3) {
                m->lo = a;
                m->hi = b;
                memcpy(m->perms, p, sizeof m->perms);
                /* no inode read: as if a file were behind it */
                m->inode = got == 4 ? ino : ULONG_MAX;
                m->name[0] = '\0';
                if (name > 0)
                        snprintf(m->name, sizeof m->name, "%.*s", (int)strcspn(line + name, "\n"),
                                 line + name);
                return false;
        }
        if (strncmp(line, "VmFlags:", 8) || m->hi <= m->lo)
                return false;
        m->vmflags = line + 8;
        return true;
}
