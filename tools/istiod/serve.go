package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretgrpc "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Secrets are the PEM files of one proxy's identity, served as Istio's SDS names.
type Secrets struct {
	CertChain  string `json:"certChain"`
	PrivateKey string `json:"privateKey"`
	RootCert   string `json:"rootCert"`
}

var unmarshaler = protojson.UnmarshalOptions{}

func decodeAll[T proto.Message](raw []json.RawMessage, newT func() T) ([]types.Resource, error) {
	out := make([]types.Resource, 0, len(raw))
	for _, r := range raw {
		m := newT()
		if err := unmarshaler.Unmarshal(r, m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Bundle is what serve reads: each Envoy node's resources (one proxy's object of generate's
// output, after the harness removed what upstream Envoy lacks) and certificates.
type Bundle struct {
	Nodes map[string]struct {
		Resources ProxyConfig `json:"resources"`
		Secrets   Secrets     `json:"secrets"`
	} `json:"nodes"`
}

func snapshotOf(cfg ProxyConfig, secrets Secrets) (*cache.Snapshot, error) {
	resources := map[resource.Type][]types.Resource{}
	var err error
	if resources[resource.ListenerType], err = decodeAll(cfg.Listeners, func() *listenerv3.Listener { return &listenerv3.Listener{} }); err != nil {
		return nil, fmt.Errorf("listeners: %v", err)
	}
	if resources[resource.RouteType], err = decodeAll(cfg.Routes, func() *routev3.RouteConfiguration { return &routev3.RouteConfiguration{} }); err != nil {
		return nil, fmt.Errorf("routes: %v", err)
	}
	if resources[resource.ClusterType], err = decodeAll(cfg.Clusters, func() *clusterv3.Cluster { return &clusterv3.Cluster{} }); err != nil {
		return nil, fmt.Errorf("clusters: %v", err)
	}
	if resources[resource.EndpointType], err = decodeAll(cfg.Endpoints, func() *endpointv3.ClusterLoadAssignment { return &endpointv3.ClusterLoadAssignment{} }); err != nil {
		return nil, fmt.Errorf("endpoints: %v", err)
	}
	resources[resource.SecretType] = []types.Resource{
		&tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: secrets.CertChain}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: secrets.PrivateKey}},
		}}},
		&tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: secrets.RootCert}},
		}}},
	}
	return cache.NewSnapshot("1", resources)
}

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	bundleFile := fs.String("bundle", "", "every node's resources and certificates (JSON, see Bundle)")
	listen := fs.String("listen", "127.0.0.1:0", "address to serve ADS and SDS on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var bundle Bundle
	if err := readJSON(*bundleFile, &bundle); err != nil {
		return err
	}
	// Not ADS mode: Envoy asks for each SDS secret on a stream of its own, so no request names them all.
	snapshots := cache.NewSnapshotCache(false, cache.IDHash{}, nil)
	for node, entry := range bundle.Nodes {
		snapshot, err := snapshotOf(entry.Resources, entry.Secrets)
		if err != nil {
			return fmt.Errorf("%s: %v", node, err)
		}
		if err := snapshots.SetSnapshot(context.Background(), node, snapshot); err != nil {
			return fmt.Errorf("%s: %v", node, err)
		}
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	grpcServer := grpc.NewServer()
	xdsServer := server.NewServer(context.Background(), snapshots, nil)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(grpcServer, xdsServer)
	secretgrpc.RegisterSecretDiscoveryServiceServer(grpcServer, xdsServer)
	// The harness reads the address from the first line, and ends the server by closing stdin.
	fmt.Println(lis.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		grpcServer.Stop()
	}()
	return grpcServer.Serve(lis)
}

func readJSON(path string, into any) error {
	if path == "" {
		return fmt.Errorf("serve needs --bundle")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}
