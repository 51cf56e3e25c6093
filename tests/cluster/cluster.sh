#!/usr/bin/env bash
# Emulated cluster: H network namespaces ("hosts") joined by a bridge in a switch namespace,
# each host link shaped with tc/htb. This script is the only implementation; cluster.ts calls it.
# See README.md for the layout, parameters and cleanup rules.
set -euo pipefail

readonly SUBNET_PREFIX=10.213   # a tag gets 10.213.<n>.0/24; hosts .1.., the root namespace .254
readonly FLOW_BUCKETS=16        # per-flow htb classes on each host's egress
readonly LOCK_FILE=/run/lock/unicc-cluster.lock
readonly MACHINES=/run/unicc-cluster     # <host namespace>.pid: the process holding its hostname and /dev/shm

usage() {
  cat <<'EOF'
usage: cluster.sh up [-t TAG] [-n HOSTS] [-r RATE_MBIT] [-f PER_FLOW_MBIT] [-o OWNER_PID] [-s HOSTNAME]
                                    make a cluster; prints its layout as one JSON line; with
                                    -o, a later `up` removes it once OWNER_PID is gone; with -s,
                                    every host gets that hostname (else its namespace's name)
       cluster.sh enter HOST CMD... run CMD on host HOST (its network, hostname and /dev/shm)
       cluster.sh rsh HOST WORDS... the same, WORDS joined and run by a shell, as ssh does
                                    (for agents that expect ssh, such as mpirun's plm_rsh_agent)
       cluster.sh down TAG | --all  remove a cluster (or every uc-* namespace and link)
       cluster.sh cut TAG HOST      take host HOST's link down (at the switch port)
       cluster.sh restore TAG HOST  bring it back up
       cluster.sh status [TAG]      show namespaces, addresses and tc counters
       cluster.sh check             exit 0 if this machine can make clusters, else print why
defaults: -n 2 -r 2000 -f 600 (-f 0: no per-flow cap); TAG: [a-z0-9]{1,12}, random if omitted
EOF
}

die() { echo "cluster.sh: $*" >&2; exit 2; }

check_tag() { [[ $1 =~ ^[a-z0-9]{1,12}$ ]] || die "bad tag '$1' (want [a-z0-9]{1,12}: the root link 'uc-TAG' must fit 15 chars)"; }
check_uint() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a non-negative integer, got '$2'"; }

# Namespaces that belong to TAG, matched exactly so that tag "a" never touches tag "ab".
tag_namespaces() { ip netns list | awk '{print $1}' | grep -E "^uc-$1-(sw|h[0-9]+)\$" || true; }

remove_namespace() {
  # Processes still inside would keep the namespace (and its links) alive after the name is gone:
  # an emulated host going away takes its processes with it.
  local pids
  pids=$(ip netns pids "$1" 2>/dev/null || true)
  [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
  ip netns del "$1" 2>/dev/null || true
  rm -rf "$MACHINES/$1.pid" "/tmp/unicc-machine-$1"
}

cmd_down() {
  local tag=$1 ns
  rm -f "$MACHINES/uc-$tag.hosts"
  # The root-side veth is the only object outside the namespaces; deleting it also removes its peer.
  ip link del "uc-$tag" 2>/dev/null || true
  for ns in $(tag_namespaces "$tag"); do remove_namespace "$ns"; done
}

cmd_down_all() {
  local ns link
  for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^uc-' || true); do
    ip link del "$link" 2>/dev/null || true
  done
  for ns in $(ip netns list | awk '{print $1}' | grep -E '^uc-' || true); do remove_namespace "$ns"; done
}

# Clusters whose owner process died without `down` (killed by a signal): the root link's alias
# records the owner.
reap_orphans() {
  local link owner
  for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^uc-[a-z0-9]+$' || true); do
    owner=$(sed -n 's/^unicc-cluster owner=\([0-9]*\)$/\1/p' "/sys/class/net/$link/ifalias" 2>/dev/null || true)
    [[ -z $owner ]] || kill -0 "$owner" 2>/dev/null || cmd_down "${link#uc-}"
  done
}

# htb burst: 1 ms at the class rate, but never less than one 64 KiB GSO super-packet plus headers,
# or a veth (which hands over GSO packets unsplit) cannot reach the rate.
burst_bytes() { local b=$(($1 * 125)); echo $((b > 70000 ? b : 70000)); }

# Egress of the host's own veth: root class at the link rate; TCP is spread over FLOW_BUCKETS child
# classes each capped at the per-flow rate, so one stream cannot fill the link but several can.
# The bucket of a segment is (sport[4:1] + dport[4:1]) mod 16: it depends on both ports, so flows
# to one fixed server port still spread, and bit 0 is skipped because Linux gives connect() even
# ports. Done with two levels of u32 hash tables (sport, then dport) rather than 256 linear rules.
host_egress_batch() {
  local dev=$1 rate=$2 flow=$3 b q=65536 s d
  b=$(burst_bytes "$rate")
  echo "qdisc add dev $dev root handle 1: htb default 2"
  echo "class add dev $dev parent 1: classid 1:1 htb rate ${rate}mbit ceil ${rate}mbit burst $b cburst $b quantum $q"
  if ((flow == 0)); then
    echo "class add dev $dev parent 1:1 classid 1:2 htb rate ${rate}mbit ceil ${rate}mbit burst $b cburst $b quantum $q"
    return
  fi
  # Guaranteed shares split the link evenly; borrowing up to ceil is what lets a few flows fill it.
  local share=$((rate * 1000 / (FLOW_BUCKETS + 1))) fb
  ((share <= flow * 1000)) || share=$((flow * 1000))
  fb=$(burst_bytes "$flow")
  echo "class add dev $dev parent 1:1 classid 1:2 htb rate ${share}kbit ceil ${rate}mbit burst $b cburst $b quantum $q"
  for ((s = 0; s < FLOW_BUCKETS; s++)); do
    printf 'class add dev %s parent 1:1 classid 1:%x htb rate %skbit ceil %smbit burst %s cburst %s quantum %s\n' \
      "$dev" $((0x10 + s)) "$share" "$flow" "$fb" "$fb" "$q"
  done
  for ((s = 0; s < FLOW_BUCKETS; s++)); do
    printf 'filter add dev %s parent 1: prio 1 handle %x: protocol ip u32 divisor %d\n' "$dev" $((0x100 + s)) "$FLOW_BUCKETS"
    for ((d = 0; d < FLOW_BUCKETS; d++)); do
      printf 'filter add dev %s parent 1: prio 1 protocol ip u32 ht %x:%x: match u32 0 0 flowid 1:%x\n' \
        "$dev" $((0x100 + s)) "$d" $((0x10 + (s + d) % FLOW_BUCKETS))
    done
  done
  printf 'filter add dev %s parent 1: prio 1 handle 2: protocol ip u32 divisor %d\n' "$dev" "$FLOW_BUCKETS"
  for ((s = 0; s < FLOW_BUCKETS; s++)); do
    printf 'filter add dev %s parent 1: prio 1 protocol ip u32 ht 2:%x: match u32 0 0 hashkey mask 0x0000001e at 20 link %x:\n' \
      "$dev" "$s" $((0x100 + s))
  done
  # Port word at offset 20 assumes no IP options, which Linux TCP never sends.
  echo "filter add dev $dev parent 1: prio 1 protocol ip u32 ht 800:: match ip protocol 6 0xff hashkey mask 0x001e0000 at 20 link 2:"
}

# Egress of the switch port toward a host, i.e. the host's download: the link rate only. Every flow
# was already capped once at its sender's egress; re-capping here by port would lump together all
# flows that share the receiver's port.
switch_egress_batch() {
  local dev=$1 rate=$2 b
  b=$(burst_bytes "$rate")
  echo "qdisc add dev $dev root handle 1: htb default 1"
  echo "class add dev $dev parent 1: classid 1:1 htb rate ${rate}mbit ceil ${rate}mbit burst $b cburst $b quantum 65536"
}

# First n whose subnet no root-namespace address uses; call with LOCK_FILE held.
free_subnet() {
  local used n
  used=$(ip -o -4 addr show | awk '{print $4}')
  for ((n = 1; n < 255; n++)); do
    grep -q "^$SUBNET_PREFIX\.$n\." <<<"$used" || { echo "$n"; return; }
  done
  die "no free $SUBNET_PREFIX.x.0/24 subnet"
}

# A real machine has its own hostname, /dev/shm and temporary files, not only its own network: a
# process holds a UTS and a mount namespace (a fresh tmpfs on /dev/shm) inside the host's network
# namespace, and `enter` joins all three. It lives in the network namespace, so removing the host
# kills it, and its /dev/shm goes with it.
start_machine() {
  local ns=$1 name=$2 pid i
  mkdir -p "$MACHINES"
  rm -f "$MACHINES/$ns.ready"
  setsid nsenter --net="/run/netns/$ns" unshare --uts --mount --propagation private \
    sh -c 'hostname "$1" && mount -t tmpfs -o mode=1777 tmpfs /dev/shm && touch "$2" && exec sleep infinity' \
    sh "$name" "$MACHINES/$ns.ready" </dev/null >/dev/null 2>&1 &
  pid=$!
  for ((i = 0; i < 500; i++)); do
    [[ -e $MACHINES/$ns.ready ]] && break
    kill -0 "$pid" 2>/dev/null || die "the machine of $ns did not start (unshare/mount failed)"
    sleep 0.01
  done
  [[ -e $MACHINES/$ns.ready ]] || die "the machine of $ns did not start within 5 s"
  rm -f "$MACHINES/$ns.ready"
  echo "$pid" >"$MACHINES/$ns.pid"
}

# Names resolve as on a real cluster's DNS: each machine's /etc/hosts lists every host of the tag.
name_machines() {
  local tag=$1 hosts=$2 n=$3 i file="$MACHINES/uc-$tag.hosts"
  {
    printf '127.0.0.1 localhost\n::1 localhost\n'
    for ((i = 0; i < hosts; i++)); do printf '%s uc-%s-h%d\n' "$SUBNET_PREFIX.$n.$((i + 1))" "$tag" "$i"; done
  } >"$file"
  for ((i = 0; i < hosts; i++)); do
    nsenter --target "$(cat "$MACHINES/uc-$tag-h$i.pid")" --mount -- mount --bind "$file" /etc/hosts
  done
}

# Temporary files go to a folder of the machine's own (TMPDIR): a tmpfs over /tmp would also hide
# whatever lives under /tmp on the real machine, such as a checkout of this repository.
cmd_enter() {
  local ns=$1 pid; shift
  [[ $ns =~ ^uc-[a-z0-9]{1,12}-h[0-9]+$ ]] || die "enter wants a host namespace uc-TAG-hN, got '$ns'"
  pid=$(cat "$MACHINES/$ns.pid" 2>/dev/null) || die "no machine for host $ns (is its cluster up?)"
  mkdir -p -m 1777 "/tmp/unicc-machine-$ns"
  TMPDIR="/tmp/unicc-machine-$ns" exec nsenter --target "$pid" --net --uts --mount -- "$@"
}

cmd_up() {
  local tag="" hosts=2 rate=2000 flow=600 owner="" same_name="" opt
  OPTIND=1
  while getopts "t:n:r:f:o:s:" opt; do
    case $opt in
      t) tag=$OPTARG ;; n) hosts=$OPTARG ;; r) rate=$OPTARG ;; f) flow=$OPTARG ;; o) owner=$OPTARG ;; s) same_name=$OPTARG ;;
      *) usage >&2; exit 2 ;;
    esac
  done
  [[ -n $tag ]] || tag=$(tr -dc a-z0-9 </dev/urandom | head -c 8 || true)
  check_tag "$tag"
  check_uint hosts "$hosts"; check_uint rate "$rate"; check_uint flow "$flow"
  ((hosts >= 1 && hosts <= 253)) || die "hosts must be 1..253"
  ((rate >= 1)) || die "rate must be >= 1 Mbit/s"
  ((flow <= rate)) || die "per-flow cap ($flow) above the link rate ($rate)"
  [[ -z $owner ]] || check_uint owner "$owner"
  [[ -z $same_name || $same_name =~ ^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$ ]] || die "bad hostname '$same_name'"

  # A crash of an earlier run with this tag leaves objects behind; start from nothing.
  cmd_down "$tag"
  reap_orphans
  # Interrupted or failed half-way: remove what was made so far.
  trap 'cmd_down "$tag"; exit 130' INT TERM
  trap 'rc=$?; ((rc == 0)) || cmd_down "$tag"' EXIT

  local sw="uc-$tag-sw" n root_addr
  ip netns add "$sw"
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  # Allocation and claiming the subnet (the root address) under one lock, so that concurrent
  # `up`s with different tags never pick the same one.
  exec 9>"$LOCK_FILE"
  flock 9
  n=$(free_subnet)
  root_addr="$SUBNET_PREFIX.$n.254"
  ip link add "uc-$tag" type veth peer name root netns "$sw"
  ip addr add "$root_addr/24" dev "uc-$tag"
  [[ -z $owner ]] || ip link set "uc-$tag" alias "unicc-cluster owner=$owner"
  flock -u 9
  exec 9>&-
  ip link set "uc-$tag" up
  ip -n "$sw" link set root master br0 up

  local i ns json=""
  for ((i = 0; i < hosts; i++)); do
    ns="uc-$tag-h$i"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add eth0 netns "$ns" type veth peer name "h$i" netns "$sw"
    ip -n "$ns" addr add "$SUBNET_PREFIX.$n.$((i + 1))/24" dev eth0
    host_egress_batch eth0 "$rate" "$flow" | tc -n "$ns" -batch -
    switch_egress_batch "h$i" "$rate" | tc -n "$sw" -batch -
    ip -n "$ns" link set eth0 up
    ip -n "$sw" link set "h$i" master br0 up
    start_machine "$ns" "${same_name:-$ns}"
    json+="${json:+,}{\"name\":\"$ns\",\"addr\":\"$SUBNET_PREFIX.$n.$((i + 1))\",\"hostname\":\"${same_name:-$ns}\"}"
  done
  name_machines "$tag" "$hosts" "$n"
  trap - INT TERM EXIT
  echo "{\"tag\":\"$tag\",\"rootAddr\":\"$root_addr\",\"rateMbit\":$rate,\"perFlowMbit\":$flow,\"hosts\":[$json]}"
}

cmd_cut() {
  local tag=$1 host=$2
  check_tag "$tag"; check_uint host "$host"
  # At the switch port, like pulling the cable there: the host keeps its address and routes, and
  # its packets (and everyone's packets to it) vanish instead of failing fast.
  ip -n "uc-$tag-sw" link set "h$host" down
}

cmd_restore() {
  local tag=$1 host=$2 ns addr
  check_tag "$tag"; check_uint host "$host"
  ip -n "uc-$tag-sw" link set "h$host" up
  # ARP that failed, or is still failing, from while the link was down would fail the first
  # connections after it is back (EHOSTUNREACH); forget it on both ends of every path.
  addr=$(ip -n "uc-$tag-h$host" -o -4 addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
  ip -n "uc-$tag-h$host" neigh flush dev eth0
  ip neigh flush dev "uc-$tag" to "$addr"
  for ns in $(tag_namespaces "$tag" | grep -Ev -- "-(sw|h$host)\$"); do
    ip -n "$ns" neigh flush dev eth0 to "$addr"
  done
}

cmd_status() {
  local tags ns tag
  if (($# > 0)); then check_tag "$1"; tags=$1
  else tags=$(ip netns list | awk '{print $1}' | sed -nE 's/^uc-([a-z0-9]+)-sw$/\1/p'); fi
  for tag in $tags; do
    echo "== cluster $tag: root uc-$tag $(ip -o -4 addr show dev "uc-$tag" 2>/dev/null | awk '{print $4}')"
    for ns in $(tag_namespaces "$tag" | grep -v -- '-sw$' | sort -V); do
      echo "-- $ns $(ip -n "$ns" -o -4 addr show dev eth0 | awk '{print $4}') $(ip -n "$ns" -o link show dev eth0 | grep -o 'state [A-Z]*')"
      tc -n "$ns" -s class show dev eth0 | awk '/^class/ {c=$3} /Sent/ && $2 > 0 {print "   egress class " c ": " $2 " bytes"}'
    done
  done
}

cmd_check() {
  ((EUID == 0)) || { echo "needs root (network namespaces), running as uid $EUID"; return 1; }
  local tool
  for tool in ip tc flock; do
    command -v "$tool" >/dev/null || { echo "'$tool' not found"; return 1; }
  done
  local probe="uc-probe$$-sw" err
  # Every kernel feature `up` uses: namespaces, veth across namespaces, bridge, htb, u32 hashing.
  if ! err=$(
    {
      ip netns add "$probe" &&
        ip -n "$probe" link add br0 type bridge &&
        ip -n "$probe" link add name x0 type veth peer name x1 &&
        host_egress_batch x0 100 10 | tc -n "$probe" -batch -
    } 2>&1
  ); then
    remove_namespace "$probe"
    echo "cannot set up namespaces, veth, bridge or htb: ${err//$'\n'/ }"
    return 1
  fi
  remove_namespace "$probe"
}

main() {
  (($# > 0)) || { usage >&2; exit 2; }
  local cmd=$1; shift
  case $cmd in
    up) cmd_up "$@" ;;
    down)
      (($# == 1)) || die "down wants a TAG or --all"
      if [[ $1 == --all ]]; then cmd_down_all; else check_tag "$1"; cmd_down "$1"; fi ;;
    cut) (($# == 2)) || die "cut wants TAG HOST"; cmd_cut "$1" "$2" ;;
    restore) (($# == 2)) || die "restore wants TAG HOST"; cmd_restore "$1" "$2" ;;
    status) cmd_status "$@" ;;
    check) cmd_check ;;
    enter) (($# >= 2)) || die "enter wants HOST CMD..."; cmd_enter "$@" ;;
    rsh) (($# >= 2)) || die "rsh wants HOST WORDS..."; host=$1; shift; cmd_enter "$host" sh -c "$*" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
