module gokrazy/build/gokrazy

go 1.26

require (
	github.com/gokrazy/gokrazy v0.0.0-20260703061218-a4a45a20149d // indirect
	github.com/gokrazy/internal v0.0.0-20260625065634-6994f9152c44 // indirect
	github.com/google/renameio/v2 v2.0.2 // indirect
	github.com/kenshaw/evdev v0.1.0 // indirect
	github.com/mdlayher/watchdog v0.0.0-20221003142519-49be0df7b3b5 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.org/x/sys v0.46.0 // indirect
)
