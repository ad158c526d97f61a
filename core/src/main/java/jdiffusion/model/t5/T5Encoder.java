package jdiffusion.model.t5;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.model.LayerWeights;
import jdiffusion.tensor.Gemm;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.Ops;
import jdiffusion.tensor.Parallel;

/**
 * The T5 encoder stack (T5 v1.1 / T5-XXL as SD3 uses it; T5 v1.0's ReLU feed-forward too): token embedding, then per
 * block a pre-RMS-norm self-attention with a relative position bias and a pre-RMS-norm (gated-GELU) feed-forward,
 * each added to the residual stream, then a final RMS norm. Output = HF's {@code last_hidden_state}.
 *
 * <p>T5 specifics: RMS norm (no mean, no bias, variance in float32, eps 1e-6); no 1/sqrt(d) scaling of q k^T (T5
 * folds it into the initialisation); no attention mask in SD3 (padding tokens attend and are attended to); the
 * position bias is computed from block 0's {@code relative_attention_bias} [buckets, heads] and shared by every
 * block: bucket(j - i), bidirectional (half the buckets for j > i), exact below buckets/4, logarithmic up to
 * {@link #MAX_DISTANCE}; the gated feed-forward is {@code wo(gelu_tanh(wi_0 h) * wi_1 h)}.
 *
 * <p>Weights use the HF names without a file prefix ({@code shared.weight} or {@code encoder.embed_tokens.weight},
 * {@code encoder.block.N.layer.0.SelfAttention.q.weight}, ...); see {@link #weights(SafeTensors)}. Sizes come
 * from shapes: d_model and the inner width from q, heads from the bias table, d_kv = inner / heads, d_ff from
 * wi_0. Linear weights stay in the precision the file stores them (fp16, bf16, fp8; ComfyUI's scaled fp8 files'
 * {@code scale_weight} is applied to each layer's output). The token embedding of a file view is read row by row
 * from the mapping when it is needed, never copied: the file must stay open while the encoder is used (other
 * views' embedding is copied once).
 */
public final class T5Encoder {
    /** relative_attention_max_distance: 128 in every released T5 (v1.0, v1.1, XXL); not stored in the weights. */
    public static final int MAX_DISTANCE = 128;
    private static final float EPS = 1e-6f;
    private static final Pattern BLOCK = Pattern.compile("encoder\\.block\\.(\\d+)\\..*");
    private static final String FINAL_NORM = "encoder.final_layer_norm.weight";
    private static final float GELU_C = (float) Math.sqrt(2 / Math.PI);

    /** What the weights say the encoder is. gated: v1.1's gated GELU (wi_0, wi_1), else v1.0's ReLU (wi). */
    public record Config(int vocabSize, int dModel, int heads, int dKv, int dFf, int layers, int buckets,
                         int maxDistance, boolean gated) {
        public int inner() {
            return heads * dKv;
        }
    }

    /** A linear layer whose output is scaled (ComfyUI's scaled fp8: weight = stored * scale_weight). */
    private record Proj(Linear linear, float scale) {
        float[] forward(float[] x, int rows) {
            float[] y = linear.forward(x, rows);
            if (scale != 1f) {
                for (int i = 0; i < y.length; i++) {
                    y[i] *= scale;
                }
            }
            return y;
        }

        void forwardAdd(float[] x, int rows, float[] residual) {
            if (scale == 1f) {
                linear.forwardAdd(x, rows, residual);
            } else {
                float[] y = forward(x, rows);
                Ops.addInPlace(residual, y);
            }
        }
    }

    private record Block(float[] attnNorm, Proj q, Proj k, Proj v, Proj o, float[] ffNorm, Proj wi0, Proj wi1,
                         Proj wo) {
    }

    private final Config config;
    private final Weights weights;
    private final String embeddingName;
    /** The whole embedding, only for views that cannot read one row from a mapped file; else null. */
    private final float[] embeddingCopy;
    private final float[] relativeBias;
    private final List<Block> blocks;
    private final float[] finalNorm;

    private T5Encoder(Config config, Weights weights, String embeddingName, float[] relativeBias, List<Block> blocks,
                      float[] finalNorm) {
        this.config = config;
        this.weights = weights;
        this.embeddingName = embeddingName;
        this.embeddingCopy = weights.rowsAreMapped() ? null : weights.get(embeddingName);
        this.relativeBias = relativeBias;
        this.blocks = blocks;
        this.finalNorm = finalNorm;
    }

    /**
     * The prefix under which a file holds a T5 encoder: "" for a separate T5 file ({@code t5xxl_fp16.safetensors},
     * HF's {@code text_encoder_3}), {@code text_encoders.t5xxl.transformer.} in SD3/SD3.5 checkpoints that include
     * it; null when the file has none.
     */
    public static String prefixIn(SafeTensors file) {
        for (String n : file.names()) {
            if (n.endsWith(FINAL_NORM)) {
                String prefix = n.substring(0, n.length() - FINAL_NORM.length());
                if (file.contains(prefix + "encoder.block.0.layer.0.SelfAttention.q.weight")) {
                    return prefix;
                }
            }
        }
        return null;
    }

    /** The T5 encoder weights of a file, prefix removed. */
    public static Weights weights(SafeTensors file) {
        String prefix = prefixIn(file);
        if (prefix == null) {
            throw new IllegalArgumentException(file.path() + ": no T5 encoder (no tensor ending in " + FINAL_NORM
                    + " with encoder.block.0 beside it)");
        }
        return Weights.prefixed(file, prefix);
    }

    /** Loads the encoder; every size from the tensor shapes ({@link #detect}). */
    public static T5Encoder load(Weights w) {
        Config config = detect(w);
        List<Block> blocks = new ArrayList<>(config.layers());
        for (int i = 0; i < config.layers(); i++) {
            blocks.add(loadBlock(w, i, config));
        }
        return new T5Encoder(config, w, embeddingName(w), w.get(block(0, "layer.0.SelfAttention.relative_attention_bias.weight")),
                List.copyOf(blocks), norm(w, FINAL_NORM, config.dModel()));
    }

    private static String embeddingName(Weights w) {
        return w.has("shared.weight") ? "shared.weight"
                : w.has("encoder.embed_tokens.weight") ? "encoder.embed_tokens.weight" : null;
    }

    /**
     * The encoder's sizes from tensor names and shapes alone (nothing is read): d_model from the embedding, heads
     * from the relative bias table [buckets, heads], d_kv = q rows / heads, d_ff from wi_0 (wi for v1.0), blocks
     * counted.
     */
    public static Config detect(Weights w) {
        String embedding = embeddingName(w);
        if (embedding == null) {
            throw new IllegalArgumentException("T5 encoder has no token embedding (shared.weight or encoder.embed_tokens.weight)");
        }
        int[] emb = w.shape(embedding);
        String bias = block(0, "layer.0.SelfAttention.relative_attention_bias.weight");
        String qName = block(0, "layer.0.SelfAttention.q.weight");
        if (emb.length != 2 || !w.has(bias) || !w.has(qName)) {
            throw new IllegalArgumentException("T5 encoder: token embedding " + Arrays.toString(emb)
                    + (w.has(bias) ? "" : ", no " + bias) + (w.has(qName) ? "" : ", no " + qName));
        }
        int[] biasShape = w.shape(bias);
        int[] q = w.shape(qName);
        int dModel = emb[1];
        if (biasShape.length != 2 || biasShape[1] == 0 || q.length != 2 || q[1] != dModel || q[0] % biasShape[1] != 0) {
            throw new IllegalArgumentException("T5 encoder: q weight " + Arrays.toString(q) + " and relative bias "
                    + Arrays.toString(biasShape) + " do not fit d_model " + dModel);
        }
        int heads = biasShape[1];
        boolean gated = w.has(block(0, "layer.1.DenseReluDense.wi_0.weight"));
        String wi = gated ? "layer.1.DenseReluDense.wi_0.weight" : "layer.1.DenseReluDense.wi.weight";
        if (!w.has(block(0, wi))) {
            throw new IllegalArgumentException("T5 encoder block 0 has no feed-forward (" + block(0, wi) + ")");
        }
        int dFf = w.shape(block(0, wi))[0];
        return new Config(emb[0], dModel, heads, q[0] / heads, dFf, countBlocks(w), biasShape[0], MAX_DISTANCE, gated);
    }

    private static int countBlocks(Weights w) {
        int max = -1;
        for (String n : w.names()) {
            Matcher m = BLOCK.matcher(n);
            if (m.matches()) {
                max = Math.max(max, Integer.parseInt(m.group(1)));
            }
        }
        return max + 1;
    }

    private static String block(int i, String suffix) {
        return "encoder.block." + i + "." + suffix;
    }

    private static Block loadBlock(Weights w, int i, Config c) {
        String a = "layer.0.SelfAttention.";
        String f = "layer.1.DenseReluDense.";
        int d = c.dModel();
        int inner = c.inner();
        return new Block(norm(w, block(i, "layer.0.layer_norm.weight"), d),
                proj(w, block(i, a + "q"), inner, d),
                proj(w, block(i, a + "k"), inner, d),
                proj(w, block(i, a + "v"), inner, d),
                proj(w, block(i, a + "o"), d, inner),
                norm(w, block(i, "layer.1.layer_norm.weight"), d),
                proj(w, block(i, f + (c.gated() ? "wi_0" : "wi")), c.dFf(), d),
                c.gated() ? proj(w, block(i, f + "wi_1"), c.dFf(), d) : null,
                proj(w, block(i, f + "wo"), d, c.dFf()));
    }

    private static Proj proj(Weights w, String name, int out, int in) {
        String wn = name + ".weight";
        if (!w.has(wn)) {
            throw new IllegalArgumentException("T5 encoder tensor " + wn + " is missing");
        }
        int[] s = w.shape(wn);
        if (s.length != 2 || s[0] != out || s[1] != in) {
            throw new IllegalArgumentException("T5 encoder tensor " + wn + " has shape " + Arrays.toString(s)
                    + ", expected [" + out + ", " + in + "]");
        }
        float scale = 1f;
        if (w.has(name + ".scale_weight")) {
            float[] sw = w.get(name + ".scale_weight");
            if (sw.length != 1) {
                throw new IllegalArgumentException("T5 encoder tensor " + name + ".scale_weight has " + sw.length
                        + " values, expected one");
            }
            scale = sw[0];
        }
        // the weights stay in the mapped file, read at each call in their stored width (fp8 included)
        return new Proj(LayerWeights.linear(w, wn, null, out, in), scale);
    }

    private static float[] norm(Weights w, String name, int d) {
        if (!w.has(name)) {
            throw new IllegalArgumentException("T5 encoder tensor " + name + " is missing");
        }
        float[] g = w.get(name);
        if (g.length != d) {
            throw new IllegalArgumentException("T5 encoder tensor " + name + " has " + g.length + " values, expected " + d);
        }
        return g;
    }

    public Config config() {
        return config;
    }

    /** Bytes of packed linear weights this encoder holds (the embedding stays in the file). */
    public long weightBytes() {
        long n = 0;
        for (Block b : blocks) {
            for (Proj p : new Proj[] {b.q(), b.k(), b.v(), b.o(), b.wi0(), b.wi1(), b.wo()}) {
                n += p == null ? 0 : p.linear().weightBytes();
            }
        }
        return n;
    }

    /**
     * last_hidden_state [batch][tokens][d_model] of rows of token ids (no attention mask: every position, padding
     * included, attends to every other).
     */
    public float[] forward(int[] ids, int batch) {
        if (batch <= 0 || ids.length % batch != 0 || ids.length == 0) {
            throw new IllegalArgumentException(ids.length + " token ids do not split into " + batch + " rows");
        }
        int tokens = ids.length / batch;
        int rows = ids.length;
        float[] x = embed(ids);
        float[] bias = positionBias(tokens);
        for (Block b : blocks) {
            float[] h = rmsNorm(x, rows, b.attnNorm());
            float[] attn = attention(b.q().forward(h, rows), b.k().forward(h, rows), b.v().forward(h, rows), bias,
                    batch, tokens);
            b.o().forwardAdd(attn, rows, x);
            h = rmsNorm(x, rows, b.ffNorm());
            float[] a = b.wi0().forward(h, rows);
            if (config.gated()) {
                geluTanhTimes(a, b.wi1().forward(h, rows));
            } else {
                for (int i = 0; i < a.length; i++) {
                    a[i] = Math.max(a[i], 0f);
                }
            }
            b.wo().forwardAdd(a, rows, x);
        }
        return rmsNorm(x, rows, finalNorm);
    }

    /** Rows of the token embedding, read from the (mapped) file one at a time. */
    private float[] embed(int[] ids) {
        int d = config.dModel();
        float[] x = new float[ids.length * d];
        for (int i = 0; i < ids.length; i++) {
            int id = ids[i];
            if (id < 0 || id >= config.vocabSize()) {
                throw new IllegalArgumentException("token id " + id + " outside the T5 vocabulary of " + config.vocabSize());
            }
            if (embeddingCopy != null) {
                System.arraycopy(embeddingCopy, id * d, x, i * d, d);
            } else {
                System.arraycopy(weights.row(embeddingName, id), 0, x, i * d, d);
            }
        }
        return x;
    }

    /** T5LayerNorm: w * x / sqrt(mean(x^2) + eps), no mean subtraction, no bias. */
    private static float[] rmsNorm(float[] x, int rows, float[] w) {
        int d = w.length;
        float[] y = new float[x.length];
        Parallel.forRange(rows, r -> {
            int base = r * d;
            double ss = 0;
            for (int j = 0; j < d; j++) {
                float v = x[base + j];
                ss += v * v;
            }
            float inv = (float) (1 / Math.sqrt((float) (ss / d) + (double) EPS));
            for (int j = 0; j < d; j++) {
                y[base + j] = w[j] * (x[base + j] * inv);
            }
        });
        return y;
    }

    /** a = gelu_new(a) * b (HF's gelu_new: the tanh approximation), in place. */
    private static void geluTanhTimes(float[] a, float[] b) {
        int chunk = 4096;
        Parallel.forRange((a.length + chunk - 1) / chunk, c -> {
            int end = Math.min(a.length, (c + 1) * chunk);
            for (int i = c * chunk; i < end; i++) {
                float v = a[i];
                float inner = GELU_C * (v + 0.044715f * (v * v * v));
                a[i] = 0.5f * v * (1f + (float) Math.tanh(inner)) * b[i];
            }
        });
    }

    /** The bias table [heads][tokens][tokens]: bias[h][i][j] = relative_attention_bias[bucket(j - i)][h]. */
    float[] positionBias(int tokens) {
        int heads = config.heads();
        float[] out = new float[heads * tokens * tokens];
        int[] bucketOf = new int[2 * tokens - 1];
        for (int rel = -(tokens - 1); rel < tokens; rel++) {
            bucketOf[rel + tokens - 1] = bucket(rel, config.buckets(), config.maxDistance());
        }
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < tokens; i++) {
                for (int j = 0; j < tokens; j++) {
                    out[(h * tokens + i) * tokens + j] = relativeBias[bucketOf[j - i + tokens - 1] * heads + h];
                }
            }
        }
        return out;
    }

    /**
     * HF's bidirectional _relative_position_bucket of relative = key position - query position: half the buckets
     * for keys after the query; distances below a quarter of the buckets exact, then logarithmic (computed in float32
     * as torch does) up to maxDistance, capped at the last bucket of the half.
     */
    static int bucket(int relative, int buckets, int maxDistance) {
        int half = buckets / 2;
        int result = relative > 0 ? half : 0;
        int distance = Math.abs(relative);
        int maxExact = half / 2;
        if (distance < maxExact) {
            return result + distance;
        }
        float ratio = (float) Math.log((float) distance / maxExact);
        float scaled = ratio / (float) Math.log((double) maxDistance / maxExact) * (half - maxExact);
        int large = maxExact + (int) scaled;
        return result + Math.min(large, half - 1);
    }

    /** softmax(q k^T + bias) v per batch row and head (no scaling), heads side by side in the output's channels. */
    private float[] attention(float[] q, float[] k, float[] v, float[] bias, int batch, int tokens) {
        int heads = config.heads();
        int dKv = config.dKv();
        int inner = config.inner();
        float[] out = new float[batch * tokens * inner];
        Parallel.forRange(batch * heads, bh -> {
            int b = bh / heads;
            int h = bh % heads;
            int off = b * tokens * inner + h * dKv;
            float[] scores = new float[tokens * tokens];
            Gemm.multiply(new Gemm.Dense(q, off, inner), tokens, Gemm.pack(k, off, 1, inner, dKv, tokens), scores, 0,
                    tokens, null, false);
            int biasBase = h * tokens * tokens;
            for (int i = 0; i < scores.length; i++) {
                scores[i] += bias[biasBase + i];
            }
            Ops.softmaxRows(scores, tokens, tokens);
            Gemm.multiply(new Gemm.Dense(scores, 0, tokens), tokens, Gemm.pack(v, off, inner, 1, tokens, dKv), out, off,
                    inner, null, false);
        });
        return out;
    }
}
