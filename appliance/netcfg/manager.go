package netcfg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/outpost-im/outpost/appliance/audit"
	"github.com/outpost-im/outpost/appliance/settings"
)

// Phases of a trial.
const (
	PhaseApplying   = "applying"
	PhaseChecking   = "checking the gateway"
	PhaseConfirming = "waiting for confirmation"
)

// Outcomes of a trial.
const (
	OutcomeKept       = "kept"
	OutcomeRolledBack = "rolled back"
)

// Manager applies the stored configuration at boot and runs trials of new ones.
type Manager struct {
	Link    Link
	Store   *settings.Store
	Log     *slog.Logger
	Console io.Writer // the box's screen and serial console; nil for none
	// CheckTimeout is how long the gateway has to answer (default 15 s); ConfirmWindow how
	// long an administrator has to confirm (default 5 min); ApplyDelay how long the answer
	// to the request that started a trial has to reach the browser before the address
	// changes under it (default 1 s).
	CheckTimeout  time.Duration
	ConfirmWindow time.Duration
	ApplyDelay    time.Duration
	// Changed is called after the applied configuration changed (new names for TLS).
	Changed func(Config)

	mu        sync.Mutex
	ctx       context.Context
	committed Config
	applied   Config
	trial     *trial
	last      *Result
}

type trial struct {
	status   Trial
	decided  chan decision // confirm or revert from an administrator
	finished chan struct{} // closed when the trial has ended (kept or rolled back)
}

type decision struct {
	keep  bool
	actor string
}

// Trial is a configuration being tried.
type Trial struct {
	Config   Config    `json:"config"`
	Previous Config    `json:"previous"`
	Phase    string    `json:"phase"`
	Started  time.Time `json:"started"`
	// Deadline is when it is rolled back unless confirmed (zero before the gateway answered).
	Deadline time.Time `json:"deadline,omitzero"`
	By       string    `json:"by"`
	// Auto trials (provisioning) are kept as soon as the gateway answers.
	Auto bool `json:"auto,omitempty"`
}

// Result is how the last trial ended.
type Result struct {
	Config  Config    `json:"config"`
	Outcome string    `json:"outcome"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
	By      string    `json:"by,omitempty"`
}

// Status is what the console and `outpost network` show.
type Status struct {
	// Managed is false on a laptop: settings are stored, the machine's network is untouched.
	Managed   bool     `json:"managed"`
	Committed Config   `json:"committed"`
	Applied   Config   `json:"applied"`
	Addresses []string `json:"addresses"`
	Trial     *Trial   `json:"trial,omitempty"`
	Last      *Result  `json:"last,omitempty"`
}

func (m *Manager) defaults() {
	if m.CheckTimeout == 0 {
		m.CheckTimeout = 15 * time.Second
	}
	if m.ConfirmWindow == 0 {
		m.ConfirmWindow = 5 * time.Minute
	}
	if m.ApplyDelay == 0 {
		m.ApplyDelay = time.Second
	}
	if m.Console == nil {
		m.Console = io.Discard
	}
}

// Start applies the stored configuration. A static configuration whose gateway does not
// answer is kept (the router may still be booting after a power cut at the site) and
// reported on the console.
func (m *Manager) Start(ctx context.Context) error {
	m.defaults()
	st, err := m.Store.Get(ctx)
	if err != nil {
		return err
	}
	c, err := Parse(st.NetworkConfig)
	if err != nil {
		// A stored configuration this build cannot read must not cost the box its network.
		m.Log.Error("stored network configuration unreadable; using DHCP", "err", err)
		c = Config{Mode: ModeDHCP}
	}
	m.mu.Lock()
	m.ctx = ctx
	m.committed = c
	m.mu.Unlock()
	if err := m.apply(ctx, c); err != nil {
		if c.Mode != ModeStatic {
			return err
		}
		m.Log.Error("static network configuration failed; falling back to DHCP", "config", c.Summary(), "err", err)
		fmt.Fprintf(m.Console, "\n  Network: %s failed (%v); using DHCP.\n\n", c.Summary(), err)
		return m.apply(ctx, Config{Mode: ModeDHCP})
	}
	if c.Mode == ModeStatic && m.Link.Managed() {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := m.Link.Reachable(cctx, c.GatewayAddr()); err != nil && ctx.Err() == nil {
				m.Log.Warn("the gateway does not answer", "gateway", c.Gateway, "err", err)
				fmt.Fprintf(m.Console, "\n  Network: gateway %s does not answer (static %s).\n\n", c.Gateway, c.Address)
			}
		}()
	}
	return nil
}

// LeaseWait bounds how long Start waits for a DHCP lease. The address goes on the console
// and into the box's certificate (and, on the first boot, into its root's name constraints),
// so it is worth a short wait; but a LAN without a DHCP server must not stop the box.
var LeaseWait = 20 * time.Second

func (m *Manager) waitForLease(ctx context.Context) {
	start := time.Now()
	for time.Since(start) < LeaseWait && ctx.Err() == nil {
		if addrs, err := m.Link.Addresses(); err == nil && len(addrs) > 0 {
			m.Log.Info("DHCP lease", "addresses", addrs, "after", time.Since(start).Round(time.Millisecond))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	m.Log.Warn("no DHCP lease yet; carrying on without an address", "waited", LeaseWait)
	fmt.Fprintf(m.Console, "\n  Network: no address from DHCP after %s; still asking.\n\n", LeaseWait)
}

func (m *Manager) apply(ctx context.Context, c Config) error {
	if err := m.Link.Apply(ctx, c); err != nil {
		return err
	}
	if c.Mode == ModeDHCP && m.Link.Managed() {
		m.waitForLease(ctx) // the new address belongs in the certificate (Changed)
	}
	m.mu.Lock()
	m.applied = c
	m.mu.Unlock()
	m.Log.Info("network configuration applied", "config", c.Summary(), "managed", m.Link.Managed())
	if m.Changed != nil {
		m.Changed(c)
	}
	return nil
}

// Status reports the configuration now and any trial.
func (m *Manager) Status() Status {
	m.mu.Lock()
	s := Status{Managed: m.Link.Managed(), Committed: m.committed, Applied: m.applied, Last: m.last}
	if m.trial != nil {
		t := m.trial.status
		s.Trial = &t
	}
	m.mu.Unlock()
	if addrs, err := m.Link.Addresses(); err == nil {
		for _, a := range addrs {
			s.Addresses = append(s.Addresses, a.String())
		}
	}
	return s
}

// ErrBusy is returned while another trial runs.
var ErrBusy = errors.New("a network change is already being tried: confirm or revert it first")

// Try starts a trial of c and returns at once; the change itself happens ApplyDelay later.
// With auto, the configuration is kept as soon as the gateway answers (provisioning: nobody
// is there to confirm); otherwise an administrator must Confirm within ConfirmWindow.
func (m *Manager) Try(ctx context.Context, c Config, actor audit.Actor, auto bool) (Trial, error) {
	if err := c.Validate(); err != nil {
		return Trial{}, err
	}
	m.mu.Lock()
	if m.ctx == nil {
		m.mu.Unlock()
		return Trial{}, errors.New("netcfg: the network manager has not started")
	}
	if m.trial != nil {
		m.mu.Unlock()
		return Trial{}, ErrBusy
	}
	t := &trial{
		status:   Trial{Config: c, Previous: m.committed, Phase: PhaseApplying, Started: time.Now(), By: actor.String(), Auto: auto},
		decided:  make(chan decision, 1),
		finished: make(chan struct{}),
	}
	m.trial = t
	runCtx := m.ctx
	m.mu.Unlock()
	if err := audit.Record(ctx, m.Store.DB(), actor.String(), "network.try", c.Summary(), "previous: "+t.status.Previous.Summary()); err != nil {
		m.mu.Lock()
		m.trial = nil
		m.mu.Unlock()
		return Trial{}, err
	}
	m.Log.Info("trying a network configuration", "config", c.Summary(), "previous", t.status.Previous.Summary(), "by", actor.String())
	go m.run(runCtx, t)
	return t.status, nil
}

// TryAndKeep runs an automatic trial of c and waits for its outcome: kept once the gateway
// answers, else rolled back. Provisioning uses it before the rest of setup, so that what
// follows (the box's root certificate, the console lines) already sees the new address.
func (m *Manager) TryAndKeep(ctx context.Context, c Config, actor audit.Actor) (Result, error) {
	if _, err := m.Try(ctx, c, actor, true); err != nil {
		return Result{}, err
	}
	m.mu.Lock()
	t := m.trial
	m.mu.Unlock()
	if t != nil {
		select {
		case <-t.finished:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		return Result{}, errors.New("netcfg: the trial ended without a result")
	}
	return *m.last, nil
}

func (m *Manager) setPhase(t *trial, phase string, deadline time.Time) {
	m.mu.Lock()
	t.status.Phase, t.status.Deadline = phase, deadline
	m.mu.Unlock()
}

func (m *Manager) run(ctx context.Context, t *trial) {
	c := t.status.Config
	select {
	case <-ctx.Done():
		m.end(t, nil)
		return
	case <-time.After(m.ApplyDelay):
	}
	if err := m.apply(ctx, c); err != nil {
		m.rollback(ctx, t, fmt.Sprintf("applying it failed: %v", err))
		return
	}
	if c.Mode == ModeStatic && m.Link.Managed() {
		m.setPhase(t, PhaseChecking, time.Time{})
		cctx, cancel := context.WithTimeout(ctx, m.CheckTimeout)
		err := m.Link.Reachable(cctx, c.GatewayAddr())
		cancel()
		if ctx.Err() != nil {
			m.end(t, nil)
			return
		}
		if err != nil {
			m.rollback(ctx, t, fmt.Sprintf("the gateway %s did not answer within %s", c.Gateway, m.CheckTimeout))
			return
		}
	}
	if t.status.Auto {
		m.commit(ctx, t, t.status.By)
		return
	}
	deadline := time.Now().Add(m.ConfirmWindow)
	m.setPhase(t, PhaseConfirming, deadline)
	fmt.Fprintf(m.Console, "\n  Network: trying %s.\n  Confirm it in the admin console within %s or it is undone.\n\n", c.Summary(), m.ConfirmWindow)
	select {
	case <-ctx.Done():
		m.end(t, nil)
	case d := <-t.decided:
		if d.keep {
			m.commit(ctx, t, d.actor)
		} else {
			m.rollback(ctx, t, "reverted by "+d.actor)
		}
	case <-time.After(time.Until(deadline)):
		m.rollback(ctx, t, fmt.Sprintf("nobody confirmed it within %s", m.ConfirmWindow))
	}
}

// end clears the trial and records its result (nil: the daemon is stopping; the stored
// configuration is applied at the next start).
func (m *Manager) end(t *trial, r *Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.trial == t {
		m.trial = nil
	}
	if r != nil {
		m.last = r
	}
	close(t.finished)
}

func (m *Manager) commit(ctx context.Context, t *trial, by string) {
	c := t.status.Config
	err := m.Store.UpdateTx(ctx, func(tx *sql.Tx, st *settings.Settings) error {
		st.NetworkConfig = c.String()
		return audit.Record(ctx, tx, by, "network.keep", c.Summary(), "")
	})
	if err != nil {
		m.rollback(ctx, t, fmt.Sprintf("storing it failed: %v", err))
		return
	}
	m.mu.Lock()
	m.committed = c
	m.mu.Unlock()
	m.Log.Info("network configuration kept", "config", c.Summary(), "by", by)
	fmt.Fprintf(m.Console, "\n  Network: %s kept.\n\n", c.Summary())
	m.end(t, &Result{Config: c, Outcome: OutcomeKept, At: time.Now(), By: by})
}

func (m *Manager) rollback(ctx context.Context, t *trial, reason string) {
	prev := t.status.Previous
	m.Log.Warn("network configuration rolled back", "config", t.status.Config.Summary(), "back_to", prev.Summary(), "reason", reason)
	fmt.Fprintf(m.Console, "\n  Network: %s rolled back (%s);\n  back to %s.\n\n", t.status.Config.Summary(), reason, prev.Summary())
	if err := m.apply(ctx, prev); err != nil {
		m.Log.Error("restoring the previous network configuration failed; trying DHCP", "err", err)
		if err := m.apply(ctx, Config{Mode: ModeDHCP}); err != nil {
			m.Log.Error("DHCP failed too", "err", err)
		}
	}
	audit.Record(ctx, m.Store.DB(), "outpostd", "network.rollback", t.status.Config.Summary(), reason) //nolint:errcheck // logged above
	m.end(t, &Result{Config: t.status.Config, Outcome: OutcomeRolledBack, Reason: reason, At: time.Now()})
}

// ErrNoTrial is returned by Confirm and Revert when nothing waits for a decision.
var ErrNoTrial = errors.New("no network change is waiting for confirmation")

// ErrNotReady is returned by Confirm before the new configuration has been applied and checked.
var ErrNotReady = errors.New("the new network configuration is not ready to be confirmed yet")

// Confirm keeps the configuration on trial; Revert undoes it now.
func (m *Manager) Confirm(actor audit.Actor) error {
	return m.decide(decision{keep: true, actor: actor.String()})
}
func (m *Manager) Revert(actor audit.Actor) error {
	return m.decide(decision{keep: false, actor: actor.String()})
}

// decide hands the decision to the trial and waits until it has been carried out, so the
// answer (and the status after it) says what happened.
func (m *Manager) decide(d decision) error {
	m.mu.Lock()
	t := m.trial
	if t == nil {
		m.mu.Unlock()
		return ErrNoTrial
	}
	if d.keep && t.status.Phase != PhaseConfirming {
		m.mu.Unlock()
		return fmt.Errorf("%w (%s); try again in a few seconds", ErrNotReady, t.status.Phase)
	}
	select {
	case t.decided <- d:
	default:
		m.mu.Unlock()
		return fmt.Errorf("%w: a decision on it was already made", ErrNoTrial)
	}
	m.mu.Unlock()
	select {
	case <-t.finished:
	case <-time.After(30 * time.Second):
	}
	return nil
}

// Gateway is the gateway of the configuration in use ("" for DHCP).
func (m *Manager) Gateway() netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applied.GatewayAddr()
}
