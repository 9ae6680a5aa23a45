// SPDX-License-Identifier: MIT
/*
 * One node of the node-failure tests (fault_test). The last node is the
 * victim: it keeps read copies of the survivors' counters and writes pages
 * homed on itself until the test kills or stops it. The survivors count on
 * two pages homed on live nodes before and after the failure, then touch a
 * page homed on the victim and time the SIGBUS that must end that fault.
 *
 *   fault_worker CONFIG GONE_FILE TIMEOUT_MS
 *   fault_worker CONFIG restart FLAG_FILE
 *
 * The second form is for a peer restart: node 0 writes a page homed on
 * node 1 and reads another, waits for FLAG_FILE (the test restarted node 1
 * meanwhile), and touches them again and a third: its connections must be
 * re-authenticated, and each page must be lost (SIGBUS), since node 1's
 * memory died with its first run.
 *
 *   fault_worker CONFIG queue FLAG_FILE
 *
 * The third is for a home stopped with transactions queued: node 0 writes
 * QUEUE_PAGES pages homed on node 1 (a `pagemesh node`) and stays; once
 * FLAG_FILE appears (node 0 is frozen by then), nodes 2 and 3 read half of
 * them each, one thread a page (as many as their fault threads), so node
 * 1 must ask the frozen node for each: more transactions than it has
 * workers.
 *
 *   fault_worker CONFIG pause FLAG_FILE
 *
 * The fourth is for a pause shorter than cluster.failure_timeout_ms: node 2
 * takes a read-only copy of a word homed on node 0 and writes a page homed
 * on node 1, says "pauser: ready" and enters a barrier; the test freezes
 * it, then creates FLAG_FILE. Node 1 then writes the word and reads the
 * page (both must wait for the frozen node, not declare it dead), and
 * after the barrier node 2 must read the new word: no stale read, nothing
 * lost. "pause-long" is the same with a pause past the detector's timeout:
 * node 1's write goes ahead once node 2 is declared dead, and node 2 must
 * never run again (its watchdog kills it first).
 *
 * GONE_FILE appears once the test has failed the victim. A survivor prints
 * "RESULT ok ..." or "RESULT FAIL ...", then waits for SIGTERM (its pages
 * serve the other survivor until then) and exits 0 or 1.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pagemesh/pagemesh.h>

#define PAGE 4096u
#define WAIT_MS 60000

static uint8_t *mem;
static uint64_t per_home;
static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t *word(uint64_t page, unsigned idx)
{
	return (uint64_t *)(mem + page * PAGE) + idx;
}

/* Pages: counters and the rendezvous on live homes, the victim's own. */
static uint64_t pg_c0(void) { return 1; }
static uint64_t pg_c1(void) { return per_home + 1; }
static uint64_t pg_done(void) { return per_home + 2; }
static uint64_t pg_res(void) { return per_home + 3; }
static uint64_t pg_victim(int k, int nodes) { return per_home * (nodes - 1) + 10 + k; }

/* SIGBUS, or SIGSEGV where the kernel has no UFFDIO_POISON (pager.c). */
static void on_bus(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	if (bus_armed)
		siglongjmp(bus_jmp, 1);
	/* Not expecting it: die of it, as without a handler. */
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Touch p: ms until SIGBUS ended the touch, or -1 if it read *val. */
static int64_t probe_sigbus(const volatile uint8_t *p, uint8_t *val)
{
	static volatile int64_t t0;

	t0 = now_ms();
	if (!sigsetjmp(bus_jmp, 1)) {
		bus_armed = 1;
		*val = *p;
		bus_armed = 0;
		return -1;
	}
	bus_armed = 0;
	return now_ms() - t0;
}

static bool gone(const char *path)
{
	return access(path, F_OK) == 0;
}

/* The victim: readers of the counters and writer of its own pages. */
static int victim(int nodes)
{
	uint64_t i = 0;

	for (int k = 0; k < 8; k++)
		memset(mem + pg_victim(k, nodes) * PAGE, 0x5a, PAGE);
	printf("victim: ready\n");
	fflush(stdout);
	for (;;) {
		/* Shared copies here: writers must invalidate us. */
		(void)__atomic_load_n(word(pg_c0(), 0), __ATOMIC_SEQ_CST);
		(void)__atomic_load_n(word(pg_c1(), 0), __ATOMIC_SEQ_CST);
		*word(pg_victim((int)(i % 8), nodes), 1) = i;
		i++;
	}
	return 0;
}

static int survivor(int me, int nodes, const char *gone_file, int timeout_ms)
{
	uint64_t count = 0, after = 0, c0, c1, total = 0;
	int64_t end = now_ms() + WAIT_MS, bus_ms;
	uint8_t val = 0;
	int survivors = nodes - 1;
	bool ok = true;
	char why[256] = "";

	printf("survivor %d: working\n", me);
	fflush(stdout);
	/* Count until the victim is gone, then as much again after. */
	while (!gone(gone_file) || after < 300) {
		__atomic_fetch_add(word(pg_c0(), 0), 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(word(pg_c1(), 0), 1, __ATOMIC_SEQ_CST);
		count++;
		if (gone(gone_file))
			after++;
		if (now_ms() > end) {
			snprintf(why, sizeof(why), "counting did not finish in %d ms (%llu done, %llu after the failure)",
				 WAIT_MS, (unsigned long long)count,
				 (unsigned long long)after);
			ok = false;
			break;
		}
	}
	/* Publish our count; wait for every survivor's. */
	__atomic_store_n(word(pg_res(), (unsigned)me), count, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(word(pg_done(), 0), 1, __ATOMIC_SEQ_CST);
	while (ok && __atomic_load_n(word(pg_done(), 0), __ATOMIC_SEQ_CST) <
			     (uint64_t)survivors) {
		if (now_ms() > end) {
			snprintf(why, sizeof(why), "the other survivor did not finish");
			ok = false;
		}
		poll(NULL, 0, 1);
	}
	for (int i = 0; i < survivors; i++)
		total += __atomic_load_n(word(pg_res(), (unsigned)i),
					 __ATOMIC_SEQ_CST);
	c0 = __atomic_load_n(word(pg_c0(), 0), __ATOMIC_SEQ_CST);
	c1 = __atomic_load_n(word(pg_c1(), 0), __ATOMIC_SEQ_CST);
	if (ok && (c0 != total || c1 != total)) {
		snprintf(why, sizeof(why), "counters %llu and %llu, expected %llu",
			 (unsigned long long)c0, (unsigned long long)c1,
			 (unsigned long long)total);
		ok = false;
	}

	/* A page whose only copy was on the victim: SIGBUS, in time. */
	bus_ms = probe_sigbus(mem + pg_victim(me, nodes) * PAGE, &val);
	if (ok && bus_ms < 0) {
		snprintf(why, sizeof(why), "a page homed on the failed node read back 0x%02x instead of SIGBUS",
			 val);
		ok = false;
	} else if (ok && bus_ms > timeout_ms + 1000) {
		snprintf(why, sizeof(why), "SIGBUS after %lld ms, over cluster.failure_timeout_ms %d + 1000",
			 (long long)bus_ms, timeout_ms);
		ok = false;
	}
	printf("RESULT %s: survivor %d: counted %llu (%llu after the failure), counters %llu/%llu of %llu; SIGBUS on the failed node's page after %lld ms (cluster.failure_timeout_ms %d)%s%s\n",
	       ok ? "ok" : "FAIL", me, (unsigned long long)count,
	       (unsigned long long)after, (unsigned long long)c0,
	       (unsigned long long)c1, (unsigned long long)total,
	       (long long)bus_ms, timeout_ms, why[0] ? ": " : "", why);
	fflush(stdout);
	return ok ? 0 : 1;
}

/*
 * Node 0 of the restart test; the others only serve. Node 0 holds a page
 * homed on node 1 exclusively (written) and one read-only; once node 1 is
 * a new incarnation, its memory is gone: each of them, and a page never
 * touched, must end in SIGBUS (lost), never in the old copy or in zeros.
 */
static int restart_reader(int me, const char *flag)
{
	volatile uint8_t *wr = mem + (per_home + 5) * PAGE;
	int64_t end = now_ms() + WAIT_MS, ms[3];
	uint8_t val = 0;
	bool ok = true;

	if (me != 0)
		return 0;
	*wr = 0x5a;
	ms[0] = probe_sigbus(mem + (per_home + 7) * PAGE, &val);
	printf("reader: first read %s\n", ms[0] < 0 ? "ok" : "SIGBUS");
	fflush(stdout);
	while (!gone(flag) && now_ms() < end)
		poll(NULL, 0, 10);
	ms[0] = probe_sigbus(wr, &val);
	ms[1] = probe_sigbus(mem + (per_home + 7) * PAGE, &val);
	ms[2] = probe_sigbus(mem + (per_home + 6) * PAGE, &val);
	for (int i = 0; i < 3; i++) {
		printf("reader: %s page of the restarted node: %s\n",
		       i == 0 ? "written" : i == 1 ? "read-only" : "untouched",
		       ms[i] < 0 ? "read (its data should be lost)" : "SIGBUS");
		ok &= ms[i] >= 0;
	}
	printf("RESULT %s: the restarted node's pages are lost, not stale or zero\n",
	       ok ? "ok" : "FAIL");
	return ok ? 0 : 1;
}

#define QUEUE_PAGES 4

static void *queue_read(void *arg)
{
	volatile uint8_t *p = arg;

	(void)*p;	/* blocks until node 1 answers, or is gone */
	return NULL;
}

/* Node 0 holds the pages, node 2 asks for them (see the header). */
static int queue_role(int me, const char *flag)
{
	int64_t end = now_ms() + WAIT_MS;
	pthread_t th[QUEUE_PAGES];

	if (me == 0) {
		for (int k = 0; k < QUEUE_PAGES; k++)
			*word(per_home + k, 0) = 1 + k;
		printf("holder: %d pages written\n", QUEUE_PAGES);
		return 0;
	}
	if (me != 2 && me != 3)
		return 0;
	while (!gone(flag) && now_ms() < end)
		poll(NULL, 0, 10);
	printf("reader: reading\n");
	for (int k = 0; k < QUEUE_PAGES / 2; k++)
		pthread_create(&th[k], NULL, queue_read,
			       mem + (per_home + (me - 2) * 2 + k) * PAGE);
	/* Not joined: node 1 stops under them; SIGTERM ends us. */
	return 0;
}

#define PAUSE_WORD 5		/* page homed on node 0 */
#define PAUSE_OLD 0x1111
#define PAUSE_NEW 0x2222
#define PAUSE_DATA 0x5eed

static int pause_role(struct pm_node *node, int me, const char *flag,
		      bool long_pause)
{
	int64_t end = now_ms() + WAIT_MS;
	uint64_t *w = word(PAUSE_WORD, 0), *e = word(per_home + 5, 0);
	uint64_t got = 0;
	int r;

	/* The old value, seen by everyone before node 2 takes its copy. */
	if (me == 0)
		__atomic_store_n(w, PAUSE_OLD, __ATOMIC_SEQ_CST);
	if ((r = pm_node_barrier(node, WAIT_MS)))
		goto bar;
	if (me == 2) {
		got = __atomic_load_n(w, __ATOMIC_SEQ_CST);
		__atomic_store_n(e, PAUSE_DATA, __ATOMIC_SEQ_CST);
	}
	if ((r = pm_node_barrier(node, WAIT_MS)))
		goto bar;
	/* Past the barrier, so the frozen node holds up no one's. */
	if (me == 2)
		printf("pauser: ready (word %#llx)\n",
		       (unsigned long long)__atomic_load_n(w, __ATOMIC_SEQ_CST));
	if (me == 1) {
		while (!gone(flag) && now_ms() < end)
			poll(NULL, 0, 10);
		/* Both wait for the frozen node 2's answer. */
		__atomic_store_n(w, PAUSE_NEW, __ATOMIC_SEQ_CST);
		if (long_pause) {
			printf("RESULT ok: node 1 wrote the word past node 2's death\n");
			return 0;
		}
		got = __atomic_load_n(e, __ATOMIC_SEQ_CST);
		if (got != PAUSE_DATA) {
			printf("RESULT FAIL: node 2's page read %#llx, not %#llx\n",
			       (unsigned long long)got,
			       (unsigned long long)PAUSE_DATA);
			return 1;
		}
	}
	if (long_pause)
		return 0;	/* node 2 is gone: no barrier with it */
	if ((r = pm_node_barrier(node, WAIT_MS)))
		goto bar;
	got = __atomic_load_n(w, __ATOMIC_SEQ_CST);
	printf("RESULT %s: node %d reads the word as %#llx after the barrier\n",
	       got == PAUSE_NEW ? "ok" : "FAIL", me, (unsigned long long)got);
	return got == PAUSE_NEW ? 0 : 1;
bar:
	printf("RESULT FAIL: barrier: %s\n", strerror(-r));
	return 1;
}

/*
 * "dup": node 1 writes a word homed on node 0 and keeps that page
 * exclusively; once FLAG_FILE appears (a second process claimed id 1
 * meanwhile), node 0 reads it: it must still be there, not forgotten.
 */
static int dup_role(int me, const char *flag)
{
	int64_t end = now_ms() + WAIT_MS;
	uint64_t *w = word(7, 0), got;

	if (me == 1) {
		__atomic_store_n(w, 0x77, __ATOMIC_SEQ_CST);
		printf("holder: written\n");
		return 0;
	}
	while (!gone(flag) && now_ms() < end)
		poll(NULL, 0, 10);
	got = __atomic_load_n(w, __ATOMIC_SEQ_CST);
	printf("RESULT %s: node 1's word reads %#llx\n",
	       got == 0x77 ? "ok" : "FAIL", (unsigned long long)got);
	return got == 0x77 ? 0 : 1;
}

/*
 * "partition": node 2 takes a read-only copy of a word homed on node 0 and
 * reads it in a loop, noting when it last saw the old value; the test cuts
 * node 2 off (CUT_FLAG appears) and heals it later (HEAL_FLAG). Node 1
 * writes the word once the cut is there and notes when the write
 * completed. The clocks are one (CLOCK_MONOTONIC of one host), so the test
 * can check that node 2 never read the old value after the write.
 */
static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int partition_role(struct pm_node *node, int me, const char *cut,
			  const char *heal)
{
	volatile uint64_t *w = word(PAUSE_WORD, 0);
	int64_t end = now_ms() + WAIT_MS, last_old = 0, healed = 0;
	uint64_t reads = 0, buses = 0;
	uint8_t val;
	int r;

	if (me == 0)
		*w = PAUSE_OLD;
	if ((r = pm_node_barrier(node, WAIT_MS)) ||
	    (me == 2 && *w != PAUSE_OLD) ||
	    (r = pm_node_barrier(node, WAIT_MS))) {
		printf("RESULT FAIL: set-up: %s\n", r ? strerror(-r) : "no copy");
		return 1;
	}
	if (me == 2)
		printf("reader: holding the word\n");
	if (me == 1) {
		while (!gone(cut) && now_ms() < end)
			poll(NULL, 0, 10);
		__atomic_store_n(w, PAUSE_NEW, __ATOMIC_SEQ_CST);
		printf("RESULT ok: writer: wrote at %lld ns\n",
		       (long long)mono_ns());
		return 0;
	}
	if (me != 2)
		return 0;
	/* Read until 2 s after the heal: old, new, or SIGBUS (fenced). */
	while (now_ms() < end && (!healed || now_ms() < healed + 2000)) {
		if (!healed && gone(heal))
			healed = now_ms();
		if (probe_sigbus((const volatile uint8_t *)w, &val) >= 0) {
			buses++;
			poll(NULL, 0, 1);
			continue;
		}
		reads++;
		if (*w == PAUSE_OLD)
			last_old = mono_ns();
	}
	printf("RESULT ok: reader: last read the old value at %lld ns (%llu reads, %llu SIGBUS), now reads %s\n",
	       (long long)last_old, (unsigned long long)reads,
	       (unsigned long long)buses,
	       probe_sigbus((const volatile uint8_t *)w, &val) >= 0 ?
		       "SIGBUS" :
	       *w == PAUSE_NEW ? "the new value" : "the OLD value");
	return 0;
}

/*
 * Leaving on purpose. The last node writes LEAVE_PAGES pages homed on the
 * others (so it holds them exclusively), then leaves with pm_node_leave
 * (or, with "leave-exit", just exits, which must lose them). The others
 * wait until they declared it dead (their copies of it forgotten), then
 * read every page back: the leaver's bytes, no SIGBUS.
 */
#define LEAVE_PAGES 32

static uint64_t pg_leave(int k, int nodes)
{
	return per_home * (uint64_t)(k % (nodes - 1)) + 40 + (uint64_t)k;
}

static int leave_role(struct pm_node *node, int me, int nodes, bool leave)
{
	int64_t end = now_ms() + WAIT_MS;
	struct pm_stats st;
	int bad = 0;

	if (me == nodes - 1) {
		for (int k = 0; k < LEAVE_PAGES; k++)
			memset(mem + pg_leave(k, nodes) * PAGE, 0xa0 + k, PAGE);
		printf("leaver: wrote %d pages homed on the others\n",
		       LEAVE_PAGES);
		fflush(stdout);
		if (!leave)
			_exit(0);
		int r = pm_node_leave(node);

		printf("RESULT leaver: pm_node_leave: %s\n",
		       r ? strerror(-r) : "ok");
		_exit(r ? 1 : 0);
	}
	do {
		if (pm_node_stats(node, &st) || now_ms() > end) {
			printf("RESULT reader %d: node %d never declared dead\n",
			       me, nodes - 1);
			return 1;
		}
		poll(NULL, 0, 20);
	} while (!st.peer_failures);
	for (int k = 0; k < LEAVE_PAGES; k++) {
		const uint8_t *p = mem + pg_leave(k, nodes) * PAGE;
		uint8_t v = 0;

		if (probe_sigbus(p, &v) >= 0 || v != 0xa0 + k ||
		    memcmp(p, p + 1, PAGE - 1)) {
			if (!bad++)
				printf("reader %d: page %llu: %s\n", me,
				       (unsigned long long)pg_leave(k, nodes),
				       v == 0xa0 + k ? "torn" : "SIGBUS or not the leaver's bytes");
		}
	}
	printf("RESULT reader %d: %d of %d pages the leaver wrote read back %s\n",
	       me, LEAVE_PAGES - bad, LEAVE_PAGES, bad ? "BAD" : "exact");
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_sigaction = on_bus,
				.sa_flags = SA_SIGINFO | SA_NODEFER };
	struct timespec wait = { .tv_sec = WAIT_MS / 1000 };
	struct pm_node *node;
	char err[1024];
	sigset_t term;
	size_t len;
	int code, me, nodes, ret;

	if (argc != 4 && !(argc == 5 && !strcmp(argv[2], "partition"))) {
		fprintf(stderr, "usage: fault_worker CONFIG GONE_FILE TIMEOUT_MS\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	node = pm_node_start_ex(argv[1], err, sizeof(err), &code);
	if (!node) {
		fprintf(stderr, "fault_worker: %s\n", err);
		return code;
	}
	mem = pm_node_region(node, &len);
	me = pm_node_id(node);
	nodes = pm_node_count(node);
	per_home = (len / PAGE + nodes - 1) / nodes;
	if (!strcmp(argv[2], "restart")) {
		ret = restart_reader(me, argv[3]);
		goto wait_term;
	}
	if (!strcmp(argv[2], "pause") || !strcmp(argv[2], "pause-long")) {
		ret = pause_role(node, me, argv[3],
				 !strcmp(argv[2], "pause-long"));
		goto wait_term;
	}
	if (!strcmp(argv[2], "partition")) {
		if (argc != 5) {
			fprintf(stderr, "usage: fault_worker CONFIG partition CUT_FLAG HEAL_FLAG\n");
			return 2;
		}
		ret = partition_role(node, me, argv[3], argv[4]);
		goto wait_term;
	}
	if (!strcmp(argv[2], "leave") || !strcmp(argv[2], "leave-exit")) {
		ret = leave_role(node, me, nodes, !strcmp(argv[2], "leave"));
		goto wait_term;
	}
	if (!strcmp(argv[2], "dup")) {
		ret = dup_role(me, argv[3]);
		goto wait_term;
	}
	if (!strcmp(argv[2], "queue")) {
		ret = queue_role(me, argv[3]);
		goto wait_term;
	}
	if (nodes < 3 || per_home < 20) {
		fprintf(stderr, "fault_worker: needs 3+ nodes and 20+ pages each\n");
		return 2;
	}
	if (me == nodes - 1)
		return victim(nodes);
	ret = survivor(me, nodes, argv[2], atoi(argv[3]));
wait_term:
	/* Serve our pages until the test says every survivor is done. */
	if (sigtimedwait(&term, NULL, &wait) < 0)
		fprintf(stderr, "fault_worker: no SIGTERM within %d ms\n",
			WAIT_MS);
	/* No pm_node_stop: its barrier would wait for the failed node. */
	_exit(ret);
}
