#!/bin/sh
# container-install.sh - install the dotgw package inside the Containerfile's image (both the
# 'prebuilt' and the default 'source' stage run it): apt brings the run-time libraries the
# package depends on, and its postinst creates the system user 'dotgw'. A base that already
# holds every dependency (or has fresh package lists) installs it without the network;
# otherwise apt-get update first. ca-certificates: the system trust store the default upstreams
# are verified against. Then the image is checked: the binary runs, the user exists, the
# package's configuration passes --check-config.
#
# Usage (in a RUN line): sh container-install.sh PATH-TO-dotgw.deb
set -e
deb=$1
export DEBIAN_FRONTEND=noninteractive
if apt-get install -y -q --no-install-recommends "$deb" ca-certificates >/tmp/apt.log 2>&1; then
	cat /tmp/apt.log
else
	echo "dotgw image: not installable from the base alone: apt-get update"
	apt-get update -q
	apt-get install -y -q --no-install-recommends "$deb" ca-certificates
fi
rm -rf /tmp/apt.log "$deb" /var/lib/apt/lists/* /var/cache/apt/*.bin
/usr/sbin/dotgw --version
id dotgw
/usr/sbin/dotgw --config /etc/dotgw/dotgw.conf --check-config
