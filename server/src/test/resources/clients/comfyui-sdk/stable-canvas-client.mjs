// Drives jdiffusion's ComfyUI API with the npm client `@stable-canvas/comfyui-client`, as its README's Quick Start
// shows (Client in NodeJS with the ws WebSocket and a fetch, getSystemStats + connect, a BasePipe text to image whose
// save() without a prefix is a SaveImageWebsocket: the image comes as a binary websocket frame), then its REST calls:
// node defs, queue, history, free. With previews on, the pipe also collects the preview frames (JPEG) that come
// while it runs, as it does from ComfyUI started with --preview-method. (The README passes the pipe's output to outToB64Urls, which in 1.5.9 throws
// "Unknown image type" on any pipe output: the pipe drops the images' `type`; the images are read directly here.) The client has no token option: the fetch
// and WebSocket handed to it, as the README hands them, add the Authorization header.
// Usage: node stable-canvas-client.mjs HOST:PORT TOKEN CHECKPOINT; prints one JSON line of what it saw.
import WebSocket from 'ws';
import { Client, BasePipe } from '@stable-canvas/comfyui-client';

const [apiHost, token, checkpoint] = process.argv.slice(2);
const auth = { Authorization: 'Bearer ' + token };
const authFetch = (url, init = {}) => fetch(url, { ...init, headers: { ...(init.headers ?? {}), ...auth } });
class AuthWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { headers: auth });
  }
}
const client = new Client({ api_host: apiHost, WebSocket: AuthWebSocket, fetch: authFetch });
const out = {};
try {
  const [stats, connected] = await Promise.all([client.getSystemStats(), client.connect()]);
  out.os = stats.system.os;
  out.connected = connected !== false;
  const output = await new BasePipe()
    .with(client)
    .model(checkpoint)
    .prompt('A beautiful sunset over the mountains')
    .negative('Low quality, blurry')
    .size(32, 32)
    .steps(2)
    .save()
    .wait();
  out.images = output.images.map((i) => {
    const b = new Uint8Array(i.data);
    return { mime: i.mime, bytes: b.length, png: b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47,
      jpeg: b[0] === 0xff && b[1] === 0xd8 };
  });
  out.nodeDefs = Object.keys(await client.getNodeDefs()).length;
  out.queue = await client.getQueue();
  out.history = (await client.getHistory()).History.length;
  await client.free({ unload_models: true, free_memory: true });
  out.freed = true;
  console.log(JSON.stringify(out));
} catch (e) {
  console.error('FAILED', e?.stack ?? e, JSON.stringify(out));
  process.exitCode = 1;
} finally {
  client.close();
  setTimeout(() => process.exit(), 200);
}
