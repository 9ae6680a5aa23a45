/* SPDX-License-Identifier: MIT */
/* Telling a service manager how the service is: "READY=1", "STOPPING=1",
 * "STATUS=..." lines as sd_notify(3) takes them. */
#ifndef PM_NOTIFY_H
#define PM_NOTIFY_H

void pm_notify(const char *state);

#endif
