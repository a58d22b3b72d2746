//go:build linux && cgo

package pcapio

/*
#cgo LDFLAGS: -lpcap
#include <pcap/pcap.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/gopacket/gopacket/pcap"
	"golang.org/x/sys/unix"
)

// ignoreOutgoing makes the kernel stop queueing outgoing frames on the
// handle's packet socket (PACKET_IGNORE_OUTGOING). gopacket does not expose
// the socket, so this reads the handle's pcap_t from the pinned gopacket
// version's unexported field; a gopacket that renames it makes Open fail
// here, loudly, in every capture test. A kernel older than 4.20 lacks the
// option (ENOPROTOOPT): the handle then keeps libpcap's user-space
// direction check.
func ignoreOutgoing(h *pcap.Handle) error {
	f := reflect.ValueOf(h).Elem().FieldByName("cptr")
	if !f.IsValid() || f.Kind() != reflect.Pointer || f.IsNil() {
		return errors.New("gopacket's pcap.Handle has no cptr field: cannot reach the packet socket")
	}
	fd := int(C.pcap_get_selectable_fd((*C.pcap_t)(unsafe.Pointer(f.Pointer()))))
	if fd < 0 {
		return errors.New("pcap_get_selectable_fd: no descriptor")
	}
	err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	if errors.Is(err, unix.ENOPROTOOPT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
	}
	return nil
}
