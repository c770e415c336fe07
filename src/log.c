/*
 * log.c - "LEVEL: message" lines on stderr, one write(2) per line so that lines from
 * several threads never interleave. When stderr is connected to the journal (JOURNAL_STREAM
 * is set) each line carries the syslog priority prefix "<N>" that journald understands.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "dotgw/log.h"

#define LOG_RATE_BURST 5

/* every thread logs; the level changes on reload: relaxed atomics */
static _Atomic int log_current = LOG_LVL_INFO;
static _Atomic int log_journal = -1; /* unknown until the first line */
static bool log_syslog;		     /* set once, before any thread starts */

static const int log_syslog_prio[] = {
	[LOG_LVL_ERROR] = LOG_ERR,
	[LOG_LVL_WARN] = LOG_WARNING,
	[LOG_LVL_INFO] = LOG_INFO,
	[LOG_LVL_DEBUG] = LOG_DEBUG,
};

void log_use_syslog(void)
{
	/* LOG_NDELAY: connect now, while the file system is still ours to open /dev/log */
	openlog("dotgw", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = true;
}

static const char *const log_names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

/* syslog priorities: err, warning, info, debug */
static const char log_prio[] = {
	[LOG_LVL_ERROR] = '3',
	[LOG_LVL_WARN] = '4',
	[LOG_LVL_INFO] = '6',
	[LOG_LVL_DEBUG] = '7',
};

int log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcmp(name, log_names[i]) == 0)
			return (int)i;
	if (strcmp(name, "warning") == 0)
		return LOG_LVL_WARN;
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	return log_names[level];
}

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&log_current, (int)level, memory_order_relaxed);
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&log_current, memory_order_relaxed);
}

static __attribute__((format(printf, 2, 0))) void log_vwrite(enum log_level level, const char *fmt,
							     va_list ap)
{
	char line[1024];
	int n = 0, m, journal;

	if (log_syslog) {
		vsyslog(log_syslog_prio[level], fmt, ap);
		return;
	}
	journal = atomic_load_explicit(&log_journal, memory_order_relaxed);
	if (journal < 0) { /* any thread may find out first: they all find the same */
		journal = getenv("JOURNAL_STREAM") != NULL;
		atomic_store_explicit(&log_journal, journal, memory_order_relaxed);
	}
	if (journal)
		n = snprintf(line, sizeof(line), "<%c>", log_prio[level]);
	n += snprintf(line + n, sizeof(line) - (size_t)n, "%s: ", log_names[level]);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* A failed log write has nowhere to be reported. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}

void log_ratelimited(struct log_ratelimit *rl, enum log_level level, const char *fmt, ...)
{
	struct timespec ts;
	uint64_t now;
	va_list ap;

	if (!log_enabled(level))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (rl->last_ms == 0 || now - rl->last_ms >= 1000) {
		if (rl->suppressed)
			log_msg(level, "(%u similar messages suppressed)", rl->suppressed);
		rl->tokens = LOG_RATE_BURST;
		rl->suppressed = 0;
		rl->last_ms = now;
	}
	if (rl->tokens == 0) {
		rl->suppressed++;
		return;
	}
	rl->tokens--;
	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}
