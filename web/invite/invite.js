// Invitation redemption. The code may arrive in the URL fragment (never sent to servers or
// logged); it is moved into the form and removed from the address bar.
'use strict';

document.addEventListener('DOMContentLoaded', () => {
  const $ = (id) => document.getElementById(id);
  if (location.hash.length > 1) {
    $('code').value = decodeURIComponent(location.hash.slice(1));
    history.replaceState(null, '', location.pathname);
    $('username').focus();
  } else {
    $('code').focus();
  }
  const form = $('redeem');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    outpost.clearErrors(form);
    if ($('password').value !== $('confirm').value) {
      return outpost.showError(form, Object.assign(new Error('The two passwords differ; type the same password twice.'), { field: 'confirm' }));
    }
    try {
      const r = await outpost.busy(form, () => outpost.api('POST', '/invite/api/redeem', {
        code: $('code').value, username: $('username').value.trim(), password: $('password').value,
      }));
      $('user-id').textContent = r.user_id;
      $('form-card').hidden = true;
      $('done').hidden = false;
    } catch (err) {
      outpost.showError(form, err);
    }
  });
});
