// Handshake cycles: N clients each loop CONNECT → 64-byte echo → close (the destination closes
// first, see cycleBytes), as fast as they can.
// Only cycles that finish inside the measurement window count; warm-up cycles are discarded.
package main

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type handshakeConfig struct {
	dialer             dialer
	clients            int
	warmup             time.Duration
	duration           time.Duration
	maxCycles          int64
	proxyPIDs, auxPIDs []int
}

type handshakeResult struct {
	Cycles               int64     `json:"cycles"`
	Errors               int64     `json:"errors"`
	FirstError           string    `json:"firstError,omitempty"`
	WindowSeconds        float64   `json:"windowSeconds"`
	CyclesPerSecond      float64   `json:"cyclesPerSecond"`
	HandshakeP50Us       float64   `json:"handshakeP50Us"`
	HandshakeP99Us       float64   `json:"handshakeP99Us"`
	CycleP50Us           float64   `json:"cycleP50Us"`
	CycleP99Us           float64   `json:"cycleP99Us"`
	ProxyCPUUsPerSession float64   `json:"proxyCpuUsPerSession"`
	CPU                  cpuReport `json:"cpu"`
}

type worker struct {
	handshakes, cycles []float64 // µs, recorded inside the window only
	errors             int64
	firstError         string
}

func runHandshake(cfg handshakeConfig) (handshakeResult, error) {
	srv, err := startServers()
	if err != nil {
		return handshakeResult{}, err
	}
	defer srv.close()
	var stop, recording atomic.Bool
	var recorded atomic.Int64
	payload := bytes.Repeat([]byte("0123456789abcdef"), cycleBytes/16)
	workers := make([]*worker, cfg.clients)
	var wg sync.WaitGroup
	// Every worker stops after its share of maxCycles (plus warm-up), whatever the clock says.
	perWorker := cfg.maxCycles/int64(cfg.clients) + 1
	for i := range workers {
		w := &worker{}
		workers[i] = w
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			echoBuf := make([]byte, len(payload)+1)
			dest := srv.echoClose[i%len(srv.echoClose)]
			for n := int64(0); n < 4*perWorker && !stop.Load(); n++ {
				t0 := time.Now()
				c, err := cfg.dialer.open(dest)
				if err != nil {
					w.fail(err, recording.Load())
					time.Sleep(time.Millisecond) // do not spin on a refusing proxy
					continue
				}
				t1 := time.Now()
				c.SetDeadline(t1.Add(cfg.dialer.timeout))
				_, err = c.Write(payload)
				if err == nil {
					_, err = io.ReadFull(c, echoBuf[:len(payload)])
				}
				if err == nil {
					// The destination closes first (see cycleBytes); the proxy passes its FIN on.
					if n, eof := c.Read(echoBuf); n != 0 || eof != io.EOF {
						err = fmt.Errorf("expected the destination's close, got %d bytes, %v", n, eof)
					}
				}
				c.Close()
				t2 := time.Now()
				if err != nil {
					w.fail(err, recording.Load())
					continue
				}
				if recording.Load() {
					w.handshakes = append(w.handshakes, float64(t1.Sub(t0).Microseconds()))
					w.cycles = append(w.cycles, float64(t2.Sub(t0).Microseconds()))
					if recorded.Add(1) >= cfg.maxCycles {
						stop.Store(true)
					}
				}
			}
		}(i)
	}
	time.Sleep(cfg.warmup)
	window := startCPUWindow(cfg.proxyPIDs, cfg.auxPIDs)
	start := time.Now()
	recording.Store(true)
	waitWindow(cfg.duration, &stop)
	recording.Store(false)
	elapsed := time.Since(start).Seconds()
	cpu := window.finish(elapsed)
	stop.Store(true)
	wg.Wait()

	r := handshakeResult{WindowSeconds: elapsed, CPU: cpu}
	var hs, cyc []float64
	for _, w := range workers {
		hs = append(hs, w.handshakes...)
		cyc = append(cyc, w.cycles...)
		r.Errors += w.errors
		if r.FirstError == "" {
			r.FirstError = w.firstError
		}
	}
	r.Cycles = int64(len(cyc))
	r.CyclesPerSecond = float64(r.Cycles) / elapsed
	r.HandshakeP50Us, r.HandshakeP99Us = percentile(hs, 50), percentile(hs, 99)
	r.CycleP50Us, r.CycleP99Us = percentile(cyc, 50), percentile(cyc, 99)
	if r.Cycles > 0 {
		r.ProxyCPUUsPerSession = cpu.ProxyCPUSeconds * 1e6 / float64(r.Cycles)
	}
	return r, nil
}

func (w *worker) fail(err error, recording bool) {
	if recording {
		w.errors++
	}
	if w.firstError == "" {
		w.firstError = err.Error()
	}
}

// waitWindow sleeps for d, or less when stop is set (the count bound was reached).
func waitWindow(d time.Duration, stop *atomic.Bool) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && !stop.Load() {
		time.Sleep(min(20*time.Millisecond, time.Until(deadline)))
	}
}

// percentile by nearest rank; 0 for no samples.
func percentile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sort.Float64s(values)
	rank := int(p/100*float64(len(values))+0.5) - 1
	return values[max(0, min(rank, len(values)-1))]
}
