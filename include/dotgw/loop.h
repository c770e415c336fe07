/*
 * loop.h - one epoll event loop per thread, with timers on CLOCK_MONOTONIC kept in a binary
 * heap, and deferred calls. Watches, timers and deferred calls are embedded in their owners'
 * structs; callbacks get a pointer to the embedded member (use container_of to reach the
 * owner). Level-triggered.
 */
#ifndef DOTGW_LOOP_H
#define DOTGW_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct loop;

struct loop_watch {
	int fd;
	uint32_t events; /* EPOLLIN / EPOLLOUT currently asked for */
	void (*cb)(struct loop_watch *w, uint32_t revents);
};

struct loop_timer {
	uint64_t when_ms; /* deadline, in loop_now_ms() time */
	size_t heap_idx;  /* 0 when not armed; else index + 1 */
	void (*cb)(struct loop_timer *t);
};

/*
 * A deferred call runs once, after the events and timers of the current iteration, before the
 * loop waits again: what one iteration produced (queries for one connection, answers to many
 * clients) then leaves in one system call instead of one each.
 */
struct loop_defer {
	TAILQ_ENTRY(loop_defer) link; /* in the loop's list while queued */
	bool queued;
	void (*cb)(struct loop_defer *d);
};

/* loop_new - 0 and *out, or -errno. */
int loop_new(struct loop **out);
void loop_free(struct loop *loop);

/* loop_watch_add - start watching w->fd for events (EPOLLIN/EPOLLOUT); 0 or -errno. */
int loop_watch_add(struct loop *loop, struct loop_watch *w, uint32_t events);
/* loop_watch_mod - change the events asked for; a no-op when they are unchanged. */
int loop_watch_mod(struct loop *loop, struct loop_watch *w, uint32_t events);
/* loop_watch_del - stop watching (before closing the fd). */
void loop_watch_del(struct loop *loop, struct loop_watch *w);

static inline void loop_timer_init(struct loop_timer *t, void (*cb)(struct loop_timer *t))
{
	t->when_ms = 0;
	t->heap_idx = 0;
	t->cb = cb;
}

static inline bool loop_timer_armed(const struct loop_timer *t)
{
	return t->heap_idx != 0;
}

/* loop_timer_set - (re)arm t to fire at when_ms; 0 or -ENOMEM. */
int loop_timer_set(struct loop *loop, struct loop_timer *t, uint64_t when_ms);
/* loop_timer_cancel - disarm t; harmless when it is not armed. */
void loop_timer_cancel(struct loop *loop, struct loop_timer *t);

static inline void loop_defer_init(struct loop_defer *d, void (*cb)(struct loop_defer *d))
{
	d->queued = false;
	d->cb = cb;
}

/* loop_defer - have d->cb run at the end of this iteration; a no-op when d already waits. */
void loop_defer(struct loop *loop, struct loop_defer *d);
/* loop_defer_cancel - forget d (before freeing its owner); harmless when it does not wait. */
void loop_defer_cancel(struct loop *loop, struct loop_defer *d);

/* loop_now_ms - CLOCK_MONOTONIC milliseconds, refreshed once per loop iteration. */
uint64_t loop_now_ms(const struct loop *loop);

/* loop_run - dispatch events until loop_stop(); 0, or -errno if epoll_wait fails. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

#endif
