/* SPDX-License-Identifier: MIT */
/*
 * Wire frame shared by the stream transports (tcp, io_uring-tcp), so a node
 * on one can talk to a node on the other. Header-only: each plugin compiles
 * it in, no plugin links against another.
 *
 * A frame is a fixed 24-byte header, then msg_len bytes of core message,
 * then payload_len bytes of payload. All integers little-endian.
 */
#ifndef PAGEMESH_PLUGIN_FRAME_H
#define PAGEMESH_PLUGIN_FRAME_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

#include <pagemesh/transport.h>

#define PM_FRAME_MAGIC 0x31464d50u /* "PMF1" */

enum pm_frame_kind {
	PM_FRAME_REQ = 1,
	PM_FRAME_REP = 2,
};

struct pm_frame_hdr {
	uint32_t magic;
	uint8_t kind;
	uint8_t rsvd;
	uint16_t msg_len;
	uint32_t payload_len;
	int32_t status;   /* replies: 0 or -errno from the core; requests: 0 */
	uint64_t id;      /* request id, chosen by the caller, echoed back */
} __attribute__((packed));

#define PM_FRAME_HDR_LEN ((uint32_t)sizeof(struct pm_frame_hdr))

_Static_assert(sizeof(struct pm_frame_hdr) == 24, "frame header is 24 bytes");

static inline void pm_frame_encode(struct pm_frame_hdr *h, uint8_t kind,
				   uint64_t id, int32_t status,
				   uint32_t msg_len, uint32_t payload_len)
{
	h->magic = htole32(PM_FRAME_MAGIC);
	h->kind = kind;
	h->rsvd = 0;
	h->msg_len = htole16((uint16_t)msg_len);
	h->payload_len = htole32(payload_len);
	h->status = (int32_t)htole32((uint32_t)status);
	h->id = htole64(id);
}

/*
 * Decode and validate a header that arrived from the network, in place
 * (fields are host order afterwards). Returns NULL when it is well formed,
 * else which field is wrong, for the log line that drops the peer.
 */
static inline const char *pm_frame_decode(struct pm_frame_hdr *h)
{
	h->magic = le32toh(h->magic);
	h->msg_len = le16toh(h->msg_len);
	h->payload_len = le32toh(h->payload_len);
	h->status = (int32_t)le32toh((uint32_t)h->status);
	h->id = le64toh(h->id);

	if (h->magic != PM_FRAME_MAGIC)
		return "magic";
	if (h->kind != PM_FRAME_REQ && h->kind != PM_FRAME_REP)
		return "kind";
	if (h->rsvd != 0)
		return "rsvd";
	if (h->msg_len > PM_MSG_MAX)
		return "msg_len";
	if (h->payload_len > PM_PAYLOAD_MAX)
		return "payload_len";
	if (h->kind == PM_FRAME_REQ && h->status != 0)
		return "status";
	if (h->status > 0 || h->status < -4095)
		return "status";
	return NULL;
}

#endif /* PAGEMESH_PLUGIN_FRAME_H */
