package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/mesh"
)

// Spec is what the Python harness hands over: the render's objects and the proxies to build for.
type Spec struct {
	// IstioConfig is the render's Istio resources, as YAML documents separated by "\n---\n".
	IstioConfig string `json:"istioConfig"`
	// Kubernetes is the render's Kubernetes objects plus the pods and EndpointSlices
	// that the cluster's controllers would create, as YAML documents.
	Kubernetes string `json:"kubernetes"`
	// MeshConfig is the istiod chart's meshConfig value, as YAML; Istio's defaults apply under it.
	MeshConfig string `json:"meshConfig"`
	// KubernetesVersion is the cluster's minor version, e.g. "1.35".
	KubernetesVersion string `json:"kubernetesVersion"`
	// IstioVersion is the proxies' Istio version, e.g. "1.30.5".
	IstioVersion string      `json:"istioVersion"`
	Proxies      []ProxySpec `json:"proxies"`
}

// ProxySpec is one Envoy to build for: the ingress gateway or a workload's sidecar.
type ProxySpec struct {
	Name           string            `json:"name"`
	Type           string            `json:"type"` // "router" or "sidecar"
	ID             string            `json:"id"`   // pod-name.namespace
	IP             string            `json:"ip"`
	Namespace      string            `json:"namespace"`
	ServiceAccount string            `json:"serviceAccount"`
	Labels         map[string]string `json:"labels"`
}

// failer is the test.Failer Istio's fake server asks for; a failure ends the command.
type failer struct {
	mu       sync.Mutex
	cleanups []func()
}

type failure struct{ msg string }

func (f *failer) Fail()                          { panic(failure{"failed"}) }
func (f *failer) FailNow()                       { panic(failure{"failed"}) }
func (f *failer) Fatal(args ...any)              { panic(failure{fmt.Sprint(args...)}) }
func (f *failer) Fatalf(format string, a ...any) { panic(failure{fmt.Sprintf(format, a...)}) }
func (f *failer) Log(args ...any)                {}
func (f *failer) Logf(format string, a ...any)   {}
func (f *failer) Helper()                        {}
func (f *failer) Skip(args ...any)               { panic(failure{"skipped: " + fmt.Sprint(args...)}) }
func (f *failer) TempDir() string {
	dir, err := os.MkdirTemp("", "istiod-xds-")
	if err != nil {
		panic(failure{err.Error()})
	}
	f.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (f *failer) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *failer) close() {
	f.mu.Lock()
	fns := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// ProxyConfig is what istiod's generators return for one proxy, as protojson objects.
type ProxyConfig struct {
	Listeners []json.RawMessage `json:"listeners"`
	Routes    []json.RawMessage `json:"routes"`
	Clusters  []json.RawMessage `json:"clusters"`
	Endpoints []json.RawMessage `json:"endpoints"`
}

// Output is the file generate writes.
type Output struct {
	Generator map[string]string       `json:"generator"`
	Proxies   map[string]*ProxyConfig `json:"proxies"`
}

func runGenerate(args []string) (err error) {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	in := fs.String("in", "", "spec file (JSON)")
	out := fs.String("out", "", "output file (JSON)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return fmt.Errorf("generate needs --in and --out")
	}
	raw, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	var spec Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("%s: %v", *in, err)
	}
	result, err := generate(spec)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(result, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(*out, data, 0o644)
}

func generate(spec Spec) (result *Output, err error) {
	t := &failer{}
	defer t.close()
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("istio: %s", f.msg)
		}
	}()
	meshConfig, err := mesh.ApplyMeshConfigDefaults(spec.MeshConfig)
	if err != nil {
		return nil, fmt.Errorf("meshConfig: %v", err)
	}
	server := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:           spec.IstioConfig,
		KubernetesObjectString: spec.Kubernetes,
		MeshConfig:             meshConfig,
		KubernetesVersion:      spec.KubernetesVersion,
	})
	result = &Output{
		Generator: map[string]string{"module": istioModule, "version": istioVersion()},
		Proxies:   map[string]*ProxyConfig{},
	}
	for _, p := range spec.Proxies {
		proxy := server.SetupProxy(newProxy(p, spec.IstioVersion))
		cfg := &ProxyConfig{}
		listeners := server.Listeners(proxy)
		if cfg.Listeners, err = marshalAll(listeners); err != nil {
			return nil, err
		}
		if cfg.Routes, err = marshalAll(server.RoutesFromListeners(proxy, listeners)); err != nil {
			return nil, err
		}
		if cfg.Clusters, err = marshalAll(server.Clusters(proxy)); err != nil {
			return nil, err
		}
		if cfg.Endpoints, err = marshalAll(server.Endpoints(proxy)); err != nil {
			return nil, err
		}
		result.Proxies[p.Name] = cfg
	}
	return result, nil
}

func newProxy(p ProxySpec, istioVersion string) *model.Proxy {
	nodeType := model.SidecarProxy
	if p.Type == "router" {
		nodeType = model.Router
	}
	labels := map[string]string{}
	for k, v := range p.Labels {
		labels[k] = v
	}
	return &model.Proxy{
		Type:            nodeType,
		ID:              p.ID,
		IPAddresses:     []string{p.IP},
		ConfigNamespace: p.Namespace,
		DNSDomain:       p.Namespace + ".svc.cluster.local",
		Labels:          labels,
		Metadata: &model.NodeMetadata{
			Namespace:      p.Namespace,
			Labels:         labels,
			ServiceAccount: p.ServiceAccount,
			IstioVersion:   istioVersion,
			ClusterID:      "Kubernetes",
			InstanceIPs:    []string{p.IP},
		},
	}
}

var marshaler = protojson.MarshalOptions{UseProtoNames: true}

func marshalAll[T proto.Message](msgs []T) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(msgs))
	for _, m := range msgs {
		b, err := marshaler.Marshal(m)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.Compare(string(out[i]), string(out[j])) < 0 })
	return out, nil
}
