// Command lb is the load balancer of bench/fleet.sh: round robin over replicas, no session
// affinity (the replicas forward legacy sessions to their owner), responses streamed.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8940", "address to listen on")
	backends := flag.String("backends", "", "comma-separated base URLs of the replicas")
	flag.Parse()
	var targets []*url.URL
	for _, b := range strings.Split(*backends, ",") {
		u, err := url.Parse(strings.TrimSpace(b))
		if err != nil || u.Host == "" {
			log.Fatalf("lb: bad backend %q", b)
		}
		targets = append(targets, u)
	}
	if len(targets) == 0 {
		log.Fatal("lb: no backends (-backends http://127.0.0.1:8931,http://127.0.0.1:8932)")
	}
	var n atomic.Uint64
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(targets[int(n.Add(1))%len(targets)])
			pr.Out.Host = pr.In.Host
		},
		FlushInterval: -1,
		Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256},
	}
	log.Fatal(http.ListenAndServe(*listen, proxy))
}
