//go:build tools

// Package tools pins the reference rate-limit service (envoyproxy/ratelimit), built by
// tools/engine/ratelimit_build.py from the module version go.mod requires.
package tools

import _ "github.com/envoyproxy/ratelimit/src/service_cmd"
