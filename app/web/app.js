// The web recorder: signs in, records with MediaRecorder, uploads (directly, or through a
// presigned PUT when larger than the service's direct limit), lists, plays and deletes.
// Everything shown goes into the DOM as text; the auth key lives in sessionStorage only.
'use strict';

const $ = (id) => document.getElementById(id);
const KEY = 'recorder.auth';
// A provider sign-in in progress: its state, nonce and provider, until the browser comes back.
const PENDING = 'recorder.oidc';
// Preferred formats, in order; the browser's default when none is supported.
const FORMATS = ['audio/mp4;codecs=mp4a.40.2', 'audio/webm;codecs=opus', 'audio/mp4', 'audio/ogg;codecs=opus'];
const EXTENSIONS = { 'audio/mp4': 'm4a', 'audio/webm': 'webm', 'audio/ogg': 'ogg' };
const VOICE_BITRATE = 32000;

let config = { max_upload_bytes: 5 * 1024 * 1024, unverified_login: false, providers: [] };
let recording = null; // { recorder, stream, chunks, started, timer, audio }
let take = null; // { blob, type, url }
let next = null;

function auth() {
  try { return JSON.parse(sessionStorage.getItem(KEY) || 'null'); } catch { return null; }
}

function say(text) {
  $('status').textContent = text;
}

function fail(text, retry) {
  $('error').textContent = text;
  $('error').hidden = false;
  $('retry').hidden = !retry;
  $('retry').onclick = retry ? () => { clearError(); retry(); } : null;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
  $('retry').hidden = true;
}

/** An API error: the service's message, the status, and whether the network failed. */
class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = {};
  const signedIn = auth();
  if (signedIn) headers.Authorization = signedIn.user_id + ' ' + signedIn.auth_key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError('the service cannot be reached: check your connection', 0);
  }
  return answer(response.status, await response.text());
}

/** The JSON of a response, or an ApiError with the service's message. A 401 signs out. */
function answer(status, text) {
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (status >= 200 && status < 300) return json;
  if (status === 401) {
    signedOut('Your session ended (signed out, or the key expired): sign in again.');
  }
  const message = json && typeof json.error === 'string' ? json.error : 'the service answered ' + status;
  throw new ApiError(message, status);
}

function report(error, retry) {
  if (error instanceof ApiError && error.status === 401) return;
  fail(error.message || String(error), error instanceof ApiError && error.status === 0 ? retry : null);
}

function show(section) {
  for (const id of ['signin', 'recorder', 'recordings']) $(id).hidden = !section.includes(id);
}

function signedOut(message) {
  sessionStorage.removeItem(KEY);
  stopRecording(false);
  $('who').hidden = true;
  $('list').replaceChildren();
  $('player').hidden = true;
  $('player').removeAttribute('src');
  show(['signin']);
  $('demo-form').hidden = !config.unverified_login;
  $('no-signin').hidden = config.unverified_login || config.providers.length > 0;
  $('providers').replaceChildren(
    ...config.providers.map((p) => button('Sign in with ' + p.name, 'Sign in with ' + p.name, () => providerSignIn(p))),
  );
  say(message || '');
}

function signedIn() {
  const who = auth();
  $('who').textContent = 'Signed in as ' + who.user_id;
  $('who').hidden = false;
  show(['recorder', 'recordings']);
  refresh();
}

async function demoSignIn(event) {
  event.preventDefault();
  clearError();
  const name = $('demo-name').value.trim();
  try {
    const login = await api('GET', '/login?social_type=demo&social_id=' + encodeURIComponent(name));
    sessionStorage.setItem(KEY, JSON.stringify({ user_id: login.user_id, auth_key: login.auth_key }));
    signedIn();
    say('Signed in.');
  } catch (error) {
    report(error, () => demoSignIn(event));
  }
}

function random() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Send the browser to the provider (OpenID Connect implicit flow: an ID token with our nonce). */
function providerSignIn(provider) {
  const state = random();
  const nonce = random();
  sessionStorage.setItem(PENDING, JSON.stringify({ state, nonce, provider: provider.name }));
  const query = new URLSearchParams({
    response_type: 'id_token', response_mode: 'fragment', scope: 'openid',
    client_id: provider.client_id, redirect_uri: location.origin + '/', state, nonce,
  });
  const separator = provider.authorization_endpoint.includes('?') ? '&' : '?';
  location.assign(provider.authorization_endpoint + separator + query);
}

/** Back from the provider: check state and nonce, then exchange the ID token for a key. */
async function finishProviderSignIn() {
  if (!/(^#|&)(id_token|error)=/.test(location.hash)) return;
  const answer = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, '', location.pathname);
  let pending = null;
  try { pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null'); } catch { pending = null; }
  sessionStorage.removeItem(PENDING);
  if (answer.get('error')) {
    fail('The provider did not sign you in (' + answer.get('error') + '): try again.');
    return;
  }
  const token = answer.get('id_token') || '';
  if (!pending || answer.get('state') !== pending.state) {
    fail('Sign-in refused: the answer does not belong to a sign-in started here (state). Sign in again.');
    return;
  }
  let claims = null;
  try { claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))); } catch { claims = null; }
  if (!claims || claims.nonce !== pending.nonce) {
    fail('Sign-in refused: the token was not issued for this sign-in (nonce). Sign in again.');
    return;
  }
  try {
    const login = await api('POST', '/login', { provider: pending.provider, id_token: token });
    sessionStorage.setItem(KEY, JSON.stringify({ user_id: login.user_id, auth_key: login.auth_key }));
    say('Signed in.');
  } catch (error) {
    report(error);
  }
}

// ---- recording ----

function chooseType() {
  if (typeof MediaRecorder === 'undefined') return null;
  return FORMATS.find((t) => MediaRecorder.isTypeSupported(t)) || '';
}

async function startRecording() {
  clearError();
  const type = chooseType();
  if (type === null || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    fail('This browser cannot record audio: use a current Chrome, Firefox, Edge or Safari.');
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    if (error.name === 'NotAllowedError' || error.name === 'SecurityError') {
      fail('Microphone access was refused: allow the microphone for this site (the icon in the address bar), then press Record again.');
    } else if (error.name === 'NotFoundError' || error.name === 'OverconstrainedError') {
      fail('No microphone was found: connect one, then press Record again.');
    } else {
      fail('The microphone could not be opened (' + error.name + '): close other apps that use it, then try again.');
    }
    return;
  }
  const options = { audioBitsPerSecond: VOICE_BITRATE };
  if (type) options.mimeType = type;
  const recorder = new MediaRecorder(stream, options);
  const chunks = [];
  recorder.ondataavailable = (event) => { if (event.data.size > 0) chunks.push(event.data); };
  recorder.onstop = () => finishTake(recorder, chunks);
  discardTake();
  recording = { recorder, stream, chunks, started: Date.now(), timer: null, audio: level(stream) };
  recording.timer = setInterval(tick, 200);
  recorder.start();
  $('record').disabled = true;
  $('stop').disabled = false;
  $('stop').focus();
  say('Recording…');
}

/** A live input level on the meter, from an analyser on the stream. */
function level(stream) {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return null;
  const context = new Context();
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Uint8Array(analyser.fftSize);
  const draw = () => {
    if (!recording) return;
    analyser.getByteTimeDomainData(samples);
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, Math.abs(s - 128) / 128);
    $('level').value = peak;
    requestAnimationFrame(draw);
  };
  requestAnimationFrame(draw);
  return context;
}

function tick() {
  if (!recording) return;
  const seconds = Math.floor((Date.now() - recording.started) / 1000);
  $('elapsed').textContent = Math.floor(seconds / 60) + ':' + String(seconds % 60).padStart(2, '0');
}

function stopRecording(keep = true) {
  if (!recording) return;
  const { recorder, stream, timer, audio } = recording;
  clearInterval(timer);
  if (!keep) recorder.onstop = null;
  if (recorder.state !== 'inactive') recorder.stop();
  stream.getTracks().forEach((t) => t.stop());
  if (audio) audio.close();
  recording = null;
  $('level').value = 0;
  $('record').disabled = false;
  $('stop').disabled = true;
}

function finishTake(recorder, chunks) {
  const type = (recorder.mimeType || (chunks[0] && chunks[0].type) || 'audio/webm');
  const blob = new Blob(chunks, { type });
  take = { blob, type, url: URL.createObjectURL(blob) };
  $('preview').src = take.url;
  $('file-name').value = defaultName(type);
  $('take').hidden = false;
  $('upload').focus();
  say('Recorded ' + size(blob.size) + '. Upload it, or discard it.');
}

function defaultName(type) {
  const essence = type.split(';')[0].trim();
  const d = new Date();
  const pad = (n) => String(n).padStart(2, '0');
  const stamp = d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
    pad(d.getHours()) + '.' + pad(d.getMinutes()) + '.' + pad(d.getSeconds());
  return 'memo ' + stamp + '.' + (EXTENSIONS[essence] || 'audio');
}

function discardTake() {
  if (take) URL.revokeObjectURL(take.url);
  take = null;
  $('preview').removeAttribute('src');
  $('take').hidden = true;
  $('progress').hidden = true;
}

// ---- uploading ----

/** A PUT with upload progress; resolves with [status, text]. */
function put(url, headers, blob) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) $('progress').value = event.loaded / event.total;
    };
    xhr.onload = () => resolve([xhr.status, xhr.responseText]);
    xhr.onerror = () => reject(new ApiError('the upload was interrupted: check your connection', 0));
    xhr.send(blob);
  });
}

async function upload() {
  if (!take) return;
  clearError();
  const name = $('file-name').value.trim();
  if (!name) { fail('Give the recording a file name.'); return; }
  const { blob, type } = take;
  $('upload').disabled = true;
  $('progress').value = 0;
  $('progress').hidden = false;
  say('Uploading…');
  try {
    if (blob.size <= config.max_upload_bytes) {
      const who = auth();
      const headers = { Authorization: who.user_id + ' ' + who.auth_key, 'Content-Type': type };
      const [status, text] = await put('/upload/record/' + encodeURIComponent(name), headers, blob);
      answer(status, text);
    } else {
      await uploadLarge(name, type, blob);
    }
    discardTake();
    say('Uploaded ' + name + '.');
    await refresh();
  } catch (error) {
    report(error, upload);
    say('');
  } finally {
    $('upload').disabled = false;
  }
}

/** Start, PUT to the presigned URL with exactly its signed headers (one retry), complete. */
async function uploadLarge(name, type, blob) {
  const started = await api('POST', '/record/uploads', { file_name: name, content_type: type, size: blob.size });
  // The browser sets Content-Length from the Blob (a script may not), which is the size signed.
  const headers = {};
  for (const [header, value] of Object.entries(started.headers)) {
    if (header.toLowerCase() !== 'content-length' && header.toLowerCase() !== 'host') headers[header] = value;
  }
  let [status, text] = await put(started.upload_url, headers, blob).catch(() => [0, '']);
  if (status < 200 || status >= 300) {
    [status, text] = await put(started.upload_url, headers, blob);
  }
  if (status < 200 || status >= 300) {
    throw new ApiError('the storage refused the upload (' + status + '): try again', status === 0 ? 0 : status);
  }
  await api('POST', '/record/' + encodeURIComponent(started.record_id) + '/complete');
}

// ---- the list ----

function size(bytes) {
  if (bytes < 1024) return bytes + ' B';
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + ' KB';
  return (bytes / 1024 / 1024).toFixed(1) + ' MB';
}

async function refresh() {
  next = null;
  $('list').replaceChildren();
  await more();
}

async function more() {
  try {
    const page = await api('GET', '/record/list?limit=20' + (next ? '&next=' + encodeURIComponent(next) : ''));
    for (const record of page.records) $('list').append(row(record));
    next = page.next;
    $('more').hidden = !next;
    if (!$('list').children.length) say('No recordings yet.');
  } catch (error) {
    report(error, more);
  }
}

function button(text, label, onclick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.onclick = onclick;
  return b;
}

function row(record) {
  const li = document.createElement('li');
  li.dataset.id = record.id;
  const name = document.createElement('div');
  name.className = 'name';
  name.textContent = record.file_name;
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.textContent = new Date(record.created_at).toLocaleString() + ' · ' + size(record.size);
  const controls = document.createElement('div');
  controls.className = 'controls';
  controls.append(
    button('Play', 'Play ' + record.file_name, () => play(record, meta)),
    button('Download', 'Download ' + record.file_name, () => download(record)),
    button('Delete', 'Delete ' + record.file_name, () => remove(record, li)),
  );
  li.append(name, meta, controls);
  return li;
}

async function play(record, meta) {
  clearError();
  try {
    const { download_url: url } = await api('GET', '/record/' + encodeURIComponent(record.id));
    const player = $('player');
    player.hidden = false;
    player.onloadedmetadata = () => {
      if (Number.isFinite(player.duration)) {
        meta.textContent = new Date(record.created_at).toLocaleString() + ' · ' + size(record.size) +
          ' · ' + player.duration.toFixed(1) + ' s';
      }
    };
    player.src = url;
    await player.play();
    say('Playing ' + record.file_name + '.');
  } catch (error) {
    report(error, () => play(record, meta));
  }
}

async function download(record) {
  clearError();
  try {
    const { download_url: url } = await api('GET', '/record/' + encodeURIComponent(record.id));
    const link = document.createElement('a');
    link.href = url;
    link.rel = 'noopener';
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    report(error, () => download(record));
  }
}

async function remove(record, li) {
  if (!window.confirm('Delete ' + record.file_name + '?')) return;
  clearError();
  try {
    await api('DELETE', '/record/' + encodeURIComponent(record.id));
  } catch (error) {
    // Not found: deleted already (a retry whose first answer was lost, or another device).
    if (!(error instanceof ApiError) || error.status !== 404) { report(error, () => remove(record, li)); return; }
  }
  li.remove();
  say('Deleted ' + record.file_name + '.');
}

async function logout(everywhere) {
  clearError();
  try {
    await api('POST', everywhere ? '/logout?all=true' : '/logout');
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) { report(error); return; }
  }
  signedOut(everywhere ? 'Signed out everywhere.' : 'Signed out.');
}

function wire() {
  $('demo-form').addEventListener('submit', demoSignIn);
  $('record').onclick = startRecording;
  $('stop').onclick = () => stopRecording(true);
  $('upload').onclick = upload;
  $('discard').onclick = () => { discardTake(); say('Discarded.'); };
  $('more').onclick = more;
  $('logout').onclick = () => logout(false);
  $('logout-all').onclick = () => logout(true);
}

async function start() {
  try {
    config = await api('GET', '/config');
  } catch (error) {
    report(error, start);
    return;
  }
  await finishProviderSignIn();
  if (auth()) signedIn(); else signedOut($('status').textContent);
  document.body.dataset.ready = 'true';
}

wire();
start();
