package jdiffusion.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdiffusion.io.OpenClipWeights;
import jdiffusion.io.Weights;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.Ops;
import jdiffusion.text.ClipTokenizer;

/**
 * The CLIP text transformer (OpenAI CLIP-L, OpenCLIP-H, OpenCLIP-bigG): token + position embedding, pre-LayerNorm
 * causal transformer layers, final LayerNorm, optional text projection. Reads HuggingFace-named {@link Weights};
 * every size comes from tensor shapes, heads are width / 64 (true of every real CLIP text tower).
 */
public final class ClipTextEncoder {
    /** Head size of every CLIP text tower; the head count is not stored in the weights. */
    public static final int HEAD_DIM = 64;
    private static final float LN_EPS = 1e-5f;
    private static final String P = "text_model.";
    private static final Pattern LAYER_NAME = Pattern.compile("text_model\\.encoder\\.layers\\.(\\d+)\\..*");

    /** The MLP activation: OpenAI CLIP uses quick GELU, OpenCLIP exact GELU. */
    public enum Activation {
        QUICK_GELU, GELU;

        /** GELU for an {@link OpenClipWeights} view, quick GELU otherwise (OpenAI CLIP-L layout). */
        public static Activation of(Weights w) {
            return OpenClipWeights.isOpenClip(w) ? GELU : QUICK_GELU;
        }
    }

    /** What the weights say the encoder is; projectionDim is 0 when there is no text projection. */
    public record Config(int vocabSize, int positions, int width, int layers, int heads, int mlpSize, int projectionDim,
                         Activation activation) {
    }

    private record Norm(float[] gamma, float[] beta) {
        float[] apply(float[] x, int rows) {
            return Ops.layerNorm(x, rows, gamma.length, gamma, beta, LN_EPS);
        }
    }

    private record Layer(Norm norm1, Linear q, Linear k, Linear v, Linear out, Norm norm2, Linear fc1, Linear fc2) {
    }

    private final Config config;
    private final float[] tokenEmbedding;
    private final float[] positionEmbedding;
    private final List<Layer> layers;
    private final Norm finalNorm;
    private final Linear projection;

    private ClipTextEncoder(Config config, float[] tokenEmbedding, float[] positionEmbedding, List<Layer> layers,
                            Norm finalNorm, Linear projection) {
        this.config = config;
        this.tokenEmbedding = tokenEmbedding;
        this.positionEmbedding = positionEmbedding;
        this.layers = layers;
        this.finalNorm = finalNorm;
        this.projection = projection;
    }

    /** Loads an encoder, taking the activation from the layout the weights came from ({@link Activation#of}). */
    public static ClipTextEncoder load(Weights w) {
        return load(w, Activation.of(w));
    }

    /** Loads an encoder with an explicit activation (for wrapped Weights that hide their layout). */
    public static ClipTextEncoder load(Weights w, Activation activation) {
        return load(w, activation, 0);
    }

    /**
     * As {@link #load(Weights, Activation)} with an explicit head count (the weights cannot tell it); heads 0 means
     * width / {@link #HEAD_DIM}, true of every released CLIP text tower.
     */
    public static ClipTextEncoder load(Weights w, Activation activation, int heads) {
        int[] tok = w.shape(P + "embeddings.token_embedding.weight");
        int[] pos = w.shape(P + "embeddings.position_embedding.weight");
        int width = tok[1];
        if (pos[1] != width) {
            throw new IllegalArgumentException("CLIP text encoder width " + width + " and position embedding "
                    + Arrays.toString(pos) + " disagree");
        }
        if (heads == 0 && width % HEAD_DIM != 0) {
            throw new IllegalArgumentException("CLIP text encoder width " + width + " (position embedding " + Arrays.toString(pos)
                    + ") is not a multiple of the head size " + HEAD_DIM);
        }
        if (heads < 0 || heads > 0 && width % heads != 0) {
            throw new IllegalArgumentException("CLIP text encoder width " + width + " does not split into " + heads + " heads");
        }
        int headCount = heads == 0 ? width / HEAD_DIM : heads;
        int layerCount = countLayers(w);
        if (layerCount == 0) {
            throw new IllegalArgumentException("CLIP text encoder has no layers (no text_model.encoder.layers.* tensors)");
        }
        int mlp = w.shape(layerName(0, "mlp.fc1.weight"))[0];
        List<Layer> layers = new ArrayList<>(layerCount);
        for (int i = 0; i < layerCount; i++) {
            layers.add(loadLayer(w, i, width, mlp));
        }
        Linear projection = null;
        int projectionDim = 0;
        if (w.has("text_projection.weight")) {
            projectionDim = w.shape("text_projection.weight")[0];
            projection = Linear.of(w.get("text_projection.weight"), null, projectionDim, width,
                    UNetTensors.storage(w, "text_projection.weight"));
        }
        Config config = new Config(tok[0], pos[0], width, layerCount, headCount, mlp, projectionDim, activation);
        return new ClipTextEncoder(config, w.get(P + "embeddings.token_embedding.weight"),
                w.get(P + "embeddings.position_embedding.weight"), List.copyOf(layers), norm(w, P + "final_layer_norm"), projection);
    }

    private static int countLayers(Weights w) {
        int max = -1;
        for (String n : w.names()) {
            Matcher m = LAYER_NAME.matcher(n);
            if (m.matches()) {
                max = Math.max(max, Integer.parseInt(m.group(1)));
            }
        }
        return max + 1;
    }

    private static String layerName(int i, String suffix) {
        return P + "encoder.layers." + i + "." + suffix;
    }

    private static Layer loadLayer(Weights w, int i, int width, int mlp) {
        String a = "self_attn.";
        return new Layer(norm(w, layerName(i, "layer_norm1")),
                linear(w, layerName(i, a + "q_proj"), width, width),
                linear(w, layerName(i, a + "k_proj"), width, width),
                linear(w, layerName(i, a + "v_proj"), width, width),
                linear(w, layerName(i, a + "out_proj"), width, width),
                norm(w, layerName(i, "layer_norm2")),
                linear(w, layerName(i, "mlp.fc1"), mlp, width),
                linear(w, layerName(i, "mlp.fc2"), width, mlp));
    }

    private static Linear linear(Weights w, String name, int out, int in) {
        int[] s = w.shape(name + ".weight");
        if (s.length != 2 || s[0] != out || s[1] != in) {
            throw new IllegalArgumentException("CLIP text encoder tensor " + name + ".weight has shape " + Arrays.toString(s)
                    + ", expected [" + out + ", " + in + "]");
        }
        return Linear.of(w.get(name + ".weight"), w.get(name + ".bias"), out, in,
                UNetTensors.storage(w, name + ".weight"));
    }

    private static Norm norm(Weights w, String name) {
        return new Norm(w.get(name + ".weight"), w.get(name + ".bias"));
    }

    public Config config() {
        return config;
    }

    /** Applies the final LayerNorm to rows of width channels (e.g. to an earlier hidden state, for clip skip). */
    public float[] finalLayerNorm(float[] hidden, int rows) {
        return finalNorm.apply(hidden, rows);
    }

    /**
     * Every hidden state for a batch of token rows.
     *
     * @param ids   [batch][tokens] row-major token ids, tokens at most {@link Config#positions()}
     * @param batch number of rows
     */
    public Output forward(int[] ids, int batch) {
        return forward(ids, batch, null);
    }

    /**
     * Every hidden state for a batch of token rows where ids at or above the vocabulary size stand for extra input
     * vectors (textual-inversion embeddings): id {@code vocab + k} takes row k of extra instead of a token
     * embedding row; position embeddings are added as for any token.
     *
     * @param extra [n][width] row-major vectors, or null
     */
    public Output forward(int[] ids, int batch, float[] extra) {
        if (batch <= 0 || ids.length % batch != 0) {
            throw new IllegalArgumentException(ids.length + " token ids do not split into " + batch + " rows");
        }
        int tokens = ids.length / batch;
        if (tokens > config.positions()) {
            throw new IllegalArgumentException("text encoder takes at most " + config.positions() + " tokens per row, got " + tokens);
        }
        float[][] hidden = new float[layers.size() + 1][];
        hidden[0] = inputEmbeds(ids, extra);
        addPositions(hidden[0], tokens);
        for (int i = 0; i < layers.size(); i++) {
            hidden[i + 1] = layer(layers.get(i), hidden[i], batch, tokens);
        }
        float[] last = finalNorm.apply(hidden[layers.size()], batch * tokens);
        float[] pooled = pool(last, ids, batch, tokens);
        float[] projected = projection == null ? null : projection.forward(pooled, batch);
        return new Output(batch, tokens, config.width(), hidden, last, pooled, projected);
    }

    /** Convenience: one row of ids. */
    public Output forward(int[] ids) {
        return forward(ids, 1);
    }

    /**
     * The token embeddings of ids before position embeddings (HF's inputs_embeds), with extra vectors spliced in
     * for ids at or above the vocabulary size (see {@link #forward(int[], int, float[])}).
     */
    public float[] inputEmbeds(int[] ids, float[] extra) {
        int c = config.width();
        int extraRows = extra == null ? 0 : extra.length / c;
        if (extra != null && extra.length % c != 0) {
            throw new IllegalArgumentException("extra input vectors of " + extra.length + " values are not rows of width " + c);
        }
        float[] x = new float[ids.length * c];
        for (int i = 0; i < ids.length; i++) {
            int id = ids[i];
            if (id >= config.vocabSize() && id - config.vocabSize() < extraRows) {
                System.arraycopy(extra, (id - config.vocabSize()) * c, x, i * c, c);
                continue;
            }
            if (id < 0 || id >= config.vocabSize()) {
                throw new IllegalArgumentException("token id " + id + " outside the vocabulary of " + config.vocabSize()
                        + (extraRows > 0 ? " and the " + extraRows + " embedding vectors" : ""));
            }
            System.arraycopy(tokenEmbedding, id * c, x, i * c, c);
        }
        return x;
    }

    private void addPositions(float[] x, int tokens) {
        int c = config.width();
        int n = x.length / c;
        for (int i = 0; i < n; i++) {
            int position = i % tokens;
            for (int j = 0; j < c; j++) {
                x[i * c + j] += positionEmbedding[position * c + j];
            }
        }
    }

    /** One pre-LN transformer layer: x + attn(ln1(x)), then + mlp(ln2(x)). Returns a new array. */
    private float[] layer(Layer l, float[] x, int batch, int tokens) {
        int rows = batch * tokens;
        float[] h = l.norm1().apply(x, rows);
        float[] q = l.q().forward(h, rows);
        float[] k = l.k().forward(h, rows);
        float[] v = l.v().forward(h, rows);
        float[] attn = Ops.attention(q, k, v, batch, tokens, tokens, config.heads(), config.width() / config.heads(), true,
                l.q().nativeBf16());
        float[] y = l.out().forward(attn, rows);
        Ops.addInPlace(y, x);
        float[] m = l.fc1().forward(l.norm2().apply(y, rows), rows);
        if (config.activation() == Activation.GELU) {
            Ops.geluInPlace(m);
        } else {
            Ops.quickGeluInPlace(m);
        }
        float[] out = l.fc2().forward(m, rows);
        Ops.addInPlace(out, y);
        return out;
    }

    /** The final-normed state at each row's first end token (position 0 when a row has none, as torch's argmax). */
    private float[] pool(float[] last, int[] ids, int batch, int tokens) {
        int c = config.width();
        float[] pooled = new float[batch * c];
        for (int b = 0; b < batch; b++) {
            int at = 0;
            for (int t = 0; t < tokens; t++) {
                if (ids[b * tokens + t] == ClipTokenizer.EOS) {
                    at = t;
                    break;
                }
            }
            System.arraycopy(last, (b * tokens + at) * c, pooled, b * c, c);
        }
        return pooled;
    }

    /**
     * Hidden states of one forward pass, each [batch][tokens][width].
     *
     * @param hiddenStates    HF's hidden_states: [0] the embeddings, [i] the output of layer i (no final LayerNorm)
     * @param lastHiddenState the last layer after the final LayerNorm
     * @param pooled          lastHiddenState at each row's first end token, [batch][width]
     * @param textEmbeds      pooled through the text projection, [batch][proj]; null without a projection
     */
    public record Output(int batch, int tokens, int width, float[][] hiddenStates, float[] lastHiddenState, float[] pooled,
                         float[] textEmbeds) {
        /** hidden_states[index] with Python indexing: -1 is the last layer's output, -2 the penultimate. */
        public float[] hidden(int index) {
            int i = index < 0 ? hiddenStates.length + index : index;
            if (i < 0 || i >= hiddenStates.length) {
                throw new IllegalArgumentException("hidden state " + index + " does not exist: the encoder has "
                        + (hiddenStates.length - 1) + " layers");
            }
            return hiddenStates[i];
        }
    }
}
