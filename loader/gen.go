package loader

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type endpoint_key -type endpoint_info -type uplink_config -type counter_id -type endpoint_flags -type uplink_flags -type port_info -type port_flags -type ns_limit_config -type ns_source -type network_info -type network_flags -type net_stats -type v6dp_limits uplink ../bpf/uplink.c -- -I../headers -I/usr/include/x86_64-linux-gnu
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel egress ../bpf/tc_endpoint.c -- -I../headers -I/usr/include/x86_64-linux-gnu
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel pass ../bpf/xdp_pass.c -- -I/usr/include/x86_64-linux-gnu
