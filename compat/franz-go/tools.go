//go:build tools

// Package franzgo only pins franz-go's kgo and kadm modules, whose own integration tests
// scripts/compat.sh runs against a broker (`go test github.com/twmb/franz-go/pkg/kgo`).
package franzgo

import (
	_ "github.com/twmb/franz-go/pkg/kadm"
	_ "github.com/twmb/franz-go/pkg/kgo"
)
