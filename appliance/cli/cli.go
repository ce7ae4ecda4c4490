// Package cli is the `outpost` operator command: it parses arguments and talks to outpostd
// over the admin socket. Errors are one line on stderr and a non-zero exit.
package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"golang.org/x/term"

	"github.com/outpost-im/outpost/appliance/adminapi"
	"github.com/outpost-im/outpost/appliance/boxtls"
	"github.com/outpost-im/outpost/appliance/platform"
	"github.com/outpost-im/outpost/appliance/setup"
)

// Env is the process's surroundings, replaceable in tests.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// usageError is a mistake in the command line: print it with a hint, exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `usage: outpost [-data DIR] COMMAND [ARGS]

Commands:
  status [--json]                       show setup, homeserver and versions
  setup --server-name NAME --admin USER --password-stdin [--federation]
                                        finish first-boot setup
  setup-code                            print the one-time code the setup page asks for
  users list [--json]                   list accounts
  users add USER [--admin] (--password-stdin | --one-time-password)
                                        create an account
  users reset-password USER (--password-stdin | --one-time-password)
                                        set a new password and sign the account out everywhere
  users deactivate USER --yes           close an account for good
  users promote USER | users demote USER
                                        grant or remove administrator rights
  invites create [--expires 168h] [--note TEXT]
                                        make a one-time invitation code
  invites list [--json]                 list invitations
  invites revoke ID                     withdraw an invitation
  audit [--limit N] [--json]            show the audit log of admin actions
  tls [--json]                          show the certificate mode, root fingerprint and names
  tls root                              print the box's root certificate (PEM)
  tls box-ca                            serve certificates from the box's own root (default)
  tls acme --directory URL --root FILE  get certificates from an ACME CA on the network
  tls upload --cert FILE --key FILE     serve an uploaded certificate (chain) and key (PEM)
  tls new-root --yes                    replace the box's root (after a move to a new address);
                                        every device must trust the new one
  turn [--json]                         show the TURN relay: addresses, limits, counters
  turn set [--on|--off] [--relay-ip IP] [--ports MIN-MAX] [--allow PREFIX,...]
                                        change the relay (empty values mean the defaults)

Passwords are read from standard input (one line); on a terminal you are prompted.
--one-time-password generates a password, prints it once, and stores it nowhere.
`

// Main runs the command and returns the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	err := run(ctx, args, env)
	if err == nil {
		return 0
	}
	fmt.Fprintf(env.Stderr, "outpost: %s\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprint(env.Stderr, "run 'outpost help' for usage\n")
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, env Env) error {
	global := flag.NewFlagSet("outpost", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	dataDir := global.String("data", platform.DefaultDataDir(), "outpostd's data directory")
	if err := global.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	rest := global.Args()
	if len(rest) == 0 {
		return usageError{"no command given"}
	}
	c := adminapi.NewClient(*dataDir)
	// Snapshots and restores of a large box take as long as they take; Ctrl-C ends them.
	longCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	switch cmd, cmdArgs := rest[0], rest[1:]; cmd {
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage+networkUsage+snapshotUsage+provisionUsage)
		return nil
	case "status":
		return status(ctx, c, cmdArgs, env)
	case "setup":
		return setupCmd(ctx, c, cmdArgs, env)
	case "setup-code":
		if len(cmdArgs) > 0 {
			return usageError{"setup-code takes no arguments"}
		}
		code, err := c.SetupCode(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, code)
		return nil
	case "users":
		if len(cmdArgs) == 0 {
			return usageError{"users: give a subcommand: list, add, reset-password, deactivate, promote, demote"}
		}
		switch cmdArgs[0] {
		case "list":
			return usersList(ctx, c, cmdArgs[1:], env)
		case "add":
			return usersAdd(ctx, c, cmdArgs[1:], env)
		case "reset-password":
			return usersResetPassword(ctx, c, cmdArgs[1:], env)
		case "deactivate":
			return usersDeactivate(ctx, c, cmdArgs[1:], env)
		case "promote", "demote":
			return usersSetAdmin(ctx, c, cmdArgs[0] == "promote", cmdArgs[1:], env)
		}
		return usageError{fmt.Sprintf("users: unknown subcommand %q", cmdArgs[0])}
	case "invites":
		if len(cmdArgs) == 0 {
			return usageError{"invites: give a subcommand: create, list, revoke"}
		}
		switch cmdArgs[0] {
		case "create":
			return invitesCreate(ctx, c, cmdArgs[1:], env)
		case "list":
			return invitesList(ctx, c, cmdArgs[1:], env)
		case "revoke":
			return invitesRevoke(ctx, c, cmdArgs[1:], env)
		}
		return usageError{fmt.Sprintf("invites: unknown subcommand %q", cmdArgs[0])}
	case "audit":
		return auditCmd(ctx, c, cmdArgs, env)
	case "tls":
		return tlsCmd(ctx, c, cmdArgs, env)
	case "turn":
		return turnCmd(ctx, c, cmdArgs, env)
	case "snapshot":
		return snapshotCmd(longCtx, c, cmdArgs, env)
	case "recovery-key":
		return recoveryKeyCmd(ctx, c, cmdArgs, env)
	case "targets":
		return targetsCmd(longCtx, c, cmdArgs, env)
	case "restore":
		return restoreCmd(longCtx, c, *dataDir, cmdArgs, env)
	case "provision":
		return provisionCmd(cmdArgs, env)
	case "network":
		return networkCmd(ctx, c, cmdArgs, env)
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// parse parses flags that may appear before, between or after positional arguments
// (`users add alice --admin`), which the flag package alone does not allow.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{fs.Name() + ": " + err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// passwordFlags adds --password-stdin, and a --password that exists only to be refused
// with an explanation.
func passwordFlags(fs *flag.FlagSet) (fromStdin *bool, onArgv *string) {
	return fs.Bool("password-stdin", false, "read the password from standard input"),
		fs.String("password", "", "refused: passwords on the command line leak")
}

func readPassword(env Env, fromStdin bool, onArgv string, confirm bool) (string, error) {
	if onArgv != "" {
		return "", usageError{"refusing a password on the command line (it ends up in shell history and process lists); use --password-stdin"}
	}
	if !fromStdin {
		return "", usageError{"give the password on standard input with --password-stdin"}
	}
	if f, ok := env.Stdin.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		fmt.Fprint(env.Stderr, "Password: ")
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.Stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if confirm {
			fmt.Fprint(env.Stderr, "Repeat password: ")
			again, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(env.Stderr)
			if err != nil {
				return "", fmt.Errorf("read password: %w", err)
			}
			if string(again) != string(pw) {
				return "", errors.New("the passwords do not match")
			}
		}
		return string(pw), nil
	}
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on standard input")
	}
	return pw, nil
}

func setupCmd(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	serverName := fs.String("server-name", "", "Matrix server name (a host name or the box's IP address); cannot change later")
	admin := fs.String("admin", "", "user name of the first administrator")
	federation := fs.Bool("federation", false, "let this homeserver talk to other homeservers")
	fromStdin, onArgv := passwordFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("setup: unexpected argument %q", pos[0])}
	}
	if *serverName == "" || *admin == "" {
		return usageError{"setup: --server-name and --admin are required"}
	}
	pw, err := readPassword(env, *fromStdin, *onArgv, true)
	if err != nil {
		return err
	}
	req := setup.Request{ServerName: *serverName, AdminUser: *admin, AdminPassword: pw, Federation: *federation}
	if err := setup.Validate(req); err != nil {
		return err // same validation as the server's; fail before the round trip
	}
	if err := c.Setup(ctx, req); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Setup complete. Sign in as @%s:%s.\n", *admin, *serverName)
	return nil
}

func usersAdd(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	fs := flag.NewFlagSet("users add", flag.ContinueOnError)
	admin := fs.Bool("admin", false, "make the user an administrator")
	oneTime := fs.Bool("one-time-password", false, "generate a password and print it once")
	fromStdin, onArgv := passwordFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"users add: give exactly one user name"}
	}
	pw := ""
	if !*oneTime {
		if pw, err = readPassword(env, *fromStdin, *onArgv, true); err != nil {
			return err
		}
	}
	resp, err := c.AddUser(ctx, adminapi.AddUserRequest{Username: pos[0], Password: pw, Admin: *admin})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Created %s.\n", resp.UserID)
	if resp.Password != "" {
		fmt.Fprintf(env.Stdout, "One-time password (shown once; ask them to change it): %s\n", resp.Password)
	}
	return nil
}

// one positional argument, with flags anywhere.
func oneArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usageError{fs.Name() + ": give exactly one " + what}
	}
	return pos[0], nil
}

func usersList(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	fs := flag.NewFlagSet("users list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{"users list takes no arguments"}
	}
	list, err := c.ListUsers(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, list)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLE\tSTATE\tCREATED")
	for _, a := range list {
		role, state := "user", "active"
		if a.Admin {
			role = "admin"
		}
		if a.Deactivated {
			state = "deactivated"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.UserID, role, state, a.CreatedAt.Local().Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func usersResetPassword(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	fs := flag.NewFlagSet("users reset-password", flag.ContinueOnError)
	oneTime := fs.Bool("one-time-password", false, "generate a password and print it once")
	fromStdin, onArgv := passwordFlags(fs)
	name, err := oneArg(fs, args, "user name")
	if err != nil {
		return err
	}
	pw := ""
	if !*oneTime {
		if pw, err = readPassword(env, *fromStdin, *onArgv, true); err != nil {
			return err
		}
	}
	generated, err := c.ResetPassword(ctx, name, pw)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Password of %s reset; all their devices are signed out.\n", name)
	if generated != "" {
		fmt.Fprintf(env.Stdout, "One-time password (shown once): %s\n", generated)
	}
	return nil
}

func usersDeactivate(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	fs := flag.NewFlagSet("users deactivate", flag.ContinueOnError)
	yes := fs.Bool("yes", false, "confirm: deactivation cannot be undone")
	name, err := oneArg(fs, args, "user name")
	if err != nil {
		return err
	}
	if !*yes {
		return usageError{"users deactivate: this cannot be undone; add --yes to confirm"}
	}
	if err := c.Deactivate(ctx, name); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Deactivated %s.\n", name)
	return nil
}

func usersSetAdmin(ctx context.Context, c *adminapi.Client, admin bool, args []string, env Env) error {
	verb := "demote"
	if admin {
		verb = "promote"
	}
	fs := flag.NewFlagSet("users "+verb, flag.ContinueOnError)
	name, err := oneArg(fs, args, "user name")
	if err != nil {
		return err
	}
	if err := c.SetAdmin(ctx, name, admin); err != nil {
		return err
	}
	if admin {
		fmt.Fprintf(env.Stdout, "%s is now an administrator.\n", name)
	} else {
		fmt.Fprintf(env.Stdout, "%s is no longer an administrator.\n", name)
	}
	return nil
}

func invitesCreate(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	fs := flag.NewFlagSet("invites create", flag.ContinueOnError)
	expires := fs.String("expires", "168h", "how long the invitation stays valid (1h to 2160h)")
	note := fs.String("note", "", "who it is for, shown in the list")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("invites create: unexpected argument %q", pos[0])}
	}
	resp, err := c.CreateInvite(ctx, adminapi.CreateInviteRequest{Expires: *expires, Note: *note})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Invitation #%d, valid until %s.\n", resp.Invite.ID, resp.Invite.ExpiresAt.Local().Format("2006-01-02 15:04"))
	fmt.Fprintf(env.Stdout, "Code (shown once): %s\n", resp.Code)
	fmt.Fprintf(env.Stdout, "The new colleague opens /invite/ on this box and enters the code, or follows /invite/#%s\n", resp.Code)
	return nil
}

func invitesList(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	fs := flag.NewFlagSet("invites list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{"invites list takes no arguments"}
	}
	list, err := c.ListInvites(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, list)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tEXPIRES\tUSED BY\tCREATED BY\tNOTE")
	for _, inv := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", inv.ID, inv.Status, inv.ExpiresAt.Local().Format("2006-01-02 15:04"), inv.UsedBy, inv.CreatedBy, inv.Note)
	}
	return tw.Flush()
}

func invitesRevoke(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	fs := flag.NewFlagSet("invites revoke", flag.ContinueOnError)
	arg, err := oneArg(fs, args, "invitation number")
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(arg, "#"), 10, 64)
	if err != nil {
		return usageError{fmt.Sprintf("invites revoke: %q is not an invitation number (see `outpost invites list`)", arg)}
	}
	if err := c.RevokeInvite(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Invitation #%d withdrawn.\n", id)
	return nil
}

func auditCmd(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 50, "how many entries, newest first")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{"audit takes no arguments"}
	}
	list, err := c.Audit(ctx, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, list)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WHEN\tWHO\tACTION\tTARGET\tDETAIL")
	for _, e := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.At.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Action, e.Target, e.Detail)
	}
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func status(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("status: unexpected argument %q", pos[0])}
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.Stdout, st)
	}
	w := env.Stdout
	if st.SetupComplete {
		fmt.Fprintf(w, "Setup:        complete (%s)\n", st.SetupCompletedAt.Local().Format("2006-01-02 15:04"))
		fmt.Fprintf(w, "Server name:  %s\n", st.ServerName)
		fmt.Fprintf(w, "Federation:   %s\n", onOff(st.Federation))
	} else {
		fmt.Fprintf(w, "Setup:        not done; run 'outpost setup' or open http://%s/\n", st.HTTPAddr)
	}
	hs := st.Homeserver
	line := string(hs.State)
	if hs.PID != 0 {
		line += fmt.Sprintf(" (pid %d, up %s", hs.PID, time.Since(hs.StartedAt).Round(time.Second))
		line += fmt.Sprintf(", %d restarts)", hs.Restarts)
	}
	fmt.Fprintf(w, "Homeserver:   %s\n", line)
	if hs.LastExit != "" {
		fmt.Fprintf(w, "Last exit:    %s\n", hs.LastExit)
	}
	if st.SetupComplete {
		fmt.Fprintf(w, "People:       %d active accounts, %d rooms\n", st.Users, st.Rooms)
	}
	fmt.Fprintf(w, "Gateway:      http://%s/\n", st.HTTPAddr)
	if st.TURN != nil {
		if st.TURN.Enabled {
			fmt.Fprintf(w, "TURN:         on, relay %s ports %s; %d active allocations, %s relayed\n",
				st.TURN.RelayIP, st.TURN.Ports, st.TURN.Stats.ActiveAllocations, bytesHuman(st.TURN.Stats.RelayedBytes))
		} else if st.TURN.Problem != "" {
			fmt.Fprintf(w, "TURN:         off: %s\n", st.TURN.Problem)
		} else if st.SetupComplete {
			fmt.Fprintf(w, "TURN:         off\n")
		}
	}
	if st.TLSMode != "" {
		fmt.Fprintf(w, "HTTPS:        %s (certificate: %s)\n", st.HTTPSURL, st.TLSMode)
		fmt.Fprintf(w, "Root CA:      SHA-256 %s\n", st.RootFingerprint)
	}
	fmt.Fprintf(w, "Versions:     outpost %s, dendrite %s, %s\n", st.Versions.Outpost, orUnknown(st.Versions.Dendrite), st.Versions.Go)
	fmt.Fprintf(w, "Up since:     %s\n", st.StartedAt.Local().Format("2006-01-02 15:04:05"))
	fmt.Fprintf(w, "Data dir:     %s (%s used, %s free)\n", st.DataDir, bytesHuman(st.DataBytes), bytesHuman(st.DiskFreeBytes))
	if st.Hardware != "" {
		fmt.Fprintf(w, "Hardware:     %s\n", st.Hardware)
	}
	if st.SetupComplete {
		// The question after "is it up?" is "is the history safe?".
		if snap, err := c.SnapshotStatus(ctx); err == nil {
			last := "never"
			if snap.LastVerified != nil {
				last = snap.LastVerified.StartedAt.Local().Format("2006-01-02 15:04")
			}
			fmt.Fprintf(w, "Snapshots:    target %s, last verified restorable %s\n", orNone(snap.Target), last)
			for _, a := range snap.Alerts {
				fmt.Fprintf(w, "ALERT:        %s\n", a)
			}
		}
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func tlsCmd(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("tls "+sub, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	directory := fs.String("directory", "", "ACME directory URL (https://...)")
	rootFile := fs.String("root", "", "PEM file with the ACME CA's root certificate")
	certFile := fs.String("cert", "", "PEM file with the certificate and its chain")
	keyFile := fs.String("key", "", "PEM file with the private key")
	yes := fs.Bool("yes", false, "confirm replacing the root (new-root)")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("tls: unexpected argument %q", pos[0])}
	}
	readFile := func(flagName, path string) (string, error) {
		if path == "" {
			return "", usageError{fmt.Sprintf("tls %s: --%s FILE is required", sub, flagName)}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read --%s: %w", flagName, err)
		}
		return string(b), nil
	}
	var req boxtls.ModeRequest
	switch sub {
	case "":
		st, err := c.TLS(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.Stdout, st)
		}
		if st.Mode == "" {
			fmt.Fprintln(env.Stdout, "HTTPS is not serving yet (the box is not set up, or see the log).")
			return nil
		}
		fmt.Fprintf(env.Stdout, "Mode:         %s\nRoot CA:      SHA-256 %s\nNames:        %s\n", st.Mode, st.Fingerprint, strings.Join(st.Names, ", "))
		if len(st.Uncovered) > 0 {
			fmt.Fprintf(env.Stdout, "Not covered:  %s (the root predates them; 'outpost tls new-root --yes' replaces it)\n", strings.Join(st.Uncovered, ", "))
		}
		return nil
	case "new-root":
		if !*yes {
			return usageError{"tls new-root: every device that trusts the box must then trust the new root; add --yes to go ahead"}
		}
		st, err := c.NewRoot(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "New root CA: SHA-256 %s\nNames:       %s\nInstall it on every device from http://<box>/ca.crt.\n", st.Fingerprint, strings.Join(st.Names, ", "))
		return nil
	case "root":
		st, err := c.TLS(ctx)
		if err != nil {
			return err
		}
		if st.RootPEM == "" {
			return errors.New("there is no root certificate yet; finish setup first")
		}
		fmt.Fprint(env.Stdout, st.RootPEM)
		return nil
	case "box-ca":
		req.Mode = "box-ca"
	case "acme":
		req.Mode, req.ACMEDirectory = "acme", *directory
		if req.ACMEDirectory == "" {
			return usageError{"tls acme: --directory URL is required"}
		}
		root, err := readFile("root", *rootFile)
		if err != nil {
			return err
		}
		req.ACMERootPEM = root
	case "upload":
		req.Mode = "upload"
		cert, err := readFile("cert", *certFile)
		if err != nil {
			return err
		}
		key, err := readFile("key", *keyFile)
		if err != nil {
			return err
		}
		req.CertPEM, req.KeyPEM = cert, key
	default:
		return usageError{fmt.Sprintf("tls: unknown subcommand %q", sub)}
	}
	resp, err := c.SetTLSMode(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "HTTPS now serves certificates from: %s\n", req.Mode)
	for _, w := range resp.Warnings {
		fmt.Fprintf(env.Stdout, "warning: %s\n", w)
	}
	return nil
}

func turnCmd(ctx context.Context, c *adminapi.Client, args []string, env Env) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("turn "+sub, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	on := fs.Bool("on", false, "switch the relay on")
	off := fs.Bool("off", false, "switch the relay off")
	relayIP := fs.String("relay-ip", "\x00", "relay address handed to clients")
	ports := fs.String("ports", "\x00", "relay port range MIN-MAX")
	allow := fs.String("allow", "\x00", "comma-separated peer prefixes the relay may reach")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("turn: unexpected argument %q", pos[0])}
	}
	st, err := c.TURN(ctx)
	if err != nil {
		return err
	}
	switch sub {
	case "":
	case "set":
		ts := st.Settings
		if *on && *off {
			return usageError{"turn set: --on and --off exclude each other"}
		}
		if *on {
			ts.Off = false
		}
		if *off {
			ts.Off = true
		}
		// "\x00" marks a flag not given: keep the current value.
		if *relayIP != "\x00" {
			ts.RelayIP = *relayIP
		}
		if *ports != "\x00" {
			ts.Ports = *ports
		}
		if *allow != "\x00" {
			ts.AllowedPeers = *allow
		}
		if st, err = c.SetTURN(ctx, ts); err != nil {
			return err
		}
	default:
		return usageError{fmt.Sprintf("turn: unknown subcommand %q", sub)}
	}
	if *asJSON {
		return printJSON(env.Stdout, st)
	}
	w := env.Stdout
	switch {
	case st.Enabled:
		fmt.Fprintf(w, "TURN:          on\nRelay address: %s\nRelay ports:   %s\n", st.RelayIP, st.Ports)
		var allowed []string
		for _, p := range st.Allowed {
			allowed = append(allowed, p.String())
		}
		fmt.Fprintf(w, "Allowed peers: %s\nURIs:          %s\n", strings.Join(allowed, ", "), strings.Join(st.URIs, " "))
		fmt.Fprintf(w, "Allocations:   %d active, %d total, %d refused\nRelayed:       %s (%s dropped over the bandwidth limit)\nDenied peers:  %d\nAuth failures: %d\n",
			st.Stats.ActiveAllocations, st.Stats.TotalAllocations, st.Stats.RefusedAllocs,
			bytesHuman(st.Stats.RelayedBytes), bytesHuman(st.Stats.DroppedBytes), st.Stats.DeniedPeers, st.Stats.AuthFailures)
	case st.Problem != "":
		fmt.Fprintf(w, "TURN: off: %s\n", st.Problem)
	default:
		fmt.Fprintln(w, "TURN: off")
	}
	return nil
}
