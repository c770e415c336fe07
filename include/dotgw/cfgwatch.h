/*
 * cfgwatch.h - --watch-config: notice that the configuration file changed (inotify on the
 * directory that holds it) and ask for a reload, once per change, only when its content did.
 */
#ifndef DOTGW_CFGWATCH_H
#define DOTGW_CFGWATCH_H

#include "dotgw/loop.h"

/* quiet time after the last event before the file is read (a burst is one update) */
#define CFGWATCH_SETTLE_MS 300
/* a burst that never settles is read this long after its first event all the same */
#define CFGWATCH_MAX_WAIT_MS 2000
/* a reload that could not run now (the previous one still drains) is asked again after this */
#define CFGWATCH_RETRY_MS 1000
/* a larger file is refused (reported, no reload) */
#define CFGWATCH_MAX_SIZE (4u << 20)

struct cfgwatch;

/*
 * cfgwatch_reload_fn - run the reload; 0 when it ran (applied or refused: the file was read),
 * -EAGAIN when it cannot run now (asked again after CFGWATCH_RETRY_MS).
 */
typedef int (*cfgwatch_reload_fn)(void *data);

/*
 * cfgwatch_open - watch the file at path (as given: a symlink is followed when read, and the
 * directory watched is the one that holds path) on loop, and call reload(data) after it
 * changed. Its present content is the reference. Call it while the directory can still be
 * opened (before the privilege drop); afterwards the file must stay readable to read it again,
 * as for SIGHUP. 0 and *out, or -errno.
 */
int cfgwatch_open(struct cfgwatch **out, struct loop *loop, const char *path,
		  cfgwatch_reload_fn reload, void *data);

/* cfgwatch_close - stop watching and free w; NULL is fine. */
void cfgwatch_close(struct cfgwatch *w);

#endif
