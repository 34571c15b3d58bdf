// The far ends every measurement talks to, all on loopback: echo servers (the handshake and idle
// measurements) and a sink that counts what it receives (throughput). They live in the load
// generator's process so "direct" measures the same code with no proxy in between.
package main

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

type servers struct {
	echo      []*net.TCPAddr
	echoClose []*net.TCPAddr
	sink      *net.TCPAddr
	sinkBytes atomic.Int64
	listeners []net.Listener
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
}

// Several echo ports spread connections over more 4-tuples.
const echoListeners = 4

// cycleBytes is what a handshake cycle echoes. Its echo server closes first, once it has echoed
// them: the side that closes first keeps the TIME_WAIT, and on the server that is a tuple of its
// listening port. Were the clients (and the proxy, towards the destination) to close first, every
// cycle would park an ephemeral port in TIME_WAIT for a minute, and thousands of cycles a second
// run the 28 000 ports out: connects and even listens fail with EADDRINUSE, and Dante, which
// binds its outgoing sockets before connecting, refuses requests.
const cycleBytes = 64

func startServers() (*servers, error) {
	s := &servers{conns: map[net.Conn]struct{}{}}
	for i := 0; i < echoListeners; i++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			s.close()
			return nil, err
		}
		s.listeners = append(s.listeners, l)
		s.echo = append(s.echo, l.Addr().(*net.TCPAddr))
		go s.accept(l, s.serveEcho)
		l, err = net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			s.close()
			return nil, err
		}
		s.listeners = append(s.listeners, l)
		s.echoClose = append(s.echoClose, l.Addr().(*net.TCPAddr))
		go s.accept(l, s.serveEchoThenClose)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		s.close()
		return nil, err
	}
	s.listeners = append(s.listeners, l)
	s.sink = l.Addr().(*net.TCPAddr)
	go s.accept(l, s.serveSink)
	return s, nil
}

func (s *servers) accept(l net.Listener, serve func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return // listener closed
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go func() {
			serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// A plain read/write loop: handing io.Copy the *net.TCPConn itself would splice(2) through a
// pipe pair per connection, and 5 000 idle sessions would hold 10 000 extra descriptors.
func (s *servers) serveEcho(c net.Conn) {
	buf := make([]byte, 4096)
	io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, buf)
}

// serveEchoThenClose echoes cycleBytes and closes (the deferred Close in accept).
func (s *servers) serveEchoThenClose(c net.Conn) {
	buf := make([]byte, cycleBytes)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err == nil {
		c.Write(buf)
	}
}

func (s *servers) serveSink(c net.Conn) {
	buf := make([]byte, 256<<10)
	for {
		n, err := c.Read(buf)
		s.sinkBytes.Add(int64(n))
		if err != nil {
			return
		}
	}
}

func (s *servers) close() {
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
}
