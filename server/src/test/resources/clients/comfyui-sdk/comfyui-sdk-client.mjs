// Drives jdiffusion's ComfyUI API with the npm SDK `@saintno/comfyui-sdk`, as its README shows: ComfyApi with a
// bearer token, init / waitForReady (the websocket), the lists, node definitions, users, settings, user data,
// upload of an image and a mask, PromptBuilder + CallWrapper (progress, previews, the finished image), the image,
// history and queue, interrupt of a running prompt, free memory, features, logs and model metadata.
// Usage: node comfyui-sdk-client.mjs HOST TOKEN CHECKPOINT INIT_PNG; prints one JSON line of what it saw.
import fs from 'node:fs';
import { ComfyApi, CallWrapper, PromptBuilder } from '@saintno/comfyui-sdk';

const [host, token, checkpoint, initPath] = process.argv.slice(2);
const out = {};
const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, reject) =>
  setTimeout(() => reject(new Error(what + ' took over ' + ms + ' ms')), ms))]);

// ComfyUI's default workflow in API format, as the README's example-txt2img-workflow.json
const txt2img = {
  3: { class_type: 'KSampler', inputs: { seed: 0, steps: 20, cfg: 7, sampler_name: 'euler', scheduler: 'normal',
    denoise: 1, model: ['4', 0], positive: ['6', 0], negative: ['7', 0], latent_image: ['5', 0] } },
  4: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: '' } },
  5: { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
  6: { class_type: 'CLIPTextEncode', inputs: { text: '', clip: ['4', 1] } },
  7: { class_type: 'CLIPTextEncode', inputs: { text: '', clip: ['4', 1] } },
  8: { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
  9: { class_type: 'SaveImage', inputs: { filename_prefix: 'sdk', images: ['8', 0] } },
};

const workflow = (steps, preview) => new PromptBuilder(txt2img,
  ['positive', 'negative', 'checkpoint', 'seed', 'step', 'cfg', 'sampler', 'scheduler', 'width', 'height'], ['images'])
  .setInputNode('checkpoint', '4.inputs.ckpt_name')
  .setInputNode('seed', '3.inputs.seed')
  .setInputNode('negative', '7.inputs.text')
  .setInputNode('positive', '6.inputs.text')
  .setInputNode('cfg', '3.inputs.cfg')
  .setInputNode('sampler', '3.inputs.sampler_name')
  .setInputNode('scheduler', '3.inputs.scheduler')
  .setInputNode('step', '3.inputs.steps')
  .setInputNode('width', '5.inputs.width')
  .setInputNode('height', '5.inputs.height')
  .setOutputNode('images', '9')
  .input('checkpoint', checkpoint, 'posix')
  .input('seed', 42)
  .input('step', steps)
  .input('cfg', 5)
  .input('sampler', 'euler')
  .input('scheduler', preview ? 'karras' : 'normal')
  .input('width', 32)
  .input('height', 32)
  .input('positive', 'a lighthouse at dusk')
  .input('negative', 'blurry');

const api = new ComfyApi(host, 'sdk-test', { credentials: { type: 'bearer_token', token } }).init();
try {
  await withTimeout(api.waitForReady(), 60000, 'waitForReady');
  out.ready = true;
  out.os = (await api.getSystemStats()).system.os;
  out.checkpoints = await api.getCheckpoints();
  out.loras = await api.getLoras();
  const samplerInfo = await api.getSamplerInfo();
  out.samplers = samplerInfo.sampler?.[0];
  out.schedulers = samplerInfo.scheduler?.[0];
  out.ksamplerInputs = Object.keys((await api.getNodeDefs('KSampler')).KSampler.input.required);
  out.nodeCount = Object.keys(await api.getNodeDefs()).length;
  out.extensions = Array.isArray(await api.getExtensions());
  out.embeddings = await api.getEmbeddings();
  out.features = await api.getFeatures();
  out.modelTypes = (await api.getModelTypes()).map((m) => m.name ?? m);
  out.checkpointFiles = (await api.getModels('checkpoints')).map((m) => m.name ?? m);
  out.modelFolders = (await api.getModelFolders()).map((m) => m.name ?? m);
  out.modelFiles = (await api.getModelFiles('checkpoints')).map((m) => m.name ?? m);
  out.metadata = await api.getViewMetadata('checkpoints', checkpoint);
  out.templates = await api.getWorkflowTemplates();
  out.logs = typeof (await api.getTerminalLogs()).entries;
  await api.setTerminalSubscription(true);
  await api.setTerminalSubscription(false);
  out.users = await api.getUserConfig();
  await api.storeSetting('Sdk.Test', 42);
  out.setting = await api.getSetting('Sdk.Test');
  await api.storeSettings({ 'Sdk.Other': 'x' });
  out.settings = await api.getSettings();
  await api.storeUserData('workflows/sdk.json', { nodes: [] }, { overwrite: true, stringify: true, throwOnError: true });
  out.listed = await api.listUserData('workflows');
  out.userData = await (await api.getUserData('workflows/sdk.json')).json();
  await api.moveUserData('workflows/sdk.json', 'workflows/sdk2.json', { overwrite: true });
  out.moved = await api.listUserData('workflows');
  await api.deleteUserData('workflows/sdk2.json');
  out.afterDelete = (await api.getUserData('workflows/sdk2.json')).status;

  const init = fs.readFileSync(initPath);
  const uploaded = await api.uploadImage(init, 'sdk-init.png', { override: true });
  out.uploaded = uploaded && uploaded.info;
  out.uploadedUrl = uploaded && uploaded.url;
  const mask = await api.uploadMask(init, uploaded.info);
  out.mask = mask && mask.info;

  // generate, following progress and previews over the websocket
  let progress = [];
  let previews = 0;
  let pending = null;
  let started = null;
  let failed = null;
  const done = await withTimeout(new CallWrapper(api, workflow(3, true))
    .onPending((id) => { pending = id; })
    .onStart((id) => { started = id; })
    .onProgress((info) => { progress.push([info.value, info.max, String(info.node)]); })
    .onPreview(() => { previews++; })
    .onFailed((e) => { failed = String(e?.message ?? e); })
    .run(), 300000, 'txt2img');
  out.run = { pending, started, progress, previews, failed };
  const images = done && done.images && done.images.images;
  out.images = images;
  if (images && images.length) {
    const blob = await api.getImage(images[0]);
    const bytes = new Uint8Array(await blob.arrayBuffer());
    out.imageBytes = bytes.length;
    out.pngMagic = bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
    out.imagePath = api.getPathImage(images[0]);
  }
  out.history = pending && (await api.getHistory(pending))?.status;
  out.histories = Object.keys(await api.getHistories(10)).includes(pending);
  out.queue = await api.getQueue();

  // interrupt a long prompt once it is running
  let interruptFailed = null;
  let sentInterrupt = false;
  const long = new CallWrapper(api, workflow(400, false))
    .onProgress(async () => {
      if (!sentInterrupt) {
        sentInterrupt = true;
        await api.interrupt();
      }
    })
    .onFailed((e) => { interruptFailed = String(e?.message ?? e); });
  const longResult = await withTimeout(long.run(), 300000, 'the interrupted prompt');
  out.interrupt = { sent: sentInterrupt, result: longResult === false ? false : !!longResult, failed: interruptFailed };
  out.free = await api.freeMemory(true, true);
  console.log(JSON.stringify(out));
} catch (e) {
  console.error('FAILED', e?.stack ?? e, JSON.stringify(out));
  process.exitCode = 1;
} finally {
  api.destroy();
  setTimeout(() => process.exit(), 200);
}
