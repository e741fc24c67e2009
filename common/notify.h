/* notify: the one place that talks sd_notify (READY, STATUS, WATCHDOG,
 * RELOADING with MONOTONIC_USEC, STOPPING, EXTEND_TIMEOUT_USEC). A no-op
 * without $NOTIFY_SOCKET. Thread-safe. */
#ifndef BWPROVD_NOTIFY_H
#define BWPROVD_NOTIFY_H

#include <stdint.h>

void ntf_ready(void);
void ntf_status(const char *status);
void ntf_watchdog(void);
void ntf_reloading(void);
void ntf_stopping(void);
void ntf_extend_timeout(uint64_t usec);

/* The watchdog interval in microseconds when systemd asked for pings to
 * this process, else 0. */
uint64_t ntf_watchdog_usec(void);

#endif
