# containerd_config DIR SOCK SNAPSHOTTER: print the config.toml of a private
# containerd (root, state, sockets and certs.d under DIR; no TCP). Shared by
# the install tests and bench/install.sh. Named .bash so tests/run skips it.
containerd_config() {
	cat <<EOF_CONF
version = 2
root = "$1/root"
state = "$1/state"
[grpc]
  address = "$2"
[ttrpc]
  address = "$2.ttrpc"
[debug]
  address = "$2.debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "$1/opt"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "$3"
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$1/certs.d"
EOF_CONF
}
