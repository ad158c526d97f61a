package jdiffusion.sampling;

/**
 * The analytic denoisers of golden samplers/README.md, standing in for the UNet (they return the denoised estimate
 * directly): cond = D_A, uncond = D_B, with c the channel of each element of an NCHW latent.
 */
final class AnalyticModel implements ConditionalModel {
    private final int channels;
    private final int plane;
    private int uncondEvaluations;
    private int evaluations;

    AnalyticModel(long[] shape) {
        this.channels = (int) shape[1];
        this.plane = (int) (shape[2] * shape[3]);
    }

    static double dA(double x, double s, int c) {
        return 0.8 * Math.tanh(x) / (1 + 0.1 * s) + 0.05 * x / (1 + s * s) + 0.1 * (c - 1.5) / (1 + s);
    }

    static double dB(double x, double s, int c) {
        return 0.6 * Math.sin(x) / (1 + 0.2 * s) - 0.02 * x / (1 + s * s) - 0.05 * (c - 1.5) / (1 + s);
    }

    @Override
    public Pair evaluate(float[] x, double sigma, boolean withUncond) {
        evaluations++;
        float s = (float) sigma; // the model sees sigma as a float32 tensor
        float[] cond = new float[x.length];
        float[] uncond = withUncond ? new float[x.length] : null;
        for (int k = 0; k < x.length; k++) {
            int c = (k / plane) % channels;
            cond[k] = (float) dA(x[k], s, c);
            if (withUncond) {
                uncond[k] = (float) dB(x[k], s, c);
            }
        }
        if (withUncond) {
            uncondEvaluations++;
        }
        return new Pair(cond, uncond);
    }

    int evaluations() {
        return evaluations;
    }

    int uncondEvaluations() {
        return uncondEvaluations;
    }
}
