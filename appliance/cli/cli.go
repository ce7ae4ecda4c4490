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
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"golang.org/x/term"

	"github.com/outpost-im/outpost/appliance/adminapi"
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
  users add USER [--admin] --password-stdin
                                        create an account

Passwords are read from standard input (one line); on a terminal you are prompted.
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
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	switch cmd, cmdArgs := rest[0], rest[1:]; cmd {
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return nil
	case "status":
		return status(ctx, c, cmdArgs, env)
	case "setup":
		return setupCmd(ctx, c, cmdArgs, env)
	case "users":
		if len(cmdArgs) == 0 {
			return usageError{"users: give a subcommand: add"}
		}
		switch cmdArgs[0] {
		case "add":
			return usersAdd(ctx, c, cmdArgs[1:], env)
		}
		return usageError{fmt.Sprintf("users: unknown subcommand %q", cmdArgs[0])}
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
	fromStdin, onArgv := passwordFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"users add: give exactly one user name"}
	}
	pw, err := readPassword(env, *fromStdin, *onArgv, true)
	if err != nil {
		return err
	}
	resp, err := c.AddUser(ctx, adminapi.AddUserRequest{Username: pos[0], Password: pw, Admin: *admin})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Created %s.\n", resp.UserID)
	return nil
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
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
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
	fmt.Fprintf(w, "Gateway:      http://%s/\n", st.HTTPAddr)
	fmt.Fprintf(w, "Versions:     outpost %s, dendrite %s, %s\n", st.Versions.Outpost, orUnknown(st.Versions.Dendrite), st.Versions.Go)
	fmt.Fprintf(w, "Up since:     %s\n", st.StartedAt.Local().Format("2006-01-02 15:04:05"))
	fmt.Fprintf(w, "Data dir:     %s (%s used, %s free)\n", st.DataDir, bytesHuman(st.DataBytes), bytesHuman(st.DiskFreeBytes))
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
