module socks4-fleet/bench/loadgen

go 1.22
