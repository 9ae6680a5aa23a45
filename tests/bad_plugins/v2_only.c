// SPDX-License-Identifier: MIT
/* Broken plugin: built for a future ABI major, so it exports only
 * pagemesh_transport_v2; the loader must say which major it was built for. */
#include "stub.h"

static const struct pm_transport_ops ops = {
	.size = sizeof(struct pm_transport_ops),
	.abi_major = 2,
	.abi_minor = 0,
	.name = "v2_only",
	.version = "0",
	.probe = stub_probe, .init = stub_init, .fini = stub_fini,
	.listen = stub_listen, .endpoint = stub_endpoint,
	.connect = stub_connect, .disconnect = stub_disconnect,
	.call = stub_call, .reply = stub_reply, .drop = stub_drop,
};

PM_TRANSPORT_EXPORT const struct pm_transport_ops *pagemesh_transport_v2(void)
{
	return &ops;
}
