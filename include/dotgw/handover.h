/*
 * handover.h - overlapping instances: a new dotgw starts while the old one serves, takes over
 * capture, and the old one, on SIGTERM, leaves without a moment in which DNS is uncaptured.
 *
 * Every run has a generation (CLOCK_BOOTTIME at start, in microseconds: later runs have
 * larger ones) and a slot, 0 or 1, written into its table's comment as
 * "dotgw generation=G slot=S". Two overlapping runs take different slots: slot 1 shifts the
 * nfqueue queue numbers by --queues (a queue has one listener), and with --fail open, whose
 * table a netlink socket owns and nobody else may change, it names the table TABLE-1 (slot 0:
 * TABLE). A run takes slot 1 when a live run holds slot 0: fail open, when TABLE is owned;
 * fail closed in nfqueue mode, when slot 0's queues are bound. With --fail closed both slots
 * use TABLE, which the newer run replaces in its one install transaction (a fail-closed
 * tproxy run is always slot 0: it has no queues).
 */
#ifndef DOTGW_HANDOVER_H
#define DOTGW_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct workers;

/*
 * handover_prepare - choose this run's slot from the dotgw tables and queues that exist now
 * (above), and apply it to cfg (handover_apply). 0, or -errno
 * (logged): -EBUSY when both fail-open slots are owned by live processes, -ERANGE when the
 * shifted queue numbers do not fit.
 */
int handover_prepare(struct config *cfg);

/* handover_apply - this run's slot applied to a configuration parsed again (reload). */
void handover_apply(struct config *cfg);

/* handover_comment - the comment of this run's table ("dotgw generation=G slot=S"). */
const char *handover_comment(void);

/*
 * handover_superseded - does a table of a newer dotgw (a larger generation) exist now, so
 * that it captures and this run may leave it the traffic?
 */
bool handover_superseded(void);

/*
 * handover_await - poll for handover_superseded every 100 ms, up to seconds; true as soon
 * as it holds.
 */
bool handover_await(unsigned int seconds);

/*
 * handover_drain - wait until ws has no query in flight (at least HANDOVER_SETTLE_MS, so
 * that what the kernel queued for us before we left is read, at most HANDOVER_DRAIN_MS).
 * Returns the queries still in flight at the end.
 */
unsigned long long handover_drain(struct workers *ws);

#define HANDOVER_SETTLE_MS 300
#define HANDOVER_DRAIN_MS  5000

/*
 * handover_comment_parse - the generation and slot in a table comment; false when s is not
 * a dotgw comment. Pure: for the unit test.
 */
bool handover_comment_parse(const char *s, uint64_t *gen, unsigned int *slot);

#endif
