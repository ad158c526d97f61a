package jdiffusion.model.mmdit;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.Weights;

/**
 * What an MMDiT (SD3 / SD3.5) is, read from its tensor names and shapes alone the way ComfyUI's model_detection does
 * it: hidden width from the patch embedding (heads of 64, so heads = hidden / 64), blocks counted, the positional
 * table's side from its length, QK RMS-norm from {@code ln_q}, the MMDiT-X dual-attention blocks from
 * {@code x_block.attn2}. Names are the original ones without the {@code model.diffusion_model.} prefix.
 *
 * @param inChannels          latent channels in (16)
 * @param outChannels         latent channels out (16)
 * @param patch               patch side (2)
 * @param hidden              token width (64 x heads: 1536 for 3.5 Medium, 2432 for 3.5 Large)
 * @param heads               attention heads (hidden / 64)
 * @param depth               joint blocks
 * @param posEmbedMaxSize     side of the square positional table (384 for SD3.5, 192 for SD3 Medium)
 * @param admIn               pooled text width (2048)
 * @param contextIn           text token width (4096)
 * @param timeEmbedIn         sinusoid width of the timestep embedding (256)
 * @param mlpHidden           feed-forward width (4 x hidden)
 * @param qkNorm              whether q and k are RMS-normalised per head (SD3.5)
 * @param dualAttentionBlocks the blocks whose image stream has a second self-attention (MMDiT-X)
 */
public record MMDiTConfig(int inChannels, int outChannels, int patch, int hidden, int heads, int depth,
                          int posEmbedMaxSize, int admIn, int contextIn, int timeEmbedIn, int mlpHidden,
                          boolean qkNorm, List<Integer> dualAttentionBlocks) {
    /** ComfyUI's test for an MMDiT. */
    public static final String MARKER = "joint_blocks.0.context_block.attn.qkv.weight";
    /** Head width of every SD3 MMDiT (ComfyUI: hidden = 64 * depth). */
    public static final int HEAD_DIM = 64;

    public MMDiTConfig {
        dualAttentionBlocks = List.copyOf(dualAttentionBlocks);
    }

    /** Whether weights (without file prefix) hold an MMDiT. */
    public static boolean isMMDiT(Weights w) {
        return w.has(MARKER);
    }

    /** The configuration of the MMDiT in w; a tensor that is missing or has the wrong rank is named in the error. */
    public static MMDiTConfig detect(Weights w) throws ModelFormatException {
        int[] xe = need(w, "x_embedder.proj.weight", 4);
        int hidden = xe[0];
        int in = xe[1];
        int patch = xe[2];
        if (xe[3] != patch || patch < 1) {
            throw new ModelFormatException("MMDiT: tensor 'x_embedder.proj.weight' has shape " + Arrays.toString(xe)
                    + ", expected a square patch kernel");
        }
        if (hidden % HEAD_DIM != 0) {
            throw new ModelFormatException("MMDiT: hidden width " + hidden + " (x_embedder.proj.weight) is not a "
                    + "multiple of the head width " + HEAD_DIM);
        }
        int[] fin = need(w, "final_layer.linear.weight", 2);
        if (fin[0] % (patch * patch) != 0) {
            throw new ModelFormatException("MMDiT: final_layer.linear.weight has " + fin[0] + " outputs, not a "
                    + "multiple of patch^2 = " + patch * patch);
        }
        int[] pos = need(w, "pos_embed", 3);
        int m = (int) Math.round(Math.sqrt(pos[1]));
        if (m * m != pos[1] || pos[2] != hidden) {
            throw new ModelFormatException("MMDiT: tensor 'pos_embed' has shape " + Arrays.toString(pos)
                    + ", expected [1, M*M, " + hidden + "]");
        }
        int adm = need(w, "y_embedder.mlp.0.weight", 2)[1];
        int ctx = need(w, "context_embedder.weight", 2)[1];
        int temb = need(w, "t_embedder.mlp.0.weight", 2)[1];
        int mlp = need(w, "joint_blocks.0.x_block.mlp.fc1.weight", 2)[0];
        TreeSet<Integer> blocks = indices(w, "joint_blocks.");
        if (blocks.isEmpty() || blocks.last() + 1 != blocks.size()) {
            throw new ModelFormatException("MMDiT: joint_blocks numbering has gaps " + blocks);
        }
        List<Integer> dual = new ArrayList<>();
        for (int b : blocks) {
            if (w.has("joint_blocks." + b + ".x_block.attn2.qkv.weight")) {
                dual.add(b);
            }
        }
        boolean qk = w.has("joint_blocks.0.context_block.attn.ln_q.weight");
        return new MMDiTConfig(in, fin[0] / (patch * patch), patch, hidden, hidden / HEAD_DIM, blocks.size(), m, adm,
                ctx, temb, mlp, qk, dual);
    }

    /** The name of the variant, as people know it (for info output). */
    public String variant() {
        if (!dualAttentionBlocks.isEmpty()) {
            return "SD3.5 Medium (MMDiT-X)";
        }
        if (qkNorm) {
            return "SD3.5 Large";
        }
        return "SD3 Medium";
    }

    private static int[] need(Weights w, String name, int rank) throws ModelFormatException {
        if (!w.has(name)) {
            throw new ModelFormatException("MMDiT: missing tensor '" + name + "'");
        }
        int[] s = w.shape(name);
        if (s.length != rank) {
            throw new ModelFormatException("MMDiT: tensor '" + name + "' has shape " + Arrays.toString(s)
                    + ", expected rank " + rank);
        }
        return s;
    }

    private static TreeSet<Integer> indices(Weights w, String prefix) {
        TreeSet<Integer> seen = new TreeSet<>();
        for (String n : w.names()) {
            if (n.startsWith(prefix)) {
                String rest = n.substring(prefix.length());
                int dot = rest.indexOf('.');
                String idx = dot < 0 ? rest : rest.substring(0, dot);
                if (!idx.isEmpty() && idx.length() < 6 && idx.chars().allMatch(Character::isDigit)) {
                    seen.add(Integer.parseInt(idx));
                }
            }
        }
        return seen;
    }
}
