// Go peers of the HTTP benchmark, run with GOMAXPROCS=1 (one CPU, like
// libgreen's hub):
//
//	http_go nethttp PORT   net/http's server (adds Date and the like: fine)
//	http_go raw PORT       net.Listen, a goroutine per connection, and the
//	                       same minimal "\r\n\r\n" parse as the C servers
//
// Both serve "Hello, World!" for GET / on 127.0.0.1:PORT until killed.
package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
)

var response = []byte("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n" +
	"Content-Type: text/plain\r\n\r\nHello, World!")

var body = []byte("Hello, World!")

var crlf2 = []byte("\r\n\r\n")

func serveNetHTTP(addr string) error {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"text/plain"}
		h["Content-Length"] = []string{"13"}
		w.Write(body)
	})
	return http.ListenAndServe(addr, handler)
}

// handleRaw answers every complete request in what it read, pipelined ones
// in one write, and keeps an incomplete tail for the next read.
func handleRaw(c net.Conn) {
	defer c.Close()
	in := make([]byte, 4096)
	out := make([]byte, 0, 32*len(response))
	n := 0
	for {
		m, err := c.Read(in[n:])
		if m <= 0 || err != nil {
			return
		}
		n += m
		start := 0
		out = out[:0]
		for {
			i := bytes.Index(in[start:n], crlf2)
			if i < 0 {
				break
			}
			start += i + 4
			out = append(out, response...)
		}
		if start == 0 && n == len(in) {
			return // a header larger than the buffer
		}
		n = copy(in, in[start:n])
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}

func serveRaw(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go handleRaw(c)
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: http_go nethttp|raw PORT")
		os.Exit(2)
	}
	addr := "127.0.0.1:" + os.Args[2]
	var err error
	switch os.Args[1] {
	case "nethttp":
		err = serveNetHTTP(addr)
	case "raw":
		err = serveRaw(addr)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	fmt.Fprintln(os.Stderr, "http_go:", err)
	os.Exit(1)
}
