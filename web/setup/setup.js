// The setup wizard: one section per step, answers validated by the box at every step.
'use strict';

(() => {
  const order = ['claim', 'server', 'admin', 'tls', 'federation', 'summary', 'done'];
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
    const first = section.querySelector('input:not([type=checkbox])') || section.querySelector('h2');
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
      const section = document.querySelector('section[data-step]:not([hidden]) form');
      outpost.showError(section || form, err);
    }
  }

  document.addEventListener('DOMContentLoaded', async () => {
    document.querySelectorAll('section[data-step] form').forEach((form) => {
      const step = form.closest('section').dataset.step;
      form.addEventListener('submit', (e) => { e.preventDefault(); submit(step, form); });
      const back = form.querySelector('[data-back]');
      if (back) back.addEventListener('click', () => show(order[order.indexOf(step) - 1]));
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
