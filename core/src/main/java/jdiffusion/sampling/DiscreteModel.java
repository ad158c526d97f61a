package jdiffusion.sampling;

/**
 * ComfyUI's BaseModel._apply_model around a network: scales the input by 1 / sqrt(sigma^2 + 1), hands the network
 * the nearest integer training timestep of sigma, and converts its eps / v / x0 output to the denoised estimate.
 * A flow model (SD3) sees x unscaled and the timestep sigma * 1000, and predicts a velocity.
 * With uncond the network sees one batch [uncond rows, cond rows] (both rows hold the same x).
 */
public final class DiscreteModel implements ConditionalModel {

    /** The network (a UNet with its conditioning bound): raw output for the scaled input rows. */
    @FunctionalInterface
    public interface Network {
        /**
         * @param xc         scaled input, [B*C*H*W] or, withUncond, [2B*C*H*W] = uncond rows then cond rows
         * @param timestep   integer training timestep (as a float, as ComfyUI passes it); sigma * 1000 for flow
         * @param withUncond whether the first half of xc is to be run with the uncond conditioning
         * @return the raw output, same size as xc
         */
        float[] apply(float[] xc, float timestep, boolean withUncond);

        /** The same, told the sampler's sigma of this evaluation (ControlNet windows are in sigma). */
        default float[] apply(float[] xc, float timestep, boolean withUncond, double sigma) {
            return apply(xc, timestep, withUncond);
        }
    }

    private final Network network;
    private final ModelSamplingDiscrete modelSampling;
    private final PredictionType prediction;

    public DiscreteModel(Network network, ModelSamplingDiscrete modelSampling, PredictionType prediction) {
        this.network = network;
        this.modelSampling = modelSampling;
        this.prediction = prediction;
    }

    @Override
    public Pair evaluate(float[] x, double sigma, boolean withUncond) {
        float[] xc = prediction.calculateInput(x, sigma);
        float t = modelSampling.networkTimestep(sigma);
        int n = x.length;
        if (!withUncond) {
            return new Pair(prediction.denoised(x, network.apply(xc, t, false, sigma), sigma), null);
        }
        float[] both = new float[2 * n];
        System.arraycopy(xc, 0, both, 0, n);
        System.arraycopy(xc, 0, both, n, n);
        float[] out = network.apply(both, t, true, sigma);
        float[] uncondOut = java.util.Arrays.copyOfRange(out, 0, n);
        float[] condOut = java.util.Arrays.copyOfRange(out, n, 2 * n);
        return new Pair(prediction.denoised(x, condOut, sigma), prediction.denoised(x, uncondOut, sigma));
    }
}
