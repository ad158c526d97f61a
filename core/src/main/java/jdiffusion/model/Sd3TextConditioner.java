package jdiffusion.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.model.t5.T5Encoder;
import jdiffusion.text.ClipTokenizer;
import jdiffusion.text.PromptParser;
import jdiffusion.text.T5Tokenizer;
import jdiffusion.text.WeightedChunks;

/**
 * Prompt to {@link Conditioning} for SD3 / SD3.5: CLIP-L and CLIP-G (OpenCLIP bigG in HF layout) penultimate hidden
 * states (no final LayerNorm) concatenated on channels and zero-padded to the context width (T5's d_model, 4096 for
 * T5-XXL), then T5's last hidden state appended on the token axis; pooled = CLIP-L's pooled state (never projected)
 * ++ CLIP-G's projected pooled state.
 *
 * <p>Two conventions, as the reference implementations differ:
 * <ul>
 * <li>{@link #encode(String, int)}: diffusers' {@code StableDiffusion3Pipeline.encode_prompt}. CLIP ids truncated
 * to 77 (CLIP-L padded with the end token, CLIP-G with '!' = 0), T5 ids + EOS padded with 0 and truncated to
 * maxSequenceLength (256 by default): context [77 + maxSequenceLength, width]. Without T5 the T5 part is zeros
 * [77, width]. A None negative prompt is "" encoded normally.</li>
 * <li>{@link #encodeComfy(String)}: ComfyUI's CLIPTextEncode on an SD3 CLIP. The weight syntax {@code (text:1.2)}
 * and 75-token chunks for the CLIPs (contexts cut to the shorter of the two token counts), T5 never truncated and
 * padded to at least 77, token weights applied per encoder as {@code (z - z_empty) * w + z_empty}; pooled from
 * the first chunk. Without T5 only the CLIP rows (no zero block).</li>
 * </ul>
 *
 * <p>Memory: T5-XXL is 9.5 GB in fp16. Encode every prompt a generation needs, then {@link #close()} (or let the
 * conditioner go) before the MMDiT loads: the packed weights become garbage and the mapped file pages are dropped
 * from the resident set. The T5 embedding table is never copied (rows are read from the mapping), so the T5 file
 * must stay open while encoding.
 */
public final class Sd3TextConditioner implements AutoCloseable {
    /** ComfyUI's SD3 clip pads the CLIP context to 4096 when there is no T5 to take the width from. */
    public static final int T5_XXL_WIDTH = 4096;
    /** diffusers' zero T5 block without T5: tokenizer_max_length rows. */
    public static final int CLIP_TOKENS = ClipTokenizer.CONTEXT_LENGTH;
    private static final String CLIP_L = "text_encoders.clip_l.transformer.";
    private static final String CLIP_G = "text_encoders.clip_g.transformer.";

    /**
     * What the weights cannot tell. clipLHeads / clipGHeads: attention heads (0: width / 64, as in every released
     * CLIP-L and bigG). contextWidth: the MMDiT's context width (its context_embedder input), needed only without
     * T5 (0: {@link #T5_XXL_WIDTH}); with T5 it must be 0 or T5's d_model.
     */
    public record Options(int clipLHeads, int clipGHeads, int contextWidth) {
        public static final Options DEFAULT = new Options(0, 0, 0);

        public Options {
            if (clipLHeads < 0 || clipGHeads < 0 || contextWidth < 0) {
                throw new IllegalArgumentException("SD3 text encoder options must not be negative: " + clipLHeads + ", "
                        + clipGHeads + ", " + contextWidth);
            }
        }
    }

    private ClipTextEncoder clipL;
    private ClipTextEncoder clipG;
    private T5Encoder t5;
    private final int width;
    private final List<SafeTensors> files;
    private boolean closed;

    private Sd3TextConditioner(ClipTextEncoder clipL, ClipTextEncoder clipG, T5Encoder t5, int width,
                               List<SafeTensors> files) {
        this.clipL = clipL;
        this.clipG = clipG;
        this.t5 = t5;
        this.width = width;
        this.files = files;
    }

    /**
     * A conditioner over HF-named weights: CLIP-L and CLIP-G ({@code text_model.*}, {@code text_projection.weight})
     * and T5 ({@code shared.weight}, {@code encoder.*}), or t5 null to run without T5.
     */
    public static Sd3TextConditioner of(Weights clipL, Weights clipG, Weights t5, Options options) {
        return of(clipL, clipG, t5, options, List.of());
    }

    private static Sd3TextConditioner of(Weights clipL, Weights clipG, Weights t5, Options options, List<SafeTensors> files) {
        ClipTextEncoder l = ClipTextEncoder.load(clipL, ClipTextEncoder.Activation.QUICK_GELU, options.clipLHeads());
        ClipTextEncoder g = ClipTextEncoder.load(clipG, ClipTextEncoder.Activation.GELU, options.clipGHeads());
        if (g.config().projectionDim() == 0) {
            throw new IllegalArgumentException("SD3's CLIP-G has no text_projection.weight, so there is no pooled output");
        }
        T5Encoder t = t5 == null ? null : T5Encoder.load(t5);
        int width;
        if (t != null) {
            width = t.config().dModel();
            if (options.contextWidth() != 0 && options.contextWidth() != width) {
                throw new IllegalArgumentException("context width " + options.contextWidth() + " differs from T5's d_model " + width);
            }
        } else {
            width = options.contextWidth() == 0 ? T5_XXL_WIDTH : options.contextWidth();
        }
        int clipWidth = l.config().width() + g.config().width();
        if (clipWidth > width) {
            throw new IllegalArgumentException("CLIP-L + CLIP-G width " + clipWidth + " exceeds the context width " + width);
        }
        for (SafeTensors f : files) {
            f.releaseResidentPages();
        }
        return new Sd3TextConditioner(l, g, t, width, files);
    }

    /** Whether a file holds SD3's CLIP-L and CLIP-G under {@code text_encoders.clip_l|clip_g.transformer.}. */
    public static boolean hasClips(SafeTensors checkpoint) {
        return checkpoint.contains(CLIP_L + "text_model.final_layer_norm.weight")
                && checkpoint.contains(CLIP_G + "text_model.final_layer_norm.weight");
    }

    /**
     * The conditioner of an SD3 / SD3.5 single file: its CLIP-L and CLIP-G, and T5 from t5File when given (a
     * separate {@code t5xxl_*.safetensors}, or any file holding a T5 encoder), else from the checkpoint when it
     * includes one ({@code text_encoders.t5xxl.transformer.*}); useT5 false runs without T5 either way. The files
     * stay owned by the caller and must stay open while encoding.
     */
    public static Sd3TextConditioner load(SafeTensors checkpoint, SafeTensors t5File, boolean useT5, Options options) {
        if (!hasClips(checkpoint)) {
            throw new IllegalArgumentException(checkpoint.path() + ": no SD3 text encoders (expected " + CLIP_L
                    + "text_model.* and " + CLIP_G + "text_model.*)");
        }
        Weights t5 = null;
        List<SafeTensors> files = new ArrayList<>(List.of(checkpoint));
        if (useT5) {
            SafeTensors source = t5File != null ? t5File : T5Encoder.prefixIn(checkpoint) != null ? checkpoint : null;
            if (source != null) {
                t5 = T5Encoder.weights(source);
                if (source != checkpoint) {
                    files.add(source);
                }
            }
        }
        return of(Weights.prefixed(checkpoint, CLIP_L), Weights.prefixed(checkpoint, CLIP_G), t5, options, List.copyOf(files));
    }

    /**
     * The conditioner of separate text-encoder files, as ComfyUI's TripleCLIPLoader takes them ({@code clip_l.safetensors},
     * {@code clip_g.safetensors}, {@code t5xxl_fp16.safetensors} or null): each CLIP in HF names under any prefix
     * (none, {@code text_encoders.clip_l.transformer.}, ...) or in OpenCLIP names (clip_g only); the files stay owned
     * by the caller.
     */
    public static Sd3TextConditioner loadSeparate(SafeTensors clipLFile, SafeTensors clipGFile, SafeTensors t5File,
                                                  Options options) {
        List<SafeTensors> files = new ArrayList<>(List.of(clipLFile, clipGFile));
        if (t5File != null) {
            files.add(t5File);
        }
        return of(clipWeights(clipLFile, false), clipWeights(clipGFile, true), t5File == null ? null : T5Encoder.weights(t5File),
                options, List.copyOf(files));
    }

    /** A CLIP text tower in a file: HF names under the prefix its final LayerNorm has, else an OpenCLIP tower. */
    private static Weights clipWeights(SafeTensors file, boolean openClipAllowed) {
        String hf = "text_model.final_layer_norm.weight";
        String open = "ln_final.weight";
        for (String n : file.names()) {
            if (n.endsWith(hf)) {
                return Weights.prefixed(file, n.substring(0, n.length() - hf.length()));
            }
        }
        if (openClipAllowed) {
            for (String n : file.names()) {
                if (n.endsWith(open) && file.contains(n.substring(0, n.length() - open.length()) + "token_embedding.weight")) {
                    return jdiffusion.io.OpenClipWeights.of(Weights.prefixed(file, n.substring(0, n.length() - open.length())));
                }
            }
        }
        throw new IllegalArgumentException(file.path() + ": no CLIP text encoder (no tensor ending in " + hf
                + (openClipAllowed ? " or OpenCLIP " + open : "") + ")");
    }

    /** Whether T5 is loaded (else its part of the context is zeros, or absent in ComfyUI's convention). */
    public boolean hasT5() {
        return t5 != null;
    }

    /** The context width: T5's d_model, or the width given for running without T5. */
    public int width() {
        return width;
    }

    /** Pooled width: CLIP-L's width + CLIP-G's projection (2048 for SD3, 48 for the tiny model). */
    public int pooledWidth() {
        return live().clipL.config().width() + clipG.config().projectionDim();
    }

    public ClipTextEncoder clipL() {
        return live().clipL;
    }

    public ClipTextEncoder clipG() {
        return live().clipG;
    }

    /** The T5 encoder, or null without T5. */
    public T5Encoder t5() {
        return live().t5;
    }

    /** diffusers' encode_prompt with max_sequence_length 256. */
    public Conditioning encode(String prompt) {
        return encode(prompt, T5Tokenizer.DIFFUSERS_LENGTH);
    }

    /** diffusers' encode_prompt of one prompt: context [77 + maxSequenceLength (77 without T5), width]. */
    public Conditioning encode(String prompt, int maxSequenceLength) {
        int[] l = ClipTokenizer.diffusers(ClipTokenizer.EOS).encodePadded(prompt);
        int[] g = ClipTokenizer.diffusers(0).encodePadded(prompt);
        int[] t = hasT5() ? T5Tokenizer.get().encodePadded(prompt, maxSequenceLength) : null;
        return encodeTokens(l, g, t);
    }

    /**
     * diffusers' joint conditioning from one row of token ids per encoder (CLIP rows of 77; t5Ids null without T5,
     * and ignored then). The T5 part is T5 of t5Ids, or zeros [77, width] without T5.
     */
    public Conditioning encodeTokens(int[] clipLIds, int[] clipGIds, int[] t5Ids) {
        live();
        ClipTextEncoder.Output l = clipL.forward(clipLIds, 1);
        ClipTextEncoder.Output g = clipG.forward(clipGIds, 1);
        float[] clip = clipContext(l.hidden(-2), g.hidden(-2), clipLIds.length);
        float[] t5Part = null;
        int t5Tokens;
        if (hasT5()) {
            if (t5Ids == null) {
                throw new IllegalArgumentException("T5 is loaded but no T5 token ids were given");
            }
            t5Part = t5.forward(t5Ids, 1);
            t5Tokens = t5Ids.length;
        } else {
            t5Tokens = CLIP_TOKENS;
        }
        int tokens = clipLIds.length + t5Tokens;
        float[] context = Arrays.copyOf(clip, tokens * width);
        if (t5Part != null) {
            System.arraycopy(t5Part, 0, context, clip.length, t5Part.length);
        }
        return new Conditioning(context, tokens, width, pooled(l.pooled(), g.textEmbeds()));
    }

    /** ComfyUI's CLIPTextEncode of a prompt on an SD3 CLIP (see the class comment). */
    public Conditioning encodeComfy(String prompt) {
        return encodeComfy(prompt, prompt, prompt, false);
    }

    /**
     * ComfyUI's CLIPTextEncodeSD3: one text per encoder. With emptyPaddingNone (the node's {@code empty_padding:
     * none}) an empty text gives that encoder no tokens at all: CLIP-L / CLIP-G chunk counts are then evened out
     * with the empty prompt's chunks; no CLIP tokens at all means no CLIP rows and a zero pooled vector; T5 with no
     * tokens encodes its lone end token (one row). Nothing at all gives zeros [77, width]. Otherwise every text is
     * tokenized normally (an empty one as "").
     */
    public Conditioning encodeComfy(String clipLText, String clipGText, String t5Text, boolean emptyPaddingNone) {
        live();
        WeightedChunks gChunks = emptyPaddingNone && clipGText.isEmpty() ? null : ClipTokenizer.openClip().encodeWeighted(clipGText);
        WeightedChunks lChunks = emptyPaddingNone && clipLText.isEmpty() ? null : ClipTokenizer.clipL().encodeWeighted(clipLText);
        int lRows = lChunks == null ? 0 : lChunks.rows();
        int gRows = gChunks == null ? 0 : gChunks.rows();
        if (lRows < gRows) {
            lChunks = padChunks(lChunks, ClipTokenizer.clipL().encodeWeighted(""), gRows);
        } else if (gRows < lRows) {
            gChunks = padChunks(gChunks, ClipTokenizer.openClip().encodeWeighted(""), lRows);
        }
        float[] clip = null;
        int clipTokens = 0;
        float[] pooled;
        if (lChunks != null) {
            ClipPart l = comfyClip(clipL, lChunks, ClipTokenizer.EOS);
            ClipPart g = comfyClip(clipG, gChunks, 0);
            clipTokens = Math.min(l.tokens(), g.tokens());
            clip = clipContext(l.context(), g.context(), clipTokens);
            pooled = pooled(l.pooled(), g.projected());
        } else {
            pooled = new float[pooledWidth()];
        }
        float[] t5Part = null;
        int t5Tokens = 0;
        if (hasT5()) {
            WeightedChunks t5Chunks = emptyPaddingNone && t5Text.isEmpty() ? null : comfyT5Tokens(t5Text);
            int[] ids = t5Chunks == null ? new int[] {T5Tokenizer.EOS} : t5Chunks.ids()[0];
            t5Part = t5.forward(ids, 1);
            if (t5Chunks != null && t5Chunks.weighted()) {
                int[] empty = new int[ids.length];
                empty[0] = T5Tokenizer.EOS;
                applyWeights(t5Part, t5Chunks.weights(), t5.forward(empty, 1), width);
            }
            t5Tokens = ids.length;
        }
        if (clip == null && t5Part == null) {
            return new Conditioning(new float[CLIP_TOKENS * width], CLIP_TOKENS, width, pooled);
        }
        int tokens = clipTokens + t5Tokens;
        float[] context = clip == null ? new float[tokens * width] : Arrays.copyOf(clip, tokens * width);
        if (t5Part != null) {
            System.arraycopy(t5Part, 0, context, clipTokens * width, t5Part.length);
        }
        return new Conditioning(context, tokens, width, pooled);
    }

    /** chunks (or none) followed by copies of the empty prompt's chunk until there are rows of them. */
    private static WeightedChunks padChunks(WeightedChunks chunks, WeightedChunks empty, int rows) {
        List<int[]> ids = new ArrayList<>();
        List<double[]> weights = new ArrayList<>();
        if (chunks != null) {
            ids.addAll(Arrays.asList(chunks.ids()));
            weights.addAll(Arrays.asList(chunks.weights()));
        }
        while (ids.size() < rows) {
            ids.add(empty.ids()[0]);
            weights.add(empty.weights()[0]);
        }
        return new WeightedChunks(ids.toArray(int[][]::new), weights.toArray(double[][]::new));
    }

    /**
     * ComfyUI's T5 tokens of a prompt: each weighted run of its weight syntax tokenized on its own, EOS appended,
     * padded with 0 to at least 77, never truncated; one row.
     */
    public static WeightedChunks comfyT5Tokens(String prompt) {
        T5Tokenizer tok = T5Tokenizer.get();
        List<Integer> ids = new ArrayList<>();
        List<Double> weights = new ArrayList<>();
        for (PromptParser.Segment s : PromptParser.parse(prompt)) {
            for (int id : tok.encode(s.text())) {
                ids.add(id);
                weights.add(s.weight());
            }
        }
        int n = Math.max(ids.size() + 1, T5Tokenizer.COMFY_MIN_LENGTH);
        int[] row = new int[n];
        double[] w = new double[n];
        Arrays.fill(w, 1.0);
        for (int i = 0; i < ids.size(); i++) {
            row[i] = ids.get(i);
            w[i] = weights.get(i);
        }
        row[ids.size()] = T5Tokenizer.EOS;
        return new WeightedChunks(new int[][] {row}, new double[][] {w});
    }

    /** One CLIP's ComfyUI output: the chunks' penultimate states (weighted), first-chunk pooled and projected. */
    private record ClipPart(float[] context, int tokens, float[] pooled, float[] projected) {
    }

    private static ClipPart comfyClip(ClipTextEncoder enc, WeightedChunks chunks, int pad) {
        int[][] rows = chunks.ids();
        int n = rows[0].length;
        int[] ids = new int[rows.length * n];
        for (int r = 0; r < rows.length; r++) {
            System.arraycopy(rows[r], 0, ids, r * n, n);
        }
        ClipTextEncoder.Output out = enc.forward(ids, rows.length);
        float[] context = out.hidden(-2);
        int w = enc.config().width();
        if (chunks.weighted()) {
            int[] empty = new int[n];
            Arrays.fill(empty, pad);
            empty[0] = ClipTokenizer.BOS;
            empty[1] = ClipTokenizer.EOS;
            applyWeights(context, chunks.weights(), enc.forward(empty, 1).hidden(-2), w);
        }
        float[] projected = out.textEmbeds() == null ? null : Arrays.copyOf(out.textEmbeds(), enc.config().projectionDim());
        return new ClipPart(context, rows.length * n, Arrays.copyOf(out.pooled(), w), projected);
    }

    /**
     * z = (z - z_empty) * w + z_empty at every position whose weight is not 1, in float32 step by step as torch
     * computes it (ComfyUI's encode_token_weights).
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
                for (int c = 0; c < width; c++) {
                    float ze = empty[t * width + c];
                    part[base + c] = (part[base + c] - ze) * wf + ze;
                }
            }
        }
    }

    /** [tokens][width]: CLIP-L's then CLIP-G's channels of the first tokens rows, zeros to the right. */
    private float[] clipContext(float[] l, float[] g, int tokens) {
        int wl = clipL.config().width();
        int wg = clipG.config().width();
        float[] out = new float[tokens * width];
        for (int t = 0; t < tokens; t++) {
            System.arraycopy(l, t * wl, out, t * width, wl);
            System.arraycopy(g, t * wg, out, t * width + wl, wg);
        }
        return out;
    }

    private static float[] pooled(float[] l, float[] g) {
        float[] out = Arrays.copyOf(l, l.length + g.length);
        System.arraycopy(g, 0, out, l.length, g.length);
        return out;
    }

    private Sd3TextConditioner live() {
        if (closed) {
            throw new IllegalStateException("the SD3 text encoders were released (close() was called)");
        }
        return this;
    }

    /**
     * Releases the encoders: their packed weights become garbage (T5-XXL's 9.5 GB in fp16) and the mapped pages of
     * the files are dropped from the resident set. The files stay open (the caller owns them).
     */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            clipL = null;
            clipG = null;
            t5 = null;
            for (SafeTensors f : files) {
                f.releaseResidentPages();
            }
        }
    }
}
