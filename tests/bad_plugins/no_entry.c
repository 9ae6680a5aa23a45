// SPDX-License-Identifier: MIT
/* Broken plugin: a valid table behind a misspelled entry symbol, so the
 * loader finds no pagemesh_transport_v1. */
#include "stub.h"

static const struct pm_transport_ops ops = {
	.size = sizeof(struct pm_transport_ops),
	.abi_major = PM_TRANSPORT_ABI_MAJOR,
	.abi_minor = PM_TRANSPORT_ABI_MINOR,
	.name = "no_entry",
	.version = "0",
	.probe = stub_probe, .init = stub_init, .fini = stub_fini,
	.listen = stub_listen, .endpoint = stub_endpoint,
	.connect = stub_connect, .disconnect = stub_disconnect,
	.call = stub_call, .reply = stub_reply, .drop = stub_drop,
};

PM_TRANSPORT_EXPORT const struct pm_transport_ops *pagemesh_transport(void)
{
	return &ops;
}
