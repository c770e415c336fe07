/*
 * privs.c - drop from root to an unprivileged user with libcap, keeping the two capabilities
 * the running daemon needs:
 *   CAP_NET_ADMIN         remove dotgw's rules at exit (nftables, rtnetlink); IP_TRANSPARENT
 *                         and SO_MARK on sockets opened later (upstream reconnects, reply
 *                         sockets for a new original destination)
 *   CAP_NET_BIND_SERVICE  bind reply sockets to ORIGINAL-DESTINATION:53
 * The order is fixed: bounding set first (needs CAP_SETPCAP), then groups, then uid with
 * keep-caps, then the final capability sets, then verification.
 */
#include <errno.h>
#include <stdbool.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "dotgw/privs.h"

static const cap_value_t privs_keep[] = {CAP_NET_ADMIN, CAP_NET_BIND_SERVICE};
#define PRIVS_NKEEP (sizeof(privs_keep) / sizeof(privs_keep[0]))

static bool privs_kept(cap_value_t cap)
{
	for (size_t i = 0; i < PRIVS_NKEEP; i++)
		if (privs_keep[i] == cap)
			return true;
	return false;
}

static int privs_lookup(const char *user, uid_t *uid, gid_t *gid, const char **name)
{
	const struct passwd *pw;

	errno = 0;
	pw = getpwnam(user ? user : "dotgw");
	if (!pw && !user) {
		user = "nobody";
		pw = getpwnam(user);
	}
	if (!pw)
		return errno ? -errno : -ENOENT;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	*name = user ? user : "dotgw";
	return 0;
}

/* privs_set_caps - permitted = effective = privs_keep, inheritable empty. */
static int privs_set_caps(void)
{
	cap_t caps = cap_init();
	int r = 0;

	if (!caps)
		return -errno;
	if (cap_set_flag(caps, CAP_PERMITTED, PRIVS_NKEEP, privs_keep, CAP_SET) < 0 ||
	    cap_set_flag(caps, CAP_EFFECTIVE, PRIVS_NKEEP, privs_keep, CAP_SET) < 0 ||
	    cap_set_proc(caps) < 0)
		r = -errno;
	cap_free(caps);
	return r;
}

/* privs_verify - the process holds exactly privs_keep and cannot become root again. */
static int privs_verify(uid_t uid)
{
	cap_t caps = cap_get_proc();
	cap_flag_value_t v;
	int r = 0;

	if (!caps)
		return -errno;
	for (cap_value_t c = 0; c <= CAP_LAST_CAP && r == 0; c++) {
		for (cap_flag_t f = CAP_EFFECTIVE; f <= CAP_INHERITABLE; f++) {
			if (cap_get_flag(caps, c, f, &v) < 0) {
				r = -errno;
				break;
			}
			if ((v == CAP_SET) != (f != CAP_INHERITABLE && privs_kept(c))) {
				r = -EPERM;
				break;
			}
		}
		if (r == 0 && !privs_kept(c) && cap_get_bound(c) > 0)
			r = -EPERM;
	}
	cap_free(caps);
	if (r == 0 && uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		r = -EPERM;
	return r;
}

int privs_drop(const char *user, char *desc, size_t desclen)
{
	const char *name = NULL;
	uid_t uid = 0;
	gid_t gid = 0;
	int r;

	r = privs_lookup(user, &uid, &gid, &name);
	if (r < 0)
		return r;

	/* 1. Bounding set: nothing outside privs_keep can ever come back (needs CAP_SETPCAP). */
	for (cap_value_t c = 0; c < (cap_value_t)cap_max_bits(); c++)
		if (!privs_kept(c) && cap_get_bound(c) > 0 && cap_drop_bound(c) < 0)
			return -errno;
	/* 2. Groups, while we still hold CAP_SETGID. */
	if (setresgid(gid, gid, gid) < 0)
		return -errno;
	if (setgroups(0, NULL) < 0)
		return -errno;
	/* 3. The uid: keep-caps so that the permitted set survives the change. */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return -errno;
	if (setresuid(uid, uid, uid) < 0)
		return -errno;
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return -errno;
	/* 4. Only what the running daemon uses, no ambient set, no way to gain more. */
	r = privs_set_caps();
	if (r < 0)
		return r;
	if (cap_reset_ambient() < 0)
		return -errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
#ifdef DOTGW_SANITIZE
	/* LeakSanitizer ptraces the process at exit; a uid change cleared "dumpable". */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	r = privs_verify(uid);
	if (r < 0)
		return r;
	snprintf(desc, desclen, "%s (uid %u)", name, (unsigned int)uid);
	return 0;
}
