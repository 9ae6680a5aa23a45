// SPDX-License-Identifier: MIT
/* The two TCP_INFO byte counters the calling side's resend rule reads; a
 * file of its own because <linux/tcp.h> and glibc's <netinet/tcp.h> clash. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/tcp.h>

#include "tcpinfo.h"

int tt_tcp_counts(int fd, uint64_t *acked, uint64_t *received)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -errno;
	/* Kernels before 4.2 hand back a shorter struct without them. */
	if (len < offsetof(struct tcp_info, tcpi_bytes_received) +
		  sizeof(ti.tcpi_bytes_received))
		return -EOPNOTSUPP;
	*acked = ti.tcpi_bytes_acked;
	*received = ti.tcpi_bytes_received;
	return 0;
}
