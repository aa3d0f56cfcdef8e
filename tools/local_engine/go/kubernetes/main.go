// The Pulumi Kubernetes provider (pulumi-resource-kubernetes), built from its Go module.
//
// The same main as the module's cmd/pulumi-resource-kubernetes at this version (v4.25.0's commit), whose go:embed files
// (schema-embed.json, terraform-mapping-embed.json) are generated at release time and so
// are not in the module: tools/engine/local_build.py writes them next to this file in a
// build copy, from the module's schema.json (with the version set) and terraform-mapping.json,
// as the module's generate.go does.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
