// SPDX-License-Identifier: MIT
/* Broken plugin: a full-size table whose mandatory op call is NULL. */
#include "stub.h"

static const struct pm_transport_ops ops = {
	.size = sizeof(struct pm_transport_ops),
	.abi_major = PM_TRANSPORT_ABI_MAJOR,
	.abi_minor = PM_TRANSPORT_ABI_MINOR,
	.name = "null_op",
	.version = "0",
	.probe = stub_probe, .init = stub_init, .fini = stub_fini,
	.listen = stub_listen, .endpoint = stub_endpoint,
	.connect = stub_connect, .disconnect = stub_disconnect,
	.call = NULL, .reply = stub_reply, .drop = stub_drop,
};

PM_TRANSPORT_EXPORT const struct pm_transport_ops *PM_TRANSPORT_ENTRY(void)
{
	stub_use_all();
	return &ops;
}
