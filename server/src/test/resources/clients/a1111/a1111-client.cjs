// Drives jdiffusion's AUTOMATIC1111 API with the npm client library `a1111-webui-api`, as its README shows
// (new StableDiffusionApi({ baseUrl }), txt2img / img2img with sharp images, extraSingle, pngInfo, getProgress,
// setModel). The library has no interrupt call: that one goes through the client's own axios instance (api.api).
// Usage: node a1111-client.cjs BASE_URL UPSCALER INIT_PNG MASK_PNG (the images it makes go to the working folder)
// Prints one JSON line of what it saw.
const fs = require('node:fs');
const sharp = require('sharp');
const StableDiffusionApi = require('a1111-webui-api').default;

const [baseUrl, upscaler, initPath, maskPath] = process.argv.slice(2);
const api = new StableDiffusionApi({ baseUrl, defaultSampler: 'Euler a', defaultStepCount: 2 });
const out = {};
const size = async (img) => { const m = await img.metadata(); return [m.width, m.height]; };

(async () => {
  const models = await api.getSdModels();
  out.models = models.map((m) => ({ title: m.title, model_name: m.model_name, hash: m.hash }));
  out.samplers = (await api.getSamplers()).map((s) => s.name);
  out.upscalers = (await api.getUpscalers()).map((u) => u.name);
  out.before = await api.getCurrentModel();
  out.switchedTo = models.find((m) => m.title !== out.before).model_name;
  await api.setModel(out.switchedTo);
  out.after = await api.getCurrentModel();

  const t2i = await api.txt2img({ prompt: 'a lighthouse at dusk', negative_prompt: 'blurry', width: 32, height: 48,
    steps: 2, seed: 1234, cfg_scale: 5, batch_size: 2 });
  out.txt2img = { sizes: await Promise.all(t2i.images.map(size)), info: JSON.parse(t2i.info),
    parameters: t2i.parameters };
  fs.writeFileSync('txt2img.png', await t2i.image.png().toBuffer());

  const init = sharp(fs.readFileSync(initPath));
  const i2i = await api.img2img({ init_images: [init], prompt: 'a lighthouse at night', width: 32, height: 32,
    steps: 2, seed: 7, denoising_strength: 0.5 });
  out.img2img = { sizes: await Promise.all(i2i.images.map(size)), seed: JSON.parse(i2i.info).seed };
  fs.writeFileSync('img2img.png', await i2i.image.png().toBuffer());

  const inp = await api.img2img({ init_images: [sharp(fs.readFileSync(initPath))],
    mask_image: sharp(fs.readFileSync(maskPath)), prompt: 'a red door', width: 32, height: 32, steps: 2, seed: 7,
    denoising_strength: 1.0, inpainting_fill: 1, inpaint_full_res: false });
  out.inpaint = { sizes: await Promise.all(inp.images.map(size)) };
  fs.writeFileSync('inpaint.png', await inp.image.png().toBuffer());

  const up = await api.extraSingle({ image: sharp(fs.readFileSync(initPath)), upscaler_1: upscaler,
    upscaling_resize: 2 });
  out.upscale = { size: await size(up.image) };

  const png = await api.pngInfo(sharp(fs.readFileSync('txt2img.png')));
  out.pngInfo = { info: png.info, parameters: png.parameters };

  out.idle = await api.getProgress();
  const long = api.txt2img({ prompt: 'a long one', width: 32, height: 32, steps: 400, seed: 9 })
    .then((r) => ({ images: r.images.length }), (e) => ({ status: e.response?.status, detail: e.response?.data }));
  let running = null;
  for (let i = 0; i < 2000 && !running; i++) {
    const p = await api.getProgress();
    if (p.progress > 0 && p.state.sampling_step >= 1) {
      running = p;
    } else {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  out.running = running && { progress: running.progress, eta_relative: running.eta_relative,
    state: running.state, has_image: typeof running.current_image === 'string' };
  const interrupted = await api.api.post('/sdapi/v1/interrupt');
  out.interruptStatus = interrupted.status;
  out.long = await long;
  out.afterInterrupt = (await api.getProgress()).progress;
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error('FAILED', e.message, e.response ? JSON.stringify(e.response.data) : e.stack);
  process.exit(1);
});
