// hgj-gateway dashboard pages: API access with the gateway's tokens, shared by the live page
// (app.js) and the history page (history.js). Plain JavaScript, loaded before the page's own
// script. The tokens live in this tab's sessionStorage: `hgj_token` (viewer, asked for by the
// dialog below when the API answers 401) and `hgj_operator_token` (typed into an action's form).
'use strict';

(() => {
  const TEXT = {
    zh: { title: '需要访问令牌', token: '令牌', ok: '确定' },
    en: { title: 'Access token required', token: 'Token', ok: 'OK' },
  };

  function viewerToken() { return sessionStorage.getItem('hgj_token') || ''; }
  function operatorToken() { return sessionStorage.getItem('hgj_operator_token') || ''; }

  // The dialog is built here, once, so both pages ask the same way.
  function dialog() {
    let dlg = document.getElementById('token-dialog');
    if (dlg) return dlg;
    dlg = document.createElement('dialog');
    dlg.id = 'token-dialog';
    const form = document.createElement('form');
    form.method = 'dialog';
    form.id = 'token-form';
    const h = document.createElement('h3');
    const label = document.createElement('label');
    const span = document.createElement('span');
    const input = document.createElement('input');
    input.id = 'token-input';
    input.type = 'password';
    input.autocomplete = 'off';
    input.required = true;
    label.append(span, input);
    const buttons = document.createElement('div');
    buttons.className = 'buttons';
    const ok = document.createElement('button');
    ok.type = 'submit';
    ok.className = 'primary';
    buttons.append(ok);
    form.append(h, label, buttons);
    dlg.append(form);
    document.body.append(dlg);
    return dlg;
  }

  // One prompt at a time: the requests that got 401 together wait for the same answer.
  let prompt = null;
  function askToken() {
    if (prompt) return prompt;
    const dlg = dialog();
    // In the language the page shows now (both pages keep it in localStorage).
    const text = TEXT[localStorage.getItem('hgj_lang') === 'en' ? 'en' : 'zh'];
    dlg.querySelector('h3').textContent = text.title;
    dlg.querySelector('label span').textContent = text.token;
    dlg.querySelector('button').textContent = text.ok;
    prompt = new Promise((resolve) => {
      dlg.addEventListener('close', () => {
        const v = document.getElementById('token-input').value.trim();
        if (v) sessionStorage.setItem('hgj_token', v);
        prompt = null;
        resolve();
      }, { once: true });
      dlg.showModal();
    });
    return prompt;
  }

  // fetch with the best token this tab has; on 401 asks for the viewer token once and retries.
  // options: fetch's, plus `token` (send this one instead) and `noPrompt` (a 401 is an error).
  // Returns the JSON body; throws an Error with `status` when the answer is not 2xx.
  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    const token = opts.token !== undefined ? opts.token : (operatorToken() || viewerToken());
    if (token) opts.headers.Authorization = 'Bearer ' + token;
    const res = await fetch(path, opts);
    if (res.status === 401 && !opts.noPrompt) {
      sessionStorage.removeItem('hgj_token');
      await askToken();
      return api(path, Object.assign({}, options, { noPrompt: true }));
    }
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const err = new Error((body && body.error) || res.statusText);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  window.hgjAuth = { viewerToken, operatorToken, askToken, api };
})();
