// SPDX-License-Identifier: MIT
/*
 * io_uring-tcp tests that the shared conformance suite does not cover:
 * the wire interop with the plain tcp plugin in both directions (both use
 * plugins/common/frame.h), replies from another thread under load, a
 * malformed frame from a raw socket, and redial after the peer restarts.
 * Real sockets on 127.0.0.1, both plugins loaded through the core loader.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "frame.h"
#include "loader.h"
#include "log.h"
#include "net.h"

#define SEC 1000000000LL

static char ut_path[PATH_MAX], tcp_path[PATH_MAX];

/* --- a server: echoes msg, answers payload requests with a page ---------- */

struct srv {
	struct pm_plugin pl;
	char ep[PM_ENDPOINT_MAX];
	pthread_mutex_t lock;
	pthread_cond_t cv;
	int closes;		/* on_close calls */
	int requests;
	bool defer;		/* reply from another thread, in reverse */
	bool has_replier;	/* the replier thread runs */
	struct { uint64_t conn, req; uint8_t msg[64]; uint32_t len; } q[64];
	int nq;
	bool stop;
	pthread_t thr;
};

/* The reply page: byte i of the page is (seed + i) & 0xff. */
static void fill_page(uint8_t *p, uint8_t seed)
{
	for (uint32_t i = 0; i < PM_PAGE_SIZE; i++)
		p[i] = (uint8_t)(seed + i);
}

static void answer(struct srv *s, uint64_t conn, uint64_t req,
		   const void *msg, uint32_t len)
{
	uint8_t page[PM_PAGE_SIZE];
	struct pm_msg rep = { .msg = (void *)msg, .msg_len = len };

	if (len >= 1) {
		fill_page(page, ((const uint8_t *)msg)[0]);
		rep.payload = page;
		rep.payload_len = PM_PAGE_SIZE;
	}
	s->pl.ops->reply(s->pl.ctx, conn, req, 0, &rep);
}

static void on_request(void *arg, const struct pm_request *rq)
{
	struct srv *s = arg;

	pthread_mutex_lock(&s->lock);
	s->requests++;
	if (s->defer && s->nq < 64 && rq->msg_len <= 64) {
		s->q[s->nq].conn = rq->conn_id;
		s->q[s->nq].req = rq->req_id;
		memcpy(s->q[s->nq].msg, rq->msg, rq->msg_len);
		s->q[s->nq].len = rq->msg_len;
		s->nq++;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	pthread_mutex_unlock(&s->lock);
	answer(s, rq->conn_id, rq->req_id, rq->msg, rq->msg_len);
}

static void on_close(void *arg, uint64_t conn_id)
{
	struct srv *s = arg;

	(void)conn_id;
	pthread_mutex_lock(&s->lock);
	s->closes++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->lock);
}

/* Deferred mode: answer queued requests newest first, from this thread. */
static void *replier(void *arg)
{
	struct srv *s = arg;
	struct timespec ts;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		if (!s->nq) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&s->cv, &s->lock, &ts);
			continue;
		}
		s->nq--;
		uint64_t c = s->q[s->nq].conn, r = s->q[s->nq].req;
		uint8_t m[64];
		uint32_t l = s->q[s->nq].len;

		memcpy(m, s->q[s->nq].msg, l);
		pthread_mutex_unlock(&s->lock);
		answer(s, c, r, m, l);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int srv_start(struct srv *s, const char *path, const char *name,
		     const char *listen, bool defer)
{
	struct pm_listener l = { on_request, on_close, s };
	int r;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->defer = defer;
	r = loader_open_path(&s->pl, path, name, NULL, 1);
	if (r)
		return r;
	assert_int_equal(loader_set_string(&s->pl, "listen", listen), 0);
	r = s->pl.ops->init(&s->pl.host, &s->pl.ctx);
	if (r)
		return r;
	r = s->pl.ops->listen(s->pl.ctx, &l);
	if (r)
		return r;
	if (defer) {
		assert_int_equal(pthread_create(&s->thr, NULL, replier, s), 0);
		s->has_replier = true;
	}
	return s->pl.ops->endpoint(s->pl.ctx, s->ep, sizeof(s->ep));
}

static void srv_stop(struct srv *s)
{
	if (s->has_replier) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thr, NULL);
	}
	loader_close(&s->pl);
}

/* --- client side --------------------------------------------------------- */

struct cli {
	struct pm_plugin pl;
	struct pm_tconn *c;
};

static void cli_start(struct cli *c, const char *path, const char *name,
		      const char *ep)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(loader_open_path(&c->pl, path, name, NULL, 2), 0);
	assert_int_equal(c->pl.ops->init(&c->pl.host, &c->pl.ctx), 0);
	assert_int_equal(c->pl.ops->connect(c->pl.ctx, ep,
					    pm_now_ns() + 5 * SEC, &c->c), 0);
}

static void cli_stop(struct cli *c)
{
	c->pl.ops->disconnect(c->c);
	loader_close(&c->pl);
}

/* One call: 1..16 byte message -> echo + a page derived from byte 0. */
static int one_call(struct cli *c, uint8_t seed, int len, int64_t dl)
{
	uint8_t msg[16], back[PM_MSG_MAX];
	uint8_t page[PM_PAGE_SIZE], want[PM_PAGE_SIZE];
	struct pm_msg req = { .msg = msg, .msg_len = (uint32_t)len };
	struct pm_msg rep = { .msg = back, .msg_cap = sizeof(back),
			      .payload = page, .payload_cap = sizeof(page) };
	int r;

	for (int i = 0; i < len; i++)
		msg[i] = (uint8_t)(seed + i * 7);
	r = c->pl.ops->call(c->c, &req, &rep, dl);
	if (r)
		return r;
	if (rep.msg_len != (uint32_t)len || memcmp(back, msg, (size_t)len))
		return -EBADMSG;
	fill_page(want, msg[0]);
	if (rep.payload_len != PM_PAGE_SIZE || memcmp(page, want, PM_PAGE_SIZE))
		return -EBADMSG;
	return 0;
}

struct load { struct cli *c; int id, n, fails, first_err; };

static void *load_thread(void *arg)
{
	struct load *l = arg;

	for (int i = 0; i < l->n; i++) {
		int r = one_call(l->c, (uint8_t)(l->id * 31 + i), 1 + i % 16,
				 pm_now_ns() + 5 * SEC);

		if (r) {
			if (!l->fails++)
				l->first_err = r;
		}
	}
	return NULL;
}

/* threads x calls on one connection; every reply checked byte by byte. */
static void run_load(struct cli *c, int threads, int calls)
{
	pthread_t th[16];
	struct load l[16];

	for (int i = 0; i < threads; i++) {
		l[i] = (struct load){ c, i, calls, 0, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, load_thread,
						&l[i]), 0);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		if (l[i].fails)
			print_error("thread %d: %d failed calls, first %s\n",
				    i, l[i].fails, strerror(-l[i].first_err));
		assert_int_equal(l[i].fails, 0);
	}
}

static void pair(const char *spath, const char *sname, const char *cpath,
		 const char *cname)
{
	struct srv s;
	struct cli c;

	assert_int_equal(srv_start(&s, spath, sname, "127.0.0.1:0", false), 0);
	cli_start(&c, cpath, cname, s.ep);
	assert_int_equal(one_call(&c, 1, 16, pm_now_ns() + 5 * SEC), 0);
	run_load(&c, 8, 300);
	cli_stop(&c);
	srv_stop(&s);
}

static int skip_unless_built(void)
{
	if (access(ut_path, R_OK) || access(tcp_path, R_OK)) {
		print_message("skipped: needs %s and %s\n", ut_path, tcp_path);
		return 1;
	}
	return 0;
}

static void test_self(void **st)
{
	(void)st;
	if (skip_unless_built())
		skip();
	pair(ut_path, "io_uring-tcp", ut_path, "io_uring-tcp");
}

static void test_interop_ut_client_tcp_server(void **st)
{
	(void)st;
	if (skip_unless_built())
		skip();
	pair(tcp_path, "tcp", ut_path, "io_uring-tcp");
}

static void test_interop_tcp_client_ut_server(void **st)
{
	(void)st;
	if (skip_unless_built())
		skip();
	pair(ut_path, "io_uring-tcp", tcp_path, "tcp");
}

/* Replies from another thread, newest request first, 8 callers. */
static void test_deferred_out_of_order(void **st)
{
	struct srv s;
	struct cli c;

	(void)st;
	if (skip_unless_built())
		skip();
	assert_int_equal(srv_start(&s, ut_path, "io_uring-tcp",
				   "127.0.0.1:0", true), 0);
	cli_start(&c, ut_path, "io_uring-tcp", s.ep);
	run_load(&c, 8, 100);
	cli_stop(&c);
	srv_stop(&s);
}

/* Wait until s->closes reaches n, at most 5 s. */
static int wait_closes(struct srv *s, int n)
{
	int64_t dl = pm_now_ns() + 5 * SEC;
	struct timespec ts;
	int got;

	pthread_mutex_lock(&s->lock);
	while (s->closes < n && pm_now_ns() < dl) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->cv, &s->lock, &ts);
	}
	got = s->closes;
	pthread_mutex_unlock(&s->lock);
	return got;
}

/* A raw peer sends a frame with a bad magic: it is dropped (on_close),
 * no request reaches the core, and other peers are still served. */
static void test_bad_frame(void **st)
{
	struct sockaddr_storage ss;
	struct pm_frame_hdr h;
	struct srv s;
	struct cli c;
	socklen_t sl = 0;
	char err[PM_ENDPOINT_MAX + 128], b;
	uint8_t frame[PM_FRAME_HDR_LEN + 4];
	int fd = -1;

	(void)st;
	if (skip_unless_built())
		skip();
	assert_int_equal(srv_start(&s, ut_path, "io_uring-tcp",
				   "127.0.0.1:0", false), 0);
	assert_int_equal(pm_net_parse(s.ep, &ss, &sl, err, sizeof(err)), 0);
	assert_int_equal(pm_net_dial((struct sockaddr *)&ss, sl,
				     pm_now_ns() + 5 * SEC, -1, &fd), 0);
	pm_frame_encode(&h, PM_FRAME_REQ, 7, 0, 4, 0);
	h.magic ^= 0xff;
	/* One send: the server may reject a lone header and reset us (it
	 * threw bytes away) before a second send, which then fails. */
	memcpy(frame, &h, sizeof(h));
	memcpy(frame + sizeof(h), "abcd", 4);
	assert_int_equal(send(fd, frame, sizeof(frame), MSG_NOSIGNAL),
			 sizeof(frame));
	assert_int_equal(wait_closes(&s, 1), 1);
	/* The server closed our socket: we read end of stream. */
	assert_int_equal(pm_net_wait(fd, POLLIN, pm_now_ns() + 5 * SEC), 0);
	assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT), 0);
	close(fd);
	pthread_mutex_lock(&s.lock);
	assert_int_equal(s.requests, 0);
	pthread_mutex_unlock(&s.lock);

	cli_start(&c, ut_path, "io_uring-tcp", s.ep);
	assert_int_equal(one_call(&c, 9, 5, pm_now_ns() + 5 * SEC), 0);
	cli_stop(&c);
	srv_stop(&s);
}

/* The server goes away and comes back on the same port: the next call
 * redials by itself. */
static void test_peer_restart(void **st)
{
	struct srv s;
	struct cli c;
	char ep[PM_ENDPOINT_MAX];
	int r;

	(void)st;
	if (skip_unless_built())
		skip();
	assert_int_equal(srv_start(&s, ut_path, "io_uring-tcp",
				   "127.0.0.1:0", false), 0);
	strcpy(ep, s.ep);
	cli_start(&c, ut_path, "io_uring-tcp", ep);
	assert_int_equal(one_call(&c, 3, 8, pm_now_ns() + 5 * SEC), 0);
	srv_stop(&s);
	/* Nobody listens: fails, without hanging past its deadline. */
	r = one_call(&c, 4, 8, pm_now_ns() + 2 * SEC);
	assert_true(r == -ECONNRESET || r == -EPIPE || r == -ETIMEDOUT);
	assert_int_equal(srv_start(&s, ut_path, "io_uring-tcp", ep, false), 0);
	assert_int_equal(one_call(&c, 5, 8, pm_now_ns() + 5 * SEC), 0);
	cli_stop(&c);
	srv_stop(&s);
}

static void *one_call_thread(void *arg)
{
	struct cli *c = arg;

	return (void *)(intptr_t)one_call(c, 11, 4, pm_now_ns() + 5 * SEC);
}

/*
 * An idle connection keeps its receive armed on the thread that last
 * called, and reads the peer's close from it. That thread exits (the
 * kernel then ends the receive without reporting the close); the peer
 * restarts: the next call, from this thread, still redials by itself.
 */
static void test_peer_restart_owner_gone(void **st)
{
	struct srv s;
	struct cli c;
	char ep[PM_ENDPOINT_MAX];
	pthread_t th;
	void *ret;

	(void)st;
	if (skip_unless_built())
		skip();
	assert_int_equal(srv_start(&s, ut_path, "io_uring-tcp",
				   "127.0.0.1:0", false), 0);
	strcpy(ep, s.ep);
	cli_start(&c, ut_path, "io_uring-tcp", ep);
	assert_int_equal(pthread_create(&th, NULL, one_call_thread, &c), 0);
	pthread_join(th, &ret);
	assert_int_equal((int)(intptr_t)ret, 0);
	srv_stop(&s);
	assert_int_equal(srv_start(&s, ut_path, "io_uring-tcp", ep, false), 0);
	assert_int_equal(one_call(&c, 5, 8, pm_now_ns() + 5 * SEC), 0);
	assert_int_equal(one_call(&c, 6, 8, pm_now_ns() + 5 * SEC), 0);
	cli_stop(&c);
	srv_stop(&s);
}

/* A request nobody answers times out; the connection stays usable. */
static void test_timeout_then_ok(void **st)
{
	struct srv s;
	struct cli c;
	struct pm_msg req = { .msg = "", .msg_len = 0 }, rep = { 0 };
	int64_t t0;

	(void)st;
	if (skip_unless_built())
		skip();
	/* Deferred server with its replier stopped: nothing is answered. */
	assert_int_equal(srv_start(&s, ut_path, "io_uring-tcp",
				   "127.0.0.1:0", false), 0);
	pthread_mutex_lock(&s.lock);
	s.defer = true;
	pthread_mutex_unlock(&s.lock);
	cli_start(&c, ut_path, "io_uring-tcp", s.ep);
	t0 = pm_now_ns();
	assert_int_equal(c.pl.ops->call(c.c, &req, &rep, t0 + SEC / 5),
			 -ETIMEDOUT);
	assert_true(pm_now_ns() - t0 < 2 * SEC);
	pthread_mutex_lock(&s.lock);
	s.defer = false;
	pthread_mutex_unlock(&s.lock);
	assert_int_equal(one_call(&c, 6, 3, pm_now_ns() + 5 * SEC), 0);
	cli_stop(&c);
	srv_stop(&s);
}

/*
 * The receive runs its kernel work on the thread that armed it. That
 * thread exits (the kernel cancels its requests) or idles while others
 * call: the calls of the others still complete, every reply checked.
 */
static void test_receive_owner_changes(void **st)
{
	struct srv s;
	struct cli c;
	pthread_t th;
	void *ret;
	int i;

	(void)st;
	if (skip_unless_built())
		skip();
	assert_int_equal(srv_start(&s, ut_path, "io_uring-tcp",
				   "127.0.0.1:0", false), 0);
	cli_start(&c, ut_path, "io_uring-tcp", s.ep);
	for (i = 0; i < 3; i++) {
		/* A short-lived thread arms the receive and exits. */
		assert_int_equal(pthread_create(&th, NULL, one_call_thread, &c),
				 0);
		pthread_join(th, &ret);
		assert_int_equal((int)(intptr_t)ret, 0);
		/* This thread now calls with the owner gone. */
		for (int k = 0; k < 50; k++)
			assert_int_equal(one_call(&c, (uint8_t)k, 16,
						  pm_now_ns() + 5 * SEC), 0);
	}
	/* This thread owns it and idles in pthread_join while 4 others
	 * call. */
	run_load(&c, 4, 200);
	/* All on the first connection: no break and redial on the way. */
	pthread_mutex_lock(&s.lock);
	assert_int_equal(s.closes, 0);
	pthread_mutex_unlock(&s.lock);
	cli_stop(&c);
	srv_stop(&s);
}

/*
 * Run probe in a child process whose environment was made hostile by
 * how(); the child writes the probe's result and reason to the pipe.
 */
static int probe_in_child(int (*how)(void), char *why, size_t len)
{
	struct pm_plugin pl;
	int p[2], st, r;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char out[300];

		close(p[0]);
		r = how();
		if (r) {
			snprintf(out, sizeof(out), "setup failed: %s",
				 strerror(-r));
		} else {
			memset(&pl, 0, sizeof(pl));
			r = loader_open_path(&pl, ut_path, "io_uring-tcp",
					     NULL, 1);
			snprintf(out, sizeof(out), "%d %s", r,
				 r ? pl.why : "usable");
		}
		if (write(p[1], out, strlen(out)) < 0)
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	n = read(p[0], why, len - 1);
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	why[n > 0 ? n : 0] = '\0';
	return 0;
}

/* Seccomp: io_uring_setup fails with EPERM, as in a locked-down
 * container. */
static int block_io_uring_setup(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -errno;
	return 0;
}

/* A private mount namespace where the sysctl file reads 2. */
static int fake_sysctl_disabled(void)
{
	char tmpl[] = "/tmp/ut-sysctl-XXXXXX";
	int fd, r = 0;

	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return -errno;
	fd = mkstemp(tmpl);
	if (fd < 0)
		return -errno;
	if (write(fd, "2\n", 2) != 2 ||
	    mount(tmpl, "/proc/sys/kernel/io_uring_disabled", NULL, MS_BIND,
		  NULL))
		r = -errno;
	close(fd);
	unlink(tmpl);
	return r;
}

static void test_probe_reasons(void **st)
{
	char why[400];

	(void)st;
	if (skip_unless_built())
		skip();
	probe_in_child(block_io_uring_setup, why, sizeof(why));
	print_message("  io_uring_setup blocked: %s\n", why);
	if (strstr(why, "setup failed"))
		skip();
	assert_non_null(strstr(why, "io_uring_queue_init failed"));
	assert_non_null(strstr(why, "Operation not permitted"));

	probe_in_child(fake_sysctl_disabled, why, sizeof(why));
	print_message("  io_uring_disabled=2: %s\n", why);
	if (strstr(why, "setup failed")) {
		print_message("skipped: cannot fake the sysctl here (%s)\n",
			      why);
		skip();
	}
	assert_non_null(strstr(why,
			       "io_uring disabled by kernel.io_uring_disabled=2"));
}

/*
 * The key table's ranges of this plugin's integer settings are its own:
 * at each end init passes, one past it fails with a line naming the key.
 */
static void test_setting_ranges(void **st)
{
	static const char *const keys[] = {
		"transports.io_uring-tcp.max_conns",
		"transports.io_uring-tcp.handshake_timeout_ms",
		"transports.io_uring-tcp.stall_timeout_ms",
	};
	struct pm_plugin *pl = calloc(1, sizeof(*pl));
	struct cfg *c = calloc(1, sizeof(*c));
	char path[] = "/tmp/pm-ut-cfg-XXXXXX", err[512];
	size_t i;
	FILE *f;
	int end, fd, lvl = pm_log_default.level;

	(void)st;
	assert_non_null(pl);
	assert_non_null(c);
	if (skip_unless_built()) {
		free(pl);
		free(c);
		skip();
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f, "node = { id = 0; };\n"
		"cluster = { name = \"t\"; nodes = 1; memory = \"64M\"; };\n"
		"transports = { order = [ \"io_uring-tcp\" ];\n"
		"  io_uring-tcp = { max_conns = 1; handshake_timeout_ms = 1;\n"
		"    stall_timeout_ms = 1; }; };\n");
	assert_int_equal(fclose(f), 0);
	assert_int_equal(cfg_load(path, c, err, sizeof(err)), 0);
	unlink(path);
	pm_log_default.level = -1;	/* the refusals are the point */
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const struct cfg_key *k = cfg_key_find(keys[i]);
		config_setting_t *set = config_lookup(&c->lc, keys[i]);

		assert_non_null(k);
		assert_non_null(set);
		for (end = 0; end < 4; end++) {
			int64_t v = end == 0 ? k->min : end == 1 ? k->max :
				    end == 2 ? k->min - 1 : k->max + 1;

			assert_int_equal(config_setting_set_int64(set, v),
					 CONFIG_TRUE);
			assert_int_equal(loader_open_path(pl, ut_path,
							  "io_uring-tcp", c, 0),
					 0);
			if (pl->ops->init(&pl->host, &pl->ctx) == 0) {
				if (end >= 2)
					fail_msg("io_uring-tcp took %s = %lld, outside the table's range",
						 keys[i], (long long)v);
			} else {
				pl->ctx = NULL;
				if (end < 2)
					fail_msg("io_uring-tcp refused %s = %lld, inside the table's range",
						 keys[i], (long long)v);
			}
			loader_close(pl);
		}
		config_setting_set_int64(set, k->def);
	}
	pm_log_default.level = lvl;
	cfg_free(c);
	free(c);
	free(pl);
}

int main(void)
{
	const char *b = getenv("PM_BUILD");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_self),
		cmocka_unit_test(test_interop_ut_client_tcp_server),
		cmocka_unit_test(test_interop_tcp_client_ut_server),
		cmocka_unit_test(test_deferred_out_of_order),
		cmocka_unit_test(test_bad_frame),
		cmocka_unit_test(test_peer_restart),
		cmocka_unit_test(test_timeout_then_ok),
		cmocka_unit_test(test_receive_owner_changes),
		cmocka_unit_test(test_peer_restart_owner_gone),
		cmocka_unit_test(test_probe_reasons),
		cmocka_unit_test(test_setting_ranges),
	};

	pm_log_default.level = getenv("PM_VERBOSE") ? PM_LOG_DEBUG : PM_LOG_WARN;
	snprintf(ut_path, sizeof(ut_path), "%s/plugins/io_uring-tcp.so",
		 b ? b : "build");
	snprintf(tcp_path, sizeof(tcp_path), "%s/plugins/tcp.so",
		 b ? b : "build");
	return cmocka_run_group_tests_name("io_uring-tcp", tests, NULL, NULL);
}
