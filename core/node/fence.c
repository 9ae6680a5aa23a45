// SPDX-License-Identifier: MIT
/*
 * The watchdog that fences a paused node (DESIGN.md, "A paused node"). A
 * node stopped for long enough may be declared dead by its homes, which
 * then give its copies away; when it resumes, every thread resumes at
 * once and the application could read a mapped copy before the node's own
 * threads notice. Only something outside the process can stop that: a
 * watchdog process forked at start-up watches a tick the node bumps every
 * FENCE_TICK_MS and kills the node with SIGKILL when the tick has not
 * moved for 3/4 of cluster.failure_timeout_ms. A home declares the node
 * dead no earlier than failure_timeout_ms after it last heard from it, and
 * it is pinged every eighth of that, so the kill comes at least an eighth
 * of the timeout before any home may give its copies away.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "node.h"

#define FENCE_TICK_MS 50

struct fence_shared {
	uint64_t tick;		/* bumped by the node */
	uint32_t stop;		/* the node is stopping on purpose */
};

static int64_t mono_ms(void)
{
	return pm_now_ns() / 1000000;
}

/* The watchdog, in the forked child: async-signal-safe calls only. */
static void __attribute__((noreturn))
watchdog(struct fence_shared *sh, pid_t node, int node_id, int64_t limit_ms)
{
	struct timespec nap = { .tv_nsec = FENCE_TICK_MS * 1000000L };
	uint64_t seen = __atomic_load_n(&sh->tick, __ATOMIC_RELAXED);
	int64_t since = mono_ms();
	char line[256];
	int k;

	for (;;) {
		uint64_t t;

		nanosleep(&nap, NULL);
		if (__atomic_load_n(&sh->stop, __ATOMIC_RELAXED) ||
		    getppid() != node)
			_exit(0);
		t = __atomic_load_n(&sh->tick, __ATOMIC_RELAXED);
		if (t != seen) {
			seen = t;
			since = mono_ms();
			continue;
		}
		if (mono_ms() - since < limit_ms)
			continue;
		kill(node, SIGKILL);
		k = snprintf(line, sizeof(line),
			     "pagemesh watchdog: node %d (pid %d) did not run for %lld ms (3/4 of cluster.failure_timeout_ms): killed, so that it reads no page its homes may give away\n",
			     node_id, (int)node, (long long)(mono_ms() - since));
		if (k > 0 && write(STDERR_FILENO, line, (size_t)k) < 0)
			_exit(1);
		_exit(0);
	}
}

/* Tells the watchdog that this process runs. */
static void *ticker(void *arg)
{
	struct pm_node *n = arg;
	struct timespec nap = { .tv_nsec = FENCE_TICK_MS * 1000000L };

	while (!__atomic_load_n(&n->fence->stop, __ATOMIC_RELAXED)) {
		__atomic_add_fetch(&n->fence->tick, 1, __ATOMIC_RELAXED);
		nanosleep(&nap, NULL);
	}
	return NULL;
}

int fence_start(struct pm_node *n)
{
	int r;

	struct fence_shared *sh;
	pid_t pid, self = getpid();

	if (strcmp(n->cfg.fence, "kill"))
		return 0;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return -errno;
	pid = fork();
	if (pid < 0) {
		munmap(sh, sizeof(*sh));
		return -errno;
	}
	if (!pid) {
		/* Hold none of the process's sockets or uffds open: a peer
		 * must see them close when the node goes. */
		syscall(SYS_close_range, 3, ~0U, 0);
		prctl(PR_SET_NAME, "pagemesh-wdog", 0, 0, 0);
		watchdog(sh, self, n->id, (int64_t)n->failure_ms * 3 / 4);
	}
	n->fence = sh;
	n->fence_pid = pid;
	r = pthread_create(&n->ticker, NULL, ticker, n);
	if (r) {
		fence_stop(n);
		return -r;
	}
	n->ticker_started = true;
	pm_dbg("watchdog pid %d fences this node after %d ms without a tick",
	       (int)pid, n->failure_ms * 3 / 4);
	return 0;
}

void fence_stop(struct pm_node *n)
{
	if (!n->fence)
		return;
	__atomic_store_n(&n->fence->stop, 1, __ATOMIC_RELAXED);
	if (n->ticker_started)
		pthread_join(n->ticker, NULL);
	n->ticker_started = false;
	waitpid(n->fence_pid, NULL, 0);
	munmap(n->fence, sizeof(*n->fence));
	n->fence = NULL;
}
