/* SPDX-License-Identifier: MIT */
/* The core protocol: what the bytes of a transport message mean. Plugins
 * never look inside; every field is validated by proto_check() on arrival. */
#ifndef PM_PROTO_H
#define PM_PROTO_H

#include <stdint.h>

enum pm_op {
	PM_OP_HELLO = 1,	/* -> any: who I am, cluster geometry */
	PM_OP_READ,		/* -> home: want a read-only copy */
	PM_OP_WRITE,		/* -> home: want the exclusive copy */
	PM_OP_INVAL,		/* home -> sharer: drop your copy */
	PM_OP_RECALL,		/* home -> owner: send data, drop your copy */
	PM_OP_DOWNGRADE,	/* home -> owner: send data, keep read-only */
	PM_OP_BARRIER,		/* -> node 0: arrived at barrier gen */
	PM_OP_AUTH,		/* -> any: proof of the key (auth.h) */
	PM_OP_EVICT,		/* -> home: I dropped my copy (data if dirty) */
	PM_OP_PING,		/* -> any: I am alive (the failure detector) */
	PM_OP_MAX
};

/* Request flags. */
#define PM_RQ_HAS_COPY 0x01	/* WRITE: I hold a read-only copy (upgrade) */
#define PM_RQ_DIRTY 0x02	/* EVICT: payload is my exclusive copy */
#define PM_RQ_CLEAN_LIST 0x04	/* EVICT: payload lists `arg` pages whose
				 * read-only copies I dropped (u64 each) */
#define PM_EVICT_LIST_MAX 256
#define PM_RQ_SERVER_ONLY 0x08	/* BARRIER (generation 0 only): I only
				 * serve (`pagemesh node`) and call no
				 * barrier again: count me arrived at
				 * every later generation */

/* Reply flags. */
#define PM_RP_DATA 0x01		/* payload carries the page */
#define PM_RP_ZERO 0x02		/* the page was never written: all zero */
#define PM_RP_EXCL 0x04		/* grant is exclusive (else shared) */
#define PM_RP_LOST 0x10		/* internal: the page's data is lost */
#define PM_RP_NOT_HELD 0x08	/* action target keeps no copy (with DATA:
				 * answered from a grant it then dropped) */
#define PM_RP_AUTH 0x20		/* HELLO: payload is Ns | server MAC */

struct pm_proto_req {
	uint8_t op;		/* enum pm_op */
	uint8_t flags;		/* PM_RQ_* */
	uint16_t from;		/* sender's node id */
	uint32_t arg;		/* HELLO: cluster nodes; BARRIER: generation;
				 * READ/WRITE: pages after `page` wanted too
				 * (prefetch, 0..PM_PREFETCH_MAX) */
	uint64_t page;		/* page index (READ..DOWNGRADE);
				 * HELLO: the sender's incarnation */
	uint64_t arg64;		/* HELLO: region bytes */
} __attribute__((packed));	/* HELLO's payload: the cluster name */

/*
 * A grant may carry prefetched pages: bit i of `extra` set means page+1+i
 * is granted too (same mode as the primary), bit i of `extra_zero` that it
 * is all zero. The payload holds the primary's data (with PM_RP_DATA),
 * then the data of each granted, non-zero extra page in order.
 */
struct pm_proto_rep {
	uint8_t op;		/* echoes the request op */
	uint8_t flags;		/* PM_RP_* */
	uint16_t from;
	uint16_t extra;
	uint16_t extra_zero;
	uint64_t page;
} __attribute__((packed));

#define PM_PREFETCH_MAX 15	/* PM_PAYLOAD_MAX holds 16 pages */

/* HELLO's payload: the client's nonce (auth.h), then the cluster name of
 * fewer than PM_PROTO_NAME_MAX bytes (CFG_NAME_MAX). */
#define PM_PROTO_NAME_MAX 64

/*
 * Check a request that arrived (msg of len bytes, payload_len bytes of
 * payload) against the cluster's geometry: op, sender id, page index,
 * prefetch count and payload size per op. 0 and *out set, or -EPROTO and
 * *bad naming the wrong field.
 */
/* The op's name for logs and metrics ("read"), "unknown" out of range. */
const char *proto_op_name(unsigned op);

int proto_check_req(const void *msg, uint32_t len, uint32_t payload_len,
		    int nodes, int self, uint64_t npages,
		    struct pm_proto_req *out, const char **bad);

#endif
