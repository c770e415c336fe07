/*
 * tls.h - the TLS client side of DoT (RFC 7858): every libssl call of dotgw is behind it.
 *
 * A struct tls_ctx holds what the connections of one pool share: the SSL_CTX (trust anchors,
 * TLS 1.2 at least, no compression or renegotiation), and per upstream the last session of an
 * authenticated handshake, for resumption. A struct tls_conn is one non-blocking TCP connection
 * to an upstream and its TLS state: it connects, authenticates (chain and name, or address, and
 * SPKI pins; --tls-auth opportunistic forgives failures, loudly), and moves bytes. Failures
 * come back as -errno; the OpenSSL text is logged once, at debug level.
 */
#ifndef DOTGW_TLS_H
#define DOTGW_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

struct tls_ctx;
struct tls_conn;

/*
 * tls_ctx_new - the shared state of cfg's upstreams (cfg must outlive it). Trust anchors come
 * from cfg->ca_file or the system store; a file that cannot be loaded is an error, logged.
 * Call it from the main thread before any worker runs. Returns 0 and *out, or -errno.
 */
int tls_ctx_new(struct tls_ctx **out, const struct config *cfg);
/*
 * tls_ctx_share - a context for connections to the one upstream u (not among cfg's; it must
 * outlive the context), sharing like's SSL_CTX (trust anchors, settings) instead of loading
 * them again: for resolvers found at run time (ddr.c). cfg gives the bypass mark and
 * --tls-auth. Returns 0 and *out, or -ENOMEM.
 */
struct upstream_config;
int tls_ctx_share(struct tls_ctx **out, const struct config *cfg, const struct tls_ctx *like,
		  const struct upstream_config *u);
/* tls_ctx_free - after every tls_conn of ctx is closed; NULL is fine. */
void tls_ctx_free(struct tls_ctx *ctx);

/*
 * tls_conn_open - start a non-blocking connection to upstream up of ctx (its config's, or the
 * one of tls_ctx_share), marked with
 * its bypass mark. Returns 0 and *out, or -errno with *local set when the failure was this
 * machine's (every step but connect(), and connect's failures for want of descriptors,
 * memory, buffers or local ports) rather than the upstream's or the path's.
 */
int tls_conn_open(struct tls_ctx *ctx, size_t up, struct tls_conn **out, bool *local);
/* tls_conn_fd - the socket to poll. */
int tls_conn_fd(const struct tls_conn *t);
/*
 * tls_conn_handshake - go on connecting and shaking hands. 1: done, authenticated (or
 * forgiven); 0: waiting for the socket (*want_write: for it to become writable, else
 * readable); -errno: failed, the upstream's fault, -EPERM when authentication failed, or
 * -ENOMEM (*local set) when the TLS state could not be made.
 */
int tls_conn_handshake(struct tls_conn *t, bool *want_write, bool *local);
/*
 * tls_conn_write, tls_conn_read - move up to len octets. >0: octets moved; 0: would block
 * (*want_write set when the socket must become writable first); -ECONNRESET: closed by the
 * peer; -EPROTO or another -errno: failed.
 */
int tls_conn_write(struct tls_conn *t, const uint8_t *buf, size_t len, bool *want_write);
int tls_conn_read(struct tls_conn *t, uint8_t *buf, size_t len, bool *want_write);
/*
 * tls_conn_drained - the last read emptied the socket and nothing is buffered above it:
 * another read could only find EAGAIN (epoll reports what arrives later).
 */
bool tls_conn_drained(const struct tls_conn *t);
/* tls_conn_alpn_h2 - the finished handshake agreed on ALPN "h2" (offered for DoH upstreams). */
bool tls_conn_alpn_h2(const struct tls_conn *t);
/* tls_conn_resumed, tls_conn_unverified - of the finished handshake. */
bool tls_conn_resumed(const struct tls_conn *t);
bool tls_conn_unverified(const struct tls_conn *t);
/*
 * tls_conn_close - close and free t (NULL is fine). clean: send close_notify first, best
 * effort, so that the session stays resumable; after a failure it must not.
 */
void tls_conn_close(struct tls_conn *t, bool clean);

/* tls_pin_parse - decode an SPKI pin (base64 of a SHA-256, 44 characters). 0 or -EINVAL. */
int tls_pin_parse(uint8_t pin[32], const char *b64);

#endif
