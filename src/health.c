/*
 * health.c - liveness and readiness as /healthz and /readyz report them, and the tiny HTTP
 * client of `dotgw --health URL`. The state is written by one thread (the main loop's beat)
 * and read by another (the metrics server): each shared field is an atomic, read whole; the
 * verdicts need no two of them to be of the same instant. The client speaks just enough
 * HTTP/1.0 to read a status line from dotgw's own endpoint, so that an image without curl can
 * probe itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "dotgw/health.h"

#define HEALTH_PROBE_TIMEOUT_S 5

uint64_t health_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000U + (uint64_t)ts.tv_nsec / 1000000U + 1U;
}

void health_init(struct health *h, uint64_t now_ms, uint64_t good_total, uint64_t bad_total)
{
	atomic_store(&h->beat_ms, now_ms);
	atomic_store(&h->good_ms, 0);
	atomic_store(&h->bad_ms, 0);
	atomic_store(&h->rules, false);
	h->good = good_total;
	h->bad = bad_total;
}

void health_set_rules(struct health *h, bool installed)
{
	atomic_store(&h->rules, installed);
}

void health_sample(struct health *h, uint64_t now_ms, uint64_t good_total, uint64_t bad_total)
{
	/* totals only grow; a smaller one (never expected) just becomes the new base */
	if (good_total > h->good)
		atomic_store(&h->good_ms, now_ms);
	if (bad_total > h->bad)
		atomic_store(&h->bad_ms, now_ms);
	h->good = good_total;
	h->bad = bad_total;
	atomic_store(&h->beat_ms, now_ms);
}

/* within - did event time t (0: never) happen in the window ms before now? */
static bool within(uint64_t t, uint64_t now_ms, uint64_t ms)
{
	return t != 0 && (t >= now_ms || now_ms - t <= ms);
}

bool health_alive(const struct health *h, uint64_t now_ms, char *why, size_t len)
{
	uint64_t beat = atomic_load(&h->beat_ms);

	if (within(beat, now_ms, HEALTH_ALIVE_MS))
		return true;
	snprintf(why, len, "the main loop last ran %" PRIu64 " ms ago (limit %u ms)", now_ms - beat,
		 HEALTH_ALIVE_MS);
	return false;
}

bool health_ready(const struct health *h, uint64_t now_ms, char *why, size_t len)
{
	uint64_t good = atomic_load(&h->good_ms), bad = atomic_load(&h->bad_ms);

	if (!atomic_load(&h->rules)) {
		snprintf(why, len, "the capture rules are not installed");
		return false;
	}
	if (!health_alive(h, now_ms, why, len))
		return false;
	if (within(bad, now_ms, HEALTH_READY_MS) && !within(good, now_ms, HEALTH_READY_MS)) {
		if (good)
			snprintf(why, len,
				 "queries failed (SERVFAIL) %" PRIu64 " ms ago and no upstream "
				 "answer was sent for %" PRIu64 " ms (window %u s)",
				 now_ms - bad, now_ms - good, HEALTH_READY_MS / 1000U);
		else
			snprintf(why, len,
				 "queries failed (SERVFAIL) %" PRIu64 " ms ago and no upstream "
				 "answer was sent yet (window %u s)",
				 now_ms - bad, HEALTH_READY_MS / 1000U);
		return false;
	}
	return true;
}

int health_url_parse(const char *url, struct sockaddr_storage *ss, char *path, size_t len)
{
	char host[64];
	const char *p = url, *end, *colon;
	char *num_end;
	unsigned long port;
	size_t n;

	if (strncmp(p, "http://", 7) != 0)
		return -EINVAL;
	p += 7;
	if (*p == '[') {
		end = strchr(p, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		n = (size_t)(end - p - 1);
		if (n == 0 || n >= sizeof(host))
			return -EINVAL;
		memcpy(host, p + 1, n);
		host[n] = '\0';
		colon = end + 1;
	} else {
		colon = strchr(p, ':');
		if (!colon || (strchr(p, '/') && strchr(p, '/') < colon))
			return -EINVAL;
		n = (size_t)(colon - p);
		if (n == 0 || n >= sizeof(host))
			return -EINVAL;
		memcpy(host, p, n);
		host[n] = '\0';
	}
	if (colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &num_end, 10);
	if (errno || port == 0 || port > 65535 || (*num_end && *num_end != '/'))
		return -EINVAL;
	if (strlen(*num_end ? num_end : "/") >= len)
		return -EINVAL;
	for (const char *c = num_end; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return -EINVAL; /* it goes into the request line as it is */

	memset(ss, 0, sizeof(*ss));
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (*p == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return -EINVAL;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -EINVAL;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
	}
	strcpy(path, *num_end ? num_end : "/");
	return 0;
}

int health_status_parse(const char *buf, size_t len)
{
	const char *eol = memchr(buf, '\n', len);
	int code = 0;

	if (!eol)
		return len > 256 ? -EINVAL : -EAGAIN;
	/* "HTTP/1.x SP DDD" */
	if ((size_t)(eol - buf) < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[7] < '0' ||
	    buf[7] > '9' || buf[8] != ' ')
		return -EINVAL;
	for (int i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -EINVAL;
		code = code * 10 + (buf[i] - '0');
	}
	if (code < 100 || (eol - buf > 12 && buf[12] != ' ' && buf[12] != '\r'))
		return -EINVAL;
	return code;
}

/* first_line - the first line of s (up to len bytes) into out, without its CR LF. */
static void first_line(const char *s, size_t len, char *out, size_t out_len)
{
	size_t n = 0;

	while (n < len && s[n] != '\n' && s[n] != '\r' && n + 1 < out_len)
		n++;
	memcpy(out, s, n);
	out[n] = '\0';
}

int health_probe(const char *url, FILE *err)
{
	struct timeval tv = {.tv_sec = HEALTH_PROBE_TIMEOUT_S};
	struct sockaddr_storage ss;
	char path[512], req[640], resp[4096], status[128], body[256] = "";
	const char *hdr_end;
	size_t got = 0;
	ssize_t n;
	int fd, req_len, code = -EAGAIN;

	if (health_url_parse(url, &ss, path, sizeof(path)) < 0) {
		fprintf(err,
			"dotgw: --health '%s': not http://ADDR:PORT/PATH (ADDR an IPv4 "
			"address, [IPv6] or localhost)\n",
			url);
		return EXIT_FAILURE;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(err, "dotgw: --health '%s': socket: %s\n", url, strerror(errno));
		return EXIT_FAILURE;
	}
	/* connect() obeys SO_SNDTIMEO on Linux */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (const struct sockaddr *)&ss,
		    ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					     : sizeof(struct sockaddr_in)) < 0) {
		fprintf(err, "dotgw: --health '%s': connect: %s\n", url, strerror(errno));
		goto out_close;
	}
	req_len = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
	if (send(fd, req, (size_t)req_len, MSG_NOSIGNAL) != req_len) {
		fprintf(err, "dotgw: --health '%s': send: %s\n", url, strerror(errno));
		goto out_close;
	}
	/* HTTP/1.0: the server closes after the response; read it, or its first 4 KiB */
	n = 0;
	while (got < sizeof(resp) && (n = recv(fd, resp + got, sizeof(resp) - got, 0)) > 0)
		got += (size_t)n;
	if (got == 0) {
		fprintf(err, "dotgw: --health '%s': no response: %s\n", url,
			n == 0		  ? "the server closed the connection"
			: errno == EAGAIN ? "none within the time limit"
					  : strerror(errno));
		goto out_close;
	}
	code = health_status_parse(resp, got);
	if (code < 0) {
		fprintf(err, "dotgw: --health '%s': not an HTTP/1.x response\n", url);
		goto out_close;
	}
	first_line(resp, got, status, sizeof(status));
	hdr_end = memmem(resp, got, "\r\n\r\n", 4);
	if (hdr_end)
		first_line(hdr_end + 4, got - (size_t)(hdr_end + 4 - resp), body, sizeof(body));
	if (code != 200)
		fprintf(err, "dotgw: --health '%s': %s%s%s\n", url, status, body[0] ? ": " : "",
			body);
out_close:
	close(fd);
	return code == 200 ? EXIT_SUCCESS : EXIT_FAILURE;
}
