// Command backend is the server behind every proxy in bench/lb/run: a
// minimal HTTP/1.1 keep-alive responder, so that the proxies, not the
// backend, use the CPU being measured. It answers every request with a
// short 200 and /health with 200 too.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"log"
	"net"
	"strconv"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	name := flag.String("name", "backend", "name put in the response body")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	body := "hello from " + *name + "\n"
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, resp)
	}
}

// serve answers each request head on c; request bodies (Content-Length only)
// are skipped.
func serve(c net.Conn, resp []byte) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 8192)
	bw := bufio.NewWriterSize(c, 8192)
	for {
		var cl int64
		closeAfter := false
		for first := true; ; first = false {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(bytes.TrimSpace(line)) == 0 {
				if first {
					continue
				}
				break
			}
			if i := bytes.IndexByte(line, ':'); i > 0 {
				name := bytes.ToLower(line[:i])
				val := bytes.TrimSpace(line[i+1:])
				switch string(name) {
				case "content-length":
					cl, _ = strconv.ParseInt(string(val), 10, 64)
				case "connection":
					closeAfter = bytes.EqualFold(val, []byte("close"))
				}
			}
		}
		if cl > 0 {
			if _, err := io.CopyN(io.Discard, br, cl); err != nil {
				return
			}
		}
		bw.Write(resp)
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
		if closeAfter {
			bw.Flush()
			return
		}
	}
}
