// Idle sessions: open N sessions through the proxy (each proven end to end by a 1-byte echo), hold
// them, and report how much the proxy's memory grew per session.
package main

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

type idleConfig struct {
	dialer      dialer
	sessions    int
	concurrency int
	settle      time.Duration
	proxyPIDs   []int
}

type idleResult struct {
	Sessions    int     `json:"sessions"`
	Opened      int     `json:"opened"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"firstError,omitempty"`
	OpenSeconds float64 `json:"openSeconds"`
	Before      memory  `json:"before"`
	// HalfHeld: after the first half of the sessions opened; Held: after all of them.
	HalfHeld   memory `json:"halfHeld"`
	Held       memory `json:"held"`
	AfterClose memory `json:"afterClose"`
	// Growth from before to all held, divided by the sessions held.
	RSSBytesPerSession float64 `json:"rssBytesPerSession"`
	PSSBytesPerSession float64 `json:"pssBytesPerSession"`
	// Growth from half to all held, divided by the sessions added: the cost of one more idle
	// session, without one-time growth (a runtime sizing its heap, a server forking its pool).
	MarginalRSSBytesPerSession float64 `json:"marginalRssBytesPerSession"`
	MarginalPSSBytesPerSession float64 `json:"marginalPssBytesPerSession"`
}

func runIdle(cfg idleConfig) (idleResult, error) {
	srv, err := startServers()
	if err != nil {
		return idleResult{}, err
	}
	defer srv.close()
	r := idleResult{Sessions: cfg.sessions}
	time.Sleep(cfg.settle)
	r.Before = treeMemory(cfg.proxyPIDs)

	conns := make([]net.Conn, cfg.sessions)
	var errors atomic.Int64
	var firstError atomic.Value
	start := time.Now()
	half := cfg.sessions / 2
	openRange(cfg, srv, conns[:half], &errors, &firstError)
	time.Sleep(cfg.settle)
	r.HalfHeld = treeMemory(cfg.proxyPIDs)
	openRange(cfg, srv, conns[half:], &errors, &firstError)
	r.OpenSeconds = time.Since(start).Seconds() - cfg.settle.Seconds()
	r.Errors = errors.Load()
	if e, ok := firstError.Load().(string); ok {
		r.FirstError = e
	}
	openedFirst := 0
	for i, c := range conns {
		if c != nil {
			r.Opened++
			if i < half {
				openedFirst++
			}
		}
	}
	time.Sleep(cfg.settle)
	r.Held = treeMemory(cfg.proxyPIDs)
	if r.Opened > 0 {
		r.RSSBytesPerSession = (r.Held.RSSKiB - r.Before.RSSKiB) * 1024 / float64(r.Opened)
		r.PSSBytesPerSession = (r.Held.PSSKiB - r.Before.PSSKiB) * 1024 / float64(r.Opened)
	}
	if added := r.Opened - openedFirst; added > 0 {
		r.MarginalRSSBytesPerSession = (r.Held.RSSKiB - r.HalfHeld.RSSKiB) * 1024 / float64(added)
		r.MarginalPSSBytesPerSession = (r.Held.PSSKiB - r.HalfHeld.PSSKiB) * 1024 / float64(added)
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	time.Sleep(cfg.settle)
	r.AfterClose = treeMemory(cfg.proxyPIDs)
	return r, nil
}

// openRange opens one session per slot of conns, cfg.concurrency at a time; a slot stays nil when
// its session failed (counted in errors).
func openRange(cfg idleConfig, srv *servers, conns []net.Conn, errors *atomic.Int64, firstError *atomic.Value) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < cfg.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := []byte{'x'}
			back := make([]byte, 1)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				c, err := cfg.dialer.open(srv.echo[i%len(srv.echo)])
				if err == nil {
					c.SetDeadline(time.Now().Add(cfg.dialer.timeout))
					if _, err = c.Write(one); err == nil {
						_, err = io.ReadFull(c, back)
					}
					c.SetDeadline(time.Time{})
				}
				if err != nil {
					errors.Add(1)
					firstError.CompareAndSwap(nil, err.Error())
					if c != nil {
						c.Close()
					}
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
}
