/*
 * dnstap.c - see dnstap.h. The messages are built with the protobuf-c code generated from
 * dnstap.proto; fstrm frames them (content type protobuf:dnstap.Dnstap) and writes them from
 * its own thread.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fstrm.h>

#include "dnstap.pb-c.h"
#include "dotgw/dnstap.h"
#include "dotgw/log.h"
#include "dotgw/version.h"

#define DNSTAP_CONTENT_TYPE "protobuf:dnstap.Dnstap"

struct dnstap_queue {
	struct fstrm_iothr *iothr;
	struct fstrm_iothr_queue *q;
};

struct dnstap {
	struct fstrm_iothr *iothr;
	unsigned int nqueues;
	struct dnstap_queue queues[];
};

int dnstap_open(struct dnstap **out, const char *path, unsigned int nqueues)
{
	struct fstrm_unix_writer_options *uwopt = fstrm_unix_writer_options_init();
	struct fstrm_writer_options *wopt = fstrm_writer_options_init();
	struct fstrm_iothr_options *iopt = fstrm_iothr_options_init();
	struct fstrm_writer *writer = NULL;
	struct dnstap *dt;
	int r = -ENOMEM;

	if (nqueues == 0)
		nqueues = 1;
	dt = calloc(1, sizeof(*dt) + nqueues * sizeof(dt->queues[0]));

	if (!uwopt || !wopt || !iopt || !dt)
		goto out;
	fstrm_unix_writer_options_set_socket_path(uwopt, path);
	fstrm_writer_options_add_content_type(wopt, DNSTAP_CONTENT_TYPE,
					      strlen(DNSTAP_CONTENT_TYPE));
	writer = fstrm_unix_writer_init(uwopt, wopt);
	if (!writer)
		goto out;
	fstrm_iothr_options_set_num_input_queues(iopt, nqueues);
	/* one producer per queue: the worker that owns it */
	fstrm_iothr_options_set_queue_model(iopt, FSTRM_IOTHR_QUEUE_MODEL_SPSC);
	dt->iothr = fstrm_iothr_init(iopt, &writer); /* takes the writer */
	if (!dt->iothr)
		goto out;
	dt->nqueues = nqueues;
	for (unsigned int i = 0; i < nqueues; i++) {
		dt->queues[i].iothr = dt->iothr;
		dt->queues[i].q = fstrm_iothr_get_input_queue_idx(dt->iothr, i);
	}
	*out = dt;
	dt = NULL;
	r = 0;
out:
	if (r < 0)
		log_error("--dnstap '%s': cannot start the Frame Streams writer", path);
	fstrm_writer_destroy(&writer);
	fstrm_iothr_options_destroy(&iopt);
	fstrm_writer_options_destroy(&wopt);
	fstrm_unix_writer_options_destroy(&uwopt);
	free(dt);
	return r;
}

void dnstap_close(struct dnstap *dt)
{
	if (!dt)
		return;
	fstrm_iothr_destroy(&dt->iothr); /* flushes what is queued */
	free(dt);
}

struct dnstap_queue *dnstap_queue(struct dnstap *dt, unsigned int idx)
{
	return idx < dt->nqueues ? &dt->queues[idx] : NULL;
}

/* address - the raw address and the port of sa, for the message fields. */
static void address(const struct sockaddr *sa, ProtobufCBinaryData *addr, uint32_t *port)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;

		addr->data = (uint8_t *)s6->sin6_addr.s6_addr;
		addr->len = 16;
		*port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;

		addr->data = (uint8_t *)&s4->sin_addr;
		addr->len = 4;
		*port = ntohs(s4->sin_port);
	}
}

/* tap_submit - one message of type with its addresses and transport; see dnstap_log. */
static bool tap_submit(struct dnstap_queue *q, Dnstap__Message__Type type, bool response,
		       Dnstap__SocketProtocol proto, const struct sockaddr *client,
		       const struct sockaddr *server, const uint8_t *msg, size_t len);

bool dnstap_log(struct dnstap_queue *q, bool response, bool tcp, const struct sockaddr *client,
		const struct sockaddr *server, const uint8_t *msg, size_t len)
{
	return tap_submit(q,
			  response ? DNSTAP__MESSAGE__TYPE__CLIENT_RESPONSE
				   : DNSTAP__MESSAGE__TYPE__CLIENT_QUERY,
			  response,
			  tcp ? DNSTAP__SOCKET_PROTOCOL__TCP : DNSTAP__SOCKET_PROTOCOL__UDP, client,
			  server, msg, len);
}

bool dnstap_log_forward(struct dnstap_queue *q, bool response, enum dnstap_proto proto,
			const struct sockaddr *from, const struct sockaddr *server,
			const uint8_t *msg, size_t len)
{
	/*
	 * DoT goes out as TCP: readers built before dnstap.proto had DOT (Debian 12's
	 * dnstap-ldns) stop decoding the whole stream at the first message that names it.
	 */
	static const Dnstap__SocketProtocol protos[] = {
		[DNSTAP_UDP] = DNSTAP__SOCKET_PROTOCOL__UDP,
		[DNSTAP_TCP] = DNSTAP__SOCKET_PROTOCOL__TCP,
		[DNSTAP_DOT] = DNSTAP__SOCKET_PROTOCOL__TCP,
	};

	return tap_submit(q,
			  response ? DNSTAP__MESSAGE__TYPE__FORWARDER_RESPONSE
				   : DNSTAP__MESSAGE__TYPE__FORWARDER_QUERY,
			  response, protos[proto], from, server, msg, len);
}

static bool tap_submit(struct dnstap_queue *q, Dnstap__Message__Type type, bool response,
		       Dnstap__SocketProtocol proto, const struct sockaddr *client,
		       const struct sockaddr *server, const uint8_t *msg, size_t len)
{
	static const char identity[] = "dotgw", version[] = "dotgw " DOTGW_VERSION;
	Dnstap__Dnstap d = DNSTAP__DNSTAP__INIT;
	Dnstap__Message m = DNSTAP__MESSAGE__INIT;
	struct timespec ts;
	uint8_t *buf;
	size_t size;

	clock_gettime(CLOCK_REALTIME, &ts);
	d.identity.data = (uint8_t *)identity;
	d.identity.len = sizeof(identity) - 1;
	d.has_identity = 1;
	d.version.data = (uint8_t *)version;
	d.version.len = sizeof(version) - 1;
	d.has_version = 1;
	d.type = DNSTAP__DNSTAP__TYPE__MESSAGE;
	d.message = &m;
	m.type = type;
	m.has_socket_family = 1;
	m.socket_family = server->sa_family == AF_INET6 ? DNSTAP__SOCKET_FAMILY__INET6
							: DNSTAP__SOCKET_FAMILY__INET;
	m.has_socket_protocol = 1;
	m.socket_protocol = proto;
	if (client) { /* a forwarded query leaves from a socket of ours: not known */
		address(client, &m.query_address, &m.query_port);
		m.has_query_address = m.has_query_port = 1;
	}
	address(server, &m.response_address, &m.response_port);
	m.has_response_address = m.has_response_port = 1;
	if (response) {
		m.response_message.data = (uint8_t *)msg;
		m.response_message.len = len;
		m.has_response_message = 1;
		m.response_time_sec = (uint64_t)ts.tv_sec;
		m.response_time_nsec = (uint32_t)ts.tv_nsec;
		m.has_response_time_sec = m.has_response_time_nsec = 1;
	} else {
		m.query_message.data = (uint8_t *)msg;
		m.query_message.len = len;
		m.has_query_message = 1;
		m.query_time_sec = (uint64_t)ts.tv_sec;
		m.query_time_nsec = (uint32_t)ts.tv_nsec;
		m.has_query_time_sec = m.has_query_time_nsec = 1;
	}
	size = dnstap__dnstap__get_packed_size(&d);
	buf = malloc(size);
	if (!buf)
		return false;
	dnstap__dnstap__pack(&d, buf);
	if (fstrm_iothr_submit(q->iothr, q->q, buf, size, fstrm_free_wrapper, NULL) !=
	    fstrm_res_success) {
		free(buf);
		return false;
	}
	return true;
}
