// SPDX-License-Identifier: MIT
/* libFuzzer target for the config loader: each input is written to a
 * memfd and loaded through its /proc/self/fd path, as a file would be. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"

static int fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cfg c;
	char path[64], err[1024];
	int r;

	if (fd < 0) {
		fd = memfd_create("pm-cfg-fuzz", MFD_CLOEXEC);
		if (fd < 0)
			return 0;
		pm_log_default.level = -1;	/* quiet: errors come back in err */
	}
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	memset(&c, 0, sizeof(c));
	err[0] = '\0';
	r = cfg_load(path, &c, err, sizeof(err));
	if (r && !err[0])
		__builtin_trap();	/* a refusal must say why */
	if (!r && (c.cluster_nodes < 1 || c.cluster_nodes > CFG_MAX_NODES ||
		   c.node_id < 0 || c.node_id >= c.cluster_nodes ||
		   c.n_transports > CFG_MAX_TRANSPORTS ||
		   c.n_peers > CFG_MAX_NODES))
		__builtin_trap();	/* accepted what start-up relies on */
	cfg_free(&c);
	return 0;
}
