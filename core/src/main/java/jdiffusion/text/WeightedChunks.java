package jdiffusion.text;

import java.util.List;

import java.util.Arrays;

/**
 * A prompt as one text encoder takes it: rows of {@link ClipTokenizer#CONTEXT_LENGTH} token ids (start, up to 75
 * tokens, end, padding) and the weight of every position. Start, end and padding always weigh 1.
 */
public record WeightedChunks(int[][] ids, double[][] weights, List<float[]> vectors) {
    /**
     * Rows of token ids only.
     */
    public WeightedChunks(int[][] ids, double[][] weights) {
        this(ids, weights, List.of());
    }

    /**
     * @param vectors textual-inversion vectors the rows use: id {@link ClipTokenizer#VOCAB_SIZE} + k stands for
     *                vectors[k] (one input-embedding row each), as ComfyUI splices embeddings into the tokens
     */
    public WeightedChunks {
        vectors = vectors == null ? List.of() : List.copyOf(vectors);
        if (ids.length == 0 || ids.length != weights.length) {
            throw new IllegalArgumentException(ids.length + " token rows but " + weights.length + " weight rows");
        }
        for (int r = 0; r < ids.length; r++) {
            if (ids[r].length != weights[r].length) {
                throw new IllegalArgumentException("row " + r + " has " + ids[r].length + " ids but " + weights[r].length + " weights");
            }
        }
    }

    /** Rows with every weight 1, as an unweighted prompt has. */
    public static WeightedChunks unweighted(int[][] ids) {
        double[][] weights = new double[ids.length][];
        for (int r = 0; r < ids.length; r++) {
            weights[r] = new double[ids[r].length];
            Arrays.fill(weights[r], 1.0);
        }
        return new WeightedChunks(ids, weights);
    }

    /** ComfyUI's has_weights: some position weighs other than exactly 1 (NaN counts as other). */
    public boolean weighted() {
        for (double[] row : weights) {
            for (double w : row) {
                if (w != 1.0) {
                    return true;
                }
            }
        }
        return false;
    }

    /** True when some position takes a vector rather than a token id. */
    public boolean hasVectors() {
        return !vectors.isEmpty();
    }

    public int rows() {
        return ids.length;
    }
}
