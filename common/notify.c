/* notify: see notify.h. */
#include "notify.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

void ntf_ready(void)
{
    sd_notify(0, "READY=1");
}

void ntf_status(const char *status)
{
    sd_notifyf(0, "STATUS=%s", status);
}

void ntf_watchdog(void)
{
    sd_notify(0, "WATCHDOG=1");
}

void ntf_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t usec = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, usec);
}

void ntf_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}

void ntf_extend_timeout(uint64_t usec)
{
    sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%" PRIu64, usec);
}

uint64_t ntf_watchdog_usec(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}
