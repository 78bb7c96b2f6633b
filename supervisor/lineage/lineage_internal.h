#pragma once
/* Private to supervisor/lineage: what the store (lineage.c: key, open, files,
 * verify) and its appends (lineage_append.c) share. */
#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"
#include "supervisor/lineage/lineage.h"
#include "supervisor/lineage/witness.h"

struct aidp_lineage {
        char *path;
        char *anchor_path;
        char *key_path;
        char *syslog_socket;
        bool have_key;
        unsigned char key[AIDP_LINEAGE_KEY_LEN];
        struct aidp_witness_set wit; /* empty unless options.publish_heads */
};

/* mkdir -p of path's parent directory; new directories get `mode`. */
int aidp_lineage_make_parents(const char *path, mode_t mode, aidp_error *err);
/* fsync of path's parent directory: 0 or -errno. */
int aidp_lineage_fsync_dir_of(const char *path);
/* The whole range at off, or -EIO when the file is shorter (it shrank under us:
 * not under our lock), or -errno. */
int aidp_lineage_pread_exact(int fd, void *buf, size_t len, off_t off);
/* Read and check the anchor at path; a missing anchor is *have = false. */
int aidp_lineage_load_anchor(const char *path, const unsigned char *key,
                             struct aidp_lineage_anchor *a, bool *have, aidp_error *err);

/* Shared by the appends (lineage_append.c) and rotation (lineage_rotate.c). */
/* Open and lock the log (the lock held until the fd is closed); a log renamed
 * away while we waited for the lock is let go and the new one opened. */
int aidp_lineage_lock(const struct aidp_lineage *lg, int *ret_fd, bool *created, off_t *size,
                      aidp_error *err);
/* The locked log's tail against its anchor; *last its last committed record. */
int aidp_lineage_check_tail(const struct aidp_lineage *lg, int fd, off_t *size,
                            struct aidp_lineage_record *last, aidp_error *err);
/* Both: the locked log and its last committed record. */
int aidp_lineage_lock_tail(const struct aidp_lineage *lg, int *ret_fd, bool *created, off_t *size,
                           struct aidp_lineage_record *last, aidp_error *err);
/* A whole new anchor file: temporary, fsync, rename, fsync of the directory. */
int aidp_lineage_replace_anchor(const struct aidp_lineage *lg, const char *buf, size_t len);
/* The committed record's head to the witnesses (bounded, never failing). */
void aidp_lineage_witness_publish(struct aidp_lineage *lg, const struct aidp_lineage_anchor *a);
