// Opening a session to a destination, directly or through a SOCKS4 proxy (CONNECT, no 4a).
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

const userID = "bench"

var errRefused = errors.New("proxy refused the request")

type dialer struct {
	proxy   string // "" = direct
	timeout time.Duration
}

// open returns a connection that carries bytes to dest: after TCP connect when direct, after the
// 8-byte reply 90 when through the proxy.
func (d dialer) open(dest *net.TCPAddr) (net.Conn, error) {
	target := dest.String()
	if d.proxy != "" {
		target = d.proxy
	}
	c, err := net.DialTimeout("tcp4", target, d.timeout)
	if err != nil {
		return nil, err
	}
	if d.proxy == "" {
		return c, nil
	}
	c.SetDeadline(time.Now().Add(d.timeout))
	ip := dest.IP.To4()
	req := make([]byte, 0, 9+len(userID))
	req = append(req, 4, 1, byte(dest.Port>>8), byte(dest.Port), ip[0], ip[1], ip[2], ip[3])
	req = append(req, userID...)
	req = append(req, 0)
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	var reply [8]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		c.Close()
		return nil, err
	}
	if reply[1] != 90 {
		c.Close()
		return nil, fmt.Errorf("%w: reply %d", errRefused, reply[1])
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
