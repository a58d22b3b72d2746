// Package pcapio opens libpcap capture handles for the daemon and for
// send-rarp. It is the only package that needs cgo; built without cgo or
// off Linux it has stubs that return ErrNotImplemented, so the rest of
// rarp-replay (replay above all) builds anywhere.
package pcapio

import (
	"errors"
	"time"
)

// ErrNotImplemented is what Open returns without cgo or off Linux.
var ErrNotImplemented = errors.New("live capture needs Linux and libpcap (built with cgo)")

// Options tune a live handle.
type Options struct {
	SnapLen    int           // bytes kept of each frame
	Timeout    time.Duration // read timeout, so a reader can notice shutdown
	BufferSize int           // kernel ring size in bytes
}

// DefaultOptions keep whole ARP and NDP frames, return from reads every
// 100 ms, and give each port a 2 MiB ring (2,000 VMs x 5 RARPs in 0.8 s on
// one port: no kernel drops; 1 MiB dropped some). Immediate mode is always on: without it libpcap may hold a frame
// for the whole timeout.
var DefaultOptions = Options{SnapLen: 256, Timeout: 100 * time.Millisecond, BufferSize: 2 << 20}
