//go:build !linux

package neigh

import "log/slog"

// MaxBatch bounds the bindings ProgramBatch sends in one system call.
const MaxBatch = 128

type routeConn struct{}

// NewKernel returns a Kernel; programming needs Linux's rtnetlink.
func NewKernel(log *slog.Logger) Kernel { return Kernel{Log: log} }

// ProgramBatch needs Linux's rtnetlink.
func (Kernel) ProgramBatch(bs []Replace) []error {
	errs := make([]error, len(bs))
	for i := range errs {
		errs[i] = ErrNotImplemented
	}
	return errs
}

// Close does nothing off Linux.
func (Kernel) Close() {}
