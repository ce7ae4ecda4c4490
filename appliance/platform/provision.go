package platform

import (
	"path/filepath"
	"sort"
)

// ProvisionSource is one place a first-boot manifest may be.
type ProvisionSource struct {
	Kind string
	Path string
}

// Where removable media and the boot partition are mounted on the appliance.
const (
	BootMount = "/run/outpost/boot"
	USBMounts = "/run/outpost/usb"
)

// ProvisionPaths lists, in the order they are checked, where a manifest may be on this
// platform: the image's boot (FAT) partition, the image's /perm (where `make image
// PROVISION=` puts it), then USB sticks. A laptop has none of them; it uses -provision.
func ProvisionPaths() []ProvisionSource {
	if !OnGokrazy() {
		return nil
	}
	out := []ProvisionSource{
		{Kind: "boot partition", Path: filepath.Join(BootMount, "outpost-provision.json")},
		// make image PROVISION=… puts it here (the FAT boot partition has no free space).
		{Kind: "image", Path: "/perm/outpost-provision.json"},
	}
	sticks, _ := filepath.Glob(filepath.Join(USBMounts, "*", "outpost-provision.json"))
	sort.Strings(sticks)
	for _, p := range sticks {
		out = append(out, ProvisionSource{Kind: "USB stick", Path: p})
	}
	return out
}

// DefaultProvisionKey is the company key pinned in the image, if the image has one.
func DefaultProvisionKey() string {
	if OnGokrazy() {
		return "/etc/outpost/provisioning.pub"
	}
	return ""
}
