/*
 * test_cfgwatch.c - cfgwatch.c on a real directory and a real event loop (no root): one
 * reload for one kubelet-style ConfigMap update, an in-place write and a rename over the file
 * (also where a symlink leads into another directory);
 * none for the same bytes again or for another file; a reload that cannot run now is asked
 * again; --watch-config needs a file that can be read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dotgw/cfgwatch.h"
#include "dotgw/loop.h"

struct tw {
	struct loop *loop;
	struct loop_timer stop;
	int calls;
	int eagain; /* answer -EAGAIN this many times first */
};

static struct tw tw;
static char dir[64];
static int stamp;

static int on_reload(void *data)
{
	struct tw *t = data;

	t->calls++;
	if (t->eagain > 0) {
		t->eagain--;
		return -EAGAIN;
	}
	return 0;
}

static void on_stop(struct loop_timer *t)
{
	(void)t;
	loop_stop(tw.loop);
}

static uint64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* run - the loop for ms milliseconds (longer than a burst's settling time) */
static void run(unsigned int ms)
{
	loop_timer_set(tw.loop, &tw.stop, clock_ms() + ms);
	loop_run(tw.loop);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* kubelet_update - the atomic writer: a new ..<timestamp> directory, ..data_tmp renamed over
 * ..data, the old directory removed */
static void kubelet_update(const char *text)
{
	char ts[64], p[160], q[192], old[64] = "";
	ssize_t n;

	path_of(p, sizeof(p), "..data");
	n = readlink(p, old, sizeof(old) - 1);
	old[n > 0 ? n : 0] = '\0';
	snprintf(ts, sizeof(ts), "..2026_12_04_10_00_%02d.%09d", stamp, stamp);
	stamp++;
	path_of(p, sizeof(p), ts);
	CHECK(mkdir(p, 0755) == 0);
	snprintf(q, sizeof(q), "%s/dotgw.conf", p);
	write_file(q, text);
	path_of(p, sizeof(p), "..data_tmp");
	CHECK(symlink(ts, p) == 0);
	path_of(q, sizeof(q), "..data");
	CHECK(rename(p, q) == 0);
	path_of(p, sizeof(p), "dotgw.conf");
	if (access(p, F_OK) != 0)
		CHECK(symlink("..data/dotgw.conf", p) == 0);
	if (old[0]) {
		path_of(p, sizeof(p), old);
		snprintf(q, sizeof(q), "%s/dotgw.conf", p);
		CHECK(unlink(q) == 0);
		CHECK(rmdir(p) == 0);
	}
}

static void test_kubelet(void)
{
	struct cfgwatch *w = NULL;
	char conf[160];

	kubelet_update("upstream = 192.0.2.1#a.test\n");
	path_of(conf, sizeof(conf), "dotgw.conf");
	CHECK_EQ(cfgwatch_open(&w, tw.loop, conf, on_reload, &tw), 0);
	run(100);
	CHECK_EQ(tw.calls, 0); /* nothing changed */
	kubelet_update("upstream = 192.0.2.2#a.test\n");
	run(600);
	CHECK_EQ(tw.calls, 1); /* one update, one reload */
	kubelet_update("upstream = 192.0.2.2#a.test\n");
	run(600);
	CHECK_EQ(tw.calls, 1); /* the same bytes: none */
	/* a reload that cannot run now is asked again (CFGWATCH_RETRY_MS) */
	tw.eagain = 1;
	kubelet_update("upstream = 192.0.2.3#a.test\n");
	run(CFGWATCH_SETTLE_MS + CFGWATCH_RETRY_MS + 500);
	CHECK_EQ(tw.calls, 3);
	run(500);
	CHECK_EQ(tw.calls, 3);
	cfgwatch_close(w);
}

static void test_plain(void)
{
	struct cfgwatch *w = NULL;
	char conf[160], tmp[160], other[160];

	path_of(conf, sizeof(conf), "plain.conf");
	path_of(tmp, sizeof(tmp), ".plain.conf.swp");
	path_of(other, sizeof(other), "other");
	write_file(conf, "log-level = info\n");
	tw.calls = 0;
	CHECK_EQ(cfgwatch_open(&w, tw.loop, conf, on_reload, &tw), 0);
	write_file(conf, "log-level = debug\n"); /* in place */
	run(600);
	CHECK_EQ(tw.calls, 1);
	write_file(tmp, "log-level = warn\n"); /* an editor's save */
	CHECK(rename(tmp, conf) == 0);
	run(600);
	CHECK_EQ(tw.calls, 2);
	write_file(other, "x\n"); /* another file */
	run(500);
	CHECK_EQ(tw.calls, 2);
	CHECK(unlink(conf) == 0); /* gone: reported, no reload */
	run(600);
	CHECK_EQ(tw.calls, 2);
	write_file(conf, "log-level = warn\n"); /* back, the same bytes as last read */
	run(600);
	CHECK_EQ(tw.calls, 2);
	cfgwatch_close(w);
	unlink(other);
	unlink(conf);
	/* a file that cannot be read is no file to watch */
	CHECK_EQ(cfgwatch_open(&w, tw.loop, conf, on_reload, &tw), -ENOENT);
	cfgwatch_close(NULL);
}

/* a symlink into another directory: that directory is watched too */
static void test_elsewhere(void)
{
	struct cfgwatch *w = NULL;
	char sub[128], real[160], tmp[160], link[160];

	path_of(sub, sizeof(sub), "elsewhere");
	CHECK(mkdir(sub, 0755) == 0);
	snprintf(real, sizeof(real), "%s/real.conf", sub);
	snprintf(tmp, sizeof(tmp), "%s/real.conf.tmp", sub);
	path_of(link, sizeof(link), "link.conf");
	write_file(real, "log-level = info\n");
	CHECK(symlink(real, link) == 0); /* absolute */
	tw.calls = 0;
	CHECK_EQ(cfgwatch_open(&w, tw.loop, link, on_reload, &tw), 0);
	write_file(real, "log-level = debug\n"); /* in place, over there */
	run(600);
	CHECK_EQ(tw.calls, 1);
	write_file(tmp, "log-level = warn\n"); /* renamed over, over there */
	CHECK(rename(tmp, real) == 0);
	run(600);
	CHECK_EQ(tw.calls, 2);
	cfgwatch_close(w);
	unlink(link);
	unlink(real);
	rmdir(sub);
}

int main(void)
{
	char cmd[128];

	snprintf(dir, sizeof(dir), "/tmp/dotgw-test-cfgwatch-XXXXXX");
	if (!mkdtemp(dir) || loop_new(&tw.loop) < 0) {
		perror("setup");
		return 1;
	}
	loop_timer_init(&tw.stop, on_stop);
	test_kubelet();
	test_plain();
	test_elsewhere();
	loop_free(tw.loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_done("cfgwatch");
}
