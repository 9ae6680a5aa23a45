// SPDX-License-Identifier: MIT
/*
 * Transport benchmark: every built transport plugin against a plain
 * blocking-socket baseline measured in the same run, interleaved so that
 * noise hits all of them. A 16-byte request, a 4 KiB reply; latency at one
 * call in flight, calls/s at 1, 8, 32 and 128 in flight (one thread per
 * call in flight, all on one connection for plugins, one connection per
 * thread for the baseline). Servers run in child processes, the client in
 * this one, all on 127.0.0.1. Writes a CSV and gnuplot data next to it.
 * A plugin that counts its own system calls (io_uring-tcp logs them when a
 * connection is disconnected) gets a row of io_uring_enter per call, from
 * calls at 1 and 32 in flight on connections of their own: a count that,
 * unlike the latencies, the host's noise does not move.
 *
 * usage: transport_bench [-o OUTDIR] [-r ROUNDS] [-d MS] [-S SERVER.so]
 *                        [-l LEVEL]... [-n] [PLUGIN.so ...]
 *   (default: every .so in $PM_BUILD/plugins, OUTDIR $PM_BUILD/bench;
 *   -S serves every plugin's client with that one plugin's server, to
 *   tell client-side from server-side costs; -l runs only that level of
 *   calls in flight, without the latency rounds, and -n leaves the
 *   baseline out, for profiling one plugin with perf or strace)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loader.h"
#include "log.h"
#include "net.h"

#define SEC 1000000000LL
#define MAX_T 8			/* transports incl. the baseline */
#define REQ_LEN 16
#define REP_LEN PM_PAGE_SIZE
#define LAT_CALLS 4000		/* per round, 1 in flight */
#define WARM_CALLS 300
#define MAX_SAMPLES 200000	/* per measurement, over all threads */

static const int levels[] = { 1, 8, 32, 128 };
#define NLEVELS ((int)(sizeof(levels) / sizeof(levels[0])))

/* --- one transport under test --------------------------------------------- */

struct tr {
	char name[64];
	char path[PATH_MAX];
	bool baseline;
	bool usable;
	char why[256];
	pid_t pid;		/* server process */
	int ctl;		/* write end: closing it stops the server */
	char ep[PM_ENDPOINT_MAX];
	struct pm_plugin pl;	/* client side */
	struct pm_tconn *conn;
	struct sockaddr_storage ss;	/* baseline */
	socklen_t sslen;

	/* results */
	double *lat;		/* 1-in-flight samples, us */
	size_t nlat;
	double tput[NLEVELS][16];	/* calls/s per round */
	int nt[NLEVELS];
	double *lv[NLEVELS];	/* latency samples per level, us */
	size_t nlv[NLEVELS];
	size_t lv_cap;
	long errors;
	int first_err;
	/* io_uring_enter per call at 1 and 32 in flight, from the plugin's
	 * own counters (its disconnect's debug line); < 0: not counted. */
	double enters[2];
	double others[2];
};

static struct tr trs[MAX_T];
static int ntr;
static const char *server_so;	/* -S */
static bool only_level[NLEVELS];	/* -l: run only these levels */
static bool some_level;
static bool no_latency;		/* -l given: skip the latency rounds */
static bool no_baseline;	/* -n: profiling a plugin alone */

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), dcmp);
	return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0;
}

/* --- servers (child processes) -------------------------------------------- */

static uint8_t page[REP_LEN];

struct srv_ctx {
	struct pm_plugin *pl;
};

static void srv_on_request(void *arg, const struct pm_request *rq)
{
	struct srv_ctx *s = arg;
	struct pm_msg rep = { .payload = page, .payload_len = REP_LEN };

	s->pl->ops->reply(s->pl->ctx, rq->conn_id, rq->req_id, 0, &rep);
}

/* Block until the parent closes the control pipe (or dies). */
static void wait_parent(int ctl)
{
	struct pollfd p = { .fd = ctl, .events = POLLIN };
	char c;

	for (;;) {
		if (poll(&p, 1, 1000) > 0 && read(ctl, &c, 1) <= 0)
			return;
		if (getppid() == 1)
			return;
	}
}

static void say(int fd, const char *s)
{
	size_t n = strlen(s);

	if (write(fd, s, n) != (ssize_t)n)
		_exit(3);
}

static int plugin_server(const char *path, const char *name, int out,
			 int ctl)
{
	struct pm_plugin pl;
	struct srv_ctx s = { &pl };
	struct pm_listener l = { srv_on_request, NULL, &s };
	char ep[PM_ENDPOINT_MAX + 8], msg[512];
	int r;

	memset(&pl, 0, sizeof(pl));
	r = loader_open_path(&pl, path, name, NULL, 1);
	if (r) {
		snprintf(msg, sizeof(msg), "ERR %s\n", pl.why);
		say(out, msg);
		return 1;
	}
	loader_set_string(&pl, "listen", "127.0.0.1:0");
	r = pl.ops->init(&pl.host, &pl.ctx);
	if (!r)
		r = pl.ops->listen(pl.ctx, &l);
	if (!r)
		r = pl.ops->endpoint(pl.ctx, ep, PM_ENDPOINT_MAX);
	if (r) {
		snprintf(msg, sizeof(msg), "ERR init/listen: %s\n",
			 strerror(-r));
		say(out, msg);
		loader_close(&pl);
		return 1;
	}
	snprintf(msg, sizeof(msg), "OK %s\n", ep);
	say(out, msg);
	wait_parent(ctl);
	loader_close(&pl);
	return 0;
}

/* Baseline server: one blocking thread per connection, read 16, write 4K. */
static void *base_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint8_t req[REQ_LEN];

	for (;;) {
		if (pm_net_read_all(fd, req, REQ_LEN, PM_NET_FOREVER) < 0)
			break;
		if (send(fd, page, REP_LEN, MSG_NOSIGNAL) != REP_LEN)
			break;
	}
	close(fd);
	return NULL;
}

static void *base_accept(void *arg)
{
	int lfd = (int)(intptr_t)arg, fd, fl;
	pthread_attr_t a;
	pthread_t th;

	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 256 * 1024);
	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;
		}
		/* Blocking I/O: the plainest possible request/response. */
		fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
		pm_net_rpc_tune(fd);
		if (pthread_create(&th, &a, base_conn, (void *)(intptr_t)fd))
			close(fd);
	}
	return NULL;
}

static int base_server(int out, int ctl)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char err[PM_ENDPOINT_MAX + 128], ep[PM_ENDPOINT_MAX], msg[512];
	pthread_t th;
	int lfd = -1, fl;

	pm_net_parse("127.0.0.1:0", &ss, &sl, err, sizeof(err));
	if (pm_net_listen((struct sockaddr *)&ss, sl, 256, &lfd) < 0) {
		say(out, "ERR baseline listen failed\n");
		return 1;
	}
	fl = fcntl(lfd, F_GETFL);
	fcntl(lfd, F_SETFL, fl & ~O_NONBLOCK);
	sl = sizeof(ss);
	getsockname(lfd, (struct sockaddr *)&ss, &sl);
	pm_net_format((struct sockaddr *)&ss, ep, sizeof(ep));
	pthread_create(&th, NULL, base_accept, (void *)(intptr_t)lfd);
	snprintf(msg, sizeof(msg), "OK %s\n", ep);
	say(out, msg);
	wait_parent(ctl);
	return 0;
}

/* Fork the server of t; read its "OK endpoint" line (5 s at most). */
static int start_server(struct tr *t)
{
	int outp[2], ctlp[2], r;
	struct pollfd p;
	char line[600];
	ssize_t n;
	size_t got = 0;
	int64_t dl = pm_now_ns() + 5 * SEC;

	if (pipe2(outp, O_CLOEXEC) || pipe2(ctlp, O_CLOEXEC))
		return -errno;
	fflush(NULL);
	t->pid = fork();
	if (t->pid < 0)
		return -errno;
	if (t->pid == 0) {
		close(outp[0]);
		close(ctlp[1]);
		for (int i = 0; i < ntr; i++)
			if (trs[i].ctl >= 0)
				close(trs[i].ctl);
		if (t->baseline)
			r = base_server(outp[1], ctlp[0]);
		else if (server_so)
			r = plugin_server(server_so, "server", outp[1],
					  ctlp[0]);
		else
			r = plugin_server(t->path, t->name, outp[1], ctlp[0]);
		_exit(r);
	}
	close(outp[1]);
	close(ctlp[0]);
	t->ctl = ctlp[1];
	for (;;) {
		int64_t left = (dl - pm_now_ns()) / 1000000;

		p = (struct pollfd){ .fd = outp[0], .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			snprintf(t->why, sizeof(t->why),
				 "server did not start within 5 s");
			break;
		}
		n = read(outp[0], line + got, sizeof(line) - 1 - got);
		if (n <= 0) {
			snprintf(t->why, sizeof(t->why),
				 "server exited before listening");
			break;
		}
		got += (size_t)n;
		line[got] = '\0';
		if (strchr(line, '\n'))
			break;
	}
	close(outp[0]);
	if (strncmp(line, "OK ", 3) || !strchr(line, '\n')) {
		if (!strncmp(line, "ERR ", 4) && strchr(line, '\n')) {
			*strchr(line, '\n') = '\0';
			snprintf(t->why, sizeof(t->why), "%.255s", line + 4);
		}
		return -EIO;
	}
	*strchr(line, '\n') = '\0';
	snprintf(t->ep, sizeof(t->ep), "%.255s", line + 3);
	return 0;
}

static void stop_server(struct tr *t)
{
	int64_t dl = pm_now_ns() + 5 * SEC;
	int st;

	if (t->ctl >= 0)
		close(t->ctl);
	t->ctl = -1;
	if (t->pid <= 0)
		return;
	while (waitpid(t->pid, &st, WNOHANG) == 0) {
		if (pm_now_ns() > dl) {
			fprintf(stderr, "%s server did not exit: killing it\n",
				t->name);
			kill(t->pid, SIGKILL);
			waitpid(t->pid, &st, 0);
			break;
		}
		usleep(2000);	/* polling a child's exit, bounded */
	}
	t->pid = 0;
}

/* --- client side ---------------------------------------------------------- */

struct chan {
	struct tr *t;
	int fd;			/* baseline: own connection */
};

static int chan_open(struct chan *ch, struct tr *t)
{
	int r, fl;

	ch->t = t;
	ch->fd = -1;
	if (!t->baseline)
		return 0;
	r = pm_net_dial((struct sockaddr *)&t->ss, t->sslen,
			pm_now_ns() + 5 * SEC, -1, &ch->fd);
	if (r)
		return r;
	fl = fcntl(ch->fd, F_GETFL);
	fcntl(ch->fd, F_SETFL, fl & ~O_NONBLOCK);
	return 0;
}

static void chan_close(struct chan *ch)
{
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
}

static int chan_call(struct chan *ch, uint8_t *req, uint8_t *rep)
{
	struct pm_msg q = { .msg = req, .msg_len = REQ_LEN };
	struct pm_msg a = { .payload = rep, .payload_cap = REP_LEN };
	ssize_t n;
	size_t got = 0;
	int r;

	if (ch->t->baseline) {
		if (send(ch->fd, req, REQ_LEN, MSG_NOSIGNAL) != REQ_LEN)
			return -errno;
		while (got < REP_LEN) {
			n = recv(ch->fd, rep + got, REP_LEN - got, 0);
			if (n <= 0)
				return n ? -errno : -ECONNRESET;
			got += (size_t)n;
		}
		return 0;
	}
	r = ch->t->pl.ops->call(ch->t->conn, &q, &a, pm_now_ns() + 5 * SEC);
	if (!r && a.payload_len != REP_LEN)
		r = -EBADMSG;
	return r;
}

/* --- measurements ------------------------------------------------------ */

struct worker {
	struct chan ch;
	pthread_barrier_t *bar;
	volatile int *stop;
	long calls;
	long errors;
	int first_err;
	double *lat;
	size_t nlat, cap;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t req[REQ_LEN] = "pagemesh-bench!", rep[REP_LEN];
	int64_t t0;
	int r;

	pthread_barrier_wait(w->bar);
	while (!__atomic_load_n(w->stop, __ATOMIC_RELAXED)) {
		t0 = pm_now_ns();
		r = chan_call(&w->ch, req, rep);
		if (r) {
			if (!w->errors++)
				w->first_err = r;
			if (w->errors > 100)
				break;
			continue;
		}
		if (w->nlat < w->cap)
			w->lat[w->nlat++] = (double)(pm_now_ns() - t0) / 1000.0;
		w->calls++;
	}
	return NULL;
}

/* calls/s of t with n threads for dur_ns; samples go to t->lv[li]. */
static int run_level(struct tr *t, int li, int64_t dur_ns)
{
	int n = levels[li], i, stop = 0, r = 0;
	struct worker *w = calloc((size_t)n, sizeof(*w));
	pthread_t *th = calloc((size_t)n, sizeof(*th));
	pthread_barrier_t bar;
	pthread_attr_t a;
	size_t cap = MAX_SAMPLES / (size_t)n;
	int64_t t0, t1;
	long total = 0;

	if (!w || !th)
		return -ENOMEM;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 256 * 1024);
	pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
	for (i = 0; i < n; i++) {
		w[i].bar = &bar;
		w[i].stop = &stop;
		w[i].cap = cap;
		w[i].lat = malloc(cap * sizeof(double));
		r = chan_open(&w[i].ch, t);
		if (r || !w[i].lat) {
			fprintf(stderr, "%s: cannot open channel: %s\n",
				t->name, strerror(r ? -r : ENOMEM));
			exit(1);
		}
		if (pthread_create(&th[i], &a, worker_main, &w[i])) {
			fprintf(stderr, "pthread_create failed\n");
			exit(1);
		}
	}
	pthread_barrier_wait(&bar);
	t0 = pm_now_ns();
	{
		struct timespec ts = { dur_ns / SEC, dur_ns % SEC };

		/* The measurement window itself, not a synchronisation. */
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	t1 = pm_now_ns();
	for (i = 0; i < n; i++) {
		total += w[i].calls;
		if (w[i].errors) {
			if (!t->errors)
				t->first_err = w[i].first_err;
			t->errors += w[i].errors;
		}
		if (t->nlv[li] + w[i].nlat <= t->lv_cap) {
			memcpy(t->lv[li] + t->nlv[li], w[i].lat,
			       w[i].nlat * sizeof(double));
			t->nlv[li] += w[i].nlat;
		}
		free(w[i].lat);
		chan_close(&w[i].ch);
	}
	t->tput[li][t->nt[li]++] = (double)total * 1e9 / (double)(t1 - t0);
	pthread_barrier_destroy(&bar);
	free(w);
	free(th);
	return 0;
}

/* count sequential calls at 1 in flight, every latency kept. */
static void run_latency(struct tr *t, int count, bool keep)
{
	uint8_t req[REQ_LEN] = "pagemesh-bench!", rep[REP_LEN];
	struct chan ch;
	int64_t t0;
	int i, r;

	if (chan_open(&ch, t)) {
		t->errors++;
		return;
	}
	for (i = 0; i < count; i++) {
		t0 = pm_now_ns();
		r = chan_call(&ch, req, rep);
		if (r) {
			if (!t->errors++)
				t->first_err = r;
			continue;
		}
		if (keep)
			t->lat[t->nlat++] = (double)(pm_now_ns() - t0) / 1000.0;
	}
	chan_close(&ch);
}

/*
 * System calls per call, counted by the plugin itself: a plugin that
 * counts them logs, at debug level, when a connection is disconnected,
 * "disconnect EP: N calls, M io_uring_enter, K other system calls ...".
 * The count does not depend on the machine's speed or noise the way
 * latencies do (io_uring-tcp's design is one io_uring_enter per call).
 */
#define COUNT_CALLS 2000	/* per thread */

static struct {
	bool on;
	bool got;
	unsigned long long calls, enters, others;
} cnt_line;

static void bench_log(void *arg, int level, const char *msg)
{
	const char *p = strstr(msg, "disconnect ");

	(void)arg;
	/* "transport NAME: disconnect HOST:PORT: N calls, ..." */
	if (cnt_line.on && p && (p = strstr(p, ": ")) &&
	    sscanf(p + 2, "%llu calls, %llu io_uring_enter, %llu other",
		   &cnt_line.calls, &cnt_line.enters, &cnt_line.others) == 3)
		cnt_line.got = true;
	if (level <= PM_LOG_WARN)
		fprintf(stderr, "%s\n", msg);
}

struct cnt_worker {
	struct tr *t;
	pthread_barrier_t *bar;
	long errors;
};

static void *cnt_main(void *arg)
{
	struct cnt_worker *w = arg;
	uint8_t req[REQ_LEN] = "pagemesh-bench!", rep[REP_LEN];
	struct chan ch = { w->t, -1 };

	pthread_barrier_wait(w->bar);
	for (int k = 0; k < COUNT_CALLS; k++)
		if (chan_call(&ch, req, rep))
			w->errors++;
	return NULL;
}

/* On a connection of its own, nthreads x COUNT_CALLS calls; the plugin's
 * counts per call into t->enters[k], t->others[k] (-1: none logged). */
static void count_syscalls(struct tr *t, int k, int nthreads)
{
	struct cnt_worker w[32];
	pthread_t th[32];
	pthread_barrier_t bar;
	struct pm_tconn *keep = t->conn;
	int i, n = nthreads < 32 ? nthreads : 32;

	t->enters[k] = t->others[k] = -1;
	if (t->baseline || t->pl.ops->connect(t->pl.ctx, t->ep,
					      pm_now_ns() + 5 * SEC,
					      &t->conn)) {
		t->conn = keep;
		return;
	}
	/* 1 in flight on this thread, as the latency rounds; more on
	 * threads of their own (strace -ff tells them apart). */
	pthread_barrier_init(&bar, NULL, (unsigned)n);
	for (i = 0; i < n; i++) {
		w[i] = (struct cnt_worker){ t, &bar, 0 };
		if (n > 1 && pthread_create(&th[i], NULL, cnt_main, &w[i])) {
			fprintf(stderr, "pthread_create failed\n");
			exit(1);
		}
	}
	if (n == 1)
		cnt_main(&w[0]);
	for (i = 0; i < n && n > 1; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	for (i = 0; i < n; i++)
		t->errors += w[i].errors;
	memset(&cnt_line, 0, sizeof(cnt_line));
	cnt_line.on = true;
	pm_log_default.level = PM_LOG_DEBUG;
	t->pl.ops->disconnect(t->conn);
	pm_log_default.level = PM_LOG_WARN;
	cnt_line.on = false;
	t->conn = keep;
	if (cnt_line.got && cnt_line.calls) {
		t->enters[k] = (double)cnt_line.enters /
			       (double)cnt_line.calls;
		t->others[k] = (double)cnt_line.others /
			       (double)cnt_line.calls;
	}
}

/*
 * Hook for the fault-through-pager section: per-transport latency of a
 * remote userfaultfd fault (touch -> transport fetch -> UFFDIO_COPY). The
 * pager's own benchmark measures exactly that, once per built transport
 * (bench/fault_bench.c, `make bench` runs it as bench-fault with -t NAME);
 * a figure folded into this table would be filled in here.
 */
static void bench_fault_latency(FILE *out)
{
	fprintf(out,
		"\nfault through the pager, per transport: see bench-fault (bench/fault_bench.c -t TRANSPORT) in the same make bench\n");
}

/* --- main ----------------------------------------------------------------- */

static void add_plugin(const char *path)
{
	const char *b = strrchr(path, '/');
	struct tr *t;
	size_t n;

	if (ntr >= MAX_T)
		return;
	t = &trs[ntr++];
	memset(t, 0, sizeof(*t));
	t->ctl = -1;
	snprintf(t->path, sizeof(t->path), "%s", path);
	b = b ? b + 1 : path;
	n = strlen(b);
	if (n > 3 && !strcmp(b + n - 3, ".so"))
		n -= 3;
	snprintf(t->name, sizeof(t->name), "%.*s", (int)n, b);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct tr *find(const char *name)
{
	for (int i = 0; i < ntr; i++)
		if (trs[i].usable && !strcmp(trs[i].name, name))
			return &trs[i];
	return NULL;
}

static void write_outputs(const char *outdir, FILE *out)
{
	char path[PATH_MAX + 64];
	struct tr *tcp = find("tcp"), *base = &trs[0];
	FILE *csv, *f, *names;
	double m[MAX_T][NLEVELS];
	int i, li;

	for (i = 0; i < ntr; i++)
		for (li = 0; li < NLEVELS; li++)
			m[i][li] = trs[i].usable && trs[i].nt[li] ?
				   median(trs[i].tput[li], trs[i].nt[li]) : 0;

	snprintf(path, sizeof(path), "%s/transport.csv", outdir);
	csv = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/transport-names.gp", outdir);
	names = fopen(path, "w");
	if (!csv || !names) {
		fprintf(stderr, "cannot write into %s: %s\n", outdir,
			strerror(errno));
		exit(1);
	}
	fprintf(csv, "transport,in_flight,threads,calls_per_s,p50_us,p99_us,"
		"calls_per_s_vs_baseline,calls_per_s_vs_tcp,"
		"lat1_p50_us,lat1_p99_us,max_us\n");
	fprintf(names, "names = \"");

	fprintf(out, "\n%-14s %9s %10s %9s %9s %8s %8s\n", "transport",
		"in-flight", "calls/s", "p50 us", "p99 us", "vs base",
		"vs tcp");
	/* 1 in flight, sequential calls: the latency rows. */
	for (i = 0; i < ntr; i++) {
		struct tr *t = &trs[i];

		if (!t->usable)
			continue;
		qsort(t->lat, t->nlat, sizeof(double), dcmp);
	}
	for (i = 0; i < ntr; i++) {
		struct tr *t = &trs[i];
		double p50, p99, b50 = pct(base->lat, base->nlat, 0.5),
			      t50 = tcp ? pct(tcp->lat, tcp->nlat, 0.5) : 0;
		char rts[16] = "-";

		if (!t->usable || no_latency)
			continue;
		p50 = pct(t->lat, t->nlat, 0.5);
		p99 = pct(t->lat, t->nlat, 0.99);
		if (t50 > 0)
			snprintf(rts, sizeof(rts), "%.2f", p50 / t50);
		fprintf(out, "%-14s %9s %10.0f %9.1f %9.1f %8.2f %8s\n",
			t->name, "1 (lat)", p50 > 0 ? 1e6 / p50 : 0, p50, p99,
			b50 > 0 ? p50 / b50 : 0, rts);
		fprintf(names, "%s%s", i ? " " : "", t->name);
		snprintf(path, sizeof(path), "%s/transport-lat-%.40s.dat",
			 outdir, t->name);
		f = fopen(path, "w");
		if (f) {
			/* CDF: latency, fraction of calls at or below it. */
			size_t step = t->nlat > 2000 ? t->nlat / 2000 : 1;

			for (size_t k = 0; k < t->nlat; k += step)
				fprintf(f, "%.2f %.5f\n", t->lat[k],
					(double)(k + 1) / (double)t->nlat);
			if (t->nlat)
				fprintf(f, "%.2f 1.0\n", t->lat[t->nlat - 1]);
			fclose(f);
		}
		fprintf(csv, "%s,1,1,%.0f,%.2f,%.2f,,,%.2f,%.2f,%.2f\n",
			t->name, p50 > 0 ? 1e6 / p50 : 0, p50, p99, p50, p99,
			t->nlat ? t->lat[t->nlat - 1] : 0);
	}
	if (!no_latency)
		fprintf(out, "  (latency rows: calls/s = 1/p50; ratios are p50 "
			"ratios, lower is better)\n");
	for (li = 0; li < NLEVELS; li++) {
		for (i = 0; i < ntr; i++) {
			struct tr *t = &trs[i];
			double p50, p99, rb, rt;
			char rts[16];

			if (!t->usable || !t->nt[li])
				continue;
			qsort(t->lv[li], t->nlv[li], sizeof(double), dcmp);
			p50 = pct(t->lv[li], t->nlv[li], 0.5);
			p99 = pct(t->lv[li], t->nlv[li], 0.99);
			rb = m[0][li] > 0 ? m[i][li] / m[0][li] : 0;
			rt = tcp && m[tcp - trs][li] > 0 ?
			     m[i][li] / m[tcp - trs][li] : 0;
			snprintf(rts, sizeof(rts), "%.2f", rt);
			fprintf(out, "%-14s %9d %10.0f %9.1f %9.1f %8.2f %8s\n",
				t->name, levels[li], m[i][li], p50, p99, rb,
				tcp ? rts : "-");
			fprintf(csv,
				"%s,%d,%d,%.0f,%.2f,%.2f,%.3f,%.3f,,,%.2f\n",
				t->name, levels[li], levels[li], m[i][li], p50,
				p99, rb, tcp ? rt : 0,
				t->nlv[li] ? t->lv[li][t->nlv[li] - 1] : 0);
		}
	}
	fprintf(out, "  (calls/s: median of rounds; threads = calls in "
		"flight, each calling back to back)\n");
	for (i = 0; i < ntr; i++) {
		struct tr *t = &trs[i];

		if (!t->usable || t->enters[0] < 0)
			continue;
		fprintf(out,
			"%-14s io_uring_enter per call: %.2f at 1 in flight, %.2f at 32; other system calls per call (poll, send): %.2f, %.2f\n",
			t->name, t->enters[0], t->enters[1], t->others[0],
			t->others[1]);
	}
	fprintf(out, "  (system calls per call: the calling threads', counted "
		"by the plugin over %d calls per level)\n", COUNT_CALLS);
	for (i = 0; i < ntr; i++) {
		if (!trs[i].usable)
			continue;
		snprintf(path, sizeof(path), "%s/transport-tput-%.40s.dat",
			 outdir, trs[i].name);
		f = fopen(path, "w");
		if (!f)
			continue;
		/* level, median, slowest and fastest round (sorted by
		 * median() above) */
		for (li = 0; li < NLEVELS; li++)
			if (trs[i].nt[li])
				fprintf(f, "%d %.0f %.0f %.0f\n", levels[li],
					m[i][li], trs[i].tput[li][0],
					trs[i].tput[li][trs[i].nt[li] - 1]);
		fclose(f);
	}
	fprintf(names, "\"\n");
	fclose(names);
	fclose(csv);

	/* The goal of io_uring-tcp, stated against tcp (issue 19). */
	{
		struct tr *u = find("io_uring-tcp");
		int l32 = 2;

		if (u && tcp && m[tcp - trs][l32] > 0 && tcp->nlat &&
		    u->nlat) {
			double r32 = m[u - trs][l32] / m[tcp - trs][l32];
			double r1 = pct(u->lat, u->nlat, 0.5) /
				    pct(tcp->lat, tcp->nlat, 0.5);
			double r99 = pct(u->lat, u->nlat, 0.99) /
				     pct(tcp->lat, tcp->nlat, 0.99);

			fprintf(out,
				"\nio_uring-tcp goal: at 32 calls in flight at least 1.50x tcp's calls/s: x%.2f, %s; at 1 in flight a p50 at most 0.90x tcp's: x%.2f, %s (p99 x%.2f)",
				r32, r32 >= 1.5 ? "met" : "NOT met", r1,
				r1 <= 0.9 ? "met" : "NOT met", r99);
			if (u->enters[0] >= 0)
				fprintf(out,
					"; at most 1.10 io_uring_enter per call at 1 in flight: %.2f, %s",
					u->enters[0],
					u->enters[0] <= 1.1 ? "met" : "NOT met");
			fprintf(out, "\n");
		}
	}
}

int main(int argc, char **argv)
{
	const char *b = getenv("PM_BUILD") ? getenv("PM_BUILD") : "build";
	char outdir[PATH_MAX], dir[PATH_MAX + 16];
	char *files[MAX_T];
	int rounds = 7, dur_ms = 400, opt, i, li, rd, nf = 0;
	struct utsname u;
	struct dirent *de;
	DIR *d;

	snprintf(outdir, sizeof(outdir), "%s/bench", b);
	while ((opt = getopt(argc, argv, "o:r:d:S:l:nh")) != -1) {
		switch (opt) {
		case 'o':
			snprintf(outdir, sizeof(outdir), "%s", optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'd':
			dur_ms = atoi(optarg);
			break;
		case 'S':
			server_so = optarg;
			break;
		case 'n':
			no_baseline = true;
			break;
		case 'l':
			for (li = 0; li < NLEVELS; li++)
				if (atoi(optarg) == levels[li])
					only_level[li] = some_level = true;
			no_latency = true;
			break;
		default:
			fprintf(stderr,
				"usage: %s [-o OUTDIR] [-r ROUNDS 1..16] [-d MS per round] [-S SERVER.so] [-l LEVEL]... [-n] [PLUGIN.so ...]\n",
				argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (rounds < 1 || rounds > 16 || dur_ms < 10 || dur_ms > 10000) {
		fprintf(stderr, "rounds must be 1..16 and -d 10..10000 ms\n");
		return 2;
	}
	mkdir(outdir, 0755);
	pm_log_default.level = PM_LOG_WARN;
	pm_log_default.fn = bench_log;
	signal(SIGPIPE, SIG_IGN);
	memset(page, 0xa5, sizeof(page));

	/* Baseline first: trs[0]. */
	ntr = 1;
	memset(&trs[0], 0, sizeof(trs[0]));
	strcpy(trs[0].name, "baseline");
	trs[0].baseline = true;
	trs[0].ctl = -1;
	if (optind < argc) {
		for (i = optind; i < argc; i++)
			add_plugin(argv[i]);
	} else {
		snprintf(dir, sizeof(dir), "%s/plugins", b);
		d = opendir(dir);
		if (!d) {
			fprintf(stderr, "no plugins in %s: %s\n", dir,
				strerror(errno));
			return 1;
		}
		while ((de = readdir(d)) && nf < MAX_T - 1) {
			size_t n = strlen(de->d_name);

			if (n > 3 && !strcmp(de->d_name + n - 3, ".so"))
				files[nf++] = strdup(de->d_name);
		}
		closedir(d);
		qsort(files, (size_t)nf, sizeof(*files), name_cmp);
		for (i = 0; i < nf; i++) {
			snprintf(dir, sizeof(dir), "%s/plugins/%s", b,
				 files[i]);
			add_plugin(dir);
			free(files[i]);
		}
	}

	uname(&u);
	printf("transport benchmark: %s %s, %ld CPUs online; 16 B request -> "
	       "4 KiB reply over 127.0.0.1\n", u.sysname, u.release,
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("rounds %d x %d ms per level, interleaved across transports\n",
	       rounds, dur_ms);

	/* Servers first, while this process has no threads to fork with. */
	for (i = 0; i < ntr; i++) {
		struct tr *t = &trs[i];
		char err[PM_ENDPOINT_MAX + 128];

		if (start_server(t)) {
			printf("%-14s skipped: %s\n", t->name, t->why);
			continue;
		}
		if (t->baseline) {
			if (pm_net_parse(t->ep, &t->ss, &t->sslen, err,
					 sizeof(err))) {
				printf("baseline: %s\n", err);
				continue;
			}
		} else {
			if (loader_open_path(&t->pl, t->path, t->name, NULL,
					     2)) {
				printf("%-14s skipped: %s\n", t->name,
				       t->pl.why);
				continue;
			}
			if (t->pl.ops->init(&t->pl.host, &t->pl.ctx) ||
			    t->pl.ops->connect(t->pl.ctx, t->ep,
					       pm_now_ns() + 5 * SEC,
					       &t->conn)) {
				printf("%-14s skipped: cannot connect to its "
				       "server at %s\n", t->name, t->ep);
				continue;
			}
		}
		t->lat = malloc((size_t)rounds * LAT_CALLS * sizeof(double));
		for (li = 0; li < NLEVELS; li++)
			t->lv[li] = malloc((size_t)rounds * MAX_SAMPLES *
					   sizeof(double));
		t->lv_cap = (size_t)rounds * MAX_SAMPLES;
		t->usable = true;
		printf("%-14s server at %s\n", t->name, t->ep);
	}
	if (no_baseline && trs[0].usable) {
		trs[0].usable = false;
		stop_server(&trs[0]);
	} else if (!trs[0].usable) {
		fprintf(stderr, "baseline server failed; no comparison\n");
		return 1;
	}
	fflush(stdout);

	/* Latency at 1 in flight, rounds interleaved. */
	for (i = 0; i < ntr; i++)
		if (trs[i].usable)
			run_latency(&trs[i], WARM_CALLS, false);
	for (rd = 0; rd < rounds && !no_latency; rd++)
		for (i = 0; i < ntr; i++)
			if (trs[(i + rd) % ntr].usable)
				run_latency(&trs[(i + rd) % ntr], LAT_CALLS,
					    true);
	/* calls/s per level; the order rotates each round. */
	for (li = 0; li < NLEVELS; li++)
		for (rd = 0; rd < rounds && (!some_level || only_level[li]);
		     rd++)
			for (i = 0; i < ntr; i++)
				if (trs[(i + rd) % ntr].usable)
					run_level(&trs[(i + rd) % ntr], li,
						  (int64_t)dur_ms * 1000000);

	/* System calls per call, on connections of their own. */
	for (i = 0; i < ntr; i++) {
		trs[i].enters[0] = trs[i].enters[1] = -1;
		if (trs[i].usable && !trs[i].baseline) {
			count_syscalls(&trs[i], 0, 1);
			/* Only a plugin that counts is worth more calls. */
			if (trs[i].enters[0] >= 0)
				count_syscalls(&trs[i], 1, 32);
		}
	}

	write_outputs(outdir, stdout);
	for (i = 0; i < ntr; i++) {
		if (trs[i].errors)
			printf("%s: %ld failed calls (first: %s)\n",
			       trs[i].name, trs[i].errors,
			       strerror(-trs[i].first_err));
	}
	bench_fault_latency(stdout);
	printf("\ncsv: %s/transport.csv\n", outdir);

	for (i = 0; i < ntr; i++) {
		struct tr *t = &trs[i];

		if (t->conn)
			t->pl.ops->disconnect(t->conn);
		if (t->pl.dl)
			loader_close(&t->pl);
		stop_server(t);
		free(t->lat);
		for (li = 0; li < NLEVELS; li++)
			free(t->lv[li]);
	}
	for (i = 0; i < ntr; i++)
		if (trs[i].errors)
			return 1;
	return 0;
}
