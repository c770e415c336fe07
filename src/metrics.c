/*
 * metrics.c - GET /metrics over HTTP with libmicrohttpd (its own polling thread), and the
 * health endpoints: /healthz and /readyz, 200 "ok" or 503 with a one-line reason, from
 * health.c's verdicts. Anything else: 404. The metrics body is rendered afresh for each
 * request by the caller's callback.
 *
 * libmicrohttpd is loaded (dlopen) by metrics_load only when --metrics asks for it: linked, it
 * brought GnuTLS, p11-kit, nettle, gmp, libtasn1, libidn2 and libunistring into every dotgw,
 * with GnuTLS's start-up work, about 2.5 MiB resident that a gateway without --metrics never
 * used. Its calls go through the table mhd, typed from microhttpd.h.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dotgw/addr.h"
#include "dotgw/health.h"
#include "dotgw/log.h"
#include "dotgw/metrics.h"

#ifndef DOTGW_MHD_SONAME
#define DOTGW_MHD_SONAME "libmicrohttpd.so.12"
#endif

/* The libmicrohttpd calls dotgw makes, each with its prototype's type (set once, then read). */
static struct {
	__typeof__(MHD_start_daemon) *start_daemon;
	__typeof__(MHD_stop_daemon) *stop_daemon;
	__typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
	__typeof__(MHD_add_response_header) *add_response_header;
	__typeof__(MHD_queue_response) *queue_response;
	__typeof__(MHD_destroy_response) *destroy_response;
} mhd;

struct metrics {
	struct MHD_Daemon *mhd;
	metrics_render_fn render;
	void *data;
	const struct health *health; /* NULL: no /healthz, /readyz */
};

/* metrics_health - /healthz or /readyz into out; the status. */
static unsigned int metrics_health(const struct metrics *m, bool ready, FILE *out)
{
	uint64_t now = health_now_ms();
	char why[256];
	bool ok = ready ? health_ready(m->health, now, why, sizeof(why))
			: health_alive(m->health, now, why, sizeof(why));

	fprintf(out, "%s\n", ok ? "ok" : why);
	return ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
}

int metrics_parse_addr(const char *spec, struct sockaddr_storage *ss)
{
	union sockaddr_any a;

	if (addr_parse(&a, spec, "127.0.0.1", 0) < 0)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &a, sizeof(a));
	return 0;
}

static enum MHD_Result metrics_request(void *cls, struct MHD_Connection *conn, const char *url,
				       const char *method, const char *version,
				       const char *upload_data, size_t *upload_size, void **state)
{
	struct metrics *m = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned int status = MHD_HTTP_OK;
	char *body = NULL;
	size_t len = 0;
	FILE *out;

	(void)version;
	(void)upload_data;
	(void)upload_size;
	(void)state;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
	else if (strcmp(url, "/metrics") != 0 &&
		 (!m->health || (strcmp(url, "/healthz") != 0 && strcmp(url, "/readyz") != 0)))
		status = MHD_HTTP_NOT_FOUND;
	out = open_memstream(&body, &len);
	if (!out)
		return MHD_NO;
	if (status == MHD_HTTP_OK && strcmp(url, "/metrics") == 0)
		m->render(m->data, out);
	else if (status == MHD_HTTP_OK)
		status = metrics_health(m, strcmp(url, "/readyz") == 0, out);
	else
		fputs(status == MHD_HTTP_NOT_FOUND ? "not found: try /metrics\n" : "GET only\n",
		      out);
	fclose(out);
	resp = mhd.create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	mhd.add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4; charset=utf-8");
	ret = mhd.queue_response(conn, status, resp);
	mhd.destroy_response(resp);
	return ret;
}

/*
 * metrics_listen - the listening socket, ours rather than libmicrohttpd's so that it carries
 * the bypass mark like every socket of dotgw (a client on port 53 of this host must not see
 * its answers captured); the accepted connections inherit it. A socket, or -errno.
 */
static int metrics_listen(const struct sockaddr_storage *ss, uint32_t mark)
{
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : sizeof(struct sockaddr_in);
	int fd, one = 1, r;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* SO_REUSEPORT: a second instance (handover.h) listens beside this one */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 ||
	    (ss->ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 16) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int metrics_load(void)
{
	void *h;

	if (mhd.start_daemon)
		return 0;
	dlerror();
	h = dlopen(DOTGW_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		log_error("--metrics: cannot load %s: %s", DOTGW_MHD_SONAME, dlerror());
		return -ENOENT;
	}
	/* POSIX: a function's address from dlsym's void * (never NULL for these names) */
	*(void **)&mhd.stop_daemon = dlsym(h, "MHD_stop_daemon");
	*(void **)&mhd.create_response_from_buffer = dlsym(h, "MHD_create_response_from_buffer");
	*(void **)&mhd.add_response_header = dlsym(h, "MHD_add_response_header");
	*(void **)&mhd.queue_response = dlsym(h, "MHD_queue_response");
	*(void **)&mhd.destroy_response = dlsym(h, "MHD_destroy_response");
	if (!mhd.stop_daemon || !mhd.create_response_from_buffer || !mhd.add_response_header ||
	    !mhd.queue_response || !mhd.destroy_response) {
		log_error("--metrics: %s lacks a function dotgw calls", DOTGW_MHD_SONAME);
		dlclose(h);
		return -ENOENT;
	}
	*(void **)&mhd.start_daemon = dlsym(h, "MHD_start_daemon"); /* last: marks it loaded */
	if (!mhd.start_daemon) {
		log_error("--metrics: %s lacks MHD_start_daemon", DOTGW_MHD_SONAME);
		dlclose(h);
		return -ENOENT;
	}
	return 0; /* the handle stays open for the process's life */
}

int metrics_start(struct metrics **out, const char *spec, uint32_t mark, metrics_render_fn render,
		  void *data, const struct health *health)
{
	struct sockaddr_storage ss;
	struct metrics *m;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
	int fd;

	fd = metrics_load();
	if (fd < 0)
		return fd;
	if (metrics_parse_addr(spec, &ss) < 0) {
		log_error("--metrics '%s': not PORT, ADDR:PORT or [ADDR]:PORT", spec);
		return -EINVAL;
	}
	fd = metrics_listen(&ss, mark);
	if (fd < 0) {
		log_error("--metrics '%s': cannot listen: %s", spec, strerror(-fd));
		return fd;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		close(fd);
		return -ENOMEM;
	}
	m->render = render;
	m->data = data;
	m->health = health;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	m->mhd = mhd.start_daemon(
		flags, 0, NULL, NULL, metrics_request, m, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_CONNECTION_LIMIT, 16, MHD_OPTION_CONNECTION_TIMEOUT, 10, MHD_OPTION_END);
	if (!m->mhd) {
		int err = errno ? errno : EADDRINUSE;

		log_error("--metrics '%s': cannot serve: %s", spec, strerror(err));
		close(fd);
		free(m);
		return -err;
	}
	*out = m;
	return 0;
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	mhd.stop_daemon(m->mhd);
	free(m);
}
