// The kws page: live view, thresholds, a dropped file, your own word.
// The server (kws/web/server.py) runs the detectors; this page only captures, draws and asks.
// Messages of the live view: kws/web/live.py.

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");

// Every request carries the token (off localhost the server wants it; the cookie may be blocked).
function url(path, params = {}) {
  const query = new URLSearchParams(params);
  if (token) query.set("token", token);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

async function api(path, { method = "GET", params = {}, json, body } = {}) {
  const options = { method };
  if (json !== undefined) {
    options.body = JSON.stringify(json);
    options.headers = { "Content-Type": "application/json" };
  } else if (body !== undefined) {
    options.body = body;
  }
  const response = await fetch(url(path, params), options);
  const data = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(data.error || `${response.status}`);
  return data;
}

const state = {
  models: [],
  model: null,      // the name of the model the live view uses
  thresholds: {},   // this connection's, as the sliders hold them
  socket: null,
  audio: null,      // { context, source, analyser, node, stream }
  takeBlocks: null, // Int16Array blocks while a take is recorded
  takeUrls: {},     // take name -> object URL, for playback of this session's takes
};

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

// -- models and word bars --------------------------------------------------------------------

async function loadState(select) {
  const data = await api("/api/state");
  state.models = data.models;
  $("folder").textContent = data.folder;
  const chosen = select || state.model || data.models[0].name;
  $("model").replaceChildren(...data.models.map((m) => new Option(`${m.name} (${m.words.join(", ")})`, m.name)));
  $("model").value = chosen;
  useModel(chosen);
  showEnrolment(data.enroll);
  return data;
}

function modelNamed(name) {
  return state.models.find((m) => m.name === name) || state.models[0];
}

function useModel(name) {
  const model = modelNamed(name);
  state.model = model.name;
  state.thresholds = { ...model.thresholds };
  drawWords(model.words);
  if (state.socket && state.socket.readyState === WebSocket.OPEN && state.audio) {
    state.socket.send(JSON.stringify({ type: "start", rate: state.audio.context.sampleRate, format: "s16",
                                       model: state.model }));
  }
}

function drawWords(words) {
  $("words").replaceChildren(...words.map((word) => {
    const row = document.createElement("div");
    row.className = "word";
    row.dataset.word = word;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = word;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.className = "fill";
    const mark = document.createElement("div");
    mark.className = "mark";
    bar.append(fill, mark);
    const slider = document.createElement("input");
    Object.assign(slider, { type: "range", min: "0.01", max: "1", step: "0.01", id: `threshold-${word}` });
    slider.setAttribute("aria-label", `threshold of ${word}`);
    slider.value = state.thresholds[word];
    const value = document.createElement("output");
    value.textContent = Number(slider.value).toFixed(2);
    mark.style.left = `${slider.value * 100}%`;
    slider.addEventListener("input", () => {
      state.thresholds[word] = Number(slider.value);
      value.textContent = Number(slider.value).toFixed(2);
      mark.style.left = `${slider.value * 100}%`;
      $("saved").textContent = "";
      sendThresholds({ [word]: Number(slider.value) });
    });
    row.append(name, bar, slider, value);
    return row;
  }));
}

function sendThresholds(thresholds) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN && state.audio) {
    state.socket.send(JSON.stringify({ type: "thresholds", thresholds }));
  }
}

function showScores(scores) {
  for (const row of $("words").children) {
    const score = scores[row.dataset.word];
    if (score === undefined) continue;
    const fill = row.querySelector(".fill");
    fill.style.width = `${Math.min(1, score) * 100}%`;
    fill.classList.toggle("over", score >= state.thresholds[row.dataset.word]);
  }
}

$("model").addEventListener("change", () => useModel($("model").value));

$("save").addEventListener("click", async () => {
  try {
    const saved = await api("/api/save", { method: "POST", json: { model: state.model, thresholds: state.thresholds } });
    $("saved").textContent = `saved to ${saved.saved}: ${saved.use}`;
    await loadState(state.model);
  } catch (err) {
    $("saved").textContent = `not saved: ${err.message}`;
  }
});

// -- the live view ----------------------------------------------------------------------------

function logLine(list, entry, cls) {
  const item = document.createElement("li");
  item.className = cls;
  item.dataset.word = entry.word;
  item.dataset.time = entry.time;
  const clock = new Date().toLocaleTimeString();
  item.textContent = cls === "near"
    ? `${entry.time.toFixed(2)} s  ${entry.word}  near miss ${entry.score.toFixed(2)} < ${entry.threshold.toFixed(2)}`
    : `${entry.time.toFixed(2)} s  ${entry.word}  ${entry.score.toFixed(2)}`;
  if (list === $("log")) item.title = clock;
  list.prepend(item);
  while (list.children.length > 200) list.lastChild.remove();
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}${url("/ws")}`);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    socket.send(JSON.stringify({ type: "start", rate: state.audio.context.sampleRate, format: "s16", model: state.model }));
  };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "ready") {
      state.thresholds = { ...message.thresholds, ...pickThresholds(message.words) };
      sendThresholds(state.thresholds);
      $("rate").textContent = `${message.rate} Hz from the microphone, resampled to ${message.model_rate} Hz for ${message.model};`;
      status(`listening with ${message.model}`);
    } else if (message.type === "detection") {
      logLine($("log"), message, "hit");
    } else if (message.type === "near_miss") {
      logLine($("log"), message, "near");
    } else if (message.type === "scores") {
      showScores(message.scores);
      $("heard").textContent = `heard ${message.time.toFixed(1)} s`;
      $("heard").dataset.time = message.time;
    } else if (message.type === "error") {
      status(`the server closed the live view: ${message.message}`, true);
    }
  };
  socket.onclose = () => {
    if (state.socket === socket) {
      state.socket = null;
      if (!$("status").classList.contains("error")) status("live view closed");
    }
  };
  state.socket = socket;
}

// The sliders' values, for the words they show (a model switch keeps what was chosen).
function pickThresholds(words) {
  const out = {};
  for (const row of $("words").children) {
    if (words.includes(row.dataset.word)) out[row.dataset.word] = Number(row.querySelector("input").value);
  }
  return out;
}

async function startMicrophone() {
  if (state.audio) return;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const context = new AudioContext();
  await context.audioWorklet.addModule("static/capture.js");
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "kws-capture");
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  analyser.smoothingTimeConstant = 0;
  analyser.minDecibels = -85;  // a quiet room's floor dark, speech bright
  source.connect(node);
  source.connect(analyser);
  node.port.onmessage = (event) => onBlock(event.data);
  state.audio = { context, source, analyser, node, stream };
  connect();
  $("mic").textContent = "Stop microphone";
  requestAnimationFrame(drawSpectrogram);
}

function stopMicrophone() {
  if (!state.audio) return;
  state.audio.stream.getTracks().forEach((t) => t.stop());
  state.audio.context.close();
  state.audio = null;
  if (state.socket) state.socket.close();
  state.socket = null;
  $("mic").textContent = "Start microphone";
  status("microphone off");
}

function onBlock(buffer) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(buffer);
  const samples = new Int16Array(buffer);
  let sum = 0;
  for (const s of samples) sum += s * s;
  const db = 10 * Math.log10(sum / samples.length / 32768 / 32768 + 1e-12);
  $("level").value = Math.max(-60, db);
  if (state.takeBlocks) {
    state.takeBlocks.push(samples);
    const seconds = state.takeBlocks.length * samples.length / state.audio.context.sampleRate;
    if (seconds >= maxTakeSeconds - 0.5) stopTake();
  }
}

$("mic").addEventListener("click", async () => {
  if (state.audio) return stopMicrophone();
  try {
    await startMicrophone();
  } catch (err) {
    status(`no microphone: ${err.message} (a browser allows one on https or localhost only)`, true);
  }
});

// A scrolling spectrogram: a column per frame, 0 to 8 kHz (what the model hears), newest at the right.
function drawSpectrogram() {
  if (!state.audio) return;
  const canvas = $("spectrogram");
  const g = canvas.getContext("2d");
  const { analyser, context } = state.audio;
  const bins = new Uint8Array(analyser.frequencyBinCount);
  analyser.getByteFrequencyData(bins);
  const top = Math.min(bins.length, Math.round(8000 / (context.sampleRate / analyser.fftSize)));
  const step = 2;
  g.drawImage(canvas, -step, 0);
  for (let y = 0; y < canvas.height; y++) {
    const value = bins[Math.floor((1 - y / canvas.height) * (top - 1))] / 255;
    g.fillStyle = colour(value);
    g.fillRect(canvas.width - step, y, step, 1);
  }
  requestAnimationFrame(drawSpectrogram);
}

function colour(v) {  // near black -> teal -> yellow
  const clamp = (x) => Math.round(255 * Math.min(1, Math.max(0, x)));
  return `rgb(${clamp(2 * v - 0.8)},${clamp(1.4 * v - 0.15)},${40 + Math.round(160 * Math.min(1, 2 * v) * (1 - v))})`;
}

// -- a dropped file ---------------------------------------------------------------------------

let maxUpload = 64 << 20;
let maxTakeSeconds = 10;

async function replayFile(file) {
  if (file.size > maxUpload) {
    $("file-status").textContent = `${file.name}: ${file.size} bytes, over the ${maxUpload}-byte limit`;
    return;
  }
  $("file-status").textContent = `${file.name}: replaying…`;
  try {
    const result = await api("/api/replay", {
      method: "POST", body: file,
      params: { model: state.model, name: file.name, thresholds: JSON.stringify(state.thresholds) },
    });
    drawWaveform(result);
    $("file-log").replaceChildren();
    for (const d of result.detections) logLine($("file-log"), d, "hit");  // newest at the top, as live
    $("file-status").textContent = `${file.name}: ${result.seconds.toFixed(1)} s, ` +
      `${result.detections.length} detection(s) with ${result.model}, as kws replay finds them`;
  } catch (err) {
    $("file-status").textContent = `${file.name}: ${err.message}`;
  }
}

function drawWaveform(result) {
  const canvas = $("waveform");
  const g = canvas.getContext("2d");
  g.fillStyle = "#10151c";
  g.fillRect(0, 0, canvas.width, canvas.height);
  const middle = canvas.height / 2;
  const peaks = result.peaks;
  const audioSeconds = result.seconds;
  const shown = Math.max(audioSeconds, ...result.detections.map((d) => d.time));  // the end's silence too
  const x = (seconds) => (seconds / shown) * canvas.width;
  g.fillStyle = "#6fa8dc";
  peaks.forEach(([low, high], i) => {
    const left = x((i / peaks.length) * audioSeconds);
    g.fillRect(left, middle - high * middle, Math.max(1, x(audioSeconds / peaks.length)), (high - low) * middle || 1);
  });
  g.font = "12px sans-serif";
  for (const d of result.detections) {
    g.fillStyle = "#ffd966";
    g.fillRect(x(d.time) - 1, 0, 2, canvas.height);
    g.fillText(d.word, Math.min(x(d.time) + 3, canvas.width - 40), 14);
  }
}

$("pick").addEventListener("change", () => $("pick").files[0] && replayFile($("pick").files[0]));
$("drop").addEventListener("dragover", (event) => { event.preventDefault(); $("drop").classList.add("over"); });
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (event) => {
  event.preventDefault();
  $("drop").classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) replayFile(file);
});

// -- your own word ----------------------------------------------------------------------------

function word() {
  return $("word").value.trim().toLowerCase();
}

async function listTakes() {
  if (!word()) return $("takes").replaceChildren();
  try {
    showTakes((await api("/api/takes", { params: { word: word() } })).takes);
  } catch (err) {
    $("stage").textContent = err.message;
  }
}

function showTakes(takes) {
  $("takes").replaceChildren(...takes.map((take) => {
    const item = document.createElement("li");
    item.append(`${take.name} `);
    if (state.takeUrls[`${word()}/${take.name}`]) {
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.src = state.takeUrls[`${word()}/${take.name}`];
      item.append(audio);
    }
    const remove = document.createElement("button");
    remove.textContent = "delete";
    remove.addEventListener("click", async () => {
      showTakes((await api("/api/takes", { method: "DELETE", params: { word: word(), name: take.name } })).takes);
    });
    item.append(remove);
    return item;
  }));
}

$("word").addEventListener("change", listTakes);

$("record").addEventListener("click", async () => {
  if (state.takeBlocks) return stopTake();
  if (!word()) return ($("stage").textContent = "type the word first");
  try {
    await startMicrophone();
  } catch (err) {
    return status(`no microphone: ${err.message}`, true);
  }
  state.takeBlocks = [];
  $("record").textContent = "Stop the take";
  $("record").classList.add("recording");
});

async function stopTake() {
  const blocks = state.takeBlocks;
  state.takeBlocks = null;
  $("record").textContent = "Record a take";
  $("record").classList.remove("recording");
  if (!blocks || !blocks.length) return;
  const wav = wavFile(blocks, state.audio.context.sampleRate);
  try {
    const result = await api("/api/takes", { method: "POST", params: { word: word() }, body: wav });
    state.takeUrls[`${result.word}/${result.take.name}`] = URL.createObjectURL(wav);
    showTakes(result.takes);
  } catch (err) {
    $("stage").textContent = `take not kept: ${err.message}`;
  }
}

function wavFile(blocks, rate) {  // 16-bit mono PCM WAV
  const frames = blocks.reduce((n, b) => n + b.length, 0);
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, s) => [...s].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); header.setUint32(4, 36 + frames * 2, true); text(8, "WAVE");
  text(12, "fmt "); header.setUint32(16, 16, true); header.setUint16(20, 1, true); header.setUint16(22, 1, true);
  header.setUint32(24, rate, true); header.setUint32(28, rate * 2, true); header.setUint16(32, 2, true);
  header.setUint16(34, 16, true); text(36, "data"); header.setUint32(40, frames * 2, true);
  return new Blob([header, ...blocks], { type: "audio/wav" });
}

function showEnrolment(enroll) {
  const blocked = Boolean(enroll.blocker);
  $("enroll-blocker").hidden = !blocked;
  $("enroll-blocker").textContent = enroll.blocker || "";
  $("enroll").disabled = blocked;
  if (enroll.job) showJob(enroll.job);
}

let polling = null;

function showJob(job) {
  $("progress").value = Math.max(job.state === "running" ? $("progress").value : 0, job.done);
  $("stage").textContent = job.state === "failed" ? `enrolment failed: ${job.error}`
    : job.state === "done" ? `${job.word}: enrolled, model ${job.model}`
    : job.state === "cancelled" ? "enrolment cancelled" : `${job.word}: ${job.stage}`;
  $("cancel").hidden = job.state !== "running";
  $("enroll").disabled = job.state === "running" || !$("enroll-blocker").hidden;
}

async function follow() {
  const { job } = await api("/api/enroll");
  if (!job) return;
  showJob(job);
  if (job.state === "running") {
    polling = setTimeout(follow, 500);
  } else if (job.state === "done") {
    await loadState(job.model);  // the live view switches to the new model
    status(`listening with ${job.model}, your word`);
  }
}

$("enroll").addEventListener("click", async () => {
  if (!word()) return ($("stage").textContent = "type the word first");
  try {
    $("progress").value = 0;
    showJob((await api("/api/enroll", { method: "POST", json: { word: word(), budget: $("budget").value } })).job);
    clearTimeout(polling);
    follow();
  } catch (err) {
    $("stage").textContent = err.message;
  }
});

$("cancel").addEventListener("click", async () => {
  try {
    showJob((await api("/api/enroll", { method: "DELETE" })).job);
  } catch (err) {
    $("stage").textContent = err.message;
  }
});

// -- start ------------------------------------------------------------------------------------

loadState().then((data) => {
  maxUpload = data.limits.upload_bytes;
  maxTakeSeconds = data.limits.take_seconds;
  status("press Start microphone, or drop a file");
  if (data.enroll.job && data.enroll.job.state === "running") follow();
}).catch((err) => status(`cannot reach kws: ${err.message}`, true));
