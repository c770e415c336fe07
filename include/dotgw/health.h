/*
 * health.h - what /healthz and /readyz answer, and the `dotgw --health URL` probe.
 *
 * The main thread's loop beats once a second (health_beat) and, at each beat, gives the
 * workers' running totals of upstream answers and of SERVFAILs (health_sample). The metrics
 * thread reads the result (health_alive, health_ready). Times are CLOCK_MONOTONIC
 * milliseconds; every shared field is atomic, so the two threads need no lock.
 *
 *   alive: the last beat is younger than HEALTH_ALIVE_MS.
 *   ready: the rules are installed, and not (a query failed within the last HEALTH_READY_MS
 *          and no upstream answer was sent within it). "No query needed an upstream" and
 *          "an upstream answered" both count as ready.
 */
#ifndef DOTGW_HEALTH_H
#define DOTGW_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HEALTH_BEAT_MS	1000U  /* how often the main loop beats */
#define HEALTH_ALIVE_MS 5000U  /* older than this: /healthz is 503 */
#define HEALTH_READY_MS 30000U /* N of /readyz: the window for answers and failures */

struct health {
	_Atomic uint64_t beat_ms; /* the last beat; 0: none yet */
	_Atomic uint64_t good_ms; /* when the answer total last grew; 0: never */
	_Atomic uint64_t bad_ms;  /* when the failure total last grew; 0: never */
	_Atomic bool rules;	  /* the rules are installed (cleared when shutting down) */
	uint64_t good, bad;	  /* the last totals (the sampling thread only) */
};

/* health_now_ms - CLOCK_MONOTONIC in milliseconds (never 0). */
uint64_t health_now_ms(void);

/* health_init - a beat at now_ms, the totals as they are now, no rules yet. */
void health_init(struct health *h, uint64_t now_ms, uint64_t good_total, uint64_t bad_total);
void health_set_rules(struct health *h, bool installed);

/* health_sample - a beat at now_ms, with the totals of upstream answers and of failures. */
void health_sample(struct health *h, uint64_t now_ms, uint64_t good_total, uint64_t bad_total);

/* health_alive, health_ready - the verdict at now_ms; when false, a one-line reason in why. */
bool health_alive(const struct health *h, uint64_t now_ms, char *why, size_t len);
bool health_ready(const struct health *h, uint64_t now_ms, char *why, size_t len);

/*
 * health_url_parse - "http://HOST:PORT/PATH" (HOST an IPv4 address, [IPv6], or localhost;
 * PORT required; PATH default "/") into an address and a path. 0 or -EINVAL.
 */
struct sockaddr_storage;
int health_url_parse(const char *url, struct sockaddr_storage *ss, char *path, size_t len);

/*
 * health_status_parse - the status code of an HTTP/1.x status line at the start of buf (len
 * bytes, not necessarily terminated); -EAGAIN when the line is not complete, -EINVAL when it
 * is not a status line.
 */
int health_status_parse(const char *buf, size_t len);

/*
 * health_probe - `dotgw --health URL`: GET URL over a plain TCP connection (5 s limit in all).
 * EXIT_SUCCESS on status 200; otherwise EXIT_FAILURE, and the reason (the status line and the
 * body's first line, or the error) on err.
 */
int health_probe(const char *url, FILE *err);

#endif
