package platform

import (
	"path/filepath"

	"github.com/outpost-im/outpost/appliance/usb"
)

// ProvisionSource is one place a first-boot manifest may be.
type ProvisionSource struct {
	Kind string
	Path string
}

// ProvisionStickLabel is the file system label of a USB stick that carries a manifest.
const ProvisionStickLabel = "OUTPOST"

// BootMount is where the boot partition is mounted while outpostd looks for a manifest
// (USB sticks go under usb.Root).
const BootMount = "/run/outpost/boot"

// ProvisionPaths lists, in the order they are checked, where a manifest may be on this
// platform: the image's boot (FAT) partition, the image's /perm (where `make image
// PROVISION=` puts it), then USB sticks. A laptop has none of them; it uses -provision.
func ProvisionPaths() []ProvisionSource {
	if !OnGokrazy() {
		return nil
	}
	return []ProvisionSource{
		{Kind: "boot partition", Path: filepath.Join(BootMount, "outpost-provision.json")},
		// make image PROVISION=… puts it here (the FAT boot partition has no free space).
		{Kind: "image", Path: "/perm/outpost-provision.json"},
		// A stick labelled OUTPOST, mounted while outpostd looks (MountProvisionMedia).
		{Kind: "USB stick", Path: filepath.Join(usb.Stick{Label: ProvisionStickLabel}.Dir(), "outpost-provision.json")},
	}
}

// DefaultProvisionKey is the company key pinned in the image, if the image has one.
func DefaultProvisionKey() string {
	if OnGokrazy() {
		return "/etc/outpost/provisioning.pub"
	}
	return ""
}
