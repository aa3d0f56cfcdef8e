// Command istiod-xds turns a datamesh render into the Envoy configuration istiod
// pushes, using Istio's own translation (istio.io/istio, pilot/test/xds), and
// serves that configuration to a real Envoy over ADS.
//
//	istiod-xds generate --in SPEC.json --out XDS.json
//	istiod-xds serve --bundle BUNDLE.json --listen 127.0.0.1:PORT
//	istiod-xds version
//
// generate reads a spec written by tools/engine/istio_xds.py: the render's Istio
// resources, the Kubernetes objects (the render's, plus the pods and endpoint
// slices the cluster's controllers would create), the mesh config, and the
// proxies to build for. It writes, per proxy, the listeners, routes, clusters and
// endpoints istiod's generators return for that proxy.
//
// serve loads, per Envoy node id, one proxy's resources (after the harness has
// removed the filters upstream Envoy lacks) and certificates, and serves them over
// ADS and SDS to Envoys whose bootstrap points their xds-grpc and sds-grpc clusters
// at this address. It exits when its standard input closes.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fatalf("usage: istiod-xds generate|serve|version ...")
	}
	var err error
	switch os.Args[1] {
	case "generate":
		err = runGenerate(os.Args[2:])
	case "serve":
		err = runServe(os.Args[2:])
	case "version":
		err = runVersion()
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "istiod-xds: "+format+"\n", args...)
	os.Exit(1)
}
