// Package dial opens a configured target of any kind. It is the one place that knows every
// kind's package.
package dial

import (
	"context"
	"fmt"

	"github.com/outpost-im/outpost/appliance/target"
	"github.com/outpost-im/outpost/appliance/target/localdir"
)

// Open connects to the target c describes.
func Open(ctx context.Context, c target.Config) (target.Target, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch c.Kind {
	case target.KindLocal:
		return localdir.Open(c.Path)
	}
	return nil, fmt.Errorf("target kind %q is not available in this build", c.Kind)
}
