// SPDX-License-Identifier: MIT
/*
 * tcp transport tests on redial and resend: a redial keeps to the call's
 * deadline and disconnect() aborts it; a request is sent again only when
 * the closing peer cannot have taken it (raw peers close their own way).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tt_test.h"

/* Is a socket of ours in SYN_SENT towards 127.0.0.1:port? */
static bool syn_sent_to(unsigned int port)
{
	char line[256];
	unsigned int rport, st;
	bool found = false;
	FILE *f = fopen("/proc/net/tcp", "r");

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, " %*d: %*x:%*x %*x:%x %x", &rport, &st) == 2)
			found = rport == port && st == 2;
	fclose(f);
	return found;
}

/* A call from a thread of its own, while the test plays the peer. */
struct bg_call {
	pthread_t th;
	struct pm_tconn *c;
	int64_t deadline;
	int r;
	int64_t end;
};

static void *bg_call_main(void *arg)
{
	struct bg_call *b = arg;
	uint8_t q[4] = { OP_ECHO }, r[4];
	struct pm_msg req = { q, 4, 0, NULL, 0, 0 };
	struct pm_msg rep = { r, 0, sizeof(r), NULL, 0, 0 };

	b->r = ops->call(b->c, &req, &rep, b->deadline);
	b->end = pm_now_ns();
	return NULL;
}

/* Start b: a call on c with a deadline sec seconds away. */
static void bg_call_start(struct bg_call *b, struct pm_tconn *c, int sec)
{
	*b = (struct bg_call){ .c = c, .deadline = pm_now_ns() + sec * SEC };
	assert_int_equal(pthread_create(&b->th, NULL, bg_call_main, b), 0);
}

/*
 * A peer that is gone and whose address now drops SYNs (a listener with a
 * full accept queue): the redial inside call() keeps to the call's
 * deadline, and disconnect() aborts a redial in progress at once.
 */
void test_redial_black_hole(void **state)
{
	struct sockaddr_storage ss;
	struct bg_call b;
	struct pm_tconn *c;
	struct client *cl;
	struct srv *s;
	char ep[PM_ENDPOINT_MAX], err[256];
	uint8_t q[4] = { OP_ECHO }, r[4];
	struct pm_msg req = { q, 4, 0, NULL, 0, 0 };
	struct pm_msg rep = { r, 0, sizeof(r), NULL, 0, 0 };
	socklen_t sl;
	unsigned int port;
	int64_t t0, dl;
	int bh, filler, one = 1;

	(void)state;
	s = srv_new("127.0.0.1:0", NULL, 0);
	snprintf(ep, sizeof(ep), "%s", s->ep);
	port = (unsigned int)atoi(strrchr(ep, ':') + 1);
	cl = client_new();
	c = client_dial(cl, ep);
	assert_int_equal(ops->call(c, &req, &rep, pm_now_ns() + 5 * SEC), 0);
	srv_free(s);

	/* backlog 0 holds one connection; with it queued, SYNs drop */
	assert_int_equal(pm_net_parse(ep, &ss, &sl, err, sizeof(err)), 0);
	bh = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(bh >= 0);
	assert_int_equal(setsockopt(bh, SOL_SOCKET, SO_REUSEADDR, &one,
				    sizeof(one)), 0);
	assert_int_equal(bind(bh, (struct sockaddr *)&ss, sl), 0);
	assert_int_equal(listen(bh, 0), 0);
	filler = raw_dial(ep);

	t0 = pm_now_ns();
	dl = t0 + 300 * 1000000LL;
	assert_int_equal(ops->call(c, &req, &rep, dl), -ETIMEDOUT);
	print_message("  call redialling into a black hole: -ETIMEDOUT after %.1f ms (deadline 300 ms)\n",
		      (pm_now_ns() - t0) / 1e6);
	assert_true(pm_now_ns() >= dl);
	assert_true(pm_now_ns() < dl + 2 * SEC);

	bg_call_start(&b, c, 30);
	dl = pm_now_ns() + 5 * SEC;
	while (!syn_sent_to(port) && pm_now_ns() < dl)
		sched_yield();
	assert_true(syn_sent_to(port));
	t0 = pm_now_ns();
	ops->disconnect(c);
	pthread_join(b.th, NULL);
	print_message("  disconnect during the redial: call returned %s %.1f ms later\n",
		      strerror(-b.r), (b.end - t0) / 1e6);
	assert_int_equal(b.r, -ESHUTDOWN);
	assert_true(b.end - t0 < 2 * SEC);

	close(filler);
	close(bh);
	client_free(cl);
}

/* --- a raw peer of the test's own, closing connections its own way ---- */

/* A listening socket on 127.0.0.1, port picked by the kernel; ep its
 * endpoint. */
static int raw_listen(char *ep, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char err[256];
	int fd = -1;

	assert_int_equal(pm_net_parse("127.0.0.1:0", &ss, &sl, err,
				      sizeof(err)), 0);
	assert_int_equal(pm_net_listen((struct sockaddr *)&ss, sl, 8, &fd),
			 0);
	pm_net_fd_name(fd, 1, ep, len);
	return fd;
}

/* The next connection on lfd within 5 s; fails the test if none comes. */
static int raw_accept(int lfd)
{
	int fd;

	if (pm_net_wait(lfd, POLLIN, pm_now_ns() + 5 * SEC) < 0)
		fail_msg("the plugin dialled no connection within 5 s");
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* Is a connection waiting on lfd now? A call redials before it returns,
 * so once it has returned, this tells whether it did. */
static bool raw_pending(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/* Read one request frame from fd within 5 s; answer it (msg reversed) if
 * reply. Fails the test on anything else. */
static void raw_serve(int fd, bool reply)
{
	static uint8_t body[PM_MSG_MAX + PM_PAYLOAD_MAX];
	uint8_t out[PM_MSG_MAX];
	struct pm_frame_hdr h;
	struct iovec iov[2];
	uint32_t i;
	int r;

	r = raw_reply(fd, &h, body, pm_now_ns() + 5 * SEC);
	if (r)
		fail_msg("raw peer: no request frame within 5 s: %s",
			 strerror(-r));
	assert_int_equal(h.kind, PM_FRAME_REQ);
	if (!reply)
		return;
	for (i = 0; i < h.msg_len; i++)
		out[i] = body[h.msg_len - 1 - i];
	pm_frame_encode(&h, PM_FRAME_REP, h.id, 0, h.msg_len, 0);
	iov[0] = (struct iovec){ &h, sizeof(h) };
	iov[1] = (struct iovec){ out, h.msg_len };
	assert_int_equal(pm_net_writev_all(fd, iov, 2, pm_now_ns() + 5 * SEC),
			 0);
}

/* The port of fd's peer. */
static unsigned int peer_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	assert_int_equal(getpeername(fd, (struct sockaddr *)&sa, &sl), 0);
	return ntohs(sa.sin_port);
}

/* The state (as /proc/net/tcp numbers it) of our socket with local port
 * lport and remote port rport; -1 if there is none. */
static int tcp_state(unsigned int lport, unsigned int rport)
{
	char line[256];
	unsigned int lp, rp, st;
	int found = -1;
	FILE *f = fopen("/proc/net/tcp", "r");

	assert_non_null(f);
	while (found < 0 && fgets(line, sizeof(line), f))
		if (sscanf(line, " %*d: %*x:%x %*x:%x %x", &lp, &rp, &st) ==
		    3 && lp == lport && rp == rport)
			found = (int)st;
	fclose(f);
	return found;
}

#define TCP_CLOSE_WAIT 8

/* A client instance connected to the raw peer on lfd/ep; *afd the
 * accepted end. */
static struct client *raw_pair(int lfd, const char *ep, struct pm_tconn **c,
			       int *afd)
{
	struct client *cl = client_new();

	*c = client_dial(cl, ep);
	*afd = raw_accept(lfd);
	return cl;
}

/*
 * The peer closes while the connection is idle (it restarted): the next
 * call's request goes into a connection whose peer is gone, which never
 * acknowledges it. The call redials once, sends it again and succeeds.
 */
void test_idle_close_resends(void **state)
{
	char ep[PM_ENDPOINT_MAX];
	struct bg_call b;
	struct pm_tconn *c;
	struct client *cl;
	unsigned int lport, rport;
	int64_t dl;
	int lfd, a, n;

	(void)state;
	lfd = raw_listen(ep, sizeof(ep));
	rport = (unsigned int)atoi(strrchr(ep, ':') + 1);
	cl = raw_pair(lfd, ep, &c, &a);
	lport = peer_port(a);

	bg_call_start(&b, c, 10);
	raw_serve(a, true);
	pthread_join(b.th, NULL);
	assert_int_equal(b.r, 0);

	close(a);
	/* our end has taken the FIN once it is in CLOSE_WAIT */
	dl = pm_now_ns() + 5 * SEC;
	while (tcp_state(lport, rport) != TCP_CLOSE_WAIT && pm_now_ns() < dl)
		sched_yield();
	assert_int_equal(tcp_state(lport, rport), TCP_CLOSE_WAIT);

	bg_call_start(&b, c, 10);
	n = raw_accept(lfd);
	raw_serve(n, true);
	pthread_join(b.th, NULL);
	print_message("  call after the peer closed an idle connection: %s\n",
		      b.r ? strerror(-b.r) : "ok");
	assert_int_equal(b.r, 0);
	assert_false(raw_pending(lfd));

	client_free(cl);
	close(n);
	close(lfd);
}

/*
 * The peer reads the request, then closes without a reply: its FIN
 * acknowledges the request, so the peer may have acted on it, and the call
 * fails rather than send it twice. The call after that redials.
 */
void test_read_then_close_fails(void **state)
{
	char ep[PM_ENDPOINT_MAX];
	struct bg_call b;
	struct pm_tconn *c;
	struct client *cl;
	int lfd, a, n;

	(void)state;
	lfd = raw_listen(ep, sizeof(ep));
	cl = raw_pair(lfd, ep, &c, &a);

	bg_call_start(&b, c, 10);
	raw_serve(a, false);
	close(a);
	pthread_join(b.th, NULL);
	print_message("  call whose request the peer read before closing: %s\n",
		      b.r ? strerror(-b.r) : "ok");
	assert_int_equal(b.r, -ECONNRESET);
	assert_false(raw_pending(lfd));

	bg_call_start(&b, c, 10);
	n = raw_accept(lfd);
	raw_serve(n, true);
	pthread_join(b.th, NULL);
	assert_int_equal(b.r, 0);

	client_free(cl);
	close(n);
	close(lfd);
}

/*
 * The peer reads one request and closes with a second unread: it resets
 * the connection, and its acknowledgement of the first may ride only on
 * that RST (delayed ACKs: TCP_QUICKACK off), which the calling side never
 * applies. Without a FIN nothing bounds what the peer took: both calls
 * fail, neither is sent again.
 */
void test_reset_fails(void **state)
{
	char ep[PM_ENDPOINT_MAX];
	struct bg_call b1, b2;
	struct pm_tconn *c;
	struct client *cl;
	int64_t dl;
	int lfd, a, zero = 0, inq = 0;

	(void)state;
	lfd = raw_listen(ep, sizeof(ep));
	cl = raw_pair(lfd, ep, &c, &a);
	assert_int_equal(setsockopt(a, IPPROTO_TCP, TCP_QUICKACK, &zero,
				    sizeof(zero)), 0);

	bg_call_start(&b1, c, 10);
	raw_serve(a, false);
	bg_call_start(&b2, c, 10);
	/* the second request is in, unread: close() answers with a RST */
	dl = pm_now_ns() + 5 * SEC;
	while (pm_net_wait(a, POLLIN, dl) == 0 &&
	       ioctl(a, FIONREAD, &inq) == 0 &&
	       inq < (int)(PM_FRAME_HDR_LEN + 4))
		sched_yield();
	assert_int_equal(inq, PM_FRAME_HDR_LEN + 4);
	close(a);
	pthread_join(b1.th, NULL);
	pthread_join(b2.th, NULL);
	print_message("  calls on a connection the peer reset: %s, %s\n",
		      b1.r ? strerror(-b1.r) : "ok",
		      b2.r ? strerror(-b2.r) : "ok");
	assert_int_equal(b1.r, -ECONNRESET);
	assert_int_equal(b2.r, -ECONNRESET);
	assert_false(raw_pending(lfd));

	client_free(cl);
	close(lfd);
}
