// SPDX-License-Identifier: MIT
/* A valid plugin from a newer 1.x: its table carries an op appended after
 * the 1.0 ops, so its size is larger than the core's struct. The core must
 * load it and ignore what it does not know. Its probe reports what the host
 * table gave it, so tests can check the config plumbing. */
#include <string.h>

#include "stub.h"

struct ext_ops {
	struct pm_transport_ops base;
	int (*frobnicate)(struct pm_tctx *t, int level);	/* "1.1" op */
};

static int ext_frobnicate(struct pm_tctx *t, int level)
{
	(void)t;
	(void)level;
	return -EOPNOTSUPP;
}

static int ext_probe(const struct pm_host *host, char *why, size_t len)
{
	const char *greeting = NULL;
	int r;

	if (host->size < sizeof(*host) || host->abi_major != 1 ||
	    !host->name || strcmp(host->name, "extended") ||
	    host->page_size != PM_PAGE_SIZE) {
		snprintf(why, len, "host table is not what ABI 1.0 promises");
		return -EINVAL;
	}
	r = host->cfg_string(host->ctx, "greeting", &greeting);
	if (r == 0)
		snprintf(why, len, "greeting=%s", greeting);
	else if (r != -ENOENT)
		snprintf(why, len, "greeting: error %d", r);
	return 0;
}

static const struct ext_ops ops = {
	.base = {
		.size = sizeof(struct ext_ops),
		.abi_major = PM_TRANSPORT_ABI_MAJOR,
		.abi_minor = PM_TRANSPORT_ABI_MINOR + 1,
		.name = "extended",
		.version = "1.1.0",
		.caps = PM_CAP_RELIABLE | PM_CAP_BATCH,
		.probe = ext_probe, .init = stub_init, .fini = stub_fini,
		.listen = stub_listen, .endpoint = stub_endpoint,
		.connect = stub_connect, .disconnect = stub_disconnect,
		.call = stub_call, .reply = stub_reply, .drop = stub_drop,
	},
	.frobnicate = ext_frobnicate,
};

PM_TRANSPORT_EXPORT const struct pm_transport_ops *PM_TRANSPORT_ENTRY(void)
{
	stub_use_all();
	return &ops.base;
}
