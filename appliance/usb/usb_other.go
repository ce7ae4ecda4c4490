//go:build !linux

package usb

import (
	"context"
	"errors"
)

// Mount is not available off Linux.
func Mount(Stick) (func(), error) {
	return nil, errors.New("USB sticks are handled on the appliance only")
}

// Watch is not available off Linux.
func Watch(context.Context, func(Stick)) error { return nil }
