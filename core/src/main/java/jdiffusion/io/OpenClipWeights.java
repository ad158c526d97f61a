package jdiffusion.io;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * An OpenCLIP text tower (SD2 {@code cond_stage_model.model.*}, SDXL {@code conditioner.embedders.1.model.*})
 * presented under HuggingFace CLIP names, so one text-encoder implementation reads both layouts.
 *
 * <p>OpenCLIP fuses q, k and v into {@code attn.in_proj_weight} [3C, C] (rows q, then k, then v) and stores
 * {@code text_projection} as [C, proj] applied as {@code x @ P}; HF keeps separate projections and a Linear weight
 * [proj, C], the transpose. OpenCLIP text towers use exact (erf) GELU where OpenAI's CLIP-L uses quick GELU; since
 * that cannot be read from shapes, this view marks itself ({@link #isOpenClip(Weights)}).
 */
public final class OpenClipWeights implements Weights {
    private static final Pattern LAYER = Pattern.compile("transformer\\.resblocks\\.(\\d+)\\.(.+)");
    /** Per-layer renames, OpenCLIP suffix to HF suffix (the fused q/k/v are handled separately). */
    private static final Map<String, String> LAYER_RENAMES = Map.ofEntries(
            Map.entry("ln_1.weight", "layer_norm1.weight"),
            Map.entry("ln_1.bias", "layer_norm1.bias"),
            Map.entry("ln_2.weight", "layer_norm2.weight"),
            Map.entry("ln_2.bias", "layer_norm2.bias"),
            Map.entry("attn.out_proj.weight", "self_attn.out_proj.weight"),
            Map.entry("attn.out_proj.bias", "self_attn.out_proj.bias"),
            Map.entry("mlp.c_fc.weight", "mlp.fc1.weight"),
            Map.entry("mlp.c_fc.bias", "mlp.fc1.bias"),
            Map.entry("mlp.c_proj.weight", "mlp.fc2.weight"),
            Map.entry("mlp.c_proj.bias", "mlp.fc2.bias"));
    private static final Map<String, String> GLOBAL_RENAMES = Map.of(
            "token_embedding.weight", "text_model.embeddings.token_embedding.weight",
            "positional_embedding", "text_model.embeddings.position_embedding.weight",
            "ln_final.weight", "text_model.final_layer_norm.weight",
            "ln_final.bias", "text_model.final_layer_norm.bias");
    private static final String[] QKV = {"q_proj", "k_proj", "v_proj"};

    private final Weights raw;
    /** HF name to how its tensor is made from the raw tensors. */
    private final Map<String, Source> sources;

    private record Source(String rawName, int[] shape, Function<float[], float[]> transform) {
    }

    private OpenClipWeights(Weights raw, Map<String, Source> sources) {
        this.raw = raw;
        this.sources = sources;
    }

    /**
     * The HF-named view of an OpenCLIP text tower whose names have the file prefix removed
     * ({@code token_embedding.weight}, {@code transformer.resblocks.0.attn.in_proj_weight}, ...). Names it does not
     * know (logit_scale, attn_mask, a vision tower) are left out.
     *
     * @throws IllegalArgumentException (one-line message) when the raw tensors are not an OpenCLIP text tower
     *                                  (no token embedding, an in_proj or text_projection of the wrong shape)
     */
    public static OpenClipWeights of(Weights raw) {
        if (!raw.has("token_embedding.weight") || !raw.has("positional_embedding")) {
            throw new IllegalArgumentException("not an OpenCLIP text encoder: no token_embedding.weight / positional_embedding"
                    + " among " + raw.names().size() + " tensors");
        }
        Map<String, Source> sources = new LinkedHashMap<>();
        for (String name : raw.names()) {
            String global = GLOBAL_RENAMES.get(name);
            if (global != null) {
                sources.put(global, new Source(name, raw.shape(name), Function.identity()));
            } else if (name.equals("text_projection")) {
                addProjection(raw, sources);
            } else {
                Matcher m = LAYER.matcher(name);
                if (m.matches()) {
                    addLayerTensor(raw, sources, name, m.group(1), m.group(2));
                }
            }
        }
        return new OpenClipWeights(raw, Collections.unmodifiableMap(sources));
    }

    /** True when w is an OpenCLIP text tower (exact GELU activation), false for OpenAI CLIP layouts. */
    public static boolean isOpenClip(Weights w) {
        return w instanceof OpenClipWeights;
    }

    /** The tensors this view was made from. */
    public Weights raw() {
        return raw;
    }

    private static void addProjection(Weights raw, Map<String, Source> sources) {
        int[] s = raw.shape("text_projection");
        if (s.length != 2) {
            throw new IllegalArgumentException("OpenCLIP text_projection has shape " + Arrays.toString(s) + ", expected [width, proj]");
        }
        int rows = s[0];
        int cols = s[1];
        sources.put("text_projection.weight", new Source("text_projection", new int[] {cols, rows}, p -> transpose(p, rows, cols)));
    }

    private static void addLayerTensor(Weights raw, Map<String, Source> sources, String name, String layer, String suffix) {
        String hf = "text_model.encoder.layers." + layer + ".";
        String renamed = LAYER_RENAMES.get(suffix);
        if (renamed != null) {
            sources.put(hf + renamed, new Source(name, raw.shape(name), Function.identity()));
            return;
        }
        boolean weight = suffix.equals("attn.in_proj_weight");
        if (!weight && !suffix.equals("attn.in_proj_bias")) {
            return;
        }
        int[] s = raw.shape(name);
        if (s[0] % 3 != 0 || (weight ? s.length != 2 : s.length != 1)) {
            throw new IllegalArgumentException("OpenCLIP " + name + " has shape " + Arrays.toString(s) + ", expected fused q,k,v [3C"
                    + (weight ? ", C]" : "]"));
        }
        int rows = s[0] / 3;
        int rowLen = weight ? s[1] : 1;
        for (int part = 0; part < 3; part++) {
            int from = part * rows * rowLen;
            int[] shape = weight ? new int[] {rows, rowLen} : new int[] {rows};
            sources.put(hf + "self_attn." + QKV[part] + (weight ? ".weight" : ".bias"),
                    new Source(name, shape, v -> Arrays.copyOfRange(v, from, from + rows * rowLen)));
        }
    }

    private static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[a.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = a[r * cols + c];
            }
        }
        return t;
    }

    @Override
    public Set<String> names() {
        return sources.keySet();
    }

    @Override
    public boolean has(String name) {
        return sources.containsKey(name);
    }

    @Override
    public int[] shape(String name) {
        return source(name).shape().clone();
    }

    @Override
    public float[] get(String name) {
        Source s = source(name);
        return s.transform().apply(raw.get(s.rawName()));
    }

    /** The raw tensor's type: splitting q/k/v and transposing the projection keep the values. */
    @Override
    public DType dtype(String name) {
        return raw.dtype(source(name).rawName());
    }

    private Source source(String name) {
        Source s = sources.get(name);
        if (s == null) {
            throw new MissingTensorException("OpenCLIP text encoder has no tensor for '" + name + "'");
        }
        return s;
    }
}
