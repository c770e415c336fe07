/*
 * dnstap.h - client queries and responses as dnstap messages (protobuf, schema from Debian's
 * golang-github-dnstap-golang-dnstap-dev, compiled at build time) over a Frame Streams unix
 * socket (libfstrm's I/O thread, one input queue per worker). Submitting never blocks: when the
 * reader is slow or gone, messages are dropped and counted.
 */
#ifndef DOTGW_DNSTAP_H
#define DOTGW_DNSTAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct dnstap;
struct dnstap_queue;

/*
 * dnstap_open - start the I/O thread writing to the unix socket at path (it connects, and
 * reconnects, by itself), with nqueues input queues. Call it after privileges are dropped: the
 * thread then has none. 0 or -errno (logged).
 */
int dnstap_open(struct dnstap **out, const char *path, unsigned int nqueues);
/* dnstap_close - flush and stop. Accepts NULL. */
void dnstap_close(struct dnstap *dt);

/* dnstap_queue - input queue idx (0 .. nqueues-1), for one worker thread. */
struct dnstap_queue *dnstap_queue(struct dnstap *dt, unsigned int idx);

/*
 * dnstap_log - one CLIENT_QUERY (response false) or CLIENT_RESPONSE message: the client and
 * the address it asked (server), the transport, the DNS message. Returns false when it was
 * dropped (queue full, no memory).
 */
bool dnstap_log(struct dnstap_queue *q, bool response, bool tcp, const struct sockaddr *client,
		const struct sockaddr *server, const uint8_t *msg, size_t len);

/* The transports of dnstap_log_forward. */
enum dnstap_proto { DNSTAP_UDP, DNSTAP_TCP, DNSTAP_DOT };

/*
 * dnstap_log_forward - one FORWARDER_QUERY (response false) or FORWARDER_RESPONSE message for
 * a query that a --forward rule sent on: from (the address it left from, NULL when not known:
 * dotgw's own socket), server (where it went), the transport, the DNS message. Returns false
 * when it was dropped.
 */
bool dnstap_log_forward(struct dnstap_queue *q, bool response, enum dnstap_proto proto,
			const struct sockaddr *from, const struct sockaddr *server,
			const uint8_t *msg, size_t len);

#endif
