# Sourced inside the lab VM before the job: creates LAB_NHOSTS namespace hosts h1..hN, each with
# a veth into the bridge labbr0 (one L2 segment), documentation addresses, and routes so that
# every host reaches every other host's 198.51.100.M (a tunnel-able inner address) via 192.0.2.M.
set -e
# The host may lack iputils' ping: use the lab's busybox applet then (the overlay root is writable).
if ! command -v ping >/dev/null; then
  ln -sf "$(dirname "${BASH_SOURCE[0]}")/cache/busybox/bin/busybox" /usr/local/bin/ping
fi
ip link add labbr0 type bridge
ip link set labbr0 up
LAB_HOSTS=""
for n in $(seq 1 "$LAB_NHOSTS"); do
  h=h$n
  ip netns add "$h"
  ip link add "veth$n" type veth peer name eth0 netns "$h"
  ip link set "veth$n" master labbr0 up
  ip -n "$h" link set lo up
  ip -n "$h" link set eth0 up
  ip -n "$h" addr add "192.0.2.$n/24" dev eth0
  ip -n "$h" addr add "2001:db8::$n/64" dev eth0 nodad
  ip -n "$h" addr add "198.51.100.$n/32" dev lo
  ip -n "$h" addr add "2001:db8:100::$n/128" dev lo
  LAB_HOSTS="$LAB_HOSTS $h"
done
for n in $(seq 1 "$LAB_NHOSTS"); do
  for m in $(seq 1 "$LAB_NHOSTS"); do
    [ "$n" = "$m" ] && continue
    ip -n "h$n" route add "198.51.100.$m/32" via "192.0.2.$m" src "198.51.100.$n"
    ip -n "h$n" -6 route add "2001:db8:100::$m/128" via "2001:db8::$m" src "2001:db8:100::$n"
  done
done
export LAB_HOSTS=${LAB_HOSTS# }
echo "lab: hosts $LAB_HOSTS ready (kernel $(uname -r))"
set +e
