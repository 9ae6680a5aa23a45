// SPDX-License-Identifier: MIT
/*
 * tcp transport tests on the wire: requests split in random pieces or
 * pipelined in one write, and a peer that sends but never reads.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tt_test.h"

struct writer {
	int fd;
	const uint8_t *wire;
	size_t len;
	unsigned seed;
	int err;
};

/* First half in random pieces (down to single bytes), the rest at once. */
static void *split_writer(void *arg)
{
	struct writer *w = arg;
	struct iovec iov;
	size_t off, k;

	for (off = 0; off < w->len / 2 && !w->err; off += k) {
		k = 1 + rand_r(&w->seed) % (rand_r(&w->seed) % 4 ? 3000 : 7);
		if (k > w->len / 2 - off)
			k = w->len / 2 - off;
		iov = (struct iovec){ (void *)(w->wire + off), k };
		w->err = pm_net_writev_all(w->fd, &iov, 1,
					   pm_now_ns() + 5 * SEC);
	}
	iov = (struct iovec){ (void *)(w->wire + off), w->len - off };
	if (!w->err)
		w->err = pm_net_writev_all(w->fd, &iov, 1,
					   pm_now_ns() + 5 * SEC);
	return NULL;
}

/*
 * Requests written in random pieces (down to single bytes) and several in
 * one write: the listener must reassemble each frame whatever the split,
 * including maximum-size ones that wrap its buffer.
 */
void test_split_and_pipelined(void **state)
{
	enum { N = 12 };
	static uint8_t wire[N * (24 + PM_MSG_MAX + PM_PAYLOAD_MAX)];
	static uint8_t body[PM_MSG_MAX + PM_PAYLOAD_MAX];
	static uint8_t pay[N][PM_PAYLOAD_MAX];
	uint8_t msg[N][PM_MSG_MAX];
	uint32_t mlen[N], plen[N], j;
	unsigned seed = (unsigned)pm_now_ns();
	struct pm_frame_hdr h;
	struct writer w;
	pthread_t th;
	struct srv *s;
	size_t len = 0;
	int fd, i;

	(void)state;
	print_message("  seed %u\n", seed);
	s = srv_new("127.0.0.1:0", NULL, 0);
	for (i = 0; i < N; i++) {
		mlen[i] = i % 3 == 0 ? PM_MSG_MAX :
				       1 + rand_r(&seed) % PM_MSG_MAX;
		plen[i] = i % 4 == 1 ? PM_PAYLOAD_MAX :
				       rand_r(&seed) % (PM_PAYLOAD_MAX + 1);
		for (j = 0; j < mlen[i]; j++)
			msg[i][j] = (uint8_t)rand_r(&seed);
		msg[i][0] = OP_ECHO;
		for (j = 0; j < plen[i]; j++)
			pay[i][j] = (uint8_t)rand_r(&seed);
		len += put_req(wire + len, 1000 + i, msg[i], mlen[i], pay[i],
			       plen[i]);
	}
	fd = raw_dial(s->ep);
	/* write from another thread: replies come back while we write */
	w = (struct writer){ fd, wire, len, seed, 0 };
	assert_int_equal(pthread_create(&th, NULL, split_writer, &w), 0);
	/* one receive thread per connection: replies come in order */
	for (i = 0; i < N; i++) {
		assert_int_equal(raw_reply(fd, &h, body, pm_now_ns() + 5 * SEC),
				 0);
		assert_int_equal(h.kind, PM_FRAME_REP);
		assert_int_equal(h.id, 1000 + i);
		assert_int_equal(h.status, 0);
		assert_int_equal(h.msg_len, mlen[i]);
		assert_int_equal(h.payload_len, plen[i]);
		for (j = 0; j < mlen[i]; j++)
			assert_int_equal(body[j], msg[i][mlen[i] - 1 - j]);
		for (j = 0; j < plen[i]; j++)
			if (body[mlen[i] + j] != (pay[i][j] ^ 0x5a))
				fail_msg("request %d: payload byte %u differs",
					 i, j);
	}
	pthread_join(th, NULL);
	assert_int_equal(w.err, 0);
	close(fd);
	assert_true(srv_wait(s, &s->closes, 1, 5000));
	assert_int_equal(s->reply_errors, 0);
	srv_free(s);
}

/*
 * A peer that sends requests but never reads: once its socket buffers are
 * full, a reply waits at most send_timeout_ms, then the connection is
 * dropped (on_close) and the listener serves others as before.
 */
void test_slow_reader_dropped(void **state)
{
	uint8_t m[1] = { OP_BIG };
	struct pm_tconn *c;
	struct client *cl;
	struct srv *s;
	int64_t t0;
	int fd, i, rcv = 4096;
	uint64_t rng = 1;

	(void)state;
	s = srv_new("127.0.0.1:0", "send_timeout_ms", 300);
	fd = raw_dial(s->ep);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv,
				    sizeof(rcv)), 0);
	t0 = pm_now_ns();
	/* 16 MiB of replies: beyond what socket buffers hold (4 MiB) */
	for (i = 0; i < 256; i++)
		if (raw_send_req(fd, i + 1, m, 1))
			break;	/* the listener dropped us already */
	assert_true(srv_wait(s, &s->closes, 1, 10000));
	print_message("  non-reading peer dropped after %.0f ms, %d replies failed\n",
		      (pm_now_ns() - t0) / 1e6, s->reply_errors);
	/* the one that timed out; requests already received are not handed
	 * to the core once the connection is being dropped */
	assert_int_equal(s->reply_errors, 1);
	close(fd);

	/* everyone else is still served */
	cl = client_new();
	c = client_dial(cl, s->ep);
	for (i = 0; i < 10; i++) {
		uint8_t q[16], r[16];
		struct pm_msg req = { q, 16, 0, NULL, 0, 0 };
		struct pm_msg rep = { r, 0, 16, NULL, 0, 0 };
		int j;

		for (j = 0; j < 16; j++) {
			rng = rng * 6364136223846793005ULL +
			      1442695040888963407ULL;
			q[j] = (uint8_t)(rng >> 56);
		}
		q[0] = OP_ECHO;
		assert_int_equal(ops->call(c, &req, &rep,
					   pm_now_ns() + 5 * SEC), 0);
		assert_int_equal(rep.msg_len, 16);
		for (j = 0; j < 16; j++)
			assert_int_equal(r[j], q[15 - j]);
	}
	ops->disconnect(c);
	client_free(cl);
	srv_free(s);
}
