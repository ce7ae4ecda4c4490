// The setup wizard: one section per step, answers validated by the box at every step.
'use strict';

(() => {
  const order = ['claim', 'start', 'server', 'admin', 'tls', 'federation', 'recovery', 'summary', 'done'];
  let state = null;

  function show(step) {
    document.querySelectorAll('section[data-step]').forEach((s) => { s.hidden = s.dataset.step !== step; });
    const idx = order.indexOf(step);
    document.querySelectorAll('#progress li').forEach((li) => {
      const i = order.indexOf(li.dataset.for);
      li.classList.toggle('done', i < idx);
      if (i === idx) li.setAttribute('aria-current', 'step'); else li.removeAttribute('aria-current');
    });
    document.getElementById('loading').hidden = true;
    const section = document.querySelector('section[data-step="' + step + '"]');
    const first = section.querySelector('input:not([type=checkbox]):not([hidden] input)') || section.querySelector('h2');
    first.focus();
    document.title = section.querySelector('h2').textContent + ' — Set up Outpost';
    if (step === 'summary') fillSummary();
  }

  function fillSummary() {
    const d = state.draft || {};
    document.getElementById('sum-server').textContent = d.server_name;
    document.getElementById('sum-admin').textContent = '@' + d.admin_user + ':' + d.server_name;
    document.getElementById('sum-federation').textContent = d.federation ? 'on' : 'off';
    document.getElementById('sum-tls').textContent = d.tls_mode === 'acme' ? 'ACME CA at ' + d.acme_directory : "the box's own authority";
  }

  // resume picks the first step not answered yet.
  function resume() {
    if (!state.claimed) return show('claim');
    outpost.setCSRF(state.csrf);
    const d = state.draft || {};
    document.getElementById('server_name').value = d.server_name || state.suggestions[0] || '';
    document.getElementById('admin_user').value = d.admin_user || '';
    document.getElementById('federation').checked = !!d.federation;
    const mode = d.tls_mode || 'box-ca';
    document.querySelector('input[name=tls_mode][value="' + mode + '"]').checked = true;
    document.getElementById('acme_directory').value = d.acme_directory || '';
    showACME();
    updateExample();
    const done = new Set(state.done || []);
    if (done.size === 0) return show('start');
    for (const s of state.steps) {
      if (!done.has(s) || (s === 'admin' && !state.have_password)) return show(s);
    }
    show('summary');
  }

  async function refresh() {
    state = await outpost.api('GET', '/setup/api/state');
    const list = document.getElementById('suggestions');
    const shown = document.getElementById('suggestion-list');
    list.replaceChildren();
    shown.replaceChildren();
    state.suggestions.forEach((s, i) => {
      list.append(outpost.el('option', { value: s }));
      if (i > 0) shown.append(', ');
      shown.append(outpost.el('button', { type: 'button', class: 'small secondary', onclick: () => {
        document.getElementById('server_name').value = s;
        updateExample();
      } }, s));
    });
    if (!state.suggestions.length) shown.textContent = 'none found';
  }

  function updateExample() {
    document.getElementById('example-name').textContent = document.getElementById('server_name').value || 'chat.example.com';
  }

  function values(step) {
    switch (step) {
      case 'server': return { server_name: document.getElementById('server_name').value.trim() };
      case 'admin': return {
        admin_user: document.getElementById('admin_user').value.trim(),
        admin_password: document.getElementById('admin_password').value,
        confirm: document.getElementById('confirm').value,
      };
      case 'tls': return {
        tls_mode: document.querySelector('input[name=tls_mode]:checked').value,
        acme_directory: document.getElementById('acme_directory').value.trim(),
        acme_root_pem: document.getElementById('acme_root_pem').value,
      };
      case 'federation': return { federation: document.getElementById('federation').checked };
      case 'recovery': return { saved: document.getElementById('saved').checked };
    }
    return {};
  }

  function next(step) { return order[order.indexOf(step) + 1]; }

  function showACME() {
    document.getElementById('acme-fields').hidden = document.querySelector('input[name=tls_mode]:checked').value !== 'acme';
  }

  async function submit(step, form) {
    outpost.clearErrors(form);
    try {
      await outpost.busy(form, async () => {
        if (step === 'claim') {
          const r = await outpost.api('POST', '/setup/api/claim', { code: document.getElementById('code').value });
          outpost.setCSRF(r.csrf);
        } else if (step === 'start') {
          return show('server');
        } else if (step === 'restore') {
          return form.id === 'restore-form' ? findSnapshots() : restore();
        } else if (step === 'summary') {
          document.getElementById('finishing').hidden = false;
          try {
            const r = await outpost.api('POST', '/setup/api/complete', {});
            document.getElementById('done-user').textContent = r.user_id;
          } finally {
            document.getElementById('finishing').hidden = true;
          }
          return show('done');
        } else {
          await outpost.api('POST', '/setup/api/step', { step, values: values(step) });
        }
        await refresh();
        if (step === 'claim') return resume();
        show(next(step));
      });
    } catch (err) {
      if (err.status === 401) { // session gone: back to the code
        await refresh();
        show('claim');
      } else if (err.field && order.includes(err.field) && err.field !== step) {
        show(err.field);
      }
      const section = step === 'restore' ? form : document.querySelector('section[data-step]:not([hidden]) form');
      outpost.showError(section || form, err);
    }
  }

  // restoreTarget reads the target fields that apply to the chosen kind.
  function restoreTarget() {
    const cfg = { kind: document.getElementById('r-kind').value };
    document.querySelectorAll('#restore-form [data-kinds] input').forEach((i) => {
      if (i.closest('[hidden]') || !i.name) return;
      if (i.type === 'checkbox') { if (i.checked) cfg[i.name] = true; return; }
      if (i.value.trim() !== '') cfg[i.name] = i.name === 'port' ? parseInt(i.value, 10) : i.value.trim();
    });
    return cfg;
  }

  function showKindFields() {
    const kind = document.getElementById('r-kind').value;
    document.querySelectorAll('#restore-form [data-kinds]').forEach((d) => {
      d.hidden = !d.getAttribute('data-kinds').split(' ').includes(kind);
    });
  }

  async function findSnapshots() {
    const r = await outpost.api('POST', '/setup/api/restore/list',
      { config: restoreTarget(), recovery_key: document.getElementById('recovery_key').value });
    document.getElementById('restore-server').textContent = r.server_name;
    document.getElementById('restore-fp').textContent = r.signing_fingerprint;
    const list = document.getElementById('restore-list');
    list.replaceChildren(...r.snapshots.slice().reverse().map((e, i) => outpost.el('label', {},
      outpost.el('input', { type: 'radio', name: 'snapshot', value: e.ID, ...(i === 0 ? { checked: '' } : {}) }),
      ' ' + outpost.fmtTime(e.Time) + ' (' + e.ID + ')')));
    document.getElementById('restore-pick').hidden = false;
    list.querySelector('input').focus();
  }

  async function restore() {
    const id = document.querySelector('#restore-list input:checked').value;
    document.getElementById('restoring').hidden = false;
    try {
      await outpost.api('POST', '/setup/api/restore',
        { config: restoreTarget(), recovery_key: document.getElementById('recovery_key').value, id });
      // The box restarts into the restored state; wait until its chat server runs.
      for (let i = 0; i < 600; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        try {
          const h = await (await fetch('/healthz', { cache: 'no-store' })).json();
          if (h.homeserver === 'running') return show('restored');
        } catch (e) { /* restarting */ }
      }
      throw new Error('The box did not come back after the restore. Check its screen.');
    } finally {
      document.getElementById('restoring').hidden = true;
    }
  }

  // drawQR renders the recovery key's QR code as SVG.
  function drawQR(rows) {
    const ns = 'http://www.w3.org/2000/svg';
    const n = rows.length + 8;
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + n + ' ' + n);
    svg.setAttribute('width', '220');
    svg.setAttribute('height', '220');
    let d = 'M0 0h' + n + 'v' + n + 'h-' + n + 'z';
    const bg = document.createElementNS(ns, 'path');
    bg.setAttribute('d', d); bg.setAttribute('fill', '#fff');
    d = '';
    rows.forEach((row, y) => { [...row].forEach((c, x) => { if (c === '1') d += 'M' + (x + 4) + ' ' + (y + 4) + 'h1v1h-1z'; }); });
    const fg = document.createElementNS(ns, 'path');
    fg.setAttribute('d', d); fg.setAttribute('fill', '#000');
    svg.append(bg, fg);
    document.getElementById('recovery-qr').replaceChildren(svg);
  }

  async function makeRecoveryKey() {
    const section = document.querySelector('section[data-step=recovery]');
    const form = section.querySelector('form');
    outpost.clearErrors(form);
    try {
      const k = await outpost.api('POST', '/setup/api/recovery-key', {});
      document.getElementById('recovery-identity').textContent = k.identity;
      document.getElementById('recovery-fingerprint').textContent = k.signing_fingerprint;
      document.getElementById('sheet-server').textContent = k.server_name;
      document.getElementById('sheet-date').textContent = outpost.fmtTime(k.created_at);
      drawQR(k.qr);
      document.getElementById('recovery-result').hidden = false;
      document.getElementById('make-recovery').textContent = 'Create a different recovery key';
    } catch (err) {
      outpost.showError(form, err);
    }
  }

  document.addEventListener('DOMContentLoaded', async () => {
    document.getElementById('start-restore').addEventListener('click', () => show('restore'));
    document.getElementById('r-kind').addEventListener('change', showKindFields);
    showKindFields();
    document.getElementById('make-recovery').addEventListener('click', makeRecoveryKey);
    document.getElementById('recovery-print').addEventListener('click', () => {
      document.body.classList.add('printing-sheet');
      window.print();
      document.body.classList.remove('printing-sheet');
    });
    document.querySelectorAll('section[data-step] form').forEach((form) => {
      const step = form.closest('section').dataset.step;
      form.addEventListener('submit', (e) => { e.preventDefault(); submit(step, form); });
      const back = form.querySelector('[data-back]');
      if (back) back.addEventListener('click', () => show(step === 'restore' ? 'start' : order[order.indexOf(step) - 1]));
    });
    document.getElementById('server_name').addEventListener('input', updateExample);
    document.querySelectorAll('input[name=tls_mode]').forEach((r) => r.addEventListener('change', showACME));
    const pw = document.getElementById('admin_password');
    pw.addEventListener('input', () => {
      const s = outpost.strength(pw.value);
      document.getElementById('strength').value = s;
      document.getElementById('strength-label').textContent = 'Strength: ' + ['too short', 'weak', 'fair', 'good', 'strong'][s];
    });
    try {
      await refresh();
      resume();
    } catch (err) {
      document.getElementById('loading').textContent = err.message;
    }
  });
})();
