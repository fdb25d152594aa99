// xdsload holds the simulated sidecars of the control-plane benchmark (bench/controlplane.py):
// N ADS streams over grpc-go, each subscribing as an Envoy sidecar does (CDS and LDS
// wildcard, EDS and RDS by name) and ACKing every response with its names, as Envoy's
// state-of-the-world client does.
//
// It is written in Go so that the load is not the bottleneck: 100 clients receive 700+ MB
// on a first push of 10k services, and on this 2-core machine a Python load process spent
// more CPU than the control plane it measured. Envoy's own client is C++ on other machines.
//
// Protocol with the driver: one JSON line on stdout when every client holds a whole
// config ({"first_push_s": ...}); then, per line "expect ADDRESS" on stdin, one JSON line
// once every client has received the watched assignment with ADDRESS as its first endpoint
// ({"reached_unix_ns": ...}, the last client's arrival, wall clock). Stdin closed: exit.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	typePrefix = "type.googleapis.com/envoy.config."
	cdsType    = typePrefix + "cluster.v3.Cluster"
	edsType    = typePrefix + "endpoint.v3.ClusterLoadAssignment"
	ldsType    = typePrefix + "listener.v3.Listener"
	rdsType    = typePrefix + "route.v3.RouteConfiguration"
)

// client is one simulated sidecar: what it holds and where the watched endpoint is.
type client struct {
	index    int
	held     map[string]int // type -> resources held (EDS: distinct assignments)
	eds      map[string]struct{}
	complete bool

	mu        sync.Mutex
	watched   string
	watchedAt int64
}

type load struct {
	addr       string
	namespaces int
	services   int
	subscribed map[string][]byte // type -> its resource_names, encoded
	watch      string
	completed  chan int
	changed    chan struct{} // a watched address moved (buffered, 1)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:15010", "the control plane's ADS address")
	clients := flag.Int("clients", 100, "simulated sidecars")
	services := flag.Int("services", 10000, "services in the mesh (svcI.nsI%namespaces)")
	namespaces := flag.Int("namespaces", 10, "namespaces the services and clients spread over")
	port := flag.Int("port", 8000, "every service's HTTP port")
	watch := flag.Int("watch", -1, "the service whose first endpoint the driver moves")
	flag.Parse()

	l := &load{
		addr:       *addr,
		namespaces: *namespaces,
		services:   *services,
		completed:  make(chan int, *clients),
		changed:    make(chan struct{}, 1),
	}
	var edsNames []string
	for i := 0; i < *services; i++ {
		edsNames = append(edsNames, clusterName(i, *namespaces, *port))
	}
	l.subscribed = map[string][]byte{
		edsType: mustMarshal(&discovery.DiscoveryRequest{ResourceNames: edsNames}),
		rdsType: mustMarshal(&discovery.DiscoveryRequest{ResourceNames: []string{fmt.Sprint(*port)}}),
		// CDS, LDS: wildcard
	}
	if *watch >= 0 {
		l.watch = clusterName(*watch, *namespaces, *port)
	}
	population := make([]*client, *clients)
	start := time.Now()
	for i := range population {
		population[i] = &client{index: i, held: map[string]int{}, eds: map[string]struct{}{}}
		go l.run(population[i])
	}
	for range population {
		<-l.completed
	}
	emit(map[string]any{"first_push_s": time.Since(start).Seconds()})

	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		address, ok := strings.CutPrefix(lines.Text(), "expect ")
		if !ok {
			log.Fatalf("unknown command %q", lines.Text())
		}
		emit(map[string]any{"reached_unix_ns": l.await(population, address)})
	}
}

const adsMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		log.Fatal(err)
	}
	return b
}

func clusterName(i, namespaces, port int) string {
	return fmt.Sprintf("outbound|%d||svc%d.ns%d.svc.cluster.local", port, i, i%namespaces)
}

func emit(v map[string]any) {
	line, _ := json.Marshal(v)
	fmt.Println(string(line))
}

// await blocks until every client's watched endpoint is at address; the last arrival.
func (l *load) await(population []*client, address string) int64 {
	for {
		last, all := int64(0), true
		for _, c := range population {
			c.mu.Lock()
			if c.watched != address {
				all = false
			} else if c.watchedAt > last {
				last = c.watchedAt
			}
			c.mu.Unlock()
		}
		if all {
			return last
		}
		select {
		case <-l.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (l *load) run(c *client) {
	conn, err := grpc.NewClient(l.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30), grpc.ForceCodec(rawCodec{})),
		// Envoy's xDS client windows are 256 MiB; grpc-go's default BDP probing would
		// start a 10k-service push at 64 KiB
		grpc.WithInitialWindowSize(16<<20),
		grpc.WithInitialConnWindowSize(16<<20),
	)
	if err != nil {
		log.Fatalf("client %d: %v", c.index, err)
	}
	defer conn.Close()
	desc := &grpc.StreamDesc{StreamName: "StreamAggregatedResources", ServerStreams: true, ClientStreams: true}
	stream, err := conn.NewStream(context.Background(), desc, adsMethod)
	if err != nil {
		log.Fatalf("client %d: %v", c.index, err)
	}
	ns := fmt.Sprintf("ns%d", c.index%l.namespaces)
	meta, _ := structpb.NewStruct(map[string]any{"NAMESPACE": ns})
	node := &core.Node{
		Id:       fmt.Sprintf("sidecar~10.255.0.%d~bench-%d.%s~ns.svc.cluster.local", c.index, c.index, ns),
		Metadata: meta,
	}
	first := true
	for _, t := range []string{cdsType, ldsType, edsType, rdsType} {
		request := &discovery.DiscoveryRequest{TypeUrl: t}
		if first {
			request.Node, first = node, false
		}
		l.send(c, stream, request)
	}
	for {
		var raw []byte
		err := stream.RecvMsg(&raw)
		if err == io.EOF {
			return
		}
		if err != nil {
			log.Fatalf("client %d: %v", c.index, err)
		}
		response := parseResponse(raw)
		l.hold(c, response)
		l.send(c, stream, &discovery.DiscoveryRequest{
			TypeUrl:       response.typeURL,
			VersionInfo:   response.version,
			ResponseNonce: response.nonce,
		})
	}
}

// send writes a request with its type's subscribed names: encoded once for every client
// and prepended (concatenated protobuf messages merge), as each ACK repeats all 10k.
func (l *load) send(c *client, stream grpc.ClientStream, request *discovery.DiscoveryRequest) {
	own, err := proto.Marshal(request)
	if err != nil {
		log.Fatalf("client %d: %v", c.index, err)
	}
	names := l.subscribed[request.TypeUrl]
	message := make([]byte, 0, len(names)+len(own))
	if err := stream.SendMsg(append(append(message, names...), own...)); err != nil {
		log.Fatalf("client %d: %v", c.index, err)
	}
}

// hold records a response: assignments by name (a response may carry only those that
// changed), other types whole.
func (l *load) hold(c *client, response response) {
	if response.typeURL != edsType {
		c.held[response.typeURL] = len(response.resources)
	} else {
		for _, value := range response.resources {
			name := assignmentName(value)
			c.eds[name] = struct{}{}
			if name == l.watch {
				l.sawWatched(c, value)
			}
		}
		c.held[edsType] = len(c.eds)
	}
	if !c.complete && c.held[edsType] == l.services &&
		c.held[cdsType] > 0 && c.held[ldsType] > 0 && c.held[rdsType] > 0 {
		c.complete = true
		l.completed <- c.index
	}
}

func (l *load) sawWatched(c *client, value []byte) {
	now := time.Now().UnixNano()
	var cla endpoint.ClusterLoadAssignment
	if err := proto.Unmarshal(value, &cla); err != nil {
		log.Fatalf("client %d: assignment: %v", c.index, err)
	}
	address := cla.GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().
		GetSocketAddress().GetAddress()
	c.mu.Lock()
	c.watched, c.watchedAt = address, now
	c.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// response is the part of a DiscoveryResponse the load looks at; resources are the
// encoded values of its Any entries, read without decoding them.
type response struct {
	version, typeURL, nonce string
	resources               [][]byte
}

func parseResponse(raw []byte) response {
	var r response
	eachField(raw, func(number protowire.Number, value []byte) {
		switch number {
		case 1:
			r.version = string(value)
		case 2: // google.protobuf.Any: its field 2 is the encoded resource
			eachField(value, func(n protowire.Number, v []byte) {
				if n == 2 {
					r.resources = append(r.resources, v)
				}
			})
		case 4:
			r.typeURL = string(value)
		case 5:
			r.nonce = string(value)
		}
	})
	return r
}

// assignmentName reads an encoded ClusterLoadAssignment's cluster_name (field 1).
func assignmentName(value []byte) string {
	name := ""
	eachField(value, func(number protowire.Number, v []byte) {
		if number == 1 && name == "" {
			name = string(v)
		}
	})
	return name
}

// eachField calls f with every length-delimited field of an encoded message.
func eachField(message []byte, f func(protowire.Number, []byte)) {
	for len(message) > 0 {
		number, kind, n := protowire.ConsumeTag(message)
		if n < 0 {
			log.Fatalf("malformed protobuf: %v", protowire.ParseError(n))
		}
		message = message[n:]
		if kind == protowire.BytesType {
			value, m := protowire.ConsumeBytes(message)
			if m < 0 {
				log.Fatalf("malformed protobuf: %v", protowire.ParseError(m))
			}
			f(number, value)
			message = message[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(number, kind, message)
		if m < 0 {
			log.Fatalf("malformed protobuf: %v", protowire.ParseError(m))
		}
		message = message[m:]
	}
}

// rawCodec hands gRPC messages through as bytes: the load parses only what it needs.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = data
	return nil
}

func (rawCodec) Name() string { return "proto" }
