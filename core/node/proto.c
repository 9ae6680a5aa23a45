// SPDX-License-Identifier: MIT
/* Validation of the core protocol's requests as they arrive: every field
 * from the network is checked here before on_request looks at it. */
#include <errno.h>
#include <string.h>

#include "auth.h"
#include "proto.h"

int proto_check_req(const void *msg, uint32_t len, uint32_t payload_len,
		    int nodes, int self, uint64_t npages,
		    struct pm_proto_req *out, const char **bad)
{
	struct pm_proto_req rq;

	*bad = NULL;
	if (!msg || len != sizeof(rq)) {
		*bad = "msg_len";
		return -EPROTO;
	}
	memcpy(&rq, msg, sizeof(rq));
	if (rq.op < PM_OP_HELLO || rq.op >= PM_OP_MAX)
		*bad = "op";
	else if (rq.from >= nodes || rq.from == self)
		*bad = "from";
	else if (rq.op >= PM_OP_READ && rq.op <= PM_OP_DOWNGRADE &&
		 rq.page >= npages)
		*bad = "page";
	else if ((rq.op == PM_OP_READ || rq.op == PM_OP_WRITE) &&
		 rq.arg > PM_PREFETCH_MAX)
		*bad = "arg";
	else if (rq.op == PM_OP_HELLO &&
		 (payload_len <= AUTH_NONCE_LEN ||
		  payload_len >= AUTH_NONCE_LEN + PM_PROTO_NAME_MAX))
		*bad = "payload_len";
	else if (rq.op == PM_OP_AUTH && payload_len != AUTH_MAC_LEN)
		*bad = "payload_len";
	else if (rq.op == PM_OP_BARRIER && (rq.flags & ~PM_RQ_SERVER_ONLY))
		*bad = "flags";
	else if (rq.op != PM_OP_BARRIER && (rq.flags & PM_RQ_SERVER_ONLY))
		*bad = "flags";
	else if (rq.op == PM_OP_BARRIER && (rq.flags & PM_RQ_SERVER_ONLY) &&
		 rq.arg)
		*bad = "arg";
	else if (rq.op == PM_OP_EVICT && rq.page >= npages)
		*bad = "page";
	else if (rq.op == PM_OP_EVICT && (rq.flags & PM_RQ_CLEAN_LIST) &&
		 (rq.arg < 1 || rq.arg > PM_EVICT_LIST_MAX ||
		  (rq.flags & PM_RQ_DIRTY)))
		*bad = "arg";
	else if (rq.op == PM_OP_EVICT && (rq.flags & PM_RQ_CLEAN_LIST) &&
		 payload_len != rq.arg * sizeof(uint64_t))
		*bad = "payload_len";
	else if (rq.op == PM_OP_EVICT && !(rq.flags & PM_RQ_CLEAN_LIST) &&
		 payload_len != ((rq.flags & PM_RQ_DIRTY) ? PM_PAGE_SIZE : 0))
		*bad = "payload_len";
	else if (rq.op != PM_OP_HELLO && rq.op != PM_OP_AUTH &&
		 rq.op != PM_OP_EVICT && payload_len)
		*bad = "payload_len";
	if (*bad)
		return -EPROTO;
	*out = rq;
	return 0;
}

const char *proto_op_name(unsigned op)
{
	static const char *const names[PM_OP_MAX] = {
		[PM_OP_HELLO] = "hello", [PM_OP_READ] = "read",
		[PM_OP_WRITE] = "write", [PM_OP_INVAL] = "invalidate",
		[PM_OP_RECALL] = "recall", [PM_OP_DOWNGRADE] = "downgrade",
		[PM_OP_BARRIER] = "barrier", [PM_OP_AUTH] = "auth",
		[PM_OP_EVICT] = "evict", [PM_OP_PING] = "ping",
	};

	return op < PM_OP_MAX && names[op] ? names[op] : "unknown";
}
