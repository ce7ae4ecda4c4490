// Shared helpers for Outpost's own pages. Plain JS, no dependencies, nothing from outside.
'use strict';

const outpost = (() => {
  let csrf = '';

  // api calls a JSON endpoint; failures throw an Error with .status and .field.
  async function api(method, path, body) {
    const opts = { method, headers: { 'Accept': 'application/json' }, credentials: 'same-origin' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    if (method !== 'GET' && csrf) opts.headers['X-Outpost-CSRF'] = csrf;
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      const err = new Error('The box did not answer. Check the network connection and try again.');
      err.status = 0;
      throw err;
    }
    let data = {};
    try { data = await resp.json(); } catch (e) { /* empty or not JSON */ }
    if (!resp.ok) {
      const err = new Error(data.error || ('The box answered with HTTP ' + resp.status + '.'));
      err.status = resp.status;
      err.field = data.field || '';
      throw err;
    }
    return data;
  }

  // showError puts a message next to a field (or in the form's general error slot).
  function showError(form, err) {
    clearErrors(form);
    const field = err.field && form.querySelector('[name="' + err.field + '"]');
    const slot = (field && form.querySelector('#' + field.id + '-error')) || form.querySelector('.error[data-general]');
    const msg = err.message.replace(/^[a-z_]+: /, '');
    if (slot) slot.textContent = msg.charAt(0).toUpperCase() + msg.slice(1);
    if (field) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
    }
  }

  function clearErrors(form) {
    form.querySelectorAll('.error').forEach((e) => { e.textContent = ''; });
    form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
  }

  // busy disables a form's buttons while a request runs.
  async function busy(form, fn) {
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    form.setAttribute('aria-busy', 'true');
    try {
      return await fn();
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      form.removeAttribute('aria-busy');
    }
  }

  // strength estimates a password's strength for the meter: 0 (weak) to 4 (strong). The
  // server's rule is only the minimum length; this nudges towards long passphrases.
  function strength(pw) {
    if (pw.length < 10) return 0;
    let classes = 0;
    [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/].forEach((re) => { if (re.test(pw)) classes++; });
    let bits = pw.length * Math.log2(Math.max(10, [0, 26, 36, 62, 94][classes]));
    if (/^(.)\1+$/.test(pw) || /password|123456|qwerty|outpost/i.test(pw)) bits /= 3;
    if (bits < 50) return 1;
    if (bits < 65) return 2;
    if (bits < 80) return 3;
    return 4;
  }

  function fmtTime(s) {
    if (!s) return '';
    const d = new Date(s);
    return isNaN(d) ? s : d.toLocaleString();
  }

  function fmtBytes(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
  }

  // el builds an element with text content (never innerHTML: names come from users).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === 'onclick') e.addEventListener('click', v);
      else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? '' : v);
    });
    children.flat().forEach((c) => e.append(c instanceof Node ? c : document.createTextNode(String(c))));
    return e;
  }

  return { api, showError, clearErrors, busy, strength, fmtTime, fmtBytes, el, setCSRF: (t) => { csrf = t; } };
})();
