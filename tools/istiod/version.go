package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
)

const istioModule = "istio.io/istio"

// istioVersion is the version of Istio's module this binary was built with.
func istioVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == istioModule {
			return dep.Version
		}
	}
	return "unknown"
}

func runVersion() error {
	out, err := json.Marshal(map[string]string{"module": istioModule, "version": istioVersion()})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(os.Stdout, string(out))
	return err
}
