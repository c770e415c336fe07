/*
 * cfgwatch.c - --watch-config: an inotify watch on the directory that holds the configuration
 * file, so that every way a file gets replaced is seen: a write in place (IN_CLOSE_WRITE), an
 * editor's or a configuration tool's temporary file renamed over it (IN_MOVED_TO), and the
 * kubelet's ConfigMap volume, where PATH is a symlink "dotgw.conf -> ..data/dotgw.conf" and an
 * update renames a new "..data" symlink over the old one (IN_MOVED_TO "..data"). A watch on the
 * file's inode would see none of the last two. Events name the configured file, or the first
 * component of its relative symlink target ("..data"); others in the directory are ignored.
 * When PATH resolves into another directory (a symlink to /srv/conf/dotgw.conf, or the kubelet's
 * "..<timestamp>" directory), that one is watched too, for the resolved file's name, and moved
 * after each check to wherever PATH resolves then.
 *
 * Invariants: a burst of events is one check, CFGWATCH_SETTLE_MS after its last event (at most
 * CFGWATCH_MAX_WAIT_MS after its first); a check reads the file and asks for a reload only when
 * its bytes differ from the last ones read (the start's, then each reload's: a refused file is
 * not asked again until it changes again). Only the main thread's loop touches this.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dotgw/cfgwatch.h"
#include "dotgw/log.h"

#define CFGWATCH_MASK \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ONLYDIR)

struct cfgwatch {
	struct loop *loop;
	struct loop_watch ino;	 /* the inotify fd */
	struct loop_timer check; /* the end of a burst, or a retry */
	uint64_t first_ms;	 /* first event of the pending burst (0: none) */
	int wd;			 /* the directory's watch (-1: lost) */
	int wd_target;		 /* the resolved file's directory's, when another (-1: none) */
	cfgwatch_reload_fn reload;
	void *data;
	unsigned char *content; /* the file's bytes as last read (NULL: never read) */
	size_t len;
	char path[PATH_MAX];
	char dir[PATH_MAX];
	char base[NAME_MAX + 1];
	char link_head[NAME_MAX + 1];	/* first component of a relative symlink target, or "" */
	char target_base[NAME_MAX + 1]; /* the resolved file's name (with wd_target) */
};

static void cfgwatch_event(struct loop_watch *lw, uint32_t revents);
static void cfgwatch_check(struct loop_timer *t);

/* cfgwatch_read - the file's bytes into *buf (malloc'd) and *len; 0 or -errno. */
static int cfgwatch_read(const char *path, unsigned char **buf, size_t *len)
{
	unsigned char *b = NULL;
	size_t n = 0, cap = 0;
	ssize_t got;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (n == cap) {
			unsigned char *nb;

			if (cap >= CFGWATCH_MAX_SIZE) {
				r = -EFBIG;
				break;
			}
			cap = cap ? cap * 2 : 4096;
			nb = realloc(b, cap);
			if (!nb) {
				r = -ENOMEM;
				break;
			}
			b = nb;
		}
		got = read(fd, b + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = -errno;
			break;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	if (r < 0) {
		free(b);
		return r;
	}
	*buf = b;
	*len = n;
	return 0;
}

/* cfgwatch_link_head - note the first component of path's relative symlink target, if any. */
static void cfgwatch_link_head(struct cfgwatch *w)
{
	char target[PATH_MAX];
	ssize_t n = readlink(w->path, target, sizeof(target) - 1);
	char *slash;

	w->link_head[0] = '\0';
	if (n <= 0 || target[0] == '/')
		return;
	target[n] = '\0';
	slash = strchr(target, '/');
	if (slash)
		*slash = '\0';
	if (strcmp(target, ".") && strcmp(target, "..") && strlen(target) < sizeof(w->link_head))
		strcpy(w->link_head, target);
}

/*
 * cfgwatch_follow - watch the directory path resolves into, when it is not the one holding
 * path; drop the watch of the one it resolved into before. Failures only lose that watch.
 */
static void cfgwatch_follow(struct cfgwatch *w)
{
	char *real = realpath(w->path, NULL), *slash;
	int wd = -1;

	slash = real ? strrchr(real, '/') : NULL;
	if (slash && strlen(slash + 1) < sizeof(w->target_base)) {
		strcpy(w->target_base, slash + 1);
		*slash = '\0';
		/* the same directory (inode) as the main watch gives its wd back */
		wd = inotify_add_watch(w->ino.fd, real[0] ? real : "/", CFGWATCH_MASK);
		if (wd < 0)
			log_warn("--watch-config: cannot watch '%s' (%s), where '%s' leads: "
				 "a change made there is not seen",
				 real, strerror(errno), w->path);
		if (wd == w->wd)
			wd = -1;
	}
	if (w->wd_target >= 0 && w->wd_target != wd)
		inotify_rm_watch(w->ino.fd, w->wd_target); /* gone already: EINVAL, fine */
	w->wd_target = wd;
	free(real);
}

int cfgwatch_open(struct cfgwatch **out, struct loop *loop, const char *path,
		  cfgwatch_reload_fn reload, void *data)
{
	struct cfgwatch *w;
	const char *slash;
	int r;

	if (!*path)
		return -EINVAL;
	if (strlen(path) >= sizeof(w->path))
		return -ENAMETOOLONG;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->loop = loop;
	w->reload = reload;
	w->data = data;
	w->wd = -1;
	w->wd_target = -1;
	loop_timer_init(&w->check, cfgwatch_check);
	strcpy(w->path, path);
	/* base and dir (calloc'd: terminated) of path */
	slash = strrchr(path, '/');
	slash = slash ? slash + 1 : path;
	if (!*slash || strlen(slash) >= sizeof(w->base)) {
		r = *slash ? -ENAMETOOLONG : -EISDIR;
		goto out_free;
	}
	strcpy(w->base, slash);
	if (slash == path)
		strcpy(w->dir, ".");
	else /* "/x" -> "/", "a/b/x" -> "a/b" */
		memcpy(w->dir, path, slash - path > 1 ? (size_t)(slash - path - 1) : 1);
	cfgwatch_link_head(w);
	r = cfgwatch_read(w->path, &w->content, &w->len);
	if (r < 0)
		goto out_free;
	w->ino.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ino.fd < 0) {
		r = -errno;
		goto out_free;
	}
	w->ino.cb = cfgwatch_event;
	w->wd = inotify_add_watch(w->ino.fd, w->dir, CFGWATCH_MASK);
	if (w->wd < 0) {
		r = -errno;
		goto out_close;
	}
	cfgwatch_follow(w);
	r = loop_watch_add(loop, &w->ino, EPOLLIN);
	if (r < 0)
		goto out_close;
	*out = w;
	return 0;

out_close:
	close(w->ino.fd);
out_free:
	free(w->content);
	free(w);
	return r;
}

void cfgwatch_close(struct cfgwatch *w)
{
	if (!w)
		return;
	loop_timer_cancel(w->loop, &w->check);
	loop_watch_del(w->loop, &w->ino);
	close(w->ino.fd);
	free(w->content);
	free(w);
}

/* cfgwatch_relevant - does an event in the directory concern the configured file? */
static bool cfgwatch_relevant(const struct cfgwatch *w, const struct inotify_event *ev)
{
	if (ev->mask & IN_Q_OVERFLOW)
		return true; /* events were lost: look */
	if (!ev->len)
		return false;
	if (ev->wd == w->wd_target && w->wd_target >= 0)
		return strcmp(ev->name, w->target_base) == 0;
	if (ev->wd != w->wd)
		return false;
	return strcmp(ev->name, w->base) == 0 ||
	       (w->link_head[0] && !strcmp(ev->name, w->link_head));
}

static void cfgwatch_event(struct loop_watch *lw, uint32_t revents)
{
	struct cfgwatch *w = container_of(lw, struct cfgwatch, ino);
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool seen = false;
	uint64_t now, when;
	ssize_t n;

	(void)revents;
	while ((n = read(lw->fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(void *)p;

			if (ev->wd == w->wd && (ev->mask & IN_IGNORED)) {
				log_warn("--watch-config: directory '%s' is gone: changes to '%s' "
					 "are no longer seen (SIGHUP still reloads)",
					 w->dir, w->path);
				w->wd = -1;
			} else if (ev->wd == w->wd_target && (ev->mask & IN_IGNORED)) {
				w->wd_target = -1; /* the kubelet removed an old "..<timestamp>" */
			} else if (cfgwatch_relevant(w, ev)) {
				seen = true;
			}
			p += sizeof(*ev) + ev->len;
		}
	}
	if (!seen)
		return;
	/* one check for a burst: after it settles, but not later than MAX_WAIT after it began */
	now = loop_now_ms(w->loop);
	when = now + CFGWATCH_SETTLE_MS;
	if (!w->first_ms)
		w->first_ms = now;
	if (when > w->first_ms + CFGWATCH_MAX_WAIT_MS)
		when = w->first_ms + CFGWATCH_MAX_WAIT_MS;
	if (loop_timer_set(w->loop, &w->check, when) < 0)
		log_warn("--watch-config: no memory for a timer: '%s' not checked", w->path);
}

static void cfgwatch_check(struct loop_timer *t)
{
	struct cfgwatch *w = container_of(t, struct cfgwatch, check);
	unsigned char *content;
	size_t len;
	int r;

	w->first_ms = 0;
	cfgwatch_link_head(w); /* the symlink may point elsewhere now */
	cfgwatch_follow(w);
	r = cfgwatch_read(w->path, &content, &len);
	if (r < 0) {
		log_warn("config file '%s' changed but cannot be read (%s): the running "
			 "configuration stays",
			 w->path, strerror(-r));
		return;
	}
	if (w->content && len == w->len && !memcmp(content, w->content, len)) {
		log_info("config file '%s' changed on disk, its content is unchanged: not "
			 "reloading",
			 w->path);
		free(content);
		return;
	}
	log_info("config file '%s' changed: reloading", w->path);
	r = w->reload(w->data);
	if (r == -EAGAIN) {
		free(content);
		if (loop_timer_set(w->loop, &w->check, loop_now_ms(w->loop) + CFGWATCH_RETRY_MS) <
		    0)
			log_warn("--watch-config: no memory for a timer: '%s' not checked",
				 w->path);
		return;
	}
	free(w->content);
	w->content = content;
	w->len = len;
}
