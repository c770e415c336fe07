/*
 * log.h - the daemon's one log module. Writes "LEVEL: message" lines to stderr. Pure modules
 * never log; the daemon's handlers log once, at the boundary. Per-packet problems go through
 * log_ratelimited() or stay at debug level.
 */
#ifndef DOTGW_LOG_H
#define DOTGW_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level {
	LOG_LVL_ERROR,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* A token bucket for one kind of message: at most `burst` lines, refilled one per second. */
struct log_ratelimit {
	uint64_t last_ms;
	unsigned int tokens;
	unsigned int suppressed;
};

/* log_level_parse - "error", "warn", "info" or "debug" to enum log_level, or -EINVAL. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);
void log_set_level(enum log_level level);
/* log_use_syslog - from now on, lines go to syslog (facility daemon) instead of stderr. */
void log_use_syslog(void);
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_ratelimited(struct log_ratelimit *rl, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                       \
	do {                                                 \
		if (log_enabled(LOG_LVL_DEBUG))              \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
