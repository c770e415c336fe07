/*
 * privs.h - dropping root once everything privileged is open.
 */
#ifndef DOTGW_PRIVS_H
#define DOTGW_PRIVS_H

#include <stddef.h>

/*
 * privs_drop - become user (NULL: "dotgw" when that user exists, else "nobody"), keeping
 * only CAP_NET_ADMIN and CAP_NET_BIND_SERVICE (permitted and effective; the bounding set is
 * cut to them, ambient and inheritable are emptied), with no_new_privs set; then verify that
 * root cannot be regained. On success writes "NAME (uid N)" to desc and returns 0; -errno
 * otherwise (-ENOENT: no such user).
 */
int privs_drop(const char *user, char *desc, size_t desclen);

#endif
