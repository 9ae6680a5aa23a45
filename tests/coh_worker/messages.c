// SPDX-License-Identifier: MIT
/*
 * coh_worker's messages workload: two-page messages passed round the
 * nodes, each verified and acknowledged before the next is written.
 */

#include "coh_worker.h"

/*
 * Message passing: message r goes from node r % nodes to the next node,
 * which verifies it and acknowledges; the sender of message r waits for
 * the acknowledgement of r - 1 before it writes. A message spans two
 * pages: sequence number and sender first, checksum last.
 */
#define MSG_WORDS ((int)(2 * PAGE / 8))

static uint64_t msg_sum(const uint64_t *m)
{
	uint64_t s = 0;

	for (int i = 0; i < MSG_WORDS - 1; i++)
		s = mix(s ^ m[i]);
	return s;
}

int w_messages(long msgs)
{
	uint64_t *flag = word(PG_MSG_FLAG, 0), *ack = word(PG_MSG_ACK, 0);
	uint64_t *m = word(PG_MSG_BODY, 0), seed = mix(0xfeed + (uint64_t)me);
	uint64_t sent = 0, got = 0, v, min = 0;
	struct pm_stats before;

	if (barrier() || stats(&before))
		return 1;
	for (long r = 0; r < msgs; r++) {
		uint64_t seq = (uint64_t)r + 1;
		int from = (int)(r % nodes), to = (int)((r + 1) % nodes);

		if (from == me) {
			if (wait_ge(ack, (uint64_t)r, &v,
				    "messages: acknowledgement of message",
				    (uint64_t)r - 1))
				return 1;
			if (v != (uint64_t)r)
				FAIL("messages: message %" PRIu64 " acknowledged before it was sent",
				     v);
			m[0] = seq;
			m[1] = (uint64_t)me;
			for (int i = 2; i < MSG_WORDS - 1; i++) {
				seed = mix(seed);
				m[i] = seed;
			}
			m[MSG_WORDS - 1] = msg_sum(m);
			__atomic_store_n(flag, seq, __ATOMIC_SEQ_CST);
			sent++;
		}
		if (to == me) {
			if (wait_ge(flag, seq, &v, "messages: message", seq))
				return 1;
			if (v != seq)
				FAIL("messages: message %" PRIu64 " sent before %" PRIu64 " was acknowledged",
				     v, seq);
			if (m[0] != seq || m[1] != (uint64_t)from)
				FAIL("messages: message %" PRIu64 " from node %d reads as message %" PRIu64 " from node %" PRIu64,
				     seq, from, m[0], m[1]);
			if (m[MSG_WORDS - 1] != msg_sum(m))
				FAIL("messages: message %" PRIu64 " from node %d: checksum %#" PRIx64 ", payload sums to %#" PRIx64,
				     seq, from, m[MSG_WORDS - 1], msg_sum(m));
			__atomic_store_n(ack, seq, __ATOMIC_SEQ_CST);
			got++;
		}
	}
	if (barrier())
		return 1;
	if (*flag != (uint64_t)msgs || *ack != (uint64_t)msgs)
		FAIL("messages: %" PRIu64 " sent and %" PRIu64 " acknowledged, expected %ld",
		     *flag, *ack, msgs);
	printf("node %d: messages: %" PRIu64 " sent, %" PRIu64 " received and verified, of %ld\n",
	       me, sent, got, msgs);
	/* Between two messages this node sends another node sends one
	 * (2 message pages and the flag); between two it acknowledges,
	 * another node acknowledges one. */
	if (nodes > 1)
		min = 3 * (sent ? sent - 1 : 0) + (got ? got - 1 : 0);
	if (moved("messages", &before, min,
		  "3 pages x %" PRIu64 " sends + 1 x %" PRIu64 " acknowledgements apart",
		  sent ? sent - 1 : 0, got ? got - 1 : 0))
		return 1;
	return barrier();
}
