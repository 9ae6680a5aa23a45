// SPDX-License-Identifier: MIT
/* The other node of the VMM's two-node guest test: starts a node, writes a
 * pattern into every page it is home for (so those pages hold data that
 * must travel when the VM's node touches them), meets the VM's node at a
 * barrier (pagemesh vm --start-barrier) so the guest is loaded only after
 * these writes, then leaves the cluster together with the VM's node.
 *
 *	vmm_peer CONFIG
 *
 * Prints "vmm_peer: wrote N pages" once the pages are written; exit 0, or
 * the node's start-up code (78 config, 1 runtime). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BARRIER_MS 300000

#include <pagemesh/pagemesh.h>
#include <pagemesh/transport.h>

int main(int argc, char **argv)
{
	uint64_t npages, per_home, first, last, p, *w;
	struct pm_node *n;
	char err[1024];
	size_t len, i;
	uint8_t *mem;
	int code;

	if (argc != 2) {
		fprintf(stderr, "usage: vmm_peer CONFIG\n");
		return 2;
	}
	n = pm_node_start_ex(argv[1], err, sizeof(err), &code);
	if (!n) {
		fprintf(stderr, "vmm_peer: %s\n", err);
		return code;
	}
	mem = pm_node_region(n, &len);
	/* The node homes an even share of the pages, in id order (node.c). */
	npages = len / PM_PAGE_SIZE;
	per_home = (npages + pm_node_count(n) - 1) / pm_node_count(n);
	first = per_home * pm_node_id(n);
	last = first + per_home < npages ? first + per_home : npages;
	for (p = first; p < last; p++) {
		w = (uint64_t *)(mem + p * PM_PAGE_SIZE);
		for (i = 0; i < PM_PAGE_SIZE / 8; i++)
			w[i] = p << 12 | i | 0xa5a5000000000000ull;
	}
	printf("vmm_peer: wrote %llu pages\n",
	       (unsigned long long)(last - first));
	fflush(stdout);
	/* Bounded like the node's own start-up wait in the suite's configs. */
	code = pm_node_barrier(n, BARRIER_MS);
	if (code) {
		fprintf(stderr, "vmm_peer: barrier with the VM's node: %s\n",
			strerror(-code));
		pm_node_stop(n);
		return 1;
	}
	/* Serves its pages until the VM's node stops too (both wait at the
	 * stop barrier, bounded by cluster.startup_timeout_ms). */
	pm_node_stop(n);
	return 0;
}
