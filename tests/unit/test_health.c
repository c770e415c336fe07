/*
 * test_health.c - the pure parts of health.c: the liveness and readiness verdicts over a
 * timeline of beats and totals, the URL parser of `dotgw --health`, and the status-line
 * parser. The probe itself talks to a real dotgw in tests/netns/health.test.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "dotgw/health.h"

static void verdicts(void)
{
	struct health h;
	char why[256];
	uint64_t t = 1000000;

	health_init(&h, t, 7, 3);
	CHECK(health_alive(&h, t, why, sizeof(why)));
	CHECK(!health_ready(&h, t, why, sizeof(why)));
	CHECK(strstr(why, "rules are not installed") != NULL);
	health_set_rules(&h, true);
	/* no query needed an upstream yet: ready */
	CHECK(health_ready(&h, t, why, sizeof(why)));
	/* the totals at init are the base: the same totals later are no event */
	health_sample(&h, t + 1000, 7, 3);
	CHECK(health_ready(&h, t + 1000, why, sizeof(why)));
	/* the main loop stops beating: not alive (and so not ready) past HEALTH_ALIVE_MS */
	CHECK(health_alive(&h, t + 1000 + HEALTH_ALIVE_MS, why, sizeof(why)));
	CHECK(!health_alive(&h, t + 1001 + HEALTH_ALIVE_MS, why, sizeof(why)));
	CHECK(strstr(why, "main loop last ran") != NULL);
	CHECK(!health_ready(&h, t + 1001 + HEALTH_ALIVE_MS, why, sizeof(why)));
	/* a failure with no answer ever: not ready */
	t += 2000;
	health_sample(&h, t, 7, 4);
	CHECK(!health_ready(&h, t, why, sizeof(why)));
	CHECK(strstr(why, "no upstream answer was sent yet") != NULL);
	/* an answer: ready at once, though failures go on */
	t += 1000;
	health_sample(&h, t, 8, 5);
	CHECK(health_ready(&h, t, why, sizeof(why)));
	/* failures only, while the answer is within the window: still ready */
	health_sample(&h, t + HEALTH_READY_MS, 8, 6);
	CHECK(health_ready(&h, t + HEALTH_READY_MS, why, sizeof(why)));
	/* ...and once it is not */
	t += HEALTH_READY_MS + 1000;
	health_sample(&h, t, 8, 7);
	CHECK(!health_ready(&h, t, why, sizeof(why)));
	CHECK(strstr(why, "no upstream answer was sent for") != NULL);
	/* no failure within the window any more (no query needed an upstream): ready again */
	for (uint64_t s = t + 1000; s <= t + HEALTH_READY_MS + 1000; s += 1000)
		health_sample(&h, s, 8, 7);
	CHECK(health_ready(&h, t + HEALTH_READY_MS + 1000, why, sizeof(why)));
	/* shutting down */
	health_set_rules(&h, false);
	CHECK(!health_ready(&h, t + HEALTH_READY_MS + 1000, why, sizeof(why)));
}

static void urls(void)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
	char path[64], a[INET6_ADDRSTRLEN];
	static const char *const bad[] = {
		"",
		"127.0.0.1:9153/readyz",
		"https://127.0.0.1:9153/readyz",
		"http://127.0.0.1/readyz",
		"http://127.0.0.1:/readyz",
		"http://127.0.0.1:0/",
		"http://127.0.0.1:65536/",
		"http://127.0.0.1:9153x/",
		"http://example.org:80/",
		"http://[::1/",
		"http://[::1]/",
		"http://[::1]:80x",
		"http://:80/",
		"http://127.0.0.1:9153/a b",
		"http://127.0.0.1:9153/a\r\nX: y",
		/* one element: a path longer than the caller's buffer */
		("http://127.0.0.1:9153/"
		 "0123456789012345678901234567890123456789012345678901234567890123"),
	};

	CHECK_EQ(health_url_parse("http://127.0.0.1:9153/readyz", &ss, path, sizeof(path)), 0);
	CHECK_EQ(ss.ss_family, AF_INET);
	CHECK_EQ(ntohs(s4->sin_port), 9153);
	CHECK(!strcmp(inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a)), "127.0.0.1"));
	CHECK(!strcmp(path, "/readyz"));
	CHECK_EQ(health_url_parse("http://localhost:80", &ss, path, sizeof(path)), 0);
	CHECK(!strcmp(inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a)), "127.0.0.1"));
	CHECK(!strcmp(path, "/"));
	CHECK_EQ(health_url_parse("http://[::1]:9153/healthz", &ss, path, sizeof(path)), 0);
	CHECK_EQ(ss.ss_family, AF_INET6);
	CHECK_EQ(ntohs(s6->sin6_port), 9153);
	CHECK(!strcmp(inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a)), "::1"));
	CHECK(!strcmp(path, "/healthz"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = health_url_parse(bad[i], &ss, path, sizeof(path));

		if (r != -EINVAL)
			fprintf(stderr, "accepted: '%s'\n", bad[i]);
		CHECK_EQ(r, -EINVAL);
	}
}

static void status_lines(void)
{
#define S(str) health_status_parse(str, sizeof(str) - 1)
	CHECK_EQ(S("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"), 200);
	CHECK_EQ(S("HTTP/1.0 503 Service Unavailable\r\n"), 503);
	CHECK_EQ(S("HTTP/1.1 404\r\n"), 404);
	CHECK_EQ(S("HTTP/1.1 200 OK"), -EAGAIN);
	CHECK_EQ(S("HTTP/1.1 20 OK\r\n"), -EINVAL);
	CHECK_EQ(S("HTTP/1.1 2000 OK\r\n"), -EINVAL);
	CHECK_EQ(S("HTTP/2 200 OK\r\n"), -EINVAL);
	CHECK_EQ(S("SSH-2.0-OpenSSH_9.2\r\n"), -EINVAL);
	CHECK_EQ(S("HTTP/1.1 099 x\r\n"), -EINVAL);
#undef S
}

int main(void)
{
	verdicts();
	urls();
	status_lines();
	return check_done("health");
}
