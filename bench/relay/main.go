// Command relay is the floor the gateway's overhead is measured against: a proxy with no
// logic at all between a client and one Streamable HTTP server, on the same machine and
// the same two loopback hops as the gateway.
//
//	relay [-mode tcp|http] serve --config FILE
//
// It reads listen and the first server's url from a gateway config (so that bench/ab.sh
// runs it as it runs a gateway binary). Mode tcp copies bytes between each client
// connection and a connection of its own to the server, through user memory (as any proxy
// that looks at the messages must), one goroutine each way; mode http is the standard
// library's httputil.ReverseProxy.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"

	"go.yaml.in/yaml/v3"
)

func main() {
	mode := flag.String("mode", "tcp", "tcp (a byte relay) or http (httputil.ReverseProxy)")
	flag.Parse()
	args := flag.Args()
	if len(args) != 3 || args[0] != "serve" || args[1] != "--config" {
		fmt.Fprintln(os.Stderr, "usage: relay [-mode tcp|http] serve --config FILE")
		os.Exit(2)
	}
	b, err := os.ReadFile(args[2])
	if err != nil {
		log.Fatal(err)
	}
	var cfg struct {
		Listen  string `yaml:"listen"`
		Servers []struct {
			URL string `yaml:"url"`
		} `yaml:"servers"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		log.Fatalf("relay: %s: %v", args[2], err)
	}
	if cfg.Listen == "" || len(cfg.Servers) == 0 {
		log.Fatalf("relay: %s needs listen and a server with a url", args[2])
	}
	target, err := url.Parse(cfg.Servers[0].URL)
	if err != nil || target.Host == "" {
		log.Fatalf("relay: bad server url %q", cfg.Servers[0].URL)
	}
	switch *mode {
	case "tcp":
		log.Fatal(relayTCP(cfg.Listen, target.Host))
	case "http":
		proxy := &httputil.ReverseProxy{
			Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host}) },
			FlushInterval: -1,
			Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256},
		}
		log.Fatal(http.ListenAndServe(cfg.Listen, proxy))
	default:
		log.Fatalf("relay: unknown -mode %q", *mode)
	}
}

func relayTCP(listen, server string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", server)
			if err != nil {
				return
			}
			defer u.Close()
			go copyThrough(u, c)
			copyThrough(c, u)
		}()
	}
}

// copyThrough copies src to dst through a buffer (the wrappers keep io.Copy from
// splicing in the kernel), then closes dst's write side.
func copyThrough(dst, src net.Conn) {
	io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 4096))
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
