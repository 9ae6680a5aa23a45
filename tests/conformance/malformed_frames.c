// SPDX-License-Identifier: MIT
/*
 * Conformance cases on malformed frames: raw sockets send a stream
 * listener garbage, bad headers, huge claims and truncated frames, while a
 * well-behaved client calls all along; each bad peer must be dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conformance.h"
#include "frame.h"

/* A well-behaved client calling all along, to show the listener keeps
 * serving while bad peers are handled. */
struct bg {
	pthread_t th;
	struct pm_tconn *c;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	bool paused, idle;	/* paused by the test; idle: it noticed */
	uint64_t ok;
	uint64_t rng;
	struct errbox eb;
};

static void *bg_main(void *a)
{
	struct bg *b = a;
	char err[512];
	bool stop;
	int r;

	do {
		uint32_t mlen = (uint32_t)(rng_next(&b->rng) % 64);
		struct timespec ts;

		pthread_mutex_lock(&b->mu);
		while (b->paused && !b->stop) {
			b->idle = true;
			pthread_cond_broadcast(&b->cv);
			mono_deadline(&ts, 1000);
			pthread_cond_timedwait(&b->cv, &b->mu, &ts);
		}
		b->idle = false;
		pthread_mutex_unlock(&b->mu);
		uint32_t plen = rng_next(&b->rng) % 2 ? PM_PAGE_SIZE : 0;

		r = echo_once(b->c, &b->rng, CMD_ECHO, mlen, plen, 0,
			      ms_from_now(5000), err, sizeof(err));
		if (r)
			eb_note(&b->eb, "good client: %s", err);
		pthread_mutex_lock(&b->mu);
		if (!r)
			b->ok++;
		pthread_cond_broadcast(&b->cv);
		stop = b->stop;
		pthread_mutex_unlock(&b->mu);
	} while (!stop && !r);
	return NULL;
}

/* Wait until the good client has completed n more calls. */
static bool bg_progress(struct bg *b, uint64_t n, int ms)
{
	struct timespec ts;
	uint64_t want;
	bool ok;

	mono_deadline(&ts, ms);
	pthread_mutex_lock(&b->mu);
	want = b->ok + n;
	while (!(ok = b->ok >= want) && !b->eb.n)
		if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) == ETIMEDOUT)
			break;
	ok = b->ok >= want;
	pthread_mutex_unlock(&b->mu);
	return ok;
}

/* Stop the good client between calls (so its allocations do not blur an
 * RSS measurement); false if it did not stop within 10 s. */
static bool bg_pause(struct bg *b)
{
	struct timespec ts;
	bool ok;

	mono_deadline(&ts, 10000);
	pthread_mutex_lock(&b->mu);
	b->paused = true;
	while (!b->idle && !b->eb.n)
		if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) == ETIMEDOUT)
			break;
	ok = b->idle;
	pthread_mutex_unlock(&b->mu);
	return ok;
}

static void bg_resume(struct bg *b)
{
	pthread_mutex_lock(&b->mu);
	b->paused = false;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

struct rawfix {
	struct fix *f;
	struct bg bg;
	char host[PM_ENDPOINT_MAX];
	char port[16];
	int good_conns;		/* connections that may carry requests */
	int raw;		/* raw connections opened */
};

static long rss_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static struct rawfix *raw_up(bool needs_frame)
{
	uint64_t rng = seed ^ 11;
	struct rawfix *rf;

	REQUIRE_USABLE();
	if (needs_frame && !frame_checks)
		case_skip(!PM_OPS_HAS(ops, test_corrupt),
			  "PM_CONFORMANCE_FRAME=none: the plugin does not speak plugins/common/frame.h%s",
			  PM_OPS_HAS(ops, test_corrupt) ?
			  " (its own framing: test_corrupt_input)" : "");
	rf = calloc(1, sizeof(*rf));	/* heap: see fix_up */
	assert_non_null(rf);
	rf->f = fix_up();
	if (!is_stream(rf->f->s->ep, rf->host, sizeof(rf->host),
			    rf->port, sizeof(rf->port))) {
		char ep[PM_ENDPOINT_MAX];

		snprintf(ep, sizeof(ep), "%s", rf->f->s->ep);
		fix_down(rf->f);
		free(rf);
		case_skip(!PM_OPS_HAS(ops, test_corrupt),
			  "endpoint '%s' is no TCP listener speaking plugins/common/frame.h; %s",
			  ep, PM_OPS_HAS(ops, test_corrupt) ?
			  "its own framing is checked by test_corrupt_input" :
			  "and the plugin has no test_corrupt op (ABI 1.1)");
	}
	assert_echo(rf->f->c, &rng, 16, 16);
	rf->good_conns = 1;
	pthread_mutex_init(&rf->bg.mu, NULL);
	cond_init_mono(&rf->bg.cv);
	eb_init(&rf->bg.eb);
	rf->bg.c = rf->f->c;
	rf->bg.rng = seed ^ 12;
	assert_int_equal(pthread_create(&rf->bg.th, NULL, bg_main, &rf->bg),
			 0);
	if (!bg_progress(&rf->bg, 5, 10000))
		fail_msg("good client made no progress: %s", rf->bg.eb.first);
	return rf;
}

static void raw_down(struct rawfix *rf)
{
	struct srv *s = rf->f->s;
	int with_req;

	/* every raw connection ends with exactly one on_close */
	if (!srv_wait(s, p_raw_closed, rf->raw, 10000))
		fail_msg("%d raw connections, %d on_close within 10 s", rf->raw,
			 srv_locked_int(s, count_conns, false, true));
	/* ... and the good client was served during and after */
	if (!bg_progress(&rf->bg, 20, 10000))
		fail_msg("good client stalled: %s", rf->bg.eb.n ?
			 rf->bg.eb.first : "no progress in 10 s");
	pthread_mutex_lock(&rf->bg.mu);
	rf->bg.stop = true;
	pthread_mutex_unlock(&rf->bg.mu);
	if (join_ms(rf->bg.th, 10000))
		fail_msg("good client thread did not stop");
	assert_no_errors(&rf->bg.eb);
	print_message("  good client: %" PRIu64 " calls verified meanwhile\n",
		      rf->bg.ok);
	with_req = srv_locked_int(s, count_conns, true, false);
	if (with_req != rf->good_conns)
		fail_msg("on_request was called for %d connection(s) that sent only bad bytes",
			 with_req - rf->good_conns);
	fix_down(rf->f);
	free(rf);
}

static int raw_connect(struct rawfix *rf)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	struct timeval tv = { .tv_sec = 5 };
	struct pollfd pfd;
	int fd, r, err = 0;
	socklen_t el = sizeof(err);

	r = getaddrinfo(rf->host, rf->port, &hints, &ai);
	if (r)
		fail_msg("getaddrinfo %s:%s: %s", rf->host, rf->port,
			 gai_strerror(r));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	r = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (r && errno != EINPROGRESS)
		fail_msg("raw connect %s:%s: %s", rf->host, rf->port,
			 strerror(errno));
	pfd.fd = fd;
	pfd.events = POLLOUT;
	if (poll(&pfd, 1, 5000) != 1)
		fail_msg("raw connect %s:%s: no answer in 5 s", rf->host,
			 rf->port);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err)
		fail_msg("raw connect %s:%s: %s", rf->host, rf->port,
			 strerror(err));
	/* blocking from here, but never beyond 5 s per operation */
	fcntl(fd, F_SETFL, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	rf->raw++;
	return fd;
}

/* Send what fits before the peer drops us; bytes sent or -errno. */
static ssize_t raw_send(int fd, const void *b, size_t n)
{
	size_t done = 0;
	ssize_t w;

	while (done < n) {
		w = send(fd, (const char *)b + done, n - done, MSG_NOSIGNAL);
		if (w < 0)
			return done ? (ssize_t)done : -errno;
		done += w;
	}
	return done;
}

/* 0 when the listener dropped the connection within 5 s (EOF or reset);
 * -ETIMEDOUT when it kept it; -EPROTO when it sent bytes back. */
static int raw_wait_dropped(int fd)
{
	char b[256];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&pfd, 1, 5000) != 1)
		return -ETIMEDOUT;
	n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
		return 0;
	if (n > 0)
		return -EPROTO;
	return -errno;
}

static void raw_expect_drop(struct rawfix *rf, const char *what,
			    const void *b, size_t n)
{
	int fd = raw_connect(rf);
	int r;

	raw_send(fd, b, n);
	r = raw_wait_dropped(fd);
	close(fd);
	if (r == -ETIMEDOUT)
		fail_msg("%s: connection still open 5 s later", what);
	if (r == -EPROTO)
		fail_msg("%s: the listener answered it", what);
	assert_int_equal(r, 0);
	print_message("  %s: dropped\n", what);
}

static void frame(struct pm_frame_hdr *h, uint8_t kind, uint64_t id,
		  uint32_t msg_len, uint32_t payload_len)
{
	pm_frame_encode(h, kind, id, 0, msg_len, payload_len);
}

#define BAD_BODY_MAX 512

/* Header h, then body zero bytes (the start of what it claims follows):
 * the listener must drop the connection. */
static void raw_expect_bad_hdr(struct rawfix *rf, const char *what,
			       const struct pm_frame_hdr *h, size_t body)
{
	uint8_t b[PM_FRAME_HDR_LEN + BAD_BODY_MAX] = { 0 };

	assert_true(body <= BAD_BODY_MAX);
	memcpy(b, h, sizeof(*h));
	raw_expect_drop(rf, what, b, PM_FRAME_HDR_LEN + body);
}

void test_raw_valid_frame(void **state)
{
	struct rawfix *rf;
	struct pm_frame_hdr h;
	uint8_t out[PM_FRAME_HDR_LEN + 5 + 100], in[256];
	const char *bad;
	int fd, i;
	ssize_t n;

	(void)state;
	rf = raw_up(true);
	/* the frame format is what the other cases corrupt: prove it first */
	frame(&h, PM_FRAME_REQ, 77, 5, 100);
	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), "hello", 5);
	for (i = 0; i < 100; i++)
		out[sizeof(h) + 5 + i] = (uint8_t)i;
	fd = raw_connect(rf);
	rf->raw--;		/* a well-formed peer, not a bad one */
	rf->good_conns++;
	assert_int_equal(raw_send(fd, out, sizeof(out)), sizeof(out));
	n = recv(fd, in, PM_FRAME_HDR_LEN, MSG_WAITALL);
	if (n != PM_FRAME_HDR_LEN)
		fail_msg("no reply frame to a valid request frame (%zd): does the plugin speak plugins/common/frame.h? (PM_CONFORMANCE_FRAME=none skips these cases)",
			 n);
	memcpy(&h, in, sizeof(h));
	bad = pm_frame_decode(&h);
	if (bad)
		fail_msg("reply frame header: bad %s", bad);
	assert_int_equal(h.kind, PM_FRAME_REP);
	assert_int_equal(h.id, 77);
	assert_int_equal(h.status, 0);
	assert_int_equal(h.msg_len, 5);
	assert_int_equal(h.payload_len, 100);
	n = recv(fd, in, 105, MSG_WAITALL);
	assert_int_equal(n, 105);
	for (i = 0; i < 5; i++)
		assert_int_equal(in[i], "hello"[i] ^ XOR);
	for (i = 0; i < 100; i++)
		assert_int_equal(in[5 + i], i ^ XOR);
	close(fd);
	raw_down(rf);
}

void test_raw_garbage(void **state)
{
	uint64_t rng = seed ^ 13;
	struct rawfix *rf;
	uint8_t junk[4096];
	int i;

	(void)state;
	rf = raw_up(false);
	for (i = 0; i < 3; i++) {
		rand_fill(&rng, junk, sizeof(junk));
		if (junk[0] == 'P')
			junk[0] = 'Q';	/* no valid magic by chance */
		raw_expect_drop(rf, "4096 random bytes", junk, sizeof(junk));
	}
	raw_down(rf);
}

void test_raw_bad_magic(void **state)
{
	struct rawfix *rf;
	struct pm_frame_hdr h;

	(void)state;
	rf = raw_up(true);
	frame(&h, PM_FRAME_REQ, 1, 16, 0);
	h.magic = htole32(0xdeadbeef);
	raw_expect_bad_hdr(rf, "bad magic", &h, 16);
	raw_down(rf);
}

void test_raw_bad_lengths(void **state)
{
	struct rawfix *rf;
	struct pm_frame_hdr h;

	(void)state;
	rf = raw_up(true);
	frame(&h, PM_FRAME_REQ, 1, PM_MSG_MAX + 1, 0);
	raw_expect_bad_hdr(rf, "msg_len PM_MSG_MAX+1", &h, 512);
	frame(&h, PM_FRAME_REQ, 2, 0xffff, 0);
	raw_expect_bad_hdr(rf, "msg_len 65535", &h, 512);
	frame(&h, PM_FRAME_REQ, 3, 0, PM_PAYLOAD_MAX + 1);
	raw_expect_bad_hdr(rf, "payload_len PM_PAYLOAD_MAX+1", &h, 512);
	raw_down(rf);
}

void test_raw_bad_kind(void **state)
{
	struct rawfix *rf;
	struct pm_frame_hdr h;

	(void)state;
	rf = raw_up(true);
	frame(&h, 9, 1, 8, 0);
	raw_expect_bad_hdr(rf, "frame kind 9", &h, 8);
	frame(&h, PM_FRAME_REQ, 2, 8, 0);
	h.rsvd = 1;
	raw_expect_bad_hdr(rf, "reserved byte set", &h, 8);
	pm_frame_encode(&h, PM_FRAME_REQ, 3, -5, 8, 0);
	raw_expect_bad_hdr(rf, "request carrying a status", &h, 8);
	raw_down(rf);
}

#define NHUGE 16
#define HUGE_SEND (8u << 20)
/* A peer that only writes must see its writes fail this soon after the
 * bad header: the listener drops at the header, in microseconds, so this
 * leaves room for a loaded machine. A listener that closes without a
 * reset leaves such a peer probing a zero window for seconds. */
#define HUGE_RESET_MS 1000

/* Frames claiming 4 GiB payloads, followed by as many bytes as the
 * listener takes: it must drop them, not buffer them, and reset them so
 * the writer learns it at once. */
void test_raw_huge_payload(void **state)
{
	static uint8_t chunk[1 << 16];
	struct rawfix *rf;
	struct pm_frame_hdr h;
	long rss0, rss1;
	size_t total = 0, slow_sent = 0;
	double slow_ms = 0;
	int fd[NHUGE], i, r, slow = -1;

	(void)state;
	rf = raw_up(true);
	memset(chunk, 0x5a, sizeof(chunk));
	/* Only the bad peers run while RSS is measured: the good client's
	 * buffers (and, under ASan, its freed ones in quarantine) would
	 * count too. It runs again afterwards. */
	if (!bg_pause(&rf->bg))
		fail_msg("good client did not pause: %s", rf->bg.eb.first);
	rss0 = rss_kib();
	frame(&h, PM_FRAME_REQ, 1, 0, 0);
	h.payload_len = htole32(0xffffffffu);
	for (i = 0; i < NHUGE; i++) {
		size_t sent = 0;
		bool reset = false;
		int64_t t0, dl;

		fd[i] = raw_connect(rf);
		if (raw_send(fd[i], &h, sizeof(h)) != sizeof(h))
			continue;
		t0 = pm_now_ns();
		dl = ms_from_now(HUGE_RESET_MS);
		fcntl(fd[i], F_SETFL, O_NONBLOCK);
		while (sent < HUGE_SEND && pm_now_ns() < dl) {
			struct pollfd pfd = { .fd = fd[i], .events = POLLOUT };
			ssize_t w;

			if (poll(&pfd, 1, 100) < 0)
				break;
			w = send(fd[i], chunk, sizeof(chunk), MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN) {
				reset = true;	/* dropped: what should happen */
				break;
			}
			if (w > 0)
				sent += w;
		}
		total += sent;
		if (!reset && slow < 0) {
			slow = i;
			slow_ms = ms_since(t0);
			slow_sent = sent;
		}
	}
	rss1 = rss_kib();
	print_message("  %d frames claiming 4 GiB; %zu bytes accepted after them; RSS %ld -> %ld KiB\n",
		      NHUGE, total, rss0, rss1);
	for (i = 0; i < NHUGE; i++) {
		fcntl(fd[i], F_SETFL, 0);
		r = raw_wait_dropped(fd[i]);
		close(fd[i]);
		if (r)
			fail_msg("frame claiming a 4 GiB payload: connection %d %s",
				 i, r == -ETIMEDOUT ? "still open 5 s later" :
				 "answered");
	}
	if (rss0 > 0 && rss1 > 0 && rss1 - rss0 > 64 * 1024)
		fail_msg("RSS grew by %ld KiB while bad peers sent %zu bytes",
			 rss1 - rss0, total);
	bg_resume(&rf->bg);
	raw_down(rf);
	if (slow >= 0)
		fail_msg("frame claiming a 4 GiB payload: connection %d could still write %.0f ms after its header (%zu bytes taken); the listener must reset it, not leave the writer waiting",
			 slow, slow_ms, slow_sent);
}

void test_raw_truncated_stall(void **state)
{
	struct rawfix *rf;
	uint8_t b[PM_FRAME_HDR_LEN + 64] = { 0 };
	struct pm_frame_hdr h;
	int fd1, fd2;

	(void)state;
	rf = raw_up(true);
	frame(&h, PM_FRAME_REQ, 1, 64, 0);
	memcpy(b, &h, sizeof(h));
	/* part of a header, and a header with half its message: then
	 * nothing. The listener must keep serving everyone else. */
	fd1 = raw_connect(rf);
	assert_int_equal(raw_send(fd1, b, 10), 10);
	fd2 = raw_connect(rf);
	assert_int_equal(raw_send(fd2, b, PM_FRAME_HDR_LEN + 32),
			 PM_FRAME_HDR_LEN + 32);
	if (!bg_progress(&rf->bg, 50, 10000))
		fail_msg("good client stalled behind truncated frames: %s",
			 rf->bg.eb.n ? rf->bg.eb.first : "no progress in 10 s");
	print_message("  good client served while 2 peers sat on truncated frames\n");
	close(fd1);
	close(fd2);
	raw_down(rf);
}

void test_raw_half_frame_close(void **state)
{
	uint64_t rng = seed ^ 14;
	struct rawfix *rf;
	uint8_t b[PM_FRAME_HDR_LEN + 16 + 4096];
	struct pm_frame_hdr h;
	static const size_t cut[] = { 12, PM_FRAME_HDR_LEN,
				      PM_FRAME_HDR_LEN + 8,
				      PM_FRAME_HDR_LEN + 16 + 2000 };
	size_t i;
	int fd;

	(void)state;
	rf = raw_up(true);
	rand_fill(&rng, b, sizeof(b));
	frame(&h, PM_FRAME_REQ, 1, 16, 4096);
	memcpy(b, &h, sizeof(h));
	b[PM_FRAME_HDR_LEN] = 'Q';
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		fd = raw_connect(rf);
		assert_int_equal(raw_send(fd, b, cut[i]), (ssize_t)cut[i]);
		close(fd);
	}
	print_message("  %zu peers closed mid-frame\n",
		      sizeof(cut) / sizeof(cut[0]));
	raw_down(rf);
}
