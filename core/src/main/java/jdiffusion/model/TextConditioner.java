package jdiffusion.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdiffusion.io.CheckpointLayouts;
import jdiffusion.io.CheckpointLayouts.TextEncoderSlot;
import jdiffusion.io.CheckpointLayouts.TextLayout;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.OpenClipWeights;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.tensor.Ops;
import jdiffusion.text.ClipTokenizer;
import jdiffusion.text.Embeddings;
import jdiffusion.text.PromptParser;
import jdiffusion.text.WeightedChunks;

/**
 * Prompt to {@link Conditioning} for SD1, SD2 and SDXL with ComfyUI's CLIPTextEncode semantics:
 * <ul>
 * <li>SD1: CLIP-L last layer, final LayerNorm ({@code clip skip} N: hidden layer -N, then the final LayerNorm).</li>
 * <li>SD2: OpenCLIP-H penultimate layer, final LayerNorm.</li>
 * <li>SDXL: CLIP-L penultimate ++ OpenCLIP-bigG penultimate along channels, no final LayerNorm; pooled = bigG's
 * final-normed last layer at the first end token, through its text projection.</li>
 * </ul>
 * Prompts use ComfyUI's weight syntax ({@link PromptParser}: {@code (text)}, {@code (text:1.3)}, {@code \(}) and
 * its chunking ({@link ClipTokenizer#encodeWeighted(String)}): each 77-token row is encoded on its own and the
 * contexts concatenated along the token axis; SDXL's pooled comes from the first chunk, unweighted. When any token
 * weighs other than 1, an all-padding "empty" row (start, end, padding) is encoded too and every such token's context
 * row becomes {@code (z - z_empty) * w + z_empty}, per encoder, on the states the context is built from (ComfyUI's
 * default {@code encode_token_weights}). Both SDXL towers get the same weights. An empty prompt is encoded as text
 * (start, end, padding), never as zeros ({@link Conditioning#zerosLike()} gives diffusers' zero uncond).
 */
public final class TextConditioner {
    /** One text encoder with its tokenizer, named as ComfyUI names them: clip_l, clip_h (SD2), clip_g (SDXL). */
    private record Encoder(String name, ClipTokenizer tokenizer, ClipTextEncoder model) {
    }

    /** The text encoders of each family in a single-file checkpoint: the checkpoint layout's slots. */
    private static List<TextEncoderSlot> slots(Family family) {
        return CheckpointLayouts.layout(family).textEncoders();
    }

    /** SD2's tower and SDXL's second are OpenCLIP: exact GELU and the OpenCLIP tokenizer. */
    private static boolean openClip(TextEncoderSlot s) {
        return s.layout() == TextLayout.OPEN_CLIP;
    }

    private final Family family;
    private final List<Encoder> encoders;
    /** Which hidden state feeds the context, Python style (-1 last layer, -2 penultimate). */
    private final int layer;
    /** Textual-inversion embeddings for {@code embedding:name} (none: the name stays text). */
    private final Embeddings embeddings;

    private TextConditioner(Family family, List<Encoder> encoders, int layer) {
        this(family, encoders, layer, Embeddings.none());
    }

    private TextConditioner(Family family, List<Encoder> encoders, int layer, Embeddings embeddings) {
        this.family = family;
        this.encoders = encoders;
        this.layer = layer;
        this.embeddings = embeddings;
    }

    /**
     * This conditioner reading {@code embedding:name} from embeddings (ComfyUI's textual inversion; with
     * {@link Embeddings#a1111Names} also A1111's bare names). Costs nothing: the encoders are shared.
     */
    public TextConditioner withEmbeddings(Embeddings embeddings) {
        return new TextConditioner(family, encoders, layer, embeddings == null ? Embeddings.none() : embeddings);
    }

    public Embeddings embeddings() {
        return embeddings;
    }

    /**
     * A conditioner over already-loaded text-encoder weights (HF names; OpenCLIP towers as {@link OpenClipWeights}):
     * one for SD1 and SD2, two for SDXL (CLIP-L, then bigG). The activation follows the family's slot (SD2's tower
     * and SDXL's second are OpenCLIP, exact GELU), so decorated weights (LoRA) need no layout marker.
     */
    public static TextConditioner of(Family family, List<Weights> textEncoders) {
        List<TextEncoderSlot> slots = slots(family);
        if (textEncoders.size() != slots.size()) {
            throw new IllegalArgumentException(family + " needs " + slots.size() + " text encoder(s), got " + textEncoders.size());
        }
        List<Encoder> encoders = new ArrayList<>();
        for (int i = 0; i < slots.size(); i++) {
            TextEncoderSlot s = slots.get(i);
            // the slot, not the wrapper, says OpenCLIP: a LoRA or other decorator over the weights hides the layout
            ClipTextEncoder.Activation act = openClip(s) ? ClipTextEncoder.Activation.GELU : ClipTextEncoder.Activation.QUICK_GELU;
            encoders.add(new Encoder(s.name(), tokenizer(s), ClipTextEncoder.load(textEncoders.get(i), act)));
        }
        return new TextConditioner(family, List.copyOf(encoders), family == Family.SD1 ? -1 : -2);
    }

    /** The conditioner of a single-file checkpoint, family read from its text-encoder key prefixes. */
    public static TextConditioner load(SafeTensors checkpoint) throws ModelFormatException {
        Family family = detect(checkpoint);
        return of(family, textEncoderWeights(checkpoint, family));
    }

    /**
     * The family a single-file checkpoint's text encoders say: SDXL has {@code conditioner.embedders.*}, SD2
     * {@code cond_stage_model.model.*} (OpenCLIP), SD1 {@code cond_stage_model.transformer.*}.
     */
    public static Family detect(SafeTensors checkpoint) throws ModelFormatException {
        for (var f : List.of(Family.SDXL, Family.SD2, Family.SD1)) {
            if (slots(f).stream().allMatch(s -> hasPrefix(checkpoint, s.prefix()))) {
                return f;
            }
        }
        throw new ModelFormatException(checkpoint.path() + ": no text encoder found (expected tensors under"
                + " cond_stage_model.transformer., cond_stage_model.model. or conditioner.embedders.0/1.)");
    }

    private static boolean hasPrefix(SafeTensors file, String prefix) {
        for (String n : file.names()) {
            if (n.startsWith(prefix)) {
                return true;
            }
        }
        return false;
    }

    /** The HF-named text-encoder weights of a single-file checkpoint, in the order {@link #of} takes them. */
    public static List<Weights> textEncoderWeights(SafeTensors checkpoint, Family family) {
        List<Weights> out = new ArrayList<>();
        for (TextEncoderSlot s : slots(family)) {
            Weights w = Weights.prefixed(checkpoint, s.prefix());
            out.add(openClip(s) ? OpenClipWeights.of(w) : w);
        }
        return out;
    }

    /**
     * The token rows each text encoder of a family gets for a prompt, by encoder name (clip_l, clip_h, clip_g): the
     * ids of {@link #tokenizeWeighted(Family, String)}, weights left out.
     */
    public static Map<String, int[][]> tokenize(Family family, String prompt) {
        return ids(tokenizeWeighted(family, prompt));
    }

    /** The weighted token rows each text encoder of a family gets for a prompt, by encoder name. */
    public static Map<String, WeightedChunks> tokenizeWeighted(Family family, String prompt) {
        Map<String, WeightedChunks> out = new LinkedHashMap<>();
        for (TextEncoderSlot s : slots(family)) {
            out.put(s.name(), tokenizer(s).encodeWeighted(prompt));
        }
        return out;
    }

    private static Map<String, int[][]> ids(Map<String, WeightedChunks> weighted) {
        Map<String, int[][]> out = new LinkedHashMap<>();
        weighted.forEach((name, chunks) -> out.put(name, chunks.ids()));
        return out;
    }

    private static ClipTokenizer tokenizer(TextEncoderSlot s) {
        return openClip(s) ? ClipTokenizer.openClip() : ClipTokenizer.clipL();
    }

    public Family family() {
        return family;
    }

    /**
     * ComfyUI's CLIPSetLastLayer(-skip): the context comes from hidden layer -skip (1 = last layer) of every text
     * encoder, with the family's final-LayerNorm rule unchanged. Without it SD1 uses -1, SD2 and SDXL -2.
     */
    public TextConditioner withClipSkip(int skip) {
        int layers = encoders.stream().mapToInt(e -> e.model().config().layers()).min().orElseThrow();
        if (skip < 1 || skip > layers) {
            throw new IllegalArgumentException("clip skip " + skip + " out of range 1.." + layers);
        }
        return new TextConditioner(family, encoders, -skip, embeddings);
    }

    /** Context width: the sum of the encoders' widths (SDXL 768 + 1280 = 2048). */
    public int contextDim() {
        return encoders.stream().mapToInt(e -> e.model().config().width()).sum();
    }

    /** The token rows of a prompt per encoder name: the ids of {@link #tokenizeWeighted(String)}. */
    public Map<String, int[][]> tokenize(String prompt) {
        return ids(tokenizeWeighted(prompt));
    }

    /**
     * The weighted token rows of a prompt per encoder name, as ComfyUI's tokenizers give them; with embeddings,
     * {@code embedding:name} vectors take token slots (each encoder reads its own tensor of an SDXL file).
     */
    public Map<String, WeightedChunks> tokenizeWeighted(String prompt) {
        String text = embeddings.rewriteA1111(prompt);
        Map<String, WeightedChunks> out = new LinkedHashMap<>();
        for (Encoder e : encoders) {
            out.put(e.name(), e.tokenizer().encodeWeighted(text, ClipTokenizer.Grouping.SEGMENT, embeddings.lookup(e.name())));
        }
        return out;
    }

    /** ComfyUI's CLIPTextEncode of a prompt: weight syntax, chunking, token weights. */
    public Conditioning encode(String prompt) {
        return encodeWeighted(tokenizeWeighted(prompt));
    }

    /**
     * Conditioning from token rows per encoder name (as {@link #tokenize} gives them; every row 77 ids), all
     * weighing 1. The encoders' contexts are concatenated on channels and cut to the shorter token count, as
     * ComfyUI does.
     */
    public Conditioning encodeTokens(Map<String, int[][]> rowsByEncoder) {
        Map<String, WeightedChunks> weighted = new LinkedHashMap<>();
        rowsByEncoder.forEach((name, rows) -> weighted.put(name, rows == null || rows.length == 0 ? null : WeightedChunks.unweighted(rows)));
        return encodeWeighted(weighted);
    }

    /**
     * Conditioning from weighted token rows per encoder name (as {@link #tokenizeWeighted} gives them). Rows whose
     * weights are all 1 give exactly {@link #encodeTokens}'s result; otherwise see the class comment.
     */
    public Conditioning encodeWeighted(Map<String, WeightedChunks> chunksByEncoder) {
        float[] context = null;
        int tokens = Integer.MAX_VALUE;
        int dim = 0;
        float[] pooled = null;
        for (Encoder e : encoders) {
            WeightedChunks chunks = chunksByEncoder.get(e.name());
            if (chunks == null) {
                throw new IllegalArgumentException("no token rows for text encoder " + e.name());
            }
            int[][] rows = chunks.ids();
            float[] extra = null;
            if (chunks.hasVectors()) {
                rows = spliceable(e, chunks);
                extra = vectorTable(e, chunks);
            }
            ClipTextEncoder.Output out = e.model().forward(flatten(rows), rows.length, extra);
            float[] part = contextPart(e, out);
            int rowsTotal = out.batch() * out.tokens();
            if (chunks.weighted()) {
                applyWeights(part, chunks.weights(), contextPart(e, e.model().forward(emptyRow(e, out.tokens()), 1)), out.width());
            }
            int width = out.width();
            if (context == null) {
                context = part;
                tokens = rowsTotal;
            } else {
                int n = Math.min(tokens, rowsTotal);
                context = Ops.concatChannels(firstRows(context, dim, n), dim, firstRows(part, width, n), width, n);
                tokens = n;
            }
            dim += width;
            if (family == Family.SDXL && e.name().equals("clip_g") && out.textEmbeds() != null) {
                // pooled from the first chunk only (ComfyUI)
                pooled = Arrays.copyOf(out.textEmbeds(), e.model().config().projectionDim());
            }
        }
        if (family == Family.SDXL && pooled == null) {
            throw new IllegalArgumentException("SDXL's second text encoder has no text_projection, so there is no pooled output");
        }
        return new Conditioning(context, tokens, dim, pooled);
    }

    /**
     * ComfyUI's process_tokens for embedding vectors whose width is not the encoder's (an SD1 embedding on SDXL's
     * clip_g): such a vector is left out, the tokens after it move up, and the row is filled with padding at the
     * end (the weights stay by position, as ComfyUI applies them). Other vectors keep their ids.
     */
    private static int[][] spliceable(Encoder e, WeightedChunks chunks) {
        int width = e.model().config().width();
        int[][] rows = chunks.ids();
        int[][] out = new int[rows.length][];
        for (int r = 0; r < rows.length; r++) {
            int[] row = rows[r];
            int[] kept = new int[row.length];
            Arrays.fill(kept, e.tokenizer().padId());
            int n = 0;
            for (int id : row) {
                boolean vector = id >= ClipTokenizer.VOCAB_SIZE;
                if (vector && chunks.vectors().get(id - ClipTokenizer.VOCAB_SIZE).length != width) {
                    continue;
                }
                kept[n++] = id;
            }
            out[r] = kept;
        }
        return out;
    }

    /** The vectors as one [n][width] table (rows of other widths zero: no row refers to them any more). */
    private static float[] vectorTable(Encoder e, WeightedChunks chunks) {
        int width = e.model().config().width();
        List<float[]> v = chunks.vectors();
        float[] table = new float[v.size() * width];
        for (int k = 0; k < v.size(); k++) {
            if (v.get(k).length == width) {
                System.arraycopy(v.get(k), 0, table, k * width, width);
            } else {
                System.getLogger("jdiffusion").log(System.Logger.Level.WARNING, "embedding vector of width "
                        + v.get(k).length + " does not fit text encoder " + e.name() + " (width " + width + "), ignored");
            }
        }
        return table;
    }

    /** The states the context is built from: the chosen layer, final-normed except for SDXL. */
    private float[] contextPart(Encoder e, ClipTextEncoder.Output out) {
        float[] part = out.hidden(layer);
        return family == Family.SDXL ? part : e.model().finalLayerNorm(part, out.batch() * out.tokens());
    }

    /**
     * ComfyUI's gen_empty_tokens: start, end, then the encoder's pad token. It is encoded as a separate forward
     * (ComfyUI batches it with the chunks): rows are independent, and this keeps every weight-1 position
     * bit-identical to the unweighted encoding.
     */
    private static int[] emptyRow(Encoder e, int tokens) {
        int[] row = new int[tokens];
        Arrays.fill(row, e.tokenizer().padId());
        row[0] = ClipTokenizer.BOS;
        row[1] = ClipTokenizer.EOS;
        return row;
    }

    /**
     * z = (z - z_empty) * w + z_empty at every position whose weight is not 1, in float32 step by step as torch
     * computes it (the weight rounded to float32 first).
     */
    private static void applyWeights(float[] part, double[][] weights, float[] empty, int width) {
        int tokens = weights[0].length;
        for (int r = 0; r < weights.length; r++) {
            for (int t = 0; t < tokens; t++) {
                double w = weights[r][t];
                if (w == 1.0) {
                    continue;
                }
                float wf = (float) w;
                int base = (r * tokens + t) * width;
                int emptyBase = t * width;
                for (int c = 0; c < width; c++) {
                    float ze = empty[emptyBase + c];
                    float diff = part[base + c] - ze;
                    float scaled = diff * wf;
                    part[base + c] = scaled + ze;
                }
            }
        }
    }

    private static float[] firstRows(float[] x, int width, int rows) {
        return x.length == rows * width ? x : Arrays.copyOf(x, rows * width);
    }

    private static int[] flatten(int[][] rows) {
        int n = rows[0].length;
        int[] ids = new int[rows.length * n];
        for (int r = 0; r < rows.length; r++) {
            if (rows[r].length != n) {
                throw new IllegalArgumentException("token rows differ in length: " + n + " and " + rows[r].length);
            }
            System.arraycopy(rows[r], 0, ids, r * n, n);
        }
        return ids;
    }
}
