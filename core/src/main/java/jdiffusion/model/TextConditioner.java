package jdiffusion.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.OpenClipWeights;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.tensor.Ops;
import jdiffusion.text.ClipTokenizer;

/**
 * Prompt to {@link Conditioning} for SD1, SD2 and SDXL with ComfyUI's CLIPTextEncode semantics:
 * <ul>
 * <li>SD1: CLIP-L last layer, final LayerNorm ({@code clip skip} N: hidden layer -N, then the final LayerNorm).</li>
 * <li>SD2: OpenCLIP-H penultimate layer, final LayerNorm.</li>
 * <li>SDXL: CLIP-L penultimate ++ OpenCLIP-bigG penultimate along channels, no final LayerNorm; pooled = bigG's
 * final-normed last layer at the first end token, through its text projection.</li>
 * </ul>
 * Prompts longer than 75 tokens are split into 75-token chunks, each encoded as its own 77-token row, and the
 * contexts concatenated along the token axis; SDXL's pooled comes from the first chunk. An empty prompt is encoded
 * as text (start, end, padding), never as zeros ({@link Conditioning#zerosLike()} gives diffusers' zero uncond).
 */
public final class TextConditioner {
    /** Model families, as far as the text side is concerned. */
    public enum Family {
        SD1, SD2, SDXL
    }

    /** One text encoder with its tokenizer, named as ComfyUI names them: clip_l, clip_h (SD2), clip_g (SDXL). */
    private record Encoder(String name, ClipTokenizer tokenizer, ClipTextEncoder model) {
    }

    /** The text encoders of each family in a single-file checkpoint: key prefix, name, OpenCLIP layout. */
    private record Slot(String prefix, String name, boolean openClip) {
    }

    private static final Map<Family, List<Slot>> SLOTS = Map.of(
            Family.SD1, List.of(new Slot("cond_stage_model.transformer.", "clip_l", false)),
            Family.SD2, List.of(new Slot("cond_stage_model.model.", "clip_h", true)),
            Family.SDXL, List.of(new Slot("conditioner.embedders.0.transformer.", "clip_l", false),
                    new Slot("conditioner.embedders.1.model.", "clip_g", true)));

    private final Family family;
    private final List<Encoder> encoders;
    /** Which hidden state feeds the context, Python style (-1 last layer, -2 penultimate). */
    private final int layer;

    private TextConditioner(Family family, List<Encoder> encoders, int layer) {
        this.family = family;
        this.encoders = encoders;
        this.layer = layer;
    }

    /**
     * A conditioner over already-loaded text-encoder weights (HF names; OpenCLIP towers as {@link OpenClipWeights}):
     * one for SD1 and SD2, two for SDXL (CLIP-L, then bigG). The activation follows the family's slot (SD2's tower
     * and SDXL's second are OpenCLIP, exact GELU), so decorated weights (LoRA) need no layout marker.
     */
    public static TextConditioner of(Family family, List<Weights> textEncoders) {
        List<Slot> slots = SLOTS.get(family);
        if (textEncoders.size() != slots.size()) {
            throw new IllegalArgumentException(family + " needs " + slots.size() + " text encoder(s), got " + textEncoders.size());
        }
        List<Encoder> encoders = new ArrayList<>();
        for (int i = 0; i < slots.size(); i++) {
            Slot s = slots.get(i);
            // the slot, not the wrapper, says OpenCLIP: a LoRA or other decorator over the weights hides the layout
            ClipTextEncoder.Activation act = s.openClip() ? ClipTextEncoder.Activation.GELU : ClipTextEncoder.Activation.QUICK_GELU;
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
        for (Family f : List.of(Family.SDXL, Family.SD2, Family.SD1)) {
            if (SLOTS.get(f).stream().allMatch(s -> hasPrefix(checkpoint, s.prefix()))) {
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
        for (Slot s : SLOTS.get(family)) {
            Weights w = Weights.prefixed(checkpoint, s.prefix());
            out.add(s.openClip() ? OpenClipWeights.of(w) : w);
        }
        return out;
    }

    /** The token rows each text encoder of a family gets for a prompt, by encoder name (clip_l, clip_h, clip_g). */
    public static Map<String, int[][]> tokenize(Family family, String prompt) {
        Map<String, int[][]> out = new LinkedHashMap<>();
        for (Slot s : SLOTS.get(family)) {
            out.put(s.name(), tokenizer(s).encodeChunks(prompt));
        }
        return out;
    }

    private static ClipTokenizer tokenizer(Slot s) {
        return s.openClip() ? ClipTokenizer.openClip() : ClipTokenizer.clipL();
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
        return new TextConditioner(family, encoders, -skip);
    }

    /** Context width: the sum of the encoders' widths (SDXL 768 + 1280 = 2048). */
    public int contextDim() {
        return encoders.stream().mapToInt(e -> e.model().config().width()).sum();
    }

    public Map<String, int[][]> tokenize(String prompt) {
        Map<String, int[][]> out = new LinkedHashMap<>();
        for (Encoder e : encoders) {
            out.put(e.name(), e.tokenizer().encodeChunks(prompt));
        }
        return out;
    }

    public Conditioning encode(String prompt) {
        return encodeTokens(tokenize(prompt));
    }

    /**
     * Conditioning from token rows per encoder name (as {@link #tokenize} gives them; every row 77 ids). The
     * encoders' contexts are concatenated on channels and cut to the shorter token count, as ComfyUI does.
     */
    public Conditioning encodeTokens(Map<String, int[][]> rowsByEncoder) {
        float[] context = null;
        int tokens = Integer.MAX_VALUE;
        int dim = 0;
        float[] pooled = null;
        for (Encoder e : encoders) {
            int[][] rows = rowsByEncoder.get(e.name());
            if (rows == null || rows.length == 0) {
                throw new IllegalArgumentException("no token rows for text encoder " + e.name());
            }
            ClipTextEncoder.Output out = e.model().forward(flatten(rows), rows.length);
            float[] part = out.hidden(layer);
            int rowsTotal = out.batch() * out.tokens();
            if (family != Family.SDXL) {
                part = e.model().finalLayerNorm(part, rowsTotal);
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
