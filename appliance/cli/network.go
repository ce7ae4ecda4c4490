package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/netcfg"
)

const networkUsage = `
Network:
  network [--json]                      show the network configuration and any change on trial
  network set (--dhcp | --static ADDR/LEN --gateway IP [--dns IP,...]) [--ntp HOST,...]
                                        try a new configuration (kept only once confirmed)
  network confirm | network revert      keep or undo the configuration on trial
`

func networkCmd(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("network "+sub, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	dhcp := fs.Bool("dhcp", false, "get the address from the LAN's DHCP server")
	static := fs.String("static", "", "fixed address with prefix length, e.g. 192.168.17.10/24")
	gateway := fs.String("gateway", "", "router (static)")
	dns := fs.String("dns", "", "comma-separated DNS servers (static)")
	ntp := fs.String("ntp", "", "comma-separated LAN time servers")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("network: unexpected argument %q", pos[0])}
	}
	var v adminapi.NetworkView
	var err error
	switch sub {
	case "":
		v, err = c.Network(ctx)
	case "set":
		var nc netcfg.Config
		switch {
		case *dhcp && *static != "":
			return usageError{"network set: --dhcp and --static exclude each other"}
		case *dhcp:
			nc.Mode = netcfg.ModeDHCP
		case *static != "":
			nc = netcfg.Config{Mode: netcfg.ModeStatic, Address: *static, Gateway: *gateway, DNS: splitList(*dns)}
		default:
			return usageError{"network set: give --dhcp or --static ADDR/LEN --gateway IP"}
		}
		nc.NTP = splitList(*ntp)
		v, err = c.NetworkTry(ctx, nc)
	case "confirm":
		v, err = c.NetworkConfirm(ctx)
	case "revert":
		v, err = c.NetworkRevert(ctx)
	default:
		return usageError{fmt.Sprintf("network: unknown subcommand %q", sub)}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, v)
	}
	w := env.Stdout
	fmt.Fprintf(w, "In use:    %s\n", v.Applied.Summary())
	if !v.Committed.Equal(v.Applied) {
		fmt.Fprintf(w, "Stored:    %s\n", v.Committed.Summary())
	}
	if len(v.Applied.NTP) > 0 {
		fmt.Fprintf(w, "Time from: %s\n", strings.Join(v.Applied.NTP, ", "))
	}
	if t := v.Time; t != nil {
		switch {
		case t.Error != "":
			fmt.Fprintf(w, "Time:      %s\n", t.Error)
		case t.Server != "":
			fmt.Fprintf(w, "Time:      %s off %s at %s (stepped: %v)\n", t.Offset.Round(time.Millisecond), t.Server, t.At.Local().Format(time.DateTime), t.Stepped)
		}
	}
	if !v.Managed {
		fmt.Fprintln(w, "Applied:   no (this machine's network belongs to its operating system)")
	} else {
		fmt.Fprintf(w, "Addresses: %s\n", strings.Join(v.Addresses, ", "))
	}
	if t := v.Trial; t != nil {
		fmt.Fprintf(w, "On trial:  %s (%s)", t.Config.Summary(), t.Phase)
		if !t.Deadline.IsZero() {
			fmt.Fprintf(w, "; undone in %s unless confirmed ('outpost network confirm')", time.Until(t.Deadline).Round(time.Second))
		}
		fmt.Fprintln(w)
	}
	if l := v.Last; l != nil {
		fmt.Fprintf(w, "Last:      %s %s", l.Outcome, l.Config.Summary())
		if l.Reason != "" {
			fmt.Fprintf(w, " (%s)", l.Reason)
		}
		fmt.Fprintf(w, " at %s\n", l.At.Local().Format(time.DateTime))
	}
	if v.Message != "" {
		fmt.Fprintln(w, v.Message)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}
