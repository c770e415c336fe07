/*
 * tls.c - DoT's TLS client: context, authentication, SPKI pins, session cache, the buffered
 * socket BIO and OpenSSL's errors; see tls.h for the contract.
 *
 * Invariants:
 * - Every libssl call of dotgw is in this file; libcrypto is used here and nowhere else.
 * - The error queue is emptied before each SSL call whose failure SSL_get_error() judges, and
 *   after a failure its text is logged once, at debug level, and the queue emptied.
 * - Only sessions of connections that authenticated are kept for resumption, one per upstream.
 * - Bytes reach the wire only after the handshake, and so the authentication, has succeeded.
 * - A tls_conn reaches its SSL through ex_data only while it lives: tls_conn_close() clears
 *   the link before SSL_free, so no callback can see a freed connection.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "dotgw/config.h"
#include "dotgw/log.h"
#include "dotgw/tls.h"

#define TLS_RBUF (16u << 10) /* read from the socket at once (see tls_conn_set_bio) */

struct tls_ctx {
	SSL_CTX *ssl_ctx; /* shared by tls_ctx_share (reference counted) */
	const struct config *cfg;
	const struct upstream_config *ups;	     /* cfg->upstreams, or tls_ctx_share's one */
	SSL_SESSION *sessions[CONFIG_MAX_UPSTREAMS]; /* per upstream: the last authenticated one */
};

struct tls_conn {
	struct tls_ctx *ctx;
	const struct upstream_config *u;
	SSL_SESSION **session; /* the upstream's slot in ctx->sessions */
	SSL *ssl;	       /* NULL while the TCP connect is in progress */
	int fd;
	bool unverified; /* opportunistic: authentication failed, used anyway */
	bool drained;	 /* the socket's last read took less than asked: it was empty */
	bool unacked;	 /* read(2) took data since the last TCP_QUICKACK (see tls_conn_read) */
	uint8_t writes;	 /* SSL_writes so far, counted up to TLS_QUICKACK_WRITES */
};

static int tls_conn_index = -1;

/*
 * After the first writes of a connection, TCP_QUICKACK. A TLS 1.3 server sends its session
 * tickets after the handshake, and the first answer right behind them; our Finished and first
 * query went out just after its ServerHello came in, so Linux is in delayed-ACK ("pingpong")
 * mode and holds the tickets' ACK for up to 40 ms. A server with Nagle on (unbound 1.17 on
 * DoT) holds the small answer until that ACK: the first query on every new connection would
 * cost about 40 ms and another round trip. Quick ACKs for the first segments avoid it.
 */
#define TLS_QUICKACK_WRITES 2

/*
 * tls_clear_errors - empty the error queue before an SSL call whose failure SSL_get_error()
 * will judge. It is nearly always empty already, and ERR_peek_error() costs a fraction of
 * ERR_clear_error(), which walks every slot of the queue: this runs several times per query.
 */
static void tls_clear_errors(void)
{
	if (ERR_peek_error())
		ERR_clear_error();
}

/* Log the OpenSSL error queue once, at debug level, and empty it. */
static void tls_log_errors(const struct tls_conn *t)
{
	unsigned long e;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_debug("upstream %s: openssl: %s", t->u->text, buf);
	}
}

static int tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_conn *t = SSL_get_ex_data(ssl, tls_conn_index);

	/* Only sessions of authenticated connections are kept for resumption. */
	if (!t || t->unverified)
		return 0;
	SSL_SESSION_free(*t->session);
	*t->session = sess;
	return 1; /* we keep the reference */
}

/* pin_match - does cert's SubjectPublicKeyInfo hash to one of the upstream's pins? */
static bool pin_match(const struct upstream_config *u, X509 *cert)
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	bool ok = false;

	if (len <= 0)
		return false;
	if (EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) && mdlen == 32)
		for (size_t i = 0; i < u->n_pins && !ok; i++)
			ok = CRYPTO_memcmp(md, u->pins[i], 32) == 0;
	OPENSSL_free(der);
	return ok;
}

/*
 * tls_verify - OpenSSL's verdict on each certificate of the chain, plus ours:
 * - with pins, the leaf's SPKI must match one (RFC 7858 4.2); with pins and no auth name the
 *   pin alone authenticates, so chain errors are forgiven;
 * - opportunistic: every failure is recorded (and the connection marked) but forgiven.
 */
static int tls_verify(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *t = ssl ? SSL_get_ex_data(ssl, tls_conn_index) : NULL;
	const struct upstream_config *u;
	int depth = X509_STORE_CTX_get_error_depth(x), err;

	if (!t)
		return 0;
	u = t->u;
	if (!ok && u->n_pins && !u->auth_name[0])
		ok = 1; /* pin-only: the chain does not matter, the pin below does */
	if (ok && depth == 0 && u->n_pins && !pin_match(u, X509_STORE_CTX_get_current_cert(x))) {
		X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
		ok = 0;
	}
	if (!ok && t->ctx->cfg->tls_opportunistic) {
		err = X509_STORE_CTX_get_error(x);
		if (!t->unverified)
			log_warn("upstream %s: NOT AUTHENTICATED (%s%s), used anyway because of "
				 "--tls-auth opportunistic",
				 u->text, X509_verify_cert_error_string(err),
				 err == X509_V_ERR_APPLICATION_VERIFICATION ? ": SPKI pin mismatch"
									    : "");
		t->unverified = true;
		ok = 1;
	}
	return ok;
}

/* tls_ctx_load_anchors - cfg's trust anchors into ctx; logs what went wrong. */
static int tls_ctx_load_anchors(SSL_CTX *ctx, const struct config *cfg)
{
	char buf[256];

	ERR_clear_error();
	if (cfg->ca_file) {
		if (!SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL)) {
			ERR_error_string_n(ERR_peek_last_error(), buf, sizeof(buf));
			log_error("--ca-file '%s': cannot load trust anchors: %s", cfg->ca_file,
				  buf);
			return -EINVAL;
		}
	} else if (!SSL_CTX_set_default_verify_paths(ctx)) {
		log_error("cannot load the system trust store");
		return -EINVAL;
	}
	return 0;
}

int tls_ctx_new(struct tls_ctx **out, const struct config *cfg)
{
	struct tls_ctx *ctx;
	SSL_CTX *s;
	int r = -EINVAL;

	/* called from the main thread before any worker runs */
	if (tls_conn_index < 0) {
		tls_conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
		if (tls_conn_index < 0)
			return -ENOMEM;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	s = SSL_CTX_new(TLS_client_method());
	if (!s) {
		r = -ENOMEM;
		goto out_free;
	}
	if (!SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION))
		goto out_free_ssl;
	/*
	 * IGNORE_UNEXPECTED_EOF: servers often close with a bare FIN, no close_notify; OpenSSL 3
	 * calls that a protocol error, but DoT's length prefix already catches a cut message, so
	 * it is a plain close (the queries in flight are sent again, the upstream is not blamed).
	 */
	SSL_CTX_set_options(s, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
				       SSL_OP_IGNORE_UNEXPECTED_EOF);
	/*
	 * No SSL_MODE_RELEASE_BUFFERS: it freed and reallocated the 17 KiB record buffers around
	 * every record (~830 instructions per cache miss, bench/callgrind_hit.sh) and saved no
	 * resident memory, since malloc keeps the freed chunks; only the pages a record touches
	 * are resident.
	 */
	SSL_CTX_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(s, SSL_VERIFY_PEER, tls_verify);
	SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(s, tls_new_session);
	r = tls_ctx_load_anchors(s, cfg);
	if (r < 0)
		goto out_free_ssl;
	ERR_clear_error();
	ctx->ssl_ctx = s;
	ctx->cfg = cfg;
	ctx->ups = cfg->upstreams;
	*out = ctx;
	return 0;

out_free_ssl:
	ERR_clear_error();
	SSL_CTX_free(s);
out_free:
	free(ctx);
	return r;
}

int tls_ctx_share(struct tls_ctx **out, const struct config *cfg, const struct tls_ctx *like,
		  const struct upstream_config *u)
{
	struct tls_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return -ENOMEM;
	if (!SSL_CTX_up_ref(like->ssl_ctx)) {
		ERR_clear_error();
		free(ctx);
		return -ENOMEM;
	}
	ctx->ssl_ctx = like->ssl_ctx;
	ctx->cfg = cfg;
	ctx->ups = u;
	*out = ctx;
	return 0;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (!ctx)
		return;
	for (size_t i = 0; i < CONFIG_MAX_UPSTREAMS; i++)
		SSL_SESSION_free(ctx->sessions[i]);
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

/*
 * err_is_local - does connect() failing with err (-errno) tell about this machine rather than
 * the upstream or the path to it? Out of descriptors, memory, buffers or local ports.
 */
static bool err_is_local(int err)
{
	switch (-err) {
	case EMFILE:
	case ENFILE:
	case ENOMEM:
	case ENOBUFS:
	case EADDRNOTAVAIL:
		return true;
	default:
		return false;
	}
}

int tls_conn_open(struct tls_ctx *ctx, size_t up, struct tls_conn **out, bool *local)
{
	const struct upstream_config *u = &ctx->ups[up];
	uint32_t mark = ctx->cfg->bypass_mark;
	struct tls_conn *t;
	int fd, one = 1, r;

	*local = true;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto out_free;
	}
	/* Our own traffic carries the bypass mark so that the capture rules never take it. */
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		r = -errno;
		goto out_close;
	}
	/*
	 * TCP Fast Open: connect() only records the address; the first write (the ClientHello)
	 * goes in the SYN once this host holds a cookie from the server, else the SYN asks for
	 * one and that write fails with EINPROGRESS, a retry for OpenSSL. A kernel without it
	 * (ENOPROTOOPT) connects as usual.
	 */
	if (ctx->cfg->tcp_fastopen &&
	    setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)) < 0 &&
	    errno != ENOPROTOOPT) {
		r = -errno;
		goto out_close;
	}
	if (connect(fd, (const struct sockaddr *)&u->addr, u->addrlen) < 0 &&
	    errno != EINPROGRESS) {
		r = -errno;
		*local = err_is_local(r);
		goto out_close;
	}
	t->ctx = ctx;
	t->u = u;
	t->session = &ctx->sessions[up];
	t->fd = fd;
	*out = t;
	return 0;

out_close:
	close(fd);
out_free:
	free(t);
	return r;
}

int tls_conn_fd(const struct tls_conn *t)
{
	return t->fd;
}

/*
 * tls_conn_read_done - after each read(2) of the socket: a read that returned less than it
 * asked for emptied the socket (a stream socket returns all it holds, up to the size asked).
 * Once OpenSSL and the buffer BIO hold nothing either, another SSL_read could only end in
 * EAGAIN: tls_conn_drained() says so, and epoll (level-triggered) reports anything that
 * arrives later.
 */
static long tls_conn_read_done(BIO *b, int oper, const char *argp, size_t len, int argi, long argl,
			       int ret, size_t *processed)
{
	(void)argp;
	(void)argi;
	(void)argl;
	if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
		void *arg = BIO_get_callback_arg(b); /* char *: set from a struct tls_conn * */
		struct tls_conn *t = arg;

		t->drained = ret <= 0 || !processed || *processed < len;
		if (ret > 0 && processed && *processed)
			t->unacked = true;
	}
	return ret;
}

/*
 * tls_conn_set_bio - OpenSSL reads a record in two parts, its header and then its body, one
 * read(2) each, which is two system calls per answer. A buffer BIO between it and the socket
 * reads whatever the socket holds (up to TLS_RBUF) in one and serves those small reads from
 * memory. (OpenSSL's own read-ahead does the same, but moves what is left to the front of its
 * buffer after every record of 128 octets or more: quadratic in the records read at once.)
 * Writes go to the socket directly: the caller already hands over whole batches, and reads
 * until tls_conn_drained(), so nothing stays buffered unseen by epoll.
 */
static int tls_conn_set_bio(struct tls_conn *t, SSL *ssl)
{
	BIO *sock = BIO_new_socket(t->fd, BIO_NOCLOSE), *buf = BIO_new(BIO_f_buffer());

	if (!sock || !buf || !BIO_set_read_buffer_size(buf, TLS_RBUF) || !BIO_up_ref(sock)) {
		BIO_free(buf);
		BIO_free(sock);
		return -ENOMEM;
	}
	BIO_set_callback_ex(sock, tls_conn_read_done);
	BIO_set_callback_arg(sock, (char *)t);
	t->drained = false;
	BIO_push(buf, sock);
	SSL_set_bio(ssl, buf, sock); /* takes both references: buf's chain and sock's own */
	return 0;
}

/* tls_conn_start - the SSL of a connected t: SNI and the name, or the address, to verify. */
static int tls_conn_start(struct tls_conn *t)
{
	const struct upstream_config *u = t->u;
	SSL *ssl = SSL_new(t->ctx->ssl_ctx);

	if (!ssl)
		return -ENOMEM;
	if (tls_conn_set_bio(t, ssl) < 0)
		goto out_free;
	if (u->auth_name[0]) {
		if (!SSL_set_tlsext_host_name(ssl, u->auth_name) ||
		    !SSL_set1_host(ssl, u->auth_name))
			goto out_free;
	} else if (!u->n_pins) {
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
		const void *ip;
		size_t iplen;

		if (u->addr.ss_family == AF_INET) {
			ip = &((const struct sockaddr_in *)&u->addr)->sin_addr;
			iplen = 4;
		} else {
			ip = &((const struct sockaddr_in6 *)&u->addr)->sin6_addr;
			iplen = 16;
		}
		if (!X509_VERIFY_PARAM_set1_ip(param, ip, iplen))
			goto out_free;
	}
	/*
	 * Verified DDR (RFC 9462 4.2): the certificate must also cover the address the
	 * designation came from. OpenSSL's check_id() requires every identity set on the
	 * parameters, the host name above and this address alike (X509_V_ERR_HOSTNAME_MISMATCH
	 * or X509_V_ERR_IP_ADDRESS_MISMATCH otherwise).
	 */
	if (u->also_ip_len &&
	    !X509_VERIFY_PARAM_set1_ip(SSL_get0_param(ssl), u->also_ip, u->also_ip_len))
		goto out_free;
	/* DoH (doh.c): HTTP/2 only, RFC 8484 5.2 */
	if (u->doh_path[0] && SSL_set_alpn_protos(ssl, (const unsigned char *)"\x02h2", 3) != 0)
		goto out_free;
	if (*t->session && SSL_SESSION_is_resumable(*t->session) &&
	    !SSL_set_session(ssl, *t->session))
		goto out_free;
	SSL_set_ex_data(ssl, tls_conn_index, t);
	t->unverified = false;
	t->ssl = ssl;
	return 0;

out_free:
	tls_log_errors(t);
	SSL_free(ssl);
	return -ENOMEM;
}

/* tls_conn_want - translate an SSL error into epoll interest (0); -errno for a failure. */
static int tls_conn_want(struct tls_conn *t, int ret, bool *want_write)
{
	switch (SSL_get_error(t->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		return 0;
	case SSL_ERROR_WANT_WRITE:
		*want_write = true;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return -ECONNRESET;
	case SSL_ERROR_SYSCALL:
		tls_log_errors(t);
		return errno ? -errno : -ECONNRESET;
	default:
		tls_log_errors(t);
		return -EPROTO;
	}
}

int tls_conn_handshake(struct tls_conn *t, bool *want_write, bool *local)
{
	int soerr = 0, ret, r;
	socklen_t sl = sizeof(soerr);
	long v;

	*local = false;
	if (!t->ssl) {
		if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr == EINPROGRESS || soerr == EALREADY)
			return 0;
		if (soerr)
			return -soerr;
		r = tls_conn_start(t);
		if (r < 0) {
			*local = true; /* no memory for the TLS state: ours, not the upstream's */
			return r;
		}
	}
	tls_clear_errors();
	ret = SSL_connect(t->ssl);
	if (ret == 1) {
		log_debug("upstream %s: %s %s%s%s", t->u->text, SSL_get_version(t->ssl),
			  SSL_get_cipher_name(t->ssl),
			  SSL_session_reused(t->ssl) ? ", session resumed" : "",
			  t->unverified ? ", NOT AUTHENTICATED" : "");
		return 1;
	}
	r = tls_conn_want(t, ret, want_write);
	if (r == 0)
		return 0;
	v = SSL_get_verify_result(t->ssl);
	if (v != X509_V_OK)
		log_warn("upstream %s: authentication failed: %s%s", t->u->text,
			 X509_verify_cert_error_string(v),
			 v == X509_V_ERR_APPLICATION_VERIFICATION ? " (SPKI pin mismatch)" : "");
	return r == -EPROTO ? -EPERM : r;
}

int tls_conn_write(struct tls_conn *t, const uint8_t *buf, size_t len, bool *want_write)
{
	int n;

	tls_clear_errors();
	n = SSL_write(t->ssl, buf, (int)len);
	if (n <= 0)
		return tls_conn_want(t, n, want_write);
	if (t->writes < TLS_QUICKACK_WRITES) {
		int one = 1;

		t->writes++;
		/* only a hint: a failure changes nothing else */
		(void)setsockopt(t->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
	return n;
}

/*
 * tls_conn_ack - once a burst of reads has emptied the socket, TCP_QUICKACK: Linux sends the
 * ACK it holds for what we read now, not with our next query or after the delayed-ACK timer.
 * A server with Nagle on (unbound 1.17 on DoT) holds each small answer while an earlier one
 * is unacknowledged; as long as queries go out every few milliseconds (less than the 40 ms of
 * delayed ACK), our ACK always waited for the next query, and so did every answer after the
 * first one held: an answer took one inter-query gap more (bench/RESULTS.md, helper q1). The
 * option is not sticky (each query we send puts the socket back in delayed-ACK mode), hence
 * once per burst read, which costs one setsockopt and, only where an ACK is held, one packet.
 */
static void tls_conn_ack(struct tls_conn *t)
{
	int one = 1;

	if (!t->unacked || !t->drained)
		return;
	t->unacked = false;
	/* only a hint: a failure changes nothing else */
	(void)setsockopt(t->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

int tls_conn_read(struct tls_conn *t, uint8_t *buf, size_t len, bool *want_write)
{
	int n;

	tls_clear_errors();
	n = SSL_read(t->ssl, buf, (int)len);
	tls_conn_ack(t);
	return n > 0 ? n : tls_conn_want(t, n, want_write);
}

bool tls_conn_drained(const struct tls_conn *t)
{
	return t->drained && !SSL_has_pending(t->ssl) && !BIO_pending(SSL_get_rbio(t->ssl));
}

bool tls_conn_alpn_h2(const struct tls_conn *t)
{
	const unsigned char *p = NULL;
	unsigned int len = 0;

	if (!t->ssl)
		return false;
	SSL_get0_alpn_selected(t->ssl, &p, &len);
	return len == 2 && memcmp(p, "h2", 2) == 0;
}

bool tls_conn_resumed(const struct tls_conn *t)
{
	return t->ssl && SSL_session_reused(t->ssl);
}

bool tls_conn_unverified(const struct tls_conn *t)
{
	return t->unverified;
}

void tls_conn_close(struct tls_conn *t, bool clean)
{
	if (!t)
		return;
	if (t->ssl) {
		SSL_set_ex_data(t->ssl, tls_conn_index, NULL);
		/*
		 * A clean close gets close_notify, best effort (the socket is non-blocking):
		 * without it SSL_free takes the connection for a broken one and marks its session,
		 * the ticket we keep for resumption, not resumable. After a failure, that is right.
		 */
		if (clean) {
			ERR_clear_error();
			SSL_shutdown(t->ssl);
			ERR_clear_error();
		}
		SSL_free(t->ssl);
	}
	close(t->fd);
	free(t);
}

int tls_pin_parse(uint8_t pin[32], const char *b64)
{
	uint8_t raw[64];
	int n;

	/* 32 octets are 44 base64 characters, one '=' of padding */
	if (strlen(b64) != 44 || b64[43] != '=' || b64[42] == '=')
		return -EINVAL;
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, 44);
	if (n != 33)
		return -EINVAL;
	memcpy(pin, raw, 32);
	return 0;
}
