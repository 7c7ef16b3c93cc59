#!/usr/bin/env bash
# Runs one command inside a throwaway QEMU VM that has two soft-RoCE (rdma_rxe) "hosts", so RDMA code can be
# tested on machines without RDMA hardware and without touching the host's network.
#
#   bash scripts/rdma-vm.sh [--timeout SECS] [--out DIR] [--mem SIZE] [--cpus N] [--verbose] -- CMD ARGS...
#   bash scripts/rdma-vm.sh fetch     # download + unpack the Debian kernel, build the initramfs (no install)
#   bash scripts/rdma-vm.sh check     # "ready: ..." and exit 0, or why the VM cannot run here and exit 1
#
# The guest's root is this machine's / (9p, read-only) under a tmpfs overlay, so CMD runs the host's binaries in
# the caller's working directory (wherever it is, /tmp included); writes go to the overlay and vanish (/run is a
# fresh tmpfs), except under $KVF_VM_OUT: the host directory given by --out (default: a new temp dir), mounted at
# the same path.
# Inside, a veth pair kvfa (10.77.0.1/24) <-> kvfb (10.77.0.2/24) carries the rxe devices rxa and rxb; the VM
# has no network device at all, so nothing reaches out. CMD runs as root with `ulimit -l unlimited` and only
#   KVF_IN_VM=1 KVF_VM_OUT=<dir> KVF_RDMA_A_DEV=rxa KVF_RDMA_A_IP=10.77.0.1 KVF_RDMA_A_GID=<RoCE v2 GID index>
#   KVF_RDMA_B_DEV=rxb KVF_RDMA_B_IP=10.77.0.2 KVF_RDMA_B_GID=<index> PATH HOME=/root TERM (the caller's)
# plus the variables named in KVF_VM_PASS_ENV="NAME1 NAME2", with the caller's values.
# CMD's stdout and stderr stream to this script's stdout and stderr (pipes inside, ~150 KB/s: put bulk output in
# $KVF_VM_OUT). Kernel and init messages go to a log printed on failure or with --verbose (which also prints
# timings). Exit status: CMD's; 124 when --timeout (default 600 s, boot included) ran out; 125 when the VM
# failed before CMD could report one.
#
# KVFABRIC_VM_CACHE (default /var/cache/kvfabric/rdma-vm) holds the kernel, its modules and the initramfs.
set -euo pipefail

CACHE=${KVFABRIC_VM_CACHE:-/var/cache/kvfabric/rdma-vm}
# qboot instead of SeaBIOS: it starts the kernel sooner and, with no VGA, prints nothing on the first serial
# port, which is the command's stdout.
QBOOT=/usr/share/qemu/qboot.rom
# Modules the guest needs; their dependencies are added and ordered at fetch time. crc32_generic comes first
# because rdma_rxe asks the crypto API for "crc32" at runtime, which nothing would load for it (no modprobe).
MODULE_ROOTS=(crc32_generic virtio_pci 9pnet_virtio 9p overlay configfs veth rdma_rxe ib_uverbs rdma_ucm)

say() { echo "rdma-vm: $*" >&2; }
die() { say "$*"; exit "${DIE_STATUS:-1}"; }

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# ---------------------------------------------------------------------------------------------- host tools

need_tools() {
  command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 not found: apt-get install qemu-system-x86"; return 1; }
  command -v dpkg-deb >/dev/null || { echo "dpkg-deb not found (needs a Debian-based host)"; return 1; }
  static_busybox >/dev/null || { echo "no static busybox: apt-get install busybox-static"; return 1; }
  [ -f "$QBOOT" ] || { echo "$QBOOT not found: apt-get install qemu-system-data"; return 1; }
}

# The initramfs runs before any library is reachable, so its busybox must be the static build.
static_busybox() {
  local bb
  bb=$(command -v busybox) || return 1
  if ldd "$bb" >/dev/null 2>&1; then return 1; fi
  echo "$bb"
}

# ------------------------------------------------------------------------------------------ kernel cache
# Layout: $CACHE/current names the kernel version in use; $CACHE/<kver>/{vmlinuz,vmlinux,modules/*.ko,
# modules.order,complete} is one unpacked kernel, plus initrd-<hash>.cpio.gz per version of the init script.

# linux-image-6.1.0-NN-amd64, from the metapackage that tracks the newest Debian 12 kernel in the apt lists.
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

cached_kernel() {
  local kver
  kver=$(cat "$CACHE/current" 2>/dev/null) || return 1
  [ -f "$CACHE/$kver/complete" ] || return 1
  echo "$kver"
}

# depends= of one .ko, from its .modinfo section (NUL-separated key=value strings); modinfo needs kmod.
ko_depends() {
  tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | head -n1 | tr ',' ' '
}

# Copies module $1 (and, first, what it depends on) from the unpacked tree $2 into $3, decompressed, and
# appends its name to $3/../modules.order once: a depth-first post-order is an insmod order.
declare -A MOD_DONE=()
add_module() {
  local name=$1 tree=$2 dest=$3 file dep
  [ -n "${MOD_DONE[$name]:-}" ] && return 0
  MOD_DONE[$name]=1
  # Module names use '_' where file names may use '-'.
  file=$(find "$tree" -name "${name//_/[-_]}.ko*" | head -n1)
  [ -n "$file" ] || die "module $name not found in the kernel package"
  case $file in
    *.ko) cp "$file" "$dest/$name.ko" ;;
    *.ko.xz) xz -dc "$file" >"$dest/$name.ko" ;;
    *.ko.zst) zstd -qdc "$file" >"$dest/$name.ko" ;;
    *.ko.gz) gzip -dc "$file" >"$dest/$name.ko" ;;
    *) die "unknown module compression: $file" ;;
  esac
  for dep in $(ko_depends "$dest/$name.ko"); do add_module "$dep" "$tree" "$dest"; done
  echo "$name" >>"$dest/../modules.order"
}

# The ELF kernel inside a bzImage: the first compressed payload that unpacks to ELF. Booting it directly
# (PVH entry) skips the xz decompression, which takes ~6 s of emulated CPU on every boot.
extract_vmlinux() {
  local image=$1 out=$2 magic unpack off
  for magic in $'\xfd7zXZ':'xz -dc --single-stream' $'\x28\xb5\x2f\xfd':'zstd -qdc' $'\x1f\x8b\x08':'gzip -dc'; do
    unpack=${magic#*:}
    for off in $(LC_ALL=C grep -aboF "${magic%%:*}" "$image" | cut -d: -f1 | head -n 5); do
      tail -c +$((off + 1)) "$image" | $unpack >"$out" 2>/dev/null
      [ "$(head -c 4 "$out")" = $'\x7fELF' ] && return 0
    done
  done
  rm -f "$out"
  return 1
}

fetch_kernel() {
  local pkg kver deb m tmp
  command -v dpkg-deb >/dev/null || die "dpkg-deb not found (needs a Debian-based host)"
  pkg=$(kernel_package)
  if [ -z "$pkg" ]; then
    if kver=$(cached_kernel); then say "apt knows no linux-image-amd64; keeping cached kernel $kver"; return 0; fi
    die "apt-cache knows no linux-image-amd64: run apt-get update (needs the Debian 12 repos)"
  fi
  kver=${pkg#linux-image-}
  mkdir -p "$CACHE" || die "cannot create $CACHE (set KVFABRIC_VM_CACHE to a writable directory)"
  if [ -f "$CACHE/$kver/complete" ]; then
    [ -f "$CACHE/$kver/vmlinux" ] || extract_vmlinux "$CACHE/$kver/vmlinuz" "$CACHE/$kver/vmlinux" || true
    echo "$kver" >"$CACHE/current"
    say "kernel $kver already cached in $CACHE"
    return 0
  fi
  tmp=$(mktemp -d)
  FETCH_TMP=$tmp
  trap 'rm -rf "$FETCH_TMP"' EXIT
  say "downloading $pkg (not installed, only unpacked into $CACHE)"
  # apt's download sandbox user cannot write into a root-owned temp dir; the package is only unpacked anyway.
  (cd "$tmp" && { apt-get download -q -o APT::Sandbox::User=root "$pkg" || apt-get download -q -o APT::Sandbox::User=root "$pkg-unsigned"; }) >&2 \
    || die "apt-get download $pkg failed (no network?); run 'bash scripts/rdma-vm.sh fetch' where the Debian repos are reachable"
  deb=$(ls "$tmp"/*.deb)
  dpkg-deb -x "$deb" "$tmp/x"
  rm -rf "${CACHE:?}/$kver"
  mkdir -p "$CACHE/$kver/modules"
  cp "$tmp/x/boot/vmlinuz-$kver" "$CACHE/$kver/vmlinuz"
  extract_vmlinux "$CACHE/$kver/vmlinuz" "$CACHE/$kver/vmlinux" || say "cannot unpack vmlinux; booting the compressed image (slower)"
  MOD_DONE=()
  for m in "${MODULE_ROOTS[@]}"; do add_module "$m" "$tmp/x/lib/modules/$kver" "$CACHE/$kver/modules"; done
  touch "$CACHE/$kver/complete"
  echo "$kver" >"$CACHE/current"
  say "kernel $kver cached in $CACHE ($(wc -l <"$CACHE/$kver/modules.order") modules)"
}

# A kernel to boot: the cached one, else fetch now (so a first run on a connected machine just works).
ensure_kernel() {
  local kver
  if kver=$(cached_kernel); then echo "$kver"; return 0; fi
  say "no kernel cached in $CACHE; fetching"
  (fetch_kernel) || DIE_STATUS=125 die "no kernel: run 'bash scripts/rdma-vm.sh fetch' (needs the Debian apt repos)"
  cached_kernel
}

# --------------------------------------------------------------------------------------------- guest init
# One script, run twice as PID 1: "stage1" inside the initramfs (modules, 9p root, overlay, switch_root), then
# "stage2" on the new root (the two RDMA hosts, then the job). Fixed text: per-run settings come from the
# control share, so the initramfs is built once per kernel and version of this script.
init_script() {
  cat <<'INIT'
#!/bin/busybox sh
PATH=/bin

fail() {
  echo "rdma-vm init: $*" >&2
  [ -d /run/kvf-vm/ctl ] && echo "$*" >/run/kvf-vm/ctl/setup-error
  sync
  busybox poweroff -f
}

stage1() {
  /bin/busybox mkdir -p /proc /sys /dev
  /bin/busybox --install -s /bin
  mount -t devtmpfs devtmpfs /dev
  # The initramfs has no /dev/console node, so the kernel could not give us stdio; take it now.
  exec </dev/console >/dev/console 2>&1
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  while read -r m; do
    insmod "/lib/modules/$m.ko" || fail "insmod $m failed"
  done </modules.order

  # Host / read-only; cache=loose because nothing changes it underneath us that the job needs to see.
  mkdir -p /lower /rw /newroot
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /lower || fail "cannot mount the host root"
  mount -t tmpfs -o mode=755 rw /rw
  mkdir -p /rw/upper /rw/work
  mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot || fail "overlay mount failed"

  mount --move /dev /newroot/dev
  mount --move /proc /newroot/proc
  mount --move /sys /newroot/sys
  mkdir -p /newroot/dev/pts /newroot/dev/shm
  mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /newroot/dev/pts
  mount -t tmpfs -o mode=1777 shm /newroot/dev/shm
  # /tmp stays part of the overlay: a clone the job runs in may live under the host's /tmp (CI's may).
  mount -t tmpfs -o mode=755 run /newroot/run
  mount -t configfs configfs /newroot/sys/kernel/config

  # Stage 2 runs from /run with our own busybox: it must not depend on where (or whether) the host has one.
  mkdir -p /newroot/run/kvf-vm/ctl
  cp /bin/busybox /init /newroot/run/kvf-vm/
  exec switch_root /newroot /run/kvf-vm/busybox sh /run/kvf-vm/init stage2
}

# ---- stage 2: the host's iproute2 and bash are in reach now.

# Index of the RoCE v2 GID that carries IPv4 address $2 on rxe device $1. Only the first entries: reading
# all of the table one sysfs file at a time takes minutes under emulation.
gid_index() {
  local want i port=/sys/class/infiniband/$1/ports/1
  want=$(printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' $(echo "$2" | tr . ' '))
  for i in 0 1 2 3 4 5 6 7; do
    if [ "$(cat "$port/gids/$i" 2>/dev/null)" = "$want" ] && [ "$(cat "$port/gid_attrs/types/$i" 2>/dev/null)" = "RoCE v2" ]; then
      echo "$i"
      return 0
    fi
  done
  return 1
}

# Guest uptime at named points, for --verbose.
mark() {
  echo "$1 $(cut -d' ' -f1 /proc/uptime)s" >>/run/kvf-vm/ctl/timing
}

set_sysctl() {
  echo "$2" >"/proc/sys/$1" || fail "cannot set $1 to $2"
}

# Two "hosts" in one namespace: rxe resolves routes only in the init namespace (netns does not work on 6.1),
# so both veth ends stay here; accept_local and rp_filter=0 let packets from one local address reach the other
# through the pair instead of being dropped as martians, and the big backlog keeps rxe bursts from dropping.
setup_hosts() {
  local dev tries ip=''
  # By absolute path: this busybox runs its own applets before $PATH, and its ip ignores "peer name".
  for ip in /usr/sbin/ip /sbin/ip /usr/bin/ip /bin/ip ''; do [ -x "$ip" ] && break; done
  [ -n "$ip" ] && command -v rdma >/dev/null || fail "iproute2 (ip, rdma) not found on the host"
  $ip link set lo up
  $ip link add kvfa type veth peer name kvfb || fail "cannot create the veth pair"
  set_sysctl net/core/netdev_max_backlog 100000
  set_sysctl net/ipv4/conf/all/rp_filter 0
  for dev in kvfa kvfb; do
    set_sysctl net/ipv4/conf/$dev/rp_filter 0
    set_sysctl net/ipv4/conf/$dev/accept_local 1
  done
  $ip addr add 10.77.0.1/24 dev kvfa
  $ip addr add 10.77.0.2/24 dev kvfb
  $ip link set kvfa up
  $ip link set kvfb up
  rdma link add rxa type rxe netdev kvfa || fail "rdma link add rxa failed"
  rdma link add rxb type rxe netdev kvfb || fail "rdma link add rxb failed"
  for dev in rxa rxb; do
    tries=0
    until rdma link show "$dev/1" 2>/dev/null | grep -q 'state ACTIVE'; do
      tries=$((tries + 1))
      [ $tries -lt 300 ] || fail "$dev did not become ACTIVE"
      sleep 0.1
    done
  done
  tries=0
  until A_GID=$(gid_index rxa 10.77.0.1) && B_GID=$(gid_index rxb 10.77.0.2); do
    tries=$((tries + 1))
    [ $tries -lt 100 ] || fail "no RoCE v2 IPv4 GID on rxa/rxb"
    sleep 0.1
  done
}

# Runs the job with a clean environment; its stdout goes to ttyS0 (host stdout) and stderr to ttyS1 (host
# stderr) through pipes, so it sees pipes as it would under a test runner, not a terminal.
run_job() {
  local ctl=/run/kvf-vm/ctl out_pid err_pid rc i
  stty -F /dev/ttyS0 -onlcr 2>/dev/null
  stty -F /dev/ttyS1 -onlcr 2>/dev/null
  mkfifo /run/kvf-vm/stdout /run/kvf-vm/stderr
  cat /run/kvf-vm/stdout >/dev/ttyS0 & out_pid=$!
  cat /run/kvf-vm/stderr >/dev/ttyS1 & err_pid=$!
  mark job-start
  (
    ulimit -l unlimited
    exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM="${KVF_TERM:-dumb}" \
      KVF_IN_VM=1 KVF_VM_OUT="$KVF_VM_OUT" \
      KVF_RDMA_A_DEV=rxa KVF_RDMA_A_IP=10.77.0.1 KVF_RDMA_A_GID="$A_GID" \
      KVF_RDMA_B_DEV=rxb KVF_RDMA_B_IP=10.77.0.2 KVF_RDMA_B_GID="$B_GID" \
      /bin/bash $ctl/job.sh
  ) </dev/null >/run/kvf-vm/stdout 2>/run/kvf-vm/stderr
  rc=$?
  mark job-exit
  echo "$rc" >$ctl/status
  # Let the output drain, but do not wait for daemons the job left behind holding the pipes open.
  i=0
  while [ $i -lt 20 ] && { kill -0 $out_pid || kill -0 $err_pid; } 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
  done
}

stage2() {
  # Host tools before busybox's, for rdma, bash and env; this busybox runs its own applets first anyway.
  export PATH=/usr/sbin:/usr/bin:/sbin:/bin:/run/kvf-vm/bin
  mkdir -p /run/kvf-vm/bin
  /run/kvf-vm/busybox --install -s /run/kvf-vm/bin
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 kvfctl /run/kvf-vm/ctl || fail "cannot mount the control share"
  mark root-ready
  . /run/kvf-vm/ctl/vm.env
  # The out share sits at the same path as on the host, so paths the job prints mean the same outside.
  mkdir -p "$KVF_VM_OUT"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 kvfout "$KVF_VM_OUT" || fail "cannot mount the out share"
  setup_hosts
  mark rdma-ready
  run_job
  sync
  busybox poweroff -f
}

case "${1:-}" in
  stage2) stage2 ;;
  *) stage1 ;;
esac
fail "init fell through"
INIT
}

# Cached per kernel version and init script text; built into a temp file and renamed so parallel runs are safe.
# A root-owned cache (install-deps fetches as root) falls back to a per-user directory for new images.
ensure_initrd() {
  local kver=$1 dir=$CACHE/$1 hash stage out bb m
  hash=$( { init_script; cat "$dir/modules.order"; } | sha256sum | cut -c1-16)
  out=$dir/initrd-$hash.cpio.gz
  if [ -f "$out" ]; then echo "$out"; return 0; fi
  if [ ! -w "$dir" ]; then
    dir=${XDG_CACHE_HOME:-$HOME/.cache}/kvfabric-rdma-vm/$kver
    out=$dir/initrd-$hash.cpio.gz
    if [ -f "$out" ]; then echo "$out"; return 0; fi
    mkdir -p "$dir"
  fi
  bb=$(static_busybox) || die "no static busybox: apt-get install busybox-static"
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/lib/modules"
  cp "$bb" "$stage/bin/busybox"
  init_script >"$stage/init"
  chmod 755 "$stage/init"
  cp "$CACHE/$kver/modules.order" "$stage/modules.order"
  while read -r m; do cp "$CACHE/$kver/modules/$m.ko" "$stage/lib/modules/"; done <"$CACHE/$kver/modules.order"
  (cd "$stage" && find . | LC_ALL=C sort | "$bb" cpio -o -H newc 2>/dev/null | gzip -1) >"$out.tmp.$$"
  mv "$out.tmp.$$" "$out"
  rm -rf "$stage"
  # Initramfs images of earlier versions of this script are dead weight now.
  # (An hour old, so a run that just picked one up can still boot it.)
  find "$dir" -maxdepth 1 -name 'initrd-*.cpio.gz' ! -name "${out##*/}" -mmin +60 -delete
  echo "$out"
}

# ------------------------------------------------------------------------------------------------- run

# Writes job.sh: cd to the caller's directory, the passed-through variables, then exec the command, each
# word quoted with printf %q (bash runs it inside, from the shared root).
write_job() {
  local ctl=$1 cwd=$2 name
  shift 2
  {
    printf 'cd -- %q || exit 126\n' "$cwd"
    for name in ${KVF_VM_PASS_ENV:-}; do
      [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "KVF_VM_PASS_ENV: bad name '$name'"
      if [ -n "${!name+set}" ]; then printf 'export %s=%q\n' "$name" "${!name}"; fi
    done
    printf 'exec'
    printf ' %q' "$@"
    printf '\n'
  } >"$ctl/job.sh"
  {
    printf 'KVF_VM_OUT=%q\n' "$OUT"
    printf 'KVF_TERM=%q\n' "${TERM:-dumb}"
  } >"$ctl/vm.env"
}

# Kills QEMU $1 after $TIMEOUT s and leaves $2/timed-out; a watchdog outside the guest, since clocks inside
# an emulated VM run late under load. Its sleep must die with it and hold no stdio: a caller reading our
# stdout/stderr (Node's child_process) would otherwise wait for a leftover sleep to close them.
watchdog() {
  local qemu_pid=$1 ctl=$2 sleep_pid
  exec </dev/null >/dev/null 2>&1
  sleep "$TIMEOUT" &
  sleep_pid=$!
  trap 'kill $sleep_pid; exit 0' TERM
  wait "$sleep_pid"
  touch "$ctl/timed-out"
  kill -TERM "$qemu_pid"
  sleep 5
  kill -KILL "$qemu_pid"
}

# On a signal to this script: QEMU and our helpers go too, then exit $1 (128 + the signal).
# shellcheck disable=SC2317  # only called from traps
stop_vm() {
  kill -TERM "$qemu_pid" "$watchdog_pid" "$err_cat" 2>/dev/null
  wait "$qemu_pid"
  rm -rf "$ctl"
  exit "$1"
}

run_vm() {
  local kver kernel initrd ctl started qemu_pid watchdog_pid err_cat status
  local -a qemu
  kver=$(ensure_kernel)
  initrd=$(ensure_initrd "$kver")
  kernel=$CACHE/$kver/vmlinux
  [ -f "$kernel" ] || kernel=$CACHE/$kver/vmlinuz
  if [ -z "$OUT" ]; then
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/kvf-vm-out.XXXXXX")
    say "out dir: $OUT"
  fi
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd -P)
  ctl=$(mktemp -d "${TMPDIR:-/tmp}/kvf-vm-ctl.XXXXXX")
  write_job "$ctl" "$PWD" "$@"

  # Serial ports: ttyS0 = the job's stdout (our stdout), ttyS1 = its stderr, ttyS2 = kernel and init messages
  # (a log, shown on failure or with --verbose), so the job's output comes through unmixed. ttyS1 reaches our
  # stderr through a fifo that cat copies: QEMU cannot open /proc/self/fd/2 when stderr is a socket, as under
  # Node's child_process. A "file" chardev, since a "pipe" one would also read the fifo and steal from cat.
  mkfifo "$ctl/stderr"
  cat "$ctl/stderr" >&2 &
  err_cat=$!

  # shellcheck disable=SC2054  # commas inside QEMU option values
  qemu=(qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp "$CPUS" -m "$MEM"
    -nodefaults -nographic -no-reboot -nic none
    -bios "$QBOOT"
    -kernel "$kernel" -initrd "$initrd"
    -append "console=ttyS2 quiet loglevel=3 panic=-1"
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
    -virtfs "local,path=$ctl,mount_tag=kvfctl,security_model=none,multidevs=remap"
    -virtfs "local,path=$OUT,mount_tag=kvfout,security_model=none,multidevs=remap"
    -serial stdio
    -chardev "file,id=kvferr,path=$ctl/stderr" -serial chardev:kvferr
    -serial "file:$ctl/console.log")
  started=$(date +%s.%N)
  "${qemu[@]}" </dev/null &
  qemu_pid=$!
  watchdog "$qemu_pid" "$ctl" &
  watchdog_pid=$!
  trap 'stop_vm 130' INT
  trap 'stop_vm 143' TERM
  trap 'stop_vm 129' HUP
  wait "$qemu_pid" || true
  kill "$watchdog_pid" 2>/dev/null || true
  wait "$watchdog_pid" 2>/dev/null || true
  # If QEMU died before opening the fifo, cat still blocks in open(): a read-write open never blocks and
  # gives it a writer that goes away at once, so it sees EOF either way.
  exec 3<>"$ctl/stderr"
  exec 3>&-
  wait "$err_cat" || true
  trap - INT TERM HUP

  if [ -n "$VERBOSE" ]; then
    sed 's/^/rdma-vm: console: /' "$ctl/console.log" >&2
    say "kernel $kver; guest uptime at $(tr '\n' ' ' <"$ctl/timing" 2>/dev/null); whole run $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s"
  elif [ ! -f "$ctl/status" ]; then
    # Something went wrong before the command could finish: the kernel and init messages say what.
    tail -n 40 "$ctl/console.log" | sed 's/^/rdma-vm: console: /' >&2
  fi
  if [ -f "$ctl/timed-out" ]; then
    rm -rf "$ctl"
    DIE_STATUS=124 die "timed out after ${TIMEOUT}s; VM killed"
  fi
  if [ -f "$ctl/status" ]; then
    status=$(cat "$ctl/status")
    rm -rf "$ctl"
    exit "$status"
  fi
  if [ -f "$ctl/setup-error" ]; then
    say "VM setup failed: $(cat "$ctl/setup-error")"
  else
    say "QEMU exited without a command status (guest crashed or QEMU failed; messages above)"
  fi
  rm -rf "$ctl"
  exit 125
}

check() {
  local problem kver
  if ! problem=$(need_tools); then echo "not ready: $problem"; exit 1; fi
  if ! kver=$(cached_kernel); then echo "not ready: no kernel cached in $CACHE; run 'bash scripts/rdma-vm.sh fetch'"; exit 1; fi
  echo "ready: qemu $(qemu-system-x86_64 --version | awk 'NR == 1 { print $4 }'), kernel $kver in $CACHE (TCG)"
}

main() {
  local problem
  TIMEOUT=600 OUT='' MEM=6G CPUS=2 VERBOSE=''
  case "${1:-}" in
    fetch)
      problem=$(need_tools) || die "$problem"
      fetch_kernel
      ensure_initrd "$(cached_kernel)" >/dev/null
      exit 0
      ;;
    check) check; exit 0 ;;
    -h | --help | '') usage ;;
  esac
  while [ $# -gt 0 ]; do
    case $1 in
      --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
      --out) OUT=${2:?--out needs a directory}; shift 2 ;;
      --mem) MEM=${2:?--mem needs a size like 6G}; shift 2 ;;
      --cpus) CPUS=${2:?--cpus needs a number}; shift 2 ;;
      --verbose | -v) VERBOSE=1; shift ;;
      --) shift; break ;;
      *) say "unknown option: $1"; usage ;;
    esac
  done
  [ $# -gt 0 ] || usage
  [[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout: not a number of seconds: $TIMEOUT"
  problem=$(need_tools) || DIE_STATUS=125 die "$problem"
  run_vm "$@"
}

main "$@"
