#pragma once
/* The daemon's wire format (docs/protocol.md): a unix stream socket carrying
 * frames of a 4-byte big-endian length and that many bytes of one JSON object
 * (json-c), at most AIDP_PROTO_MAX_FRAME. File descriptors travel with a
 * frame as SCM_RIGHTS on its first byte. Every message names the protocol
 * version ("v"); a request the daemon cannot take gets an error frame. */
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

#define AIDP_PROTO_VERSION   1
#define AIDP_PROTO_MAX_FRAME 65536
/* stdin, stdout, stderr, cwd, output dir, summary, 16 datasets, 64 binds */
#define AIDP_PROTO_MAX_FDS 96
/* The default socket (the shipped aidp.socket unit listens there). */
#define AIDP_PROTO_SOCKET "/run/aidp/aidp.sock"

/* Send one frame with n_fds descriptors. 0 or -errno (EPIPE: the peer is gone;
 * EMSGSIZE: the message is longer than a frame may be). */
int aidp_proto_send(int sock, json_object *msg, const int *fds, size_t n_fds);

/* Receive one frame, waiting at most timeout_ms for all of it (< 0: no
 * limit). Returns 1 with *ret (the caller puts it) and the fds that came with
 * it (close-on-exec; *n_fds of them), 0 at a clean end of stream before a
 * frame began, or < 0 with err: ETIMEDOUT (too slow), EMSGSIZE (a length over
 * the limit or too many fds), EBADMSG (not a JSON object, or cut short),
 * EPROTO (no or another version). No fd is left open on failure. */
int aidp_proto_recv(int sock, int timeout_ms, json_object **ret, int *fds, size_t max_fds,
                    size_t *n_fds, aidp_error *err);
/* aidp_proto_recv of a message whose fds, if any were passed, this side does
 * not keep: they are closed. */
int aidp_proto_recv_msg(int sock, int timeout_ms, json_object **ret, aidp_error *err);

/* A new message {"v": 1, "type": type}. */
json_object *aidp_proto_msg(const char *type);
/* {"v":1,"type":"error","status":status,"message":msg}, sent; errors ignored
 * (the peer may be gone already). */
void aidp_proto_send_error(int sock, int status, const char *msg);

/* Field accessors that say what is wrong: a string, an integer within
 * [min,max], an array of at most max strings (NULL-terminated copy, free with
 * aidp_proto_strv_free). Errors are AIDP_EXIT_USAGE naming the field. */
int aidp_proto_get_str(json_object *o, const char *key, bool required, const char **ret,
                       aidp_error *err);
int aidp_proto_get_int(json_object *o, const char *key, bool required, int64_t min, int64_t max,
                       int64_t *ret, aidp_error *err);
int aidp_proto_get_strv(json_object *o, const char *key, size_t max, char ***ret, size_t *n,
                        aidp_error *err);
void aidp_proto_strv_free(char **v);
