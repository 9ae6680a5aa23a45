// SPDX-License-Identifier: MIT
/* Broken plugin: its table claims a size that ends before drop, the last
 * op of ABI 1.0 (a plugin built against an older draft of the header). */
#include "stub.h"

static const struct pm_transport_ops ops = {
	.size = offsetof(struct pm_transport_ops, drop),
	.abi_major = PM_TRANSPORT_ABI_MAJOR,
	.abi_minor = PM_TRANSPORT_ABI_MINOR,
	.name = "small_table",
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
