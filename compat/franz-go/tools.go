//go:build tools

// Package franzgo pins franz-go's kgo and kadm modules, whose own integration tests
// scripts/compat.sh runs against a broker (`go test github.com/twmb/franz-go/pkg/kgo`), and
// holds Ringlet's own tests written with them (*_test.go, `go test .`).
package franzgo

import (
	_ "github.com/twmb/franz-go/pkg/kadm"
	_ "github.com/twmb/franz-go/pkg/kgo"
)
