#pragma once
/* systemd-style scope cleanup. gnu11 is required for __attribute__((cleanup)). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void aidp_freep(void *p)
{
        free(*(void **)p);
}
static inline void aidp_closep(int *fd)
{
        if (*fd >= 0) {
                int e = errno;
                close(*fd);
                errno = e;
        }
}
static inline void aidp_fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}
#define _cleanup_free_   _cleanup_(aidp_freep)
#define _cleanup_close_  _cleanup_(aidp_closep)
#define _cleanup_fclose_ _cleanup_(aidp_fclosep)

/* Take ownership: returns the value and leaves the variable empty. */
#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                __typeof__(p) _t = (p);                                                            \
                (p) = NULL;                                                                        \
                _t;                                                                                \
        })
#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int _t = (fd);                                                                     \
                (fd) = -1;                                                                         \
                _t;                                                                                \
        })

/* Define `static inline void name##p(type *p)` calling func(*p) when non-NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
        static inline void func##p(type *p)                                                        \
        {                                                                                          \
                if (*p)                                                                            \
                        func(*p);                                                                  \
        }

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
