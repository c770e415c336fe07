#!/bin/sh
# bootstrap.sh - the README's two commands on a fresh Debian 12 machine (as root, or with sudo):
#   ./bootstrap.sh run [DOTGW-OPTION]...  install build dependencies, build, and run dotgw in
#                                         host scope with the default upstreams (Ctrl-C stops
#                                         it and removes its rules)
#   ./bootstrap.sh test                   install build and test dependencies, build three
#                                         times (gcc with -Werror; clang with ThreadSanitizer;
#                                         clang with ASan+UBSan and the fuzzers) and pass the
#                                         whole CTest suite with the first and the last, and
#                                         the tests of multi-threaded dotgw with TSan
#   ./bootstrap.sh bench                  install what bench/run.sh needs besides the test
#                                         dependencies: the peers it measures (their
#                                         services masked: the bench starts them itself, in
#                                         its namespaces), and build (then: sudo bench/run.sh)
set -eu
cd "$(dirname "$0")"
# The distribution's programs first: the packages below are installed for them (python3-yaml
# for /usr/bin/python3). A python3 earlier in PATH, such as a pyenv shim (a shell script: 0.7 s
# a start or more on these 2 cores, against 0.1 s), is another interpreter, and it slowed the
# suite: egress.test.sh alone starts python3 some 35 times, three times a run.
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH

RUN_PKGS="build-essential cmake pkg-config libmnl-dev libnftnl-dev libnetfilter-queue-dev
	libssl-dev libcap-dev libseccomp-dev libinih-dev libmicrohttpd-dev
	libfstrm-dev libprotobuf-c-dev libnghttp2-dev protobuf-c-compiler golang-github-dnstap-golang-dnstap-dev
	ca-certificates nftables iproute2"
TEST_PKGS="$RUN_PKGS clang clang-format libclang-rt-dev unbound unbound-anchor dnsutils knot-dnsutils
	dnsperf tcpdump openssl procps psmisc conntrack python3 python3-yaml curl prometheus valgrind dpkg-dev
	systemd groff-base fstrm-bin dnstap-ldns
	ansible ansible-lint mmdebstrap gpg file systemd-container podman runc netavark iptables"
# The peers bench/run.sh measures dotgw against, and their systemd units (masked on install).
BENCH_PKGS="knot-resolver dnsdist stubby linux-perf" # linux-perf: bench/miss_syscalls.sh
BENCH_UNITS="kresd.target kresd@.service kresd.service kres-cache-gc.service dnsdist.service
	dnsdist@.service stubby.service"
JOBS=$(nproc 2>/dev/null || echo 2)

need_root()
{
	if [ "$(id -u)" -ne 0 ]; then
		echo "bootstrap.sh: run me as root (sudo ./bootstrap.sh $1): I install packages" >&2
		echo "and dotgw installs nftables rules" >&2
		exit 1
	fi
}

# install_packages PKG...: apt-get, without letting the packages start their services (the
# test suite runs its own unbound inside network namespaces; the machine's DNS stays as it is).
install_packages()
{
	guard=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		guard=1
	fi
	rc=0
	{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "$@"; } || rc=$?
	[ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d
	return "$rc"
}

build()
{
	dir=$1
	shift
	cmake -S . -B "$dir" "$@"
	cmake --build "$dir" -j "$JOBS"
}

case "${1:-}" in
run)
	need_root run
	shift
	# shellcheck disable=SC2086 # word splitting of the package lists is intended
	install_packages $RUN_PKGS
	build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	exec build/dotgw --scope host "$@"
	;;
test)
	need_root test
	# shellcheck disable=SC2086
	install_packages $TEST_PKGS
	build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOTGW_WERROR=ON
	# The sanitizer builds run in the background, at the lowest priority, while the gcc suite
	# runs: its tests mostly wait (some 0.8 of the 2 CPUs busy on average; 466 s of CPU in a
	# 592-s run), so the builds take idle CPU instead of 75 s of their own after it.
	# ThreadSanitizer: only the daemon, the one binary its tests below run (the whole tree
	# took 31 s here, the daemon 14 s).
	(
		set -e
		nice -n 19 cmake -S . -B build-tsan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
			-DDOTGW_WERROR=ON -DDOTGW_TSAN=ON
		nice -n 19 cmake --build build-tsan -j "$JOBS" --target dotgw
		nice -n 19 cmake -S . -B build-asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
			-DDOTGW_WERROR=ON -DDOTGW_SANITIZE=ON -DDOTGW_FUZZ=ON
		nice -n 19 cmake --build build-asan -j "$JOBS"
	) >build/sanitizer-builds.log 2>&1 &
	builds=$!
	# kubernetes.test.sh validates the manifests with npm's kubernetes-models when it is
	# there (kubectl itself is not a Debian package: without it that test skips)
	if command -v npm >/dev/null 2>&1; then
		npm install --no-audit --no-fund --prefix build/k8s-models kubernetes-models@4 ||
			echo "bootstrap.sh: no kubernetes-models: kubernetes.test.sh skips its schema part"
	fi
	# The soak runs 60 s here and under the sanitizers below: two upstream restarts and two
	# reloads under load either way (soak.test.sh halves its cadence under 2 minutes), as the
	# 2-minute ASan run did. The long tests start first (their COST in tests/CMakeLists.txt).
	rc=0
	(cd build && DOTGW_SOAK_SECONDS=60 ctest --output-on-failure -j 2) || rc=$?
	brc=0
	wait "$builds" || brc=$?
	echo "bootstrap.sh: the sanitizer builds, made beside the gcc suite:"
	cat build/sanitizer-builds.log
	[ "$brc" -eq 0 ] || { echo "bootstrap.sh: a sanitizer build failed" >&2; exit 1; }
	[ "$rc" -eq 0 ] || exit "$rc"
	# ThreadSanitizer: the tests where workers, the metrics thread, the main thread (SIGUSR1,
	# reload) and libfstrm's thread (dnstap) share data. A race makes dotgw exit 66, which
	# they check. io_sync=0: lines written to the shared stderr must not pass for
	# synchronisation; tests/tsan.supp says why libfstrm's queue is suppressed.
	(cd build-tsan && TSAN_OPTIONS="io_sync=0 suppressions=$PWD/../tests/tsan.supp" \
		ctest --output-on-failure -j 2 -R '^netns_(nfqueue_matrix|metrics|health|reload|dnstap|egress)$')
	cd build-asan
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
	# the fuzz smoke runs: 10 s a target (DOTGW_FUZZ_SECONDS); tests/fuzz/run.sh fuzzes longer
	export DOTGW_SOAK_SECONDS=60 DOTGW_FUZZ_SECONDS=10
	# -LE nosan: not the tests that give a sanitizer no dotgw code to watch (the manifests,
	# the package, the format; tests/CMakeLists.txt), which the gcc stage ran
	exec ctest --output-on-failure -j 2 -LE nosan
	;;
bench)
	need_root bench
	# shellcheck disable=SC2086
	install_packages $TEST_PKGS $BENCH_PKGS
	# policy-rc.d kept them from starting now; masking keeps them from starting at boot
	# (kresd.target is wanted by multi-user.target from /lib, which "disable" cannot undo).
	# shellcheck disable=SC2086
	systemctl mask $BENCH_UNITS
	build build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDOTGW_WERROR=ON
	;;
*)
	echo "usage: $0 run [DOTGW-OPTION]... | test | bench" >&2
	exit 2
	;;
esac
