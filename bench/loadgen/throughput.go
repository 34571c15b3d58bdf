// Throughput: N sessions each stream to the sink as fast as TCP allows; the sink counts what
// arrives inside the window. One direction (client → destination), like an upload.
package main

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

type throughputConfig struct {
	dialer             dialer
	sessions           int
	warmup             time.Duration
	duration           time.Duration
	maxBytes           int64
	proxyPIDs, auxPIDs []int
}

type throughputResult struct {
	Sessions       int       `json:"sessions"`
	Bytes          int64     `json:"bytes"`
	WindowSeconds  float64   `json:"windowSeconds"`
	MiBPerSecond   float64   `json:"mibPerSecond"`
	ProxyCPUPerGiB float64   `json:"proxyCpuSecondsPerGiB"`
	Errors         int64     `json:"errors"`
	FirstError     string    `json:"firstError,omitempty"`
	CPU            cpuReport `json:"cpu"`
}

const chunkSize = 128 << 10

func runThroughput(cfg throughputConfig) (throughputResult, error) {
	srv, err := startServers()
	if err != nil {
		return throughputResult{}, err
	}
	defer srv.close()
	conns := make([]net.Conn, 0, cfg.sessions)
	for i := 0; i < cfg.sessions; i++ {
		c, err := cfg.dialer.open(srv.sink)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return throughputResult{Errors: 1, FirstError: err.Error()}, nil
		}
		conns = append(conns, c)
	}
	var stop atomic.Bool
	var errors atomic.Int64
	var firstError atomic.Value
	var wg sync.WaitGroup
	chunk := make([]byte, chunkSize)
	// Each writer stops at its share of the byte bound, or when told to.
	perSession := cfg.maxBytes/int64(cfg.sessions) + chunkSize
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			for sent := int64(0); sent < perSession && !stop.Load(); {
				n, err := c.Write(chunk)
				sent += int64(n)
				if err != nil {
					if !stop.Load() {
						errors.Add(1)
						firstError.CompareAndSwap(nil, err.Error())
					}
					return
				}
			}
		}(c)
	}
	time.Sleep(cfg.warmup)
	window := startCPUWindow(cfg.proxyPIDs, cfg.auxPIDs)
	startBytes := srv.sinkBytes.Load()
	start := time.Now()
	deadline := start.Add(cfg.duration)
	for time.Now().Before(deadline) && srv.sinkBytes.Load()-startBytes < cfg.maxBytes {
		time.Sleep(10 * time.Millisecond)
	}
	bytes := srv.sinkBytes.Load() - startBytes
	elapsed := time.Since(start).Seconds()
	cpu := window.finish(elapsed)
	stop.Store(true)
	for _, c := range conns {
		c.Close() // unblocks writers stuck on a full window
	}
	wg.Wait()
	r := throughputResult{Sessions: cfg.sessions, Bytes: bytes, WindowSeconds: elapsed, CPU: cpu, Errors: errors.Load()}
	if e, ok := firstError.Load().(string); ok {
		r.FirstError = e
	}
	r.MiBPerSecond = float64(bytes) / (1 << 20) / elapsed
	if bytes > 0 {
		r.ProxyCPUPerGiB = cpu.ProxyCPUSeconds / (float64(bytes) / (1 << 30))
	}
	return r, nil
}
