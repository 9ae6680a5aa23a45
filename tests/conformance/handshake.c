// SPDX-License-Identifier: MIT
/*
 * Conformance cases on connections that never finish a request: a stream
 * listener must drop a silent peer and a slowloris peer once
 * handshake_timeout_ms has passed since it connected, so that peers
 * holding every one of max_conns slots cannot keep a real peer out. After
 * a whole first request the bound is stall_timeout_ms instead, from the
 * last byte of a frame in progress: long by default, because a live
 * peer's frame stalls for seconds while TCP retransmits through loss, and
 * dropping it loses its requests in flight.
 *
 * The raw peers come from the plugin's test_raw_dial op (ABI 1.2), or, for
 * a plugin without it whose endpoint is HOST:PORT, from a TCP dial of the
 * suite's own. A plugin that speaks plugins/common/frame.h (frame_checks)
 * gets valid frames cut short; any other gets bytes the suite cannot know
 * to be a valid start in its framing, so it may drop them at once as
 * malformed (a record transport, such as AF_UNIX SOCK_SEQPACKET, always
 * does: a record arrives whole), but no later than the bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "conformance.h"
#include "frame.h"
#include "net.h"

/* The deadline the cases set, and how late after it a drop may come on a
 * loaded machine (two shared cores, ASan). */
#define HS_MS 400
#define SLACK_MS 1600
/* Slots of the case that fills them. */
#define FEW_CONNS 4

struct hsfix {
	struct srv *s;
	char host[PM_ENDPOINT_MAX];
	char port[16];
	bool via_op;		/* raw peers from test_raw_dial */
	int raw;		/* raw connections opened */
};

/* Room for a peer's printable name: an address or an AF_UNIX path. */
#define HS_NAME_MAX 128

/*
 * A server with handshake_timeout_ms = HS_MS (and max_conns = maxc, and
 * stall_timeout_ms = HS_MS, when asked), reachable by raw peers. Skips,
 * with the reason, a transport that has no test_raw_dial op and no TCP
 * endpoint, or has no such setting.
 */
static struct hsfix *hs_up(int maxc, bool stall)
{
	struct ih_int ints[3] = { { "handshake_timeout_ms", HS_MS } };
	const char *missing = NULL;
	struct hsfix *hf;
	int n = 1, r;

	REQUIRE_USABLE();
	hf = calloc(1, sizeof(*hf));	/* heap: see fix_up */
	assert_non_null(hf);
	if (maxc)
		ints[n++] = (struct ih_int){ "max_conns", maxc };
	if (stall)
		ints[n++] = (struct ih_int){ "stall_timeout_ms", HS_MS };
	hf->s = srv_alloc();
	r = srv_start_with(hf->s, listen_addr, "server", ints, n);
	if (r)
		fail_msg("server init/listen/endpoint on %s: %s", listen_addr,
			 strerror(-r));
	hf->via_op = PM_OPS_HAS(ops, test_raw_dial);
	if (!hf->via_op && !is_stream(hf->s->ep, hf->host, sizeof(hf->host),
				      hf->port, sizeof(hf->port))) {
		char ep[PM_ENDPOINT_MAX];

		snprintf(ep, sizeof(ep), "%s", hf->s->ep);
		srv_free(hf->s);
		free(hf);
		case_skip(true, "%s has no test_raw_dial op (ABI 1.2) and its endpoint '%s' is not the HOST:PORT of a TCP listener: the suite cannot open the bare connection of a silent or slow peer",
			  plug.name, ep);
	}
	if (!ih_asked(&hf->s->ih, "handshake_timeout_ms"))
		missing = "handshake_timeout_ms";
	else if (maxc && !ih_asked(&hf->s->ih, "max_conns"))
		missing = "max_conns";
	else if (stall && !ih_asked(&hf->s->ih, "stall_timeout_ms"))
		missing = "stall_timeout_ms";
	if (missing) {
		srv_free(hf->s);
		free(hf);
		case_skip(true, "%s has no %s setting: it cannot be told how long an incoming connection may take",
			  plug.name, missing);
	}
	return hf;
}

static void hs_down(struct hsfix *hf)
{
	struct srv *s = hf->s;

	/* each raw connection ended with one on_close, none with a request */
	if (!srv_wait(s, p_raw_closed, hf->raw, 10000))
		fail_msg("%d raw connections, %d on_close within 10 s", hf->raw,
			 srv_locked_int(s, count_conns, false, true));
	srv_check_clean(s);
	srv_free(s);
	free(hf);
}

/* A blocking raw connection to the listener, made within 5 s: the
 * plugin's test_raw_dial, else TCP. */
static int hs_dial(struct hsfix *hf)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	struct pollfd pfd;
	int fd = -1, r, err = 0;
	socklen_t el = sizeof(err);

	if (hf->via_op) {
		r = ops->test_raw_dial(hf->s->t, hf->s->ep, ms_from_now(5000),
				       &fd);
		if (r)
			fail_msg("test_raw_dial %s: %s", hf->s->ep,
				 strerror(-r));
		if (fd < 0)
			fail_msg("test_raw_dial %s: 0 and no descriptor (%d)",
				 hf->s->ep, fd);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		hf->raw++;
		return fd;
	}

	r = getaddrinfo(hf->host, hf->port, &hints, &ai);
	if (r)
		fail_msg("getaddrinfo %s:%s: %s", hf->host, hf->port,
			 gai_strerror(r));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	assert_true(fd >= 0);
	r = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (r && errno != EINPROGRESS)
		fail_msg("raw connect %s:%s: %s", hf->host, hf->port,
			 strerror(errno));
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	if (poll(&pfd, 1, 5000) != 1)
		fail_msg("raw connect %s:%s: no answer in 5 s", hf->host,
			 hf->port);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err)
		fail_msg("raw connect %s:%s: %s", hf->host, hf->port,
			 strerror(err));
	fcntl(fd, F_SETFL, 0);
	hf->raw++;
	return fd;
}

static void hs_send(int fd, const void *b, size_t n)
{
	assert_int_equal(send(fd, b, n, MSG_NOSIGNAL), (ssize_t)n);
}

/*
 * Wait until the listener ends fd (end of stream or a reset), at most ms,
 * writing one more byte of trickle[] every tick_ms if trickle is set.
 * Returns the ms it took, or -1 when fd was still open.
 */
static double hs_wait_dropped(int fd, int ms, const uint8_t *trickle,
			      size_t tlen, int tick_ms)
{
	int64_t t0 = pm_now_ns(), end = ms_from_now(ms), next;
	size_t sent = 0;
	char b[256];
	ssize_t n;

	next = trickle ? ms_from_now(tick_ms) : end;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t now = pm_now_ns(), until = next < end ? next : end;
		int wait = until > now ? (int)((until - now) / 1000000) + 1 : 0;

		if (now >= end)
			return -1;
		if (poll(&pfd, 1, wait) == 1) {
			n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && (errno == ECONNRESET ||
						 errno == EPIPE)))
				return ms_since(t0);
			if (n > 0)
				fail_msg("the listener sent %zd bytes to a peer that never sent a whole request",
					 n);
		}
		if (trickle && pm_now_ns() >= next && sent < tlen) {
			/* the listener may just have dropped us: EPIPE */
			send(fd, trickle + sent++, 1, MSG_NOSIGNAL);
			next = ms_from_now(tick_ms);
		}
	}
}

/* Is fd a byte stream (else a record socket: SOCK_SEQPACKET, ...)? */
static bool hs_is_bytes(int fd)
{
	int type = 0;
	socklen_t l = sizeof(type);

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) ||
	       type == SOCK_STREAM;
}

/* The drop came after the deadline (HS_MS, of setting key), not before
 * (unless early_ok: bytes the plugin may find malformed at once), and not
 * much after. */
static void hs_expect_drop(const char *what, double ms, double from,
			   const char *key, bool early_ok)
{
	if (ms < 0)
		fail_msg("%s: still open %d ms after connecting (%s %d)",
			 what, HS_MS + SLACK_MS, key, HS_MS);
	print_message("  %s: dropped %.0f ms after %s (%s %d)\n",
		      what, ms + from, from ? "connecting" : "its last byte",
		      key, HS_MS);
	if (!early_ok && ms + from < HS_MS - 5)
		fail_msg("%s: dropped after %.0f ms, before %s (%d)",
			 what, ms + from, key, HS_MS);
}

static void hs_expect_drop_time(const char *what, double ms, double from,
				const char *key)
{
	hs_expect_drop(what, ms, from, key, false);
}

/* The printable address of our end of fd, as the listener names its peer:
 * "HOST:PORT", or for AF_UNIX "@name" (abstract) or the path. */
static void hs_fd_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	struct sockaddr_un *su = (struct sockaddr_un *)&ss;
	socklen_t sl = sizeof(ss);
	size_t n, i, o = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) ||
	    ss.ss_family != AF_UNIX) {
		pm_net_fd_name(fd, 1, buf, len);
		return;
	}
	n = sl > offsetof(struct sockaddr_un, sun_path) ?
		sl - offsetof(struct sockaddr_un, sun_path) : 0;
	if (n && su->sun_path[0]) {
		snprintf(buf, len, "%.*s", (int)strnlen(su->sun_path, n),
			 su->sun_path);
		return;
	}
	for (i = 0; i < n && o + 1 < len; i++) {
		char ch = i ? su->sun_path[i] : '@';

		buf[o++] = ch >= 0x20 && ch < 0x7f ? ch : '?';
	}
	buf[o] = '\0';
	if (!o)		/* unnamed: nothing a log line could name */
		snprintf(buf, len, "(an unnamed AF_UNIX socket)");
}

/* The one log line of a drop names the peer (our end of fd). */
static void hs_expect_logged(struct hsfix *hf, int fd, const char *what)
{
	char name[HS_NAME_MAX];
	int n;

	hs_fd_name(fd, name, sizeof(name));
	n = ih_count_lines(&hf->s->ih, name);
	if (n != 1)
		fail_msg("%s: %d warning lines name the peer %s, expected one",
			 what, n, name);
}

/*
 * A peer that connects and sends nothing is dropped once
 * handshake_timeout_ms has passed; a peer that sent its first request and
 * is idle far longer is not.
 */
void test_handshake_silent(void **state)
{
	uint64_t rng = seed ^ 21;
	struct pm_tconn *c = NULL;
	struct pm_tctx *ct = NULL;
	struct ihost cih;
	struct hsfix *hf;
	char err[512];
	int64_t t0;
	double ms;
	int fd, r;

	(void)state;
	hf = hs_up(0, false);
	ih_setup(&cih, listen_addr, "client");
	assert_int_equal(ops->init(&cih.host, &ct), 0);
	assert_int_equal(ops->connect(ct, hf->s->ep, ms_from_now(5000), &c), 0);
	r = echo_once(c, &rng, CMD_ECHO, 16, 16, 0, ms_from_now(CALL_MS), err,
		      sizeof(err));
	if (r)
		fail_msg("%s", err);

	t0 = pm_now_ns();
	fd = hs_dial(hf);
	ms = hs_wait_dropped(fd, HS_MS + SLACK_MS, NULL, 0, 0);
	hs_expect_drop_time("silent peer", ms, ms_since(t0) - ms,
			    "handshake_timeout_ms");
	hs_expect_logged(hf, fd, "silent peer");
	close(fd);

	/* the client, idle all along (longer than the bound): still the
	 * same connection, served without a redial */
	r = echo_once(c, &rng, CMD_ECHO, 16, 16, 0, ms_from_now(CALL_MS), err,
		      sizeof(err));
	if (r)
		fail_msg("idle client after %.0f ms: %s", ms_since(t0), err);
	assert_int_equal(srv_locked_int(hf->s, count_conns, true, false), 1);
	assert_int_equal(srv_locked_int(hf->s, count_conns, true, true), 0);
	ops->disconnect(c);
	ops->fini(ct);
	hs_down(hf);
}

/*
 * Slowloris on a plugin that does not speak frame.h: 10 bytes and
 * silence, and bytes trickled in, neither of which the suite can make a
 * valid start in the plugin's framing. Each is dropped by the bound and
 * logged once; at once is right too (malformed, or on a record transport
 * a whole record of garbage).
 */
static void hs_slowloris_other(struct hsfix *hf)
{
	uint8_t b[64];
	bool bytes;
	int64_t t0;
	double ms;
	int fd;

	memset(b, 'z', sizeof(b));
	t0 = pm_now_ns();
	fd = hs_dial(hf);
	bytes = hs_is_bytes(fd);
	hs_send(fd, b, 10);
	ms = hs_wait_dropped(fd, HS_MS + SLACK_MS, NULL, 0, 0);
	hs_expect_drop(bytes ? "10 bytes, then silence" :
		       "a record of 10 bytes, then silence", ms,
		       ms_since(t0) - ms, "handshake_timeout_ms", true);
	hs_expect_logged(hf, fd, "10 bytes, then silence");
	close(fd);

	t0 = pm_now_ns();
	fd = hs_dial(hf);
	ms = hs_wait_dropped(fd, HS_MS + SLACK_MS, b, sizeof(b), HS_MS / 4);
	hs_expect_drop(bytes ? "one byte per 100 ms" :
		       "a record of one byte per 100 ms", ms,
		       ms_since(t0) - ms, "handshake_timeout_ms", true);
	hs_expect_logged(hf, fd, "one byte per 100 ms");
	close(fd);

	if (bytes)
		case_unchecked("a frame stalled part-way after a whole request (stall_timeout_ms): the suite makes one only in plugins/common/frame.h");
	else
		print_message("  records arrive whole: no frame of this transport can stall part-way\n");
	hs_down(hf);
}

/*
 * Slowloris: part of a header and nothing more; a frame trickled in one
 * byte at a time faster than the bound (the bound is on the whole first
 * request, not on each byte); and, after a whole request, a frame that
 * stops part-way, under stall_timeout_ms = HS_MS. Each is dropped within
 * its bound and slack.
 */
void test_handshake_slowloris(void **state)
{
	uint8_t b[PM_FRAME_HDR_LEN + PM_MSG_MAX], in[PM_FRAME_HDR_LEN + 16];
	struct pm_frame_hdr h;
	struct hsfix *hf;
	int64_t t0;
	double ms;
	int fd;

	(void)state;
	hf = hs_up(0, frame_checks);
	if (!frame_checks) {
		hs_slowloris_other(hf);
		return;
	}
	pm_frame_encode(&h, PM_FRAME_REQ, 1, 0, PM_MSG_MAX, 0);
	memset(b, 'z', sizeof(b));
	memcpy(b, &h, sizeof(h));

	/* 10 bytes of a header, then silence */
	t0 = pm_now_ns();
	fd = hs_dial(hf);
	hs_send(fd, b, 10);
	ms = hs_wait_dropped(fd, HS_MS + SLACK_MS, NULL, 0, 0);
	hs_expect_drop_time("partial header", ms, ms_since(t0) - ms,
			    "handshake_timeout_ms");
	hs_expect_logged(hf, fd, "partial header");
	close(fd);

	/* one byte every HS_MS / 4: never a pause as long as the bound */
	t0 = pm_now_ns();
	fd = hs_dial(hf);
	ms = hs_wait_dropped(fd, HS_MS + SLACK_MS, b, sizeof(b), HS_MS / 4);
	hs_expect_drop_time("one byte per 100 ms", ms, ms_since(t0) - ms,
			    "handshake_timeout_ms");
	hs_expect_logged(hf, fd, "one byte per 100 ms");
	close(fd);

	/* a whole request (answered), then half a header: the stall is
	 * measured from its last byte, under stall_timeout_ms */
	fd = hs_dial(hf);
	hf->raw--;		/* it carries a request: not a raw one */
	memcpy(b + PM_FRAME_HDR_LEN, "0123456789abcdef", 16);
	pm_frame_encode(&h, PM_FRAME_REQ, 7, 0, 16, 0);
	memcpy(b, &h, sizeof(h));
	hs_send(fd, b, PM_FRAME_HDR_LEN + 16);
	assert_int_equal(recv(fd, in, sizeof(in), MSG_WAITALL), sizeof(in));
	hs_send(fd, b, 12);
	ms = hs_wait_dropped(fd, HS_MS + SLACK_MS, NULL, 0, 0);
	hs_expect_drop_time("frame stalled after a request", ms, 0,
			    "stall_timeout_ms");
	hs_expect_logged(hf, fd, "frame stalled after a request");
	close(fd);
	if (!srv_wait(hf->s, p_closed_with_req, 1, 5000))
		fail_msg("no on_close for the connection whose frame stalled");
	hs_down(hf);
}

/*
 * The same without frame.h: the suite cannot leave a frame of the
 * plugin's part-way, so its own client is the peer past its first
 * request. Idle past handshake_timeout_ms, it is not dropped; a silent
 * peer that comes then is dropped on time (no timer of the first request
 * is left to cover it); the client is served again on the same
 * connection.
 */
static void hs_stall_other(struct hsfix *hf)
{
	uint64_t rng = seed ^ 23;
	struct pm_tconn *c = NULL;
	struct pm_tctx *ct = NULL;
	struct ihost cih;
	char err[512];
	bool bytes;
	int64_t t0;
	double ms;
	int fd, r;

	ih_setup(&cih, listen_addr, "client");
	assert_int_equal(ops->init(&cih.host, &ct), 0);
	assert_int_equal(ops->connect(ct, hf->s->ep, ms_from_now(5000), &c), 0);
	r = echo_once(c, &rng, CMD_ECHO, 16, 16, 0, ms_from_now(CALL_MS), err,
		      sizeof(err));
	if (r)
		fail_msg("%s", err);
	nanosleep(&(struct timespec){ .tv_nsec = (HS_MS + 100) * 1000000L },
		  NULL);
	t0 = pm_now_ns();
	fd = hs_dial(hf);
	bytes = hs_is_bytes(fd);
	ms = hs_wait_dropped(fd, HS_MS + SLACK_MS, NULL, 0, 0);
	hs_expect_drop_time("silent peer after a client's idle", ms,
			    ms_since(t0) - ms, "handshake_timeout_ms");
	hs_expect_logged(hf, fd, "silent peer after a client's idle");
	close(fd);
	r = echo_once(c, &rng, CMD_ECHO, 16, 16, 0, ms_from_now(CALL_MS), err,
		      sizeof(err));
	if (r)
		fail_msg("client past its first request, idle %.0f ms: %s",
			 ms_since(t0) + HS_MS + 100, err);
	if (srv_locked_int(hf->s, count_conns, true, true))
		fail_msg("the client's connection, past its first request, was dropped while idle (handshake_timeout_ms %d): the handshake bound was applied to a live peer",
			 HS_MS);
	assert_int_equal(srv_locked_int(hf->s, count_conns, true, false), 1);
	print_message("  a client idle %d ms after its first request: kept, served again\n",
		      HS_MS + 100);
	if (bytes)
		case_unchecked("a frame stalled part-way after a request is not dropped by handshake_timeout_ms: the suite makes one only in plugins/common/frame.h");
	else
		print_message("  records arrive whole: no frame of this transport can stall part-way\n");
	ops->disconnect(c);
	ops->fini(ct);
	hs_down(hf);
}

/*
 * The loss case: with only handshake_timeout_ms small (stall_timeout_ms at
 * its default), a peer past its first request whose next frame stalls
 * part-way for twice that, as TCP retransmit backoff stalls one on a
 * lossy link, is not dropped: the frame completes and is answered. A
 * silent peer that comes during the long stall is still dropped on time:
 * the stall's far deadline must not delay the near one.
 */
void test_handshake_stall_after_request(void **state)
{
	uint8_t b[PM_FRAME_HDR_LEN + 16], in[PM_FRAME_HDR_LEN + 16];
	struct timeval tv = { .tv_sec = 5 };
	char name[HS_NAME_MAX];
	struct pm_frame_hdr h;
	struct hsfix *hf;
	const char *why;
	int64_t t0;
	double ms, before;
	int fd, silent, i;

	(void)state;
	hf = hs_up(0, false);
	if (!frame_checks) {
		hs_stall_other(hf);
		return;
	}
	fd = hs_dial(hf);
	hf->raw--;		/* it carries requests: not a raw one */
	/* an answer that never comes fails the case, not the suite */
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
				    sizeof(tv)), 0);
	memcpy(b + PM_FRAME_HDR_LEN, "0123456789abcdef", 16);
	pm_frame_encode(&h, PM_FRAME_REQ, 7, 0, 16, 0);
	memcpy(b, &h, sizeof(h));
	hs_send(fd, b, sizeof(b));
	assert_int_equal(recv(fd, in, sizeof(in), MSG_WAITALL), sizeof(in));

	/* idle past handshake_timeout_ms first (not a stall: no frame in
	 * progress), so no timer of the first request is left to cover
	 * the silent peer below */
	nanosleep(&(struct timespec){ .tv_nsec = (HS_MS + 100) * 1000000L },
		  NULL);
	pm_frame_encode(&h, PM_FRAME_REQ, 8, 0, 16, 0);
	memcpy(b, &h, sizeof(h));
	hs_send(fd, b, 12);
	t0 = pm_now_ns();
	silent = hs_dial(hf);
	ms = hs_wait_dropped(silent, HS_MS + SLACK_MS, NULL, 0, 0);
	hs_expect_drop_time("silent peer during a stall", ms,
			    ms_since(t0) - ms, "handshake_timeout_ms");
	hs_expect_logged(hf, silent, "silent peer during a stall");
	close(silent);
	ms = ms_since(t0);
	if (ms > 2 * HS_MS - 50)
		fail_msg("the silent peer took %.0f ms: no time left for a %d ms stall",
			 ms, 2 * HS_MS);
	before = ms;
	ms = hs_wait_dropped(fd, 2 * HS_MS - (int)before, NULL, 0, 0);
	if (ms >= 0)
		fail_msg("a connection past its first request was dropped %.0f ms into a stall part-way (handshake_timeout_ms %d, stall_timeout_ms at its default): the handshake bound was applied to a live peer",
			 before + ms, HS_MS);
	hs_send(fd, b + 12, sizeof(b) - 12);
	if (recv(fd, in, sizeof(in), MSG_WAITALL) != (ssize_t)sizeof(in))
		fail_msg("no answer to the frame completed after a %d ms stall: %s",
			 2 * HS_MS, strerror(errno));
	memcpy(&h, in, sizeof(h));
	why = pm_frame_decode(&h);
	if (why || h.kind != PM_FRAME_REP || h.id != 8 || h.status ||
	    h.msg_len != 16)
		fail_msg("the answer after the stall is wrong (%s, kind %u id %llu status %d msg_len %u)",
			 why ? why : "well formed", h.kind,
			 (unsigned long long)h.id, h.status, h.msg_len);
	for (i = 0; i < 16; i++)
		if ((in[PM_FRAME_HDR_LEN + i] ^ XOR) != b[PM_FRAME_HDR_LEN + i])
			fail_msg("the answer after the stall does not echo the request (byte %d)",
				 i);
	hs_fd_name(fd, name, sizeof(name));
	if (ih_count_lines(&hf->s->ih, name))
		fail_msg("a warning names the peer %s, whose frame only stalled",
			 name);
	print_message("  a frame stalled %d ms after a request: kept, answered\n",
		      2 * HS_MS);
	close(fd);
	if (!srv_wait(hf->s, p_closed_with_req, 1, 5000))
		fail_msg("no on_close for the connection whose frame stalled");
	hs_down(hf);
}

/* Connect and make one verified call within ms; 0 or the last error. */
static int hs_try_client(struct pm_tctx *ct, const char *ep, int ms,
			 int *tries)
{
	uint64_t rng = seed ^ 22;
	int64_t end = ms_from_now(ms);
	struct pm_tconn *c;
	char err[512];
	int r;

	do {
		++*tries;
		r = ops->connect(ct, ep, ms_from_now(1000), &c);
		if (r)
			continue;
		r = echo_once(c, &rng, CMD_ECHO, 8, 64, 0, ms_from_now(1000),
			      err, sizeof(err));
		ops->disconnect(c);
		if (!r)
			return 0;
		nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
	} while (pm_now_ns() < end);
	return r;
}

/*
 * Which of fds (n of them) the listener ends first, within ms: its index,
 * or -1 if none. *ms_out: when.
 */
static int hs_wait_any_dropped(const int *fds, int n, int ms, double *ms_out)
{
	int64_t t0 = pm_now_ns(), end = ms_from_now(ms);
	struct pollfd pfd[FEW_CONNS + 1];
	char b[256];

	for (int i = 0; i < n; i++)
		pfd[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
	while (pm_now_ns() < end) {
		int wait = (int)((end - pm_now_ns()) / 1000000) + 1;

		if (poll(pfd, (nfds_t)n, wait) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			ssize_t k;

			if (!pfd[i].revents)
				continue;
			k = recv(fds[i], b, sizeof(b), MSG_DONTWAIT);
			if (k > 0)
				fail_msg("the listener sent %zd bytes to a peer that never sent a whole request",
					 k);
			if (k == 0 || errno == ECONNRESET || errno == EPIPE) {
				*ms_out = ms_since(t0);
				return i;
			}
		}
	}
	return -1;
}

/*
 * The attack: silent peers hold every slot (max_conns). One more must not
 * take the listener past its bound: either it is closed as it comes, or
 * it displaces one that never sent a request (tcp and io_uring-tcp
 * displace the oldest, so a real peer gets in at once). Either way a real
 * peer gets in by handshake_timeout_ms after the silent peers came.
 */
void test_handshake_frees_slots(void **state)
{
	struct pm_tctx *ct = NULL;
	struct ihost cih;
	struct hsfix *hf;
	int fd[FEW_CONNS + 1], gone, i, r, tries = 0;
	int64_t t0;
	double ms = 0;

	(void)state;
	hf = hs_up(FEW_CONNS, false);
	t0 = pm_now_ns();
	for (i = 0; i <= FEW_CONNS; i++)
		fd[i] = hs_dial(hf);
	/* full: one of them is closed long before the deadline */
	gone = hs_wait_any_dropped(fd, FEW_CONNS + 1, HS_MS / 2, &ms);
	if (gone < 0) {
		fail_msg("%d silent peers open %d ms after they came, with max_conns %d",
			 FEW_CONNS + 1, HS_MS / 2, FEW_CONNS);
		return;
	}
	close(fd[gone]);
	if (gone == FEW_CONNS) {
		hf->raw--;	/* refused as it came: never a connection */
		print_message("  %d silent peers hold every slot: one more closed after %.0f ms\n",
			      FEW_CONNS, ms);
	} else {
		print_message("  %d silent peers hold every slot: one more displaced silent peer %d after %.0f ms\n",
			      FEW_CONNS, gone, ms);
	}
	fd[gone] = fd[FEW_CONNS];

	ih_setup(&cih, listen_addr, "client");
	assert_int_equal(ops->init(&cih.host, &ct), 0);
	r = hs_try_client(ct, hf->s->ep, HS_MS + SLACK_MS, &tries);
	ms = ms_since(t0);
	if (r)
		fail_msg("a real client could not get in within %.0f ms (%d tries): %s",
			 ms, tries, strerror(-r));
	print_message("  a real client got in %.0f ms after the silent peers came (%d tries)\n",
		      ms, tries);
	for (i = 0; i < FEW_CONNS; i++) {
		ms = hs_wait_dropped(fd[i], SLACK_MS, NULL, 0, 0);
		if (ms < 0)
			fail_msg("silent peer %d still open after %.0f ms", i,
				 ms_since(t0));
		close(fd[i]);
	}
	ops->fini(ct);
	hs_down(hf);
}
