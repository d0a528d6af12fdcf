#!/usr/bin/env bash
# Fetch CivetWeb's source from Debian's archive (source package civetweb,
# pinned below) into DEST, verify its SHA-256 and unpack it.
#
# Debian 12's binary libcivetweb1 is built for OpenSSL 1.1 and loads libssl at
# run time; under OpenSSL 3 it silently runs without TLS and crashes on the
# first HTTPS connection. So kycd builds CivetWeb itself from this source.
#
# No mirror is named here: a private apt configuration is derived from the
# machine's own sources entry, so the system's apt setup is left untouched.
# Usage: deploy/fetch-civetweb.sh DEST   (prints the unpacked source dir)
set -euo pipefail
dest=${1:?usage: fetch-civetweb.sh DEST}
version=1.15+dfsg-4
tarball=civetweb_1.15+dfsg.orig.tar.xz
sha256=ec372e9737bc820118bbb735f46a07d41f795814ca0f38bc6e67048e7a460f33
srcdir="$dest/civetweb-1.15"

if [ -f "$srcdir/src/civetweb.c" ]; then echo "$srcdir"; exit 0; fi
mkdir -p "$dest"
if [ ! -f "$dest/$tarball" ] || ! echo "$sha256  $dest/$tarball" | sha256sum -c --status; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/src"
  found=0
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed 's/^Types: deb$/Types: deb-src/' "$f" > "$tmp/src/$(basename "$f")"; found=1
  done
  if [ -f /etc/apt/sources.list ]; then
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > "$tmp/src/legacy.list"
    [ -s "$tmp/src/legacy.list" ] && found=1
  fi
  [ "$found" = 1 ] || { echo "fetch-civetweb: no apt sources found on this machine" >&2; exit 1; }
  o=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$tmp/src" -o "Dir::State::Lists=$tmp/lists")
  apt-get "${o[@]}" update -qq >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
  (cd "$tmp" && apt-get "${o[@]}" source --download-only "civetweb=$version") >>"$tmp/log" 2>&1 \
    || { cat "$tmp/log" >&2; exit 1; }
  mv "$tmp/$tarball" "$dest/$tarball"
fi
echo "$sha256  $dest/$tarball" | sha256sum -c --status || { echo "fetch-civetweb: checksum mismatch for $tarball" >&2; exit 1; }
tar -C "$dest" -xJf "$dest/$tarball"
echo "$srcdir"
