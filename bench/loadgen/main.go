// loadgen: the load generator of `make bench` (see bench/README.md for why it is Go).
//
//	loadgen handshake  -proxy HOST:PORT -clients 50 -duration 3s ...
//	loadgen throughput -proxy HOST:PORT -sessions 8 -duration 2s ...
//	loadgen idle       -proxy HOST:PORT -sessions 5000 ...
//
// Without -proxy it talks to its own servers directly (the machine's own limit). Every run starts
// its own echo and sink servers on 127.0.0.1 and prints one JSON object on stdout.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func parsePIDs(text string) []int {
	var out []int
	for _, part := range strings.Split(text, ",") {
		if pid, err := strconv.Atoi(strings.TrimSpace(part)); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	return out
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen handshake|throughput|idle [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	proxy := fs.String("proxy", "", "SOCKS4 proxy HOST:PORT; empty = direct")
	timeout := fs.Duration("timeout", 5*time.Second, "per-operation timeout")
	pids := fs.String("pids", "", "proxy process ids (their trees are measured)")
	aux := fs.String("aux", "", "helper process ids (e.g. redis-server), measured apart")
	clients := fs.Int("clients", 50, "handshake: concurrent clients")
	sessions := fs.Int("sessions", 1, "throughput/idle: sessions")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "time before the window opens")
	duration := fs.Duration("duration", 3*time.Second, "measurement window")
	maxCycles := fs.Int64("max-cycles", 2_000_000, "handshake: stop after this many cycles")
	maxBytes := fs.Int64("max-bytes", 64<<30, "throughput: stop after this many bytes")
	concurrency := fs.Int("concurrency", 64, "idle: sessions being opened at once")
	settle := fs.Duration("settle", time.Second, "idle: wait before each memory sample")
	fs.Parse(os.Args[2:])

	d := dialer{proxy: *proxy, timeout: *timeout}
	var result any
	var err error
	switch os.Args[1] {
	case "handshake":
		result, err = runHandshake(handshakeConfig{dialer: d, clients: *clients, warmup: *warmup, duration: *duration,
			maxCycles: *maxCycles, proxyPIDs: parsePIDs(*pids), auxPIDs: parsePIDs(*aux)})
	case "throughput":
		result, err = runThroughput(throughputConfig{dialer: d, sessions: *sessions, warmup: *warmup, duration: *duration,
			maxBytes: *maxBytes, proxyPIDs: parsePIDs(*pids), auxPIDs: parsePIDs(*aux)})
	case "idle":
		result, err = runIdle(idleConfig{dialer: d, sessions: *sessions, concurrency: *concurrency, settle: *settle,
			proxyPIDs: parsePIDs(*pids)})
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(result)
}
