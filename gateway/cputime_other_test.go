//go:build !unix

package gateway_test

import "time"

// cpuTime is unknown here: the cpu-µs/op metric reads 0.
func cpuTime() time.Duration { return 0 }
