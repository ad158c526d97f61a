package jdiffusion.workflow;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.PngWriter;
import jdiffusion.model.Vae;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.Values.Latent;
import jdiffusion.workflow.Values.Mask;
import jdiffusion.workflow.Values.VaeRef;

/** VAE decode/encode, image loading, saving and scaling. */
final class ImageNodes {
    private ImageNodes() {
    }

    static NodeResult vaeDecode(Map<String, Object> in, NodeContext ctx) {
        Latent s = (Latent) in.get("samples");
        Vae vae = ModelLoading.vae(ctx.models(), (VaeRef) in.get("vae"));
        checkLatent(vae, s);
        float[] decoded = vae.decode(s.samples(), s.batch(), s.height(), s.width());
        int f = vae.downscale();
        return NodeResult.of(new Image(toUnit(decoded), s.batch(), s.height() * f, s.width() * f));
    }

    /**
     * ComfyUI's decode_tiled: the average of three tilings (tile_x/2 x 2tile_y, 2tile_x x tile_y/2, tile_x x
     * tile_y, in latent units) of tiled_scale, each tile feathered linearly over the overlap. A latent that fits in
     * a tile is decoded whole, so small images equal VAEDecode's.
     */
    static NodeResult vaeDecodeTiled(Map<String, Object> in, NodeContext ctx) {
        Latent s = (Latent) in.get("samples");
        Vae vae = ModelLoading.vae(ctx.models(), (VaeRef) in.get("vae"));
        checkLatent(vae, s);
        int f = vae.downscale();
        int tileSize = SamplerNodes.intOf(in, "tile_size");
        int overlap = SamplerNodes.intOf(in, "overlap");
        if (tileSize < overlap * 4) {
            overlap = tileSize / 4;
        }
        int tile = tileSize / f;
        int ov = overlap / f;
        int oh = s.height() * f;
        int ow = s.width() * f;
        int plane = 3 * oh * ow;
        float[] out = new float[s.batch() * plane];
        int latentPlane = s.channels() * s.height() * s.width();
        for (int b = 0; b < s.batch(); b++) {
            float[] item = java.util.Arrays.copyOfRange(s.samples(), b * latentPlane, (b + 1) * latentPlane);
            float[] a = tiled(vae, item, s.channels(), s.height(), s.width(), Math.max(1, tile * 2),
                    Math.max(1, tile / 2), ov);
            float[] c = tiled(vae, item, s.channels(), s.height(), s.width(), Math.max(1, tile / 2),
                    Math.max(1, tile * 2), ov);
            float[] d = tiled(vae, item, s.channels(), s.height(), s.width(), tile, tile, ov);
            for (int i = 0; i < plane; i++) {
                out[b * plane + i] = (a[i] + c[i] + d[i]) / 3f;
            }
        }
        return NodeResult.of(new Image(toUnit(out), s.batch(), oh, ow));
    }

    /** tiled_scale for one latent [C,h,w] with tiles tileH x tileW; returns the decoded [3,H,W] in [-1, 1]. */
    private static float[] tiled(Vae vae, float[] latent, int c, int h, int w, int tileH, int tileW, int overlap) {
        int f = vae.downscale();
        if (h <= tileH && w <= tileW) {
            return vae.decode(latent, 1, h, w);
        }
        int oh = h * f;
        int ow = w * f;
        float[] acc = new float[3 * oh * ow];
        float[] div = new float[oh * ow];
        for (int ty : positions(h, tileH, overlap)) {
            for (int tx : positions(w, tileW, overlap)) {
                int py = Math.max(0, Math.min(h - overlap, ty));
                int px = Math.max(0, Math.min(w - overlap, tx));
                int lh = Math.min(tileH, h - py);
                int lw = Math.min(tileW, w - px);
                float[] piece = crop(latent, c, h, w, py, px, lh, lw);
                float[] decoded = vae.decode(piece, 1, lh, lw);
                addFeathered(acc, div, oh, ow, decoded, lh * f, lw * f, py * f, px * f, overlap * f);
            }
        }
        for (int ch = 0; ch < 3; ch++) {
            for (int i = 0; i < oh * ow; i++) {
                acc[ch * oh * ow + i] /= div[i];
            }
        }
        return acc;
    }

    private static List<Integer> positions(int size, int tile, int overlap) {
        if (size <= tile) {
            return List.of(0);
        }
        List<Integer> p = new ArrayList<>();
        int stride = Math.max(1, tile - overlap);
        for (int i = 0; i < size - overlap; i += stride) {
            p.add(i);
        }
        return p;
    }

    private static float[] crop(float[] latent, int c, int h, int w, int y0, int x0, int lh, int lw) {
        float[] out = new float[c * lh * lw];
        for (int ch = 0; ch < c; ch++) {
            for (int y = 0; y < lh; y++) {
                System.arraycopy(latent, ch * h * w + (y + y0) * w + x0, out, ch * lh * lw + y * lw, lw);
            }
        }
        return out;
    }

    private static void addFeathered(float[] acc, float[] div, int oh, int ow, float[] piece, int ph, int pw, int y0,
            int x0, int feather) {
        for (int y = 0; y < ph; y++) {
            float my = edgeWeight(y, ph, feather);
            for (int x = 0; x < pw; x++) {
                float m = my * edgeWeight(x, pw, feather);
                int o = (y + y0) * ow + x + x0;
                div[o] += m;
                for (int ch = 0; ch < 3; ch++) {
                    acc[ch * oh * ow + o] += piece[ch * ph * pw + y * pw + x] * m;
                }
            }
        }
    }

    /** The mask of tiled_scale: (t + 1) / feather on the first and last feather rows, multiplied where they meet. */
    private static float edgeWeight(int i, int n, int feather) {
        if (feather <= 0 || feather >= n) {
            return 1f;
        }
        float m = 1f;
        if (i < feather) {
            m *= (i + 1) / (float) feather;
        }
        if (n - 1 - i < feather) {
            m *= (n - i) / (float) feather;
        }
        return m;
    }

    /** VAEEncode: pixels cropped (centered) to multiples of 8, then the posterior mean, raw (unscaled). */
    static NodeResult vaeEncode(Map<String, Object> in, NodeContext ctx) {
        Image img = (Image) in.get("pixels");
        Vae vae = ModelLoading.vae(ctx.models(), (VaeRef) in.get("vae"));
        if (!vae.canEncode()) {
            throw new WorkflowException("VAEEncode: the VAE has no encoder weights");
        }
        int f = vae.downscale();
        int h = img.height() / f * f;
        int w = img.width() / f * f;
        if (h == 0 || w == 0) {
            throw new WorkflowException("VAEEncode: image " + img.width() + "x" + img.height() + " is smaller than "
                    + f + " pixels");
        }
        int y0 = (img.height() % f) / 2;
        int x0 = (img.width() % f) / 2;
        float[] signed = new float[img.batch() * 3 * h * w];
        for (int b = 0; b < img.batch(); b++) {
            for (int c = 0; c < 3; c++) {
                for (int y = 0; y < h; y++) {
                    for (int x = 0; x < w; x++) {
                        float v = img.pixels()[((b * 3 + c) * img.height() + y + y0) * img.width() + x + x0];
                        signed[((b * 3 + c) * h + y) * w + x] = v * 2f - 1f;
                    }
                }
            }
        }
        Vae.Posterior p = vae.encode(signed, img.batch(), h, w);
        return NodeResult.of(new Latent(p.mean(), img.batch(), p.channels(), p.h(), p.w()));
    }

    /** LoadImage: RGB in [0, 1]; MASK = 1 - alpha / 255, or ComfyUI's 64x64 zeros for an image without alpha. */
    static NodeResult loadImage(Map<String, Object> in, NodeContext ctx) {
        Path file = ctx.paths().resolveInput((String) in.get("image"));
        PngReader.Rgba rgba;
        try {
            rgba = PngReader.readRgba(file);
        } catch (IOException | RuntimeException e) {
            throw new WorkflowException("LoadImage: cannot read " + file.getFileName() + ": " + e.getMessage());
        }
        PngImage png = rgba.rgb();
        int plane = png.width() * png.height();
        float[] pixels = new float[3 * plane];
        byte[] rgb = png.rgb();
        for (int p = 0; p < plane; p++) {
            for (int c = 0; c < 3; c++) {
                pixels[c * plane + p] = (rgb[p * 3 + c] & 0xFF) / 255f;
            }
        }
        Mask mask = rgba.alpha() == null ? new Mask(new float[64 * 64], 1, 64, 64)
                : new Mask(InpaintNodes.oneMinus(rgba.alpha()), 1, png.height(), png.width());
        return NodeResult.of(new Image(pixels, 1, png.height(), png.width()), mask);
    }

    static NodeResult saveImage(Map<String, Object> in, NodeContext ctx) {
        return save((Image) in.get("images"), (String) in.get("filename_prefix"), ctx.paths().outputDir(), "output",
                ctx);
    }

    static NodeResult previewImage(Map<String, Object> in, NodeContext ctx) {
        StringBuilder suffix = new StringBuilder("_temp_");
        for (int i = 0; i < 5; i++) {
            suffix.append((char) ('a' + ThreadLocalRandom.current().nextInt(26)));
        }
        return save((Image) in.get("images"), "ComfyUI" + suffix, ctx.paths().tempDir(), "temp", ctx);
    }

    /** SaveImage: {@code <prefix>_<counter:05>_.png} after the highest counter already there; never overwrites. */
    private static NodeResult save(Image images, String prefix, Path root, String type, NodeContext ctx) {
        Map<String, String> text = pngText(ctx);
        String normalized = prefix.replace('\\', '/');
        int slash = normalized.lastIndexOf('/');
        String subfolder = slash < 0 ? "" : normalized.substring(0, slash);
        String name = normalized.substring(slash + 1);
        if (name.isEmpty()) {
            throw new WorkflowException("filename_prefix '" + prefix + "' has no file name part");
        }
        Path folder = subfolder.isEmpty() ? root : ModelPaths.within(root, subfolder);
        ModelPaths.within(root, (subfolder.isEmpty() ? "" : subfolder + "/") + name + "_00001_.png");
        List<Map<String, Object>> results = new ArrayList<>();
        try {
            Files.createDirectories(folder);
            int counter = nextCounter(folder, name);
            for (int b = 0; b < images.batch(); b++) {
                PngImage png = PngImage.fromUnitFloats(images.pixels(), b, images.height(), images.width(), false);
                byte[] bytes = PngWriter.encode(png, text);
                String fileName = name.replace("%batch_num%", Integer.toString(b));
                Path written = writeFresh(folder, fileName, counter, bytes);
                counter = counterOf(written.getFileName().toString(), fileName) + 1;
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("filename", written.getFileName().toString());
                r.put("subfolder", subfolder);
                r.put("type", type);
                results.add(r);
            }
        } catch (IOException e) {
            throw new WorkflowException("cannot save image in " + folder + ": " + e.getMessage());
        }
        Map<String, Object> ui = new LinkedHashMap<>();
        ui.put("images", results);
        return new NodeResult(List.of(), ui);
    }

    /** The "prompt" chunk (the API-format workflow) and one chunk per extra_pnginfo key, JSON-encoded as ComfyUI. */
    private static Map<String, String> pngText(NodeContext ctx) {
        Map<String, String> text = new LinkedHashMap<>();
        if (ctx.prompt() != null) {
            text.put("prompt", ctx.prompt().toString());
        }
        JsonNode extra = ctx.extraPngInfo();
        if (extra != null && extra.isObject()) {
            for (var e : extra.properties()) {
                text.put(e.getKey(), e.getValue().toString());
            }
        }
        return text;
    }

    /** 1 + the highest counter of {@code name_NNNNN_*} files in folder (1 when none). */
    static int nextCounter(Path folder, String name) throws IOException {
        int max = 0;
        try (var s = Files.list(folder)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                max = Math.max(max, counterOf(p.getFileName().toString(), name));
            }
        }
        return max + 1;
    }

    private static int counterOf(String fileName, String name) {
        Matcher m = Pattern.compile(Pattern.quote(name) + "_(\\d+)_.*").matcher(fileName);
        if (!m.matches()) {
            return 0;
        }
        try {
            return Integer.parseInt(m.group(1));
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    /** Writes to the first free counter from {@code counter} on, atomically (a temp file linked in place). */
    private static Path writeFresh(Path folder, String name, int counter, byte[] bytes) throws IOException {
        Path tmp = Files.createTempFile(folder, "." + name, ".part");
        try {
            Files.write(tmp, bytes);
            for (int c = counter; ; c++) {
                Path target = folder.resolve(String.format("%s_%05d_.png", name, c));
                if (Files.exists(target)) {
                    continue;
                }
                try {
                    Files.createLink(target, tmp);
                    return target;
                } catch (FileAlreadyExistsException taken) {
                    // a concurrent writer took this counter: next one
                } catch (UnsupportedOperationException noLinks) {
                    Files.copy(tmp, target);
                    return target;
                }
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** ImageScale: a zero side keeps the aspect ratio. */
    static NodeResult imageScale(Map<String, Object> in, NodeContext ctx) {
        Image img = (Image) in.get("image");
        int width = SamplerNodes.intOf(in, "width");
        int height = SamplerNodes.intOf(in, "height");
        if (width == 0 && height == 0) {
            return NodeResult.of(img);
        }
        if (width == 0) {
            width = Math.max(1, UpscaleNodes.round((double) img.width() * height / img.height()));
        } else if (height == 0) {
            height = Math.max(1, UpscaleNodes.round((double) img.height() * width / img.width()));
        }
        float[] out = Resample.upscale(img.pixels(), img.batch(), 3, img.height(), img.width(), width, height,
                (String) in.get("upscale_method"), (String) in.get("crop"));
        return NodeResult.of(new Image(out, img.batch(), height, width));
    }

    private static void checkLatent(Vae vae, Latent s) {
        if (s.channels() != vae.latentChannels()) {
            throw new WorkflowException("the latent has " + s.channels() + " channels but the VAE takes "
                    + vae.latentChannels());
        }
    }

    /** ComfyUI's process_output: clamp((x + 1) / 2, 0, 1). */
    private static float[] toUnit(float[] decoded) {
        float[] out = new float[decoded.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = Math.min(1f, Math.max(0f, (decoded[i] + 1f) / 2f));
        }
        return out;
    }
}
