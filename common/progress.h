/* progress: the progress line of a long operator command (`bwprovd state
 * import`, `state export`, `dlq replay` over thousands of records), e.g.
 *
 *     reading broadworks.provisioning.state: 12,345 of 100,000 (12%), 8,123/s, 0:11 left
 *
 * Pure formatting; whether and when to draw it (only on a terminal) is the
 * caller's. Thread-safe. */
#ifndef BWPROVD_PROGRESS_H
#define BWPROVD_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

/* Draw a line at most this often. */
#define PROG_INTERVAL_US 250000
/* Below this many records a phase is quick: it gets no line unless it
 * still lasts longer than PROG_INTERVAL_US. */
#define PROG_MIN_RECORDS 1000

/* Writes "<what>: <done> of <total> (<pct>%), <rate>/s, <left> left" to buf
 * (always terminated, truncated to cap); total 0 means unknown (then
 * "<what>: <done>, <rate>/s"). The rate and the time left appear once
 * elapsed_s is at least a tenth of a second (or the phase is over: done
 * reached total) and something was done; done above total counts as
 * total. Returns the length written. */
size_t prog_format(char *buf, size_t cap, const char *what, uint64_t done, uint64_t total,
                   double elapsed_s);

/* n with thousands separators ("1,234,567") into buf (cap >= 27). */
void prog_count(char *buf, size_t cap, uint64_t n);

/* Seconds as "M:SS" or "H:MM:SS" (negative counts as 0) into buf. */
void prog_duration(char *buf, size_t cap, double seconds);

#endif
