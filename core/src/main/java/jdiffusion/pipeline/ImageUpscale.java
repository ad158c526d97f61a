package jdiffusion.pipeline;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.io.PngWriter;
import jdiffusion.model.upscale.UpscaleModel;
import jdiffusion.tensor.Parallel;

/**
 * Upscaling an image with a model, as ComfyUI's LoadImage, ImageUpscaleWithModel and SaveImage do it: 8-bit RGB to
 * [0, 1], tiles with overlap (ComfyUI: 512 and 32), clamped, back to 8 bits by truncation.
 *
 * <pre>
 *   Path written = ImageUpscale.file(Path.of("4x.safetensors"), Path.of("in.png"), Path.of("out.png"), 512, 32);
 * </pre>
 */
public final class ImageUpscale {
    public static final int DEFAULT_TILE = 512;
    public static final int DEFAULT_OVERLAP = 32;

    private ImageUpscale() {
    }

    /** The upscaled image; tile 0 runs the whole image in one call. */
    public static PngImage upscale(UpscaleModel model, PngImage in, int tile, int overlap) {
        if (model.inChannels() != 3 || model.outChannels() != 3) {
            throw new GenerateException("the upscale model maps " + model.inChannels() + " to " + model.outChannels()
                    + " channels, not RGB to RGB");
        }
        if (tile < 0 || overlap < 0 || (tile > 0 && overlap >= tile)) {
            throw new GenerateException("tile " + tile + " with overlap " + overlap + ": need tile >= 0 and"
                    + " overlap < tile");
        }
        int h = in.height();
        int w = in.width();
        int s = model.scale();
        if ((long) h * s * w * s * 3 > Integer.MAX_VALUE - 16) {
            throw new GenerateException("a " + w + "x" + h + " image upscaled " + s + "x is too large");
        }
        float[] x = new float[3 * h * w];
        for (int p = 0; p < h * w; p++) {
            for (int c = 0; c < 3; c++) {
                x[c * h * w + p] = (in.rgb()[p * 3 + c] & 0xFF) / 255f;
            }
        }
        int t = tile == 0 ? Math.max(h, w) : tile;
        float[] y = model.upscaleTiled(x, 1, h, w, t, t, tile == 0 ? 0 : overlap);
        return PngImage.fromUnitFloats(y, 0, h * s, w * s, false);
    }

    /**
     * Reads a PNG, upscales it, writes the result (a counter is added when the output exists) with the input's
     * {@code parameters} text extended by A1111's postprocessing fields; returns the file written.
     */
    public static Path file(Path modelFile, Path input, Path output, int tile, int overlap, Integer threads) {
        RequestValidator.requireFile("upscale model", modelFile);
        RequestValidator.requireFile("input image", input);
        if (threads != null) {
            Parallel.setThreads(threads);
        }
        UpscaleModel model;
        try {
            model = UpscaleModel.open(modelFile);
        } catch (ModelFormatException e) {
            throw new GenerateException(e.getMessage());
        }
        PngImage in;
        Map<String, String> inText;
        try {
            in = PngReader.read(input);
            inText = PngReader.text(input);
        } catch (IOException e) {
            throw new GenerateException("cannot read " + input + ": " + e.getMessage());
        }
        PngImage out = upscale(model, in, tile, overlap);
        String name = modelFile.getFileName().toString();
        int dot = name.lastIndexOf('.');
        String fields = "Postprocess upscale by: " + model.scale() + ", Postprocess upscaler: "
                + (dot > 0 ? name.substring(0, dot) : name);
        String before = inText.get("parameters");
        Map<String, String> text = new LinkedHashMap<>();
        text.put("parameters", before == null || before.isBlank() ? fields : before + ", " + fields);
        try {
            return PngWriter.writeNew(output, out, text);
        } catch (IOException e) {
            throw new GenerateException("cannot write output: " + e.getMessage());
        }
    }
}
