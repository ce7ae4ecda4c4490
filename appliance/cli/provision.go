package cli

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mattn/go-isatty"
	"golang.org/x/crypto/bcrypt"

	"github.com/outpost-im/outpost/appliance/atomicfile"
	"github.com/outpost-im/outpost/appliance/people"
	"github.com/outpost-im/outpost/provisioning"
)

const provisionUsage = `
Provisioning (works offline, no outpostd needed):
  provision new [--out FILE] [--server-name NAME] [--admin USER] [--admin-password-stdin | --one-time-password]
                [--recovery-recipient age1...] [--federation] [--static IP/PREFIX --gateway IP --dns IP,...]
                [--brand NAME] [--support TEXT] [--kind KIND target flags]
                                        write a manifest (asks for what is missing on a terminal)
  provision check FILE [--key PUBKEY]   validate a manifest (and its signature)
  provision keygen --out NAME           make a company signing key: NAME (private), NAME.pub
  provision sign --key PRIVKEY FILE     write FILE.sig
  provision verify --key PUBKEY FILE    check FILE.sig
  provision fleet --template FILE --csv FILE --out DIR
                                        one manifest per CSV row ({{.column}} in the template)
`

func provisionCmd(args []string, env Env) error {
	if len(args) == 0 {
		return usageError{"provision: give a subcommand: new, check, keygen, sign, verify, fleet"}
	}
	fs := flag.NewFlagSet("provision "+args[0], flag.ContinueOnError)
	switch args[0] {
	case "new":
		return provisionNew(fs, args[1:], env)
	case "check", "verify":
		key := fs.String("key", "", "public key file the manifest must be signed with")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError{"provision " + args[0] + ": give the manifest file"}
		}
		if args[0] == "verify" && *key == "" {
			return usageError{"provision verify: give the public key with --key"}
		}
		data, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		if *key != "" {
			pubText, err := os.ReadFile(*key)
			if err != nil {
				return err
			}
			pub, err := provisioning.ParsePublicKey(string(pubText))
			if err != nil {
				return err
			}
			sig, err := os.ReadFile(pos[0] + provisioning.SigSuffix)
			if err != nil {
				sig = nil
			}
			if err := provisioning.Verify(pub, data, sig); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "signature OK (key %s)\n", provisioning.KeyFingerprint(pub))
		}
		m, err := provisioning.Parse(data)
		if err != nil {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
		fmt.Fprintf(env.Stdout, "%s is a valid manifest for %s (admin %s", pos[0], m.ServerName, m.Admin.Username)
		if m.Snapshots != nil {
			fmt.Fprintf(env.Stdout, ", snapshots to %s target %s", m.Snapshots.Target.Kind, m.Snapshots.Target.Name)
		}
		fmt.Fprintln(env.Stdout, ")")
		return nil
	case "keygen":
		out := fs.String("out", "", "file name of the private key (the public key gets .pub)")
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *out == "" {
			return usageError{"provision keygen: give --out NAME"}
		}
		priv, pub, err := provisioning.NewKey()
		if err != nil {
			return err
		}
		if _, err := os.Stat(*out); err == nil {
			return fmt.Errorf("%s exists; refusing to overwrite a signing key", *out)
		}
		if err := atomicfile.Write(*out, []byte(priv), 0o600); err != nil {
			return err
		}
		if err := atomicfile.Write(*out+".pub", []byte(pub), 0o644); err != nil {
			return err
		}
		p, _ := provisioning.ParsePublicKey(pub)
		fmt.Fprintf(env.Stdout, "private key %s (keep it at headquarters), public key %s.pub (pin it in images), fingerprint %s\n", *out, *out, provisioning.KeyFingerprint(p))
		return nil
	case "sign":
		key := fs.String("key", "", "private key file")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if *key == "" || len(pos) != 1 {
			return usageError{"provision sign: give --key PRIVKEY and the manifest file"}
		}
		keyText, err := os.ReadFile(*key)
		if err != nil {
			return err
		}
		priv, err := provisioning.ParsePrivateKey(string(keyText))
		if err != nil {
			return err
		}
		data, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		if _, err := provisioning.Parse(data); err != nil {
			return fmt.Errorf("refusing to sign an invalid manifest: %w", err)
		}
		if err := atomicfile.Write(pos[0]+provisioning.SigSuffix, provisioning.Sign(priv, data), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "wrote %s%s\n", pos[0], provisioning.SigSuffix)
		return nil
	case "fleet":
		tmpl := fs.String("template", "", "manifest template")
		csvFile := fs.String("csv", "", "one row per box")
		out := fs.String("out", "", "directory for the manifests")
		if _, err := parse(fs, args[1:]); err != nil {
			return err
		}
		if *tmpl == "" || *csvFile == "" || *out == "" {
			return usageError{"provision fleet: give --template, --csv and --out"}
		}
		t, err := os.ReadFile(*tmpl)
		if err != nil {
			return err
		}
		f, err := os.Open(*csvFile)
		if err != nil {
			return err
		}
		defer f.Close()
		files, err := provisioning.Fleet(t, f)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*out, 0o700); err != nil {
			return err
		}
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if err := atomicfile.Write(filepath.Join(*out, n), files[n], 0o600); err != nil {
				return err
			}
		}
		fmt.Fprintf(env.Stdout, "wrote %d manifests to %s: %s\n", len(names), *out, strings.Join(names, ", "))
		return nil
	}
	return usageError{fmt.Sprintf("provision: unknown subcommand %q", args[0])}
}

func provisionNew(fs *flag.FlagSet, args []string, env Env) error {
	out := fs.String("out", "", "manifest file to write (default: standard output)")
	server := fs.String("server-name", "", "the box's Matrix server name")
	admin := fs.String("admin", "", "first administrator's user name")
	pwStdin := fs.Bool("admin-password-stdin", false, "read the admin password from standard input (stored as a bcrypt hash)")
	otp := fs.Bool("one-time-password", false, "generate a one-time admin password, changed at first sign-in")
	recipient := fs.String("recovery-recipient", "", "public recovery key (age1...) for snapshots")
	federation := fs.Bool("federation", false, "allow federation")
	static := fs.String("static", "", "static IPv4 address with prefix, e.g. 192.168.17.10/24 (default: DHCP)")
	gateway := fs.String("gateway", "", "router address (with --static)")
	dns := fs.String("dns", "", "DNS servers, comma-separated")
	brand := fs.String("brand", "", "name shown to people")
	support := fs.String("support", "", "whom to call, shown to people")
	snapTime := fs.String("snapshot-time", "", "daily snapshot time HH:MM")
	build := targetFlags(fs, env)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	tty := false
	if f, ok := env.Stdin.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		tty = true
	}
	in := bufio.NewReader(env.Stdin)
	ask := func(v *string, prompt string) error {
		if *v != "" || !tty {
			return nil
		}
		fmt.Fprint(env.Stderr, prompt+": ")
		line, err := in.ReadString('\n')
		*v = strings.TrimSpace(line)
		return err
	}
	if err := ask(server, "Server name (e.g. chat.branch-17.example.com)"); err != nil {
		return err
	}
	if err := ask(admin, "First administrator's user name"); err != nil {
		return err
	}
	m := provisioning.Manifest{OutpostManifest: provisioning.Version, ServerName: *server, Federation: *federation,
		Admin: provisioning.Admin{Username: *admin}}
	switch {
	case *pwStdin && *otp:
		return usageError{"provision new: --admin-password-stdin or --one-time-password, not both"}
	case *pwStdin:
		pw, err := readPassword(env, true, "", true)
		if err != nil {
			return err
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), 12)
		if err != nil {
			return err
		}
		m.Admin.PasswordHash = string(hash)
	default:
		pw, err := people.NewOneTimePassword()
		if err != nil {
			return err
		}
		m.Admin.OneTimePassword = pw
		fmt.Fprintf(env.Stderr, "one-time admin password (changed at first sign-in): %s\n", pw)
	}
	if err := ask(recipient, "Public recovery key for snapshots (age1..., empty: configure later)"); err != nil {
		return err
	}
	if fs.Lookup("kind").Value.String() != "" {
		t, err := build("provisioned")
		if err != nil {
			return usageError{"provision new: snapshot target: " + err.Error()}
		}
		m.Snapshots = &provisioning.Snaps{Target: t, Time: *snapTime, RecoveryRecipient: *recipient}
	} else if *recipient != "" {
		return usageError{"provision new: a recovery key needs a snapshot target (--kind and its flags)"}
	}
	if *static != "" {
		m.Network = &provisioning.Net{Mode: "static", Address: *static, Gateway: *gateway}
		if *dns != "" {
			m.Network.DNS = strings.Split(*dns, ",")
		}
	}
	if *brand != "" || *support != "" {
		m.Branding = &provisioning.Brand{Name: *brand, SupportContact: *support}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if _, err := provisioning.Parse(data); err != nil {
		return err
	}
	if *out == "" {
		_, err = env.Stdout.Write(data)
		return err
	}
	if err := atomicfile.Write(*out, data, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s\n", *out)
	return nil
}
