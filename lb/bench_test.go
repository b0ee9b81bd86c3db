package lb

import (
	"bufio"
	"bytes"
	"net"
	"testing"
)

// BenchmarkProxyKeepAlive measures one keep-alive GET through the balancer
// to a minimal server; allocs/op should stay at 0.
func BenchmarkProxyKeepAlive(b *testing.B) {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
	// The server and client below allocate nothing either, so allocs/op is
	// the balancer's.
	port := rawBackend(b, func(c net.Conn, br *bufio.Reader) {
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) == 2 { // the empty line ending a head
				if _, err := c.Write(resp); err != nil {
					return
				}
			}
		}
	})
	bal := newBalancer(b, Options{})
	cfg := config(b, Server{Address: "127.0.0.1", Port: port, Weight: 1})
	apply(b, bal, cfg)
	c, err := net.Dial("tcp", addr(cfg, 0))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n")
	buf := make([]byte, 4096)
	hello := []byte("hello")
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		// The answer is small: one read of head and body.
		n := 0
		for !bytes.HasSuffix(buf[:n], hello) {
			m, err := br.Read(buf[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += m
		}
	}
	for i := 0; i < 100; i++ {
		roundTrip()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		roundTrip()
	}
}
