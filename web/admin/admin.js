// The admin console: people, invitations, federation, calls, certificates, snapshots and the audit log.
'use strict';

(() => {
  const { api, el, showError, clearErrors, busy, fmtTime, fmtBytes } = outpost;
  const $ = (id) => document.getElementById(id);
  let me = '';

  function signedOut() {
    $('app').hidden = true;
    $('whoami').hidden = true;
    $('signin').hidden = false;
    $('loading').hidden = true;
    $('username').focus();
  }

  function signedIn(session) {
    me = session.user_id;
    outpost.setCSRF(session.csrf);
    $('me').textContent = me;
    $('whoami').hidden = false;
    $('signin').hidden = true;
    if (session.must_change_password) {
      // A provisioned one-time password: nothing else until the admin has their own.
      $('app').hidden = true;
      $('loading').hidden = true;
      $('set-password').hidden = false;
      $('own-password').focus();
      return;
    }
    $('set-password').hidden = true;
    $('app').hidden = false;
    $('loading').hidden = true;
    selectTab('overview');
    // Signed in at a new address to confirm a network change: go straight there.
    api('GET', '/admin/api/network').then((n) => { if (n.trial) selectTab('network'); }).catch(() => {});
  }

  // guard turns "signed out" answers into the sign-in form, and shows other errors.
  async function guard(slot, fn) {
    try {
      if (slot) slot.textContent = '';
      await fn();
    } catch (err) {
      if (err.status === 401) return signedOut();
      if (slot) slot.textContent = err.message;
    }
  }

  const loaders = {
    overview: loadOverview, people: loadPeople, invites: loadInvites, federation: loadFederation, calls: loadCalls, tls: loadTLS, snapshots: loadSnapshots, network: loadNetwork, audit: loadAudit,
  };

  function selectTab(name) {
    document.querySelectorAll('nav.tabs [role=tab]').forEach((t) => {
      const on = t.getAttribute('aria-controls') === name;
      t.setAttribute('aria-selected', on ? 'true' : 'false');
      $(t.getAttribute('aria-controls')).hidden = !on;
    });
    document.title = $('tab-' + name).textContent + ' — Outpost admin console';
    loaders[name]();
  }

  async function loadOverview() {
    await guard(null, async () => {
      const s = await api('GET', '/admin/api/overview');
      const hs = s.homeserver || {};
      const up = hs.started_at ? Math.round((Date.now() - new Date(hs.started_at)) / 60000) + ' min' : '—';
      const items = [
        ['Chat server', hs.state + (hs.restarts ? ' (' + hs.restarts + ' restarts)' : '')],
        ['Uptime', up],
        ['Server name', s.server_name],
        ['People', s.users],
        ['Rooms', s.rooms],
        ['Federation', s.federation ? 'on' : 'off'],
        ['Data', fmtBytes(s.data_bytes) + ' used'],
        ['Disk free', fmtBytes(s.disk_free_bytes)],
        ['Outpost version', s.versions.outpost],
        ['Dendrite version', s.versions.dendrite || '?'],
      ];
      $('stats').replaceChildren(...items.map(([k, v]) => el('div', {}, k, el('b', {}, String(v)))));
      const snap = await api('GET', '/admin/api/snapshots');
      showAlerts($('overview-alerts'), snap.status.alerts);
    });
  }

  function showAlerts(box, alerts) {
    box.hidden = !alerts || alerts.length === 0;
    box.replaceChildren(...(alerts || []).map((a) => el('p', {}, a)));
  }

  function runText(r) {
    return r ? fmtTime(r.started_at) + ' (' + r.snapshot_id + ')' : 'never';
  }

  function targetWhere(t) {
    switch (t.kind) {
      case 'local': return t.path;
      case 'smb': return '//' + t.host + '/' + t.share + (t.dir ? '/' + t.dir : '');
      case 'sftp': return t.user + '@' + t.host + ':' + (t.dir || '');
      case 's3': return t.endpoint + '/' + t.bucket + (t.dir ? '/' + t.dir : '');
      case 'webdav': return t.url;
    }
    return '';
  }

  function renderSnapshots(v) {
    const s = v.status;
    showAlerts($('snap-alerts'), s.alerts);
    $('snap-last').textContent = runText(s.last_snapshot);
    $('snap-verified').textContent = runText(s.last_verified);
    $('snap-next').textContent = s.enabled ? (s.next_run ? fmtTime(s.next_run) : '—') : 'snapshots are off';
    $('snap-target').textContent = s.target || 'none';
    $('snap-recovery').textContent = s.recovery_key_set ? 'set (create a new one if the sheet is lost)' : 'not set';
    $('recovery-new').textContent = s.recovery_key_set ? 'Create a new recovery key' : 'Create a recovery key';
    $('snap-error').textContent = v.list_error || '';
    $('snap-rows').replaceChildren(...(v.snapshots || []).slice().reverse().map((e) => el('tr', {},
      el('td', {}, e.ID), el('td', {}, fmtTime(e.Time)), el('td', {}, fmtBytes(e.Size)),
      el('td', {}, e.Complete ? 'complete' : 'incomplete'))));
    const targets = v.targets || [];
    $('target-rows').replaceChildren(...targets.map((t) => el('tr', { 'data-target': t.name },
      el('td', {}, t.name), el('td', {}, t.kind), el('td', {}, targetWhere(t)),
      el('td', {}, el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'small secondary', onclick: () => testTarget(t.name) }, 'Test'),
        el('button', { type: 'button', class: 'small danger', onclick: () => removeTarget(t.name) }, 'Remove'))))));
    $('s-on').checked = s.enabled;
    $('s-time').value = s.time;
    $('s-retention').value = s.retention;
    $('s-target').replaceChildren(el('option', { value: '' }, '—'), ...targets.map((t) => el('option', { value: t.name }, t.name)));
    $('s-target').value = s.target || '';
  }

  async function loadSnapshots() {
    await guard($('snap-error'), async () => renderSnapshots(await api('GET', '/admin/api/snapshots')));
  }

  async function testTarget(name) {
    $('targets-result').textContent = '';
    await guard($('targets-error'), async () => {
      const r = await api('POST', '/admin/api/targets/' + encodeURIComponent(name) + '/test', {});
      $('targets-result').textContent = r.result;
    });
  }

  async function removeTarget(name) {
    if (!confirm('Remove target ' + name + '? Its snapshots stay where they are.')) return;
    await guard($('targets-error'), async () => renderSnapshots(await api('POST', '/admin/api/targets/' + encodeURIComponent(name) + '/remove', {})));
  }

  function showKindFields() {
    const kind = $('t-kind').value;
    document.querySelectorAll('#target-form [data-kinds]').forEach((d) => {
      d.hidden = !d.getAttribute('data-kinds').split(' ').includes(kind);
    });
  }

  // drawQR renders the recovery key's QR code as SVG (no image download, no library).
  function drawQR(rows) {
    const ns = 'http://www.w3.org/2000/svg';
    const n = rows.length + 8; // quiet zone
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + n + ' ' + n);
    svg.setAttribute('width', '220');
    svg.setAttribute('height', '220');
    const bg = document.createElementNS(ns, 'rect');
    bg.setAttribute('width', n); bg.setAttribute('height', n); bg.setAttribute('fill', '#fff');
    svg.append(bg);
    let d = '';
    rows.forEach((row, y) => { [...row].forEach((c, x) => { if (c === '1') d += 'M' + (x + 4) + ' ' + (y + 4) + 'h1v1h-1z'; }); });
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', d); path.setAttribute('fill', '#000');
    svg.append(path);
    $('recovery-qr').replaceChildren(svg);
  }

  // submitForm runs fn with the form busy and shows its error next to the right field.
  async function submitForm(form, fn) {
    clearErrors(form);
    await busy(form, async () => {
      try {
        await fn();
      } catch (err) {
        if (err.status === 401) return signedOut();
        showError(form, err);
      }
    });
  }

  async function loadPeople() {
    await guard($('people-error'), async () => {
      const users = await api('GET', '/admin/api/users');
      $('user-rows').replaceChildren(...users.map(userRow));
    });
  }

  function userRow(u) {
    const actions = el('div', { class: 'actions' });
    if (!u.deactivated) {
      actions.append(el('button', { type: 'button', class: 'small secondary', onclick: () => resetPassword(u) }, 'Reset password'));
      if (u.user_id !== me) {
        actions.append(el('button', { type: 'button', class: 'small secondary', onclick: () => setAdmin(u, !u.admin) },
          u.admin ? 'Remove admin' : 'Make admin'));
        actions.append(el('button', { type: 'button', class: 'small danger', onclick: () => deactivate(u) }, 'Deactivate'));
      }
    }
    return el('tr', { 'data-user': u.localpart },
      el('td', {}, u.user_id), el('td', {}, u.admin ? 'admin' : 'user'),
      el('td', {}, u.deactivated ? 'deactivated' : 'active'), el('td', { class: 'opt' }, fmtTime(u.created_at)),
      el('td', {}, actions));
  }

  async function resetPassword(u) {
    if (!confirm('Reset the password of ' + u.user_id + '? All their devices are signed out.')) return;
    await guard($('people-error'), async () => {
      const r = await api('POST', '/admin/api/users/' + encodeURIComponent(u.localpart) + '/reset-password', {});
      $('reset-user').textContent = u.user_id;
      $('reset-password').textContent = r.password;
      $('reset-result').hidden = false;
      await loadPeople();
    });
  }

  async function setAdmin(u, admin) {
    const q = admin ? 'Make ' + u.user_id + ' an administrator?' : 'Remove administrator rights from ' + u.user_id + '?';
    if (!confirm(q)) return;
    await guard($('people-error'), async () => {
      await api('POST', '/admin/api/users/' + encodeURIComponent(u.localpart) + '/admin', { admin });
      await loadPeople();
    });
  }

  async function deactivate(u) {
    if (!confirm('Deactivate ' + u.user_id + '? They are signed out, leave all rooms and can never sign in again. This cannot be undone.')) return;
    await guard($('people-error'), async () => {
      await api('POST', '/admin/api/users/' + encodeURIComponent(u.localpart) + '/deactivate', {});
      await loadPeople();
    });
  }

  async function loadInvites() {
    await guard($('invites-error'), async () => {
      const list = await api('GET', '/admin/api/invites');
      $('invite-rows').replaceChildren(...list.map((i) => el('tr', { 'data-invite': i.id },
        el('td', {}, i.id), el('td', {}, i.status), el('td', {}, fmtTime(i.expires_at)),
        el('td', { class: 'opt' }, i.note || ''), el('td', {}, i.used_by || ''),
        el('td', {}, i.status === 'open'
          ? el('button', { type: 'button', class: 'small danger', onclick: () => revoke(i) }, 'Withdraw') : ''))));
    });
  }

  async function revoke(i) {
    if (!confirm('Withdraw invitation #' + i.id + '?')) return;
    await guard($('invites-error'), async () => {
      await api('POST', '/admin/api/invites/' + i.id + '/revoke', {});
      await loadInvites();
    });
  }

  async function loadFederation() {
    await guard(null, async () => {
      const f = await api('GET', '/admin/api/federation');
      $('fed-state').textContent = f.enabled ? 'on' : 'off';
      $('fed-toggle').textContent = f.enabled ? 'Switch federation off' : 'Switch federation on';
      $('fed-toggle').dataset.enable = f.enabled ? 'false' : 'true';
    });
  }

  async function loadCalls() {
    await guard($('turn-problem'), async () => {
      const t = await api('GET', '/admin/api/turn');
      const st = t.stats || {};
      const items = [
        ['Relay', t.enabled ? 'on' : 'off'],
        ['Address', t.relay_ip || '—'],
        ['Ports', t.ports || '—'],
        ['Allowed networks', (t.allowed_peers || []).join(', ') || '—'],
        ['Active relays', st.active_allocations || 0],
        ['Relayed', fmtBytes(st.relayed_bytes || 0)],
        ['Refused peers', st.denied_peers || 0],
      ];
      $('turn-stats').replaceChildren(...items.map(([k, v]) => el('div', {}, k, el('b', {}, String(v)))));
      $('turn-problem').textContent = t.problem || '';
      const s = t.settings || {};
      $('turn-on').checked = !s.off;
      $('relay_ip').value = s.relay_ip || '';
      $('ports').value = s.ports || '';
      $('allowed_peers').value = s.allowed_peers || '';
    });
  }

  async function loadTLS() {
    await guard(null, async () => {
      const t = await api('GET', '/admin/api/tls');
      $('tls-mode').textContent = { 'box-ca': "the box's own authority", acme: 'ACME CA on the network', upload: 'uploaded certificate' }[t.mode] || 'not serving';
      $('tls-fingerprint').textContent = t.root_fingerprint || '—';
      $('tls-names').textContent = (t.names || []).join(', ');
      $('tls-root').textContent = t.root_pem || '';
      const unc = t.uncovered || [];
      $('tls-uncovered').hidden = unc.length === 0;
      $('tls-uncovered-text').textContent = unc.length ? 'Not covered by the box root: ' + unc.join(', ') : '';
    });
  }

  const list = (v) => v.split(/[\s,]+/).filter((x) => x !== '');
  let netTimer = null;

  function netSummary(c) {
    if (!c || c.mode !== 'static') return 'Automatic (DHCP)';
    return 'Fixed ' + c.address + ' via ' + c.gateway + ((c.dns || []).length ? ', DNS ' + c.dns.join(' ') : '');
  }

  function renderNetwork(n) {
    $('net-applied').textContent = netSummary(n.applied) + ((n.applied.ntp || []).length ? '; time from ' + n.applied.ntp.join(', ') : '');
    $('net-addresses').textContent = (n.addresses || []).join(', ') || '—';
    $('net-last').textContent = n.last ? (n.last.outcome + ': ' + netSummary(n.last.config) + (n.last.reason ? ' (' + n.last.reason + ')' : '') + ', ' + fmtTime(n.last.at)) : '—';
    $('net-unmanaged').hidden = n.managed;
    const tm = n.time;
    $('net-time').textContent = !n.managed ? "this computer's own" : !tm ? 'no LAN time server set (the box keeps its own time and never moves it backwards across restarts)'
      : tm.error ? tm.error
        : tm.server ? (Math.abs(tm.offset_ns) / 1e6).toFixed(0) + ' ms ' + (tm.offset_ns > 0 ? 'behind ' : 'ahead of ') + tm.server + (tm.stepped ? ' (set)' : '') + ', ' + fmtTime(tm.at)
          : 'asking ' + tm.servers.join(', ') + '…';
    const t = n.trial;
    clearInterval(netTimer);
    $('net-trial').hidden = !t;
    if (t) {
      const tick = () => {
        let text = 'Trying ' + netSummary(t.config) + ' (before: ' + netSummary(t.previous) + '): ' + t.phase + '.';
        if (t.deadline) {
          const left = Math.max(0, Math.round((new Date(t.deadline) - Date.now()) / 1000));
          text += ' Goes back by itself in ' + Math.floor(left / 60) + ':' + String(left % 60).padStart(2, '0') + '.';
          if (left === 0) { clearInterval(netTimer); setTimeout(loadNetwork, 1500); }
        } else {
          setTimeout(loadNetwork, 1000);
        }
        $('net-trial-text').textContent = text;
      };
      tick();
      if (t.deadline) netTimer = setInterval(tick, 1000);
      $('net-keep').disabled = !t.deadline;
    }
  }

  async function loadNetwork() {
    await guard($('net-trial-error'), async () => {
      const n = await api('GET', '/admin/api/network');
      renderNetwork(n);
      const f = $('net-form');
      if (!f.dataset.filled) {
        const c = n.committed;
        f.querySelector('input[name=mode][value=' + (c.mode === 'static' ? 'static' : 'dhcp') + ']').checked = true;
        $('net-address').value = c.address || '';
        $('net-gateway').value = c.gateway || '';
        $('net-dns').value = (c.dns || []).join(' ');
        $('net-ntp').value = (c.ntp || []).join(' ');
        $('net-static').hidden = c.mode !== 'static';
        f.dataset.filled = '1';
      }
    });
  }

  async function loadAudit() {
    await guard($('audit-error'), async () => {
      const list = await api('GET', '/admin/api/audit');
      $('audit-rows').replaceChildren(...list.map((e) => el('tr', {},
        el('td', {}, fmtTime(e.at)), el('td', {}, e.actor), el('td', {}, e.action),
        el('td', {}, e.target || ''), el('td', { class: 'opt' }, e.detail || ''))));
    });
  }

  document.addEventListener('DOMContentLoaded', async () => {
    document.querySelectorAll('nav.tabs [role=tab]').forEach((t) => {
      t.addEventListener('click', () => selectTab(t.getAttribute('aria-controls')));
    });

    const signin = $('signin').querySelector('form');
    signin.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(signin);
      try {
        const s = await busy(signin, () => api('POST', '/admin/api/login', { username: $('username').value.trim(), password: $('password').value }));
        $('password').value = '';
        signedIn(s);
      } catch (err) { showError(signin, err); }
    });

    $('signout').addEventListener('click', async () => {
      try { await api('POST', '/admin/api/logout', {}); } catch (e) { /* signed out either way */ }
      signedOut();
    });

    const addUser = $('add-user');
    addUser.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(addUser);
      $('new-user-result').hidden = true;
      try {
        const r = await busy(addUser, () => api('POST', '/admin/api/users', { username: $('new-username').value.trim(), admin: $('new-admin').checked }));
        $('new-user-id').textContent = r.user_id;
        $('new-user-password').textContent = r.password;
        $('new-user-result').hidden = false;
        addUser.reset();
        await loadPeople();
      } catch (err) {
        if (err.status === 401) return signedOut();
        showError(addUser, err);
      }
    });

    const addInvite = $('add-invite');
    addInvite.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(addInvite);
      $('invite-result').hidden = true;
      try {
        const r = await busy(addInvite, () => api('POST', '/admin/api/invites', { expires_hours: Number($('invite-expires').value), note: $('invite-note').value }));
        $('invite-code').textContent = r.code;
        $('invite-link').textContent = location.origin + '/invite/#' + r.code;
        $('invite-result').hidden = false;
        addInvite.reset();
        await loadInvites();
      } catch (err) {
        if (err.status === 401) return signedOut();
        showError(addInvite, err);
      }
    });

    const fed = $('fed-form');
    fed.addEventListener('submit', async (e) => {
      e.preventDefault();
      const enable = $('fed-toggle').dataset.enable === 'true';
      if (!confirm(enable ? 'Switch federation ON? This server will talk to other Matrix servers.' : 'Switch federation OFF? People on other servers lose contact.')) return;
      clearErrors(fed);
      try {
        await busy(fed, () => api('POST', '/admin/api/federation', { enabled: enable }));
        await loadFederation();
      } catch (err) {
        if (err.status === 401) return signedOut();
        showError(fed, err);
      }
    });

    const netForm = $('net-form');
    netForm.querySelectorAll('input[name=mode]').forEach((r) => r.addEventListener('change', () => {
      $('net-static').hidden = netForm.querySelector('input[name=mode]:checked').value !== 'static';
    }));
    netForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(netForm);
      $('net-result').textContent = '';
      const mode = netForm.querySelector('input[name=mode]:checked').value;
      const c = { mode, ntp: list($('net-ntp').value) };
      if (mode === 'static') {
        Object.assign(c, { address: $('net-address').value.trim(), gateway: $('net-gateway').value.trim(), dns: list($('net-dns').value) });
      }
      try {
        const n = await busy(netForm, () => api('POST', '/admin/api/network', c));
        $('net-result').textContent = n.message;
        renderNetwork(n);
      } catch (err) {
        if (err.status === 401) return signedOut();
        err.field = (err.field || '').replace(/\[\d+\]$/, '');
        showError(netForm, err);
      }
    });
    const decide = async (what) => {
      $('net-trial-error').textContent = '';
      $('net-result').textContent = '';
      try {
        renderNetwork(await api('POST', '/admin/api/network/' + what, {}));
      } catch (err) {
        if (err.status === 401) return signedOut();
        $('net-trial-error').textContent = err.message;
      }
    };
    $('net-keep').addEventListener('click', () => decide('confirm'));
    $('net-revert').addEventListener('click', () => decide('revert'));

    const turnForm = $('turn-form');
    turnForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(turnForm);
      $('turn-result').textContent = '';
      try {
        await busy(turnForm, () => api('POST', '/admin/api/turn', {
          off: !$('turn-on').checked, relay_ip: $('relay_ip').value.trim(),
          ports: $('ports').value.trim(), allowed_peers: $('allowed_peers').value.trim(),
        }));
        $('turn-result').textContent = 'Saved; the relay and the chat server restarted with the new settings.';
        await loadCalls();
      } catch (err) {
        if (err.status === 401) return signedOut();
        showError(turnForm, err);
      }
    });

    $('tls-new-root').addEventListener('click', async () => {
      if (!confirm('Replace the box root? Every phone and computer must install the new root before it trusts the box again.')) return;
      $('tls-new-root-error').textContent = '';
      try {
        await api('POST', '/admin/api/tls/new-root', {});
        await loadTLS();
      } catch (err) {
        if (err.status === 401) return signedOut();
        $('tls-new-root-error').textContent = err.message;
      }
    });

    const tlsForm = $('tls-form');
    const showModeFields = () => {
      const mode = tlsForm.querySelector('input[name=mode]:checked').value;
      $('tls-acme').hidden = mode !== 'acme';
      $('tls-upload').hidden = mode !== 'upload';
    };
    tlsForm.querySelectorAll('input[name=mode]').forEach((r) => r.addEventListener('change', showModeFields));
    tlsForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(tlsForm);
      $('tls-result').textContent = '';
      const mode = tlsForm.querySelector('input[name=mode]:checked').value;
      const body = { mode };
      if (mode === 'acme') Object.assign(body, { acme_directory: $('acme_directory').value.trim(), acme_root_pem: $('acme_root_pem').value });
      if (mode === 'upload') Object.assign(body, { cert_pem: $('cert_pem').value, key_pem: $('key_pem').value });
      try {
        const r = await busy(tlsForm, () => api('POST', '/admin/api/tls/mode', body));
        $('tls-result').textContent = 'Switched.' + (r.warnings ? ' Warning: ' + r.warnings.join(' ') : '');
        $('key_pem').value = '';
        await loadTLS();
      } catch (err) {
        if (err.status === 401) return signedOut();
        showError(tlsForm, err);
      }
    });

    $('t-kind').addEventListener('change', showKindFields);
    showKindFields();
    $('snap-now').addEventListener('submit', (e) => {
      e.preventDefault();
      $('snap-now-result').textContent = 'Taking a snapshot and checking it by a test restore…';
      submitForm(e.target, async () => {
        try {
          const r = await api('POST', '/admin/api/snapshots', {});
          $('snap-now-result').textContent = 'Snapshot ' + r.snapshot.ID + ' taken and verified restorable (' +
            r.snapshot.MediaFiles + ' media files; chat paused ' + r.snapshot.PauseMillis.toFixed(1) + ' ms).';
        } catch (err) {
          $('snap-now-result').textContent = '';
          throw err;
        } finally {
          await loadSnapshots();
        }
      });
    });
    $('recovery-form').addEventListener('submit', (e) => {
      e.preventDefault();
      if ($('snap-recovery').textContent.startsWith('set') &&
          !confirm('Create a new recovery key? New snapshots will need the new key; older ones still open with the old one.')) return;
      submitForm(e.target, async () => {
        const k = await api('POST', '/admin/api/recovery-key', {});
        $('recovery-identity').textContent = k.identity;
        $('recovery-recipient').textContent = k.recipient;
        $('recovery-fingerprint').textContent = k.signing_fingerprint;
        $('sheet-server').textContent = k.server_name;
        $('sheet-date').textContent = fmtTime(k.created_at);
        drawQR(k.qr);
        $('recovery-result').hidden = false;
        await loadSnapshots();
      });
    });
    $('recovery-print').addEventListener('click', () => {
      document.body.classList.add('printing-sheet');
      window.print();
      document.body.classList.remove('printing-sheet');
    });
    $('target-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const form = e.target;
      const cfg = { name: '', kind: $('t-kind').value };
      form.querySelectorAll('input, textarea').forEach((i) => {
        if (i.closest('[hidden]') || !i.name) return;
        if (i.type === 'checkbox') { if (i.checked) cfg[i.name] = true; return; }
        if (i.value.trim() === '') return;
        cfg[i.name] = i.name === 'port' ? parseInt(i.value, 10) : i.value.trim();
      });
      $('targets-result').textContent = '';
      submitForm(form, async () => {
        renderSnapshots(await api('POST', '/admin/api/targets', cfg));
        form.reset();
        showKindFields();
        $('targets-result').textContent = 'Target ' + cfg.name + ' works and was added.';
      });
    });
    $('schedule-form').addEventListener('submit', (e) => {
      e.preventDefault();
      $('schedule-result').textContent = '';
      submitForm(e.target, async () => {
        renderSnapshots(await api('POST', '/admin/api/snapshots/schedule', {
          time: $('s-time').value.trim(), retention: $('s-retention').value.trim(),
          target: $('s-target').value, off: !$('s-on').checked,
        }));
        $('schedule-result').textContent = 'Saved.';
      });
    });

    $('set-password-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const form = e.target;
      submitForm(form, async () => {
        // The field names the server uses are "password" and "confirm".
        await api('POST', '/admin/api/password', { password: $('own-password').value, confirm: $('own-confirm').value });
        form.reset();
        signedIn(await api('GET', '/admin/api/session'));
      });
    });

    try {
      signedIn(await api('GET', '/admin/api/session'));
    } catch (err) {
      signedOut();
    }
  });
})();
