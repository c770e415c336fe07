/*
 * queue.h - one NFQUEUE queue, read with libmnl + libnetfilter_queue. Every packet the
 * kernel queues gets exactly one verdict: NF_DROP, sent as one batch verdict after each read
 * burst (dotgw answers the query itself, or counts it as dropped, so the original never
 * leaves); or NF_ACCEPT at once, for a packet the frontend lets pass untouched.
 */
#ifndef DOTGW_QUEUE_H
#define DOTGW_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dotgw/loop.h"
#include "dotgw/stats.h"

struct queue_source;

/*
 * Called for each queued packet (the whole IP packet, and the index of the interface it came
 * in on, 0 when it was sent by this machine); the buffer lives during the call. csum_ready:
 * the transport checksum is final and can be verified (false when the kernel says
 * NFQA_SKB_CSUMNOTREADY: a partial checksum that offload would complete). Returns true to let
 * the packet pass untouched (NF_ACCEPT), false when it was taken (NF_DROP).
 */
typedef bool (*queue_packet_fn)(void *data, const uint8_t *pkt, size_t len, unsigned int ifindex,
				bool csum_ready);

/*
 * queue_open - bind queue number num (needs CAP_NET_ADMIN, for the daemon's whole life: the
 * kernel checks it on every verdict) and watch it on loop. fail_open sets
 * NFQA_CFG_F_FAIL_OPEN: when the queue is full the kernel lets packets pass instead of
 * dropping them. Returns 0 or -errno (logged).
 */
int queue_open(struct queue_source **out, struct loop *loop, uint16_t num, bool fail_open,
	       struct stats *stats, queue_packet_fn cb, void *data);
void queue_close(struct queue_source *q);

#endif
