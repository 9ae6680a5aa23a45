// SPDX-License-Identifier: MIT
/*
 * Remote fault benchmark: what an application thread waits for when it
 * touches a page whose data lives on another node, through pagemesh, next
 * to the naive design measured in the same run: one handler thread that
 * per fault sends a 16-byte request over loopback TCP to a server process,
 * receives 4 KiB and does UFFDIO_COPY. The server keeps the pages in its
 * memory and sends the one asked for; before each round it writes them,
 * as the pagemesh home writes its own (a server sending one hot buffer
 * never touches the memory a page server reads, which spared it ~5 us of
 * CPU a request on these VMs). Rounds of both alternate so the machine's
 * noise hits both alike; only the ratios mean anything.
 *
 *   fault_bench [-p] [-z] [-n FAULTS] [-r ROUNDS] [-t TRANSPORT] [-o DIR]
 *   fault_bench -s ...  scans over a working set 4x pager.local_limit
 *
 *   -p  each side on its own CPU, as on two machines (see pin_side)
 *
 * Cases: remote read fault (page written by its home, data travels) and
 * remote write fault (ownership moves from the home's exclusive copy),
 * with 1 and 2 faulting threads. Prints median and p99 per fault (as the
 * faulting thread sees it) and faults/s (all threads, wall clock; the
 * median round's).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pagemesh/pagemesh.h>

#include "../tests/free_port.h"

#define PAGE 4096u

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct result {
	uint64_t p50, p99;	/* ns */
	double rate;		/* faults/s */
};

/* Samples of several rounds pooled, then one median and p99; faults/s is
 * the median round's (a round the host's noise hit does not move it). */
#define MAX_ROUNDS 64
struct series {
	uint64_t *ns;
	size_t n, cap;
	double rate[MAX_ROUNDS];
	int rounds;
};

static void series_add(struct series *s, const uint64_t *ns, size_t n,
		       double rate)
{
	if (s->n + n > s->cap) {
		s->cap = (s->n + n) * 2;
		s->ns = realloc(s->ns, s->cap * sizeof(*s->ns));
		if (!s->ns) {
			perror("realloc");
			exit(1);
		}
	}
	memcpy(s->ns + s->n, ns, n * sizeof(*ns));
	s->n += n;
	if (s->rounds < MAX_ROUNDS)
		s->rate[s->rounds++] = rate;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static struct result series_result(struct series *s)
{
	struct result r = { 0 };

	if (!s->n)
		return r;
	qsort(s->ns, s->n, sizeof(*s->ns), cmp_u64);
	r.p50 = s->ns[s->n / 2];
	r.p99 = s->ns[(size_t)(s->n * 0.99)];
	qsort(s->rate, (size_t)s->rounds, sizeof(s->rate[0]), cmp_double);
	r.rate = s->rounds % 2 ? s->rate[s->rounds / 2]
			       : (s->rate[s->rounds / 2 - 1] +
				  s->rate[s->rounds / 2]) / 2;
	return r;
}

/* ---- the faulting side, shared by both designs --------------------------- */

struct toucher {
	pthread_t th;
	volatile uint8_t *base;
	size_t first, count;	/* pages */
	bool write, shuffle;
	uint64_t *ns;
	pthread_barrier_t *go;
};

static void *touch_pages(void *arg)
{
	struct toucher *t = arg;

	pthread_barrier_wait(t->go);
	for (size_t i = 0; i < t->count; i++) {
		/* Shuffled: a fixed permutation (7919 is a prime that does
		 * not divide the counts used here), so no page repeats. */
		size_t k = t->shuffle ? i * 7919 % t->count : i;
		volatile uint8_t *p = t->base + (t->first + k) * PAGE + 64;
		int64_t t0 = now_ns();

		if (t->write)
			*p = (uint8_t)i;
		else
			(void)*p;
		t->ns[i] = (uint64_t)(now_ns() - t0);
	}
	return NULL;
}

/* Touch pages [first, first+count) from nthreads threads (split evenly). */
static double run_touchers(volatile uint8_t *base, size_t first, size_t count,
			   int nthreads, bool write, bool shuffle, uint64_t *ns)
{
	struct toucher t[2];
	pthread_barrier_t go;
	int64_t t0;
	size_t per = count / nthreads;

	pthread_barrier_init(&go, NULL, nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		t[i] = (struct toucher){
			.base = base, .first = first + i * per, .count = per,
			.write = write, .shuffle = shuffle, .ns = ns + i * per,
			.go = &go,
		};
		pthread_create(&t[i].th, NULL, touch_pages, &t[i]);
	}
	t0 = now_ns();
	pthread_barrier_wait(&go);
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i].th, NULL);
	pthread_barrier_destroy(&go);
	return (double)(per * nthreads) * 1e9 / (double)(now_ns() - t0);
}

static bool split;		/* -p: each side on its own CPU */

/*
 * -p: this process (the faulting node, the naive handler, the touching
 * threads) on CPU 0, the serving processes (node 1, the naive server) on
 * CPU 1, as if on two one-CPU machines. Unpinned, the scheduler mixes both
 * sides' threads over both CPUs, and where it puts them, not what each
 * design does per fault, decides much of a row.
 */
static void pin_side(int cpu)
{
	cpu_set_t set;

	if (!split)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		perror("fault_bench -p: sched_setaffinity (needs CPUs 0 and 1)");
		exit(2);
	}
}

/* ---- naive baseline ---------------------------------------------------- */

struct naive {
	int sock;		/* to the page server */
	int uffd, stop;
	uint8_t *region;
	size_t len;
	pthread_t handler;
	pid_t server;
};

static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t r = recv(fd, p, len, 0);

		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/*
 * The page server: requests are two words. {page, 0}: send that page.
 * {first, count}: write a byte into each of count pages from first (what
 * the pagemesh home does to its pages before a round), answer one word.
 */
static void naive_server(int lfd, size_t npages)
{
	uint8_t *store = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			      -1, 0);
	uint64_t req[2];
	int one = 1, fd = accept(lfd, NULL, NULL);

	if (fd < 0 || store == MAP_FAILED)
		_exit(1);
	pin_side(1);
	madvise(store, npages * PAGE, MADV_NOHUGEPAGE);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (read_full(fd, req, sizeof(req)) == 0) {
		if (req[0] >= npages || req[1] > npages - req[0])
			break;
		if (req[1]) {
			for (uint64_t i = 0; i < req[1]; i++)
				store[(req[0] + i) * PAGE] = (uint8_t)(i + 1);
			if (send(fd, req, sizeof(req[0]), 0) !=
			    (ssize_t)sizeof(req[0]))
				break;
		} else if (send(fd, store + req[0] * PAGE, PAGE, 0) !=
			   (ssize_t)PAGE) {
			break;
		}
	}
	_exit(0);
}

/* Have the server write pages [first, first + count) of its store; only
 * between runs, when the handler has no request on the socket. */
static int naive_write(struct naive *nv, size_t first, size_t count)
{
	uint64_t req[2] = { first, count }, ack;

	if (send(nv->sock, req, sizeof(req), 0) != (ssize_t)sizeof(req) ||
	    read_full(nv->sock, &ack, sizeof(ack)))
		return -1;
	return 0;
}

static void *naive_handler(void *arg)
{
	struct naive *nv = arg;
	uint8_t page[PAGE] __attribute__((aligned(4096)));
	struct pollfd pfd[2] = {
		{ .fd = nv->uffd, .events = POLLIN },
		{ .fd = nv->stop, .events = POLLIN },
	};
	struct uffd_msg msg;

	for (;;) {
		if (poll(pfd, 2, -1) < 0 || pfd[1].revents)
			break;
		if (read(nv->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uint64_t addr = msg.arg.pagefault.address & ~(uint64_t)(PAGE - 1);
		uint64_t req[2] = { (addr - (uintptr_t)nv->region) / PAGE, 0 };

		if (send(nv->sock, req, sizeof(req), 0) != sizeof(req) ||
		    read_full(nv->sock, page, sizeof(page)))
			break;
		struct uffdio_copy cp = {
			.dst = addr, .src = (uintptr_t)page, .len = PAGE,
		};
		if (ioctl(nv->uffd, UFFDIO_COPY, &cp) && errno != EEXIST)
			break;
	}
	return NULL;
}

static int naive_start(struct naive *nv, size_t len)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	struct uffdio_api api = { .api = UFFD_API };
	int lfd, one = 1;

	memset(nv, 0, sizeof(*nv));
	nv->len = len;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&a, &al))
		return -1;
	nv->server = fork();
	if (!nv->server)
		naive_server(lfd, len / PAGE);
	close(lfd);
	nv->sock = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(nv->sock, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	setsockopt(nv->sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	nv->region = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(nv->region, len, MADV_NOHUGEPAGE);
	nv->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (nv->uffd < 0 || ioctl(nv->uffd, UFFDIO_API, &api))
		return -1;
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)nv->region, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(nv->uffd, UFFDIO_REGISTER, &reg))
		return -1;
	nv->stop = eventfd(0, 0);
	return pthread_create(&nv->handler, NULL, naive_handler, nv);
}

static void naive_stop(struct naive *nv)
{
	uint64_t one = 1;

	if (write(nv->stop, &one, sizeof(one)) != sizeof(one))
		perror("eventfd");
	pthread_join(nv->handler, NULL);
	close(nv->sock);
	waitpid(nv->server, NULL, 0);
	close(nv->uffd);
	close(nv->stop);
	munmap(nv->region, nv->len);
}

/* ---- pagemesh ------------------------------------------------------------ */

static char cfgdir[128];
static int pm_threads = 2;	/* pager.threads of the nodes (-T) */
static bool home_zero;		/* -z: the home never writes its pages */
static int write_cfg_pager(int id, int port0, int port1, const char *tr,
			   const char *mem, const char *build,
			   const char *name, const char *pager)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s%d.cfg", cfgdir, name, id);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f,
		"node = { id = %d; };\n"
		"cluster = { name = \"bench-%s\"; nodes = 2; memory = \"%s\"; };\n"
		"transports = { order = [ \"%s\" ]; dir = \"%s/plugins\";\n"
		"  %s = { listen = \"127.0.0.1:%d\"; }; };\n"
		"peers = ( { id = %d; %s = \"127.0.0.1:%d\"; } );\n"
		"pager = { threads = %d; %s };\n",
		id, name, mem, tr, build, tr, id ? port1 : port0, 1 - id, tr,
		id ? port0 : port1, pm_threads, id ? "" : pager);
	fclose(f);
	return 0;
}

static int write_cfg(int id, int port0, int port1, const char *tr,
		     const char *mem, const char *build)
{
	return write_cfg_pager(id, port0, port1, tr, mem, build, "node", "");
}

/*
 * Node 1 homes the upper half and writes every page of it before each
 * round, so each of node 0's touches is a remote fault that carries data.
 * The two nodes step through rounds with barriers.
 */
/* The serving node of a benchmark cluster (a forked child). */
static struct pm_node *node1_start(const char *cfg, uint8_t **mem,
				   size_t *len)
{
	char err[512];
	struct pm_node *n = pm_node_start(cfg, err, sizeof(err));

	if (!n) {
		fprintf(stderr, "bench node 1: %s\n", err);
		_exit(1);
	}
	*mem = pm_node_region(n, len);
	return n;
}

static void node1_main(const char *cfg, int rounds, size_t npages)
{
	uint8_t *mem;
	size_t len;
	struct pm_node *n;

	pin_side(1);
	n = node1_start(cfg, &mem, &len);
	for (int r = 0; r < rounds; r++) {
		size_t base = len / PAGE / 2 + (size_t)r * npages;

		for (size_t i = 0; i < npages && !home_zero; i++)
			mem[(base + i) * PAGE] = (uint8_t)(i + 1);
		pm_node_barrier(n, 60000);	/* written */
		pm_node_barrier(n, 60000);	/* node 0 done */
	}
	pm_node_stop(n);
	_exit(0);
}

/* ---- scans over a working set larger than the local limit --------------- */

#define SCAN_PAGES 16384	/* 64 MiB working set, homed on node 1 */

/* Node 1 of a scan cluster: writes its half once, then serves. */
static void scan_node1(const char *cfg)
{
	uint8_t *mem;
	size_t len;
	struct pm_node *n;

	pin_side(1);
	n = node1_start(cfg, &mem, &len);
	for (size_t i = 0; i < SCAN_PAGES; i++)
		mem[len / 2 + i * PAGE] = (uint8_t)(i + 1);
	/* Until node 0 is done with every scan (under make's timeout). */
	pm_node_barrier(n, 290000);
	pm_node_stop(n);
	_exit(0);
}

/* SCAN_SETTLED is the hot-set traffic again, HOT_PASSES passes with fresh
 * randomness right after SCAN_HOT: the cache has left the random scan
 * behind, so it shows the policy on a working set it has settled on
 * (SCAN_HOT shows how fast it gets there). */
enum { SCAN_SEQ, SCAN_RANDOM, SCAN_HOT, SCAN_SETTLED, SCAN_MODES };
#define HOT_PASSES 3

/* Touch count pages of base: in order, uniformly at random, or 9 in 10
 * in a hot 3/16 of the pages (3/4 of the local limit) and the rest
 * anywhere: a working set that fits the limit in traffic that does not,
 * where the replacement policy shows. Per-touch latency into ns, returns
 * touches/s. */
static double scan(volatile uint8_t *base, size_t pages, size_t count,
		   int mode, int seed, uint64_t *ns)
{
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(2 * seed - 1);
	int64_t t0 = now_ns();

	for (size_t i = 0; i < count; i++) {
		size_t p;
		int64_t a;

		if (mode != SCAN_SEQ) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p = (x >> 8) % pages;
			if (mode == SCAN_HOT && x % 10 < 9)
				p = (x >> 8) % (pages * 3 / 16);
		} else {
			p = i % pages;
		}
		a = now_ns();
		(void)base[p * PAGE + 8];
		ns[i] = (uint64_t)(now_ns() - a);
	}
	return (double)count * 1e9 / (double)(now_ns() - t0);
}

#define SCAN_DESIGNS 4	/* pagemesh clusters: see pagers[] */

static int scan_passes(int mode)
{
	return mode == SCAN_SETTLED ? HOT_PASSES : 1;
}

/* One pass of mode over the naive baseline and every cluster. */
static void scan_pass(struct naive *nv, struct pm_node **n, uint8_t **region,
		      int m, int pass, uint64_t *ns,
		      struct series sr[][SCAN_MODES],
		      uint64_t faults[][SCAN_MODES])
{
	const size_t count = SCAN_PAGES;
	int mode = m == SCAN_SETTLED ? SCAN_HOT : m;
	int seed = m == SCAN_SETTLED ? 2 + pass : 1;
	double rate;

	/* Naive: every page faults again each pass. */
	madvise(nv->region, nv->len, MADV_DONTNEED);
	rate = scan(nv->region, SCAN_PAGES, count, mode, seed, ns);
	series_add(&sr[0][m], ns, count, rate);
	for (int k = 0; k < SCAN_DESIGNS; k++) {
		struct pm_stats a, b;

		pm_node_stats(n[k], &a);
		rate = scan(region[k], SCAN_PAGES, count, mode, seed, ns);
		pm_node_stats(n[k], &b);
		series_add(&sr[1 + k][m], ns, count, rate);
		faults[k][m] += b.faults_total - a.faults_total;
	}
}

static int scan_main(const char *tr, const char *build, int rounds)
{
	const size_t count = SCAN_PAGES;
	const char *pagers[SCAN_DESIGNS] = {
		"local_limit = \"16M\"; prefetch = 0;",
		"local_limit = \"16M\"; prefetch = 15;",
		"local_limit = \"16M\"; prefetch = 0; policy = \"fifo\";",
		"local_limit = \"16M\"; prefetch = 0; policy = \"clock\";",
	};
	const char *names[1 + SCAN_DESIGNS] = {
		"naive (no limit)", "pagemesh prefetch=0",
		"pagemesh prefetch=15", "pm prefetch=0 fifo",
		"pm prefetch=0 clock",
	};
	const char *modes[SCAN_MODES] = { "sequential", "random", "hot-set",
					  "hot-settld" };
	struct pm_node *n[SCAN_DESIGNS];
	uint8_t *region[SCAN_DESIGNS];
	pid_t n1[SCAN_DESIGNS];
	char mem[16], err[512];
	uint64_t *ns = calloc(count, sizeof(*ns));
	/* [0] naive, [1 + k] pagemesh cluster k; per scan mode */
	struct series sr[1 + SCAN_DESIGNS][SCAN_MODES] = { { { 0 } } };
	uint64_t faults[SCAN_DESIGNS][SCAN_MODES] = { { 0 } };
	struct naive nv;
	size_t len;

	snprintf(mem, sizeof(mem), "%dM", 2 * SCAN_PAGES * PAGE >> 20);
	for (int k = 0; k < SCAN_DESIGNS; k++) {
		char name[16], cfg0[256], cfg1[256];
		int p0 = tu_free_port(), p1 = tu_free_port();

		snprintf(name, sizeof(name), "scan%d-", k);
		if (write_cfg_pager(0, p0, p1, tr, mem, build, name, pagers[k]) ||
		    write_cfg_pager(1, p0, p1, tr, mem, build, name, ""))
			return 1;
		snprintf(cfg0, sizeof(cfg0), "%s/%s0.cfg", cfgdir, name);
		snprintf(cfg1, sizeof(cfg1), "%s/%s1.cfg", cfgdir, name);
		n1[k] = fork();
		if (!n1[k])
			scan_node1(cfg1);
		n[k] = pm_node_start(cfg0, err, sizeof(err));
		if (!n[k]) {
			fprintf(stderr, "fault_bench: %s\n", err);
			return 1;
		}
		region[k] = pm_node_region(n[k], &len);
		region[k] += len / 2;
	}
	if (naive_start(&nv, SCAN_PAGES * (size_t)PAGE) ||
	    naive_write(&nv, 0, SCAN_PAGES)) {
		perror("naive baseline");
		return 1;
	}
	for (int r = 0; r < rounds; r++)
		for (int m = 0; m < SCAN_MODES; m++)
			for (int p = 0; p < scan_passes(m); p++)
				scan_pass(&nv, n, region, m, p, ns, sr, faults);
	naive_stop(&nv);
	printf("\nscans of a 64 MiB working set homed on node 1, node 0 keeping at most 16 MiB (local_limit), over %s%s; passes of %zu touches, %d rounds; faults: per pass\n",
	       tr, split ? ", each side on its own CPU (-p)" : "", count,
	       rounds);
	printf("%-10s %-22s | %10s | %8s %8s | %10s | %8s\n", "scan", "design",
	       "touches/s", "p50 us", "p99 us", "vs naive", "faults");
	for (int m = 0; m < SCAN_MODES; m++) {
		struct result base = series_result(&sr[0][m]);

		for (int d = 0; d < 1 + SCAN_DESIGNS; d++) {
			struct result x = d ? series_result(&sr[d][m]) : base;

			printf("%-10s %-22s | %10.0f | %8.1f %8.1f | %9.2fx | ",
			       modes[m], names[d], x.rate, x.p50 / 1e3,
			       x.p99 / 1e3, x.rate / base.rate);
			if (d)
				printf("%8" PRIu64 "\n",
				       faults[d - 1][m] / (uint64_t)rounds /
					       (uint64_t)scan_passes(m));
			else
				printf("%8s\n", "-");
		}
		if (m == SCAN_SEQ)
			printf("  prefetch goal: a sequential scan with prefetch at least 3x the naive faults/s: %.2fx, %s\n",
			       series_result(&sr[2][m]).rate / base.rate,
			       series_result(&sr[2][m]).rate / base.rate >= 3
				       ? "met" : "NOT met");
	}
	printf("  hot-set: 9 touches in 10 go to 12 MiB of the 64 MiB, right after the random scan; hot-settld: %d more passes of it\n"
	       "  (the working set the cache has settled on). 2Q (pager.policy default, the pagemesh rows) vs FIFO and CLOCK: fewer faults = better replacement\n",
	       HOT_PASSES);
	/* faults[0] is the default policy, faults[2] FIFO (pagers[]). */
	for (int m = SCAN_HOT; m <= SCAN_SETTLED; m++) {
		double ratio = (double)faults[0][m] / (double)faults[2][m];

		printf("  replacement goal: the default policy on %s has fewer faults than FIFO: %.0f%% of FIFO's, %s\n",
		       modes[m], 100 * ratio,
		       ratio < 1 ? "better than FIFO" : "NOT better than FIFO");
	}
	for (int k = 0; k < SCAN_DESIGNS; k++) {
		struct pm_stats st;

		pm_node_stats(n[k], &st);
		printf("%s: evictions %" PRIu64 ", writebacks %" PRIu64 ", prefetched %" PRIu64 ", remote faults %" PRIu64 ", resident %" PRIu64 " pages\n",
		       names[1 + k], st.evictions, st.writebacks,
		       st.prefetched, st.faults_remote, st.resident_pages);
		pm_node_barrier(n[k], 60000);
		pm_node_stop(n[k]);
		waitpid(n1[k], NULL, 0);
	}
	free(ns);
	return 0;
}

int main(int argc, char **argv)
{
	const char *build = getenv("PM_BUILD") ? getenv("PM_BUILD") : "build";
	const char *tr = "tcp", *outdir = NULL;
	size_t nfaults = 2000;
	int rounds = 4, c;

	bool scan_mode = false;

	while ((c = getopt(argc, argv, "n:r:t:o:psT:zh")) != -1) {
		switch (c) {
		case 'p': split = true; break;
		case 'z': home_zero = true; break;
		case 'T': pm_threads = atoi(optarg); break;
		case 's': scan_mode = true; break;
		case 'n': nfaults = strtoul(optarg, NULL, 10); break;
		case 'r': rounds = atoi(optarg); break;
		case 't': tr = optarg; break;
		case 'o': outdir = optarg; break;
		default:
			fprintf(stderr, "usage: fault_bench [-s] [-z] [-p] [-n FAULTS] [-r ROUNDS] [-t TRANSPORT] [-T THREADS] [-o DIR]\n"
				"  -s  scans over a working set 4x the local limit, prefetch off and on\n"
				"  -p  each side on its own CPU: this process (faulting node, naive\n"
				"      handler) on CPU 0, node 1 and the naive server on CPU 1\n"
				"  -z  the home never writes its pages: grants carry no data and the\n"
				"      home has no copy of its own to write-protect (the message path);\n"
				"      the naive server's pages stay unwritten too\n"
				"  -T  pager.threads of the nodes (default 2)\n");
			return c == 'h' ? 0 : 2;
		}
	}
	nfaults &= ~(size_t)1;
	/* A scan's settled row adds HOT_PASSES rates a round. */
	if (nfaults < 2 || rounds < 1 || rounds > MAX_ROUNDS / HOT_PASSES) {
		fprintf(stderr, "fault_bench: -n at least 2, -r 1 to %d\n",
			MAX_ROUNDS / HOT_PASSES);
		return 2;
	}
	pin_side(0);	/* before any thread or child: they inherit it */

	/* Each round runs every case on fresh pages, naive first then
	 * pagemesh. The rows the remote-read goal is about are marked. */
	static const struct {
		const char *name;
		int threads;
		bool write, shuffle, goal;
	} cases[] = {
		{ "read", 1, false, false, true },
		{ "read", 2, false, false, true },
		{ "read-shuffled", 1, false, true, false },
		{ "write", 1, true, false, false },
		{ "write", 2, true, false, false },
	};
	const int ncase = sizeof(cases) / sizeof(cases[0]);
	const size_t per_round = nfaults * ncase;
	const size_t half = per_round * (size_t)rounds;
	char mem[32];

	snprintf(mem, sizeof(mem), "%zuM",
		 ((2 * half * PAGE) >> 20) + 4);
	snprintf(cfgdir, sizeof(cfgdir), "/tmp/pm-bench-XXXXXX");
	if (!mkdtemp(cfgdir))
		return 1;
	if (scan_mode) {
		char cmd[200];
		int r = scan_main(tr, build, rounds);

		snprintf(cmd, sizeof(cmd), "rm -rf %s", cfgdir);
		if (system(cmd))
			fprintf(stderr, "fault_bench: could not remove %s\n",
				cfgdir);
		return r;
	}
	int p0 = tu_free_port(), p1 = tu_free_port();

	if (write_cfg(0, p0, p1, tr, mem, build) ||
	    write_cfg(1, p0, p1, tr, mem, build))
		return 1;
	char cfg0[256], cfg1[256], err[512];

	snprintf(cfg0, sizeof(cfg0), "%s/node0.cfg", cfgdir);
	snprintf(cfg1, sizeof(cfg1), "%s/node1.cfg", cfgdir);
	pid_t n1 = fork();

	if (!n1)
		node1_main(cfg1, rounds, per_round);
	struct pm_node *n = pm_node_start(cfg0, err, sizeof(err));

	if (!n) {
		fprintf(stderr, "fault_bench: %s\n", err);
		kill(n1, SIGKILL);
		return 1;
	}
	size_t len;
	uint8_t *region = pm_node_region(n, &len);
	uint64_t *ns = calloc(nfaults, sizeof(*ns));
	struct series naive[8] = { 0 }, pm[8] = { 0 };
	struct naive nv;

	/* The naive handler only ever installs data, so its "write" is the
	 * same fault as its read: it has no ownership to move. */
	if (naive_start(&nv, per_round * (size_t)rounds * PAGE)) {
		perror("naive baseline");
		return 1;
	}
	for (int r = 0; r < rounds; r++) {
		size_t base = len / PAGE / 2 + (size_t)r * per_round;

		/* Both servers write this round's pages (-z: neither). */
		if (!home_zero &&
		    naive_write(&nv, (size_t)r * per_round, per_round)) {
			perror("naive baseline");
			return 1;
		}
		pm_node_barrier(n, 60000);	/* node 1 wrote its pages */
		for (int k = 0; k < ncase; k++) {
			int th = cases[k].threads;
			bool wr = cases[k].write, sh = cases[k].shuffle;
			double rate;

			rate = run_touchers(nv.region,
					    (size_t)r * per_round + k * nfaults,
					    nfaults, th, wr, sh, ns);
			series_add(&naive[k], ns, nfaults, rate);
			rate = run_touchers(region, base + k * nfaults, nfaults,
					    th, wr, sh, ns);
			series_add(&pm[k], ns, nfaults, rate);
		}
		pm_node_barrier(n, 60000);
	}
	naive_stop(&nv);

	struct pm_stats st;

	pm_node_stats(n, &st);
	FILE *csv = NULL;

	if (outdir) {
		char path[512];

		snprintf(path, sizeof(path), "%s/fault.csv", outdir);
		csv = fopen(path, "w");
		if (csv)
			fprintf(csv, "case,threads,design,p50_us,p99_us,faults_per_s\n");
	}
	printf("\nremote faults over %s, loopback%s, %zu faults x %d rounds per row (median and p99 as the faulting thread sees them)\n%s\n",
	       tr, split ? ", each side on its own CPU (-p)" : "", nfaults,
	       rounds,
	       home_zero ? "pages never written: no data travels, the home has nothing to write-protect"
			 : "pages written by their home: a read write-protects the home's copy, a write recalls it");
	printf("%-15s %7s | %-24s | %-24s | %-18s\n", "fault", "threads",
	       "naive p50/p99 us  f/s", "pagemesh p50/p99 us  f/s",
	       "pm/naive p50  f/s");
	struct result a[8], b[8];

	for (int k = 0; k < ncase; k++) {
		const char *name = cases[k].name;
		int th = cases[k].threads;

		a[k] = series_result(&naive[k]);
		b[k] = series_result(&pm[k]);
		printf("%s %-13s %7d | %6.1f %6.1f %9.0f | %6.1f %6.1f %9.0f | %6.2fx %8.2fx\n",
		       cases[k].goal ? "*" : " ", name, th, a[k].p50 / 1e3,
		       a[k].p99 / 1e3, a[k].rate, b[k].p50 / 1e3,
		       b[k].p99 / 1e3, b[k].rate,
		       (double)b[k].p50 / (double)a[k].p50,
		       b[k].rate / a[k].rate);
		if (csv) {
			fprintf(csv, "%s,%d,naive,%.2f,%.2f,%.0f\n", name,
				th, a[k].p50 / 1e3, a[k].p99 / 1e3, a[k].rate);
			fprintf(csv, "%s,%d,pagemesh-%s,%.2f,%.2f,%.0f\n",
				name, th, tr, b[k].p50 / 1e3, b[k].p99 / 1e3,
				b[k].rate);
		}
	}
	printf("* remote read fault goal: pagemesh's p50 at most 1.25x the naive p50, and faults/s at least the naive's:\n");
	for (int k = 0; k < ncase; k++) {
		double p = (double)b[k].p50 / (double)a[k].p50;
		double f = b[k].rate / a[k].rate;

		if (cases[k].goal)
			printf("  %s, %d thread(s): p50 %.2fx, faults/s %.2fx: %s\n",
			       cases[k].name, cases[k].threads, p, f,
			       p <= 1.25 && f >= 1.0 ? "met" : "NOT met");
	}
	printf("  (read-shuffled: the same kind of pages out of order, so the home cannot write-protect ahead of the reader)\n");
	printf("node 0 counters: faults remote %" PRIu64 " zero %" PRIu64
	       " wp %" PRIu64 ", pages received %" PRIu64 "\n",
	       st.faults_remote, st.faults_zero, st.faults_wp,
	       st.pages_received);
	if (csv)
		fclose(csv);
	pm_node_stop(n);
	waitpid(n1, NULL, 0);
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", cfgdir);
	if (system(cmd))
		fprintf(stderr, "fault_bench: could not remove %s\n", cfgdir);
	return 0;
}
