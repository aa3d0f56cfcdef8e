//go:build tools

// Package main's build-time dependency: istioctl, built from the same Istio module
// as the translation, so `istioctl analyze` judges the render with the same code.
package main

import _ "istio.io/istio/istioctl/cmd/istioctl"
