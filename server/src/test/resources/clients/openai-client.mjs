// Drives jdiffusion's OpenAI image API with the official `openai` npm package, as its README shows.
// Usage: node openai-client.mjs BASE_URL API_KEY MODEL IMAGE_PNG MASK_PNG; prints one JSON line of what it saw.
import fs from 'node:fs';
import OpenAI, { toFile } from 'openai';

const [baseURL, apiKey, model, imagePath, maskPath] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey });
const out = {};

const models = await client.models.list();
out.models = models.data.map((m) => m.id);
out.retrieved = (await client.models.retrieve(model)).id;

const gen = await client.images.generate({ model, prompt: 'a lighthouse at dusk', n: 2, size: '32x32',
  quality: 'hd', style: 'vivid' });
out.generated = gen.data.map((d) => d.b64_json.length);
out.created = gen.created;
out.revised = gen.data[0].revised_prompt;

const url = await client.images.generate({ model, prompt: 'a lighthouse', size: '32x32', response_format: 'url' });
out.url = url.data[0].url;

const edit = await client.images.edit({
  model,
  image: await toFile(fs.createReadStream(imagePath), 'image.png', { type: 'image/png' }),
  mask: await toFile(fs.createReadStream(maskPath), 'mask.png', { type: 'image/png' }),
  prompt: 'a red door',
});
out.edited = edit.data[0].b64_json;

try {
  await client.images.generate({ model, prompt: 'x', size: 'huge' });
  out.error = null;
} catch (e) {
  out.error = { status: e.status, type: e.error?.type, param: e.error?.param, message: e.error?.message };
}
console.log(JSON.stringify(out));
