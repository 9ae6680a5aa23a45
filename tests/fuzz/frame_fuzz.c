// SPDX-License-Identifier: MIT
/* libFuzzer target for the stream transports' wire-frame decoder
 * (pm_frame_decode) and the tcp plugin's receive buffer (tt_rx_next):
 * the input is a byte stream as it would arrive from a socket. */
#include <stdint.h>
#include <string.h>

#include "frame.h"
#include "tt.h"

static struct tt_rx rx;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *body;
	struct pm_frame_hdr h;
	const char *bad;
	size_t off = 0;
	int r;

	if (!rx.buf && tt_rx_init(&rx))
		return 0;
	tt_rx_reset(&rx);
	/* The bare decoder on the first header's worth of bytes. */
	if (size >= PM_FRAME_HDR_LEN) {
		memcpy(&h, data, PM_FRAME_HDR_LEN);
		bad = pm_frame_decode(&h);
		if (!bad && (h.msg_len > PM_MSG_MAX ||
			     h.payload_len > PM_PAYLOAD_MAX))
			__builtin_trap();	/* accepted an oversize frame */
	}
	/* The stream in slices, as recv() would hand it over. */
	while (off < size) {
		uint32_t room = TT_RX_CAP - rx.end;
		size_t n = size - off;

		if (n > 4096)
			n = 4096;
		if (n > room)
			n = room;
		if (!n)
			break;
		memcpy(rx.buf + rx.end, data + off, n);
		rx.end += (uint32_t)n;
		off += n;
		while ((r = tt_rx_next(&rx, &h, &body, &bad)) == 1) {
			if (body < rx.buf || body + h.msg_len + h.payload_len >
						     rx.buf + rx.end)
				__builtin_trap();	/* frame out of bounds */
		}
		if (r < 0)
			return 0;	/* the plugin drops the peer here */
		/* Compact as the plugin does before its next recv(). */
		if (rx.start) {
			memmove(rx.buf, rx.buf + rx.start, rx.end - rx.start);
			rx.end -= rx.start;
			rx.start = 0;
		}
	}
	return 0;
}
