/* SPDX-License-Identifier: MIT */
/* TCP_INFO byte counters of a socket (tcpinfo.c), kept apart from tt.h so
 * that file can include <linux/tcp.h>. */
#ifndef TT_TCPINFO_H
#define TT_TCPINFO_H

#include <stdint.h>

/*
 * Bytes of ours the peer has acknowledged (tcpi_bytes_acked, which counts
 * our SYN too) and sequence space received from it in order
 * (tcpi_bytes_received: data, plus one for its FIN). 0, or -errno:
 * -EOPNOTSUPP on a kernel without them (before 4.2), -ENOPROTOOPT or
 * -EOPNOTSUPP on a socket that is not TCP.
 */
int tt_tcp_counts(int fd, uint64_t *acked, uint64_t *received);

#endif /* TT_TCPINFO_H */
