package jdiffusion.model.mmdit;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.Weights;
import jdiffusion.model.LayerWeights;
import jdiffusion.model.TimestepEmbedding;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.Ops;

/**
 * The MMDiT of Stable Diffusion 3 / 3.5 (Esser et al. 2024; MMDiT-X for 3.5 Medium), on the original names of
 * Stability's single files without the {@code model.diffusion_model.} prefix:
 *
 * <pre>
 * x (latent) -> 2x2 patches -> x_embedder + pos_embed (centre crop)       context -> context_embedder
 * c = t_embedder(sinusoid(t)) + y_embedder(pooled)
 * joint_blocks: adaLN-Zero modulation of both streams from c, one attention over [context, image] tokens
 *               (+ an image-only attention in MMDiT-X blocks), gated residuals, GELU(tanh) feed-forwards
 * final_layer: adaLN (shift, scale) + linear -> unpatchify -> velocity
 * </pre>
 *
 * Activations are token-major rows [batch][tokens][hidden]; weights stay in the 16 bits the file stores them in.
 */
public final class MMDiT {
    private final MMDiTConfig config;
    private final Linear xEmbedder;
    /**
     * The positional table stays in the weights (mapped for a file: SD3.5 Medium's 384x384x1536 would be 0.9 GB as
     * float32); a forward reads the centre crop its grid needs, kept for the last grid size (25 MB at 1024x1024).
     */
    private final Weights posTable;
    private volatile PosCrop lastCrop;
    private final Linear t1;
    private final Linear t2;
    private final Linear y1;
    private final Linear y2;
    private final Linear contextEmbedder;
    private final List<JointBlock> blocks;
    private final Linear finalModulation;
    private final Linear finalLinear;

    /** Receives named intermediates of a forward pass (tests compare them with the reference's). */
    @FunctionalInterface
    public interface Probe {
        void record(String name, float[] values);

        Probe NONE = (name, values) -> { };
    }

    /** The centre crop of the positional table for a gh x gw grid, [gh*gw][hidden]. */
    private record PosCrop(int gh, int gw, float[] rows) {
    }

    private MMDiT(MMDiTConfig config, Linear xEmbedder, Weights posTable, Linear t1, Linear t2, Linear y1, Linear y2,
                  Linear contextEmbedder, List<JointBlock> blocks, Linear finalModulation, Linear finalLinear) {
        this.config = config;
        this.xEmbedder = xEmbedder;
        this.posTable = posTable;
        this.t1 = t1;
        this.t2 = t2;
        this.y1 = y1;
        this.y2 = y2;
        this.contextEmbedder = contextEmbedder;
        this.blocks = blocks;
        this.finalModulation = finalModulation;
        this.finalLinear = finalLinear;
    }

    /** Reads the MMDiT from weights under its original names (no file prefix), every shape checked. */
    public static MMDiT load(Weights weights) throws ModelFormatException {
        MMDiTConfig cfg = MMDiTConfig.detect(weights);
        for (String n : weights.names()) {
            if (n.endsWith(".scale_weight")) {
                throw new ModelFormatException("MMDiT: tensor '" + n + "': scaled fp8 MMDiT weights are not supported");
            }
        }
        try {
            Tensors t = new Tensors(weights);
            int h = cfg.hidden();
            int p = cfg.patch();
            Linear xe = t.linear("x_embedder.proj", cfg.inChannels() * p * p, h);
            t.check("pos_embed", 1, cfg.posEmbedMaxSize() * cfg.posEmbedMaxSize(), h);
            Linear t1 = t.linear("t_embedder.mlp.0", cfg.timeEmbedIn(), h);
            Linear t2 = t.linear("t_embedder.mlp.2", h, h);
            Linear y1 = t.linear("y_embedder.mlp.0", cfg.admIn(), h);
            Linear y2 = t.linear("y_embedder.mlp.2", h, h);
            Linear ctx = t.linear("context_embedder", cfg.contextIn(), h);
            List<JointBlock> blocks = new ArrayList<>();
            for (int i = 0; i < cfg.depth(); i++) {
                blocks.add(JointBlock.load(t, "joint_blocks." + i, cfg, i == cfg.depth() - 1));
            }
            Linear fm = t.linear("final_layer.adaLN_modulation.1", h, 2 * h);
            Linear fl = t.linear("final_layer.linear", h, p * p * cfg.outChannels());
            return new MMDiT(cfg, xe, weights, t1, t2, y1, y2, ctx, List.copyOf(blocks), fm, fl);
        } catch (IllegalStateException | IllegalArgumentException e) {
            throw new ModelFormatException("MMDiT: " + e.getMessage(), e);
        }
    }

    public MMDiTConfig config() {
        return config;
    }

    /** Bytes the packed weights occupy. */
    public long weightBytes() {
        PosCrop crop = lastCrop;
        long b = crop == null ? 0 : crop.rows().length * 4L;
        for (Linear l : List.of(xEmbedder, t1, t2, y1, y2, contextEmbedder, finalModulation, finalLinear)) {
            b += l.weightBytes();
        }
        for (JointBlock jb : blocks) {
            b += jb.weightBytes();
        }
        return b;
    }

    /**
     * One forward pass.
     *
     * @param x         latents NCHW [batch][inChannels][h][w] (any h, w: odd sizes are padded circularly to whole
     *                  patches and the output cropped back, as ComfyUI does)
     * @param timesteps one per image: sigma * 1000 for flow models
     * @param context   [batch][tokens][contextIn]
     * @param pooled    [batch][admIn]
     * @return the prediction (velocity) NCHW [batch][outChannels][h][w]
     */
    public float[] forward(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens,
                           float[] pooled) {
        return forward(x, batch, h, w, timesteps, context, tokens, pooled, Probe.NONE);
    }

    /** {@link #forward} reporting its intermediates to probe. */
    public float[] forward(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens,
                           float[] pooled, Probe probe) {
        int c = config.inChannels();
        int hid = config.hidden();
        int p = config.patch();
        require(batch > 0 && h > 0 && w > 0 && tokens >= 0, "batch, size and tokens must be positive");
        require(x.length == (long) batch * c * h * w, "latent holds " + x.length + " values, expected " + batch
                + "x" + c + "x" + h + "x" + w);
        require(timesteps.length == batch, timesteps.length + " timesteps for a batch of " + batch);
        require(context.length == (long) batch * tokens * config.contextIn(), "context holds " + context.length
                + " values, expected " + batch + "x" + tokens + "x" + config.contextIn());
        require(pooled.length == batch * config.admIn(), "pooled holds " + pooled.length + " values, expected "
                + batch + "x" + config.admIn());
        int gh = (h + p - 1) / p;
        int gw = (w + p - 1) / p;
        int m = config.posEmbedMaxSize();
        require(gh <= m && gw <= m, "a latent of " + h + "x" + w + " is " + gh + "x" + gw + " patches, more than the "
                + "positional table's " + m + "x" + m + " (" + m * p * 8 + " pixels a side)");
        int n = gh * gw;
        long seqValues = (long) batch * (n + tokens) * 3 * hid;
        require(seqValues < Integer.MAX_VALUE - 16, "a latent of " + h + "x" + w + " with batch " + batch
                + " needs arrays larger than Java's (2^31 values)");

        float[] xs = xEmbedder.forward(patchify(x, batch, c, h, w, gh, gw), batch * n);
        addPositions(xs, batch, gh, gw);
        probe.record("x_embedded", xs);

        float[] t = TimestepEmbedding.sinusoid(timesteps, config.timeEmbedIn());
        float[] temb = t2.forward(silu(t1.forward(t, batch)), batch);
        float[] yemb = y2.forward(silu(y1.forward(pooled, batch)), batch);
        Ops.addInPlace(temb, yemb);
        probe.record("temb", temb);
        float[] cond = TokenOps.silu(temb);

        float[] ctx = contextEmbedder.forward(context, batch * tokens);
        probe.record("context_embedded", ctx);

        for (int i = 0; i < blocks.size(); i++) {
            ctx = blocks.get(i).forward(ctx, tokens, xs, n, batch, cond);
            probe.record("block" + i + ".x", xs);
            if (ctx != null) {
                probe.record("block" + i + ".context", ctx);
            }
        }

        float[] mod = finalModulation.forward(cond, batch);
        float[] xn = TokenOps.normModulate(xs, 0, n, hid, mod, 2, 0, 1);
        probe.record("final_norm", xn);
        float[] out = finalLinear.forward(xn, batch * n);
        probe.record("final_linear", out);
        return unpatchify(out, batch, config.outChannels(), h, w, gh, gw);
    }

    /** [B][C][H][W] to rows [B][gh*gw][C*p*p] in the (c, py, px) order of the conv weight; circular padding. */
    private float[] patchify(float[] x, int batch, int c, int h, int w, int gh, int gw) {
        int p = config.patch();
        int width = c * p * p;
        float[] rows = new float[batch * gh * gw * width];
        TokenOps.rows(batch * gh, r -> {
            int b = r / gh;
            int i = r % gh;
            for (int j = 0; j < gw; j++) {
                int dst = ((b * gh + i) * gw + j) * width;
                for (int ch = 0; ch < c; ch++) {
                    int plane = (b * c + ch) * h * w;
                    for (int py = 0; py < p; py++) {
                        int y = (i * p + py) % h;
                        for (int px = 0; px < p; px++) {
                            rows[dst + (ch * p + py) * p + px] = x[plane + y * w + (j * p + px) % w];
                        }
                    }
                }
            }
        });
        return rows;
    }

    /** Adds the centre crop of the positional table (top = (M - gh) / 2, left = (M - gw) / 2, floored). */
    private void addPositions(float[] xs, int batch, int gh, int gw) {
        int hid = config.hidden();
        float[] pos = crop(gh, gw);
        TokenOps.rows(batch * gh * gw, r -> {
            int src = r % (gh * gw) * hid;
            int dst = r * hid;
            for (int j = 0; j < hid; j++) {
                xs[dst + j] += pos[src + j];
            }
        });
    }

    /** The centre crop for a gh x gw grid: gh runs of gw table rows, read from the weights (the last one kept). */
    private float[] crop(int gh, int gw) {
        PosCrop c = lastCrop;
        if (c != null && c.gh() == gh && c.gw() == gw) {
            return c.rows();
        }
        int m = config.posEmbedMaxSize();
        int hid = config.hidden();
        int top = (m - gh) / 2;
        int left = (m - gw) / 2;
        float[] rows = new float[gh * gw * hid];
        for (int i = 0; i < gh; i++) {
            float[] run = posTable.slice("pos_embed", ((long) (top + i) * m + left) * hid, gw * hid);
            System.arraycopy(run, 0, rows, i * gw * hid, gw * hid);
        }
        lastCrop = new PosCrop(gh, gw, rows);
        return rows;
    }

    /** Rows [B][gh*gw][p*p*C] in (py, px, c) order to NCHW [B][C][h][w], cropping the padding. */
    private float[] unpatchify(float[] rows, int batch, int c, int h, int w, int gh, int gw) {
        int p = config.patch();
        float[] out = new float[batch * c * h * w];
        int width = p * p * c;
        for (int b = 0; b < batch; b++) {
            for (int i = 0; i < gh; i++) {
                for (int j = 0; j < gw; j++) {
                    int src = ((b * gh + i) * gw + j) * width;
                    for (int py = 0; py < p; py++) {
                        int y = i * p + py;
                        if (y >= h) {
                            continue;
                        }
                        for (int px = 0; px < p; px++) {
                            int xx = j * p + px;
                            if (xx >= w) {
                                continue;
                            }
                            for (int ch = 0; ch < c; ch++) {
                                out[((b * c + ch) * h + y) * w + xx] = rows[src + (py * p + px) * c + ch];
                            }
                        }
                    }
                }
            }
        }
        return out;
    }

    private static float[] silu(float[] x) {
        Ops.siluInPlace(x);
        return x;
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("MMDiT: " + message);
        }
    }

    // -------------------------------------------------------------------------------------------------------------

    /** Reads layers, checking shapes; fp16/bf16 (and fp8) weights stay in their width. */
    static final class Tensors {
        private final Weights weights;

        Tensors(Weights weights) {
            this.weights = weights;
        }

        boolean has(String name) {
            return weights.has(name);
        }

        /** Fails unless the tensor is there with this shape (without reading it). */
        void check(String name, int... expected) {
            if (!weights.has(name)) {
                throw new IllegalStateException("missing tensor '" + name + "'");
            }
            int[] s = weights.shape(name);
            if (!Arrays.equals(s, expected)) {
                throw new IllegalStateException("tensor '" + name + "' has shape " + Arrays.toString(s)
                        + ", expected " + Arrays.toString(expected));
            }
        }

        float[] get(String name, int... expected) {
            check(name, expected);
            return weights.get(name);
        }

        /** A linear layer (or a conv whose kernel covers its whole input patch) with the given widths, biased. */
        Linear linear(String prefix, int in, int out) {
            String wn = prefix + ".weight";
            if (!weights.has(wn)) {
                throw new IllegalStateException("missing tensor '" + wn + "'");
            }
            int[] s = weights.shape(wn);
            long numel = 1;
            for (int d : s) {
                numel *= d;
            }
            if (s.length < 2 || s[0] != out || numel != (long) out * in) {
                throw new IllegalStateException("tensor '" + wn + "' has shape " + Arrays.toString(s)
                        + ", expected [" + out + ", " + in + "]");
            }
            float[] b = get(prefix + ".bias", out);
            return LayerWeights.linear(weights, wn, b, out, in);
        }
    }
}
