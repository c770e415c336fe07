/*
 * doh.h - DNS-over-HTTPS (RFC 8484) as an upstream transport: HTTP/2 (libnghttp2) over tls.c.
 *
 * doh_transport is the struct upstream_transport of the daemon's pools. For a DoT upstream it
 * passes every call to tls.c unchanged. For a DoH upstream (upstream_config.doh_path set) it
 * offers ALPN "h2" only, and presents HTTP/2 to upstream.c as the byte stream of DoT: each
 * length-prefixed query written to it becomes a POST of application/dns-message on its own
 * stream, with DNS id 0 (RFC 8484 4.1); each answer read from it is the stream's body, framed
 * the same way, with the query's id put back. So upstream.c's slots, windows, deadlines,
 * resends and failover hold for DoH as they are. HTTP/2 PING replaces the DNS probe on silent
 * connections (the transport's ping and pong).
 * The server's SETTINGS_MAX_CONCURRENT_STREAMS is respected: requests over it wait inside the
 * session; a stream the server refuses (REFUSED_STREAM) is sent again on the same connection a
 * few times. After GOAWAY no stream is opened there; once the streams the server processed have
 * answered, the connection reads as closed (-ECONNRESET), and upstream.c sends the queries it
 * still holds again elsewhere, within their deadline. A stream that ends with a status other
 * than 200 or a body that is not one DNS message is counted (doh_stats) and answered SERVFAIL;
 * the transport's failed() tells upstream.c which SERVFAIL answers stand for such a stream, so
 * that it may send the query once more, to another upstream.
 */
#ifndef DOTGW_DOH_H
#define DOTGW_DOH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dotgw/upstream.h"

extern const struct upstream_transport doh_transport;

/*
 * The sans-I/O HTTP/2 client session under each DoH connection (for the transport, the unit
 * test and the fuzzer). Octets move through the caller; nothing here does I/O or polls.
 */
struct doh_session;
/*
 * doh_session_new - a client session for upstream u (u must outlive it; its auth name or
 * address is the :authority, its doh_path the :path), with the preface and SETTINGS queued
 * for output. 0 or -ENOMEM.
 */
int doh_session_new(struct doh_session **out, const struct upstream_config *u);
/* doh_session_free - NULL is fine. */
void doh_session_free(struct doh_session *s);
/*
 * doh_session_submit - take whole DoT frames (2-octet length, query) from buf, each one a
 * request with DNS id 0. Returns the octets taken (0: no room now, the output is full, or the
 * server sent GOAWAY), or -EPROTO (a cut frame, a broken session) or -ENOMEM.
 */
int doh_session_submit(struct doh_session *s, const uint8_t *buf, size_t len);
/* doh_session_output, doh_session_consumed - the octets for the server, and how many went. */
size_t doh_session_output(struct doh_session *s, const uint8_t **p);
void doh_session_consumed(struct doh_session *s, size_t n);
/*
 * doh_session_recv - octets from the server (decrypted). Answers become available to
 * doh_session_take; the session's replies are queued for output. 0, or -EPROTO: the session
 * is broken (the connection must close).
 */
int doh_session_recv(struct doh_session *s, const uint8_t *buf, size_t len);
/*
 * doh_session_take - copy up to len octets of answers, DoT-framed, each with its query's id,
 * into buf; returns the count (0: none now).
 */
size_t doh_session_take(struct doh_session *s, uint8_t *buf, size_t len);
/*
 * doh_session_failed - is id that of a SERVFAIL header framed for a stream that failed (a
 * status other than 200, a body that is not one DNS message, a reset), not yet claimed? A true
 * answer claims it: each is reported once.
 */
bool doh_session_failed(struct doh_session *s, uint16_t id);
/*
 * doh_session_over - no answer can come any more: after GOAWAY every stream the server
 * processed has ended and its answer been taken, or the session has ended.
 */
bool doh_session_over(struct doh_session *s);

/* Process-wide DoH counters (all workers), read by metrics. */
struct doh_counters {
	uint64_t queries; /* requests sent (streams opened, including sent again) */
	uint64_t answers; /* 200 responses carrying one DNS message */
	uint64_t errors;  /* streams that ended otherwise: status, body, reset */
	uint64_t refused; /* streams the server refused, sent again */
	uint64_t goaways; /* GOAWAY frames received */
	uint64_t pings;	  /* PINGs sent on silent connections */
};

/* doh_stats - add the counters so far to *c. */
void doh_stats(struct doh_counters *c);

/*
 * doh_path_valid - is path usable as a DoH request path: starts with '/', printable ASCII
 * without spaces, '#' or '?', at most CONFIG_DOH_PATH_MAX octets?
 */
bool doh_path_valid(const char *path);

/*
 * doh_fake_servfail - write into out (DNS_HDR_LEN octets) the header of a SERVFAIL answer to
 * the query q (len octets, DNS_HDR_LEN at least): its id and RD, QR set, no records. 0, or
 * -EINVAL when q is shorter than a header.
 */
int doh_fake_servfail(uint8_t out[12], const uint8_t *q, size_t len);

/*
 * doh_answer_check - is body (len octets) one whole DNS answer, the reply to a query of the
 * HTTP status given? 0, or -EPROTO.
 */
int doh_answer_check(int status, const uint8_t *body, size_t len);

#endif
