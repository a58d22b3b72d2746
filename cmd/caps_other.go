//go:build !linux

package cmd

import "errors"

// requireCaps: listen runs only on Linux.
func requireCaps(bool) error {
	return errors.New("listen runs on Linux only (it needs packet sockets and rtnetlink); replay works anywhere")
}
