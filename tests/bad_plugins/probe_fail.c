// SPDX-License-Identifier: MIT
/* A valid plugin whose probe says the hardware it needs is missing, like
 * the RDMA transport on a machine without an RDMA device. */
#include "stub.h"

static int pf_probe(const struct pm_host *host, char *why, size_t len)
{
	(void)host;
	snprintf(why, len, "no frobnicator device");
	return -ENODEV;
}

static const struct pm_transport_ops ops = {
	.size = sizeof(struct pm_transport_ops),
	.abi_major = PM_TRANSPORT_ABI_MAJOR,
	.abi_minor = PM_TRANSPORT_ABI_MINOR,
	.name = "probe_fail",
	.version = "0.0.1",
	.caps = PM_CAP_RDMA,
	.probe = pf_probe, .init = stub_init, .fini = stub_fini,
	.listen = stub_listen, .endpoint = stub_endpoint,
	.connect = stub_connect, .disconnect = stub_disconnect,
	.call = stub_call, .reply = stub_reply, .drop = stub_drop,
};

PM_TRANSPORT_EXPORT const struct pm_transport_ops *PM_TRANSPORT_ENTRY(void)
{
	stub_use_all();
	return &ops;
}
