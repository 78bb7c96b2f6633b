#pragma once
/* Shared by the files of netpolicy/ only. */
#include "netpolicy/netpolicy.h"

typedef unsigned __int128 aidp_u128;

/* "addr/len" or "addr" -> family and the block's first and last address
 * (IPv4 in the low 32 bits). Host bits set are accepted and cleared. */
int aidp_netpolicy_parse_cidr(const char *cidr, enum aidp_np_family *f, aidp_u128 *lo,
                              aidp_u128 *hi, unsigned *plen);
/* a as a big-endian byte string of the family's length (16 bytes written). */
void aidp_netpolicy_to_bytes(aidp_u128 a, enum aidp_np_family f, uint8_t out[16]);
