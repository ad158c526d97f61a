package jdiffusion.model;

import java.util.ArrayList;
import java.util.List;

/**
 * When and how the VAE decodes in tiles: overlapping latent tiles are decoded one at a time and blended with
 * weights that ramp linearly across each overlap, so the seams fade instead of showing. Tiles differ slightly from
 * a whole decode (the group norms and the mid attention see only their tile), hence the overlap.
 *
 * @param mode        AUTO tiles when a whole decode would exceed budgetBytes; ALWAYS and NEVER force it
 * @param tile        tile size in latent cells (64 = 512 pixels)
 * @param overlap     overlap between neighbouring tiles in latent cells
 * @param budgetBytes AUTO's memory budget for a whole decode's activations
 */
public record VaeTiling(Mode mode, int tile, int overlap, long budgetBytes) {
    /** Whether to tile. */
    public enum Mode { AUTO, ALWAYS, NEVER }

    /** Live activations of a decoder res block at its widest level, in units of its largest tensor. */
    static final int LIVE_TENSORS = 5;

    /**
     * ComfyUI's VAEDecodeTiled defaults (512 pixels, 64 pixels overlap); budget a third of the heap, at most 3 GB, or
     * {@code -Djdiffusion.vaeTilingBudget=BYTES} (the launcher's heap plan sets the budget the default heap would
     * give, so a heap sized to the work decodes the same tiles).
     */
    public static VaeTiling auto() {
        return new VaeTiling(Mode.AUTO, 64, 8, budget(System.getProperty("jdiffusion.vaeTilingBudget"),
                Runtime.getRuntime().maxMemory()));
    }

    /** The AUTO budget: the property's bytes when it is a positive number, else a third of the heap, at most 3 GB. */
    static long budget(String property, long maxHeap) {
        if (property != null) {
            try {
                long b = Long.parseLong(property.strip());
                if (b > 0) {
                    return b;
                }
            } catch (NumberFormatException e) {
                // not a number: the heap's share applies
            }
        }
        return Math.min(3L << 30, maxHeap / 3);
    }

    /** Always in tiles of the default size. */
    public static VaeTiling always() {
        return new VaeTiling(Mode.ALWAYS, 64, 8, auto().budgetBytes);
    }

    public static VaeTiling never() {
        return new VaeTiling(Mode.NEVER, 64, 8, Long.MAX_VALUE);
    }

    public VaeTiling {
        if (tile < 2 || overlap < 0 || overlap >= tile) {
            throw new IllegalArgumentException("VAE tiling: need tile >= 2 and 0 <= overlap < tile, got tile " + tile
                    + ", overlap " + overlap);
        }
    }

    /** Whether a decode whose largest activation holds that many floats goes in tiles. */
    boolean tiles(long largestActivation, int h, int w) {
        if (h <= tile && w <= tile) {
            return false;
        }
        return switch (mode) {
            case NEVER -> false;
            case ALWAYS -> true;
            case AUTO -> largestActivation * 4L * LIVE_TENSORS > budgetBytes
                    || largestActivation >= Integer.MAX_VALUE - 16;
        };
    }

    /** Tile starts along an axis of size cells: every cell covered, neighbours overlapping by at least overlap. */
    List<Integer> starts(int size) {
        List<Integer> s = new ArrayList<>();
        if (size <= tile) {
            s.add(0);
            return s;
        }
        int step = tile - overlap;
        for (int x = 0; ; x += step) {
            if (x + tile >= size) {
                s.add(size - tile);
                return s;
            }
            s.add(x);
        }
    }

    /**
     * Blend weight of pixel p of a tile spanning [start, start + len) pixels of an axis of size pixels: 1 inside,
     * ramping linearly to near 0 across the overlap at edges that have a neighbour (image borders stay 1).
     */
    static float weight(int p, int start, int len, int size, int overlapPx) {
        float w = 1f;
        if (overlapPx > 0) {
            if (start > 0) {
                w = Math.min(w, (p + 1f) / (overlapPx + 1f));
            }
            if (start + len < size) {
                w = Math.min(w, (len - p) / (overlapPx + 1f));
            }
        }
        return w;
    }

    /** Decodes one NCHW latent tile of th x tw cells to its NCHW image (factor times larger). */
    @FunctionalInterface
    interface TileDecoder {
        float[] decode(float[] tile, int th, int tw);
    }

    /**
     * Decodes tile by tile, accumulating weight x tile and the weights, then dividing: a feathered blend. A decoder
     * that is local (each output pixel depends on its own latent cell only) gives exactly the whole decode.
     */
    float[] decode(float[] latent, int batch, int latentChannels, int h, int w, int imageChannels, int factor,
                   TileDecoder decoder) {
        int th = Math.min(tile, h);
        int tw = Math.min(tile, w);
        int oh = h * factor;
        int ow = w * factor;
        float[] out = new float[batch * imageChannels * oh * ow];
        float[] weightSum = new float[oh * ow];
        for (int y0 : starts(h)) {
            for (int x0 : starts(w)) {
                float[] img = decoder.decode(crop(latent, batch * latentChannels, h, w, y0, x0, th, tw), th, tw);
                blend(img, out, weightSum, batch * imageChannels, oh, ow, y0 * factor, x0 * factor, th * factor,
                        tw * factor, overlap * factor);
            }
        }
        int plane = oh * ow;
        for (int bc = 0; bc < batch * imageChannels; bc++) {
            for (int p = 0; p < plane; p++) {
                out[bc * plane + p] /= weightSum[p];
            }
        }
        return out;
    }

    /** The th x tw window at (y0, x0) of planes h x w. */
    private static float[] crop(float[] x, int planes, int h, int w, int y0, int x0, int th, int tw) {
        float[] t = new float[planes * th * tw];
        for (int p = 0; p < planes; p++) {
            for (int y = 0; y < th; y++) {
                System.arraycopy(x, (p * h + y0 + y) * w + x0, t, (p * th + y) * tw, tw);
            }
        }
        return t;
    }

    /** Adds weight x tile (planes of ph x pw pixels at (py0, px0)) into out, and the weights into weightSum. */
    private static void blend(float[] tile, float[] out, float[] weightSum, int planes, int oh, int ow, int py0,
                              int px0, int ph, int pw, int overlapPx) {
        float[] wy = new float[ph];
        float[] wx = new float[pw];
        for (int y = 0; y < ph; y++) {
            wy[y] = weight(y, py0, ph, oh, overlapPx);
        }
        for (int x = 0; x < pw; x++) {
            wx[x] = weight(x, px0, pw, ow, overlapPx);
        }
        for (int y = 0; y < ph; y++) {
            for (int x = 0; x < pw; x++) {
                weightSum[(py0 + y) * ow + px0 + x] += wy[y] * wx[x];
            }
        }
        for (int p = 0; p < planes; p++) {
            for (int y = 0; y < ph; y++) {
                int src = (p * ph + y) * pw;
                int dst = (p * oh + py0 + y) * ow + px0;
                for (int x = 0; x < pw; x++) {
                    out[dst + x] += wy[y] * wx[x] * tile[src + x];
                }
            }
        }
    }
}
