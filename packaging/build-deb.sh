#!/bin/sh
# Builds the Debian package: packaging/build-deb.sh [BUILD_DIR]
# -> BUILD_DIR/deb/sidetap_VERSION-1_ARCH.deb (default BUILD_DIR: build-deb
# in the source tree). The build tree gets Debian's compiler and linker
# flags (dpkg-buildflags, all hardening on), no tests, and the system files
# (units, /etc/sidetap, logrotate); then cpack makes the package.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-deb}
jobs=${JOBS:-2}

export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cppflags=$(dpkg-buildflags --get CPPFLAGS)
CFLAGS="$(dpkg-buildflags --get CFLAGS) $cppflags"
CXXFLAGS="$(dpkg-buildflags --get CXXFLAGS) $cppflags"
LDFLAGS=$(dpkg-buildflags --get LDFLAGS)
export CFLAGS CXXFLAGS LDFLAGS

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=None -DCMAKE_INSTALL_PREFIX=/usr \
      -DSIDETAP_TESTS=OFF -DSIDETAP_SYSTEM_FILES=ON >/dev/null
cmake --build "$build" -j "$jobs"
rm -f "$build"/deb/*.deb
(cd "$build" && cpack -G DEB >/dev/null)
ls "$build"/deb/*.deb
