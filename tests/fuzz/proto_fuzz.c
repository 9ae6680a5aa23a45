// SPDX-License-Identifier: MIT
/* libFuzzer target for the coherence-message validation (proto_check_req),
 * the gate every request passes in node.c's on_request. Input: 2 bytes of
 * cluster geometry, 4 of payload length, then the message bytes. */
#include <stdint.h>
#include <string.h>

#include "auth.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pm_proto_req rq;
	const char *bad = NULL;
	uint32_t plen;
	uint64_t npages;
	int nodes, self;

	if (size < 6)
		return 0;
	nodes = 1 + data[0] % 64;
	self = data[1] % nodes;
	npages = 1 + ((uint64_t)data[1] << 8 | data[0]) * 37;
	memcpy(&plen, data + 2, 4);
	data += 6;
	size -= 6;
	if (size > 1024)
		return 0;
	if (proto_check_req(data, (uint32_t)size, plen, nodes, self, npages,
			    &rq, &bad)) {
		if (!bad)
			__builtin_trap();	/* refused without a reason */
		return 0;
	}
	/* What on_request and coh.c rely on once it said yes. */
	if (size != sizeof(rq) || rq.op < PM_OP_HELLO || rq.op >= PM_OP_MAX ||
	    rq.from >= nodes || rq.from == self)
		__builtin_trap();
	if (rq.op >= PM_OP_READ && rq.op <= PM_OP_DOWNGRADE &&
	    rq.page >= npages)
		__builtin_trap();
	if ((rq.op == PM_OP_READ || rq.op == PM_OP_WRITE) &&
	    rq.arg > PM_PREFETCH_MAX)
		__builtin_trap();
	if (rq.op == PM_OP_HELLO && (plen <= AUTH_NONCE_LEN ||
				     plen - AUTH_NONCE_LEN >= PM_PROTO_NAME_MAX))
		__builtin_trap();
	if (rq.op == PM_OP_AUTH && plen != AUTH_MAC_LEN)
		__builtin_trap();
	/* barrier.c: SERVER_ONLY is a start-up barrier's, and BARRIER's
	 * only flag. */
	if ((rq.flags & PM_RQ_SERVER_ONLY) &&
	    (rq.op != PM_OP_BARRIER || rq.arg))
		__builtin_trap();
	if (rq.op == PM_OP_BARRIER && (rq.flags & ~PM_RQ_SERVER_ONLY))
		__builtin_trap();
	if (plen > PM_PAYLOAD_MAX)
		__builtin_trap();
	return 0;
}
