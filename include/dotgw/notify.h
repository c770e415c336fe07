/*
 * notify.h - readiness notification for systemd's Type=notify (sd_notify(3)'s protocol,
 * without libsystemd): one datagram of "KEY=value" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET. Nothing happens when it is unset.
 */
#ifndef DOTGW_NOTIFY_H
#define DOTGW_NOTIFY_H

/*
 * notify_send - format the state lines (printf-style) and send them. 1 when sent, 0 when
 * $NOTIFY_SOCKET is unset or not a path ('/...') or abstract ('@...') socket name, -errno on
 * failure (nobody need care: a daemon runs on without its supervisor hearing from it).
 */
int notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
