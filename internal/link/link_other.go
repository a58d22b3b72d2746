//go:build !linux

package link

import (
	"context"
	"log/slog"
)

// Watch needs Linux's rtnetlink.
func Watch(context.Context, *Table, *slog.Logger, func(), WatchOptions) error {
	return ErrNotImplemented
}
