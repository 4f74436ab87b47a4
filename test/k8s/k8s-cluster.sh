#!/usr/bin/env bash
# The tests' Kubernetes: a control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) and one node (kubelet on containerd, runc and bridge CNI) on this machine, so
# pods really run. Binaries from k8s-build.sh (built once, cached); containerd, runc and the CNI
# plugins are Debian's (apt-get install containerd runc containernetworking-plugins). Root only.
#
#   bash test/k8s/k8s-cluster.sh start    start it (or find it running); prints the kubeconfig
#   bash test/k8s/k8s-cluster.sh stop     stop it and put the host back as it was
#   bash test/k8s/k8s-cluster.sh status   what runs
#
# `start` takes a lock and returns at once when the cluster is up already: test files running at
# the same time share one cluster (a machine holds one node: its bridge and cgroups are global).
# Images: nothing is pulled from the internet. Pods pull from registries on 127.0.0.1 (plain
# HTTP, as containerd allows for loopback), and the sandbox image is built here (pause.c).
# What is left out: kube-proxy and CoreDNS. A pod is reached on its own IP (10.244.0.0/24, routed
# to the host through the bridge), never through a ClusterIP; pods have no DNS and no route out.
#
# Env: FNBUS_K8S_DIR (state: certificates, etcd, logs; default /tmp/fnbus-k8s),
#      FNBUS_K8S_PORTS (first of 8 ports on 127.0.0.1 and the bridge; default 16440).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${FNBUS_K8S_DIR:-/tmp/fnbus-k8s}
first_port=${FNBUS_K8S_PORTS:-16440}
cache=${FNBUS_K8S_CACHE:-$HOME/.cache/fnbus/k8s}
etcd_version=${FNBUS_ETCD_VERSION:-v3.7.3}

port_etcd=$first_port
port_etcd_peer=$((first_port + 1))
port_api=$((first_port + 2))
port_controllers=$((first_port + 3))
port_scheduler=$((first_port + 4))
port_kubelet=$((first_port + 5))
port_kubelet_health=$((first_port + 6))
port_streaming=$((first_port + 7))

bridge=fnbus-k8s0
pod_cidr=10.244.0.0/24
bridge_ip=10.244.0.1
service_cidr=10.96.0.0/24
service_ip=10.96.0.1
node=127.0.0.1
pause_image=fnbus.test/pause:1
# The host settings the kubelet changes at start (it cannot be told not to); stop puts them back.
kubelet_sysctls="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"

say() { printf 'k8s-cluster: %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }

# ------------------------------------------------------------------------------ processes

# One file per daemon in $dir/pids: "<pid> <binary>": alive only if that PID still runs that binary.
alive() {
  local file=$dir/pids/$1 pid binary
  [ -f "$file" ] || return 1
  read -r pid binary < "$file"
  [ "$(readlink "/proc/$pid/exe" 2>/dev/null | sed 's/ (deleted)$//')" = "$binary" ]
}

# launch NAME BINARY ARGS...: in a session of its own, output to $dir/logs/NAME.log.
launch() {
  local name=$1 binary
  shift
  alive "$name" && return
  binary=$(readlink -f "$1")
  # 9>&-: the start lock is not passed on, or the daemon would hold it for its life.
  setsid "$@" >> "$dir/logs/$name.log" 2>&1 < /dev/null 9>&- &
  echo "$! $binary" > "$dir/pids/$name"
}

# finish NAME [SECONDS]: TERM, then KILL after the grace.
finish() {
  local name=$1 grace=${2:-20} pid
  if alive "$name"; then
    pid=$(cut -d' ' -f1 "$dir/pids/$name")
    kill -TERM "$pid" 2> /dev/null || true
    for _ in $(seq $((grace * 10))); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2> /dev/null || true
  fi
  rm -f "$dir/pids/$name"
}

# until_ok SECONDS WHAT COMMAND...: polls COMMAND; on timeout, says what and where its log is.
until_ok() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" > /dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "$what not ready after ${seconds}s (logs: $dir/logs/)"
    sleep 0.3
  done
}

kubectl_() { "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" "$@"; }

# ------------------------------------------------------------------------------ certificates

# issue NAME SUBJECT USAGE [SANS]: a key and a certificate signed by the cluster's CA.
issue() {
  local name=$1 subject=$2 usage=$3 sans=${4:-} pki=$dir/pki
  [ -f "$pki/$name.crt" ] && return
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subject" \
    -keyout "$pki/$name.key" -out "$pki/$name.csr" 2> /dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s' \
    "$usage" "${sans:+subjectAltName=$sans}" > "$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 825 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2> /dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

make_pki() {
  local pki=$dir/pki
  mkdir -p "$pki" && chmod 700 "$pki"
  if [ ! -f "$pki/ca.crt" ]; then
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
      -subj /CN=fnbus-test-k8s-ca -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature \
      -keyout "$pki/ca.key" -out "$pki/ca.crt" 2> /dev/null
  fi
  # Service-account tokens are signed with an RSA key of their own.
  [ -f "$pki/sa.key" ] || openssl genrsa -out "$pki/sa.key" 2048 2> /dev/null
  [ -f "$pki/sa.pub" ] || openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2> /dev/null
  issue apiserver /CN=kube-apiserver serverAuth \
    "IP:127.0.0.1,IP:$bridge_ip,IP:$service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  issue admin /O=system:masters/CN=fnbus-test-admin clientAuth
  issue controllers /CN=system:kube-controller-manager clientAuth
  issue scheduler /CN=system:kube-scheduler clientAuth
  issue apiserver-to-kubelet /O=system:masters/CN=kube-apiserver-kubelet-client clientAuth
  issue front-proxy /CN=front-proxy-client clientAuth
  issue kubelet "/O=system:nodes/CN=system:node:$node" clientAuth
  issue kubelet-serving "/CN=$node" serverAuth "IP:127.0.0.1"
}

# kubeconfig FILE CERT: a kubeconfig for the API server on the bridge address, with CERT's identity.
kubeconfig() {
  local pki=$dir/pki
  cat > "$1" << EOF
apiVersion: v1
kind: Config
clusters:
- name: fnbus-test
  cluster:
    server: https://$bridge_ip:$port_api
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$pki/$2.crt")
    client-key-data: $(base64 -w0 "$pki/$2.key")
contexts:
- name: fnbus-test
  context: {cluster: fnbus-test, user: $2}
current-context: fnbus-test
EOF
  chmod 600 "$1"
}

# ------------------------------------------------------------------------------ the node's network

# The bridge carries the pods; its address is the host's on the pod network, where the API server
# listens too (so pods reach it). Created before anything else, removed at stop.
network_up() {
  if ! ip link show "$bridge" > /dev/null 2>&1; then
    ip link add "$bridge" type bridge
    ip addr add "$bridge_ip/${pod_cidr#*/}" dev "$bridge"
    ip link set "$bridge" up
  fi
  # With br_netfilter loaded, bridged frames pass iptables' FORWARD chain, whose policy Docker
  # sets to DROP: pod-to-pod traffic needs a rule.
  if command -v iptables > /dev/null &&
    ! iptables -C FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2> /dev/null; then
    iptables -I FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2> /dev/null || say "no FORWARD rule for $bridge: pod-to-pod traffic may be dropped"
  fi
  # No kube-proxy: a ClusterIP from the host fails at once instead of going to the default route.
  ip route show type unreachable | grep -q "^unreachable $service_cidr" ||
    ip route add unreachable "$service_cidr"
}

network_down() {
  ip link del "$bridge" 2> /dev/null || true
  if command -v iptables > /dev/null; then
    while iptables -D FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2> /dev/null; do :; done
  fi
  ip route del unreachable "$service_cidr" 2> /dev/null || true
  rm -rf "$dir/cni/ipam"
}

# ------------------------------------------------------------------------------ images

# oci_image REF ROOTFS CONFIG-JSON OUT: an OCI image layout (one layer) in a tar, for `ctr import`.
oci_image() {
  local ref=$1 rootfs=$2 config=$3 out=$4 work layer layer_size config_digest config_size manifest_digest manifest_size
  work=$(mktemp -d)
  mkdir -p "$work/blobs/sha256"
  tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$rootfs" -cf "$work/layer" .
  layer=$(sha256sum "$work/layer" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$work/layer")
  mv "$work/layer" "$work/blobs/sha256/$layer"
  printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$config" "$layer" > "$work/config"
  config_digest=$(sha256sum "$work/config" | cut -d' ' -f1)
  config_size=$(stat -c %s "$work/config")
  mv "$work/config" "$work/blobs/sha256/$config_digest"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config_digest" "$config_size" "$layer" "$layer_size" > "$work/manifest"
  manifest_digest=$(sha256sum "$work/manifest" | cut -d' ' -f1)
  manifest_size=$(stat -c %s "$work/manifest")
  mv "$work/manifest" "$work/blobs/sha256/$manifest_digest"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$manifest_size" "$ref" "${ref##*:}" > "$work/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$work/oci-layout"
  tar -C "$work" -cf "$out" oci-layout index.json blobs
  rm -rf "$work"
}

# The sandbox image: pause.c, static, alone in its image. Built once into the cache.
pause_image() {
  local out=$cache/images/pause-1.tar rootfs
  [ -f "$out" ] && [ "$out" -nt "$here/pause.c" ] && { echo "$out"; return; }
  mkdir -p "$cache/images"
  rootfs=$(mktemp -d)
  cc -static -O2 -o "$rootfs/pause" "$here/pause.c" || fail "cannot build pause.c (needs cc and libc6-dev's static libc)"
  oci_image "$pause_image" "$rootfs" '{"Entrypoint":["/pause"]}' "$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$rootfs"
  echo "$out"
}

# ------------------------------------------------------------------------------ start

control_plane_up() {
  local pki=$dir/pki
  launch etcd "$cache/bin/etcd-$etcd_version/etcd" --name fnbus-test --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$port_etcd" --advertise-client-urls "http://127.0.0.1:$port_etcd" \
    --listen-peer-urls "http://127.0.0.1:$port_etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$port_etcd_peer" \
    --initial-cluster "fnbus-test=http://127.0.0.1:$port_etcd_peer" --log-level warn
  until_ok 60 etcd curl -sf "http://127.0.0.1:$port_etcd/health"

  launch kube-apiserver "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$port_etcd" \
    --bind-address "$bridge_ip" --advertise-address "$bridge_ip" --secure-port "$port_api" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range "$service_cidr" --endpoint-reconciler-type none \
    --requestheader-client-ca-file "$pki/ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy.crt" --proxy-client-key-file "$pki/front-proxy.key" \
    --kubelet-client-certificate "$pki/apiserver-to-kubelet.crt" --kubelet-client-key "$pki/apiserver-to-kubelet.key" \
    --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP,Hostname \
    --profiling=false
  until_ok 180 kube-apiserver curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://$bridge_ip:$port_api/readyz"

  launch kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$dir/controllers.kubeconfig" \
    --authentication-kubeconfig "$dir/controllers.kubeconfig" --authorization-kubeconfig "$dir/controllers.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$port_controllers" --leader-elect=false \
    --use-service-account-credentials --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range "$service_cidr"
  launch kube-scheduler "$bin/kube-scheduler" --kubeconfig "$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/scheduler.kubeconfig" --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$port_scheduler" --leader-elect=false
}

node_up() {
  local socket=$dir/containerd/containerd.sock cni=/usr/lib/cni restrict_oom=false
  [ -x "$cni/bridge" ] || cni=/opt/cni/bin
  mkdir -p "$dir/containerd" "$dir/cni/net.d" "$dir/kubelet"
  cat > "$dir/cni/net.d/10-fnbus-test.conflist" << EOF
{"cniVersion": "0.4.0", "name": "fnbus-test", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": false, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr", "gateway": "$bridge_ip"}]],
            "dataDir": "$dir/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  # Without CAP_SYS_RESOURCE (some sandboxes drop it) nothing may lower an oom_score_adj, and runc
  # fails on the sandbox's -998; containerd then keeps it at its own.
  (((0x$(awk '/^CapEff/ {print $2}' /proc/self/status) >> 24) & 1)) || restrict_oom=true
  cat > "$dir/containerd/config.toml" << EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
[grpc]
  address = "$socket"
[ttrpc]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  stream_server_address = "127.0.0.1"
  stream_server_port = "$port_streaming"
  restrict_oom_score_adj = $restrict_oom
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni"
    conf_dir = "$dir/cni/net.d"
EOF
  launch containerd /usr/bin/containerd --config "$dir/containerd/config.toml"
  until_ok 60 containerd ctr --address "$socket" version
  ctr --address "$socket" -n k8s.io images import "$(pause_image)" > /dev/null

  local pki=$dir/pki
  for key in $kubelet_sysctls; do
    grep -q "^$key " "$dir/sysctls" 2> /dev/null || echo "$key $(sysctl -n "$key")" >> "$dir/sysctls"
  done
  cat > "$dir/kubelet/config.yaml" << EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $port_kubelet
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $port_kubelet_health
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $pki/ca.crt}}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$socket
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
podLogsDir: $dir/pod-logs
volumePluginDir: $dir/kubelet/volume-plugins
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
  launch kubelet "$bin/kubelet" --config "$dir/kubelet/config.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
    --root-dir "$dir/kubelet" --hostname-override "$node" --v 1
  until_ok 240 "node $node" kubectl_ wait "node/$node" --for condition=Ready --timeout 5s
}

start() {
  [ "$(id -u)" = 0 ] || fail "needs root (a kubelet, a bridge, cgroups)"
  for tool in containerd ctr runc openssl cc curl ip; do
    command -v "$tool" > /dev/null || fail "$tool is missing (apt-get install containerd runc containernetworking-plugins openssl gcc curl iproute2)"
  done
  bin=$(bash "$here/k8s-build.sh")
  mkdir -p "$dir/pids" "$dir/logs"
  make_pki
  kubeconfig "$dir/admin.kubeconfig" admin
  kubeconfig "$dir/controllers.kubeconfig" controllers
  kubeconfig "$dir/scheduler.kubeconfig" scheduler
  kubeconfig "$dir/kubelet.kubeconfig" kubelet
  network_up
  control_plane_up
  node_up
  # Pods can be made once the service-account controller made namespace default's account.
  until_ok 120 "service account default/default" kubectl_ -n default get serviceaccount default
  echo "$dir/admin.kubeconfig"
}

# ------------------------------------------------------------------------------ stop

stop() {
  local socket=$dir/containerd/containerd.sock
  finish kubelet 30
  finish containerd 30
  # The containers' shims outlive containerd: found by its socket in their command line, then
  # whatever still runs in the pods' cgroups.
  for proc in /proc/[0-9]*; do
    tr '\0' ' ' < "$proc/cmdline" 2> /dev/null | grep -q -- "-address $socket " && kill -KILL "${proc#/proc/}" 2> /dev/null || true
  done
  for cgroup in /sys/fs/cgroup/*/kubepods; do
    [ -d "$cgroup" ] || continue
    find "$cgroup" -name cgroup.procs -exec cat {} + 2> /dev/null | xargs -r kill -KILL 2> /dev/null || true
  done
  for _ in $(seq 20); do
    find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} + 2> /dev/null || true
    compgen -G '/sys/fs/cgroup/*/kubepods' > /dev/null || break
    sleep 0.2
  done
  awk -v under="$dir/" 'index($2, under) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2> /dev/null || true
  find /var/log/containers -maxdepth 1 -type l -lname "$dir/*" -delete 2> /dev/null || true
  for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do finish "$name" 30; done
  network_down
  if [ -f "$dir/sysctls" ]; then
    while read -r key value; do sysctl -q -w "$key=$value" > /dev/null 2>&1 || true; done < "$dir/sysctls"
    rm -f "$dir/sysctls"
  fi
}

status() {
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet; do
    if alive "$name"; then echo "$name: running"; else echo "$name: stopped"; fi
  done
}

mkdir -p "$dir"
case ${1:-} in
  start)
    # One start at a time; a second finds the first's cluster up.
    exec 9> "$dir.lock"
    flock 9
    start
    ;;
  stop)
    exec 9> "$dir.lock"
    flock 9
    [ -d "$dir/pids" ] && stop
    say "stopped"
    ;;
  status) status ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
