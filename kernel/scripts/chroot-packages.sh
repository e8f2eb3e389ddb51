# Runs inside the chroot (bash -c): chroot-packages WANT_RUSTC WANT_LINUX VERSIONS PKG...
# Installs the packages, preferring the known-good rustc and linux-source, and
# writes the versions used to VERSIONS. Says clearly when a preferred version
# is gone from the mirror.
set -euo pipefail
want_rustc=$1 want_linux=$2 versions=$3
shift 3
warn() { printf '[vmspace-kernel] WARNING: %s\n' "$*" >&2; }
candidate() { apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p'; }

apt-get update -q
# linux-source: the preferred series, else the newest the mirror has.
linux_pkg=linux-source-$want_linux
cand=$(candidate "$linux_pkg")
if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
	linux_pkg=$(apt-cache pkgnames linux-source- | grep -E '^linux-source-[0-9]+\.[0-9]+$' | sort -V | tail -n1)
	[ -n "$linux_pkg" ] || { echo "no linux-source package on the mirror" >&2; exit 1; }
	warn "linux-source-$want_linux is no longer on the mirror; using $linux_pkg ($(candidate "$linux_pkg")) instead"
fi
# rustc: sid carries one version; keep it if it is the preferred one, say so if not.
rc=$(candidate rustc)
case "$rc" in
*"$want_rustc"*) ;;
*) warn "rustc $want_rustc is no longer on the mirror; using rustc $rc instead" ;;
esac
apt-get install -y -q --no-install-recommends "$@" "$linux_pkg"

ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo none; }
{
	echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "rustc=$(rustc --version)"
	echo "rustc_pkg=$(ver rustc)"
	echo "rust_src_pkg=$(ver rust-src)"
	echo "bindgen=$(bindgen --version 2>/dev/null | head -n1)"
	echo "clang=$(clang --version | head -n1)"
	echo "linux_source_pkg=$linux_pkg"
	echo "linux_source_version=$(ver "$linux_pkg")"
	echo "linux_source_tarball=$(ls /usr/src/"$linux_pkg".tar.* | head -n1)"
} >"$versions.tmp"
mv "$versions.tmp" "$versions"
