/*
 * test_sandbox.c - the seccomp filter of src/sandbox.c, applied in child processes: what it
 * denies kills the child with SIGSYS (or fails with EPERM in the sanitizer variant), and what
 * the daemon needs still works: threads (clone3 says ENOSYS, glibc falls back to clone),
 * sockets, files, time; bpf() only for BPF_PROG_QUERY (dataplane.c), any other command kills.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dotgw/sandbox.h"

#define CHILD_FAIL 3 /* a child's own check failed */

/* run - fork; the child applies the filter (sanitizer variant or not) and runs fn, whose
 * return value is its exit status. Returns the child's wait status. */
static int run(bool sanitizer, int (*fn)(void))
{
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		if (sandbox_apply(sanitizer) < 0)
			_exit(CHILD_FAIL + 1);
		_exit(fn());
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

static bool killed_by_sigsys(int status)
{
	return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
}

static bool exited(int status, int code)
{
	return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

static int do_execve(void)
{
	static char prog[] = "true";
	char *argv[] = {prog, NULL}, *envp[] = {NULL};

	execve("/bin/true", argv, envp);
	return errno == EPERM ? 0 : CHILD_FAIL;
}

static int do_unshare(void)
{
	unshare(CLONE_NEWNET);
	return errno == EPERM ? 0 : CHILD_FAIL;
}

static int do_clone_newuser(void)
{
	long r = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), 0, 0, 0, 0);

	if (r == 0)
		_exit(0); /* a child in a new user namespace: the filter failed */
	return CHILD_FAIL;
}

/* bpf(BPF_PROG_LOAD) with no attributes: the kernel would say EINVAL or EPERM */
static int do_bpf_load(void)
{
	syscall(SYS_bpf, 5L, NULL, 0L);
	return CHILD_FAIL;
}

/* BPF_PROG_QUERY with the high bits of the command set: not the command the filter lets by */
static int do_bpf_query_high(void)
{
	syscall(SYS_bpf, (1L << 32) | 16L, NULL, 0L);
	return CHILD_FAIL;
}

/* BPF_PROG_QUERY passes the filter: the kernel answers (an error, for no attributes) */
static int do_bpf_query(void)
{
	syscall(SYS_bpf, 16L, NULL, 0L);
	return 0;
}

static int do_setuid(void)
{
	if (setuid(getuid()) < 0)
		return CHILD_FAIL + 1;
	return CHILD_FAIL;
}

static void *thread_main(void *arg)
{
	*(int *)arg = 42;
	return NULL;
}

/* What the daemon does after setup must keep working. */
static int do_allowed(void)
{
	struct timespec ts;
	pthread_t t;
	int v = 0, fd;

	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		return CHILD_FAIL;
	if (pthread_create(&t, NULL, thread_main, &v) != 0 || pthread_join(t, NULL) != 0 || v != 42)
		return CHILD_FAIL + 10;
	fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return CHILD_FAIL + 11;
	close(fd);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return CHILD_FAIL + 12;
	close(fd);
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0 || getpid() <= 0)
		return CHILD_FAIL + 13;
	/* a fork without new namespaces is a clone too */
	fd = (int)fork();
	if (fd == 0)
		_exit(0);
	if (fd < 0 || waitpid(fd, NULL, 0) != fd)
		return CHILD_FAIL + 14;
	return 0;
}

/* Sanitizer variant: LeakSanitizer's ptrace is allowed (the call itself may fail). */
static int do_ptrace(void)
{
	errno = 0;
	if (ptrace(PTRACE_PEEKUSER, getppid(), NULL, NULL) == -1 && errno == EPERM)
		return 0; /* not attached: ESRCH from the kernel, not EPERM from the filter */
	return errno == ESRCH ? 0 : CHILD_FAIL;
}

int main(void)
{
	int st;

	st = run(false, do_execve);
	CHECK(killed_by_sigsys(st));
	st = run(false, do_unshare);
	CHECK(killed_by_sigsys(st));
	st = run(false, do_clone_newuser);
	CHECK(killed_by_sigsys(st));
	st = run(false, do_setuid);
	CHECK(killed_by_sigsys(st));
	st = run(false, do_allowed);
	CHECK(exited(st, 0));
	st = run(false, do_bpf_load);
	CHECK(killed_by_sigsys(st));
	st = run(false, do_bpf_query_high);
	CHECK(killed_by_sigsys(st));
	st = run(false, do_bpf_query);
	CHECK(exited(st, 0));

	/* the sanitizer variant: EPERM instead of SIGSYS, ptrace not denied */
	st = run(true, do_execve);
	CHECK(exited(st, 0));
	st = run(true, do_unshare);
	CHECK(exited(st, 0));
	st = run(true, do_allowed);
	CHECK(exited(st, 0));
	st = run(true, do_ptrace);
	CHECK(exited(st, 0));
	return check_done("sandbox");
}
