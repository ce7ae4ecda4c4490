// Package dial opens a configured target of any kind. It is the one place that knows every
// kind's package.
package dial

import (
	"context"
	"fmt"
	"os"

	"github.com/outpost-im/outpost/appliance/target"
	"github.com/outpost-im/outpost/appliance/target/localdir"
	"github.com/outpost-im/outpost/appliance/target/s3"
	"github.com/outpost-im/outpost/appliance/target/sftp"
	"github.com/outpost-im/outpost/appliance/target/smb"
	"github.com/outpost-im/outpost/appliance/target/webdav"
	"github.com/outpost-im/outpost/appliance/usb"
)

// Open connects to the target c describes.
func Open(ctx context.Context, c target.Config) (target.Target, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch c.Kind {
	case target.KindLocal:
		if label := usb.LabelOf(c.Path); label != "" {
			return openStick(c.Path, label)
		}
		return wrap(localdir.Open(c.Path))
	case target.KindSMB:
		return wrap(smb.Open(ctx, c))
	case target.KindSFTP:
		return wrap(sftp.Open(ctx, c))
	case target.KindS3:
		return wrap(s3.Open(ctx, c))
	case target.KindWebDAV:
		return wrap(webdav.Open(ctx, c))
	}
	return nil, fmt.Errorf("unknown target kind %q", c.Kind)
}

// wrap turns a kind's (*T, error) into (target.Target, error) without a typed nil: a nil
// *T in an interface would compare non-nil.
func wrap[T target.Target](t T, err error) (target.Target, error) {
	if err != nil {
		return nil, err
	}
	return t, nil
}

// openStick mounts the USB stick a local target names (/run/outpost/usb/<LABEL>/...) for
// as long as the target is open: sticks stay unmounted, and safe to pull, otherwise.
func openStick(path, label string) (target.Target, error) {
	s, err := usb.Find("/sys", "/dev", label)
	if err != nil {
		return nil, err
	}
	release, err := usb.Mount(s)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		release()
		return nil, fmt.Errorf("USB stick %s: %w", label, err)
	}
	d, err := localdir.Open(path)
	if err != nil {
		release()
		return nil, err
	}
	return &stickTarget{Dir: d, release: release}, nil
}

type stickTarget struct {
	*localdir.Dir
	release func()
}

// Close syncs and unmounts the stick.
func (s *stickTarget) Close() error {
	err := s.Dir.Close()
	s.release()
	return err
}
