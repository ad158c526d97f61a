// jdiffusion web page: builds ComfyUI API-format prompts from the form and talks only to the public API
// (/object_info, /prompt, /queue, /interrupt, /history, /view, /upload/image, /ws), plus /jdiffusion/models for
// what object_info does not say (a checkpoint's family, an upscale model's scale).
'use strict';

const params = new URLSearchParams(location.search);
const token = params.get('token') || sessionStorage.getItem('jdiffusion-token') || '';
if (token) sessionStorage.setItem('jdiffusion-token', token);
const clientId = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2)).replace(/-/g, '');
const $ = (id) => document.getElementById(id);
const shown = new Set();          // prompt ids already in the gallery
let objectInfo = null;
let pageModels = { checkpoints: {}, upscalers: {} }; // from /jdiffusion/models
let family = null;                                     // the selected checkpoint's family (SD1, SD2, SDXL, SD3)

function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers['Authorization'] = 'Bearer ' + token;
  return fetch(path, Object.assign({}, options, { headers }));
}

async function json(path, options) {
  const r = await api(path, options);
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: text }; }
  if (!r.ok) { const err = new Error(describeError(body) || ('HTTP ' + r.status)); err.body = body; throw err; }
  return body;
}

function describeError(body) {
  if (!body) return '';
  const lines = [];
  const e = body.error;
  if (typeof e === 'string') lines.push(e);
  else if (e && e.message) lines.push(e.message + (e.details && !body.node_errors ? ': ' + e.details : ''));
  for (const [node, ne] of Object.entries(body.node_errors || {})) {
    for (const err of ne.errors || []) lines.push(`node ${node} (${ne.class_type}): ${err.message}: ${err.details}`);
  }
  return lines.join('\n');
}

function viewUrl(img) {
  const q = new URLSearchParams({ filename: img.filename, subfolder: img.subfolder || '', type: img.type || 'output' });
  if (token) q.set('token', token);
  return '/view?' + q.toString();
}

function setMessage(text, isError) {
  $('message').textContent = text;
  $('message').className = isError ? 'error' : '';
}

// ---- widgets from /object_info ----

function fill(select, values, keep) {
  const old = keep ? select.value : null;
  select.innerHTML = '';
  for (const v of values) {
    const o = document.createElement('option');
    o.value = v; o.textContent = v === '' ? '(from checkpoint)' : v;
    select.appendChild(o);
  }
  if (old !== null && values.includes(old)) select.value = old;
}

function combo(node, input) {
  const spec = objectInfo?.[node]?.input?.required?.[input];
  return spec && Array.isArray(spec[0]) ? spec[0] : [];
}

async function loadObjectInfo() {
  objectInfo = await json('/object_info');
  fill($('checkpoint'), combo('CheckpointLoaderSimple', 'ckpt_name'), true);
  fill($('vae'), [''].concat(combo('VAELoader', 'vae_name')), true);
  fill($('sampler'), combo('KSampler', 'sampler_name'), true);
  fill($('scheduler'), combo('KSampler', 'scheduler'), true);
  for (const sel of document.querySelectorAll('.lora-name')) fill(sel, combo('LoraLoader', 'lora_name'), true);
  fill($('cn-model'), [''].concat(combo('ControlNetLoader', 'control_net_name')), true);
  if ($('cn-model').options.length) $('cn-model').options[0].textContent = '(none)';
  if (!$('sampler').dataset.init) { $('sampler').value = 'euler'; $('sampler').dataset.init = '1'; }
  const latentModes = combo('LatentUpscaleBy', 'upscale_method').map(m => 'latent-' + m);
  const upscaleModels = combo('UpscaleModelLoader', 'model_name');
  fill($('hires-upscaler'), latentModes.concat(upscaleModels), true);
  if (!$('hires-upscaler').dataset.init && latentModes.includes('latent-bicubic')) {
    $('hires-upscaler').value = 'latent-bicubic'; $('hires-upscaler').dataset.init = '1';
  }
  fill($('upscale-model'), upscaleModels, true);
  const encoders = [''].concat(combo('TripleCLIPLoader', 'clip_name1'));
  for (const id of ['sd3-clip-l', 'sd3-clip-g', 'sd3-t5']) fill($(id), encoders, true);
  try {
    const m = await json('/jdiffusion/models');
    pageModels = { checkpoints: {}, upscalers: {} };
    for (const c of m.checkpoints || []) pageModels.checkpoints[c.name] = c;
    for (const u of m.upscale_models || []) pageModels.upscalers[u.name] = u;
  } catch (e) { /* an older server: every checkpoint is treated as a UNet one */ }
  updateFamily();
  if (!$('checkpoint').options.length) setMessage('No checkpoint in models/checkpoints: add one and reload.', true);
}

/** The selected checkpoint's family; switching to or from SD3 shows its options and sets its usual defaults. */
function updateFamily() {
  const next = pageModels.checkpoints[$('checkpoint').value]?.family || null;
  const was = family;
  family = next;
  $('sd3-options').hidden = next !== 'SD3';
  if (was === next || (was === null && next !== 'SD3')) return;
  const sd3 = next === 'SD3';
  $('sampler').value = 'euler';
  $('scheduler').value = sd3 ? 'simple' : 'normal';
  $('cfg').value = sd3 ? 4.5 : 7;
}

function addLora(name, strength) {
  const row = $('lora-row').content.firstElementChild.cloneNode(true);
  fill(row.querySelector('.lora-name'), combo('LoraLoader', 'lora_name'));
  if (name) row.querySelector('.lora-name').value = name;
  if (strength !== undefined) row.querySelector('.lora-strength').value = strength;
  row.querySelector('.lora-remove').onclick = () => row.remove();
  $('loras').appendChild(row);
}

// ---- the form as settings, settings as an API-format prompt ----

function settings() {
  const num = (id) => Number($(id).value);
  return {
    checkpoint: $('checkpoint').value, vae: $('vae').value,
    loras: [...document.querySelectorAll('.lora')].map(r => ({
      name: r.querySelector('.lora-name').value, strength: Number(r.querySelector('.lora-strength').value) })),
    prompt: $('prompt').value, negative: $('negative').value,
    width: num('width'), height: num('height'), steps: num('steps'), cfg: num('cfg'),
    sampler: $('sampler').value, scheduler: $('scheduler').value, seed: num('seed'), batch: num('batch'),
    denoise: num('denoise'), image: null, masked: false, family,
    hires: $('hires-enable').checked ? { scale: num('hires-scale'), upscaler: $('hires-upscaler').value,
      steps: num('hires-steps') || null, denoise: num('hires-denoise') } : null,
    sd3: family === 'SD3' ? { shift: num('sd3-shift'), clipL: $('sd3-clip-l').value, clipG: $('sd3-clip-g').value,
      t5: $('sd3-t5').value } : null,
    pad: { left: num('pad-left'), top: num('pad-top'), right: num('pad-right'), bottom: num('pad-bottom'),
      feathering: num('pad-feather') },
    controlnet: { model: $('cn-model').value, module: $('cn-module').value, strength: num('cn-strength'),
      start: num('cn-start'), end: num('cn-end'), image: null },
  };
}

/** LoadImage (+ Canny) of the uploaded hint into prompt p (ids 41, 42); returns the IMAGE link. */
function hintNodes(p, c) {
  p['41'] = { class_type: 'LoadImage', inputs: { image: c.image } };
  if (c.module !== 'canny') return ['41', 0];
  p['42'] = { class_type: 'Canny', inputs: { image: ['41', 0], low_threshold: 0.4, high_threshold: 0.8 } };
  return ['42', 0];
}

function buildPrompt(s) {
  const p = {};
  p['4'] = { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: s.checkpoint } };
  let model = ['4', 0], clip = ['4', 1], vae = ['4', 2];
  s.loras.forEach((l, i) => {
    const id = String(20 + i);
    p[id] = { class_type: 'LoraLoader', inputs: { model, clip, lora_name: l.name,
      strength_model: l.strength, strength_clip: l.strength } };
    model = [id, 0]; clip = [id, 1];
  });
  if (s.vae) { p['13'] = { class_type: 'VAELoader', inputs: { vae_name: s.vae } }; vae = ['13', 0]; }
  const sd3 = s.sd3;
  if (sd3) {
    // SD3 / SD3.5: CLIP-L, CLIP-G and T5 from the checkpoint or from three files (TripleCLIPLoader), flow shift
    if (sd3.clipL || sd3.clipG || sd3.t5) {
      if (!sd3.clipL || !sd3.clipG || !sd3.t5) throw new Error('SD3 text encoders: choose CLIP-L, CLIP-G and T5-XXL'
        + ' files, or none of them (the checkpoint\'s own)');
      p['17'] = { class_type: 'TripleCLIPLoader', inputs: { clip_name1: sd3.clipL, clip_name2: sd3.clipG,
        clip_name3: sd3.t5 } };
      clip = ['17', 0];
    }
    p['16'] = { class_type: 'ModelSamplingSD3', inputs: { model, shift: sd3.shift } };
    model = ['16', 0];
  }
  p['6'] = { class_type: 'CLIPTextEncode', inputs: { text: s.prompt, clip } };
  p['7'] = { class_type: 'CLIPTextEncode', inputs: { text: s.negative, clip } };
  let latent;
  if (s.image) {
    p['10'] = { class_type: 'LoadImage', inputs: { image: s.image } };
    p['12'] = { class_type: 'ImageScale', inputs: { image: ['10', 0], upscale_method: 'bilinear',
      width: s.width, height: s.height, crop: 'center' } };
    const pad = s.pad || {};
    const outpaint = (pad.left || 0) + (pad.top || 0) + (pad.right || 0) + (pad.bottom || 0) > 0;
    if (outpaint || s.masked) {
      // the painted mask is LoadImage's MASK (1 - alpha); outpainting paints the new border instead
      let pixels = ['12', 0], mask = ['10', 1];
      if (outpaint) {
        p['15'] = { class_type: 'ImagePadForOutpaint', inputs: { image: ['12', 0], left: pad.left, top: pad.top,
          right: pad.right, bottom: pad.bottom, feathering: pad.feathering } };
        pixels = ['15', 0]; mask = ['15', 1];
      }
      p['14'] = { class_type: 'InpaintModelConditioning', inputs: { positive: ['6', 0], negative: ['7', 0], vae,
        pixels, mask, noise_mask: true } };
      latent = ['14', 2];
    } else {
      p['11'] = { class_type: 'VAEEncode', inputs: { pixels: ['12', 0], vae } };
      latent = ['11', 0];
    }
  } else {
    p['5'] = { class_type: sd3 ? 'EmptySD3LatentImage' : 'EmptyLatentImage', inputs: { width: s.width,
      height: s.height, batch_size: s.batch } };
    latent = ['5', 0];
  }
  const conditioned = p['14'] !== undefined; // InpaintModelConditioning
  let positive = conditioned ? ['14', 0] : ['6', 0], negative = conditioned ? ['14', 1] : ['7', 0];
  const c = s.controlnet;
  if (c && c.model && c.image) {
    p['40'] = { class_type: 'ControlNetLoader', inputs: { control_net_name: c.model } };
    p['43'] = { class_type: 'ControlNetApplyAdvanced', inputs: { positive, negative, control_net: ['40', 0],
      image: hintNodes(p, c), strength: c.strength, start_percent: c.start, end_percent: c.end } };
    positive = ['43', 0]; negative = ['43', 1];
  }
  p['3'] = { class_type: 'KSampler', inputs: { model, seed: s.seed, steps: s.steps, cfg: s.cfg,
    sampler_name: s.sampler, scheduler: s.scheduler, positive, negative,
    latent_image: latent, denoise: s.image ? s.denoise : 1.0 } };
  p['8'] = { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae } };
  p['9'] = { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: 'jdiffusion' } };
  if (s.hires) hiresNodes(p, s, vae);
  return p;
}

/** Python's round (half to even), as LatentUpscaleBy rounds the scaled latent size. */
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The size the hires fix ends at: round(side / 8 * scale) * 8 per side, as pipeline/HiresFix computes it. */
function hiresSize(s) {
  return { width: roundHalfEven(Math.floor(s.width / 8) * s.hires.scale) * 8,
    height: roundHalfEven(Math.floor(s.height / 8) * s.hires.scale) * 8 };
}

/**
 * The hires fix's second pass appended to prompt p, the same graph as the CLI's --hires-scale writes
 * (pipeline/HiresFix.comfyWorkflow): LatentUpscaleBy (30) on the first KSampler's latent, or VAEDecode (8) ->
 * UpscaleModelLoader (31) -> ImageUpscaleWithModel (32) -> ImageScale lanczos (33, when the model's scale does not
 * land on the target size) -> VAEEncode (34); then a second KSampler (35) at the hires denoise and its VAEDecode
 * (36), which SaveImage saves.
 */
function hiresNodes(p, s, vae) {
  const h = s.hires;
  if (s.image) throw new Error('hires fix is for text-to-image: clear the init image (or upscale a gallery image)');
  if (!(h.scale > 0 && h.scale <= 8)) throw new Error('hires scale must be in (0, 8], got ' + h.scale);
  if (!(h.denoise > 0 && h.denoise <= 1)) throw new Error('hires denoise must be in (0, 1], got ' + h.denoise);
  let latent;
  if (h.upscaler.startsWith('latent-')) {
    p['30'] = { class_type: 'LatentUpscaleBy', inputs: { samples: ['3', 0],
      upscale_method: h.upscaler.slice('latent-'.length), scale_by: h.scale } };
    latent = ['30', 0];
  } else {
    const target = hiresSize(s);
    const k = pageModels.upscalers[h.upscaler]?.scale;
    p['31'] = { class_type: 'UpscaleModelLoader', inputs: { model_name: h.upscaler } };
    p['32'] = { class_type: 'ImageUpscaleWithModel', inputs: { upscale_model: ['31', 0], image: ['8', 0] } };
    let pixels = ['32', 0];
    if (!k || s.width * k !== target.width || s.height * k !== target.height) {
      p['33'] = { class_type: 'ImageScale', inputs: { image: ['32', 0], upscale_method: 'lanczos',
        width: target.width, height: target.height, crop: 'disabled' } };
      pixels = ['33', 0];
    }
    p['34'] = { class_type: 'VAEEncode', inputs: { pixels, vae } };
    latent = ['34', 0];
  }
  p['35'] = { class_type: 'KSampler', inputs: Object.assign({}, p['3'].inputs, { steps: h.steps || s.steps,
    denoise: h.denoise, latent_image: latent }) };
  p['36'] = { class_type: 'VAEDecode', inputs: { samples: ['35', 0], vae } };
  p['9'].inputs.images = ['36', 0];
}

/** UpscaleModelLoader + ImageUpscaleWithModel + SaveImage on an image already uploaded to input/. */
function upscalePrompt(image, model) {
  return {
    '50': { class_type: 'LoadImage', inputs: { image } },
    '51': { class_type: 'UpscaleModelLoader', inputs: { model_name: model } },
    '52': { class_type: 'ImageUpscaleWithModel', inputs: { upscale_model: ['51', 0], image: ['50', 0] } },
    '53': { class_type: 'SaveImage', inputs: { images: ['52', 0], filename_prefix: 'jdiffusion-upscale' } },
  };
}

/** The settings back from a stored prompt (so the gallery can reuse them after a reload). */
function settingsOf(prompt) {
  const s = { loras: [], vae: '', image: null };
  const ks = Object.values(prompt).find(n => n.class_type === 'KSampler');
  if (!ks) return null;
  const k = ks.inputs;
  Object.assign(s, { seed: k.seed, steps: k.steps, cfg: k.cfg, sampler: k.sampler_name, scheduler: k.scheduler,
    denoise: k.denoise });
  const textOf = (link) => Array.isArray(link) ? prompt[link[0]]?.inputs?.text ?? '' : '';
  s.prompt = textOf(k.positive); s.negative = textOf(k.negative);
  for (const [id, n] of Object.entries(prompt)) {
    const i = n.inputs || {};
    if (n.class_type === 'CheckpointLoaderSimple') s.checkpoint = i.ckpt_name;
    if (n.class_type === 'EmptySD3LatentImage') Object.assign(s, { width: i.width, height: i.height,
      batch: i.batch_size });
    if (n.class_type === 'ModelSamplingSD3') s.sd3 = Object.assign(s.sd3 || {}, { shift: i.shift });
    if (n.class_type === 'TripleCLIPLoader') s.sd3 = Object.assign(s.sd3 || {}, { clipL: i.clip_name1,
      clipG: i.clip_name2, t5: i.clip_name3 });
    if (n.class_type === 'LatentUpscaleBy') s.hires = Object.assign(s.hires || {}, {
      upscaler: 'latent-' + i.upscale_method, scale: i.scale_by });
    if (n.class_type === 'UpscaleModelLoader') s.hires = Object.assign(s.hires || {}, { upscaler: i.model_name });
    if (id === '35' && n.class_type === 'KSampler') s.hires = Object.assign(s.hires || {}, { steps: i.steps,
      denoise: i.denoise });
    if (id === '33' && n.class_type === 'ImageScale') { s.hiresWidth = i.width; continue; }
    if (n.class_type === 'VAELoader') s.vae = i.vae_name;
    if (n.class_type === 'LoraLoader') s.loras.push({ name: i.lora_name, strength: i.strength_model });
    if (n.class_type === 'EmptyLatentImage') Object.assign(s, { width: i.width, height: i.height, batch: i.batch_size });
    if (n.class_type === 'ImageScale') Object.assign(s, { width: i.width, height: i.height, batch: 1 });
    if (n.class_type === 'LoadImage') s.image = i.image;
    if (n.class_type === 'InpaintModelConditioning') s.masked = true;
    if (n.class_type === 'ImagePadForOutpaint') s.pad = { left: i.left, top: i.top, right: i.right,
      bottom: i.bottom, feathering: i.feathering };
  }
  if (s.hires && s.hires.scale === undefined) {
    const k = pageModels.upscalers[s.hires.upscaler]?.scale;
    s.hires.scale = s.hiresWidth ? s.hiresWidth / s.width : k;
  }
  return s;
}

function reuse(s) {
  for (const k of ['prompt', 'negative', 'width', 'height', 'steps', 'cfg', 'seed', 'batch', 'denoise']) {
    if (s[k] !== undefined) $(k).value = s[k];
  }
  for (const [id, v] of [['checkpoint', s.checkpoint], ['vae', s.vae || ''], ['sampler', s.sampler],
    ['scheduler', s.scheduler]]) if (v !== undefined) $(id).value = v;
  $('loras').innerHTML = '';
  s.loras.forEach(l => addLora(l.name, l.strength));
  const pad = s.pad || { left: 0, top: 0, right: 0, bottom: 0, feathering: Number($('pad-feather').value) };
  for (const k of ['left', 'top', 'right', 'bottom']) $('pad-' + k).value = pad[k];
  $('pad-feather').value = pad.feathering;
  updateFamily();
  $('hires-enable').checked = !!s.hires;
  if (s.hires) {
    if (s.hires.scale) $('hires-scale').value = s.hires.scale;
    $('hires-upscaler').value = s.hires.upscaler;
    $('hires-steps').value = s.hires.steps === s.steps ? 0 : s.hires.steps;
    $('hires-denoise').value = s.hires.denoise;
  }
  if (s.sd3) {
    if (s.sd3.shift !== undefined) $('sd3-shift').value = s.sd3.shift;
    $('sd3-clip-l').value = s.sd3.clipL || ''; $('sd3-clip-g').value = s.sd3.clipG || ''; $('sd3-t5').value = s.sd3.t5 || '';
  }
  // the family's defaults (set when the checkpoint's family changed) give way to the stored values
  for (const [id, v] of [['sampler', s.sampler], ['scheduler', s.scheduler], ['cfg', s.cfg]]) if (v !== undefined) $(id).value = v;
  setMessage('Settings loaded from the gallery' + (s.image ? ' (init image: ' + s.image + ', pick it again)' : '') + '.');
  window.scrollTo(0, 0);
}

// ---- generate ----

async function uploadInitImage(input = 'init-image') {
  const file = $(input).files[0];
  if (!file) return null;
  const form = new FormData();
  form.append('image', file, file.name);
  form.append('overwrite', 'true');
  const r = await json('/upload/image', { method: 'POST', body: form });
  return (r.subfolder ? r.subfolder + '/' : '') + r.name;
}

async function generate(ev) {
  ev.preventDefault();
  $('generate').disabled = true;
  try {
    const s = settings();
    s.image = await uploadInitImage();
    if (s.controlnet.model) s.controlnet.image = await uploadInitImage('cn-image');
    if (s.image && maskPainted()) {
      s.image = await uploadMask(s.image);
      s.masked = true;
    }
    const r = await json('/prompt', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: buildPrompt(s), client_id: clientId,
        extra_data: { preview_method: 'auto' } }) });
    setMessage('Queued ' + r.prompt_id + ' (#' + r.number + ')');
    refreshQueue();
  } catch (e) {
    setMessage(e.message, true);
  } finally {
    $('generate').disabled = false;
  }
}

/** The gallery's upscale action: the image (from /view) uploaded as an input, then the upscale model run on it. */
async function upscaleImage(img, button) {
  const model = $('upscale-model').value;
  if (!model) { setMessage('No upscale model in models/upscale_models: add one and reload.', true); return; }
  if (button) button.disabled = true;
  try {
    const r0 = await api(viewUrl(img));
    if (!r0.ok) throw new Error('could not read ' + img.filename + ': HTTP ' + r0.status);
    const form = new FormData();
    form.append('image', await r0.blob(), 'upscale-' + img.filename.replace(/^.*\//, ''));
    form.append('overwrite', 'true');
    const up = await json('/upload/image', { method: 'POST', body: form });
    const name = (up.subfolder ? up.subfolder + '/' : '') + up.name;
    const r = await json('/prompt', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: upscalePrompt(name, model), client_id: clientId }) });
    setMessage('Queued upscale of ' + img.filename + ' with ' + model + ' (' + r.prompt_id + ')');
    refreshQueue();
  } catch (e) {
    setMessage(e.message, true);
  } finally {
    if (button) button.disabled = false;
  }
}

/** Runs LoadImage (+ Canny) -> PreviewImage on the hint and shows what the ControlNet will see. */
async function previewHint() {
  try {
    const c = settings().controlnet;
    c.image = await uploadInitImage('cn-image');
    if (!c.image) { setMessage('Choose a hint image first.', true); return; }
    const p = {};
    p['44'] = { class_type: 'PreviewImage', inputs: { images: hintNodes(p, c) }, _meta: { title: 'hint preview' } };
    const r = await json('/prompt', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: p, client_id: clientId }) });
    shown.add(r.prompt_id); // not a gallery result
    for (let i = 0; i < 600; i++) {
      const h = await json('/history/' + encodeURIComponent(r.prompt_id));
      const entry = h[r.prompt_id];
      if (entry && entry.status && entry.status.completed !== undefined) {
        const img = entry.outputs?.['44']?.images?.[0];
        if (img) { $('cn-preview').src = viewUrl(img); $('cn-preview').dataset.ready = '1'; }
        else setMessage('hint preview failed', true);
        return;
      }
      await new Promise(res => setTimeout(res, 200));
    }
  } catch (e) {
    setMessage(e.message, true);
  }
}

// ---- mask painter: white strokes = repaint; sent as the init image's alpha (ComfyUI's /upload/mask) ----

const maskCanvas = $('mask-canvas');
const maskCtx = maskCanvas.getContext('2d');
let painting = false;

function showMaskEditor() {
  const file = $('init-image').files[0];
  if (!file) { $('mask-editor').hidden = true; return; }
  const img = $('mask-base');
  img.onload = () => {
    maskCanvas.width = img.naturalWidth;
    maskCanvas.height = img.naturalHeight;
    maskCtx.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
    $('mask-editor').hidden = false;
  };
  img.src = URL.createObjectURL(file);
}

function paintAt(ev) {
  const r = maskCanvas.getBoundingClientRect();
  const x = (ev.clientX - r.left) * maskCanvas.width / r.width;
  const y = (ev.clientY - r.top) * maskCanvas.height / r.height;
  const radius = Number($('brush-size').value) * maskCanvas.width / Math.max(1, r.width) / 2;
  maskCtx.globalCompositeOperation = $('mask-eraser').checked ? 'destination-out' : 'source-over';
  maskCtx.fillStyle = '#fff';
  maskCtx.beginPath();
  maskCtx.arc(x, y, Math.max(0.5, radius), 0, 2 * Math.PI);
  maskCtx.fill();
}

maskCanvas.addEventListener('pointerdown', (ev) => { painting = true; maskCanvas.setPointerCapture(ev.pointerId); paintAt(ev); });
maskCanvas.addEventListener('pointermove', (ev) => { if (painting) paintAt(ev); });
maskCanvas.addEventListener('pointerup', () => { painting = false; });

function mapMask(fn) {
  if (!maskCanvas.width) return;
  const d = maskCtx.getImageData(0, 0, maskCanvas.width, maskCanvas.height);
  for (let i = 0; i < d.data.length; i += 4) {
    const a = fn(d.data[i + 3], i);
    d.data[i] = d.data[i + 1] = d.data[i + 2] = 255;
    d.data[i + 3] = a;
  }
  maskCtx.globalCompositeOperation = 'source-over';
  maskCtx.putImageData(d, 0, 0);
}

function maskPainted() {
  if (!maskCanvas.width || $('mask-editor').hidden) return false;
  const d = maskCtx.getImageData(0, 0, maskCanvas.width, maskCanvas.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
  return false;
}

/** A mask image (its grey level, scaled to the init image) as the painted mask. */
function loadMaskFile() {
  const file = $('mask-file').files[0];
  if (!file || !maskCanvas.width) return;
  const img = new Image();
  img.onload = () => {
    const c = document.createElement('canvas');
    c.width = maskCanvas.width; c.height = maskCanvas.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0, c.width, c.height);
    const src = g.getImageData(0, 0, c.width, c.height).data;
    mapMask((a, i) => Math.round(0.299 * src[i] + 0.587 * src[i + 1] + 0.114 * src[i + 2]));
  };
  img.src = URL.createObjectURL(file);
}

/** Uploads the painted mask as alpha (painted = transparent) merged into the uploaded init image. */
async function uploadMask(imageName) {
  const c = document.createElement('canvas');
  c.width = maskCanvas.width; c.height = maskCanvas.height;
  const g = c.getContext('2d');
  const src = maskCtx.getImageData(0, 0, c.width, c.height);
  const out = g.createImageData(c.width, c.height);
  for (let i = 0; i < src.data.length; i += 4) out.data[i + 3] = 255 - src.data[i + 3];
  g.putImageData(out, 0, 0);
  const blob = await new Promise(res => c.toBlob(res, 'image/png'));
  const form = new FormData();
  form.append('image', blob, 'mask-' + imageName.replace(/^.*\//, ''));
  form.append('original_ref', JSON.stringify({ filename: imageName, subfolder: '', type: 'input' }));
  form.append('type', 'input');
  form.append('overwrite', 'true');
  const r = await json('/upload/mask', { method: 'POST', body: form });
  return (r.subfolder ? r.subfolder + '/' : '') + r.name;
}

// ---- queue ----

async function refreshQueue() {
  let q;
  try { q = await json('/queue'); } catch (e) { return; }
  const ul = $('queue');
  ul.innerHTML = '';
  const item = (entry, running) => {
    const li = document.createElement('li');
    const s = settingsOf(entry[2]) || {};
    li.textContent = (running ? '▶ ' : '⏳ ') + (s.prompt || entry[1]).slice(0, 40);
    const b = document.createElement('button');
    b.textContent = 'cancel';
    b.className = 'cancel';
    b.onclick = async () => {
      if (running) await api('/interrupt', { method: 'POST', body: JSON.stringify({ prompt_id: entry[1] }) });
      else await api('/queue', { method: 'POST', body: JSON.stringify({ delete: [entry[1]] }) });
      refreshQueue();
    };
    li.appendChild(b);
    ul.appendChild(li);
  };
  q.queue_running.forEach(e => item(e, true));
  q.queue_pending.forEach(e => item(e, false));
}

// ---- gallery ----

function addResult(promptId, entry) {
  if (shown.has(promptId)) return;
  shown.add(promptId);
  if (Object.values(entry.prompt?.[2] || {}).some(n => n._meta?.title === 'hint preview')) return;
  const s = settingsOf(entry.prompt[2]);
  const ok = entry.status?.status_str === 'success';
  const card = document.createElement('div');
  card.className = 'result' + (ok ? '' : ' failed');
  card.dataset.promptId = promptId;
  const images = [];
  for (const out of Object.values(entry.outputs || {})) {
    for (const img of out.images || []) {
      const el = document.createElement('img');
      el.src = viewUrl(img);
      el.alt = img.filename;
      card.appendChild(el);
      if (img.type !== 'temp') images.push(img);
    }
  }
  const p = document.createElement('div');
  p.className = 'params';
  if (s) {
    p.textContent = `${s.prompt} | neg: ${s.negative} | ${s.width}x${s.height} ×${s.batch} | ${s.steps} steps, ` +
      `cfg ${s.cfg}, ${s.sampler}/${s.scheduler}, seed ${s.seed}` + (s.loras.length ? ' | LoRA ' +
      s.loras.map(l => l.name + ':' + l.strength).join(', ') : '') + (s.image ? ` | img2img ${s.denoise}` : '') +
      (s.pad ? ` | outpaint ${s.pad.left},${s.pad.top},${s.pad.right},${s.pad.bottom}` : s.masked ? ' | inpaint' : '') +
      (s.hires ? ` | hires ×${s.hires.scale} ${s.hires.upscaler}, ${s.hires.steps} steps, denoise ${s.hires.denoise}` : '') +
      (s.sd3 ? ` | SD3 shift ${s.sd3.shift}` + (s.sd3.t5 ? `, T5 ${s.sd3.t5}` : '') : '') +
      ` | ${s.checkpoint}`;
  } else {
    const nodes = Object.values(entry.prompt?.[2] || {});
    const loader = nodes.find(n => n.class_type === 'UpscaleModelLoader');
    const source = nodes.find(n => n.class_type === 'LoadImage');
    if (loader) p.textContent = `upscale ${source?.inputs?.image || ''} with ${loader.inputs.model_name}`;
  }
  if (!ok) {
    const msgs = (entry.status?.messages || []).filter(m => m[0] !== 'execution_start' && m[0] !== 'execution_cached');
    p.textContent += ' | ' + (msgs.map(m => m[0] + (m[1].exception_message ? ': ' + m[1].exception_message : ''))
      .join('; ') || 'failed');
  }
  card.appendChild(p);
  if (s) {
    const b = document.createElement('button');
    b.textContent = 'reuse these settings';
    b.className = 'reuse';
    b.onclick = () => reuse(s);
    card.appendChild(b);
  }
  if (ok) {
    images.forEach((img, i) => {
      const b = document.createElement('button');
      b.textContent = images.length > 1 ? 'upscale #' + (i + 1) : 'upscale';
      b.className = 'upscale';
      b.title = 'upscale ' + img.filename + ' with the upscale model chosen above the gallery';
      b.onclick = () => upscaleImage(img, b);
      card.appendChild(b);
    });
  }
  $('gallery').prepend(card);
}

async function loadHistory(promptId) {
  const h = await json(promptId ? '/history/' + encodeURIComponent(promptId) : '/history?max_items=50');
  for (const [id, entry] of Object.entries(h)) addResult(id, entry);
}

// ---- live progress over /ws ----

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = new URLSearchParams({ clientId });
  if (token) q.set('token', token);
  const ws = new WebSocket(`${proto}//${location.host}/ws?${q}`);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => { $('connection').textContent = 'connected'; $('connection').className = 'pill ok'; };
  ws.onclose = () => {
    $('connection').textContent = 'disconnected'; $('connection').className = 'pill';
    setTimeout(connect, 2000);
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data !== 'string') { showPreview(ev.data); return; }
    const msg = JSON.parse(ev.data);
    const d = msg.data || {};
    switch (msg.type) {
      case 'status':
        $('queue-remaining').textContent = 'queue: ' + d.status.exec_info.queue_remaining;
        refreshQueue();
        break;
      case 'execution_start':
        $('progress').value = 0; $('progress-text').textContent = 'starting';
        break;
      case 'executing':
        if (d.node === null) { $('progress-text').textContent = 'done'; loadHistory(d.prompt_id); refreshQueue(); }
        else $('progress-text').textContent = 'node ' + d.node + ' (' + (window.lastPrompt?.[d.node] || '') + ')';
        break;
      case 'progress':
        $('progress').max = d.max; $('progress').value = d.value;
        $('progress').dataset.seen = String(Math.max(Number($('progress').dataset.seen), d.value));
        $('progress-text').textContent = `step ${d.value} / ${d.max}`;
        break;
      case 'execution_error':
        setMessage(`node ${d.node_id} (${d.node_type}): ${d.exception_message}`, true);
        break;
      case 'execution_interrupted':
        setMessage('interrupted');
        break;
    }
  };
}

function showPreview(buffer) {
  const view = new DataView(buffer);
  if (view.getUint32(0) !== 1) return;                       // 1 = preview image
  const type = view.getUint32(4) === 2 ? 'image/png' : 'image/jpeg';
  const url = URL.createObjectURL(new Blob([buffer.slice(8)], { type }));
  const img = $('preview');
  const old = img.src;
  img.src = url;
  img.dataset.frames = String(Number(img.dataset.frames) + 1);
  if (old.startsWith('blob:')) URL.revokeObjectURL(old);
}

// ---- start ----

$('settings').addEventListener('submit', generate);
$('random-seed').onclick = () => { $('seed').value = Math.floor(Math.random() * 2 ** 32); };
$('add-lora').onclick = () => addLora();
$('checkpoint').addEventListener('change', updateFamily);
$('cn-preview-button').onclick = previewHint;
$('clear-image').onclick = () => { $('init-image').value = ''; showMaskEditor(); };
$('init-image').addEventListener('change', showMaskEditor);
$('mask-clear').onclick = () => maskCtx.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
$('mask-invert').onclick = () => mapMask(a => 255 - a);
$('mask-file').addEventListener('change', loadMaskFile);
(async () => {
  try {
    await loadObjectInfo();
    await loadHistory();
  } catch (e) {
    setMessage(e.message, true);
  }
  connect();
  refreshQueue();
})();
