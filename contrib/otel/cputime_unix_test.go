//go:build unix

package wechatconfotel_test

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) the process has used, all
// threads and the garbage collector included: a benchmark figure that a
// loaded machine does not inflate as it does wall-clock time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
