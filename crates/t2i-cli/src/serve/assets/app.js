// t2i web app: plain JavaScript over the JSON API (see README, "t2i serve").
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let limits = { max_images: 16 };
// layout in fractions of the image: box [x, y, w, h]; keypoints {part: [x, y]}
let box = [0.25, 0.25, 0.5, 0.5];
let keypoints = {};
let completed = {};
let drag = null;

function current() {
  return models.find((m) => m.id === $("model").value);
}

function status(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(path, body) {
  const r = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let data;
  try {
    data = await r.json();
  } catch (e) {
    throw new Error(`HTTP ${r.status}`);
  }
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

function busy(on) {
  for (const b of document.querySelectorAll("button")) b.disabled = on;
}

// ---- layout canvas ------------------------------------------------------

function drawLayout() {
  const c = $("layout-canvas");
  const ctx = c.getContext("2d");
  const s = c.width;
  ctx.clearRect(0, 0, s, s);
  const m = current();
  if (!m) return;
  if (m.controls.boxes) {
    ctx.fillStyle = "rgba(43,108,223,0.18)";
    ctx.strokeStyle = "#2b6cdf";
    ctx.lineWidth = 2;
    ctx.fillRect(box[0] * s, box[1] * s, box[2] * s, box[3] * s);
    ctx.strokeRect(box[0] * s, box[1] * s, box[2] * s, box[3] * s);
  }
  if (m.controls.keypoints) {
    drawKeypoints(ctx, s, keypoints, completed);
  }
}

function colour(i, n) {
  return `hsl(${Math.round((360 * i) / Math.max(n, 1))},80%,45%)`;
}

function drawKeypoints(ctx, s, given, filled) {
  const m = current();
  m.parts.forEach((p, i) => {
    const g = given[p];
    const f = filled[p];
    const pt = g || f;
    if (!pt) return;
    ctx.beginPath();
    ctx.arc(pt[0] * s, pt[1] * s, g ? 6 : 5, 0, 2 * Math.PI);
    ctx.strokeStyle = colour(i, m.parts.length);
    ctx.lineWidth = 2;
    if (g) {
      ctx.fillStyle = colour(i, m.parts.length);
      ctx.fill();
    }
    ctx.stroke();
  });
}

function pos(ev) {
  const c = $("layout-canvas");
  const r = c.getBoundingClientRect();
  const cl = (v) => Math.min(1, Math.max(0, v));
  return [cl((ev.clientX - r.left) / r.width), cl((ev.clientY - r.top) / r.height)];
}

function nearestKeypoint(p) {
  let best = null;
  let bestD = 0.04;
  for (const [name, q] of Object.entries(keypoints)) {
    const d = Math.hypot(q[0] - p[0], q[1] - p[1]);
    if (d < bestD) {
      best = name;
      bestD = d;
    }
  }
  return best;
}

function onDown(ev) {
  const m = current();
  if (!m) return;
  const p = pos(ev);
  $("layout-canvas").setPointerCapture(ev.pointerId);
  if (m.controls.boxes) {
    drag = { kind: "box", start: p };
  } else if (m.controls.keypoints) {
    const near = nearestKeypoint(p);
    const part = near || $("part").value;
    keypoints[part] = p;
    completed = {};
    drag = { kind: "point", part };
    drawLayout();
  }
}

function onMove(ev) {
  if (!drag) return;
  const p = pos(ev);
  if (drag.kind === "box") {
    const x0 = Math.min(drag.start[0], p[0]);
    const y0 = Math.min(drag.start[1], p[1]);
    const w = Math.abs(p[0] - drag.start[0]);
    const h = Math.abs(p[1] - drag.start[1]);
    if (w > 0.02 && h > 0.02) box = [x0, y0, w, h];
  } else {
    keypoints[drag.part] = p;
  }
  drawLayout();
}

function onUp() {
  drag = null;
}

// ---- model choice -------------------------------------------------------

function showModel() {
  const m = current();
  if (!m) return;
  const c = m.controls;
  const can = Object.entries(c).filter(([, v]) => v).map(([k]) => k.replace("_", " "));
  $("model-info").textContent =
    `${m.family}, preset ${m.preset || "?"}, ${m.data}, ${m.image_size}x${m.image_size}` +
    (can.length ? ` - ${can.join(", ")}` : "");
  $("layout").hidden = !(c.boxes || c.keypoints);
  $("keypoint-tools").hidden = !c.keypoints;
  $("layout-help").textContent = c.boxes
    ? "Drag on the canvas to place the object's box."
    : "Click to place the chosen part; drag a point to move it. Unplaced parts are proposed by the keypoint generator.";
  $("part").innerHTML = "";
  for (const p of m.parts) {
    const o = document.createElement("option");
    o.value = p;
    o.textContent = p;
    $("part").appendChild(o);
  }
  keypoints = {};
  completed = {};
  $("interp-tools").hidden = !c.interpolate;
  $("style-tools").hidden = !c.style_transfer;
  $("n").max = String(limits.max_images);
  drawLayout();
}

// ---- results ------------------------------------------------------------

function sampleFigure(url, layout, label) {
  const fig = document.createElement("figure");
  fig.className = "sample";
  const cv = document.createElement("canvas");
  cv.width = 192;
  cv.height = 192;
  const img = new Image();
  img.onload = () => {
    const ctx = cv.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0, cv.width, cv.height);
    if (layout && layout.box) {
      const b = layout.box;
      ctx.strokeStyle = "rgba(255,255,255,0.9)";
      ctx.lineWidth = 2;
      ctx.strokeRect(b[0] * 192, b[1] * 192, b[2] * 192, b[3] * 192);
    } else if (layout && layout.keypoints) {
      const given = {};
      const filled = {};
      for (const [p, v] of Object.entries(layout.keypoints)) {
        if (!v) continue;
        if (layout.given.includes(p)) given[p] = v;
        else filled[p] = v;
      }
      drawKeypoints(ctx, 192, given, filled);
    }
  };
  img.src = url;
  img.className = "result";
  img.alt = label;
  img.hidden = true;
  const a = document.createElement("a");
  a.href = url;
  a.download = label.replace(/[^a-z0-9]+/gi, "-").slice(0, 60) + ".png";
  a.textContent = "download";
  fig.append(cv, img, a);
  return fig;
}

async function generate() {
  const m = current();
  const caption = $("caption").value.trim();
  if (!caption) {
    status("Type a caption first.", true);
    return;
  }
  const body = {
    model: m.id,
    caption,
    n: Number($("n").value) || 1,
    seed: Number($("seed").value) || 0,
  };
  if (m.controls.boxes) body.box = box;
  if (m.controls.keypoints) {
    if (Object.keys(keypoints).length) body.keypoints = keypoints;
    body.complete_keypoints = $("complete").checked;
  }
  if ((m.controls.boxes || m.controls.keypoints) && $("sweep").checked) body.sweep = Math.max(2, body.n);
  busy(true);
  status("Generating...");
  try {
    const r = await api("/api/generate", body);
    const out = $("results");
    out.innerHTML = "";
    r.images.forEach((url, i) => {
      const layout = r.layouts ? r.layouts[i] : null;
      // a caption that leaves attributes out is drawn as a full one
      const label = r.drawn_as ? `${i + 1}: ${r.drawn_as[i]}` : `${caption} ${i + 1}`;
      out.appendChild(sampleFigure(url, layout, label));
    });
    if (r.completed && r.layouts && r.layouts[0] && r.layouts[0].keypoints) {
      completed = {};
      for (const [p, v] of Object.entries(r.layouts[0].keypoints)) {
        if (v && !(p in keypoints)) completed[p] = v;
      }
      drawLayout();
    }
    const st = $("stages");
    st.hidden = !r.first_stage;
    if (r.first_stage) {
      const strip = st.querySelector(".strip");
      strip.innerHTML = "";
      for (const url of r.first_stage) {
        const im = document.createElement("img");
        im.src = url;
        im.alt = "first stage";
        strip.appendChild(im);
      }
    }
    let note = `${r.images.length} image(s) in ${r.ms} ms`;
    if (r.unknown_words && r.unknown_words.length) note += `; not in the vocabulary: ${r.unknown_words.join(", ")}`;
    if (m.controls.attention) {
      const a = await api("/api/attention", { model: m.id, caption, seed: body.seed });
      $("attention").hidden = false;
      $("attention").querySelector("img").src = a.image;
    } else {
      $("attention").hidden = true;
    }
    status(note);
  } catch (e) {
    status(e.message, true);
  } finally {
    busy(false);
  }
}

async function interpolate() {
  const m = current();
  const caption = $("caption").value.trim();
  if (!caption) {
    status("Type a caption first.", true);
    return;
  }
  const to = $("to").value.trim();
  const body = { model: m.id, caption, steps: 8, seed: Number($("seed").value) || 0 };
  if (to) body.to = to;
  busy(true);
  status("Interpolating...");
  try {
    const r = await api("/api/interpolate", body);
    const box = $("interp");
    box.hidden = false;
    const strip = box.querySelector(".strip");
    strip.innerHTML = "";
    for (const url of r.images) {
      const im = document.createElement("img");
      im.src = url;
      im.alt = "interpolation step";
      strip.appendChild(im);
    }
    const slider = $("interp-slider");
    slider.max = String(r.images.length - 1);
    slider.value = "0";
    slider.oninput = () => {
      $("interp-image").src = r.images[Number(slider.value)];
    };
    $("interp-image").src = r.images[0];
    status(`interpolation of ${r.images.length} steps in ${r.ms} ms`);
  } catch (e) {
    status(e.message, true);
  } finally {
    busy(false);
  }
}

async function styleTransfer() {
  const m = current();
  const caption = $("caption").value.trim();
  const file = $("style-file").files[0];
  if (!caption || !file) {
    status("Type a caption and choose a style image.", true);
    return;
  }
  const image = await new Promise((ok, fail) => {
    const rd = new FileReader();
    rd.onload = () => ok(rd.result);
    rd.onerror = fail;
    rd.readAsDataURL(file);
  });
  busy(true);
  status("Transferring style...");
  try {
    const r = await api("/api/style-transfer", { model: m.id, caption, image });
    const out = $("results");
    out.innerHTML = "";
    out.appendChild(sampleFigure(r.query, null, "style image"));
    out.appendChild(sampleFigure(r.images[0], null, caption));
    status(`style transfer in ${r.ms} ms`);
  } catch (e) {
    status(e.message, true);
  } finally {
    busy(false);
  }
}

async function init() {
  try {
    const r = await fetch("/api/models");
    const data = await r.json();
    models = data.models;
    limits = data.limits;
  } catch (e) {
    status("Cannot reach the server: " + e.message, true);
    return;
  }
  for (const m of models) {
    const o = document.createElement("option");
    o.value = m.id;
    o.textContent = `${m.id} (${m.family})`;
    $("model").appendChild(o);
  }
  $("model").onchange = showModel;
  $("generate").onclick = generate;
  $("interpolate").onclick = interpolate;
  $("style").onclick = styleTransfer;
  $("clear-keypoints").onclick = () => {
    keypoints = {};
    completed = {};
    drawLayout();
  };
  const c = $("layout-canvas");
  c.addEventListener("pointerdown", onDown);
  c.addEventListener("pointermove", onMove);
  c.addEventListener("pointerup", onUp);
  c.addEventListener("pointercancel", onUp);
  $("caption").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      generate();
    }
  });
  showModel();
}

init();
