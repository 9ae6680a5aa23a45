// SPDX-License-Identifier: MIT
/* Broken plugin: the entry symbol is there but hands back no table (as a
 * plugin whose own start-up failed might). */
#include "stub.h"

PM_TRANSPORT_EXPORT const struct pm_transport_ops *PM_TRANSPORT_ENTRY(void)
{
	stub_use_all();
	return NULL;
}
