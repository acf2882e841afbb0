// kve dashboard: copy buttons and confirmation dialogs.
//
// Every page works without this file: a token's copy button then shows the
// token on a page of its own, and a revoke or delete link leads to a
// confirmation page. Loaded from kve's own origin only (CSP default-src
// 'self'); it never builds HTML from strings, it sets textContent.
'use strict';

(function () {
  // say puts a short message into the status line (role=status) next to
  // a copy button, where screen readers announce it.
  function say(container, text) {
    const out = container && container.querySelector('.copy-status');
    if (out) {
      out.textContent = text;
    }
  }

  // legacyCopy is the fallback for browsers without the asynchronous
  // clipboard API (or pages not in a secure context).
  function legacyCopy(text) {
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.className = 'offscreen';
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch (e) {
      ok = false;
    }
    area.remove();
    return ok;
  }

  // writeClipboard copies the text a promise resolves to. A ClipboardItem
  // built from the promise keeps the click's permission to write across a
  // fetch (Safari insists on it); writeText and the legacy path follow.
  async function writeClipboard(textPromise) {
    if (window.ClipboardItem && navigator.clipboard && navigator.clipboard.write) {
      try {
        const blob = textPromise.then((t) => new Blob([t], { type: 'text/plain' }));
        await navigator.clipboard.write([new ClipboardItem({ 'text/plain': blob })]);
        return true;
      } catch (e) {
        // fall through to the next way
      }
    }
    const text = await textPromise;
    if (navigator.clipboard && navigator.clipboard.writeText) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (e) {
        // fall through to the legacy way
      }
    }
    return legacyCopy(text);
  }

  // showForManualCopy puts the text, selected, next to the button when no
  // way of copying worked.
  function showForManualCopy(container, text) {
    let input = container.querySelector('input.manual-copy');
    if (!input) {
      input = document.createElement('input');
      input.type = 'text';
      input.readOnly = true;
      input.className = 'manual-copy mono';
      input.setAttribute('aria-label', 'Value to copy');
      container.append(input);
    }
    input.value = text;
    input.focus();
    input.select();
  }

  async function copy(container, textPromise) {
    say(container, 'Copying…');
    let text;
    textPromise = textPromise.then((t) => (text = t));
    try {
      if (await writeClipboard(textPromise)) {
        say(container, 'Copied');
        return;
      }
    } catch (e) {
      say(container, 'Could not copy: ' + e.message);
      return;
    }
    showForManualCopy(container, text);
    say(container, 'Press Ctrl+C (⌘C) to copy');
  }

  // reveal asks kve for a token's value, as text. kve records the reveal
  // in the audit log before it answers.
  function reveal(form) {
    return fetch(form.action, {
      method: 'POST',
      headers: { Accept: 'text/plain', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(new FormData(form)),
      credentials: 'same-origin',
      redirect: 'manual',
    }).then((res) => {
      if (res.type === 'opaqueredirect' || res.status === 401) {
        throw new Error('your session ended, reload the page');
      }
      const type = res.headers.get('Content-Type') || '';
      if (!res.ok || !type.startsWith('text/plain')) {
        throw new Error('kve answered ' + res.status);
      }
      return res.text();
    });
  }

  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-copy')) {
      return;
    }
    event.preventDefault();
    copy(form, reveal(form));
  });

  document.addEventListener('click', (event) => {
    const button = event.target instanceof Element && event.target.closest('[data-copy-from]');
    if (!button) {
      return;
    }
    const source = document.getElementById(button.dataset.copyFrom);
    if (source) {
      copy(button.parentElement, Promise.resolve('value' in source ? source.value : source.textContent));
    }
  });

  // ask opens the page's confirmation dialog for the element that asks
  // (its data-confirm is the question), posting fields to action. The
  // dialog is modal: focus stays in it, Escape or Cancel closes it, and
  // focus returns to back.
  function ask(dialog, from, action, fields, back) {
    const form = dialog.querySelector('form');
    for (const old of form.querySelectorAll('input.carried')) {
      old.remove();
    }
    for (const [name, value] of fields) {
      const input = document.createElement('input');
      input.type = 'hidden';
      input.className = 'carried';
      input.name = name;
      input.value = value;
      form.append(input);
    }
    dialog.querySelector('#confirm-text').textContent = from.dataset.confirm;
    dialog.querySelector('#confirm-title').textContent = (from.dataset.confirmButton || 'Confirm') + '?';
    dialog.querySelector('#confirm-button').textContent = from.dataset.confirmButton || 'Confirm';
    form.action = action;
    dialog.addEventListener('close', () => back.focus(), { once: true });
    dialog.showModal();
  }

  function confirmDialog() {
    const dialog = document.getElementById('confirm');
    return dialog && typeof dialog.showModal === 'function' ? dialog : null;
  }

  // A link with data-confirm asks, then posts to data-confirm-action.
  document.addEventListener('click', (event) => {
    const link = event.target instanceof Element && event.target.closest('a[data-confirm]');
    const dialog = confirmDialog();
    if (!link || !dialog) {
      return;
    }
    event.preventDefault();
    ask(dialog, link, link.dataset.confirmAction, [], link);
  });

  // A form with data-confirm asks, then posts its own fields with
  // confirm=yes; without this script kve answers the form with a
  // confirmation page instead.
  document.addEventListener('submit', (event) => {
    const form = event.target;
    const dialog = confirmDialog();
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-confirm') || !dialog) {
      return;
    }
    event.preventDefault();
    const fields = [...new FormData(form)].filter(([, value]) => typeof value === 'string');
    fields.push(['confirm', 'yes']);
    ask(dialog, form, form.action, fields, event.submitter || form);
  });

  // Escape closes an open organization switcher.
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') {
      return;
    }
    for (const menu of document.querySelectorAll('details.switcher[open]')) {
      menu.open = false;
      menu.querySelector('summary').focus();
    }
  });
})();
