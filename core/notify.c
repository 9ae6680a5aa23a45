// SPDX-License-Identifier: MIT
/* Readiness for a service manager: sd_notify(3) from libsystemd when the
 * build has it (PM_HAVE_SYSTEMD), nothing otherwise. Outside a
 * Type=notify unit NOTIFY_SOCKET is unset and sd_notify does nothing. */
#include "notify.h"

#ifdef PM_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

void pm_notify(const char *state)
{
	/* Keep NOTIFY_SOCKET: the node says STOPPING=1 later too. */
	sd_notify(0, state);
}
#else
void pm_notify(const char *state)
{
	(void)state;
}
#endif
