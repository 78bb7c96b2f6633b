#pragma once
/* Masking one path of the sandbox's view (sandbox.c): an empty file or
 * directory bound over it. */

/* Bind mask_src/f (a file) or mask_src/d (a directory) over the file at p,
 * unless nothing (or a symlink) is there. 0, or -1 with errno. */
int aidp_mask_bind(const char *mask_src, const char *p);
