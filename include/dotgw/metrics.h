/*
 * metrics.h - a Prometheus text endpoint (GET /metrics), with /healthz and /readyz, served by
 * libmicrohttpd (loaded at run time: metrics_load) on its own thread. What it serves comes from a
 * render callback, so this module knows HTTP only.
 */
#ifndef DOTGW_METRICS_H
#define DOTGW_METRICS_H

#include <stdint.h>
#include <stdio.h>

struct metrics;

/* Writes the whole exposition to out; runs on the server's thread. */
typedef void (*metrics_render_fn)(void *data, FILE *out);

/*
 * metrics_parse_addr - "PORT", "ADDR:PORT" or "[ADDR6]:PORT" (no address: 127.0.0.1) into a
 * sockaddr_storage, by addr_parse(). 0 or -EINVAL.
 */
struct sockaddr_storage;
int metrics_parse_addr(const char *spec, struct sockaddr_storage *ss);

/*
 * metrics_load - load libmicrohttpd (once; metrics_start does it too, but the daemon calls it
 * before it drops privileges and installs its seccomp filter). 0 or -ENOENT (logged).
 */
int metrics_load(void);

/*
 * metrics_start - listen on spec, from a socket that carries mark (SO_MARK: the bypass mark),
 * and serve /metrics, and /healthz and /readyz from health's verdicts (health.h) unless health
 * is NULL; 0 or -errno (logged).
 */
struct health;
int metrics_start(struct metrics **out, const char *spec, uint32_t mark, metrics_render_fn render,
		  void *data, const struct health *health);
void metrics_stop(struct metrics *m);

#endif
