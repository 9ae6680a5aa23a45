// SPDX-License-Identifier: MIT
/*
 * Turn-taking hand-off across 3 nodes on loopback: coh_worker's turns
 * workload (wait for turn % 3 == id, add to a tally page and a sum page,
 * pass the turn), with pager.migratory = 1 against 0 in the same run,
 * interleaved. The figure noise cannot move is faults per turn per node
 * (every fault of the node, local, remote and write-protect, over the
 * turns it took); turns/s is beside it.
 *
 * usage: handoff_bench [-r ROUNDS] [-n TURNS]  (PM_BUILD: the build dir)
 */
#include <getopt.h>
#include <stddef.h>

#include "../tests/cluster.h"

struct sample {
	double turns_s;
	double faults_per_turn;	/* mean over the nodes */
	double worst_node;	/* the node with the most */
};

static long long now_ms_bench(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Node i's faults from its "stats: faults zero Z local L remote R wp W". */
static long long node_faults(const struct cluster *c, int i)
{
	char line[1024];
	long long z, l, r, w;

	if (!cl_log_last(c, i, "stats: faults zero ", line, sizeof(line)) ||
	    sscanf(line, "stats: faults zero %lld local %lld remote %lld wp %lld",
		   &z, &l, &r, &w) != 4)
		return -1;
	return z + l + r + w;
}

static int one_run(int migratory, long turns, struct sample *s)
{
	char prog[512], iters[32];
	char *argv[] = { prog, (char *)"{cfg}", (char *)"turns", iters, NULL };
	struct cluster c;
	long long t0, ms;
	double sum = 0, worst = 0;

	if (cl_init(&c, 3))
		return -1;
	snprintf(prog, sizeof(prog), "%s/tests/coh_worker", cl_build());
	snprintf(iters, sizeof(iters), "%ld", turns);
	snprintf(c.pager, sizeof(c.pager), "migratory = %d;", migratory);
	if (cl_write_configs(&c, "16M"))
		goto fail;
	t0 = now_ms_bench();
	for (int i = 0; i < 3; i++)
		if (cl_spawn(&c, i, argv))
			goto fail;
	if (cl_wait(&c, 120000))
		goto fail;
	ms = now_ms_bench() - t0;
	for (int i = 0; i < 3; i++) {
		long long f = node_faults(&c, i);

		if (c.status[i] != 0 || f < 0) {
			fprintf(stderr, "handoff: node %d exited %d:\n", i,
				c.status[i]);
			cl_dump(&c, i, NULL);
			goto fail;
		}
		sum += (double)f / turns;
		if ((double)f / turns > worst)
			worst = (double)f / turns;
	}
	s->turns_s = 3.0 * turns * 1000 / (double)(ms ? ms : 1);
	s->faults_per_turn = sum / 3;
	s->worst_node = worst;
	cl_cleanup(&c);
	return 0;
fail:
	cl_cleanup(&c);
	return -1;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median and max of field k over n samples. */
static void stat_of(const struct sample *s, int n, size_t off, double *med,
		 double *max)
{
	double v[64];

	for (int i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&s[i] + off);
	qsort(v, (size_t)n, sizeof(v[0]), cmp);
	*med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	*max = v[n - 1];
}

/* One row of the table: medians and maxima; *turns_s and *fpt the
 * medians. */
static void print_row(const char *label, const struct sample *s, int n,
		      double *turns_s, double *fpt)
{
	double m, x;

	stat_of(s, n, offsetof(struct sample, turns_s), &m, &x);
	printf("%-22s %12.0f / %5.0f", label, m, x);
	*turns_s = m;
	stat_of(s, n, offsetof(struct sample, faults_per_turn), &m, &x);
	printf(" %16.2f / %5.2f", m, x);
	*fpt = m;
	stat_of(s, n, offsetof(struct sample, worst_node), &m, &x);
	printf(" %12.2f / %5.2f\n", m, x);
}

int main(int argc, char **argv)
{
	struct sample on[64], off[64];
	int rounds = 3, opt;
	long turns = 300;
	double t0, f0, t1, f1, t_ratio;

	while ((opt = getopt(argc, argv, "r:n:h")) != -1) {
		if (opt == 'r')
			rounds = atoi(optarg);
		else if (opt == 'n')
			turns = atol(optarg);
		else {
			fprintf(stderr, "usage: %s [-r ROUNDS (1..64)] [-n TURNS]\n",
				argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (rounds < 1 || rounds > 64 || turns < 10) {
		fprintf(stderr, "handoff_bench: -r 1..64, -n at least 10\n");
		return 2;
	}
	cl_block_sigchld();
	for (int r = 0; r < rounds; r++)
		if (one_run(0, turns, &off[r]) || one_run(1, turns, &on[r]))
			return 1;
	printf("turn-taking hand-off, 3 nodes, %ld turns each, %d rounds (median / max):\n",
	       turns, rounds);
	printf("%-22s %20s %24s %20s\n", "pager.migratory", "turns/s",
	       "faults/turn per node", "worst node");
	print_row("0 (baseline)", off, rounds, &t0, &f0);
	print_row("1", on, rounds, &t1, &f1);
	t_ratio = t1 / t0;
	printf("migratory vs baseline: faults per turn x%.2f, turns/s x%.2f\n",
	       f1 / f0, t_ratio);
	printf("goal: at most 4 faults per hand-off per node (%.2f: %s), turns/s at least 1.5x (x%.2f: %s)\n",
	       f1, f1 <= 4 ? "met" : "missed", t_ratio,
	       t_ratio >= 1.5 ? "met" : "missed");
	return 0;
}
