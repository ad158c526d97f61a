package jdiffusion.sampling;

/**
 * A network whose input gets extra channels after the latent's (inpainting UNets: 4 latent + 1 mask + 4 masked-image
 * latent = 9): every row of the scaled latent input is followed by the same row of the constant concat tensor
 * (ComfyUI's c_concat, diffusers' mask and masked_image_latents), which c_in does not scale. Uncond and cond rows
 * get the same concat. The output keeps the network's own channels.
 */
public final class ConcatNetwork implements DiscreteModel.Network {
    private final DiscreteModel.Network inner;
    private final float[] concat;
    private final int batch;
    private final int rowSize;

    /**
     * @param concat     [batch][extra channels][h][w]
     * @param latentRow  values of one latent row (channels * h * w)
     */
    public ConcatNetwork(DiscreteModel.Network inner, float[] concat, int batch, int latentRow) {
        if (batch <= 0 || concat.length % batch != 0) {
            throw new IllegalArgumentException("concat of " + concat.length + " values does not split into " + batch
                    + " rows");
        }
        this.inner = inner;
        this.concat = concat;
        this.batch = batch;
        this.rowSize = latentRow;
    }

    /** The network the concat channels are appended for. */
    public DiscreteModel.Network inner() {
        return inner;
    }

    @Override
    public float[] apply(float[] xc, float timestep, boolean withUncond) {
        return inner.apply(withConcat(xc), timestep, withUncond);
    }

    @Override
    public float[] apply(float[] xc, float timestep, boolean withUncond, double sigma) {
        return inner.apply(withConcat(xc), timestep, withUncond, sigma); // a ControlNet window needs the sigma
    }

    private float[] withConcat(float[] xc) {
        int rows = xc.length / rowSize;
        int extra = concat.length / batch;
        float[] in = new float[rows * (rowSize + extra)];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(xc, r * rowSize, in, r * (rowSize + extra), rowSize);
            System.arraycopy(concat, (r % batch) * extra, in, r * (rowSize + extra) + rowSize, extra);
        }
        return in;
    }
}
