// SPDX-License-Identifier: MIT
/*
 * tcp transport tests on incoming connections: replies racing drop(),
 * many connections and fini, the max_conns bound, and fini while replies
 * are being written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tt_test.h"

struct racer {
	struct srv *s;
	int ok, notconn, other;
};

/* Reply to every held request as soon as it shows up. */
static void *replier(void *arg)
{
	struct racer *rc = arg;
	struct srv *s = rc->s;
	struct held h;
	struct timespec ts = mono_after_ms(5000);
	int r;

	pthread_mutex_lock(&s->mu);
	while (s->nheld == 0)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
			break;
	if (s->nheld == 0) {
		pthread_mutex_unlock(&s->mu);
		return NULL;
	}
	h = s->held[--s->nheld];
	pthread_mutex_unlock(&s->mu);
	r = ops->reply(s->t, h.conn, h.req, 0, NULL);
	if (r == 0)
		rc->ok++;
	else if (r == -ENOTCONN)
		rc->notconn++;
	else
		rc->other++;
	return NULL;
}

/*
 * reply() from another thread racing drop() and the connection's end:
 * 0 or -ENOTCONN, never a crash or a write to a freed connection (run
 * under ASan to see the latter), and on_close exactly once per connection.
 */
void test_reply_races_drop(void **state)
{
	enum { ROUNDS = MAX_CONNS };
	struct racer rc = { 0 };
	uint64_t ids[ROUNDS];
	struct srv *s;
	uint8_t m[1] = { OP_HOLD };
	int i, fd;

	(void)state;
	s = srv_new("127.0.0.1:0", NULL, 0);
	rc.s = s;
	for (i = 0; i < ROUNDS; i++) {
		pthread_t th;
		uint64_t id;

		fd = raw_dial(s->ep);
		assert_int_equal(raw_send_req(fd, 1, m, 1), 0);
		assert_true(srv_wait(s, &s->requests, i + 1, 5000));
		pthread_mutex_lock(&s->mu);
		id = s->held[s->nheld - 1].conn;
		pthread_mutex_unlock(&s->mu);
		ids[i] = id;
		assert_int_equal(pthread_create(&th, NULL, replier, &rc), 0);
		assert_int_equal(ops->drop(s->t, id), 0);
		pthread_join(th, NULL);
		assert_true(srv_wait(s, &s->closes, i + 1, 5000));
		assert_int_equal(ops->drop(s->t, id), -ENOENT);
		assert_int_equal(ops->reply(s->t, id, 1, 0, NULL), -ENOTCONN);
		close(fd);
	}
	print_message("  %d rounds: reply won %d times, lost (-ENOTCONN) %d times\n",
		      ROUNDS, rc.ok, rc.notconn);
	assert_int_equal(rc.other, 0);
	assert_int_equal(rc.ok + rc.notconn, ROUNDS);
	assert_int_equal(s->closes, ROUNDS);
	for (i = 0; i < ROUNDS; i++) {
		assert_int_equal(s->closed[i], ids[i]);
		if (i)
			assert_true(ids[i] > ids[i - 1]);
	}
	srv_free(s);
}

/*
 * Many incoming connections: ids unique and increasing, all served, and
 * fini() closes each (one on_close apiece) without hanging.
 */
void test_many_connections(void **state)
{
	enum { N = 24 };
	struct pm_tconn *c[N];
	struct client *cl;
	struct srv *s;
	int i, j;

	(void)state;
	s = srv_new("127.0.0.1:0", NULL, 0);
	cl = client_new();
	for (i = 0; i < N; i++) {
		uint8_t q[4] = { OP_ECHO, (uint8_t)i, 2, 3 }, r[4];
		struct pm_msg req = { q, 4, 0, NULL, 0, 0 };
		struct pm_msg rep = { r, 0, 4, NULL, 0, 0 };

		c[i] = client_dial(cl, s->ep);
		assert_int_equal(ops->call(c[i], &req, &rep,
					   pm_now_ns() + 5 * SEC), 0);
		assert_int_equal(r[2], (uint8_t)i);
	}
	/* one call per connection, in order: ids in order of arrival */
	assert_int_equal(s->nconns, N);
	for (i = 1; i < N; i++)
		assert_true(s->conns[i] > s->conns[i - 1]);
	/* half go away from the client side, the rest with the server */
	for (i = 0; i < N / 2; i++)
		ops->disconnect(c[i]);
	assert_true(srv_wait(s, &s->closes, N / 2, 5000));
	ops->fini(s->t);
	s->t = NULL;
	assert_int_equal(s->closes, N);
	for (i = 0; i < N; i++)
		for (j = i + 1; j < N; j++)
			assert_true(s->closed[i] != s->closed[j]);
	client_free(cl);	/* disconnects the other half */
	srv_free(s);
}

/* Wait until this process has at most n threads, at most ms. */
static bool threads_down_to(int n, int ms)
{
	int64_t dl = pm_now_ns() + (int64_t)ms * 1000000;
	struct timespec tick = { 0, 1000000 };

	while (count_threads() > n && pm_now_ns() < dl)
		nanosleep(&tick, NULL);
	return count_threads() <= n;
}

/* The listener closes fd without a byte within 5 s (end of stream or a
 * reset); *name is our end's address, as its log line names it. */
static void expect_refused(int fd, char *name, size_t len)
{
	char c;

	pm_net_fd_name(fd, 1, name, len);
	assert_int_equal(pm_net_read_all(fd, &c, 1, pm_now_ns() + 5 * SEC),
			 -ECONNRESET);
	close(fd);
}

/* Warning and error lines the server logged so far; *last the latest. */
static int srv_lines(struct srv *s, char *last, size_t len)
{
	int n;

	pthread_mutex_lock(&s->host->mu);
	n = s->host->lines;
	snprintf(last, len, "%s", s->host->last);
	pthread_mutex_unlock(&s->host->mu);
	return n;
}

/*
 * max_conns: at the bound a new connection is closed at once, without a
 * thread and never reaching the handler, while the ones open are served
 * on; one warning per episode; when one ends there is room again.
 */
void test_max_conns(void **state)
{
	unsigned seed = 11;
	struct pm_tconn *c[4];
	struct client *cl;
	struct srv *s;
	char name[PM_NET_ADDRSTR_MAX], last[512];
	int i, r, lines, threads;

	(void)state;
	s = srv_new("127.0.0.1:0", "max_conns", 2);
	cl = client_new();
	for (i = 0; i < 2; i++) {
		c[i] = client_dial(cl, s->ep);
		assert_int_equal(echo(c[i], 16, 4096, &seed), 0);
	}
	threads = count_threads();
	lines = srv_lines(s, last, sizeof(last));

	/* the third: the kernel completes the handshake, the listener
	 * closes it unread; the warning names the peer and the setting */
	expect_refused(raw_dial(s->ep), name, sizeof(name));
	assert_int_equal(srv_lines(s, last, sizeof(last)), lines + 1);
	print_message("  refused: %s\n", last);
	assert_non_null(strstr(last, name));
	assert_non_null(strstr(last, "transports.tcp.max_conns"));
	lines++;

	/* a call on one more transport connection fails (its one redial is
	 * refused too), and that episode logs nothing more */
	c[2] = client_dial(cl, s->ep);
	r = echo(c[2], 16, 0, &seed);
	print_message("  call on a connection over the bound: %s\n",
		      r ? strerror(-r) : "ok");
	assert_int_equal(r, -ECONNRESET);
	expect_refused(raw_dial(s->ep), name, sizeof(name));
	assert_int_equal(srv_lines(s, last, sizeof(last)), lines);

	/* the two inside are served as before; no thread for the others */
	for (i = 0; i < 2; i++)
		assert_int_equal(echo(c[i], 16, 4096, &seed), 0);
	assert_int_equal(count_threads(), threads);
	assert_int_equal(s->nconns, 2);

	/* one leaves: once its receive thread is gone, a new peer gets in */
	ops->disconnect(c[0]);
	assert_true(srv_wait(s, &s->closes, 1, 5000));
	assert_true(threads_down_to(threads - 1, 5000));
	c[3] = client_dial(cl, s->ep);
	assert_int_equal(echo(c[3], 16, 4096, &seed), 0);
	assert_int_equal(echo(c[1], 16, 4096, &seed), 0);
	assert_int_equal(s->nconns, 3);

	/* full again: a new episode, so a new warning */
	expect_refused(raw_dial(s->ep), name, sizeof(name));
	assert_int_equal(srv_lines(s, last, sizeof(last)), lines + 1);
	assert_non_null(strstr(last, name));

	client_free(cl);
	srv_free(s);
}

/*
 * A flood of silent connections at the bound: a new one displaces the
 * oldest that never sent a request (reset, never reaching the handler),
 * so a real peer gets in at once; peers that did speak are never
 * displaced, and one episode logs one warning and one line at its end.
 */
void test_max_conns_displace(void **state)
{
	unsigned seed = 12;
	struct pm_tconn *c[2];
	struct client *cl;
	struct srv *s;
	char name[PM_NET_ADDRSTR_MAX], last[512], b;
	int fd[3], lines;

	(void)state;
	s = srv_new("127.0.0.1:0", "max_conns", 3);
	cl = client_new();
	c[0] = client_dial(cl, s->ep);
	assert_int_equal(echo(c[0], 16, 4096, &seed), 0);
	lines = srv_lines(s, last, sizeof(last));
	/* two silent peers fill the bound; a third displaces the first */
	fd[0] = raw_dial(s->ep);
	fd[1] = raw_dial(s->ep);
	fd[2] = raw_dial(s->ep);	/* accepted after them: in order */
	expect_refused(fd[0], name, sizeof(name));
	assert_int_equal(srv_lines(s, last, sizeof(last)), lines + 1);
	print_message("  at the bound: %s\n", last);
	assert_non_null(strstr(last, "displace"));
	/* a real peer displaces the next silent one and is served */
	c[1] = client_dial(cl, s->ep);
	assert_int_equal(echo(c[1], 16, 4096, &seed), 0);
	expect_refused(fd[1], name, sizeof(name));
	assert_int_equal(echo(c[0], 16, 4096, &seed), 0);
	/* the silent one left keeps its slot until its own deadline */
	assert_int_equal(pm_net_read_all(fd[2], &b, 1, pm_now_ns() + SEC / 10),
			 -ETIMEDOUT);
	assert_int_equal(s->nconns, 2);
	close(fd[2]);
	client_free(cl);
	srv_free(s);
}

/* --- fini while replies are being written -------------------------------- */

#define FR_THREADS 8
#define FR_HELD MAX_HELD	/* x 64 KiB: more than socket buffers hold */

struct freplier {
	struct srv *s;
	struct held h[FR_HELD / FR_THREADS];
	int n;
	pid_t tid;		/* atomic: set once running */
	int ok;			/* replies written whole */
	int r;			/* atomic: the first failure */
	bool done;		/* atomic: out of replies to write */
};

/* Reply to each of its requests with a full payload until one fails. */
static void *freplier_main(void *arg)
{
	struct freplier *f = arg;
	struct pm_msg rep = { NULL, 0, 0, f->s->big, PM_PAYLOAD_MAX, 0 };
	int i;

	__atomic_store_n(&f->tid, gettid(), __ATOMIC_RELEASE);
	for (i = 0; i < f->n; i++) {
		int r = ops->reply(f->s->t, f->h[i].conn, f->h[i].req, 0,
				   &rep);

		if (r) {
			__atomic_store_n(&f->r, r, __ATOMIC_RELEASE);
			break;
		}
		f->ok++;
	}
	if (i == f->n)
		__atomic_store_n(&f->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* Thread tid's state letter from /proc ('S': asleep), '?' if unknown. */
static char thread_state(pid_t tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	p = strrchr(buf, ')');	/* the name may hold spaces */
	return p && p[1] == ' ' ? p[2] : '?';
}

/*
 * Have the repliers sat asleep a while, each but those with nothing left
 * to write, and most of them? Between their replies they do nothing that
 * sleeps, so asleep means blocked inside reply(): waiting for room in the
 * socket or for the connection's send lock.
 */
static bool repliers_blocked(struct freplier *f, int n, int ms)
{
	int64_t dl = pm_now_ns() + (int64_t)ms * 1000000;
	struct timespec tick = { 0, 20000000 };
	int i, asleep, calm = 0;

	while (calm < 5 && pm_now_ns() < dl) {
		nanosleep(&tick, NULL);
		for (i = asleep = 0; i < n; i++) {
			if (__atomic_load_n(&f[i].done, __ATOMIC_ACQUIRE))
				continue;
			if (!__atomic_load_n(&f[i].tid, __ATOMIC_ACQUIRE) ||
			    __atomic_load_n(&f[i].r, __ATOMIC_ACQUIRE) ||
			    thread_state(f[i].tid) != 'S')
				break;
			asleep++;
		}
		calm = i == n && asleep > n / 2 ? calm + 1 : 0;
	}
	return calm >= 5;
}

/*
 * fini while home workers (threads of the core) are writing replies to a
 * peer that stopped reading: fini must not free the connection under
 * them. The shutdown makes each fail at once (not after send_timeout_ms);
 * fini returns only when they are out, and a reply after that begins is
 * refused. Run under ASan to see a use after free if fini does not wait.
 */
void test_fini_waits_for_replies(void **state)
{
	static struct freplier fr[FR_THREADS];
	pthread_t th[FR_THREADS];
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	uint8_t m[1] = { OP_HOLD };
	char err[1024];
	struct srv *s;
	int64_t t0;
	double ms;
	int fd, i, rcv = 4096, ok = 0;

	(void)state;
	memset(fr, 0, sizeof(fr));
	s = srv_new("127.0.0.1:0", "send_timeout_ms", 60000);
	/* a small receive buffer, set before the handshake fixes the
	 * window: the replies pile up at the server */
	assert_int_equal(pm_net_parse(s->ep, &ss, &sl, err, sizeof(err)), 0);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv,
				    sizeof(rcv)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, sl), 0);
	for (i = 0; i < FR_HELD; i++)
		assert_int_equal(raw_send_req(fd, i + 1, m, 1), 0);
	assert_true(srv_wait(s, &s->nheld, FR_HELD, 10000));
	for (i = 0; i < FR_HELD; i++) {
		struct freplier *f = &fr[i % FR_THREADS];

		f->h[f->n++] = s->held[i];
	}
	for (i = 0; i < FR_THREADS; i++) {
		fr[i].s = s;
		assert_int_equal(pthread_create(&th[i], NULL, freplier_main,
						&fr[i]), 0);
	}
	if (!repliers_blocked(fr, FR_THREADS, 10000))
		fail_msg("the repliers did not block in reply() within 10 s: does the peer read after all?");

	t0 = pm_now_ns();
	ops->fini(s->t);
	ms = (pm_now_ns() - t0) / 1e6;
	s->t = NULL;
	for (i = 0; i < FR_THREADS; i++) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		if (pthread_timedjoin_np(th[i], NULL, &ts))
			fail_msg("replier %d still in reply() 5 s after fini",
				 i);
		if (!fr[i].done && fr[i].r != -ENOTCONN &&
		    fr[i].r != -ESHUTDOWN)
			fail_msg("replier %d: reply returned %d", i, fr[i].r);
		ok += fr[i].ok;
	}
	print_message("  fini took %.1f ms with %d repliers in reply() (%d replies went out whole); each failed with -ENOTCONN or -ESHUTDOWN\n",
		      ms, FR_THREADS, ok);
	assert_true(ms < 5000);
	assert_int_equal(s->closes, 1);
	close(fd);
	srv_free(s);
}
