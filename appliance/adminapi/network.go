package adminapi

import (
	"context"
	"net/http"

	"github.com/outpost-im/outpost/appliance/clock"

	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/netcfg"
)

// Network is the box's network configuration, served the same way through the admin socket
// (`outpost network`) and the console's Network tab.
type Network struct {
	M *netcfg.Manager
	// Time reports the LAN time servers' last answer (nil: not shown).
	Time func() clock.SyncStatus
}

// NetworkView is GET's answer and every change's.
type NetworkView struct {
	netcfg.Status
	// Time is how the clock compares with the LAN time servers, when any are set.
	Time *clock.SyncStatus `json:"time,omitempty"`
	// Message says what happens next, for people.
	Message string `json:"message,omitempty"`
}

func (n Network) view(msg string) NetworkView {
	v := NetworkView{Status: n.M.Status(), Message: msg}
	if n.Time != nil && v.Managed {
		if t := n.Time(); len(t.Servers) > 0 {
			v.Time = &t
		}
	}
	return v
}

func (n Network) Get(w http.ResponseWriter, r *http.Request, _ audit.Actor) {
	writeJSON(w, http.StatusOK, n.view(""))
}

// Try starts a trial of the posted netcfg.Config (202: the change happens a moment later).
func (n Network) Try(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	var c netcfg.Config
	if !ReadJSON(w, r, &c) {
		return
	}
	t, err := n.M.Try(r.Context(), c, actor, false)
	if err != nil {
		WriteError(w, err)
		return
	}
	msg := "Trying " + c.Summary() + ". "
	if c.Mode == netcfg.ModeStatic {
		msg += "The box checks that the gateway answers, then waits for you to confirm from the new address (https://" +
			c.Prefix().Addr().String() + "/admin/) before the time is up; otherwise it goes back to " + t.Previous.Summary() + "."
	} else {
		msg += "Find the box's new address on its screen or in the DHCP server's leases, and confirm there before the time is up."
	}
	writeJSON(w, http.StatusAccepted, n.view(msg))
}

func (n Network) Confirm(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	if err := n.M.Confirm(actor); err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, n.view("Kept."))
}

func (n Network) Revert(w http.ResponseWriter, r *http.Request, actor audit.Actor) {
	if err := n.M.Revert(actor); err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, n.view("Going back to the previous configuration."))
}

// cliActor adapts a Network handler to the socket, whose caller is the CLI.
func cliActor(h func(http.ResponseWriter, *http.Request, audit.Actor)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { h(w, r, cli) }
}

// Network reports the network configuration; NetworkTry, NetworkConfirm and NetworkRevert
// drive a trial.
func (c *Client) Network(ctx context.Context) (NetworkView, error) {
	var out NetworkView
	err := c.call(ctx, http.MethodGet, "/v1/network", nil, &out)
	return out, err
}

func (c *Client) NetworkTry(ctx context.Context, nc netcfg.Config) (NetworkView, error) {
	var out NetworkView
	err := c.call(ctx, http.MethodPost, "/v1/network", nc, &out)
	return out, err
}

func (c *Client) NetworkConfirm(ctx context.Context) (NetworkView, error) {
	var out NetworkView
	err := c.call(ctx, http.MethodPost, "/v1/network/confirm", struct{}{}, &out)
	return out, err
}

func (c *Client) NetworkRevert(ctx context.Context) (NetworkView, error) {
	var out NetworkView
	err := c.call(ctx, http.MethodPost, "/v1/network/revert", struct{}{}, &out)
	return out, err
}
