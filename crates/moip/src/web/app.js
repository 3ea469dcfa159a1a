// moip dashboard: the only script. With a NIP-07 signer (window.nostr) it logs in by signing a
// challenge, and signs each action in the browser; local users' forms post without it.
const signer = document.body.dataset.signer;
const post = (url, body) => fetch(url, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(body)});
function say(ok, text) {
  let box = document.getElementById('flash') || document.querySelector('main').insertAdjacentElement('afterbegin', document.createElement('div'));
  box.id = 'flash'; box.className = 'flash ' + (ok ? 'ok' : 'bad'); box.textContent = text;
}
if (signer === 'nip07') document.querySelectorAll('form[data-sign]').forEach(form => form.addEventListener('submit', async e => {
  e.preventDefault();
  const fields = Object.fromEntries(new FormData(form));
  const prep = await post('/api/prepare', {pubkey: document.body.dataset.pubkey, fields});
  const p = await prep.json();
  if (!prep.ok) return say(false, p.error);
  const reply = await post(p.submit, await window.nostr.signEvent(p.event));
  const r = await reply.json();
  if (reply.ok) location.reload(); else say(false, r.error || (r.verdict && r.verdict.reason) || JSON.stringify(r));
}));
const nip07 = document.getElementById('nip07-login');
if (nip07) nip07.addEventListener('click', async () => {
  if (!window.nostr) return say(false, 'No NIP-07 signer in this browser: install one, or use a key held by this node.');
  const {challenge} = await (await post('/login/challenge', {})).json();
  const event = await window.nostr.signEvent({kind: 22242, created_at: Math.floor(Date.now() / 1000), tags: [['challenge', challenge]], content: ''});
  const reply = await post('/login/nip07', event);
  if (reply.ok) location.href = '/'; else say(false, (await reply.json()).error);
});
