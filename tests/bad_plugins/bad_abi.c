// SPDX-License-Identifier: MIT
/* Broken plugin: the v1 entry symbol returns a table claiming ABI major 2,
 * as a plugin with a stale or hand-edited header would. */
#include "stub.h"

static const struct pm_transport_ops ops = {
	.size = sizeof(struct pm_transport_ops),
	.abi_major = 2,
	.abi_minor = 0,
	.name = "bad_abi",
	.version = "0",
	.probe = stub_probe, .init = stub_init, .fini = stub_fini,
	.listen = stub_listen, .endpoint = stub_endpoint,
	.connect = stub_connect, .disconnect = stub_disconnect,
	.call = stub_call, .reply = stub_reply, .drop = stub_drop,
};

PM_TRANSPORT_EXPORT const struct pm_transport_ops *PM_TRANSPORT_ENTRY(void)
{
	return &ops;
}
