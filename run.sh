#!/usr/bin/env bash
# faultloop's one entry script (STYLE item 1).
#
#   ./run.sh setup            install the Debian packages the project needs that are missing
#   ./run.sh test [PRESET...] setup, then configure, build and ctest each preset
#                             (default: release faults asan tsan); non-zero exit on any failure
#
# Environment: CI=true turns warnings into errors (FAULTLOOP_WERROR=ON); FAULTLOOP_WERROR=ON|OFF
# overrides that either way.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

# Every Debian 12 package the project needs, now or in the issues ahead (DESIGN "Facts checked
# on these machines"). Keep this the only list.
readonly PACKAGES=(
  binutils ccache cmake fiu-utils g++ gdb libbenchmark-dev libboost-dev
  libboost-filesystem-dev libcli11-dev libfiu-dev libfmt-dev libgmock-dev libgtest-dev
  libkainjow-mustache-dev libpugixml-dev libtomlplusplus-dev netcat-openbsd ninja-build
  nlohmann-json3-dev pkg-config socat strace valgrind
)

# The presets `./run.sh test` runs, in order (CMakePresets.json; DESIGN preset matrix).
readonly DEFAULT_PRESETS=(release faults asan tsan)

log() { printf 'run.sh: %s\n' "$*"; }
die() {
  printf 'run.sh: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
usage: ./run.sh setup             install the missing Debian packages (root, or sudo)
       ./run.sh test [PRESET...]  setup, then for each preset (default: release faults asan
                                  tsan): cmake --preset, cmake --build --preset, ctest --preset
EOF
}

# Prints the packages of PACKAGES that dpkg does not report as installed, one per line.
missing_packages() {
  local pkg status
  for pkg in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
    # The second letter of the abbreviated status is the current state: i = installed.
    if [[ "${status:1:1}" != "i" ]]; then
      printf '%s\n' "$pkg"
    fi
  done
}

cmd_setup() {
  if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    die "setup needs dpkg-query and apt-get (the project targets Debian 12)"
  fi

  local missing=()
  mapfile -t missing < <(missing_packages)
  if ((${#missing[@]} == 0)); then
    log "setup: all ${#PACKAGES[@]} packages are installed"
    return 0
  fi
  log "setup: missing ${missing[*]}"

  local as_root=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 ||
      die "setup must install ${missing[*]}: run it as root (sudo is not available)"
    # Without a terminal sudo must not wait for a password that nobody can type.
    if [[ -t 0 ]]; then
      as_root=(sudo)
    else
      as_root=(sudo -n)
    fi
  fi
  local apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q
    -o DPkg::Lock::Timeout=300)
  "${apt[@]}" update || die "apt-get update failed"
  "${apt[@]}" install -y --no-install-recommends "${missing[@]}" ||
    die "apt-get install failed for: ${missing[*]}"

  mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) || die "still missing after apt-get install: ${missing[*]}"
  log "setup: done"
}

# Total test counts over all presets, from ctest's closing line.
total_passed=0
total_failed=0
# Where cmd_test keeps each preset's ctest output (removed at exit).
logdir=""

# Adds the counts of ctest's "N% tests passed, F tests failed out of T" line in file $1.
count_tests() {
  local line failed total
  line="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -n 1 ||
    true)"
  [[ -n "$line" ]] || return 0
  failed="$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")"
  total="$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")"
  total_passed=$((total_passed + total - failed))
  total_failed=$((total_failed + failed))
}

cmd_test() {
  cmd_setup

  local presets=("$@")
  ((${#presets[@]} > 0)) || presets=("${DEFAULT_PRESETS[@]}")

  local configure_args=()
  local werror="${FAULTLOOP_WERROR:-}"
  if [[ -z "$werror" && "${CI:-}" == "true" ]]; then
    werror=ON
  fi
  if [[ -n "$werror" ]]; then
    configure_args+=("-DFAULTLOOP_WERROR=$werror")
  fi

  # ccache (the root CMakeLists.txt uses it when installed) keeps its cache outside the clone,
  # so CI runs on this machine share it. Paths under the clone are hashed relative to it and the
  # build directory is left out of the hash, so a fresh clone elsewhere still hits (the cost:
  # a hit's debug info names the first clone's build directory). The sloppiness lets objects
  # built with a precompiled header (gtest's) be cached at all.
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}"
  export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
  local sloppiness=pch_defines,time_macros,include_file_mtime,include_file_ctime
  export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-$sloppiness}"

  logdir="$(mktemp -d "${TMPDIR:-/tmp}/faultloop-run.XXXXXX")"
  trap 'rm -rf "$logdir"' EXIT

  local preset status start results=() failed=0
  for preset in "${presets[@]}"; do
    start=$SECONDS
    log "== $preset: configure"
    if ! cmake --preset "$preset" "${configure_args[@]}"; then
      status="FAILED at configure"
    else
      log "== $preset: build"
      if ! cmake --build --preset "$preset" -j2; then
        status="FAILED at build"
      else
        log "== $preset: test"
        if ctest --preset "$preset" 2>&1 | tee "$logdir/$preset.log"; then
          status="ok"
        else
          status="FAILED at test"
        fi
        count_tests "$logdir/$preset.log"
      fi
    fi
    [[ "$status" == "ok" ]] || failed=1
    results+=("$(printf '%-8s %s (%ss)' "$preset" "$status" $((SECONDS - start)))")
  done

  echo
  log "summary"
  local line
  for line in "${results[@]}"; do
    printf 'preset %s\n' "$line"
  done
  printf '%d passed, %d failed\n' "$total_passed" "$total_failed"
  return "$failed"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    setup)
      (($# == 0)) || die "setup takes no arguments"
      cmd_setup
      ;;
    test) cmd_test "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
