// SPDX-License-Identifier: MIT
/* Bounded receive buffer for stream frames: read in bulk, validate each
 * header before its lengths are trusted, hand out whole frames in place. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tt.h"

int tt_rx_init(struct tt_rx *rx)
{
	rx->buf = malloc(TT_RX_CAP);
	if (!rx->buf)
		return -ENOMEM;
	tt_rx_reset(rx);
	return 0;
}

void tt_rx_free(struct tt_rx *rx)
{
	free(rx->buf);
	rx->buf = NULL;
}

void tt_rx_reset(struct tt_rx *rx)
{
	rx->start = 0;
	rx->end = 0;
	rx->need = PM_FRAME_HDR_LEN;
}

int tt_rx_next(struct tt_rx *rx, struct pm_frame_hdr *h, const uint8_t **body,
	       const char **bad)
{
	uint32_t have = rx->end - rx->start;
	uint32_t total;

	if (have < PM_FRAME_HDR_LEN) {
		rx->need = PM_FRAME_HDR_LEN;
		return 0;
	}
	/* Decode a copy: the bytes stay raw in case the body is not in yet. */
	memcpy(h, rx->buf + rx->start, PM_FRAME_HDR_LEN);
	*bad = pm_frame_decode(h);
	if (*bad)
		return -EPROTO;
	/* pm_frame_decode bounded both lengths, so this fits TT_RX_CAP. */
	total = PM_FRAME_HDR_LEN + h->msg_len + h->payload_len;
	if (have < total) {
		rx->need = total;
		return 0;
	}
	*body = rx->buf + rx->start + PM_FRAME_HDR_LEN;
	rx->start += total;
	rx->need = PM_FRAME_HDR_LEN;
	return 1;
}

/*
 * One blocking recv() on a blocking socket: the cheapest wait there is
 * (a poll() first would double the system calls of every round trip).
 * SO_RCVTIMEO (TT_RCVTIMEO_NS on calling connections, none on receive
 * threads, which shutdown() wakes) bounds it; -EAGAIN when that passed.
 */
static ssize_t tt_recv_blocking(int fd, void *buf, size_t len)
{
	ssize_t n;

	do {
		n = recv(fd, buf, len, 0);
	} while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	if (n == 0)
		return -ECONNRESET;
	return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

ssize_t tt_rx_fill(struct tt_rx *rx, int fd, int64_t deadline_ns, int mode)
{
	uint32_t have = rx->end - rx->start;
	int64_t left;
	void *dst;
	size_t room;
	ssize_t n;

	if (have == 0) {
		rx->start = 0;
		rx->end = 0;
	} else if (rx->start + rx->need > TT_RX_CAP || rx->end == TT_RX_CAP) {
		/* The frame in progress would run off the end: move it to
		 * the front (it is shorter than one frame). */
		memmove(rx->buf, rx->buf + rx->start, have);
		rx->start = 0;
		rx->end = have;
	}
	dst = rx->buf + rx->end;
	room = TT_RX_CAP - rx->end;
	switch (mode) {
	case TT_RX_NOWAIT:
		n = pm_net_read_some(fd, dst, room, 0);
		break;
	case TT_RX_FOREVER:
		n = tt_recv_blocking(fd, dst, room);
		break;
	case TT_RX_POLL:
		/* No SO_RCVTIMEO here (receive threads): poll for exactly
		 * the time left, after a try that finds bytes already in. */
		n = pm_net_read_some(fd, dst, room, deadline_ns);
		break;
	default:
		/* Far from the deadline, block in recv() for at most one
		 * SO_RCVTIMEO slice; near it, poll for exactly what is left. */
		for (;;) {
			left = deadline_ns - pm_now_ns();
			if (left <= TT_RCVTIMEO_NS + 1000000) {
				n = pm_net_read_some(fd, dst, room,
						     deadline_ns);
				break;
			}
			n = tt_recv_blocking(fd, dst, room);
			if (n != -EAGAIN)
				break;
		}
		break;
	}
	if (n > 0)
		rx->end += (uint32_t)n;
	return n;
}
