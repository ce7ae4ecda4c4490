package platform

import "github.com/gokrazy/gokrazy"

// Model names the hardware ("Raspberry Pi 4 Model B Rev 1.5", a PC's board, "QEMU"), as
// gokrazy reads it from the device tree or DMI, or "" when it cannot tell. Status shows it:
// support calls start with "which box is it?".
func Model() string {
	if m := gokrazy.Model(); m != "unknown model" {
		return m
	}
	return ""
}
