// The drawing page of `mnist-ignite serve`: draw (mouse, pen, touch) or upload, and see what the model reads.
// Every answer comes from POST /predict, which preprocesses exactly as `mnist-ignite predict` does; this page
// only sends the picture (the canvas as a PNG, or the uploaded file) and shows the JSON it gets back.
"use strict";

const INK = "#fff";
const PAPER = "#000";
const STROKE = 22; // px on the 280 px pad: about 2 of MNIST's 28 px once the digit is fitted to its 20 px box
const DEBOUNCE_MS = 150; // while drawing, ask at most this often

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seen = document.getElementById("seen");
const labelEl = document.getElementById("label");
const statusEl = document.getElementById("status");
const bars = document.getElementById("bars");

let drawing = null; // the pointer id drawing now
let last = null; // its last point
let inked = false;
let timer = null;
let asked = 0; // requests sent; an answer older than the newest shown is dropped
let shown = 0;
let answered = 0; // the newest request answered (shown, or failed)
let waiting = false; // a debounced request not sent yet
let answers = 0; // answers shown (tests wait on data-answers)

// data-settled="1": nothing is left to send and the newest request is answered (what a test waits for)
function settle() {
  document.body.dataset.settled = !waiting && answered === asked ? "1" : "0";
}

function clearPad() {
  ctx.fillStyle = PAPER;
  ctx.fillRect(0, 0, pad.width, pad.height);
  inked = false;
  clearTimeout(timer);
  waiting = false;
  answered = asked += 1; // an answer still on its way is for the old drawing
  settle();
  showNothing("Draw a digit in the box.");
}

function showNothing(message) {
  labelEl.textContent = "–";
  for (const li of bars.children) {
    li.classList.remove("top");
    li.dataset.p = "";
    li.querySelector(".fill").style.width = "0";
    li.querySelector(".p").textContent = "";
  }
  seen.getContext("2d").clearRect(0, 0, 28, 28);
  setStatus(message);
}

function setStatus(message, isError = false) {
  statusEl.textContent = message;
  statusEl.classList.toggle("error", isError);
}

function buildBars() {
  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    li.dataset.digit = String(d);
    li.innerHTML = `<span>${d}</span><span class="track"><span class="fill"></span></span><span class="p"></span>`;
    bars.appendChild(li);
  }
}

function point(event) {
  const r = pad.getBoundingClientRect();
  return { x: ((event.clientX - r.left) * pad.width) / r.width, y: ((event.clientY - r.top) * pad.height) / r.height };
}

function dot(p) {
  ctx.fillStyle = INK;
  ctx.beginPath();
  ctx.arc(p.x, p.y, STROKE / 2, 0, 2 * Math.PI);
  ctx.fill();
}

function line(a, b) {
  ctx.strokeStyle = INK;
  ctx.lineWidth = STROKE;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(a.x, a.y);
  ctx.lineTo(b.x, b.y);
  ctx.stroke();
}

function schedule(now = false) {
  clearTimeout(timer);
  waiting = true;
  settle();
  timer = setTimeout(askCanvas, now ? 0 : DEBOUNCE_MS);
}

pad.addEventListener("pointerdown", (event) => {
  if (drawing !== null) return;
  event.preventDefault();
  drawing = event.pointerId;
  pad.setPointerCapture(event.pointerId);
  last = point(event);
  dot(last);
  inked = true;
  schedule();
});

pad.addEventListener("pointermove", (event) => {
  if (event.pointerId !== drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) {
    const p = point(e);
    line(last, p);
    last = p;
  }
  schedule();
});

function endStroke(event) {
  if (event.pointerId !== drawing) return;
  drawing = null;
  last = null;
  schedule(true);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", clearPad);

document.getElementById("upload").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = ""; // the same file can be chosen again
  if (!file) return;
  clearTimeout(timer);
  waiting = true; // until the upload is sent: a drawing's answer is not this file's
  settle();
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const w = bitmap.width * scale;
    const h = bitmap.height * scale;
    ctx.fillStyle = PAPER;
    ctx.fillRect(0, 0, pad.width, pad.height);
    ctx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    inked = true;
  } catch {
    // the browser cannot show it; the server still reads it and says what it makes of it
  }
  const form = new FormData();
  form.append("file", file);
  waiting = false;
  ask(form, null, `${file.name}: `);
});

function askCanvas() {
  if (!inked) {
    waiting = false;
    settle();
    return;
  }
  pad.toBlob((blob) => {
    waiting = false;
    ask(blob, "image/png", "");
  }, "image/png");
}

async function ask(body, type, prefix) {
  const id = ++asked;
  settle();
  try {
    const headers = type ? { "Content-Type": type } : {};
    const response = await fetch("/predict?preprocessed=true", { method: "POST", body, headers });
    const answer = await response.json();
    if (id < asked || id < shown) return; // a newer drawing is on its way, or shown
    shown = id;
    if (!response.ok) {
      showNothing("");
      setStatus(prefix + (answer.error || `error ${response.status}`), true);
    } else {
      show(answer, prefix);
    }
  } catch (err) {
    if (id === asked) setStatus(`the server did not answer (${err.message})`, true);
  } finally {
    answered = Math.max(answered, id);
    settle();
  }
}

function show(answer, prefix) {
  const probs = answer.probabilities;
  labelEl.textContent = String(answer.label);
  probs.forEach((p, d) => {
    const li = bars.children[d];
    li.dataset.p = String(p);
    li.classList.toggle("top", d === answer.label);
    li.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    li.querySelector(".p").textContent = `${(100 * p).toFixed(1)}%`;
  });
  if (answer.preprocessed) drawSeen(answer.preprocessed);
  setStatus(`${prefix}a ${answer.label}, ${(100 * probs[answer.label]).toFixed(1)}% sure`);
  answers += 1;
  document.body.dataset.answers = String(answers);
}

function drawSeen(rows) {
  const image = new ImageData(28, 28);
  rows.forEach((row, y) =>
    row.forEach((v, x) => {
      const i = 4 * (y * 28 + x);
      const g = Math.round(255 * v);
      image.data[i] = image.data[i + 1] = image.data[i + 2] = g;
      image.data[i + 3] = 255;
    }),
  );
  seen.getContext("2d").putImageData(image, 0, 0);
}

async function describeModel() {
  const el = document.getElementById("model");
  try {
    const m = await (await fetch("/model")).json();
    const parts = [m.name];
    if (m.parameters != null) parts.push(`${m.parameters.toLocaleString("en")} parameters`);
    if (m.accuracy) {
      const a = m.accuracy;
      parts.push(
        `test accuracy ${a.final_test_acc.toFixed(2)}% (${a.test_images.toLocaleString("en")} test images, ` +
          `${a.epochs} epoch${a.epochs === 1 ? "" : "s"})`,
      );
    } else {
      parts.push("test accuracy unknown (no results.json beside the model)");
    }
    parts.push(m.backend === "pytorch" ? "PyTorch" : m.backend);
    el.textContent = parts.join(" · ");
    el.title = m.described;
  } catch (err) {
    el.textContent = `the model's description did not load (${err.message})`;
  }
}

buildBars();
clearPad();
describeModel();
document.body.dataset.answers = "0";
